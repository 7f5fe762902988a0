import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { isolatedEnv, runCli } from '../support/cli.js';
import { entry } from './fixtures.js';

// `entraclaw audit verify` as the user reads it, on a log whose oldest file rotation has dropped.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-verify-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = isolatedEnv(dir);
const path = join(dir, 'state', 'entraclaw', 'audit.jsonl');

describe('entraclaw audit verify', () => {
  it('says where the kept chain starts once rotation has dropped the oldest lines', () => {
    const log = AuditLog.open(path, { maxBytes: 600, keep: 1 });
    for (let i = 0; i < 12; i++) log.append(entry(i));
    log.close();
    const r = runCli(['audit', 'verify'], env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toMatch(/^audit log intact: \d+ lines in 2 file\(s\)\n$/);
    expect(r.stderr).toMatch(
      /the kept chain starts at seq [1-9]\d*: the \d+ line\(s\) before it were rotated away/,
    );
  });
});
