import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { MASK_TEXT } from '../../src/inject/mask.js';
import { shellQuote } from '../../src/lib/shell.js';
import { waitFor } from '../support/broker.js';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';
import { linuxOnly, randomName, requireOrSkip } from '../support/context.js';

// `entraclaw run` as a user meets it: the built CLI, a real encrypted-file vault in a throwaway home, and
// real child processes that report what they saw. A canary stands in for every secret.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-run-'));
const pass = join(dir, 'pass');
writeFileSync(pass, 'run test passphrase\n', { mode: 0o600 });
const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass, ENTRACLAW_STORE: 'encrypted-file' });
const STORE = ['--store', 'encrypted-file'];
const CANARY = `CANARY-${randomName('run')}`;
const OTHER = `OTHER-${randomName('run')}`;
const SVC = 'run-svc';
const NODE = process.execPath;
let n = 0;

/** A fresh path in the scratch dir: marker files, .env files. */
const scratch = (name: string) => join(dir, `${n++}-${name}`);
const run = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  runCli(['run', ...STORE, ...args], { ...env, ...extra });

function setSecret(service: string, account: string, value: string, flags: string[] = []): void {
  const r = runCli(['secret', 'set', service, account, ...STORE, ...flags], env, value);
  expect(r.status, r.stderr).toBe(0);
}

/** A child that records VAR's value in a file and prints nothing: what it saw, not what was printed. */
function recordVar(name: string): { cmd: string[]; seen(): string } {
  const out = scratch(`seen-${name}`);
  return {
    cmd: ['--', 'sh', '-c', `printf '%s' "$${name}" > '${out}'`],
    seen: () => readFileSync(out, 'utf8'),
  };
}

/** A child that would touch a marker file if it ever started. */
function marker(): { cmd: string[]; started(): boolean } {
  const path = scratch('marker');
  return { cmd: ['--', 'sh', '-c', `touch '${path}'`], started: () => existsSync(path) };
}

