// The CLI's own commands hold values too: `run` keeps the resolved environment while it waits on its
// child, `secret get` keeps the value while a slow reader drains stdout. A crash (kill -SEGV) of either
// must not leave a core file, while the child `run` started still dumps as it would anyway (the flag
// is reset by execve). Plain node, killed the same way, shows that this machine writes core files.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { waitFor } from '../support/broker.js';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';
import { randomName, requireOrSkip } from '../support/context.js';

const linux = process.platform === 'linux';
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-core-'));
const pass = join(dir, 'pass');
writeFileSync(pass, 'core dump test passphrase\n', { mode: 0o600 });
const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass, ENTRACLAW_STORE: 'encrypted-file' });
const CANARY = `CANARY-${randomName('core')}`;
const children: ChildProcess[] = [];
const orphans: number[] = [];
let n = 0;

/** A fresh, empty working directory: where a core file lands under core_pattern `core`. */
function cwd(name: string): string {
  const d = join(dir, `${n++}-${name}`);
  mkdirSync(d, { mode: 0o700 });
  return d;
}

/** Starts `node ARGS` in `where` with core dumps allowed, stdout a pipe the test reads (or not). */
function startDumping(args: string[], where: string, extra: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(
    'sh',
    ['-c', 'ulimit -c unlimited 2>/dev/null; exec "$@"', 'sh', process.execPath, ...args],
    { cwd: where, env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  return child;
}

/** Sends SIGSEGV and waits for the process to end. */
async function segv(child: ChildProcess): Promise<NodeJS.Signals | null> {
  const done = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
  child.kill('SIGSEGV');
  return done;
}

const cores = (d: string) => readdirSync(d).filter((f) => f.startsWith('core'));

/** Skips unless core_pattern writes plain files into the process's directory and plain node dumps. */
async function requireCoreFiles(ctx: TestContext): Promise<void> {
  const pattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
  requireOrSkip(
    ctx,
    pattern.startsWith('|') || pattern.includes('/')
      ? `core_pattern is ${pattern}: core files are not written to the process directory here`
      : undefined,
  );
  const control = cwd('control');
  const plain = startDumping(['-e', 'setInterval(() => {}, 1000)'], control);
  await waitFor(() => existsProc(plain.pid!), 'the control process');
  await segv(plain);
  requireOrSkip(
    ctx,
    cores(control).length === 0
      ? 'this machine writes no core files even for plain node; the CLI case would prove nothing'
      : undefined,
  );
}

/** Whether pid is node by now (the shell started first has exec'd it). */
function existsProc(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === realpathSync(process.execPath);
  } catch {
    return false;
  }
}

beforeAll(() => {
  // 256 KiB: more than a pipe holds, so `secret get` is still writing when nobody reads.
  const big = CANARY + 'x'.repeat(256 * 1024);
  for (const [account, value] of [
    ['small', CANARY],
    ['big', big],
  ]) {
    const r = runCli(['secret', 'set', 'core-svc', account!], env, value);
    expect(r.status, r.stderr).toBe(0);
  }
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of orphans) spawnSync('kill', ['-9', String(pid)]);
  rmSync(dir, { recursive: true, force: true });
});

describe.runIf(linux)('a crashing CLI command leaves no core file with a value', () => {
  it('run, waiting on its child, killed by SIGSEGV: no core; the child still dumps', async (ctx) => {
    await requireCoreFiles(ctx);
    const where = cwd('run');
    const pidFile = join(where, 'child.pid');
    const child = startDumping(
      ['--', CLI, 'run', '--', 'sh', '-c', `echo $$ > '${pidFile}'; exec sleep 60`],
      where,
      { TOKEN: 'entraclaw://core-svc/small' },
    );
    // The child started, so `run` has resolved TOKEN and holds the value.
    await waitFor(() => readdirSync(where).includes('child.pid'), 'the child of run');
    orphans.push(Number(readFileSync(pidFile, 'utf8')));
    expect(await segv(child)).toBe('SIGSEGV');
    expect(cores(where)).toEqual([]);

    // What run starts is not held to that: its own crash dumps where it would without entraclaw.
    const dumps = cwd('run-child');
    const crasher = startDumping(['--', CLI, 'run', '--', 'sh', '-c', 'kill -SEGV $$'], dumps, {
      TOKEN: 'entraclaw://core-svc/small',
    });
    await new Promise((r) => crasher.once('exit', r));
    expect(cores(dumps).length).toBe(1);
  }, 60_000);

  it('secret get, blocked on a stdout nobody reads, killed by SIGSEGV: no core', async (ctx) => {
    await requireCoreFiles(ctx);
    const where = cwd('get');
    const child = startDumping(['--', CLI, 'secret', 'get', 'core-svc', 'big'], where);
    // The first bytes of the value arrived: it is in the process's memory; the rest is not read.
    await new Promise<void>((resolve) =>
      child.stdout!.once('data', (b: Buffer) => {
        child.stdout!.pause();
        expect(b.toString().startsWith(CANARY)).toBe(true);
        resolve();
      }),
    );
    expect(await segv(child)).toBe('SIGSEGV');
    expect(cores(where)).toEqual([]);
  }, 60_000);
});
