// identity/watch.ts against real processes: a watch holds while the process runs the image it was
// identified in, and lets go on exec (even of the same program, same argv, ASLR off), exit, a tracer, a
// changed script or a replaced binary.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  mkdtempSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { identifyAndWatch, stillWatched, unwatch, type Watch } from '../../src/identity/watch.js';
import { forgetStats, shareStats } from '../../src/lib/file-key.js';
import { native } from '../../src/lib/native.js';
import { waitFor } from '../support/broker.js';
import { requireOrSkip, rootOnly } from '../support/context.js';

const linux = process.platform === 'linux';
// /bin/sh is dash on Debian: what /proc/<pid>/exe shows.
const SH = linux ? realpathSync('/bin/sh') : '';
const SLEEP = linux ? realpathSync('/bin/sleep') : '';
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-watch-'));
const children: ChildProcess[] = [];
const fds: number[] = [];
const watches: Watch[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const w of watches.splice(0)) unwatch(w);
  for (const fd of fds.splice(0)) native().close(fd);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o755 });
  return path;
}

const until = (what: string, ok: () => boolean) => waitFor(ok, what, 5000);

const exeOf = (pid: number) => {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return '';
  }
};

/** Starts argv with a pipe on stdin, waits until it runs `exe`, and returns it with a pidfd. */
async function start(
  argv: string[],
  exe: string,
  env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' },
) {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'ignore'], env });
  children.push(child);
  const pid = child.pid!;
  await until(`${argv.join(' ')} to run ${exe}`, () => exeOf(pid).endsWith(exe));
  const pidfd = native().pidfdOpen(pid);
  fds.push(pidfd);
  return { child, pid, pidfd };
}

function watched(pid: number, pidfd: number): Watch {
  const { who, watch } = identifyAndWatch(pid, pidfd);
  if ('refused' in who) throw new Error(`refused: ${who.reason}`);
  if (!watch) throw new Error('not watched');
  watches.push(watch);
  return watch;
}

// sh runs the script; on a line from stdin the script execs `then` (same pid).
function execOnInput(then: string): string {
  return file(`exec-${Math.random().toString(36).slice(2)}.sh`, `read line\nexec ${then}\n`);
}

