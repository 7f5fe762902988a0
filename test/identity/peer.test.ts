// identify() against real processes: what it accepts, what it refuses, and that a dead or recycled
// pid is never described as the sender. Children get a minimal environment so that whatever runs
// the tests (NODE_OPTIONS from a runner, a pyenv PATH) does not leak into them.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Identity, identify, identifyParent, type Refusal } from '../../src/identity/peer.js';
import { fileKey } from '../../src/lib/file-key.js';
import { native } from '../../src/lib/native.js';
import { waitFor } from '../support/broker.js';
import { requireOrSkip, rootOnly } from '../support/context.js';

const linux = process.platform === 'linux';
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'entraclaw-peer-')));
const NODE = realpathSync(process.execPath);
const PYTHON = '/usr/bin/python3';
const ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };

const children: ChildProcess[] = [];
const pidfds: number[] = [];
afterEach(() => {
  // Each child leads its own process group, so grandchildren (a shell's node, a tracer's tracee) go too.
  for (const c of children.splice(0)) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const fd of pidfds.splice(0)) native().close(fd);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o755 });
  return path;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
}

// waitFor's own deadline (15 s): a process exec'ing or being reaped can take over 2 s on a loaded machine.
const until = (what: string, ok: () => boolean) => waitFor(ok, what);

function pidfdFor(pid: number): number {
  const fd = native().pidfdOpen(pid);
  pidfds.push(fd);
  return fd;
}

/** Spawns a real process in its own process group, without waiting for it to exec. */
function launch(argv: string[], opts: { env?: Record<string, string>; uid?: number } = {}): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: dir,
    env: { ...ENV, ...opts.env },
    stdio: ['ignore', 'pipe', 'ignore'],
    detached: true,
    ...(opts.uid === undefined ? {} : { uid: opts.uid }),
  });
  children.push(child);
  return child;
}

/** Spawns a real process and waits until it has exec'd into `argv` (before that it is still us). */
async function start(
  argv: string[],
  opts: { env?: Record<string, string>; uid?: number } = {},
): Promise<{ child: ChildProcess; pid: number; pidfd: number }> {
  const child = launch(argv, opts);
  const pid = child.pid!;
  await until(`${argv.join(' ')} to start`, () => cmdline(pid).join('\0') === argv.join('\0'));
  return { child, pid, pidfd: pidfdFor(pid) };
}

/** The first line a child prints (a pid, for the nested cases). */
async function firstLine(child: ChildProcess): Promise<string> {
  let text = '';
  child.stdout!.setEncoding('utf8');
  for await (const chunk of child.stdout!) {
    text += chunk;
    if (text.includes('\n')) return text.split('\n')[0]!;
  }
  throw new Error('child printed nothing');
}

function identified(r: Identity | Refusal): Identity {
  if ('refused' in r) throw new Error(`unexpectedly refused: ${r.reason}`);
  return r;
}

// Field 22 of /proc/PID/stat, counted after the command name (which may hold spaces and parentheses).
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

function refused(r: Identity | Refusal): Refusal {
  if (!('refused' in r)) throw new Error(`unexpectedly identified: ${r.exe} ${r.script ?? ''}`);
  return r;
}

const KEEP_ALIVE = 'setInterval(() => {}, 1000);\n';

