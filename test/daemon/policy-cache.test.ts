import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
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

  it('a missing policy that becomes one it cannot read (a symlink loop, a file for its directory) is refused on the next look, not kept as empty', () => {
    const config = join(dir, 'unreadable');
    mkdirSync(config, { mode: 0o700 });
    const path = join(config, 'policy.toml');
    const errors: string[] = [];
    const cache = new PolicyCache(path, (level, _message, fields) => {
      if (level === 'error') errors.push(String(fields?.error));
    });
    // No file: an empty policy, so every caller is queued as pending.
    expect(cache.current()).toEqual({ policy: { clients: [] } });
    symlinkSync(path, path);
    expect(cache.current()).toMatchObject({ error: expect.stringContaining('ELOOP') });
    expect(errors).toEqual([expect.stringContaining('ELOOP')]);
    unlinkSync(path);
    expect(cache.current()).toEqual({ policy: { clients: [] } });

    // The same through a directory that is a file: stat says ENOTDIR, not "nothing there".
    const file = join(dir, 'not-a-dir');
    const behindFile = new PolicyCache(join(file, 'policy.toml'), () => undefined);
    expect(behindFile.current()).toEqual({ policy: { clients: [] } });
    writeFileSync(file, '', { mode: 0o600 });
    expect(behindFile.current()).toMatchObject({ error: expect.stringContaining('ENOTDIR') });
  });
});
