import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { waitFor } from '../support/broker.js';
import { CLI, isolatedEnv, runCli, runCliInPty } from '../support/cli.js';
import {
  describeIfProvided,
  inTestSession,
  linuxOnly,
  randomName,
  requireOrSkip,
  rootOnly,
} from '../support/context.js';

// The CLI as a user meets it: real processes, real stores, and a canary that must never leak.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-cli-'));
const pass = join(dir, 'pass');
writeFileSync(pass, 'cli test passphrase\n', { mode: 0o600 });
const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass });
const CANARY = `CANARY-${randomName('secret')}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stores = ['encrypted-file', 'kernel-keyring', ...(inTestSession ? ['secret-service'] : [])];

for (const store of stores) {
  const missing = store === 'kernel-keyring' ? linuxOnly('the kernel keyring') : undefined;
  describeIfProvided(`entraclaw secret on ${store}`, missing, () => {
    const service = randomName('cli-svc');
    const s = ['--store', store];
    afterAll(() => {
      for (const a of ['acct', 'tok', 'bin']) runCli(['secret', 'rm', service, a, ...s], env);
    });

    it('set from stdin, get raw bytes without a newline, ls shows metadata only', () => {
      const set = runCli(['secret', 'set', service, 'acct', ...s], env, CANARY);
      expect(set.status, set.stderr).toBe(0);
      expect(set.stderr).toContain(`in ${store}`);
      const get = runCli(['secret', 'get', service, 'acct', ...s], env);
      expect(get.status).toBe(0);
      expect(get.stdout.toString()).toBe(CANARY);
      const ls = runCli(['secret', 'ls', '--service', service, ...s], env);
      expect(ls.status).toBe(0);
      expect(ls.stdout.toString()).toContain('acct');
      const lsJson = runCli(['secret', 'ls', '--json', ...s], env);
      for (const out of [ls.stdout.toString(), ls.stderr, lsJson.stdout.toString(), set.stderr, get.stderr])
        expect(out).not.toContain(CANARY);
    });

    it('binary values survive --from-file and --json gives base64', () => {
      const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]);
      const f = join(dir, `bin-${store}`);
      writeFileSync(f, bytes);
      expect(
        runCli(['secret', 'set', service, 'bin', '--from-file', f, '--kind', 'key', ...s], env).status,
      ).toBe(0);
      expect(runCli(['secret', 'get', service, 'bin', ...s], env).stdout.equals(bytes)).toBe(true);
      const j = JSON.parse(runCli(['secret', 'get', service, 'bin', '--json', ...s], env).stdout.toString());
      expect(j).toMatchObject({
        service,
        account: 'bin',
        kind: 'key',
        store,
        value_base64: bytes.toString('base64'),
      });
    });

    it('an expired token is exit 6 unless --allow-expired', () => {
      const past = new Date(Date.now() - 60_000).toISOString();
      const set = runCli(
        [
          'secret',
          'set',
          service,
          'tok',
          '--kind',
          'token',
          '--expires-at',
          past,
          '--scope',
          'repo',
          '--label',
          'CI token',
          ...s,
        ],
        env,
        CANARY,
      );
      expect(set.status, set.stderr).toBe(0);
      expect(set.stderr).toContain('has passed: the item is stored already expired (reads exit 6)');
      const get = runCli(['secret', 'get', service, 'tok', ...s], env);
      expect(get.status).toBe(EXIT_CODES.expired);
      expect(get.stdout.length).toBe(0);
      expect(get.stderr).toContain(`${service}/tok`);
      expect(get.stderr).toContain('--allow-expired');
      // Followed as given, the refresh keeps the token a token with its scope and an expiry (a set
      // replaces the whole item): `entraclaw secret set S tok` alone would store a password forever.
      expect(get.stderr).toContain(
        `refresh it with \`entraclaw secret set ${service} tok --kind token --expires-at NEW_EXPIRY --scope repo\``,
      );
      expect(get.stderr).not.toContain(CANARY);
      expect(runCli(['secret', 'get', service, 'tok', '--allow-expired', ...s], env).stdout.toString()).toBe(
        CANARY,
      );
      // A plain set over it stores a plain password and says which metadata that dropped.
      const plain = runCli(['secret', 'set', service, 'tok', ...s], env, CANARY);
      expect(plain.status, plain.stderr).toBe(0);
      expect(plain.stderr).toContain(
        `note: the value it replaced had kind token, expiry ${past}, scope repo, label "CI token";`,
      );
      expect(plain.stderr).not.toContain(CANARY);
      const again = runCli(['secret', 'set', service, 'tok', ...s], env, CANARY);
      expect(again.stderr).not.toContain('the value it replaced');
      // A rotation that gives only some metadata (`--kind token`) says which of the rest it dropped.
      const future = new Date(Date.now() + 86_400_000).toISOString();
      const full = ['--kind', 'token', '--expires-at', future, '--scope', 'repo', '--label', 'CI token'];
      expect(runCli(['secret', 'set', service, 'tok', ...full, ...s], env, CANARY).status).toBe(0);
      const rotated = runCli(['secret', 'set', service, 'tok', '--kind', 'token', ...s], env, CANARY);
      expect(rotated.status, rotated.stderr).toBe(0);
      expect(rotated.stderr).toContain(
        `note: the value it replaced had expiry ${future}, scope repo, label "CI token"; this one has none of them (`,
      );
      expect(rotated.stderr).not.toContain('kind token');
      expect(rotated.stderr).not.toContain(CANARY);
    });

    it('missing items are exit 3 naming the item and the store', () => {
      const get = runCli(['secret', 'get', service, 'nobody', ...s], env);
      expect(get.status).toBe(EXIT_CODES.not_found);
      expect(get.stderr).toContain(`${service}/nobody`);
      expect(get.stderr).toContain(store);
      expect(runCli(['secret', 'rm', service, 'nobody', ...s], env).status).toBe(EXIT_CODES.not_found);
    });
  });
}