describe.skipIf(!linux)('identify', () => {
  it('identifies a binary by its canonical path and hash, from /proc only', async () => {
    const { pid, pidfd } = await start(['sleep', '30']);
    const who = identified(identify(pid, pidfd));
    expect(who).toEqual({
      pid,
      uid: process.geteuid!(),
      ppid: process.pid,
      exe: realpathSync('/usr/bin/sleep'),
      sha256: sha256('/usr/bin/sleep'),
      argv: ['sleep', '30'],
      started: startTime(pid),
      files: { exe: fileKey(statSync(realpathSync('/usr/bin/sleep'), { bigint: true })) },
    });
  });

  it("reads status and stat through held fds (a watch's) exactly as by path, and afresh each time", async () => {
    const { pid, pidfd } = await start(['sleep', '30']);
    const stat = openSync(`/proc/${pid}/stat`, 'r');
    const status = openSync(`/proc/${pid}/status`, 'r');
    try {
      const held = identified(identify(pid, pidfd, { held: { stat, status } }));
      expect(held).toEqual(identified(identify(pid, pidfd)));
      // Read again through the same fds: from the start, not from where the last read ended.
      expect(identified(identify(pid, pidfd, { held: { stat, status } }))).toEqual(held);
    } finally {
      closeSync(stat);
      closeSync(status);
    }
  });

  it('reads the start time past a command name that holds ") " (pid + start time name one process)', async () => {
    const odd = join(dir, 'x) 1 2 (3');
    copyFileSync('/usr/bin/sleep', odd);
    chmodSync(odd, 0o755);
    const { pid, pidfd } = await start([odd, '30']);
    const who = identified(identify(pid, pidfd));
    expect(who.started).toMatch(/^\d+$/);
    expect(who.started).toBe(startTime(pid));
  });

  it('identifies node running a relative script: interpreter and script are both pinned', async () => {
    const script = file('app.js', `// app\n${KEEP_ALIVE}`);
    const { pid, pidfd } = await start([NODE, 'app.js']);
    const who = identified(identify(pid, pidfd));
    expect(who).toMatchObject({ exe: NODE, sha256: sha256(NODE), script, scriptSha256: sha256(script) });
  });

  it('identifies python3 running a script through a symlinked interpreter', async () => {
    const script = file('app.py', 'import time\ntime.sleep(30)\n');
    const { pid, pidfd } = await start([PYTHON, '-u', script]);
    const who = identified(identify(pid, pidfd));
    expect(who).toMatchObject({ exe: realpathSync(PYTHON), script, scriptSha256: sha256(script) });
  });

  it('refuses node -e (inline code) but still reports the executable for the audit log', async () => {
    const { pid, pidfd } = await start([NODE, '-e', KEEP_ALIVE]);
    const r = refused(identify(pid, pidfd));
    expect(r.reason).toMatch(/inline code/);
    expect(r).toMatchObject({ pid, exe: NODE, sha256: sha256(NODE) });
  });

  it('refuses bash -c', async () => {
    const { pid, pidfd } = await start(['/bin/bash', '-c', 'sleep 30; :']);
    expect(refused(identify(pid, pidfd)).reason).toMatch(/bash -c runs inline code/);
  });

  it('refuses python3 -c', async () => {
    const { pid, pidfd } = await start([PYTHON, '-c', 'import time; time.sleep(30)']);
    expect(refused(identify(pid, pidfd)).reason).toMatch(/python -c runs inline code/);
  });

  it('refuses an approved-looking script run with NODE_OPTIONS', async () => {
    file('opts.js', KEEP_ALIVE);
    const { pid, pidfd } = await start([NODE, 'opts.js'], { env: { NODE_OPTIONS: '--no-warnings' } });
    expect(refused(identify(pid, pidfd)).reason).toMatch(/NODE_OPTIONS is set/);
  });

  it('refuses a binary started with LD_PRELOAD (the loader warns and runs it anyway)', async () => {
    const { pid, pidfd } = await start(['sleep', '30'], { env: { LD_PRELOAD: '/nonexistent/evil.so' } });
    expect(refused(identify(pid, pidfd)).reason).toMatch(/LD_PRELOAD is set/);
  });

  it('refuses a node script that changed process.title, even to its own command line (README, Known limits)', async () => {
    // libuv writes the title over argv with NUL padding. The title that imitates the approved command line
    // best is that line itself, spaces for the NULs: /proc then shows one argument and empty ones after it.
    const script = file('titled.js', '');
    for (const title of ['bot', `${NODE} ${script}`]) {
      writeFileSync(
        script,
        `process.title = ${JSON.stringify(title)};\nconsole.log('ready');\n${KEEP_ALIVE}`,
      );
      const child = launch([NODE, script, 'padding-so-the-title-fits']);
      expect(await firstLine(child)).toBe('ready');
      expect(cmdline(child.pid!)[0]).toBe(title);
      const r = refused(identify(child.pid!, pidfdFor(child.pid!)));
      expect(r.reason, title).toMatch(
        /rewrote its command line \(process\.title\?\)|was given no script file/,
      );
    }
  });

  it('refuses a process that is being traced', async () => {
    // The parent seizes its own child with ptrace (no stop), so the child shows TracerPid != 0.
    const tracer = file(
      'tracer.py',
      [
        'import ctypes, os, sys, time',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'pid = os.fork()',
        'if pid == 0:',
        '    time.sleep(30); os._exit(0)',
        'if libc.ptrace(0x4206, pid, None, None) != 0:',
        '    print("error", ctypes.get_errno(), flush=True); sys.exit(1)',
        'print(pid, flush=True)',
        'time.sleep(30)',
      ].join('\n'),
    );
    const { child } = await start([PYTHON, tracer]);
    const line = await firstLine(child);
    expect(line).toMatch(/^\d+$/);
    const pid = Number(line);
    const r = refused(identify(pid, pidfdFor(pid)));
    expect(r.reason).toBe(`process is being traced (by pid ${child.pid}); run it without a debugger`);
  });

  it('refuses a peer that exited before it was identified', async () => {
    const { child, pid, pidfd } = await start(['sleep', '30']);
    child.kill('SIGKILL');
    await until('the child to be reaped', () => cmdline(pid).length === 0);
    expect(refused(identify(pid, pidfd)).reason).toBe('peer exited (cannot verify identity)');
  });

  it('refuses when the pid names a live process but the pidfd is of the dead sender (pid reuse)', async () => {
    const dead = await start(['sleep', '30']);
    dead.child.kill('SIGKILL');
    await until('the child to be reaped', () => cmdline(dead.pid).length === 0);
    const live = await start(['sleep', '31']);
    // /proc/<live.pid> reads fine; only the pidfd shows these reads do not describe the sender.
    expect(identified(identify(live.pid, live.pidfd)).exe).toBe(realpathSync('/usr/bin/sleep'));
    expect(refused(identify(live.pid, dead.pidfd)).reason).toBe('peer exited (cannot verify identity)');
  });

  it('refuses a really recycled pid: the same number, now an approved binary', async (ctx) => {
    requireOrSkip(ctx, rootOnly('choosing the next pid (/proc/sys/kernel/ns_last_pid)'));
    // ns_last_pid makes the next fork take a chosen pid; other forks on the machine can win the race.
    for (let attempt = 0; attempt < 20; attempt++) {
      const sender = await start(['sleep', '30']);
      sender.child.kill('SIGKILL');
      await until('the child to be reaped', () => cmdline(sender.pid).length === 0);
      try {
        writeFileSync('/proc/sys/kernel/ns_last_pid', String(sender.pid - 1));
      } catch (err) {
        ctx.skip(`cannot set ns_last_pid: ${(err as Error).message}`);
      }
      const child = launch(['sleep', '32']);
      if (child.pid !== sender.pid) continue;
      await until('the new process to exec', () => cmdline(child.pid!).join(' ') === 'sleep 32');
      expect(identified(identify(child.pid, pidfdFor(child.pid))).argv).toEqual(['sleep', '32']);
      expect(refused(identify(sender.pid, sender.pidfd)).reason).toBe('peer exited (cannot verify identity)');
      return;
    }
    ctx.skip('the recycled pid kept going to other processes');
  });

  it('sees an edited script: the hash follows the file', async () => {
    const script = file('edited.js', KEEP_ALIVE);
    const { pid, pidfd } = await start([NODE, script]);
    const before = identified(identify(pid, pidfd)).scriptSha256;
    writeFileSync(script, `${KEEP_ALIVE}// edited after approval\n`);
    const after = identified(identify(pid, pidfd)).scriptSha256;
    expect(after).not.toBe(before);
    expect(after).toBe(sha256(script));
  });

  it('sees a modified copy of a binary, even after a same-size write and a touch back', async () => {
    const copy = join(dir, 'mysleep');
    copyFileSync('/usr/bin/sleep', copy);
    const first = await start([copy, '30']);
    const original = identified(identify(first.pid, first.pidfd)).sha256;
    expect(original).toBe(sha256('/usr/bin/sleep'));
    first.child.kill('SIGKILL');
    await until('the copy to exit', () => cmdline(first.pid).length === 0);
    // Flip the last byte (ELF section headers: not used to run it), same size, old timestamps back.
    const { atime, mtime } = statSync(copy);
    const bytes = readFileSync(copy);
    const last = bytes.length - 1;
    bytes[last] = bytes[last]! ^ 0xff;
    writeFileSync(copy, bytes);
    utimesSync(copy, atime, mtime);
    const second = await start([copy, '30']);
    const changed = identified(identify(second.pid, second.pidfd)).sha256;
    expect(changed).not.toBe(original);
    expect(changed).toBe(sha256(copy));
  });

  it('refuses a process whose executable was replaced after it started', async () => {
    const copy = join(dir, 'replaced');
    copyFileSync('/usr/bin/sleep', copy);
    const { pid, pidfd } = await start([copy, '30']);
    const fresh = join(dir, 'replaced.new');
    copyFileSync('/usr/bin/sleep', fresh);
    renameSync(fresh, copy);
    const r = refused(identify(pid, pidfd));
    expect(r.reason).toMatch(/executable was deleted\/replaced/);
    expect(r.exe).toBe(copy);
  });

  it('refuses a relative script once the process has left its directory, rather than guessing', async () => {
    file('wanders.js', `process.chdir('/');\n${KEEP_ALIVE}`);
    const { pid, pidfd } = await start([NODE, 'wanders.js']);
    await until('the chdir', () => realpathSync(`/proc/${pid}/cwd`) === '/');
    expect(refused(identify(pid, pidfd)).reason).toMatch(/script wanders.js was not found/);
  });

  it('refuses a FIFO named as the script without blocking', async () => {
    const fifo = join(dir, 'fifo.js');
    execFileSync('mkfifo', [fifo]);
    const { pid, pidfd } = await start([NODE, fifo]);
    expect(refused(identify(pid, pidfd)).reason).toMatch(/is not a regular file/);
  });

  it('refuses without a pidfd unless explicitly allowed', async () => {
    const { pid } = await start(['sleep', '30']);
    expect(refused(identify(pid, -1)).reason).toMatch(/no pidfd/);
    expect(identified(identify(pid, -1, { allowNoPidfd: true })).pid).toBe(pid);
  });

  it('refuses a process of another uid', async () => {
    const { pid, pidfd } = await start(['sleep', '30']);
    expect(refused(identify(pid, pidfd, { uid: 4242 })).reason).toMatch(/runs as uid .*, not 4242/);
  });

  it('refuses a real process running as nobody', async (ctx) => {
    requireOrSkip(ctx, rootOnly('starting a process as another uid'));
    const { pid, pidfd } = await start(['sleep', '30'], { uid: 65534 });
    expect(refused(identify(pid, pidfd)).reason).toMatch(/runs as uid 65534\/65534\/65534\/65534/);
  });
});

