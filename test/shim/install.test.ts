// `entraclaw shim install DIR` through the built CLI: it writes its two wrappers, re-installs over its own,
// and never silently replaces a file that is not one of its shims (the real secret-tool in /usr/bin, say).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { isolatedEnv, runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-shim-install-'));
const env = isolatedEnv(dir);
let n = 0;
const fresh = () => join(dir, `bin-${n++}`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('entraclaw shim install', () => {
  it('writes executable wrappers that exec node -- on our shim scripts, and re-installs over its own', () => {
    const bin = fresh();
    for (let i = 0; i < 2; i++) {
      const r = runCli(['shim', 'install', bin, '--json'], env);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.toString())).toEqual({
        installed: [join(bin, 'security'), join(bin, 'secret-tool')],
      });
    }
    for (const [name, script] of [
      ['security', 'security-main.cjs'],
      ['secret-tool', 'secret-tool-main.cjs'],
    ]) {
      const path = join(bin, name!);
      expect(statSync(path).mode & 0o777).toBe(0o755);
      expect(readFileSync(path, 'utf8')).toMatch(new RegExp(`\\nexec \\S+ -- \\S+/${script} "\\$@"\\n$`));
    }
  });

  it('refuses to replace a file that is not an entraclaw shim, writing nothing, unless --force', () => {
    const bin = fresh();
    mkdirSync(bin);
    const real = '#!/bin/sh\necho the real secret-tool\n';
    writeFileSync(join(bin, 'secret-tool'), real, { mode: 0o755 });
    const r = runCli(['shim', 'install', bin], env);
    expect(r.status).toBe(EXIT_CODES.conflict);
    expect(r.stderr).toContain(`${join(bin, 'secret-tool')} exists and is not an entraclaw shim`);
    expect(r.stderr).toContain('--force');
    expect(readFileSync(join(bin, 'secret-tool'), 'utf8')).toBe(real);
    expect(existsSync(join(bin, 'security'))).toBe(false);
    const forced = runCli(['shim', 'install', bin, '--force'], env);
    expect(forced.status, forced.stderr).toBe(0);
    expect(readFileSync(join(bin, 'secret-tool'), 'utf8')).toContain('# entraclaw shim');
  });

  it('a directory named security is not a shim either', () => {
    const bin = fresh();
    mkdirSync(join(bin, 'security'), { recursive: true });
    const r = runCli(['shim', 'install', bin], env);
    expect(r.status).toBe(EXIT_CODES.conflict);
    expect(r.stderr).toContain(join(bin, 'security'));
  });

  it('a regular file given as DIR is a usage error, not an internal one', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const r = runCli(['shim', 'install', file], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`cannot use ${file} as the shim directory (a file is in the way)`);
    expect(r.stderr).not.toContain('internal');
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('a directory that cannot be made (under /proc) is a usage error at once, not a spinning mkdir', () => {
    const r = runCli(['shim', 'install', '/proc/entraclaw-no-such/bin'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('cannot use /proc/entraclaw-no-such/bin as the shim directory (ENOENT)');
  });
});