describe('command-line mistakes caught by the parser', () => {
  it.each([
    [['clients', '--bogus'], "unknown option '--bogus'"],
    [['shim', 'install'], "missing required argument 'dir'"],
    [['nosuch'], "unknown command 'nosuch'"],
    // A suggestion stays on the line (no escaped newline); a value typed after `=` is not repeated.
    [['secrets', 'ls'], "unknown command 'secrets' (Did you mean secret?)"],
    [
      ['secret', 'set', 'svc', 'acct', `--value=${CANARY}`],
      "unknown option '--value=…' (its value is not shown)",
    ],
    [['secret', 'set', 'svc', 'acct', `-w${CANARY}`], "unknown option '-w…' (the rest is not shown)"],
    [['secret', 'get', '-svc', 'acct'], "unknown option '-s…' (the rest is not shown)"],
    [['secret', 'rm', 'svc', '-acct'], "unknown option '-a…' (the rest is not shown)"],
  ])('%j: exit 2 in the usual "entraclaw: ... / hint:" shape', (args, message) => {
    const r = runCli(args, env);
    expect(r.status).toBe(EXIT_CODES.usage);
    // Where the arguments are a service and an account, one starting with "-" may be meant as a name.
    const hint =
      /^-/.test(message.replace(/^unknown option '/, '')) && args[0] === 'secret'
        ? 'a SERVICE or ACCOUNT that starts with "-" goes after --, e.g. entraclaw secret get -- -name ACCOUNT; otherwise run the command with --help for its usage'
        : 'run the command with --help for its usage';
    expect(r.stderr).toBe(`entraclaw: ${message}\n  hint: ${hint}\n`);
  });

  it('run --env without NAME= names which one, and not its text (it may be the secret itself)', () => {
    const r = runCli(['run', '--env', 'A=b', '--env', CANARY, '--', 'true'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('--env number 2 is not NAME=VALUE (it has no "="; its text is not shown)');
    expect(r.stderr).not.toContain(CANARY);
  });

  it('with --json the error is JSON too', () => {
    const r = runCli(['clients', '--json', '--bogus'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(JSON.parse(r.stderr)).toEqual({
      error: {
        code: 'usage',
        message: "unknown option '--bogus'",
        hint: 'run the command with --help for its usage',
      },
    });
  });
});

describe('secret ls --service ""', () => {
  it('is a usage error, not "every service"', () => {
    const r = runCli(['secret', 'ls', '--service', '', '--store', 'encrypted-file'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('service must not be empty');
  });

  it('is said before the store is opened: no vault passphrase is asked for, and it is not "locked"', () => {
    const e = isolatedEnv(mkdtempSync(join(dir, 'ls-filter-')), { ENTRACLAW_PASSPHRASE_FILE: pass });
    expect(runCli(['secret', 'set', 'svc', 'acct', '--store', 'encrypted-file'], e, 'v').status).toBe(0);
    const { ENTRACLAW_PASSPHRASE_FILE: _, ...noPassphrase } = e;
    for (const service of ['', 'two\nlines']) {
      const r = runCli(['secret', 'ls', '--service', service, '--store', 'encrypted-file'], noPassphrase);
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toMatch(/service must not (be empty|contain NUL or newline)/);
      expect(r.stderr).not.toContain('passphrase');
    }
  });
});

describe('an unknown store name', () => {
  it('is a usage error naming where it came from, for doctor as for secret', () => {
    for (const args of [
      ['doctor', '--store', 'bogus'],
      ['secret', 'ls', '--store', 'bogus'],
    ]) {
      const r = runCli(args, env);
      expect(r.status, args.join(' ')).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain('entraclaw: unknown store "bogus" (from --store)');
      expect(r.stderr).toContain('hint: valid stores: auto, ');
    }
    const fromEnv = runCli(['doctor'], { ...env, ENTRACLAW_STORE: 'bogus' });
    expect(fromEnv.status).toBe(EXIT_CODES.usage);
    expect(fromEnv.stderr).toContain('(from ENTRACLAW_STORE)');
  });

  it('an empty ENTRACLAW_STORE means unset (auto)', () => {
    const r = runCli(['doctor', '--json'], { ...env, ENTRACLAW_STORE: '' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString()).requested).toBe('auto');
  });
});

describe('a named store that cannot be used', () => {
  it.each(['systemd-creds', 'macos-keychain'])('--store %s: exit 5, the store named, a hint', (store) => {
    const r = runCli(['secret', 'get', 'svc', 'acct', '--store', store], env);
    expect(r.status).toBe(EXIT_CODES.unavailable);
    expect(r.stderr).toMatch(new RegExp(`^entraclaw: store "?${store}"?`));
    expect(r.stderr).toContain('hint: run `entraclaw doctor`');
  });
});

describe('entraclaw secret: bad input', () => {
  it('usage errors are exit 2 and never echo the value', () => {
    const bad = runCli(
      ['secret', 'set', 'svc', 'acct', '--store', 'encrypted-file', '--expires-at', 'tomorrow'],
      env,
      CANARY,
    );
    expect(bad.status).toBe(EXIT_CODES.usage);
    expect(bad.stderr).toContain('--expires-at');
    expect(bad.stderr).not.toContain(CANARY);
    expect(runCli(['secret', 'set', 'svc'], env).status).toBe(2);
    // `--expires-at "$(date --rfc-3339=seconds)"`: what to write instead, ready to paste.
    const spaced = runCli(
      [
        'secret',
        'set',
        'svc',
        'acct',
        '--store',
        'encrypted-file',
        '--expires-at',
        '2030-06-01 12:00:00+02:00',
      ],
      env,
      CANARY,
    );
    expect(spaced.status).toBe(EXIT_CODES.usage);
    expect(spaced.stderr.toString()).toBe(
      'entraclaw: --expires-at "2030-06-01 12:00:00+02:00" has a space between the date and the time\n' +
        '  hint: write a T there: 2030-06-01T12:00:00+02:00\n',
    );
    expect(runCli(['secret', 'get', 'svc', 'acct', '--store', 'nope'], env).stderr).toContain('valid stores');
    expect(
      runCli(['secret', 'set', 'svc', 'acct', '--store', 'encrypted-file', '--kind', 'bogus'], env, 'x')
        .status,
    ).toBe(2);
  });

  it('argument slips get a hint saying what to do: the value as a third argument (not echoed), SERVICE/ACCOUNT as one word, a template given to inject without -i', () => {
    const r = runCli(['secret', 'set', 'svc', 'acct', CANARY, '--store', 'encrypted-file'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).not.toContain(CANARY);
    expect(r.stderr).toContain(
      'hint: the value is never an argument (every process of yours can read argv): pipe it on stdin',
    );
    for (const cmd of ['get', 'set', 'rm']) {
      const one = runCli(['secret', cmd, 'github.com/me'], env, 'x');
      expect(one.status).toBe(EXIT_CODES.usage);
      expect(one.stderr).toContain('hint: give the service and the account as two arguments: github.com me');
    }
    // `--expires-at 2030-06-01 12:00Z` unquoted: the time is the third argument, not a value.
    for (const split of [
      ['--expires-at', '2030-06-01', '12:00Z'],
      ['--expires-at=2030-06-01', '12:00:00+02:00'],
    ]) {
      const r = runCli(['secret', 'set', '--store', 'encrypted-file', ...split, 'svc', 'acct'], env, 'x');
      expect(r.status).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain('hint: a time in --expires-at joins its date with T, not a space');
    }
    const inject = runCli(['inject', 'config.tmpl'], env);
    expect(inject.status).toBe(EXIT_CODES.usage);
    expect(inject.stderr).toContain('hint: give the template with -i FILE (or on stdin)');
  });

  it('a label or scope over 1024 bytes is refused (the daemon could not hand the item out); nothing is stored', () => {
    for (const flag of ['--label', '--scope']) {
      const r = runCli(
        ['secret', 'set', 'svc', 'long', '--store', 'encrypted-file', flag, 'L'.repeat(1025)],
        env,
        CANARY,
      );
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain(`${flag.slice(2)} is longer than 1024 bytes`);
    }
    expect(runCli(['secret', 'get', 'svc', 'long', '--store', 'encrypted-file'], env).status).toBe(
      EXIT_CODES.not_found,
    );
  });

  it('an empty value is refused and a value over 1 MiB is too large; nothing is stored', () => {
    expect(runCli(['secret', 'set', 'svc', 'empty', '--store', 'encrypted-file'], env, '').status).toBe(2);
    const big = runCli(
      ['secret', 'set', 'svc', 'big', '--store', 'encrypted-file'],
      env,
      Buffer.alloc(1024 * 1024 + 1, 0x41),
    );
    expect(big.status).toBe(EXIT_CODES.too_large);
    expect(big.stderr).toContain('1048576');
    expect(runCli(['secret', 'get', 'svc', 'big', '--store', 'encrypted-file'], env).status).toBe(
      EXIT_CODES.not_found,
    );
  });

  it('a --from-file that is empty, missing or fails to read is exit 2 naming it; stdin is not read instead', () => {
    const cases: [string, RegExp][] = [
      ['', /--from-file was given an empty path/],
      [join(dir, 'no-such-file'), /cannot read .*no-such-file: ENOENT/],
      // Opens fine (mode 0444, for any user), then every read fails (EINVAL: lo has no link speed): the
      // file's fault, not an internal error. Not /proc/self/mem: the CLI is not dumpable, so only root opens it.
      ['/sys/class/net/lo/speed', /cannot read \/sys\/class\/net\/lo\/speed: EINVAL/],
    ];
    for (const [file, message] of cases) {
      const r = runCli(
        ['secret', 'set', 'svc', 'ff', '--store', 'encrypted-file', '--from-file', file],
        env,
        CANARY,
      );
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain('hint: check the path given to --from-file');
    }
    expect(runCli(['secret', 'get', 'svc', 'ff', '--store', 'encrypted-file'], env).status).toBe(
      EXIT_CODES.not_found,
    );
  });

  it('a value ending in a newline (echo, an editor) is stored as given, with a note saying so', () => {
    const file = join(dir, 'with-newline');
    writeFileSync(file, `${CANARY}\n`);
    const set = (args: string[], input?: string) =>
      runCli(['secret', 'set', 'svc', 'nl', '--store', 'encrypted-file', ...args], env, input);
    for (const r of [
      set([], `${CANARY}\n`),
      set(['--from-file', file]),
      set(['--from-file', '-'], `${CANARY}\n`),
    ]) {
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain('note: the value ends with a newline');
      expect(r.stderr).not.toContain(CANARY);
      expect(runCli(['secret', 'get', 'svc', 'nl', '--store', 'encrypted-file'], env).stdout.toString()).toBe(
        `${CANARY}\n`,
      );
    }
    const plain = set([], CANARY);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stderr).not.toContain('newline');
    const empty = join(dir, 'empty-value');
    writeFileSync(empty, '');
    const r = set(['--from-file', empty]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`refusing to store an empty value for svc/nl: ${empty} is empty`);
    expect(r.stderr).toContain('hint: put the value in the file, or pipe it on stdin');
  });

  it('--passphrase-file takes a pipe, as from a password manager, even one slow to write', () => {
    const { ENTRACLAW_PASSPHRASE_FILE: _p, ...noPass } = env;
    const r = spawnSync(
      'bash',
      [
        '-c',
        `printf %s "$VALUE" | "$NODE" -- "$CLI" secret set svc piped --store encrypted-file --passphrase-file <(sleep 0.3; printf 'cli test passphrase\\n')`,
      ],
      { env: { ...noPass, NODE: process.execPath, CLI, VALUE: CANARY }, timeout: 30_000 },
    );
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(
      runCli(['secret', 'get', 'svc', 'piped', '--store', 'encrypted-file'], env).stdout.toString(),
    ).toBe(CANARY);
    // doctor checks the passphrase and then opens the vault with it: one pipe serves both.
    const doctor = spawnSync(
      'bash',
      ['-c', `ENTRACLAW_PASSPHRASE_FILE=<(printf 'cli test passphrase\\n') "$NODE" -- "$CLI" doctor --json`],
      { env: { ...noPass, NODE: process.execPath, CLI }, timeout: 30_000 },
    );
    const stores = JSON.parse(doctor.stdout.toString()).stores as { name: string; available: boolean }[];
    expect(stores.find((x) => x.name === 'encrypted-file')).toMatchObject({ available: true });
  });

  it('a write waiting on the vault lock says who holds it, then stores once the holder is done', async (ctx) => {
    requireOrSkip(ctx, linuxOnly('flock(1) and /proc/locks'));
    // util-linux flock(1) holds the lock for as long as its cat runs: until its stdin closes.
    const lock = join(env.XDG_DATA_HOME!, 'entraclaw', 'vault.lock');
    mkdirSync(join(env.XDG_DATA_HOME!, 'entraclaw'), { recursive: true, mode: 0o700 });
    const holder = spawn('flock', [lock, 'cat'], { stdio: ['pipe', 'ignore', 'inherit'] });
    await waitFor(() => readFileSync('/proc/locks', 'utf8').includes(` ${holder.pid} `), 'flock(1) to lock');
    const writer = spawn(
      process.execPath,
      ['--', CLI, 'secret', 'set', 'svc', 'waited', '--store', 'encrypted-file'],
      {
        env,
        stdio: ['pipe', 'ignore', 'pipe'],
      },
    );
    writer.stdin.end(CANARY);
    let stderr = '';
    writer.stderr.on('data', (d) => {
      stderr += d;
    });
    await waitFor(() => stderr.includes('waiting for'), 'the writer to say it waits');
    expect(stderr).toBe(
      `entraclaw: waiting for ${lock}, held by pid ${holder.pid} (flock); gives up after 30 s\n`,
    );
    holder.stdin.end();
    const [code] = await once(writer, 'exit');
    expect(code, stderr).toBe(0);
    expect(
      runCli(['secret', 'get', 'svc', 'waited', '--store', 'encrypted-file'], env).stdout.toString(),
    ).toBe(CANARY);
  });

  it('an encrypted systemd credential given as the passphrase file is refused, and no vault is made with it', (ctx) => {
    const fresh = isolatedEnv(mkdtempSync(join(dir, 'cred-pass-')));
    const cred = join(fresh.HOME!, 'passphrase.cred');
    mkdirSync(fresh.HOME!, { recursive: true });
    // systemd-creds needs root (and the systemd package) for the host key.
    const enc = spawnSync(
      'systemd-creds',
      ['encrypt', '--with-key=host', '--name=entraclaw.passphrase', '-', cred],
      {
        input: 'a long enough passphrase\n',
        encoding: 'utf8',
      },
    );
    requireOrSkip(
      ctx,
      enc.status === 0
        ? undefined
        : (rootOnly('systemd-creds encrypt --with-key=host (the host key is readable by root alone)') ??
            `systemd-creds encrypt --with-key=host fails here: ${(enc.stderr || enc.error?.message || '').trim()}`),
    );
    chmodSync(cred, 0o600);
    const r = runCli(
      ['secret', 'set', 'svc', 'a', '--store', 'encrypted-file', '--passphrase-file', cred],
      fresh,
      CANARY,
    );
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(
      `${cred} (from --passphrase-file) is an encrypted systemd credential, not the passphrase`,
    );
    expect(r.stderr).toContain('LoadCredentialEncrypted=');
    expect(existsSync(join(resolvePaths(fresh).data, 'vault.ecv'))).toBe(false);
  });

  it('the past --expires-at warning comes only once the item is stored', () => {
    const { ENTRACLAW_PASSPHRASE_FILE: _p, ...noPass } = env;
    const past = '2020-01-01T00:00:00Z';
    const args = [
      'secret',
      'set',
      'svc',
      'old',
      '--store',
      'encrypted-file',
      '--kind',
      'token',
      '--expires-at',
      past,
    ];
    const failed = runCli(args, noPass, CANARY);
    expect(failed.status).toBe(EXIT_CODES.locked);
    expect(failed.stderr).not.toContain('stored already expired');
    const stored = runCli(args, env, CANARY);
    expect(stored.status, stored.stderr).toBe(0);
    expect(stored.stderr).toContain('stored already expired');
  });

  it('a named store that is unavailable is exit 5 with the reason; no silent fallback', () => {
    const r = runCli(['secret', 'get', 'svc', 'acct', '--store', 'systemd-creds'], env);
    expect(r.status).toBe(EXIT_CODES.unavailable);
    expect(r.stderr).toContain('CREDENTIALS_DIRECTORY');
  });

  it('kernel-keyring from a session that does not possess @u is exit 5 (unavailable, as doctor says), not denied', (ctx) => {
    requireOrSkip(ctx, linuxOnly('keyctl and the kernel keyring'));
    // `keyctl session -` runs the CLI with a fresh anonymous session keyring that does not link @u.
    const inFreshSession = (args: string[]) =>
      spawnSync('keyctl', ['session', '-', process.execPath, '--', CLI, ...args], { env, input: CANARY });
    for (const args of [
      ['secret', 'get', 'svc', 'acct'],
      ['secret', 'set', 'svc', 'acct'],
    ]) {
      const r = inFreshSession([...args, '--store', 'kernel-keyring']);
      const stderr = r.stderr.toString();
      expect(r.status, stderr).toBe(EXIT_CODES.unavailable);
      expect(stderr).toContain('store kernel-keyring: this process does not possess the user keyring');
      expect(stderr).toContain('keyctl link @u @s');
      expect(stderr).not.toContain(CANARY);
    }
  });

  it('the vault without a passphrase is exit 5 (locked) and says how to unlock', () => {
    const { ENTRACLAW_PASSPHRASE_FILE: _p, ...noPass } = env;
    const r = runCli(['secret', 'ls', '--store', 'encrypted-file'], noPass);
    expect(r.status).toBe(EXIT_CODES.locked);
    expect(r.stderr).toMatch(/passphrase/);
  });

  it('auto with no store usable (no bus, a vault without its passphrase) says how to unlock the vault, not only "run doctor"', () => {
    const { ENTRACLAW_PASSPHRASE_FILE: _p, ...noPass } = env;
    const noBus = { ...noPass, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}` };
    // A vault that exists, so auto's last store fails to open rather than waiting to be created.
    expect(
      runCli(['secret', 'set', 'unlock-hint', 'acct', '--store', 'encrypted-file'], env, 'v').status,
    ).toBe(0);
    const r = runCli(['secret', 'get', 'unlock-hint', 'acct'], noBus);
    expect(r.status).toBe(EXIT_CODES.unavailable);
    expect(r.stderr).toContain('no usable store: secret-service (');
    expect(r.stderr).toContain(
      'hint: for encrypted-file: give --passphrase-file FILE, set ENTRACLAW_PASSPHRASE_FILE=FILE',
    );
    expect(r.stderr).toContain('or run `entraclaw doctor` to see what each store needs');
  });

  it('doctor lists every store and never prints a value', () => {
    runCli(['secret', 'set', 'doctor-svc', 'acct', '--store', 'encrypted-file'], env, CANARY);
    const d = runCli(['doctor'], env);
    expect(d.status).toBe(0);
    for (const name of [
      'secret-service',
      'kernel-keyring',
      'systemd-creds',
      'encrypted-file',
      'macos-keychain',
    ]) {
      expect(d.stdout.toString()).toContain(name);
    }
    expect(d.stdout.toString()).toContain('gone at reboot');
    const j = JSON.parse(runCli(['doctor', '--json'], env).stdout.toString());
    expect(j.stores).toHaveLength(5);
    expect(j.stores.filter((s: { selected: boolean }) => s.selected)).toHaveLength(1);
    expect(`${d.stdout}${d.stderr}${JSON.stringify(j)}`).not.toContain(CANARY);
    expect(d.stdout.toString()).toMatch(
      /Confirm on use \(for an agent started from this environment\): no askpass program configured/,
    );
    expect(j.daemon.askpass).toBeNull();
  });

  it('doctor names where the store choice came from: --store, ENTRACLAW_STORE, or agent.toml and its default', () => {
    const said = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
      /Selected: .*\(asked for: (.*)\)/.exec(
        runCli(['doctor', ...args], { ...env, ...extra }).stdout.toString(),
      )?.[1];
    expect(said([], { ENTRACLAW_STORE: undefined })).toBe(
      'auto, by agent.toml [credentials] store, or its default',
    );
    expect(said([], { ENTRACLAW_STORE: 'encrypted-file' })).toBe('encrypted-file, by ENTRACLAW_STORE');
    expect(said(['--store', 'kernel-keyring'], { ENTRACLAW_STORE: 'encrypted-file' })).toBe(
      'kernel-keyring, by --store',
    );
  });

  it('doctor tries the vault with the passphrase file: a wrong one is "available: no", naming why', () => {
    runCli(['secret', 'set', 'doctor-svc', 'acct', '--store', 'encrypted-file'], env, CANARY);
    const wrong = join(dir, 'wrong-pass');
    writeFileSync(wrong, 'not the vault passphrase\n', { mode: 0o600 });
    const j = JSON.parse(
      runCli(['doctor', '--json'], { ...env, ENTRACLAW_PASSPHRASE_FILE: wrong }).stdout.toString(),
    );
    const vault = j.stores.find((s: { name: string }) => s.name === 'encrypted-file');
    expect(vault).toMatchObject({ available: false, reason: expect.stringMatching(/passphrase/) });
    const named = runCli(['doctor', '--store', 'encrypted-file'], {
      ...env,
      ENTRACLAW_PASSPHRASE_FILE: wrong,
    });
    expect(named.stdout.toString()).toMatch(
      /Selected: encrypted-file \(asked for: encrypted-file, by --store\) — NOT USABLE: .*passphrase/,
    );
    const right = JSON.parse(runCli(['doctor', '--json'], env).stdout.toString());
    expect(right.stores.find((s: { name: string }) => s.name === 'encrypted-file').available).toBe(true);
    // --passphrase-file, as every command that opens the vault takes it, and before the environment's.
    const { ENTRACLAW_PASSPHRASE_FILE: _file, ...bare } = env;
    const flagged = JSON.parse(
      runCli(['doctor', '--json', '--passphrase-file', wrong], bare).stdout.toString(),
    );
    expect(flagged.stores.find((s: { name: string }) => s.name === 'encrypted-file')).toMatchObject({
      available: false,
      reason: expect.stringMatching(/passphrase/),
    });
  });

  it('doctor prints its report, then exits 5 when the store every secret command would use is not usable', () => {
    runCli(['secret', 'set', 'doctor-svc', 'acct', '--store', 'encrypted-file'], env, CANARY);
    const wrong = join(dir, 'wrong-pass-exit');
    writeFileSync(wrong, 'not the vault passphrase\n', { mode: 0o600 });
    const noBus = {
      ...env,
      DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}`,
      ENTRACLAW_PASSPHRASE_FILE: wrong,
    };
    // auto with neither store usable: what `secret get` says too (exit 5).
    const none = runCli(['doctor'], noBus);
    expect(none.stdout.toString()).toContain('Selected: none usable');
    expect(none.status, none.stderr).toBe(EXIT_CODES.unavailable);
    expect(none.stderr).toContain('entraclaw: no usable store: secret-service (');
    expect(runCli(['secret', 'get', 'doctor-svc', 'acct'], noBus).status).toBe(EXIT_CODES.unavailable);
    const json = runCli(['doctor', '--json'], noBus);
    expect(json.status).toBe(EXIT_CODES.unavailable);
    expect(JSON.parse(json.stdout.toString()).selected).toBeNull();
    expect(JSON.parse(json.stderr).error.code).toBe('unavailable');
    // The vault with no passphrase source and no terminal to ask on is locked to every command here.
    const noSource = { ...noBus, ENTRACLAW_PASSPHRASE_FILE: undefined };
    expect(runCli(['secret', 'get', 'doctor-svc', 'acct'], noSource).status).toBe(EXIT_CODES.unavailable);
    const locked = JSON.parse(runCli(['doctor', '--json'], noSource).stdout.toString());
    expect(locked.stores.find((s: { name: string }) => s.name === 'encrypted-file')).toMatchObject({
      available: false,
      reason: expect.stringContaining('entraclaw/vault.ecv is locked; no passphrase source is configured'),
    });
    expect(runCli(['doctor'], noSource).status).toBe(EXIT_CODES.unavailable);
    // A store named explicitly that cannot be used.
    const named = runCli(['doctor', '--store', 'macos-keychain'], env);
    expect(named.stdout.toString()).toContain('NOT USABLE: only on macOS');
    expect(named.status).toBe(EXIT_CODES.unavailable);
    expect(named.stderr).toContain(
      'store macos-keychain (asked for: macos-keychain) is not usable: only on macOS',
    );
    // A usable selection is exit 0.
    expect(runCli(['doctor', '--store', 'encrypted-file'], env).status).toBe(0);
    for (const r of [none, json, named]) expect(`${r.stdout}${r.stderr}`).not.toContain(CANARY);
  });

  it('doctor says which askpass answers confirm-on-use grants, and when it is missing', () => {
    const missing = join(dir, 'no-such-askpass');
    const d = runCli(['doctor'], { ...env, ENTRACLAW_ASKPASS: missing });
    expect(d.stdout.toString()).toContain(`ask you through ${missing} (NOT FOUND`);
    const j = JSON.parse(
      runCli(['doctor', '--json'], { ...env, ENTRACLAW_ASKPASS: missing }).stdout.toString(),
    );
    expect(j.daemon.askpass).toBe(missing);
  });

  it('auto falls back loudly when Secret Service is missing', () => {
    const noBus = { ...env, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}` };
    const r = runCli(['secret', 'set', 'auto-svc', 'acct'], noBus, 'v');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/secret-service not used .*; using encrypted-file/);
    // A rotation stored in the fallback: an older copy in the usual store would win once it is back.
    expect(r.stderr).toContain(
      'note: auto reads secret-service instead of encrypted-file whenever secret-service is usable again: this copy is then read only with --store encrypted-file',
    );
    // With --json, stderr holds nothing but the JSON error, so it parses.
    const missing = runCli(['secret', 'get', 'auto-svc', 'nobody', '--json'], noBus);
    expect(missing.status).toBe(EXIT_CODES.not_found);
    expect(JSON.parse(missing.stderr).error.code).toBe('not_found');
  });

  it.runIf(inTestSession)(
    'once Secret Service is back, a miss there points at the vault that holds the item',
    () => {
      const noBus = { ...env, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}` };
      const service = randomName('vault-only');
      expect(runCli(['secret', 'set', service, 'acct'], noBus, 'v').status).toBe(0);
      const vault = join(dir, 'data', 'entraclaw', 'vault.ecv');
      const r = runCli(['secret', 'get', service, 'acct'], env);
      expect(r.status).toBe(EXIT_CODES.not_found);
      expect(r.stderr).toContain(`not found in secret-service`);
      expect(r.stderr).toContain(
        `hint: encrypted-file (${vault}) is not read while auto uses secret-service: it may be there; name the store with --store encrypted-file`,
      );
      const ls = runCli(['secret', 'ls', '--service', service], env);
      expect(ls.status).toBe(0);
      expect(ls.stderr).toContain(
        `note: encrypted-file (${vault}) also has items; auto does not read it while secret-service is usable: entraclaw secret ls --store encrypted-file`,
      );
      const run = runCli(['run', '--env', `T=entraclaw://${service}/acct`, '--', 'true'], env);
      expect(run.status).toBe(EXIT_CODES.not_found);
      expect(run.stderr).toContain('name the store with --store encrypted-file');
      const named = runCli(['secret', 'get', service, 'acct', '--store', 'encrypted-file'], env);
      expect(named.stdout.toString()).toBe('v');
    },
  );

  it('rm under auto says where it did not look: a miss names the store passed over, even with --json, and a delete says that store may still hold a copy', () => {
    const noBus = { ...env, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}` };
    const service = randomName('rm-skipped');
    // A script that reads exit 3 as "already gone" must learn that the keyring auto passed over was not looked at.
    for (const json of [[], ['--json']]) {
      const miss = runCli(['secret', 'rm', service, 'acct', ...json], noBus);
      expect(miss.status).toBe(EXIT_CODES.not_found);
      expect(miss.stderr).toContain('nothing was deleted; secret-service was not searched (');
    }
    expect(runCli(['secret', 'set', service, 'acct', '--store', 'encrypted-file'], noBus, 'v').status).toBe(
      0,
    );
    const rm = runCli(['secret', 'rm', service, 'acct'], noBus);
    expect(rm.status, rm.stderr).toBe(0);
    expect(rm.stderr).toContain(`note: secret-service was not searched (`);
    expect(rm.stderr).toContain(
      `and may still hold ${service}/acct, which auto reads again once secret-service is usable: delete it there too (\`entraclaw secret rm --store secret-service ${service} acct\`)`,
    );
  });

  it.runIf(inTestSession)(
    'rm from Secret Service names the vault auto does not read, whose copy auto serves again once the keyring is away',
    () => {
      const noBus = { ...env, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}` };
      const service = randomName('rm-unsearched');
      expect(runCli(['secret', 'set', service, 'acct'], noBus, CANARY).status).toBe(0);
      expect(runCli(['secret', 'set', service, 'acct'], env, CANARY).status).toBe(0);
      const rm = runCli(['secret', 'rm', service, 'acct'], env);
      expect(rm.status, rm.stderr).toBe(0);
      expect(rm.stderr).toContain(`deleted ${service}/acct from secret-service`);
      const vault = join(dir, 'data', 'entraclaw', 'vault.ecv');
      expect(rm.stderr).toContain(
        `note: encrypted-file (${vault}) is not read while auto uses secret-service and may still hold ${service}/acct, which auto reads whenever secret-service is not usable: delete it there too (\`entraclaw secret rm --store encrypted-file ${service} acct\`)`,
      );
      expect(rm.stderr).not.toContain(CANARY);
      // What the note warns of: with the bus gone, auto reads the vault, and the deleted secret is back.
      const back = runCli(['secret', 'get', service, 'acct'], noBus);
      expect(back.stdout.toString()).toBe(CANARY);
      expect(runCli(['secret', 'rm', service, 'acct', '--store', 'encrypted-file'], env).status).toBe(0);
    },
  );
});

describe('entraclaw secret set at a terminal (a real pty)', () => {
  // A new vault: the value, the passphrase and its confirmation are all typed, none echoed.
  const fresh = () => {
    const home = mkdtempSync(join(dir, 'tty-'));
    return isolatedEnv(home, { DBUS_SESSION_BUS_ADDRESS: '' });
  };
  const set = ['secret', 'set', 'tty-svc', 'me', '--store', 'encrypted-file'];

  it('a first set on a new vault asks for the value and the passphrase twice, and stores it', () => {
    const e = fresh();
    const r = runCliInPty(set, e, [`${CANARY}\r`, 'tty pass\r', 'tty pass\r']);
    expect(r.output).toContain('Repeat it to confirm: ');
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain('stored tty-svc/me in encrypted-file');
    expect(r.output).not.toContain(CANARY);
    expect(r.output).not.toContain('tty pass');
    const file = join(dir, `tty-pass-${randomName('p')}`);
    writeFileSync(file, 'tty pass\n', { mode: 0o600 });
    const get = runCli(['secret', 'get', 'tty-svc', 'me', '--store', 'encrypted-file'], {
      ...e,
      ENTRACLAW_PASSPHRASE_FILE: file,
    });
    expect(get.status, get.stderr).toBe(0);
    expect(get.stdout.toString()).toBe(CANARY);
  });

  it('Ctrl-D (exit 2) or Ctrl-C (dies of SIGINT) at the value prompt cancels and stores nothing', () => {
    for (const [key, status] of [
      ['\x04', EXIT_CODES.usage],
      ['\x03', -2],
    ] as const) {
      const e = fresh();
      const r = runCliInPty(set, e, [key]);
      expect(r.status, JSON.stringify(r.output)).toBe(status);
      expect(r.output).toContain('cancelled');
      expect(existsSync(join(resolvePaths(e).data, 'vault.ecv'))).toBe(false);
    }
  });

  it('--from-file naming the terminal (/dev/stdin, /dev/tty) is refused before a key is read: the terminal would echo the value', () => {
    const e: NodeJS.ProcessEnv = { ...fresh(), ENTRACLAW_PASSPHRASE_FILE: pass };
    for (const path of ['/dev/stdin', '/dev/tty']) {
      const r = runCliInPty(
        ['secret', 'set', 'tty-file', 'me', '--store', 'encrypted-file', '--from-file', path],
        e,
        [],
      );
      expect(r.status, JSON.stringify(r.output)).toBe(EXIT_CODES.usage);
      expect(r.output).toContain(`${path} is a terminal: the value would show on the screen as you type it`);
      expect(r.output).toContain(
        'hint: leave out --from-file (or give --from-file -) to be asked for it with echo off',
      );
    }
    expect(existsSync(join(resolvePaths(e).data, 'vault.ecv'))).toBe(false);
  });

  it('a confirmation that differs creates no vault', () => {
    const e = fresh();
    const r = runCliInPty(set, e, ['v\r', 'one\r', 'two\r']);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.output).toContain('the passphrases did not match');
    expect(existsSync(join(resolvePaths(e).data, 'vault.ecv'))).toBe(false);
  });
});

describe('auto: what reads will actually see', () => {
  const home = mkdtempSync(join(dir, 'auto-'));
  const creds = join(home, 'creds');
  const e = isolatedEnv(home, {
    DBUS_SESSION_BUS_ADDRESS: '',
    ENTRACLAW_PASSPHRASE_FILE: pass,
    CREDENTIALS_DIRECTORY: creds,
  });

  it('set and rm say when a systemd credential of the same name is read first', () => {
    mkdirSync(creds);
    writeFileSync(join(creds, 'shadow@me'), 'from-credential');
    const set = runCli(['secret', 'set', 'shadow', 'me'], e, 'from-set');
    expect(set.status, set.stderr).toBe(0);
    expect(set.stderr).toContain('stored shadow/me in encrypted-file');
    expect(set.stderr).toContain(
      "note: systemd-creds also has shadow/me and is read first while $CREDENTIALS_DIRECTORY is set: reads return its value, not encrypted-file's",
    );
    expect(runCli(['secret', 'get', 'shadow', 'me'], e).stdout.toString()).toBe('from-credential');
    const rm = runCli(['secret', 'rm', 'shadow', 'me'], e);
    expect(rm.status, rm.stderr).toBe(0);
    expect(rm.stderr).toContain('note: systemd-creds also has shadow/me');
    // An item only in the writable store gets no note.
    expect(runCli(['secret', 'set', 'alone', 'me'], e, 'v').stderr).not.toContain('note: systemd-creds');
  });

  it('a service with only its credentials (no keyring, no vault passphrase) reads them, and a write says why not', () => {
    const only = isolatedEnv(mkdtempSync(join(dir, 'creds-only-')), {
      DBUS_SESSION_BUS_ADDRESS: '',
      CREDENTIALS_DIRECTORY: creds,
    });
    // A vault exists, but this service was given no passphrase for it.
    const made = runCli(['secret', 'set', 'in', 'vault'], { ...only, ENTRACLAW_PASSPHRASE_FILE: pass }, 'v');
    expect(made.status, made.stderr).toBe(0);
    mkdirSync(creds, { recursive: true });
    writeFileSync(join(creds, 'svc@only'), 'credential-value');
    const get = runCli(['secret', 'get', 'svc', 'only'], only);
    expect(get.status, get.stderr).toBe(0);
    expect(get.stdout.toString()).toBe('credential-value');
    const ls = runCli(['secret', 'ls'], only);
    expect(ls.status, ls.stderr).toBe(0);
    expect(ls.stdout.toString()).toContain('svc');
    const set = runCli(['secret', 'set', 'svc', 'new'], only, 'v');
    expect(set.status).toBe(EXIT_CODES.usage);
    expect(set.stderr).toContain('encrypted-file not used (vault ');
    expect(set.stderr).toContain('is locked: no passphrase available); using systemd-creds');
    expect(set.stderr).toContain('store "systemd-creds" is read-only');
  });

  it('a directory among the credentials is no item, and a credential over 1 MiB is refused, not loaded', () => {
    mkdirSync(join(creds, 'dir@d'), { recursive: true });
    writeFileSync(join(creds, 'big@one'), Buffer.alloc(1024 * 1024 + 1, 1));
    const ls = runCli(['secret', 'ls', '--json', '--store', 'systemd-creds'], e);
    expect(ls.status, ls.stderr).toBe(0);
    const listed = (JSON.parse(ls.stdout.toString()) as Array<{ service: string }>).map((i) => i.service);
    expect(listed).toContain('big');
    expect(listed).not.toContain('dir');
    const big = runCli(['secret', 'get', 'big', 'one', '--store', 'systemd-creds'], e);
    expect(big.status).toBe(EXIT_CODES.usage);
    expect(big.stderr).toContain('systemd credential big@one is 1048577 bytes; items hold at most 1048576');
    expect(big.stdout.length).toBe(0);
  });

  it('a credential another user owns or could write is not handed out (exit 4, naming why) nor listed: in a directory others can add to, it would stand in for the real item', () => {
    const shared = join(home, 'shared-creds');
    mkdirSync(shared, { mode: 0o700 });
    chmodSync(shared, 0o1777);
    const se = { ...e, CREDENTIALS_DIRECTORY: shared };
    const planted: [string, () => void, string][] = [
      [
        'open@writable',
        () => {
          writeFileSync(join(shared, 'open@writable'), 'PLANTED');
          chmodSync(join(shared, 'open@writable'), 0o666); // past the umask
        },
        'is writable by other users (mode 666)',
      ],
    ];
    if (process.getuid?.() === 0) {
      planted.push([
        'other@owner',
        () => {
          writeFileSync(join(shared, 'other@owner'), 'PLANTED', { mode: 0o600 });
          chownSync(join(shared, 'other@owner'), 65534, 65534);
        },
        'is owned by uid 65534, neither you (0) nor root',
      ]);
    }
    for (const [name, plant, why] of planted) {
      plant();
      const [service, account] = name.split('@') as [string, string];
      const get = runCli(['secret', 'get', service, account], se);
      expect(get.status, get.stderr).toBe(EXIT_CODES.denied);
      expect(get.stderr).toContain(`systemd credential ${name} in ${shared} ${why}`);
      expect(get.stdout.toString()).not.toContain('PLANTED');
      const ls = runCli(['secret', 'ls', '--json', '--store', 'systemd-creds'], se);
      expect(ls.status, ls.stderr).toBe(0);
      expect(JSON.parse(ls.stdout.toString())).toEqual([]);
    }
    // One of yours, writable by you alone, is read as before.
    writeFileSync(join(shared, 'mine@ok'), 'fine', { mode: 0o400 });
    expect(runCli(['secret', 'get', 'mine', 'ok'], se).stdout.toString()).toBe('fine');
  });

  it('a $CREDENTIALS_DIRECTORY that cannot be read fails every command with what to do, and doctor as well', () => {
    // Left over from a service that has stopped, or a typo: auto reads the credentials first, so every
    // command stops on it; a doctor that passed would send a health check the wrong way.
    for (const missing of [join(home, 'gone-creds'), pass]) {
      const bad = { ...e, CREDENTIALS_DIRECTORY: missing };
      for (const args of [
        ['secret', 'get', 'svc', 'me'],
        ['secret', 'ls'],
      ]) {
        const r = runCli(args, bad);
        expect(r.status, r.stderr).toBe(EXIT_CODES.unavailable);
        expect(r.stderr).toContain(`$CREDENTIALS_DIRECTORY (${missing}) is not`);
        expect(r.stderr).toContain(
          'hint: $CREDENTIALS_DIRECTORY is set, so the credentials there are read first (systemd sets it for a unit with LoadCredential=): point it at that directory, or unset it',
        );
      }
      const doctor = runCli(['doctor'], bad);
      expect(doctor.status, doctor.stderr).toBe(EXIT_CODES.unavailable);
      expect(doctor.stdout.toString()).toContain('reads first');
      expect(doctor.stderr).toContain(
        `entraclaw: systemd-creds is read first under auto and is not usable: $CREDENTIALS_DIRECTORY (${missing}) is not`,
      );
      // Named explicitly, another store does not read the credentials first: doctor passes on it.
      expect(runCli(['doctor', '--store', 'encrypted-file'], bad).status).toBe(0);
    }
  });

  it('an empty --store= is a usage error, not auto', () => {
    const r = runCli(['secret', 'ls', '--store='], e);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('--store');
  });

  it('not found names a store auto passed over, where the item may be', () => {
    const r = runCli(['secret', 'get', 'nowhere', 'me'], e);
    expect(r.status).toBe(EXIT_CODES.not_found);
    expect(r.stderr).toContain('hint: secret-service was not searched (');
    expect(r.stderr).toContain('it may be there; fix that or name the store with --store');
  });
});

describe('an item kept in the kernel keyring', () => {
  it('is named by the not-found hint of a get or run that searched another store', (ctx) => {
    requireOrSkip(ctx, linuxOnly('the kernel keyring'));
    const service = randomName('kk-hint');
    const set = runCli(['secret', 'set', service, 'me', '--store', 'kernel-keyring'], env, CANARY);
    expect(set.status, set.stderr.toString()).toBe(0);
    try {
      const get = runCli(['secret', 'get', service, 'me', '--store', 'encrypted-file'], env);
      expect(get.status).toBe(EXIT_CODES.not_found);
      expect(get.stderr.toString()).toContain(
        'hint: kernel-keyring has an item of that name, and it is read only when named: add --store kernel-keyring',
      );
      const run = runCli(
        ['run', '--store', 'encrypted-file', '--env', `T=entraclaw://${service}/me`, '--', 'true'],
        env,
      );
      expect(run.status).toBe(EXIT_CODES.not_found);
      expect(run.stderr.toString()).toContain('hint: kernel-keyring has an item of that name');
      for (const r of [get, run]) expect(`${r.stdout}${r.stderr}`).not.toContain(CANARY);
      // Another name there is no reason to point at it.
      const other = runCli(['secret', 'get', service, 'someone-else', '--store', 'encrypted-file'], env);
      expect(other.stderr.toString()).not.toContain('kernel-keyring');
    } finally {
      runCli(['secret', 'rm', service, 'me', '--store', 'kernel-keyring'], env);
    }
  });

  it.runIf(inTestSession)(
    'does not hide the vault from the hint of a miss under auto: the copy there is served again once auto uses it',
    (ctx) => {
      requireOrSkip(ctx, linuxOnly('the kernel keyring'));
      const service = randomName('kk-and-vault');
      for (const store of ['kernel-keyring', 'encrypted-file']) {
        const set = runCli(['secret', 'set', service, 'me', '--store', store], env, CANARY);
        expect(set.status, set.stderr).toBe(0);
      }
      try {
        const vault = join(dir, 'data', 'entraclaw', 'vault.ecv');
        for (const args of [
          ['secret', 'get', service, 'me'],
          ['secret', 'rm', service, 'me'],
        ]) {
          const miss = runCli(args, env);
          expect(miss.status, miss.stderr).toBe(EXIT_CODES.not_found);
          expect(miss.stderr).toContain(
            'kernel-keyring has an item of that name, and it is read only when named: add --store kernel-keyring',
          );
          expect(miss.stderr).toContain(
            `encrypted-file (${vault}) is not read while auto uses secret-service: it may be there too; name the store with --store encrypted-file`,
          );
          expect(`${miss.stdout}${miss.stderr}`).not.toContain(CANARY);
        }
      } finally {
        for (const store of ['kernel-keyring', 'encrypted-file'])
          runCli(['secret', 'rm', service, 'me', '--store', store], env);
      }
    },
  );
});

describe('an expired token the kernel keyring dropped', () => {
  it('is not found, and get and run say the kernel forgets such items, not only that the name may be wrong', async (ctx) => {
    requireOrSkip(ctx, linuxOnly('the kernel keyring'));
    const service = randomName('kk-dropped');
    const kk = ['--store', 'kernel-keyring'];
    const set = runCli(
      ['secret', 'set', service, 'me', ...kk, '--kind', 'token', '--expires-at', '2020-01-01T00:00:00Z'],
      env,
      CANARY,
    );
    expect(set.status, set.stderr).toBe(0);
    expect(runCli(['secret', 'get', service, 'me', ...kk], env).status).toBe(EXIT_CODES.expired);
    // What the kernel does an hour after the expiry (EXPIRED_GRACE_SECONDS), brought forward: its timeout.
    const desc = `entraclaw:${service}/me`;
    const serial = spawnSync('keyctl', ['search', '@u', 'user', desc], { encoding: 'utf8' });
    requireOrSkip(ctx, serial.status === 0 ? undefined : `keyctl (keyutils) is needed: ${serial.stderr}`);
    expect(spawnSync('keyctl', ['timeout', serial.stdout.trim(), '1']).status).toBe(0);
    await waitFor(
      () => spawnSync('keyctl', ['search', '@u', 'user', desc]).status !== 0,
      'the kernel to expire the key',
    );
    const forgets =
      '(the kernel keyring forgets every item at reboot, and an item with an expiry an hour after it expired)';
    const get = runCli(['secret', 'get', service, 'me', ...kk], env);
    expect(get.status).toBe(EXIT_CODES.not_found);
    expect(get.stderr).toContain(
      `hint: check the names with \`entraclaw secret ls\`, or store it with \`entraclaw secret set\` ${forgets}`,
    );
    const run = runCli(['run', ...kk, '--env', `T=entraclaw://${service}/me`, '--', 'true'], env);
    expect(run.status).toBe(EXIT_CODES.not_found);
    expect(run.stderr).toContain(`hint: store it with: entraclaw secret set ${service} me ${forgets}`);
    for (const r of [get, run]) expect(`${r.stdout}${r.stderr}`).not.toContain(CANARY);
  }, 30_000);
});

describe('names from the command line', () => {
  it('a / inside a name is encoded where messages name the item, so the separator is unambiguous', () => {
    const e = isolatedEnv(mkdtempSync(join(dir, 'slash-')), { ENTRACLAW_PASSPHRASE_FILE: pass });
    const set = runCli(['secret', 'set', 'my/svc', 'a/b', '--store', 'encrypted-file'], e, 'v');
    expect(set.status, set.stderr).toBe(0);
    expect(set.stderr).toContain('stored my%2Fsvc/a%2Fb in encrypted-file');
    const missing = runCli(['secret', 'get', 'my/svc/a', 'b', '--store', 'encrypted-file'], e);
    expect(missing.stderr).toContain('my%2Fsvc%2Fa/b not found in encrypted-file');
    expect(runCli(['secret', 'get', 'my/svc', 'a/b', '--store', 'encrypted-file'], e).stdout.toString()).toBe(
      'v',
    );
  });

  it('set refuses a name whose bytes were not UTF-8 (node turns them into U+FFFD), storing nothing', () => {
    const e = isolatedEnv(mkdtempSync(join(dir, 'names-')), { ENTRACLAW_PASSPHRASE_FILE: pass });
    // Raw bytes in argv need a shell: node's own spawn would send the UTF-8 of the string.
    const withBadName = (line: string) =>
      spawnSync('sh', ['-c', line.replace('BAD', `"$(printf 'bad\\377')"`), process.execPath, CLI], {
        env: e,
      });
    const r = withBadName('printf v | "$0" -- "$1" secret set BAD acct --store encrypted-file');
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr.toString()).toContain(
      'the service name contains U+FFFD, the mark of bytes that are not UTF-8',
    );
    expect(runCli(['secret', 'ls', '--store', 'encrypted-file'], e).stdout.toString()).not.toContain('bad');
    const get = withBadName('"$0" -- "$1" secret get BAD acct --store encrypted-file');
    expect(get.status).toBe(EXIT_CODES.not_found);
    expect(get.stderr.toString()).toContain(
      'hint: the name contains U+FFFD, the mark of bytes that are not UTF-8',
    );
  });

  it('ls lines its columns up on screen for wide (CJK, fullwidth, emoji) and combining characters', () => {
    const e = isolatedEnv(mkdtempSync(join(dir, 'wide-')), { ENTRACLAW_PASSPHRASE_FILE: pass });
    // Each name is 8 columns wide on a terminal (wider than SERVICE); their UTF-16 lengths are 4, 4, 4, 14, 8.
    const names = ['日本語漢', 'ｆｕｌｌ', '⌚⌚⌚⌚', `${'e\u0301'.repeat(6)}ab`, 'plain8ch'];
    for (const name of names) {
      const set = runCli(['secret', 'set', name, 'acct', '--store', 'encrypted-file'], e, 'v');
      expect(set.status, set.stderr).toBe(0);
    }
    const ls = runCli(['secret', 'ls', '--store', 'encrypted-file'], e);
    expect(ls.status, ls.stderr).toBe(0);
    const rows = ls.stdout.toString().trimEnd().split('\n').slice(1);
    expect(rows).toHaveLength(names.length);
    for (const row of rows) expect(row).toMatch(/^\S+ {2}acct {5}password/u);
  });
});

describe('an askpass program others could change', () => {
  it('stops the agent before it starts, naming the program and why; a private one is taken', () => {
    const home = mkdtempSync(join(dir, 'askpass-'));
    const script = join(home, 'askpass.sh');
    writeFileSync(script, '#!/bin/sh\nexit 0\n');
    chmodSync(script, 0o777);
    const e = isolatedEnv(home, { ENTRACLAW_PASSPHRASE_FILE: pass, ENTRACLAW_ASKPASS: script });
    const agent = (extra: string[] = []) =>
      runCli(['agent', '--store', 'encrypted-file', '--socket', join(home, 'a.sock'), ...extra], e);
    const open = agent();
    expect(open.status).toBe(EXIT_CODES.usage);
    expect(open.stderr).toContain(`the askpass program ${script} is writable by other users (mode 777)`);
    expect(existsSync(join(home, 'a.sock'))).toBe(false);
    chmodSync(script, 0o755);
    chmodSync(home, 0o777);
    expect(agent().stderr).toContain(`${home}, which holds ${script}, is writable by other users`);
    chmodSync(home, 0o700);
    // A private one passes the check: the agent starts and runs the command it was given.
    const fine = agent(['--', 'true']);
    expect(fine.status, fine.stderr.toString()).toBe(0);
    expect(fine.stderr.toString()).not.toContain('askpass program does not exist');
  });

  it('one that does not exist is said at start, and the agent still serves', () => {
    const home = mkdtempSync(join(dir, 'askpass-missing-'));
    const missing = join(home, 'no-such-askpass');
    const e = isolatedEnv(home, { ENTRACLAW_PASSPHRASE_FILE: pass, ENTRACLAW_ASKPASS: missing });
    const r = runCli(
      ['agent', '--store', 'encrypted-file', '--socket', join(home, 'a.sock'), '--', 'true'],
      e,
    );
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(r.stderr.toString()).toMatch(
      /warn: the askpass program does not exist: grants with confirm = true are denied until it does .*no-such-askpass/,
    );
  });
});

describe('agent.toml mistakes', () => {
  const home = mkdtempSync(join(dir, 'config-'));
  const e = isolatedEnv(home, { ENTRACLAW_PASSPHRASE_FILE: pass });
  const write = (text: string) => {
    mkdirSync(join(e.XDG_CONFIG_HOME!, 'entraclaw'), { recursive: true });
    writeFileSync(join(e.XDG_CONFIG_HOME!, 'entraclaw', 'agent.toml'), text);
  };

  it('name the key and its line; only a bad store name gets the list of stores as its hint', () => {
    write('# mine\n[agent]\nfoo = 1\n');
    const unknown = runCli(['secret', 'ls', '--store', 'encrypted-file'], e);
    expect(unknown.status).toBe(EXIT_CODES.usage);
    expect(unknown.stderr).toMatch(/config \S*agent\.toml:3: unknown key "foo" in \[agent\]\n/);
    write('[credentials]\ntimeout_ms = "soon"\n');
    const timeout = runCli(['doctor'], e);
    expect(timeout.status).toBe(EXIT_CODES.usage);
    expect(timeout.stderr).toMatch(/agent\.toml:2: credentials\.timeout_ms: /);
    expect(timeout.stderr).toContain('hint: see docs/configuration.md for the keys and their values');
    write('[credentials]\nstore = "vault"\n');
    const store = runCli(['doctor'], e);
    expect(store.status).toBe(EXIT_CODES.usage);
    expect(store.stderr).toContain('credentials.store');
    expect(store.stderr).toContain('hint: valid stores: auto, ');
  });

  it('a socket or askpass path that is relative or holds a NUL is a usage error naming the key, not an internal error', () => {
    for (const [text, message] of [
      ['[agent]\nsocket = "run/agent.sock"\n', 'agent.toml:2: agent.socket: must be an absolute path'],
      [
        '[agent]\nsocket = "/tmp/a\\u0000b"\n',
        'agent.toml:2: agent.socket: must not contain a NUL character',
      ],
      [
        '[agent]\naskpass = "/bin/true\\u0000x"\n',
        'agent.toml:2: agent.askpass: must not contain a NUL character',
      ],
    ] as const) {
      write(text);
      const r = runCli(['doctor'], e);
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain(message);
    }
    write('[agent]\nsocket = "/tmp/agent.sock"\n');
    expect(runCli(['doctor', '--store', 'encrypted-file'], e).status).toBe(0);
  });

  it('doctor still reports every store, says the config is invalid, and exits 2 with its error', () => {
    write('[agent]\nfoo = 1\n');
    const r = runCli(['doctor'], e);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stdout.toString()).toMatch(/^Config: INVALID, so every other command refuses to run/);
    expect(r.stdout.toString()).toContain('encrypted-file');
    expect(r.stdout.toString()).toContain('Selected: ');
    expect(r.stderr).toContain('unknown key "foo" in [agent]');
    const j = runCli(['doctor', '--json'], e);
    expect(j.status).toBe(EXIT_CODES.usage);
    const report = JSON.parse(j.stdout.toString()) as { config: { error: string }; stores: unknown[] };
    expect(report.config.error).toMatch(/agent\.toml:2: unknown key "foo"/);
    expect(report.stores.length).toBeGreaterThan(3);
    expect(JSON.parse(j.stderr).error.code).toBe('usage');
  });

  it('one another user could write is refused, as policy.toml is: it names the askpass program the agent runs', () => {
    // The askpass program runs as you and its exit status answers every confirm grant: whoever writes
    // agent.toml could make it say yes (or run their code as you).
    const file = join(e.XDG_CONFIG_HOME!, 'entraclaw', 'agent.toml');
    const folder = join(e.XDG_CONFIG_HOME!, 'entraclaw');
    const cases: Array<[string, () => void, string]> = [
      ['a file others can write', () => chmodSync(file, 0o666), `${file} is writable by other users`],
      [
        'a directory others can write',
        () => chmodSync(folder, 0o777),
        `${folder}, which holds ${file}, is writable by other users (mode 777): they could replace the agent configuration`,
      ],
    ];
    if (process.getuid?.() === 0) {
      cases.push([
        'a file another uid owns',
        () => chownSync(file, 65534, 65534),
        `${file} is owned by uid 65534, not 0`,
      ]);
    }
    for (const [what, spoil, message] of cases) {
      write('[agent]\naskpass = "/bin/true"\n');
      chmodSync(file, 0o644);
      chmodSync(folder, 0o755);
      // The control: a file of ours, mode 644 in a 755 directory, is read and its askpass used.
      expect(runCli(['doctor'], e).stdout.toString(), what).toContain('ask you through /bin/true');
      spoil();
      try {
        const doctor = runCli(['doctor'], e);
        expect(doctor.status, what).toBe(EXIT_CODES.usage);
        expect(doctor.stderr, what).toContain(message);
        expect(doctor.stdout.toString(), what).not.toContain('/bin/true');
        const agent = runCli(['agent', '--store', 'encrypted-file'], e);
        expect(agent.status, what).toBe(EXIT_CODES.usage);
        expect(agent.stderr, what).toContain(message);
      } finally {
        chownSync(file, process.getuid!(), process.getgid!());
        chmodSync(file, 0o644);
        chmodSync(folder, 0o755);
      }
    }
  });

  it('a syntax error names the line, on one line, with a hint', () => {
    write('[credentials]\nstore = \n');
    const r = runCli(['doctor'], e);
    expect(r.status).toBe(EXIT_CODES.usage);
    const [message, hint] = r.stderr.trimEnd().split('\n');
    expect(message).toMatch(/^entraclaw: config \S*agent\.toml:2 is not valid TOML: /);
    expect(message).not.toContain('\\u{');
    expect(hint).toMatch(/^ {2}hint: fix the syntax at line 2 of \S*agent\.toml$/);
  });
});

describe('doctor and policy.toml', () => {
  const home = mkdtempSync(join(dir, 'policy-'));
  const e = isolatedEnv(home, { ENTRACLAW_PASSPHRASE_FILE: pass });
  const policy = join(e.XDG_CONFIG_HOME!, 'entraclaw', 'policy.toml');

  it('says an invalid policy denies every request, names its line, and exits 2 with its error', () => {
    const none = runCli(['doctor'], e);
    expect(none.status, none.stderr).toBe(0);
    expect(none.stdout.toString()).toContain(`Policy: 0 approved program(s) in ${policy}\n`);
    mkdirSync(join(e.XDG_CONFIG_HOME!, 'entraclaw'), { recursive: true, mode: 0o700 });
    writeFileSync(policy, '[[client]]\nname = "x"\ncolour = "red"\n', { mode: 0o600 });
    const r = runCli(['doctor'], e);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stdout.toString()).toContain(
      `Policy: INVALID, so the daemon denies every request until it is fixed: ${policy}\n`,
    );
    expect(r.stdout.toString()).toContain('encrypted-file');
    expect(r.stderr).toMatch(/policy\.toml:3: unknown key "colour"/);
    const j = runCli(['doctor', '--json'], e);
    expect(j.status).toBe(EXIT_CODES.usage);
    const report = JSON.parse(j.stdout.toString()) as { policy: { path: string; error: string } };
    expect(report.policy.path).toBe(policy);
    expect(report.policy.error).toMatch(/policy\.toml:3: unknown key "colour"/);
    expect(JSON.parse(j.stderr).error.code).toBe('usage');
  });

  it('writes what policy.toml, agent.toml and the environment put in its report with control characters escaped', () => {
    const h = mkdtempSync(join(dir, 'doctor-escapes-'));
    const en = isolatedEnv(h, { ENTRACLAW_PASSPHRASE_FILE: pass });
    const config = join(en.XDG_CONFIG_HOME!, 'entraclaw');
    mkdirSync(config, { recursive: true, mode: 0o700 });
    // A key only a program could have written there: it sets the terminal's title, then clears the screen.
    writeFileSync(join(config, 'policy.toml'), '"\\u001b]0;pwn\\u0007\\u001b[2J" = 1\n', { mode: 0o600 });
    writeFileSync(
      join(config, 'agent.toml'),
      '[agent]\nsocket = "/tmp/s\\u001b[2J.sock"\naskpass = "/tmp/a\\u009b2J"\n',
      { mode: 0o600 },
    );
    const r = runCli(['doctor'], en);
    expect(r.status).toBe(EXIT_CODES.usage);
    const out = r.stdout.toString();
    expect(out).not.toMatch(/\p{Cc}(?<!\n)/u);
    expect(out).toContain('unknown key "\\u{1b}]0;pwn\\u{7}\\u{1b}[2J"');
    expect(out).toContain('Daemon: not running at /tmp/s\\u{1b}[2J.sock');
    expect(out).toContain('ask you through /tmp/a\\u{9b}2J');
    // The config error is reported too, escaped the same way.
    writeFileSync(join(config, 'agent.toml'), '[credentials]\n"\\u001b[2J" = 1\n', { mode: 0o600 });
    const c = runCli(['doctor'], en);
    expect(c.stdout.toString()).not.toMatch(/\p{Cc}(?<!\n)/u);
    expect(c.stdout.toString()).toContain('unknown key "\\u{1b}[2J" in [credentials]');
  });
});
