import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { CLI } from '../support/cli.js';
import { describeIfProvided, rootOnly } from '../support/context.js';

// A uid the user database does not know, run without $HOME: `env -i` in a container started with
// `--user 4711`.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-home-'));
// The other uid must get through it to the directory it owns.
chmodSync(dir, 0o711);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function unknownUid(): number {
  const known = new Set(
    readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((line) => Number(line.split(':')[2])),
  );
  let uid = 54_321;
  while (known.has(uid)) uid++;
  return uid;
}

describeIfProvided(
  'a uid with no home: no $HOME and no entry in the user database',
  rootOnly('running as a uid with no user database entry'),
  () => {
    const uid = unknownUid();
    const run = (args: string[], env: NodeJS.ProcessEnv, input = '') =>
      spawnSync(process.execPath, ['--', CLI, ...args], { env, input, uid, gid: uid, timeout: 30_000 });

    it('is a usage error saying what to set, for doctor too, not an internal error', () => {
      for (const args of [
        ['secret', 'ls', '--store', 'encrypted-file'],
        ['doctor', '--json'],
      ]) {
        const r = run(args, { PATH: process.env.PATH });
        expect(r.status, r.stderr.toString()).toBe(EXIT_CODES.usage);
        const err = r.stderr.toString();
        expect(err).toContain(`cannot tell your home directory: $HOME is not set and uid ${uid} has no home`);
        expect(err).toContain('set HOME to your home directory');
        expect(err).not.toContain('internal');
      }
    });

    it('needs no home when the XDG variables name every directory', () => {
      const own = join(dir, 'xdg');
      mkdirSync(own, { mode: 0o700 });
      chownSync(own, uid, uid);
      const pass = join(own, 'pass');
      writeFileSync(pass, 'no home passphrase\n', { mode: 0o600 });
      chownSync(pass, uid, uid);
      const env = {
        PATH: process.env.PATH,
        XDG_CONFIG_HOME: join(own, 'config'),
        XDG_DATA_HOME: join(own, 'data'),
        XDG_STATE_HOME: join(own, 'state'),
        ENTRACLAW_PASSPHRASE_FILE: pass,
      };
      const set = run(['secret', 'set', 'svc', 'acc', '--store', 'encrypted-file'], env, 'value');
      expect(set.status, set.stderr.toString()).toBe(0);
      const get = run(['secret', 'get', 'svc', 'acc', '--store', 'encrypted-file'], env);
      expect(get.status, get.stderr.toString()).toBe(0);
      expect(get.stdout.toString()).toBe('value');
    });
  },
);
