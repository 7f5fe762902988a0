// `entraclaw shim install DIR` through the built CLI: it writes its two wrappers, re-installs over its own,
// and never silently replaces a file that is not one of its shims (the real secret-tool in /usr/bin, say).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { isolatedEnv, runCli } from '../support/cli.js';
import { linuxOnly, requireOrSkip } from '../support/context.js';

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
      // Started only when node and the shim script are still there (else a message: the test below).
      expect(readFileSync(path, 'utf8')).toMatch(
        new RegExp(
          `\\n\\[ -f \\S+/${script} \\] && \\[ -x \\S+ \\] && exec \\S+ -- \\S+/${script} "\\$@"\\n`,
        ),
      );
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

  it('a directory that cannot be made (under /proc) is a usage error at once, not a spinning mkdir', (ctx) => {
    requireOrSkip(ctx, linuxOnly('procfs'));
    const r = runCli(['shim', 'install', '/proc/entraclaw-no-such/bin'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('cannot use /proc/entraclaw-no-such/bin as the shim directory (ENOENT)');
  });

  it('a directory you cannot write in is the same usage error, naming no unrelated variable', (ctx) => {
    requireOrSkip(ctx, linuxOnly('procfs'));
    // /proc/sys refuses writes even to root, as /usr/local/bin does to a user.
    const r = runCli(['shim', 'install', '/proc/sys'], env);
    expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('cannot use /proc/sys as the shim directory (EACCES: you cannot write in it)');
    expect(r.stderr).toContain('hint: name a directory of your own, e.g. ~/.entraclaw/bin');
    expect(r.stderr).not.toContain('XDG_');
  });

  it('an installed shim whose node or shim script is gone (checkout moved, node updated) says so and how to fix it', () => {
    const bin = fresh();
    expect(runCli(['shim', 'install', bin], env).status).toBe(0);
    // What install wrote, as it would read after the checkout moved away, and after node did.
    const installed = (name: string) => {
      const text = readFileSync(join(bin, name), 'utf8');
      const [, node, script] = /exec (\S+) -- (\S+) "\$@"/.exec(text)!;
      return { text, node: node!, script: script! };
    };
    const st = installed('secret-tool');
    const se = installed('security');
    const cases = [
      { name: 'secret-tool', node: st.node, script: join(dir, 'moved', 'secret-tool-main.cjs'), was: st },
      { name: 'security', node: join(dir, 'node-22.1', 'bin', 'node'), script: se.script, was: se },
    ];
    for (const { name, node, script, was } of cases) {
      writeFileSync(join(bin, name), was.text.replaceAll(was.node, node).replaceAll(was.script, script));
      const r = spawnSync(name, ['lookup', 'service', 'x'], {
        env: { ...env, PATH: `${bin}:/usr/bin:/bin` },
      });
      expect(r.status, r.stderr.toString()).toBe(1);
      expect(r.stderr.toString()).toBe(
        `${name}: this entraclaw shim cannot start: ${node} or ${script} is gone (entraclaw moved, or node was updated); run: entraclaw shim install ${bin}\n`,
      );
    }
  });
});