describe.skipIf(!linux)('watch', () => {
  it('holds while the process runs, for as many looks as asked', async () => {
    const script = execOnInput('sleep 30');
    const { pid, pidfd } = await start(['sh', script], SH);
    const w = watched(pid, pidfd);
    expect(w.identity.script).toBe(script);
    for (let i = 0; i < 100; i++) expect(stillWatched(w)).toBe(true);
  });

  it('lets go when the process execs another program', async () => {
    const { child, pid, pidfd } = await start(['sh', execOnInput('sleep 30')], SH);
    const w = watched(pid, pidfd);
    child.stdin!.write('go\n');
    await until('the exec', () => exeOf(pid).endsWith(SLEEP));
    expect(stillWatched(w)).toBe(false);
  });

  it('lets go when it execs the very same program and argv with ASLR off (the pinned mm is gone)', async () => {
    // `exec sh "$0"` again: same binary, same argv, same environment; setarch -R keeps the layout the same.
    const script = file('again.sh', 'read line\nexec sh "$0"\n');
    const arch = execFileSync('uname', ['-m']).toString().trim();
    // dash exports PWD on start: give it the same value up front so the environment keeps its size.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', PWD: process.cwd() };
    const { child, pid, pidfd } = await start(['setarch', arch, '-R', 'sh', script], SH, env);
    const w = watched(pid, pidfd);
    const before = native().procLook(pid, w.envFd, w.statFd, w.statusFd);
    child.stdin!.write('go\n');
    // The new image reads stdin again: wait until the old one's mm is gone.
    await until('the exec', () => !native().procLook(pid, w.envFd, w.statFd, w.statusFd).envAlive);
    const after = native().procLook(pid, -1, -1, -1);
    expect(after.layout).toBe(before.layout);
    expect(stillWatched(w)).toBe(false);
  });

  it('with looks shared across watches of one pid (as the daemon does per batch), only the watch of the live image holds', async () => {
    // As above, an ASLR-off exec of the same program: the layouts match, so only each watch's own pinned
    // mm tells the watch of the old image from the watch of the new one, whichever is looked at first.
    const script = file('again-shared.sh', 'read line\nexec sh "$0"\n');
    const arch = execFileSync('uname', ['-m']).toString().trim();
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', PWD: process.cwd() };
    const { child, pid, pidfd } = await start(['setarch', arch, '-R', 'sh', script], SH, env);
    const old = watched(pid, pidfd);
    child.stdin!.write('go\n');
    await until('the exec', () => !native().procLook(pid, old.envFd, old.statFd, old.statusFd).envAlive);
    const now = watched(pid, pidfd);
    expect(now.layout).toBe(old.layout);
    const stop = shareStats();
    try {
      for (const order of [
        [now, old],
        [old, now],
      ]) {
        forgetStats();
        expect(order.map((w) => stillWatched(w))).toEqual(order.map((w) => w === now));
      }
    } finally {
      stop();
    }
  });

  it("records the process's user namespace, as /proc names it, to compare on each request", async () => {
    const { pid, pidfd } = await start(['sh', execOnInput('sleep 30')], SH);
    const w = watched(pid, pidfd);
    expect(w.userns).toMatch(/^user:\[\d+\]$/);
    expect(w.userns).toBe(readlinkSync(`/proc/${pid}/ns/user`));
    expect(native().procLook(pid, w.envFd, w.statFd, w.statusFd).userns).toBe(w.userns);
  });

  it('lets go when the process exits', async () => {
    const a = await start(['sh', execOnInput('sleep 30')], SH);
    const w = watched(a.pid, a.pidfd);
    a.child.kill('SIGKILL');
    await until('the exit', () => exeOf(a.pid) === '');
    expect(stillWatched(w)).toBe(false);
  });

  it('lets go when the pid number goes to another process running the same program (held /proc fds)', async (ctx) => {
    requireOrSkip(ctx, rootOnly('choosing the next pid (/proc/sys/kernel/ns_last_pid)'));
    // ns_last_pid makes the next fork take a chosen pid; other forks on the machine can win the race.
    const script = execOnInput('sleep 30');
    for (let attempt = 0; attempt < 20; attempt++) {
      const a = await start(['sh', script], SH);
      const w = watched(a.pid, a.pidfd);
      a.child.kill('SIGKILL');
      await until('the exit', () => exeOf(a.pid) === '');
      try {
        writeFileSync('/proc/sys/kernel/ns_last_pid', String(a.pid - 1));
      } catch (err) {
        ctx.skip(`cannot set ns_last_pid: ${(err as Error).message}`);
      }
      const b = spawn('sh', [script], {
        stdio: ['pipe', 'ignore', 'ignore'],
        env: { PATH: process.env.PATH ?? '' },
      });
      children.push(b);
      if (b.pid !== a.pid) continue;
      await until('the new process to run sh', () => exeOf(b.pid!) === SH);
      // The path /proc/<pid>/stat now names the new process; the held fds still name the dead one.
      expect(native().procLook(a.pid, -1, -1, -1).state).not.toBe('X');
      expect(() => native().procLook(a.pid, -1, w.statFd, w.statusFd)).toThrow(
        expect.objectContaining({ code: 'ESRCH' }),
      );
      expect(stillWatched(w)).toBe(false);
      return;
    }
    ctx.skip('the recycled pid kept going to other processes');
  });

  it('lets go when a tracer attaches', async () => {
    const { pid, pidfd } = await start(['sh', execOnInput('sleep 30')], SH);
    const w = watched(pid, pidfd);
    const tracer = spawn(
      'python3',
      [
        '-c',
        'import ctypes,sys,time\nlibc=ctypes.CDLL(None)\nprint(libc.ptrace(0x4206,int(sys.argv[1]),None,None),flush=True)\ntime.sleep(30)',
        String(pid),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(tracer);
    const line = await new Promise<string>((resolve) =>
      tracer.stdout!.once('data', (d) => resolve(String(d))),
    );
    expect(line.trim()).toBe('0');
    expect(stillWatched(w)).toBe(false);
  });

  it('lets go when the script is edited or the binary replaced on disk', async () => {
    const script = execOnInput('sleep 30');
    const s = await start(['sh', script], SH);
    const ws = watched(s.pid, s.pidfd);
    appendFileSync(script, '# edited\n');
    expect(stillWatched(ws)).toBe(false);

    const bin = join(dir, 'mysleep');
    copyFileSync('/bin/sleep', bin);
    const p = await start([bin, '30'], '/mysleep');
    const wb = watched(p.pid, p.pidfd);
    expect(stillWatched(wb)).toBe(true);
    copyFileSync('/bin/sleep', `${bin}.new`);
    renameSync(`${bin}.new`, bin);
    expect(stillWatched(wb)).toBe(false);
  });

  it('does not watch a process without an environment (nothing pins its mm), but still identifies it', async () => {
    const { pid, pidfd } = await start(['sleep', '30'], SLEEP, {});
    const { who, watch } = identifyAndWatch(pid, pidfd);
    expect('refused' in who).toBe(false);
    expect(watch).toBeUndefined();
  });
});
