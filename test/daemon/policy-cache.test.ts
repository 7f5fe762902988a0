import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Level } from '../../src/daemon/log.js';
import { PolicyCache } from '../../src/daemon/policy-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-policy-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('PolicyCache', () => {
  it('loads a policy with a literal * in a name, and logs a warning naming its line', () => {
    const path = join(dir, 'policy.toml');
    writeFileSync(
      path,
      `[[client]]\nname = "bot"\nexe = "/usr/bin/tool"\nsha256 = "${'a'.repeat(64)}"\n  [[client.grant]]\n  services = ["pre*"]\n  accounts = ["*"]\n  operations = ["read"]\n`,
      { mode: 0o600 },
    );
    const logged: [Level, string, Record<string, unknown> | undefined][] = [];
    const cache = new PolicyCache(path, (level, message, fields) => logged.push([level, message, fields]));
    expect(cache.current()).toMatchObject({ policy: { clients: [{ name: 'bot' }] } });
    expect(logged.filter(([level]) => level === 'warn')).toEqual([
      [
        'warn',
        'policy entry is literal',
        { warning: expect.stringContaining(`${path}:6: services entry "pre*"`) },
      ],
    ]);
  });
});