describe.skipIf(!linux)('identifyParent (the shim case)', () => {
  const CHILD = `console.log(process.pid);\n${KEEP_ALIVE}`;

  it('identifies the script that ran the child', async () => {
    file('child.js', CHILD);
    const parent = file('parent.sh', `#!/bin/bash\n"${NODE}" child.js\nexit 0\n`);
    const { child, pid: bashPid } = await start(['/bin/bash', parent]);
    const pid = Number(await firstLine(child));
    const who = identified(identify(pid, pidfdFor(pid)));
    expect(who).toMatchObject({ ppid: bashPid, script: join(dir, 'child.js') });
    const up = identified(identifyParent(who));
    expect(up).toMatchObject({
      pid: bashPid,
      exe: realpathSync('/bin/bash'),
      script: parent,
      scriptSha256: sha256(parent),
    });
  });

  it('refuses when the parent is inline shell code', async () => {
    file('child.js', CHILD);
    const { child } = await start(['/bin/bash', '-c', `"${NODE}" child.js; exit 0`]);
    const pid = Number(await firstLine(child));
    const who = identified(identify(pid, pidfdFor(pid)));
    expect(refused(identifyParent(who)).reason).toMatch(/bash -c runs inline code/);
  });

  it('after `exec`, the parent is whoever started the shell', async () => {
    file('child.js', CHILD);
    // No start(): bash may exec before its own command line could be seen.
    const child = launch(['/bin/bash', '-c', `exec "${NODE}" child.js`]);
    const pid = Number(await firstLine(child));
    const who = identified(identify(pid, pidfdFor(pid)));
    expect(identifyParent(who).pid).toBe(process.pid);
  });

  it('refuses once the parent has exited and the child was re-parented', async () => {
    file('child.js', CHILD);
    const parent = file('leaves.sh', `#!/bin/bash\n"${NODE}" child.js &\nwait\n`);
    const { child: bash, pid: bashPid } = await start(['/bin/bash', parent]);
    const pid = Number(await firstLine(bash));
    const who = identified(identify(pid, pidfdFor(pid)));
    expect(who.ppid).toBe(bashPid);
    bash.kill('SIGKILL');
    await until('the parent to be reaped', () => cmdline(bashPid).length === 0);
    expect(refused(identifyParent(who)).reason).toMatch(/exited|parent changed/);
  });
});
