import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE, PYTHON, PYTHON_REAL, REPO, run, waitFor } from '../support/broker.js';
import { CLI, type CliResult, isolatedEnv, runCli } from '../support/cli.js';
import { inTestSession, randomName } from '../support/context.js';

// The installed `security` and `secret-tool` shims end to end: a real `entraclaw agent` on the
// secret-service store (the session's throwaway gnome-keyring, scripts/with-keyring.sh), the shims
// written by `entraclaw shim install`, and a registered python3 script that runs them with PATH
// prefixed -- so the program the daemon decides for is that script, not the shim. Every secret-tool
// result is compared with the REAL /usr/bin/secret-tool on the same gnome-keyring item.

/** One tool run by a driver: its exit status and raw output. */
interface Out {
  status: number;
  stdout: Buffer;
  stderr: Buffer;
}

// The parent program. MODE: shim | real (PATH with or without the shims), with -tty for stdout on a
// pseudo-terminal, or prompt for stdin on one (each line of INPUT is typed after a prompt appears).
const DRIVER = `import base64, json, os, subprocess, sys, time
mode, data, cmd = sys.argv[1], base64.b64decode(sys.argv[2]), sys.argv[3:]
# An argument "b64:..." is passed as its raw bytes (node cannot spawn with bytes that are not UTF-8).
cmd = [base64.b64decode(a[4:]) if a.startswith("b64:") else a for a in cmd]
env = dict(os.environ)
if mode.startswith("shim"):
    env["PATH"] = os.environ["SHIM_DIR"] + ":" + env["PATH"]
def drain(fd):
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out
extra = {}
if mode.endswith("-tty"):
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    p.stdin.write(data)
    p.stdin.close()
    out = drain(master)
    err = p.stderr.read()
elif mode.endswith("-prompt"):
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    err = b""
    for answer in data.split(b"\\n")[:-1]:
        while not err.endswith(b": "):
            c = p.stderr.read(1)
            if not c:
                break
            err += c
        time.sleep(0.1)
        os.write(master, answer + b"\\r")
        err += p.stderr.read(1)
    p.wait()
    err += p.stderr.read()
    out = p.stdout.read()
    os.set_blocking(master, False)
    try:
        extra["terminal"] = base64.b64encode(os.read(master, 65536)).decode()
    except OSError:
        extra["terminal"] = ""
elif mode.endswith("-full"):
    # stdout on /dev/full: every write fails with ENOSPC.
    with open("/dev/full", "wb") as full:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=full, stderr=subprocess.PIPE, env=env)
        out, err = p.communicate(data)
    out = b""
elif mode.endswith("-ctty"):
    # stdin on a pseudo-terminal that is the tool's controlling terminal (a UTF-8 one: IUTF8, as terminal
    # emulators set it), stdout and stderr pipes; INPUT is typed once a prompt shows on either.
    import pty, select, termios
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[0] |= 0o40000
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    name = os.ttyname(slave)
    def own_terminal():
        os.setsid()
        os.close(os.open(name, os.O_RDWR))
    p = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=own_terminal)
    os.close(slave)
    shown, err = b"", b""
    while not (shown.endswith(b": ") or err.endswith(b": ")):
        ready = select.select([master, p.stderr], [], [])[0]
        if master in ready:
            shown += os.read(master, 1)
        if p.stderr in ready:
            c = os.read(p.stderr.fileno(), 1)
            if not c:
                break
            err += c
    os.write(master, data)
    out, rest = p.communicate()
    err += rest
    os.set_blocking(master, False)
    try:
        shown += os.read(master, 65536)
    except OSError:
        pass
    extra["terminal"] = base64.b64encode(shown).decode()
elif mode.endswith("-unshared"):
    # The parent enters a user namespace of its own once the shim is started, before it asks.
    import ctypes
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    out, err = p.communicate(data)
else:
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = p.communicate(data)
p.wait()
print(json.dumps({"status": p.returncode, "out": base64.b64encode(out).decode(), "err": base64.b64encode(err).decode(), **extra}))
`;

const PREFIX = randomName('shim-e2e');
const SVC = `${PREFIX}-svc`;
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
/** An argument the driver passes as these exact bytes, valid UTF-8 or not. */
const raw = (...parts: Array<string | number[]>) =>
  `b64:${b64(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Uint8Array.from(p)))))}`;

let dir: string;
let env: NodeJS.ProcessEnv;
let socket: string;
let shimDir: string;
let driver: string;
let stranger: string;
let daemon: ChildProcess;
let daemonLog = '';
const SHIM_SCRIPTS = {
  security: realpathSync(join(REPO, 'dist', 'shim', 'security-main.cjs')),
  'secret-tool': realpathSync(join(REPO, 'dist', 'shim', 'secret-tool-main.cjs')),
};

