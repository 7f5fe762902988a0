// README, threat model: `secret get`/`set`, `run`, `inject` and `vault rekey` make themselves
// non-dumpable, so "no program of yours can ptrace them"; every entraclaw process takes SIGUSR1 itself,
// so it opens no debugger; and `entraclaw sandbox`, like the daemon, refuses to start with a debugger
// open. core-dump.test.ts covers only the core files of `run` and `secret get`; this attacks each
// command where it holds a value, as another program of the same user would. Each attack is first shown
// to work on a plain node process, so the test can fail. As root (CAP_SYS_PTRACE bypasses the dumpable
// flag) everything runs as nobody instead.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { waitFor } from '../support/broker.js';
import { randomName } from '../support/context.js';
import { readableBuild } from '../support/readable-build.js';
import { PLAIN_PROCESS_PROBE, sameUserProbe } from '../support/same-user-probe.js';

const linux = process.platform === 'linux';
const root = linux && process.getuid!() === 0;
const NOBODY = 65534;
const as = root ? { uid: NOBODY, gid: NOBODY } : {};
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-hardened-'));
const build = root ? readableBuild() : undefined;
const cli = build?.cli ?? join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.cjs');
const SHIMS = join(import.meta.dirname, '..', '..', 'dist', 'shim');
const CANARY = `CANARY-${randomName('hardened')}`;
const children: ChildProcess[] = [];

const env: NodeJS.ProcessEnv = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: join(dir, 'home'),
  XDG_CONFIG_HOME: join(dir, 'config'),
  XDG_DATA_HOME: join(dir, 'data'),
  XDG_STATE_HOME: join(dir, 'state'),
  XDG_RUNTIME_DIR: join(dir, 'run'),
  ENTRACLAW_PASSPHRASE_FILE: join(dir, 'home', 'passphrase'),
  ENTRACLAW_STORE: 'encrypted-file',
};

/** A 0700 directory of the user the commands run as. */
function ownDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  if (root) chownSync(path, NOBODY, NOBODY);
  return path;
}

/** A 0600 file of the user the commands run as. */
function ownFile(path: string, text: string): string {
  writeFileSync(path, text, { mode: 0o600 });
  if (root) chownSync(path, NOBODY, NOBODY);
  return path;
}

/** Starts `node ARGS` as that user, every stdio a pipe the test reads (or not). */
function start(args: string[], extra: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, args, {
    cwd: join(dir, 'home'),
    env: { ...env, ...extra },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...as,
  });
  children.push(child);
  return child;
}

/** Starts the CLI with ARGS. */
const entraclaw = (args: string[], extra: NodeJS.ProcessEnv = {}) => start(['--', cli, ...args], extra);

/** Everything a child wrote on stderr so far. */
function stderrOf(child: ChildProcess): () => string {
  let text = '';
  child.stderr!.on('data', (b: Buffer) => {
    text += b.toString();
  });
  return () => text;
}

/** Resolves with the first chunk the child writes on stdout, then leaves the rest unread. */
function firstOutput(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`exited (${code ?? signal}) before any output`)));
    child.stdout!.once('data', (b: Buffer) => {
      child.stdout!.pause();
      resolve(b.toString());
    });
  });
}

/** The attacks of another program of that user on pid (sameUserProbe, run as that user). */
const probe = (pid: number) => sameUserProbe(pid, as);

/**
 * Whether the kernel counts pid as non-dumpable: the files in its /proc directory then belong to root. Used only where a
 * command gives no sign that it is past its first line (it waits on stdin), as the point to attack it.
 */
function nonDumpable(pid: number): boolean {
  const r = spawnSync('stat', ['-c', '%u', `/proc/${pid}/environ`], { encoding: 'utf8' });
  return r.stdout.trim() === '0';
}

beforeAll(() => {
  if (!linux) return;
  if (root) chmodSync(dir, 0o755);
  for (const d of ['home', 'config', 'data', 'state', 'run']) ownDir(join(dir, d));
  ownFile(env.ENTRACLAW_PASSPHRASE_FILE!, 'hardened commands passphrase\n');
  // 256 KiB: more than a pipe holds, so a command printing it is still writing when nobody reads.
  const big = CANARY + 'x'.repeat(256 * 1024);
  for (const [account, value] of [
    ['small', CANARY],
    ['big', big],
  ]) {
    const r = spawnSync(process.execPath, ['--', cli, 'secret', 'set', 'hard-svc', account!], {
      env,
      input: value,
      ...as,
    });
    expect(r.status, r.stderr.toString()).toBe(0);
  }
  ownFile(join(dir, 'home', 'tmpl'), '{{ entraclaw://hard-svc/big }}\n');
}, 60_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  build?.cleanup();
});