beforeAll(() => {
  setSecret(SVC, 'me', CANARY);
  setSecret(SVC, 'other', OTHER);
  setSecret('my/svc', 'me', OTHER);
  setSecret(SVC, 'old', CANARY, [
    '--kind',
    'token',
    '--expires-at',
    new Date(Date.now() - 60_000).toISOString(),
  ]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('entraclaw run: references reach the child', () => {
  it('--env NAME=entraclaw://S/A', () => {
    const child = recordVar('TOKEN');
    const r = run(['--env', `TOKEN=entraclaw://${SVC}/me`, ...child.cmd]);
    expect(r.status, r.stderr).toBe(0);
    expect(child.seen()).toBe(CANARY);
    expect(r.stderr).not.toContain(CANARY);
  });

  it('--env-file with references, comments, quotes and plain values; --env wins over the file', () => {
    const file = scratch('.env');
    writeFileSync(
      file,
      [
        '# a project .env',
        `TOKEN=entraclaw://${SVC}/me`,
        `export QUOTED="entraclaw://${SVC}/other"`,
        'PLAIN=just text',
        `OVERRIDDEN=entraclaw://${SVC}/me`,
        '',
      ].join('\n'),
    );
    const out = scratch('seen');
    const r = run([
      '--env-file',
      file,
      '--env',
      `OVERRIDDEN=entraclaw://${SVC}/other`,
      '--',
      'sh',
      '-c',
      `printf '%s|%s|%s|%s' "$TOKEN" "$QUOTED" "$PLAIN" "$OVERRIDDEN" > '${out}'`,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(`${CANARY}|${OTHER}|just text|${OTHER}`);
  });

  it('an inherited variable holding a reference', () => {
    const child = recordVar('FROM_PARENT');
    const r = run(child.cmd, { FROM_PARENT: `entraclaw://${SVC}/me` });
    expect(r.status, r.stderr).toBe(0);
    expect(child.seen()).toBe(CANARY);
  });

  it('percent-encoded parts (entraclaw://my%2Fsvc/me), in any spelling of the escape', () => {
    for (const ref of ['entraclaw://my%2Fsvc/me', 'entraclaw://my%2fsvc/%6De']) {
      const child = recordVar('T');
      const r = run(['--env', `T=${ref}`, ...child.cmd]);
      expect(r.status, r.stderr).toBe(0);
      expect(child.seen()).toBe(OTHER);
    }
  });

  it('a reference inside a longer value is left as text, and run says so naming the variable', () => {
    const child = recordVar('URL');
    const r = run(['--env', `URL=https://x/?t=entraclaw://${SVC}/me`, ...child.cmd], {
      DSN: `postgres://u:entraclaw://${SVC}/me@db/app`,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(child.seen()).toBe(`https://x/?t=entraclaw://${SVC}/me`);
    expect(r.stderr).toBe(
      'entraclaw: warning: DSN, URL: entraclaw:// inside a longer value is passed on as text, not replaced by the secret (only a whole value is a reference; build such a value with `entraclaw inject`)\n',
    );
    const plain = run(['--env', `T=entraclaw://${SVC}/me`, ...recordVar('T').cmd]);
    expect(plain.stderr).toBe('');
  });

  it('a reference among the arguments of the command is passed as typed, and run says which argument', () => {
    const out = scratch('argv');
    const r = run([
      '--',
      NODE,
      '-e',
      'require("fs").writeFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)))',
      out,
      `entraclaw://${SVC}/me`,
      '-u',
      `user:ENTRACLAW://${SVC}/me`,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual([
      `entraclaw://${SVC}/me`,
      '-u',
      `user:ENTRACLAW://${SVC}/me`,
    ]);
    expect(r.stderr).toBe(
      'entraclaw: warning: arguments 4, 6 of the command hold entraclaw://, passed on as text: run resolves references in environment variables only (give the command its secret in one, e.g. --env TOKEN=entraclaw://SERVICE/ACCOUNT, or in a file written by `entraclaw inject`)\n',
    );
    expect(r.stderr).not.toContain(CANARY);
  });
});

describe('entraclaw run: the child is the command', () => {
  it("returns the child's exit status", () => {
    expect(run(['--', 'sh', '-c', 'exit 7']).status).toBe(7);
    expect(run(['--env', `T=entraclaw://${SVC}/me`, '--', 'sh', '-c', 'exit 0']).status).toBe(0);
    expect(run(['--', 'sh', '-c', 'exit 255']).status).toBe(255);
  });

  it('passes stdout and stdin through untouched without --mask', () => {
    const r = runCli(
      ['run', ...STORE, '--', 'sh', '-c', 'cat; printf "[%s]" "$1"', 'sh', 'a b'],
      env,
      'input\n',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe('input\n[a b]');
  });

  it('forwards SIGTERM to the child and exits with its status', async () => {
    const ready = scratch('ready');
    const got = scratch('got');
    const script = `trap 'echo TERM > "${got}"; exit 42' TERM; touch "${ready}"; while :; do sleep 0.05; done`;
    const r = await runAsync(
      ['--env', `T=entraclaw://${SVC}/me`, '--', 'sh', '-c', script],
      ready,
      'SIGTERM',
    );
    expect(r.status, r.stderr).toBe(42);
    expect(readFileSync(got, 'utf8')).toBe('TERM\n');
  });

  it('a secret pasted where a reference names the item is not echoed in the error', () => {
    for (const ref of [`entraclaw://${CANARY}`, `entraclaw://svc/${CANARY} x`, `entraclaw://${CANARY}/a/b`]) {
      const r = run(['--env', `TOKEN=${ref}`, '--', 'true']);
      expect(r.status).toBe(EXIT_CODES.usage);
      expect(r.stderr.toString()).toContain('TOKEN: the reference has');
      expect(r.stderr.toString()).not.toContain(CANARY);
    }
  });

  it('a SIGTERM that arrives as the command starts is passed on, not the death of entraclaw alone', () => {
    // The command signals entraclaw first thing: before the fix, entraclaw had no handler yet in ~40% of
    // such starts, died of it, and left the command running on unwatched. Ten starts make a miss certain.
    for (let i = 0; i < 10; i++) {
      // No pipes: the orphaned `sleep` would hold them, and spawnSync would wait for it.
      const r = spawnSync(NODE, [CLI, 'run', '--', 'sh', '-c', 'kill -TERM $PPID; sleep 5; exit 3'], {
        env,
        stdio: 'ignore',
        timeout: 20_000,
      });
      expect({ status: r.status, signal: r.signal }).toEqual({ status: 143, signal: null });
    }
  });

  it('forwards SIGINT sent to entraclaw alone (no terminal) exactly once', async () => {
    const ready = scratch('ready');
    const got = scratch('got');
    const script = `trap 'echo INT >> "${got}"' INT; touch "${ready}"; ${UNTIL_GOT(got)}`;
    const r = await runAsync(['--', 'sh', '-c', script], ready, 'SIGINT');
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(got, 'utf8')).toBe('INT\n');
  });

  it('Ctrl-C on a terminal reaches the child once, not once from the tty and again from us', async (ctx) => {
    requireOrSkip(ctx, linuxOnly('util-linux script(1), whose -qfec BSD script lacks'));
    // `script` gives entraclaw and its child a real pty as their controlling terminal; a ^C written to it
    // makes the kernel send SIGINT to the whole foreground process group.
    const ready = scratch('ready');
    const got = scratch('got');
    const child = `trap 'echo INT >> "${got}"' INT; touch "${ready}"; ${UNTIL_GOT(got)}`;
    const cmd = [CLI, 'run', ...STORE, '--', 'sh', '-c', child].map(shellQuote);
    // exec: the shell `script` starts must not stay between the pty and entraclaw (it would die of the ^C).
    const pty = spawn('script', ['-qfec', `exec ${cmd.join(' ')}`, '/dev/null'], {
      env,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    await waitFor(() => existsSync(ready), 'the child under a pty');
    pty.stdin.write('\x03');
    const status = await new Promise<number | null>((resolve) => pty.on('close', (code) => resolve(code)));
    expect({ status, got: readFileSync(got, 'utf8') }).toEqual({ status: 0, got: 'INT\n' });
  });

  it('a child that died of SIGINT: entraclaw dies of SIGINT too (a shell sees 130), not a plain exit 130', () => {
    const r = spawnSync(NODE, ['--', CLI, 'run', ...STORE, '--', 'sh', '-c', 'kill -INT $$'], {
      env,
      timeout: 30_000,
    });
    expect({ status: r.status, signal: r.signal }).toEqual({ status: null, signal: 'SIGINT' });
    const viaShell = spawnSync(
      'sh',
      [
        '-c',
        `${[NODE, '--', CLI, 'run', ...STORE].map(shellQuote).join(' ')} -- sh -c 'kill -INT $$'; echo "$?"`,
      ],
      {
        env,
        timeout: 30_000,
      },
    );
    expect(viaShell.stdout.toString()).toBe('130\n');
  });

  it('Ctrl-C stops a shell script at `entraclaw run`, as it stops it at the command run alone', async (ctx) => {
    requireOrSkip(ctx, linuxOnly('util-linux script(1), whose -qfec BSD script lacks'));
    // A shell that got SIGINT while waiting goes on with its script when its child exited (130 = "handled
    // it"), and stops when the child died of SIGINT (bash's wait-and-cooperative-exit; dash does the same).
    const ready = scratch('ready');
    const after = scratch('after');
    const cmd = [CLI, 'run', ...STORE, '--', 'sh', '-c', `touch "${ready}"; exec sleep 30`].map(shellQuote);
    const pty = spawn('script', ['-qfec', `${cmd.join(' ')}; touch ${shellQuote(after)}`, '/dev/null'], {
      env: { ...env, SHELL: '/bin/bash' },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    await waitFor(() => existsSync(ready), 'the child under a pty');
    pty.stdin.write('\x03');
    await new Promise((resolve) => pty.on('close', resolve));
    expect(existsSync(after)).toBe(false);
  });

  it('a child killed by the forwarded signal is 128 + the signal number', async () => {
    const ready = scratch('ready');
    const r = await runAsync(['--', 'sh', '-c', `touch "${ready}"; exec sleep 30`], ready, 'SIGTERM');
    expect(r.status).toBe(128 + 15);
  });

  it('does not hand ENTRACLAW_* variables to the child, but does hand everything else', () => {
    const out = scratch('env');
    const r = run(['--env', `T=entraclaw://${SVC}/me`, '--', 'sh', '-c', `env > '${out}'`], {
      ENTRACLAW_SOCKET: '/nowhere/agent.sock',
      ENTRACLAW_DEBUG: '1',
      KEEP_ME: 'yes',
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = readFileSync(out, 'utf8').split('\n');
    expect(lines.filter((l) => l.startsWith('ENTRACLAW_'))).toEqual([]);
    expect(lines).toContain('KEEP_ME=yes');
    expect(lines).toContain(`T=${CANARY}`);
  });

  it('a command that does not exist never runs and is an error saying so in words, not only an errno', () => {
    const r = run(['--', join(dir, 'no-such-command')]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(
      `entraclaw: cannot start ${join(dir, 'no-such-command')}: not found (ENOENT)\n`,
    );
    const bare = run(['--', 'no-such-command-xyz']);
    expect(bare.status).toBe(EXIT_CODES.usage);
    expect(bare.stderr).toContain(
      'entraclaw: cannot start no-such-command-xyz: not found in PATH (ENOENT)\n',
    );
  });

  it('a script whose #! interpreter is missing is named as such, not as a command missing from PATH', () => {
    const file = scratch('bad-interpreter');
    const interpreter = join(dir, 'no-such-interpreter');
    writeFileSync(file, `#!${interpreter} -x\necho ran\n`, { mode: 0o755 });
    const r = run(['--', file]);
    expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(
      `entraclaw: cannot start ${file}: the interpreter its #! line names, ${interpreter}, does not exist (ENOENT)\n  hint: fix the first line of ${file}, or install ${interpreter}\n`,
    );
    expect(r.stdout.toString()).toBe('');
  });

  it('a file that is not executable is a permission error with a hint to match, not "check PATH"', () => {
    const file = scratch('not-executable');
    writeFileSync(file, 'x', { mode: 0o644 });
    const r = run(['--', file]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`entraclaw: cannot start ${file}: permission denied (EACCES)\n`);
    expect(r.stderr).toContain(`chmod +x`);
    expect(r.stderr).not.toContain('check the command name and PATH');
    const missing = run(['--', join(dir, 'no-such-command')]);
    expect(missing.stderr).toContain('(ENOENT)\n  hint: check the command name and PATH\n');
  });
});

describe('entraclaw run: a secret too large for an environment variable', () => {
  it('is a usage error naming the variable and pointing at inject, not an internal error; the value is not shown', () => {
    // 200 000 bytes: within the 1 MiB a store takes, beyond the 128 KiB execve takes for one variable.
    const big = `BIG-${randomName('run')}-`.padEnd(200_000, 'x');
    setSecret(SVC, 'big', big);
    const m = marker();
    const r = run(['--env', `HUGE_ONE=entraclaw://${SVC}/big`, ...m.cmd]);
    expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('HUGE_ONE');
    expect(r.stderr).toContain('entraclaw inject');
    expect(r.stderr).not.toContain('internal error');
    expect(r.stderr).not.toContain(big.slice(0, 20));
    expect(m.started()).toBe(false);
  });
});

describe('entraclaw run: nothing starts unless every reference resolves', () => {
  it('a missing reference: exit 3, naming the variable, child never started', () => {
    const m = marker();
    const r = run([
      '--env',
      `TOKEN=entraclaw://${SVC}/me`,
      '--env',
      `MISSING_ONE=entraclaw://${SVC}/nobody`,
      ...m.cmd,
    ]);
    expect(r.status).toBe(EXIT_CODES.not_found);
    expect(m.started()).toBe(false);
    expect(r.stderr).toContain('MISSING_ONE');
    expect(r.stderr).toContain('not found');
    expect(r.stderr).not.toContain(CANARY);
  });

  it('the hint stores the missing item as printed, even for a name that starts with "-"', () => {
    const r = run(['--env', `DASHED=entraclaw://-dash-${SVC}/me`, '--', 'true']);
    expect(r.status).toBe(EXIT_CODES.not_found);
    const hint = /store it with: (entraclaw secret set .*)/.exec(r.stderr)?.[1];
    expect(hint).toBe(`entraclaw secret set -- -dash-${SVC} me`);
    const [, secret, set, ...rest] = hint!.split(' ');
    expect(runCli([secret!, set!, ...STORE, ...rest], env, 'stored').status).toBe(0);
    expect(run(['--env', `DASHED=entraclaw://-dash-${SVC}/me`, '--', 'true']).status).toBe(0);
  });

  it('names the variable from a .env file and from the environment, however the reference is spelled', () => {
    const file = scratch('.env');
    writeFileSync(file, `FROM_FILE=entraclaw://${SVC}/n%6Fbody\n`);
    const m1 = marker();
    const r1 = run(['--env-file', file, ...m1.cmd]);
    expect(r1.status).toBe(EXIT_CODES.not_found);
    expect(m1.started()).toBe(false);
    expect(r1.stderr).toContain('FROM_FILE');
    expect(r1.stderr).toContain('not found');

    const m2 = marker();
    const r2 = run(m2.cmd, { INHERITED: 'entraclaw://run%2Dsvc/nobody' });
    expect(r2.status).toBe(EXIT_CODES.not_found);
    expect(m2.started()).toBe(false);
    expect(r2.stderr).toContain('INHERITED');
  });

  it('an expired token: exit 6, child never started', () => {
    const m = marker();
    const r = run(['--env', `OLD=entraclaw://${SVC}/old`, ...m.cmd]);
    expect(r.status).toBe(EXIT_CODES.expired);
    expect(m.started()).toBe(false);
    expect(r.stderr).toContain('OLD');
    expect(r.stderr).toContain('expired');
    expect(r.stderr).not.toContain(CANARY);
    // run has no --allow-expired, so the hint must not offer it.
    expect(r.stderr).toContain(
      `hint: refresh it with: entraclaw secret set ${SVC} old --kind token --expires-at NEW_EXPIRY\n`,
    );
    expect(r.stderr).not.toContain('--allow-expired');
  });

  it('a malformed reference is a usage error (exit 2), child never started', () => {
    const m = marker();
    const r = run(['--env', 'BAD=entraclaw://only-one-part', ...m.cmd]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(m.started()).toBe(false);
    expect(r.stderr).toContain('BAD');
  });

  it('a reference behind a quote (a .env quote never closed, or quoted twice in --env) never runs as text', () => {
    const file = scratch('.env');
    writeFileSync(file, `OK=1\nTOKEN="entraclaw://${SVC}/me\nNEXT=2\n`);
    for (const args of [
      ['--env-file', file],
      ['--env', `TOKEN='entraclaw://${SVC}/me'`],
    ]) {
      const m = marker();
      const r = run([...args, ...m.cmd]);
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain('TOKEN: a quote before a reference is part of the value');
      expect(m.started()).toBe(false);
    }
  });

  it('a wrong vault passphrase (locked store) never starts the child', () => {
    const wrong = scratch('wrong-pass');
    writeFileSync(wrong, 'not the passphrase\n', { mode: 0o600 });
    const m = marker();
    const r = run(['--env', `T=entraclaw://${SVC}/me`, ...m.cmd], { ENTRACLAW_PASSPHRASE_FILE: wrong });
    expect(r.status).toBe(EXIT_CODES.locked);
    expect(m.started()).toBe(false);
    // The variable and the reference are named, as for not found and expired.
    expect(r.stderr).toMatch(new RegExp(`^entraclaw: T: entraclaw://${SVC}/me: wrong passphrase`));
  });
});

describe('entraclaw run: environment sanitising', () => {
  // PATH: a repository's .env must not pick which program receives the secrets.
  for (const name of [
    'LD_PRELOAD',
    'NODE_OPTIONS',
    'BASH_ENV',
    'LD_LIBRARY_PATH',
    'PATH',
    'GLIBC_TUNABLES',
  ]) {
    it(`a .env file that sets ${name} is a usage error and the child never starts`, () => {
      const file = scratch('.env');
      writeFileSync(file, `OK=1\n${name}=${join(dir, 'evil.so')}\n`);
      const m = marker();
      const r = run(['--env-file', file, ...m.cmd]);
      expect(r.status).toBe(EXIT_CODES.usage);
      expect(m.started()).toBe(false);
      expect(r.stderr).toContain(name);
    });
  }

  it('--env LD_PRELOAD=... and --env PATH=... are refused the same way', () => {
    for (const flag of ['LD_PRELOAD=/tmp/evil.so', `PATH=${dir}`]) {
      const m = marker();
      const r = run(['--env', flag, ...m.cmd]);
      expect(r.status).toBe(EXIT_CODES.usage);
      expect(m.started()).toBe(false);
      expect(r.stderr).toContain(`${flag.split('=')[0]} can change which code the command runs`);
    }
  });

  it('a reference filling an injection variable from the environment is refused', () => {
    const m = marker();
    const r = run(m.cmd, { BASH_ENV: `entraclaw://${SVC}/me` });
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(m.started()).toBe(false);
    expect(r.stderr).toContain('BASH_ENV');
    expect(r.stderr).not.toContain(CANARY);
  });

  it("the user's own injection variables pass through untouched", () => {
    const child = recordVar('PERL5LIB');
    const r = run(child.cmd, { PERL5LIB: '/opt/mine' });
    expect(r.status, r.stderr).toBe(0);
    expect(child.seen()).toBe('/opt/mine');
  });

  it('a .env NODE_OPTIONS never reaches entraclaw itself: the bin keeps node off --env-file', () => {
    // Node 20 reads `--env-file FILE` anywhere in argv and applies the file's NODE_OPTIONS to the very
    // process that is about to refuse it; the bin's shebang (`node --`) is what stops that.
    const ran = scratch('ran-inside-entraclaw');
    const evil = scratch('evil.cjs');
    writeFileSync(evil, `require('fs').writeFileSync(${JSON.stringify(ran)}, String(process.pid));\n`);
    const file = scratch('.env');
    writeFileSync(file, `NODE_OPTIONS=--require=${evil}\n`);
    const m = marker();
    for (const args of [['--env-file', file], [`--env-file=${file}`]]) {
      const r = spawnSync(CLI, ['run', ...STORE, ...args, ...m.cmd], { env, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain('NODE_OPTIONS');
      expect(existsSync(ran)).toBe(false);
      expect(m.started()).toBe(false);
    }
  });

  it('a missing --env-file is entraclaw usage error naming it, not a node error', () => {
    const m = marker();
    const missing = join(dir, 'no-such.env');
    const r = spawnSync(CLI, ['run', ...STORE, '--env-file', missing, ...m.cmd], { env, encoding: 'utf8' });
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^entraclaw: /);
    expect(r.stderr).toContain(missing);
    expect(m.started()).toBe(false);
  });

  it('a NUL in a .env value is a usage error naming the line, never echoing the value', () => {
    const file = scratch('.env');
    writeFileSync(file, `OK=1\nA=${CANARY}\0tail\n`);
    const m = marker();
    const r = run(['--env-file', file, ...m.cmd]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`${file}:2`);
    expect(r.stderr).not.toContain(CANARY);
    expect(m.started()).toBe(false);
  });

  it('a "#" glued to an unquoted .env value is a usage error naming the line: the command never starts with half of it', () => {
    const file = scratch('.env');
    writeFileSync(file, `OK=1\nexport DB_PASS=${CANARY}#tail\n`);
    const m = marker();
    const r = run(['--env-file', file, ...m.cmd]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`${file}:2: the value of DB_PASS has a "#" with no space before it`);
    expect(r.stderr).not.toContain(CANARY);
    expect(m.started()).toBe(false);
  });

  it('a .env file may not set ENTRACLAW_* variables', () => {
    const file = scratch('.env');
    writeFileSync(file, 'ENTRACLAW_SOCKET=/tmp/x\n');
    const m = marker();
    const r = run(['--env-file', file, ...m.cmd]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(m.started()).toBe(false);
  });
});

describe('entraclaw run --mask', () => {
  // --mask with T holding the canary, and the `--` before the command.
  const MASKED = ['--mask', '--env', `T=entraclaw://${SVC}/me`, '--'];
  /** `entraclaw run ARGS` as a child process whose stdout and stderr the test reads. */
  const spawnRun = (args: string[]) =>
    spawn(NODE, [CLI, 'run', ...STORE, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const write = (stream: 1 | 2, text: string) =>
    `require('fs').writeSync(${stream}, ${JSON.stringify(text)});`;

  it('hides the secret in stdout and stderr; the child still gets it', () => {
    const r = run([
      ...MASKED,
      NODE,
      '-e',
      `const t = process.env.T; ${write(1, 'out:')} require('fs').writeSync(1, t + ':' + t.length + '\\n'); ${write(2, 'err:')} require('fs').writeSync(2, t + '\\n');`,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`out:${MASK_TEXT}:${CANARY.length}\n`);
    expect(r.stderr).toBe(`err:${MASK_TEXT}\n`);
  });

  it('gives the command pipes it can reopen as /dev/stdout and /dev/stderr, as a shell would', () => {
    // `echo oops > /dev/stderr` and `tee /dev/stdout` open the path anew; on Linux that fails (ENXIO) when
    // the descriptor is a socket, which is what spawn's own 'pipe' is.
    const r = run([
      ...MASKED,
      'sh',
      '-c',
      'printf "out:%s\\n" "$T" > /dev/stdout && printf "err:%s\\n" "$T" > /dev/stderr && printf "tee:%s\\n" "$T" | tee /dev/stderr',
    ]);
    expect(r.stderr).toBe(`err:${MASK_TEXT}\ntee:${MASK_TEXT}\n`);
    expect(r.stdout.toString()).toBe(`out:${MASK_TEXT}\ntee:${MASK_TEXT}\n`);
    expect(r.status).toBe(0);
  });

  it('where stdout and stderr are one file (2>&1), keeps the order of the two and masks a secret split across them', () => {
    const path = scratch('both.log');
    const fd = openSync(path, 'w');
    const script = `
      const fs = require('fs');
      const t = process.env.T;
      fs.writeSync(1, '<' + t.slice(0, 5)); fs.writeSync(2, t.slice(5) + '>\\n');
      for (let i = 0; i < 2000; i++) fs.writeSync(1 + (i % 2), i + '\\n');`;
    const r = spawnSync(NODE, ['--', CLI, 'run', ...STORE, ...MASKED, NODE, '-e', script], {
      env,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    expect(r.status).toBe(0);
    const [first, ...lines] = readFileSync(path, 'utf8').split('\n');
    expect(first).toBe(`<${MASK_TEXT}>`);
    expect(lines).toEqual([...Array.from({ length: 2000 }, (_, i) => String(i)), '']);
  });

  it('hides the secret when the child writes it one byte at a time', () => {
    // A pause between bytes makes each one its own read() on the pipe.
    const script = `
      const fs = require('fs');
      const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
      for (const fd of [1, 2]) {
        for (const b of Buffer.from('<' + process.env.T + '>\\n')) { fs.writeSync(fd, Buffer.from([b])); pause(2); }
      }`;
    const r = run([...MASKED, NODE, '-e', script]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`<${MASK_TEXT}>\n`);
    expect(r.stderr).toBe(`<${MASK_TEXT}>\n`);
  });

  it('masks every resolved secret, including ones from inherited variables, and keeps the exit status', () => {
    const r = run(
      ['--mask', '--env', `A=entraclaw://${SVC}/me`, '--', 'sh', '-c', 'echo "$A $B"; echo "$B" >&2; exit 3'],
      { B: `entraclaw://${SVC}/other` },
    );
    expect(r.status).toBe(3);
    expect(r.stdout.toString()).toBe(`${MASK_TEXT} ${MASK_TEXT}\n`);
    expect(r.stderr).toBe(`${MASK_TEXT}\n`);
  });

  it('a reader that stops early (`| head -1`) ends the command with SIGPIPE, as without --mask', async () => {
    for (const mask of [true, false]) {
      const proc = spawnRun([
        ...(mask ? ['--mask'] : []),
        '--env',
        `T=entraclaw://${SVC}/me`,
        '--',
        'sh',
        '-c',
        'while :; do echo "line $T"; done',
      ]);
      let stderr = '';
      proc.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const first = await new Promise<string>((resolve) =>
        proc.stdout.once('data', (d: Buffer) => resolve(d.toString())),
      );
      proc.stdout.destroy();
      const status = await new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
      expect(first).toContain(mask ? `line ${MASK_TEXT}` : `line ${CANARY}`);
      expect(status, stderr).toBe(128 + 13);
      expect(stderr).not.toContain('EPIPE');
    }
  });

  it('returns with the command: a process it left in the background does not keep run waiting', () => {
    const g = scratch('grandchild');
    const r = run([
      ...MASKED,
      'sh',
      '-c',
      `sleep 60 & echo $! > '${g}'; echo "started $T"; echo "err $T" >&2; exit 3`,
    ]);
    const grandchild = Number(readFileSync(g, 'utf8'));
    try {
      expect({ status: r.status, grandchildRunning: running(grandchild) }).toEqual({
        status: 3,
        grandchildRunning: true,
      });
      expect(r.stdout.toString()).toBe(`started ${MASK_TEXT}\n`);
      expect(r.stderr).toBe(`err ${MASK_TEXT}\n`);
    } finally {
      killIfRunning(grandchild);
    }
  });

  it('still passes on, masked, all a command wrote just before it exited, though the pipe stays open', async () => {
    // 1 MiB in blocking writes, the last secret split across the last two, then exit at once.
    const g = scratch('grandchild');
    const script = `
      const fs = require('fs');
      const put = (text) => {
        const b = Buffer.from(text);
        for (let at = 0; at < b.length; ) {
          try { at += fs.writeSync(1, b, at); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
        }
      };
      const t = process.env.T;
      let out = '';
      for (let i = 0; out.length < 1 << 20; i++) out += 'x'.repeat(i % 5000) + t + '\\n';
      put(out + t.slice(0, 5));
      put(t.slice(5) + '.');
      process.exit(4);`;
    const proc = spawnRun([
      ...MASKED,
      'sh',
      '-c',
      `sleep 60 & echo $! > '${g}'; exec "$0" -e "$1"`,
      NODE,
      script,
    ]);
    const status = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
    const chunks: Buffer[] = [];
    proc.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    try {
      const ended = await Promise.race([status, sleep(30_000).then(() => 'still running')]);
      let written = '';
      for (let i = 0; written.length < 1 << 20; i++) written += `${'x'.repeat(i % 5000)}${CANARY}\n`;
      const expected = `${written}${CANARY}.`.replaceAll(CANARY, MASK_TEXT);
      const out = Buffer.concat(chunks).toString();
      expect({ ended, length: out.length, same: out === expected, leaked: out.includes(CANARY) }).toEqual({
        ended: 4,
        length: expected.length,
        same: true,
        leaked: false,
      });
      expect(running(Number(readFileSync(g, 'utf8')))).toBe(true);
    } finally {
      proc.kill('SIGKILL');
      if (existsSync(g)) killIfRunning(Number(readFileSync(g, 'utf8')));
    }
  });

  it('does not show the start of a secret left last in a pipe that stays open', () => {
    // Run cannot know whether the rest would have followed, so those bytes are withheld.
    const g = scratch('grandchild');
    const r = run([...MASKED, 'sh', '-c', `sleep 60 & echo $! > '${g}'; printf 'out:%.12s' "$T"; exit 3`]);
    const grandchild = Number(readFileSync(g, 'utf8'));
    try {
      expect({ status: r.status, stdout: r.stdout.toString() }).toEqual({ status: 3, stdout: 'out:' });
    } finally {
      killIfRunning(grandchild);
    }
  });

  it("a signal after the command exited ends run at once with the command's status", async () => {
    // The command leaves `yes` flooding its stdout, and nobody reads run's stdout: run can neither finish
    // passing the output on nor find the pipe quiet, so only the signal can end it.
    const g = scratch('grandchild');
    const c = scratch('child');
    const proc = spawnRun([
      ...MASKED,
      'sh',
      '-c',
      `yes "tick $T" & echo $! > '${g}'; echo $$ > '${c}.tmp' && mv '${c}.tmp' '${c}'; exit 3`,
    ]);
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const status = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
    try {
      await waitFor(() => existsSync(c), 'the command');
      const child = Number(readFileSync(c, 'utf8'));
      // Reaped means run has seen the exit: the signal comes after it.
      await waitFor(() => processState(child) === undefined, 'run to reap the command');
      proc.kill('SIGTERM');
      const ended = await Promise.race([status, sleep(30_000).then(() => 'still running')]);
      expect(ended, stderr).toBe(3);
      expect(stderr).toBe('');
    } finally {
      proc.kill('SIGKILL');
      if (existsSync(g)) killIfRunning(Number(readFileSync(g, 'utf8')));
    }
  });

  it('shows a line at once when nothing at its end could begin a secret (a server waiting after "listening")', async () => {
    // The command prints a line, then waits on stdin: the line must reach us while it waits, not only
    // when more output or the command's end shows that no secret followed.
    const proc = spawn(
      NODE,
      [
        CLI,
        'run',
        ...STORE,
        ...MASKED,
        'sh',
        '-c',
        `echo 'listening on :8080'; printf 'T=%.3s' "$T"; read x; echo "$x $T"`,
      ],
      { env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const status = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
    try {
      await waitFor(() => stdout.includes('T='), 'the output while the command waits');
      // The first 3 bytes of the secret could begin it: held back while the command waits.
      expect(stdout).toBe('listening on :8080\nT=');
      proc.stdin.end('bye\n');
      expect(await status).toBe(0);
      expect(stdout).toBe(`listening on :8080\nT=${CANARY.slice(0, 3)}bye ${MASK_TEXT}\n`);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  it('says which variables it cannot mask (a secret under 4 bytes) instead of passing them silently', () => {
    setSecret(SVC, 'pin', '739');
    const r = run([
      ...MASKED.slice(0, -1),
      '--env',
      `PIN=entraclaw://${SVC}/pin`,
      '--',
      'sh',
      '-c',
      'printf "%s %s" "$PIN" "$T"',
    ]);
    expect({ status: r.status, stdout: r.stdout.toString() }).toEqual({
      status: 0,
      stdout: `739 ${MASK_TEXT}`,
    });
    expect(r.stderr).toBe(
      'entraclaw: warning: --mask does not mask PIN: a secret shorter than 4 bytes is not masked (it occurs by chance in ordinary output)\n',
    );
  });

  it('without --mask the child writes the secret as it likes', () => {
    const r = run(['--env', `T=entraclaw://${SVC}/me`, '--', 'sh', '-c', 'printf %s "$T"']);
    expect(r.stdout.toString()).toBe(CANARY);
  });
});

/** Process `pid`'s state letter (Z: a zombie, not yet reaped), or undefined once it is gone. */
function processState(pid: number): string | undefined {
  // macOS has no /proc: ps says the same there.
  if (process.platform !== 'linux') {
    const ps = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' });
    return ps.status === 0 ? ps.stdout.trim()[0] : undefined;
  }
  try {
    // The state follows the command name, which is in parentheses and may itself hold spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0];
  } catch {
    return undefined;
  }
}

/** Whether process `pid` exists and is not a zombie. */
function running(pid: number): boolean {
  const state = processState(pid);
  return state !== undefined && state !== 'Z';
}

/** Ends a process the test left behind, if it is still there. */
function killIfRunning(pid: number): void {
  if (running(pid)) process.kill(pid, 'SIGKILL');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Shell that runs until its INT trap has written to `got` (at most 15 s), then half a second more, in which
 * a second delivery would show: not for a fixed second, which a loaded machine could let pass before the
 * signal came.
 */
const UNTIL_GOT = (got: string) =>
  `i=0; while [ ! -s "${got}" ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; sleep 0.5`;

/** Runs `entraclaw run ARGS`, waits for the child to create `ready`, then sends `signal` to entraclaw. */
function runAsync(
  args: string[],
  ready: string,
  signal: NodeJS.Signals,
): Promise<{ status: number | null; stderr: string }> {
  const proc = spawn(NODE, [CLI, 'run', ...STORE, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const deadline = Date.now() + 20_000;
  const poll = setInterval(() => {
    if (existsSync(ready)) {
      clearInterval(poll);
      proc.kill(signal);
    } else if (Date.now() > deadline) {
      clearInterval(poll);
      proc.kill('SIGKILL');
    }
  }, 20);
  return new Promise((resolve) => {
    proc.on('close', (status) => {
      clearInterval(poll);
      resolve({ status, stderr });
    });
  });
}