function cli(args: string[], input?: string): CliResult {
  const r = runCli(args, env, input);
  expect(r.status, `entraclaw ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

/** Runs TOOL ARGS from a driver script (the registered one unless `who` says otherwise). */
async function drive(
  mode: string,
  argv: string[],
  input: string | Buffer = '',
  opts: { who?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Out & { terminal?: Buffer }> {
  const r = await run(PYTHON, [opts.who ?? driver, mode, b64(input), ...argv], {
    env: opts.env ?? { ...env, ENTRACLAW_SOCKET: socket, SHIM_DIR: shimDir },
    timeoutMs: 30_000,
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  let parsed: { status: number; out: string; err: string; terminal?: string };
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new Error(`driver failed (${r.status}): ${r.stdout}\n${r.stderr}`);
  }
  return {
    status: parsed.status,
    stdout: Buffer.from(parsed.out, 'base64'),
    stderr: Buffer.from(parsed.err, 'base64'),
    ...(parsed.terminal !== undefined ? { terminal: Buffer.from(parsed.terminal, 'base64') } : {}),
  };
}

/** secret-tool through the shims (from the registered driver). */
const st = (argv: string[], input?: string | Buffer) => drive('shim', ['secret-tool', ...argv], input);
/** The real /usr/bin/secret-tool on the same keyring (from the same driver). */
const real = (argv: string[], input?: string | Buffer) => drive('real', ['secret-tool', ...argv], input);
/** security through the shims. */
const sec = (argv: string[], input?: string | Buffer) => drive('shim', ['security', ...argv], input);
const text = (o: Out) => ({
  status: o.status,
  stdout: o.stdout.toString('latin1'),
  stderr: o.stderr.toString(),
});
const sortedLines = (s: Buffer) => s.toString('latin1').split('\n').filter(Boolean).sort();
/** secret-tool search output without the object path line ("[/12]"): the daemon does not expose it. */
const withoutPath = (s: Buffer) => s.toString('latin1').replace(/^\[[^\]\n]*\]$/gm, '[PATH]');

interface AuditLine {
  decision: string;
  op: string;
  service?: string;
  account?: string;
  exe?: string;
  script?: string;
  pid?: number;
  sha256?: string;
  via?: { pid: number; exe: string };
}
const audit = (): AuditLine[] => JSON.parse(cli(['audit', '--json', '--tail', '200']).stdout.toString());

describe.skipIf(!inTestSession)(
  'shims end to end (real daemon, real gnome-keyring, real secret-tool)',
  () => {
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'entraclaw-shim-'));
      env = isolatedEnv(dir);
      socket = join(dir, 'run', 'entraclaw', 'agent.sock');
      shimDir = join(dir, 'bin');
      const installed = JSON.parse(cli(['shim', 'install', shimDir, '--json']).stdout.toString());
      expect(installed.installed).toEqual([join(shimDir, 'security'), join(shimDir, 'secret-tool')]);
      driver = join(dir, 'driver.py');
      writeFileSync(driver, DRIVER, { mode: 0o644 });
      driver = realpathSync(driver);
      // Same code, different file and hash: never registered.
      stranger = join(dir, 'stranger.py');
      writeFileSync(stranger, `# not approved\n${DRIVER}`, { mode: 0o644 });
      stranger = realpathSync(stranger);
      cli([
        'register',
        PYTHON_REAL,
        '--script',
        driver,
        '--grant',
        `${PREFIX}*`,
        '--ops',
        'read,create,update,delete,list',
        '--name',
        'shim-driver',
      ]);
      daemon = spawn(NODE, [CLI, 'agent', '--store', 'secret-service', '--socket', socket, '-v'], {
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      daemon.stderr?.on('data', (b: Buffer) => {
        daemonLog += b.toString();
      });
      await waitFor(() => existsSync(socket) || daemon.exitCode !== null, 'the daemon socket');
      if (daemon.exitCode !== null) throw new Error(`daemon exited: ${daemonLog}`);
    }, 60_000);

    afterAll(async () => {
      for (const service of [SVC, `${PREFIX}-sec`, `${PREFIX}-inet`, `${PREFIX}-i`, `${PREFIX}-st`]) {
        await drive('real', ['secret-tool', 'clear', 'service', service]).catch(() => {});
      }
      if (daemon && daemon.exitCode === null) {
        const done = new Promise((r) => daemon.once('exit', r));
        daemon.kill('SIGTERM');
        await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    describe('secret-tool: same bytes and exit codes as the real secret-tool on the same item', () => {
      it('store through the shim; lookup by both tools returns the exact bytes, no newline', async () => {
        const value = Buffer.from([0x70, 0x00, 0xff, 0x2d, 0x0a]);
        const stored = await st(['store', '--label', 'E2E item', 'service', SVC, 'account', 'a1'], value);
        expect(text(stored)).toEqual({ status: 0, stdout: '', stderr: '' });
        const theirs = await real(['lookup', 'service', SVC, 'account', 'a1']);
        const ours = await st(['lookup', 'service', SVC, 'account', 'a1']);
        expect(theirs.stdout).toEqual(value);
        expect(text(ours)).toEqual(text(theirs));
        // A partial query (service only) finds the same item in both.
        expect(text(await st(['lookup', 'service', SVC]))).toEqual(
          text(await real(['lookup', 'service', SVC])),
        );
      }, 30_000);

      it('store through the real tool; the shim reads it the same way', async () => {
        expect(
          (await real(['store', '--label=real', 'service', `${PREFIX}-st`, 'account', 'r1'], 'from-real\n'))
            .status,
        ).toBe(0);
        const theirs = await real(['lookup', 'service', `${PREFIX}-st`, 'account', 'r1']);
        expect(theirs.stdout.toString()).toBe('from-real\n');
        expect(text(await st(['lookup', 'service', `${PREFIX}-st`, 'account', 'r1']))).toEqual(text(theirs));
      }, 30_000);

      it('store over an existing item replaces it for both tools', async () => {
        expect((await st(['store', '--label=v2', 'service', SVC, 'account', 'a1'], 'second')).status).toBe(0);
        expect((await real(['lookup', 'service', SVC, 'account', 'a1'])).stdout.toString()).toBe('second');
        expect((await st(['lookup', 'service', SVC, 'account', 'a1'])).stdout.toString()).toBe('second');
      }, 30_000);

      it('lookup on a terminal adds the newline, like the real tool', async () => {
        const ours = await drive('shim-tty', ['secret-tool', 'lookup', 'service', SVC, 'account', 'a1']);
        const theirs = await drive('real-tty', ['secret-tool', 'lookup', 'service', SVC, 'account', 'a1']);
        expect(theirs.stdout.toString()).toBe('second\r\n');
        expect(text(ours)).toEqual(text(theirs));
      }, 30_000);

      it('lookup and clear of a missing item: status 1, no output, in both', async () => {
        // An empty value names no item either: the real tool finds nothing, and so does the shim.
        for (const missing of [
          ['service', SVC, 'account', 'nobody'],
          ['service', '', 'account', 'nobody'],
          ['service', SVC, 'account', ''],
        ]) {
          for (const op of ['lookup', 'clear']) {
            const theirs = await real([op, ...missing]);
            expect(text(theirs)).toEqual({ status: 1, stdout: '', stderr: '' });
            expect(text(await st([op, ...missing]))).toEqual(text(theirs));
          }
        }
      }, 30_000);

      it('search prints the same item the same way, except the object path line', async () => {
        const service = `${SVC}-search`;
        expect(
          (await st(['store', '--label=Searched', 'service', service, 'account', 'sa'], 'found-me')).status,
        ).toBe(0);
        try {
          for (const all of [[], ['--all']]) {
            const argv = ['search', ...all, 'service', service];
            const ours = await st(argv);
            const theirs = await real(argv);
            expect(ours.status).toBe(theirs.status);
            expect(ours.stdout.toString().split('\n')[0]).toBe('[no path]');
            expect(theirs.stdout.toString()).toMatch(/^\[\/\d+\]\n/);
            expect(withoutPath(ours.stdout)).toBe(withoutPath(theirs.stdout));
            // Attribute lines: the real tool prints them in hash-table order; compared as sets.
            expect(sortedLines(ours.stderr)).toEqual(sortedLines(theirs.stderr));
            expect(theirs.stdout.toString()).toContain('secret = found-me\n');
          }
          // Nothing matching: status 0, no output, in both.
          const none = ['search', '--all', 'service', `${service}-none`];
          expect(text(await st(none))).toEqual(text(await real(none)));
        } finally {
          await real(['clear', 'service', service]);
        }
      }, 30_000);

      it('search --all shows every matching item', async () => {
        const service = `${SVC}-many`;
        for (const account of ['m1', 'm2']) {
          expect(
            (
              await st(
                ['store', `--label=${account}`, 'service', service, 'account', account],
                `v-${account}`,
              )
            ).status,
          ).toBe(0);
        }
        try {
          const block = (s: Buffer) => withoutPath(s).split('[PATH]\n').filter(Boolean).sort();
          const ours = await st(['search', '--all', 'service', service]);
          const theirs = await real(['search', '--all', 'service', service]);
          expect(block(ours.stdout)).toHaveLength(2);
          expect(block(ours.stdout)).toEqual(block(theirs.stdout));
          expect(sortedLines(ours.stderr)).toEqual(sortedLines(theirs.stderr));
        } finally {
          await real(['clear', 'service', service]);
        }
      }, 30_000);

      it('search --all shows one item per service/account when another tool stored several under it', async () => {
        const service = `${SVC}-dup`;
        // The real tool keeps items whose attributes differ apart: two under d1, one under d2.
        for (const [account, host] of [
          ['d1', 'h1'],
          ['d1', 'h2'],
          ['d2', 'h1'],
        ] as const) {
          const stored = await real(
            ['store', `--label=${account}-${host}`, 'service', service, 'account', account, 'host', host],
            `v-${account}-${host}`,
          );
          expect(stored.status).toBe(0);
        }
        try {
          const blocks = withoutPath((await st(['search', '--all', 'service', service])).stdout)
            .split('[PATH]\n')
            .filter(Boolean);
          const secrets = blocks.map((b) => /^secret = (.*)$/m.exec(b)?.[1]).sort();
          const d1 = (await st(['lookup', 'service', service, 'account', 'd1'])).stdout.toString();
          expect(['v-d1-h1', 'v-d1-h2']).toContain(d1);
          // d1 once, as lookup returns it, and d2 too.
          expect(secrets).toEqual([d1, 'v-d2-h1']);
        } finally {
          await real(['clear', 'service', service]);
        }
      }, 30_000);

      it('clear through the shim deletes the gnome-keyring item', async () => {
        expect((await real(['store', '--label=c', 'service', SVC, 'account', 'c1'], 'to-clear')).status).toBe(
          0,
        );
        expect(text(await st(['clear', 'service', SVC, 'account', 'c1']))).toEqual({
          status: 0,
          stdout: '',
          stderr: '',
        });
        expect((await real(['lookup', 'service', SVC, 'account', 'c1'])).status).toBe(1);
        // And the other way round: the real tool clears, the shim sees nothing.
        expect((await st(['store', '--label=c', 'service', SVC, 'account', 'c2'], 'x')).status).toBe(0);
        const theirs = await real(['clear', 'service', SVC, 'account', 'c2']);
        expect(theirs.status).toBe(0);
        expect(text(await st(['clear', 'service', SVC, 'account', 'c2']))).toEqual(
          text(await real(['clear', 'service', SVC, 'account', 'c2'])),
        );
      }, 30_000);

      it('clear with an xdg:schema attribute is refused and deletes nothing; lookup ignores it', async () => {
        const service = `${SVC}-schema`;
        const item = ['service', service, 'account', 'k'];
        expect(
          (await real(['store', '--label=s', ...item, 'xdg:schema', 'org.example.Other'], 'keep')).status,
        ).toBe(0);
        try {
          const mine = ['xdg:schema', 'org.example.Mine'];
          // The real tool keeps the item: its schema is another one.
          expect(text(await real(['clear', 'service', service, ...mine]))).toEqual({
            status: 1,
            stdout: '',
            stderr: '',
          });
          const r = await st(['clear', 'service', service, ...mine]);
          expect(r.status).toBe(1);
          expect(r.stdout.length).toBe(0);
          expect(r.stderr.toString()).toMatch(
            /^secret-tool: clear with an "xdg:schema" attribute is refused: .*; nothing was deleted/,
          );
          expect((await real(['lookup', ...item])).stdout.toString()).toBe('keep');
          expect((await st(['lookup', 'service', service, ...mine])).stdout.toString()).toBe('keep');
        } finally {
          await real(['clear', 'service', service]);
        }
      }, 30_000);

      it('usage errors are the real ones, byte for byte', async () => {
        for (const argv of [
          [],
          ['lookup'],
          ['store', 'service', SVC, 'account', 'x'],
          ['search', '--bogus', 'a', 'b'],
        ]) {
          expect(text(await st(argv))).toEqual(text(await real(argv)));
        }
      }, 30_000);

      it('refuses what it cannot do, loudly', async () => {
        const lock = await st(['lock']);
        expect(lock.status).toBe(1);
        expect(lock.stderr.toString()).toMatch(/^secret-tool: lock is not supported by the Entraclaw shim/);
        const other = await st(['lookup', 'host', 'example.com']);
        expect(other.status).toBe(1);
        expect(other.stderr.toString()).toContain('attribute "host" is not supported');
        const empty = await st(['store', '--label=e', 'service', SVC, 'account', 'empty'], '');
        expect(empty.status).toBe(1);
        expect(empty.stderr.toString()).toBe(
          'secret-tool: Entraclaw does not store an empty secret (stdin was empty); nothing was stored\n',
        );
        expect((await real(['lookup', 'service', SVC, 'account', 'empty'])).status).toBe(1);
      }, 30_000);

      it('documented differences: an empty label becomes the default; a service-only item is not seen', async () => {
        const service = `${SVC}-diff`;
        try {
          expect((await st(['store', '--label=', 'service', service, 'account', 'l'], 'v')).status).toBe(0);
          expect((await real(['search', 'service', service, 'account', 'l'])).stdout.toString()).toContain(
            `label = entraclaw: ${service}/l\n`,
          );
          expect((await real(['store', '--label=only', 'service', `${service}-only`], 'v')).status).toBe(0);
          expect(text(await st(['lookup', 'service', `${service}-only`]))).toEqual({
            status: 1,
            stdout: '',
            stderr: '',
          });
        } finally {
          await real(['clear', 'service', service]);
          await real(['clear', 'service', `${service}-only`]);
        }
      }, 30_000);

      it('store of an empty line typed at the prompt says it was typed, not piped', async () => {
        const argv = ['secret-tool', 'store', '--label=e', 'service', SVC, 'account', 'typed-empty'];
        const r = await drive('shim-prompt', argv, '\n');
        expect(text(r)).toEqual({
          status: 1,
          stdout: '',
          stderr:
            'Password: \nsecret-tool: Entraclaw does not store an empty secret (the secret typed was empty); nothing was stored\n',
        });
        expect((await real(['lookup', 'service', SVC, 'account', 'typed-empty'])).status).toBe(1);
      }, 30_000);

      it('store typed on a controlling terminal: prompt on the terminal, erase and ^W edit as there', async () => {
        // ^? after "ä" erases the whole character; each ^W erases a word ("one", then "-" and "wörd"), as
        // the kernel's line editing does for the real tool's getpass. Stored as typed, they would be
        // another secret than the one the user saw.
        const typed = Buffer.from('p\u00e4\x7fa w\u00f6rd-one\x17\x17two\r');
        const results = [];
        for (const [mode, account] of [
          ['real-ctty', 'ctty-real'],
          ['shim-ctty', 'ctty-shim'],
        ] as const) {
          const argv = ['secret-tool', 'store', '--label=t', 'service', SVC, 'account', account];
          const r = await drive(mode, argv, typed);
          const stored = await real(['lookup', 'service', SVC, 'account', account]);
          results.push({ ...text(r), terminal: r.terminal?.toString(), stored: stored.stdout.toString() });
        }
        const [theirs, ours] = results;
        expect(theirs).toEqual({
          status: 0,
          stdout: '',
          stderr: '',
          terminal: 'Password: \r\n',
          stored: 'pa two',
        });
        expect(ours).toEqual(theirs);
      }, 30_000);

      it('lookup and search whose stdout cannot be written fail as the real tool does', async () => {
        for (const argv of [
          ['lookup', 'service', SVC, 'account', 'a1'],
          ['search', 'service', SVC, 'account', 'a1'],
        ]) {
          const theirs = await drive('real-full', ['secret-tool', ...argv]);
          expect(text(theirs)).toEqual({
            status: 1,
            stdout: '',
            stderr: "secret-tool: couldn't write password: No space left on device\n",
          });
          expect(text(await drive('shim-full', ['secret-tool', ...argv]))).toEqual(text(theirs));
        }
      }, 30_000);

      it('an argument that is not UTF-8 is refused as the real tool refuses it, and nothing is stored', async () => {
        const ff = raw(SVC, [0xff]);
        for (const argv of [
          ['lookup', 'service', ff],
          ['lookup', ff, '--help'],
          ['lookup', '--help', ff],
          ['lookup', '--bogus', ff],
          ['search', '--all', 'service', raw([0xe2, 0x82])],
          ['store', '--label=x', 'service', SVC, 'account', raw('nb', [0xfe])],
          ['store', '-l', raw([0xc3]), 'service', SVC, 'account', 'nb'],
          ['clear', '--', 'service', ff],
          [raw([0xff])],
        ]) {
          expect(text(await st(argv, 'pw')), argv.join(' ')).toEqual(text(await real(argv, 'pw')));
        }
        expect((await real(['lookup', 'service', SVC, 'account', 'nb\uFFFD'])).status).toBe(1);
        expect((await real(['lookup', 'service', SVC, 'account', 'nb'])).status).toBe(1);
        // A real U+FFFD is UTF-8: used as given.
        expect((await st(['store', '--label=r', 'service', SVC, 'account', 'r\uFFFD'], 'kept')).status).toBe(
          0,
        );
        expect((await real(['lookup', 'service', SVC, 'account', 'r\uFFFD'])).stdout.toString()).toBe('kept');
      }, 30_000);
    });

    describe('security', () => {
      const S = `${PREFIX}-sec`;
      const NOT_FOUND =
        'security: SecKeychainSearchCopyNext: The specified item could not be found in the keychain.\n';

      it('add -w, then find -w / -g / attributes; the item is the gnome-keyring item', async () => {
        expect(text(await sec(['add-generic-password', '-s', S, '-a', 'u1', '-w', 'hunter2']))).toEqual({
          status: 0,
          stdout: '',
          stderr: '',
        });
        expect(text(await sec(['find-generic-password', '-s', S, '-a', 'u1', '-w']))).toEqual({
          status: 0,
          stdout: 'hunter2\n',
          stderr: '',
        });
        // The same item through the real secret-tool: the raw value, label defaulting to the service.
        expect((await real(['lookup', 'service', S, 'account', 'u1'])).stdout.toString()).toBe('hunter2');
        const g = await sec(['find-generic-password', '-g', '-s', S, '-a', 'u1']);
        expect(g.status).toBe(0);
        expect(g.stderr.toString()).toBe('password: "hunter2"\n');
        const block = g.stdout.toString();
        expect(block).toMatch(
          /^keychain: ".*\/Library\/Keychains\/login\.keychain-db"\nversion: 512\nclass: "genp"\nattributes:\n/,
        );
        expect(block).toContain(`    "acct"<blob>="u1"\n`);
        expect(block).toContain(`    "svce"<blob>="${S}"\n`);
        expect(block).toContain(`    0x00000007 <blob>="${S}"\n`);
        const attrs = await sec(['find-generic-password', '-s', S, '-a', 'u1']);
        expect(text(attrs)).toEqual({ status: 0, stdout: block, stderr: '' });
        // Clustered flags and a search by account alone (needs list) find the same item.
        expect((await sec(['find-generic-password', '-a', 'u1', '-s', S, '-gw'])).stdout.toString()).toBe(
          'hunter2\n',
        );
        expect((await sec(['find-generic-password', '-s', S, '-w'])).stdout.toString()).toBe('hunter2\n');
      }, 30_000);

      it('-X hex round trip, binary value shown as hex by find -w', async () => {
        expect((await sec(['add-generic-password', '-s', S, '-a', 'hex', '-X', '00ff41'])).status).toBe(0);
        expect((await real(['lookup', 'service', S, 'account', 'hex'])).stdout).toEqual(
          Buffer.from([0x00, 0xff, 0x41]),
        );
        expect(text(await sec(['find-generic-password', '-s', S, '-a', 'hex', '-w']))).toEqual({
          status: 0,
          stdout: '00ff41\n',
          stderr: '',
        });
        const g = await sec(['find-generic-password', '-s', S, '-a', 'hex', '-g']);
        expect(g.stderr.toString()).toBe('password: 0x00FF41  "\\000\\377A"\n');
      }, 30_000);

      it('a password beginning with "-" is the value of -w', async () => {
        expect((await sec(['add-generic-password', '-a', 'dash', '-s', S, '-w', '-secret-'])).status).toBe(0);
        expect((await sec(['find-generic-password', '-s', S, '-a', 'dash', '-w'])).stdout.toString()).toBe(
          '-secret-\n',
        );
        expect((await real(['lookup', 'service', S, 'account', 'dash'])).stdout.toString()).toBe('-secret-');
      }, 30_000);

      it('duplicate without -U is 45; -U updates', async () => {
        const dup = await sec(['add-generic-password', '-s', S, '-a', 'u1', '-w', 'other']);
        expect(text(dup)).toEqual({
          status: 45,
          stdout: '',
          stderr:
            'security: SecKeychainItemCreateFromContent (<default>): The specified item already exists in the keychain.\n',
        });
        expect((await real(['lookup', 'service', S, 'account', 'u1'])).stdout.toString()).toBe('hunter2');
        expect((await sec(['add-generic-password', '-U', '-s', S, '-a', 'u1', '-w', 'updated'])).status).toBe(
          0,
        );
        expect((await sec(['find-generic-password', '-s', S, '-a', 'u1', '-w'])).stdout.toString()).toBe(
          'updated\n',
        );
        expect((await real(['lookup', 'service', S, 'account', 'u1'])).stdout.toString()).toBe('updated');
      }, 30_000);

      it('not found is 44 with the real message', async () => {
        for (const argv of [
          ['find-generic-password', '-s', S, '-a', 'nobody', '-w'],
          ['find-generic-password', '-s', `${S}-none`],
          ['delete-generic-password', '-s', S, '-a', 'nobody'],
          ['find-internet-password', '-s', S, '-a', 'nobody'],
        ]) {
          expect(text(await sec(argv))).toEqual({ status: 44, stdout: '', stderr: NOT_FOUND });
        }
      }, 30_000);

      it('delete prints the item and removes it from gnome-keyring', async () => {
        expect((await sec(['add-generic-password', '-s', S, '-a', 'del', '-w', 'bye'])).status).toBe(0);
        const attrs = (await sec(['find-generic-password', '-s', S, '-a', 'del'])).stdout.toString();
        const del = await sec(['delete-generic-password', '-s', S, '-a', 'del']);
        expect(text(del)).toEqual({ status: 0, stdout: attrs, stderr: 'password has been deleted.\n' });
        expect((await real(['lookup', 'service', S, 'account', 'del'])).status).toBe(1);
        expect((await sec(['delete-generic-password', '-s', S, '-a', 'del'])).status).toBe(44);
      }, 30_000);

      it('internet passwords: add, find (class inet), delete', async () => {
        const host = `${PREFIX}-inet`;
        expect((await sec(['add-internet-password', '-s', host, '-a', 'me', '-w', 'net-pw'])).status).toBe(0);
        expect((await sec(['find-internet-password', '-s', host, '-a', 'me', '-w'])).stdout.toString()).toBe(
          'net-pw\n',
        );
        const g = await sec(['find-internet-password', '-g', '-s', host, '-a', 'me']);
        expect(g.stdout.toString()).toContain('class: "inet"\n');
        expect(g.stdout.toString()).toContain(`    "srvr"<blob>="${host}"\n`);
        expect(g.stderr.toString()).toBe('password: "net-pw"\n');
        expect(
          (await sec(['add-internet-password', '-s', host, '-a', 'me', '-w', 'x'])).stderr.toString(),
        ).toBe(
          'security: SecKeychainAddInternetPassword <NULL>: The specified item already exists in the keychain.\n',
        );
        // -l is part of an internet password's search (its primary key would need -d -r -t -P -p) and of a
        // generic one's only without -s and -a, as in keychain_find.c: a wrong label finds and deletes nothing.
        const wrongLabel = ['-s', host, '-a', 'me', '-l', 'not-its-label'];
        expect(text(await sec(['find-internet-password', ...wrongLabel, '-w']))).toEqual({
          status: 44,
          stdout: '',
          stderr: NOT_FOUND,
        });
        expect((await sec(['delete-internet-password', ...wrongLabel])).status).toBe(44);
        expect((await sec(['find-internet-password', '-s', host, '-a', 'me', '-l', host, '-w'])).status).toBe(
          0,
        );
        expect((await sec(['find-generic-password', ...wrongLabel, '-w'])).stdout.toString()).toBe(
          'net-pw\n',
        );
        const del = await sec(['delete-internet-password', '-s', host, '-a', 'me']);
        expect(del.status).toBe(0);
        expect(del.stderr.toString()).toBe('password has been deleted.\n');
      }, 30_000);

      it('-w as the last option prompts twice (stdin not a terminal)', async () => {
        const ok = await sec(['add-generic-password', '-s', S, '-a', 'prompted', '-w'], 'typed\ntyped\n');
        expect(text(ok)).toEqual({
          status: 0,
          stdout: '',
          stderr: 'password data for new item: retype password for new item: ',
        });
        expect((await real(['lookup', 'service', S, 'account', 'prompted'])).stdout.toString()).toBe('typed');
        const retry = await sec(
          ['add-generic-password', '-U', '-s', S, '-a', 'prompted', '-w'],
          'a\nb\nc\nc\n',
        );
        expect(retry.status).toBe(0);
        expect(retry.stderr.toString()).toContain("passwords don't match\n");
        expect((await real(['lookup', 'service', S, 'account', 'prompted'])).stdout.toString()).toBe('c');
        const ended = await sec(
          ['add-generic-password', '-U', '-s', S, '-a', 'prompted', '-w'],
          'only-once\n',
        );
        expect(ended.status).toBe(1);
        expect(ended.stderr.toString()).toContain(
          'input ended before the password was entered twice; nothing was stored',
        );
        expect((await real(['lookup', 'service', S, 'account', 'prompted'])).stdout.toString()).toBe('c');
      }, 30_000);

      it('-w as the last option on a terminal: no echo', async () => {
        const r = await drive(
          'shim-prompt',
          ['security', 'add-generic-password', '-U', '-s', S, '-a', 'tty', '-w'],
          'secret-typed\nsecret-typed\n',
        );
        expect(r.status, r.stderr.toString()).toBe(0);
        expect(r.stderr.toString()).toBe('password data for new item: \nretype password for new item: \n');
        expect(r.terminal?.toString() ?? '').not.toContain('secret-typed');
        expect((await real(['lookup', 'service', S, 'account', 'tty'])).stdout.toString()).toBe(
          'secret-typed',
        );
      }, 30_000);

      it('-i runs one command per line and reports failures', async () => {
        const I = `${PREFIX}-i`;
        const script = [
          `add-generic-password -s ${I} -a one -w 'first value'`,
          `find-generic-password -s ${I} -a one -w`,
          `find-generic-password -s ${I} -a missing -w`,
          '',
          `add-generic-password -s ${I} -a one -w dup`,
          `delete-generic-password -s ${I} -a one`,
          `find-generic-password -s ${I} -a one`,
          '',
        ].join('\n');
        const r = await sec(['-i'], script);
        const block = r.stdout.toString().slice('first value\n'.length);
        expect(r.stdout.toString().startsWith('first value\n')).toBe(true);
        expect(block).toMatch(/^keychain: /);
        expect(r.stderr.toString()).toBe(
          `${NOT_FOUND}find-generic-password: returned -25300\n` +
            'security: SecKeychainItemCreateFromContent (<default>): The specified item already exists in the keychain.\n' +
            'add-generic-password: returned -25299\n' +
            'password has been deleted.\n' +
            `${NOT_FOUND}find-generic-password: returned -25300\n`,
        );
        // The exit status is the last command's: not found.
        expect(r.status).toBe(44);
        // -q drops the "returned" lines; an empty last line resets the status.
        const q = await sec(['-q', '-i'], `find-generic-password -s ${I} -a one\n\n`);
        expect(text(q)).toEqual({ status: 0, stdout: '', stderr: NOT_FOUND });
      }, 30_000);

      it('an expired token fails a read with status 1; its metadata still shows', async () => {
        cli(
          [
            'secret',
            'set',
            S,
            'stale',
            '--store',
            'secret-service',
            '--kind',
            'token',
            '--expires-at',
            '2020-01-01T00:00:00Z',
            '--scope',
            'repo read:org',
          ],
          'stale-token',
        );
        const r = await sec(['find-generic-password', '-s', S, '-a', 'stale', '-w']);
        expect(r.status).toBe(1);
        expect(r.stdout.length).toBe(0);
        expect(r.stderr.toString()).toContain(`security: entraclaw could not complete read of "${S}/stale"`);
        expect(r.stderr.toString()).toContain('expired at 2020-01-01T00:00:00.000Z');
        // What to do about it: the audit log it pointed at only repeats that it expired.
        // The daemon's command, which keeps the token's kind and scope (a set replaces the whole item).
        const refresh = `refresh it with: entraclaw secret set ${S} stale --kind token --expires-at NEW_EXPIRY --scope 'repo read:org'\n`;
        expect(r.stderr.toString()).toContain(refresh);
        expect(r.stderr.toString()).not.toContain('entraclaw audit');
        expect((await sec(['find-generic-password', '-s', S, '-a', 'stale'])).status).toBe(0);
        const lookup = await st(['lookup', 'service', S, 'account', 'stale']);
        expect(lookup.status).toBe(1);
        expect(lookup.stderr.toString()).toContain('expired at 2020-01-01T00:00:00.000Z');
        expect(lookup.stderr.toString()).toContain(refresh);
        // A search by service alone reads an item the query does not name: the hint names it all the same.
        const search = await st(['search', '--all', 'service', S]);
        expect(search.status).toBe(1);
        expect(search.stderr.toString()).toContain(refresh);
        expect((await real(['lookup', 'service', S, 'account', 'stale'])).stdout.toString()).toBe(
          'stale-token',
        );
      }, 30_000);

      it('refuses attributes Entraclaw items do not have, loudly', async () => {
        const r = await sec(['find-generic-password', '-s', S, '-a', 'u1', '-j', 'comment', '-w']);
        expect(r.status).toBe(1);
        expect(r.stdout.length).toBe(0);
        expect(r.stderr.toString()).toContain('-j (comment) is not supported by the Entraclaw shim');
        const add = await sec(['add-internet-password', '-s', S, '-a', 'u9', '-r', 'htps', '-w', 'x']);
        expect(add.status).toBe(1);
        expect((await real(['lookup', 'service', S, 'account', 'u9'])).status).toBe(1);
      }, 30_000);

      it('an argument that is not UTF-8 is a usage error (2), never used lossily', async () => {
        const NOT_UTF8 = (n: number) =>
          `security: argument ${n} is not valid UTF-8; nothing was done (Entraclaw takes names and passwords as UTF-8 text; for a binary password use -X HEX)\n`;
        const add = await sec([
          'add-generic-password',
          '-U',
          '-s',
          S,
          '-a',
          'bin',
          '-w',
          raw([0xff, 0xfe], 'pw'),
        ]);
        expect(text(add)).toEqual({ status: 2, stdout: '', stderr: NOT_UTF8(8) });
        expect((await real(['lookup', 'service', S, 'account', 'bin'])).status).toBe(1);
        // Names that differ only in a byte that is not UTF-8 are never taken for one item.
        const named = await sec(['add-generic-password', '-s', raw(S, [0xff]), '-a', 'bin', '-w', 'x']);
        expect(text(named)).toEqual({ status: 2, stdout: '', stderr: NOT_UTF8(3) });
        expect((await sec(['find-generic-password', '-s', raw(S, [0xfe]), '-a', 'bin', '-w'])).status).toBe(
          2,
        );
        expect((await real(['lookup', 'service', `${S}\uFFFD`, 'account', 'bin'])).status).toBe(1);
        // What the message suggests stores exactly those bytes.
        expect(
          (await sec(['add-generic-password', '-U', '-s', S, '-a', 'bin', '-X', 'fffe7077'])).status,
        ).toBe(0);
        expect((await real(['lookup', 'service', S, 'account', 'bin'])).stdout).toEqual(
          Buffer.from([0xff, 0xfe, 0x70, 0x77]),
        );
      }, 30_000);

      it('-i: a line that is not UTF-8 is not run (status 2); a line ends at its first NUL', async () => {
        const I = `${PREFIX}-i`;
        const script = Buffer.concat([
          Buffer.from(`add-generic-password -U -s ${I} -a nul -w first\n`),
          Buffer.from(`add-generic-password -U -s ${I} -a nul -w `),
          Buffer.from([0xff, 0xfe, 0x0a]),
          Buffer.from(`find-generic-password -s ${I} -a nul -w`),
          Buffer.from([0x00]),
          Buffer.from(' -j not-parsed\n'),
        ]);
        expect(text(await sec(['-i'], script))).toEqual({
          status: 0,
          stdout: 'first\n',
          stderr:
            'security: input line 2 is not valid UTF-8 and was not run (Entraclaw takes names and passwords as UTF-8 text; for a binary password use -X HEX)\n',
        });
        expect((await real(['lookup', 'service', I, 'account', 'nul'])).stdout.toString()).toBe('first');
        const last = await sec(
          ['-i'],
          Buffer.from([...Buffer.from(`find-generic-password -s ${I} -a `), 0xc3, 0x0a]),
        );
        expect(last.status).toBe(2);
        expect(last.stdout.length).toBe(0);
      }, 30_000);
    });

    describe('the request is decided for the program that ran the shim', () => {
      it('a parent in another user namespace than the daemon is refused, though the shim is in the session', async () => {
        const control = await drive('shim', ['secret-tool', 'lookup', 'service', SVC, 'account', 'a1']);
        expect(control.status, control.stderr.toString()).toBe(0);
        const r = await drive('shim-unshared', ['secret-tool', 'lookup', 'service', SVC, 'account', 'a1']);
        expect(r.status).toBe(1);
        expect(r.stdout.length).toBe(0);
        expect(r.stderr.toString()).toContain('another user namespace');
      }, 30_000);

      it('an unregistered parent is refused although the shim is ours, and is queued under its own name', async () => {
        const stOut = await drive('shim', ['secret-tool', 'lookup', 'service', SVC, 'account', 'a1'], '', {
          who: stranger,
        });
        expect(stOut.status).toBe(1);
        expect(stOut.stdout.length).toBe(0);
        const message = stOut.stderr.toString();
        expect(message).toContain(`read of "${SVC}/a1" is waiting for the user's approval`);
        const id = /entraclaw approve (p-[0-9a-f]+)/.exec(message)?.[1];
        expect(id, message).toBeDefined();
        const secOut = await drive(
          'shim',
          ['security', 'find-generic-password', '-s', SVC, '-a', 'a1', '-w'],
          '',
          { who: stranger },
        );
        expect(secOut.status).toBe(36);
        expect(secOut.stdout.length).toBe(0);
        expect(secOut.stderr.toString()).toMatch(
          /^security: read of ".*" is waiting for the user's approval: .*\nsecurity: ask the user to run: entraclaw approve p-/,
        );

        const pending = JSON.parse(cli(['pending', '--json']).stdout.toString()) as Array<{
          id: string;
          exe: string;
          script?: string;
        }>;
        expect(pending.find((p) => p.id === id)).toMatchObject({ exe: PYTHON_REAL, script: stranger });
        expect(pending.some((p) => p.exe === NODE)).toBe(false);

        // The hint asks for everything the command needs, so one approval covers it: a lookup by service
        // alone lists, then reads; an add without -U looks the item up, then creates it.
        const partial = await drive('shim', ['secret-tool', 'lookup', 'service', SVC], '', { who: stranger });
        expect(partial.stderr.toString()).toMatch(
          new RegExp(`ask the user to run: entraclaw approve p-[0-9a-f]+ --grant ${SVC} --ops list,read\n`),
        );
        const add = await drive(
          'shim',
          ['security', 'add-generic-password', '-s', SVC, '-a', 'new', '-w', 'x'],
          '',
          {
            who: stranger,
          },
        );
        expect(add.status).toBe(36);
        expect(add.stderr.toString()).toMatch(
          new RegExp(
            `ask the user to run: entraclaw approve p-[0-9a-f]+ --grant ${SVC}/new --ops read,create\n`,
          ),
        );
      }, 30_000);

      it('a registered client without a grant for the item is denied (51 / 1), naming the item', async () => {
        const outside = randomName('outside');
        const secOut = await sec(['find-generic-password', '-s', outside, '-a', 'x', '-w']);
        expect(secOut.status).toBe(51);
        expect(secOut.stderr.toString()).toContain(`security: entraclaw denied read of "${outside}/x"`);
        const stOut = await st(['lookup', 'service', outside, 'account', 'x']);
        expect(stOut.status).toBe(1);
        expect(stOut.stderr.toString()).toContain(`secret-tool: entraclaw denied read of "${outside}/x"`);
      }, 30_000);

      it('a denial names the request the daemon refused, also when the command asks for another first', async () => {
        const outside = randomName('outside');
        // add without -U reads before it creates; delete reads (selects) before it deletes.
        for (const argv of [
          ['security', 'add-generic-password', '-s', outside, '-a', 'bot', '-w', 'x'],
          ['security', 'delete-generic-password', '-s', outside, '-a', 'bot'],
        ]) {
          const out = await drive('shim', argv);
          const message = out.stderr.toString();
          expect(out.status, message).toBe(51);
          const asked = /entraclaw denied (\w+) of /.exec(message)?.[1];
          const refused = /no grant of client "shim-driver" allows (\w+) on /.exec(message)?.[1];
          expect(refused, message).toBe('read');
          expect(asked, message).toBe(refused);
        }
      }, 30_000);

      it('the suggested grant command works as printed, for names with / * % and spaces', async () => {
        const service = `${randomName('odd')}/x *%`;
        const account = 'p w';
        const denied = await sec(['find-generic-password', '-s', service, '-a', account, '-w']);
        expect(denied.status).toBe(51);
        const hint = /can allow it with: entraclaw (grant \S+ --grant \S+ --ops \S+)/.exec(
          denied.stderr.toString(),
        );
        expect(hint, denied.stderr.toString()).not.toBeNull();
        // Every word of it is one shell word as printed: split on spaces, it is exactly what a shell passes.
        cli(hint![1]!.split(' '));
        const now = await sec(['find-generic-password', '-s', service, '-a', account, '-w']);
        expect(now.status, now.stderr.toString()).toBe(44);
      }, 30_000);

      it('a denial hints a grant of every op the command needs; followed as printed, the command runs', async () => {
        const service = randomName('hint');
        const grantIn = (o: Out) =>
          /can allow it with: entraclaw (grant \S+ --grant \S+ --ops \S+)\n/.exec(o.stderr.toString())?.[1];
        const add = ['add-generic-password', '-s', service, '-a', 'a9', '-w', 'pw'];
        const del = ['delete-generic-password', '-s', service, '-a', 'a9'];
        try {
          // add without -U looks the item up first, then creates it.
          const addDenied = await sec(add);
          expect(addDenied.status).toBe(51);
          expect(grantIn(addDenied)).toBe(`grant shim-driver --grant ${service}/a9 --ops read,create`);
          cli(grantIn(addDenied)!.split(' '));
          expect(text(await sec(add))).toEqual({ status: 0, stdout: '', stderr: '' });
          // delete reads the item (to print it), then deletes it; the daemon refused only the delete.
          const delDenied = await sec(del);
          expect(delDenied.status).toBe(51);
          expect(delDenied.stderr.toString()).toContain('allows delete on');
          expect(grantIn(delDenied)).toBe(`grant shim-driver --grant ${service}/a9 --ops read,delete`);
          cli(grantIn(delDenied)!.split(' '));
          expect((await sec(del)).status).toBe(0);
        } finally {
          await real(['clear', 'service', service]);
        }
      }, 30_000);

      it("the audit names the parent's interpreter and script, and the shim as `via`", async () => {
        const marker = `${SVC}-audit`;
        expect((await st(['store', '--label=a', 'service', marker, 'account', 'x'], 'audited')).status).toBe(
          0,
        );
        expect(
          (
            await drive('shim', ['secret-tool', 'lookup', 'service', marker, 'account', 'x'], '', {
              who: stranger,
            })
          ).status,
        ).toBe(1);
        const lines = audit().filter((l) => l.service === marker);
        const granted = lines.find((l) => l.op === 'set' && l.decision === 'granted');
        expect(granted).toMatchObject({ exe: PYTHON_REAL, script: driver });
        expect(granted?.via?.exe).toBe(`${NODE} ${SHIM_SCRIPTS['secret-tool']}`);
        expect(granted?.via?.pid).not.toBe(granted?.pid);
        const queued = lines.find((l) => l.op === 'get' && l.decision === 'pending');
        expect(queued).toMatchObject({ exe: PYTHON_REAL, script: stranger });
        expect(queued?.via?.exe).toBe(`${NODE} ${SHIM_SCRIPTS['secret-tool']}`);
        // The security shim is recognised the same way.
        await sec(['find-generic-password', '-s', marker, '-a', 'x', '-w']);
        const viaSecurity = audit().filter(
          (l) => l.service === marker && l.via?.exe.endsWith('security-main.cjs'),
        );
        expect(viaSecurity.at(-1)).toMatchObject({ decision: 'granted', exe: PYTHON_REAL, script: driver });
        await real(['clear', 'service', marker]);
      }, 30_000);
    });

    it('a refused parent (inline python -c) is audited as itself: its pid, exe and hash, no script; the shim only as `via`', async () => {
      const marker = `${SVC}-refused`;
      const code = `import os, subprocess; subprocess.run([os.environ["SHIM_DIR"] + "/security", "find-generic-password", "-s", "${marker}", "-a", "x", "-w"], capture_output=True); print(os.getpid())`;
      const r = await run(PYTHON, ['-c', code], {
        env: { ...env, ENTRACLAW_SOCKET: socket, SHIM_DIR: shimDir },
        timeoutMs: 30_000,
      });
      const parentPid = Number(r.stdout.trim());
      const line = audit()
        .filter((l) => l.service === marker)
        .at(-1);
      expect(line).toMatchObject({ decision: 'denied', pid: parentPid, exe: PYTHON_REAL });
      expect(line?.sha256).toBe(createHash('sha256').update(readFileSync(PYTHON_REAL)).digest('hex'));
      expect(line).not.toHaveProperty('script');
      expect(line?.via?.exe).toBe(`${NODE} ${SHIM_SCRIPTS.security}`);
      expect(line?.via?.pid).not.toBe(parentPid);
    }, 30_000);

    describe('daemon unreachable', () => {
      it('names the socket and `entraclaw agent`, exit 1', async () => {
        const gone = join(dir, 'nowhere', 'agent.sock');
        const e = { ...env, ENTRACLAW_SOCKET: gone, SHIM_DIR: shimDir };
        const stOut = await drive('shim', ['secret-tool', 'lookup', 'service', SVC, 'account', 'a1'], '', {
          env: e,
        });
        expect(stOut.status).toBe(1);
        expect(stOut.stdout.length).toBe(0);
        expect(stOut.stderr.toString()).toContain(gone);
        expect(stOut.stderr.toString()).toContain('`entraclaw agent`');
        const secOut = await drive(
          'shim',
          ['security', 'find-generic-password', '-s', SVC, '-a', 'a1', '-w'],
          '',
          { env: e },
        );
        expect(secOut.status).toBe(1);
        expect(secOut.stderr.toString()).toMatch(
          /^security: cannot connect to the entraclaw daemon at .*agent\.sock/,
        );
        expect(secOut.stderr.toString()).toContain('`entraclaw agent`');
        // Usage and help never need the daemon.
        const help = await drive('shim', ['secret-tool', 'lookup', '--help'], '', { env: e });
        expect(help.status).toBe(0);
      }, 30_000);
    });

    it('never leaks a value into the daemon log or the audit', () => {
      const files = [daemonLog, readFileSync(join(dir, 'state', 'entraclaw', 'audit.jsonl'), 'latin1')].join(
        '\n',
      );
      for (const secret of ['hunter2', 'updated', 'found-me', 'first value', 'net-pw', 'secret-typed']) {
        expect(files).not.toContain(secret);
      }
    });
  },
);