describe.runIf(linux)(
  'CLI commands holding a value cannot be looked into by other programs of the user',
  () => {
    it('a plain node process of that user can be (the control)', async () => {
      const plain = start(['-e', 'console.log("ready"); setInterval(() => {}, 1000)']);
      await firstOutput(plain);
      expect(probe(plain.pid!)).toEqual(PLAIN_PROCESS_PROBE);
    });

    it('secret get, blocked writing the value to a stdout nobody reads', async () => {
      const get = entraclaw(['secret', 'get', 'hard-svc', 'big']);
      expect((await firstOutput(get)).startsWith(CANARY)).toBe(true);
      expect(probe(get.pid!)).toEqual(['1', 'refused']);
    });

    it('inject, blocked writing the rendered template to a stdout nobody reads', async () => {
      const inject = entraclaw(['inject', '-i', join(dir, 'home', 'tmpl')]);
      expect((await firstOutput(inject)).startsWith(CANARY)).toBe(true);
      expect(probe(inject.pid!)).toEqual(['1', 'refused']);
    });

    it('run, waiting on the command it started with the value in its environment', async () => {
      const run = entraclaw(['run', '--', 'sh', '-c', 'echo started; exec sleep 60'], {
        TOKEN: 'entraclaw://hard-svc/small',
      });
      expect(await firstOutput(run)).toBe('started\n');
      expect(probe(run.pid!)).toEqual(['1', 'refused']);
    });

    it('secret set, reading the value from stdin', async () => {
      const set = entraclaw(['secret', 'set', 'hard-svc', 'typed']);
      set.stdin!.write(CANARY);
      await waitFor(() => nonDumpable(set.pid!) || set.exitCode !== null, 'secret set to be non-dumpable');
      expect(set.exitCode).toBeNull();
      expect(probe(set.pid!)).toEqual(['1', 'refused']);
    });

    it('vault rekey, waiting for the new passphrase', async () => {
      // A FIFO the test holds open for writing and never writes to: rekey has opened the vault and waits.
      const fifo = join(dir, 'home', 'new-pass');
      expect(spawnSync('mkfifo', ['-m', '600', fifo]).status).toBe(0);
      if (root) chownSync(fifo, NOBODY, NOBODY);
      const writer = openSync(fifo, 'r+');
      onTestFinished(() => closeSync(writer));
      const rekey = entraclaw(['vault', 'rekey', '--new-passphrase-file', fifo]);
      const stderr = stderrOf(rekey);
      await waitFor(
        () => nonDumpable(rekey.pid!) || rekey.exitCode !== null,
        'vault rekey to be non-dumpable',
      );
      expect(rekey.exitCode, stderr()).toBeNull();
      expect(probe(rekey.pid!)).toEqual(['1', 'refused']);
    });
  },
);

describe.runIf(linux)('a debugger in a CLI command', () => {
  // Node's message either way: "Debugger listening on ws://..." or, with the port taken, "Starting
  // inspector on 127.0.0.1:9229 failed".
  const inspector = /Debugger listening|Starting inspector/;

  it('kill -USR1 opens none in a command holding a value (plain node opens one on 127.0.0.1:9229)', async () => {
    const plain = start(['-e', 'console.log("ready"); setInterval(() => {}, 1000)']);
    const plainStderr = stderrOf(plain);
    await firstOutput(plain);
    // secret set waiting on stdin sits in its event loop, where node would open the debugger.
    const set = entraclaw(['secret', 'set', 'hard-svc', 'usr1']);
    const setStderr = stderrOf(set);
    set.stdin!.write(CANARY);
    await waitFor(() => nonDumpable(set.pid!) || set.exitCode !== null, 'secret set to be non-dumpable');
    expect(set.exitCode).toBeNull();
    set.kill('SIGUSR1');
    plain.kill('SIGUSR1');
    // Both signals were sent together to idle event loops: once the control shows its debugger, the
    // command has had as long to open one.
    await waitFor(() => inspector.test(plainStderr()), "plain node's debugger");
    const code = new Promise((r) => set.once('exit', r));
    set.stdin!.end();
    expect(await code).toBe(0);
    expect(setStderr()).not.toMatch(inspector);
  });

  it('kill -USR1 opens none in a shim waiting on the daemon (secret-tool, then security)', async () => {
    // A socket of the test's own user that takes the connection and never answers: the shim waits for its
    // hello reply in its event loop, where node would open the debugger.
    const sock = join(dir, 'mute.sock');
    const held = new Set<Socket>();
    const server = createServer((c) => held.add(c));
    await new Promise<void>((r) => server.listen(sock, r));
    onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    for (const [shim, args] of [
      ['secret-tool-main.cjs', ['lookup', 'service', 'hard-svc', 'account', 'small']],
      ['security-main.cjs', ['find-generic-password', '-s', 'hard-svc', '-a', 'small', '-w']],
    ] as const) {
      const plain = spawn(process.execPath, ['-e', 'console.log("ready"); setInterval(() => {}, 1000)']);
      children.push(plain);
      const plainStderr = stderrOf(plain);
      await firstOutput(plain);
      const connected = held.size;
      const child = spawn(process.execPath, [join(SHIMS, shim), ...args], {
        env: { ...env, ENTRACLAW_SOCKET: sock },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      const shimStderr = stderrOf(child);
      await waitFor(() => held.size > connected || child.exitCode !== null, `${shim} to connect`);
      expect(child.exitCode, shimStderr()).toBeNull();
      child.kill('SIGUSR1');
      plain.kill('SIGUSR1');
      await waitFor(() => inspector.test(plainStderr()), "plain node's debugger");
      plain.kill('SIGKILL');
      // The daemon hangs up: the shim fails as with no daemon, having stayed up through the signal.
      const code = new Promise((r) => child.once('exit', r));
      for (const c of held) c.destroy();
      expect(await code).not.toBeNull();
      expect(shimStderr()).not.toMatch(inspector);
    }
  }, 60_000);

  it('entraclaw sandbox with a debugger open (NODE_OPTIONS=--inspect) refuses to start (exit 4)', async () => {
    const project = ownDir(join(dir, 'home', 'project'));
    const marker = join(project, 'sandbox-ran');
    const box = entraclaw(['sandbox', '--project', project, '--', 'sh', '-c', `touch '${marker}'`], {
      NODE_OPTIONS: '--inspect=127.0.0.1:0',
    });
    const stderr = stderrOf(box);
    const code = await new Promise((r) => box.once('exit', r));
    expect(code, stderr()).toBe(4);
    expect(stderr()).toMatch(/a debugger was opened in this process/);
    expect(existsSync(marker)).toBe(false);
  }, 30_000);
});
