// The native addon against the real kernel and real processes: peer and per-message credentials,
// fd hygiene, pidfds, flock and dump hardening.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { native, type PeerCred } from '../../src/lib/native.js';

const addonPath = fileURLToPath(new URL('../../build/Release/entraclaw_native.node', import.meta.url));
const linux = process.platform === 'linux';
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-addon-'));
const O_CLOEXEC = 0o2000000;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The fd libuv holds for a socket; read synchronously in 'connection' or it may already be gone. */
function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

const clients: net.Socket[] = [];

/** A client connection that afterEach tears down. */
function connect(path: string): net.Socket {
  const client = net.connect(path);
  // The server side is destroyed first at teardown; a reset then is expected.
  client.on('error', () => {});
  clients.push(client);
  return client;
}

/**
 * A listening server whose connections stay paused, as the daemon keeps them; yields accepted sockets.
 * `passCred` sets SO_PASSCRED/SO_PASSPIDFD on the listener, as the daemon must.
 */
async function listen(
  passCred = true,
): Promise<{ path: string; next(): Promise<net.Socket>; close(): void }> {
  const path = join(dir, `s-${Math.random().toString(36).slice(2)}.sock`);
  const waiting: Array<(s: net.Socket) => void> = [];
  const ready: net.Socket[] = [];
  const all: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (s) => {
    all.push(s);
    const w = waiting.shift();
    if (w) w(s);
    else ready.push(s);
  });
  await new Promise<void>((r) => server.listen(path, r));
  if (passCred) native().passCred((server as unknown as { _handle: { fd: number } })._handle.fd);
  return {
    path,
    next: () => new Promise((r) => (ready.length ? r(ready.shift()!) : waiting.push(r))),
    close: () => {
      for (const s of all) s.destroy();
      server.close();
    },
  };
}

/** Collects every reader callback until EOF. */
function readAll(fd: number): Promise<Array<{ data: Buffer; cred: PeerCred }>> {
  const chunks: Array<{ data: Buffer; cred: PeerCred }> = [];
  return new Promise((resolve, reject) => {
    const handle = native().startReader(fd, (err, data, cred) => {
      if (err) return reject(err);
      if (data === null) {
        native().stopReader(handle);
        return resolve(chunks);
      }
      chunks.push({ data, cred: cred! });
    });
  });
}

/** Merges consecutive chunks from the same sender pid, closing the pidfds the addon handed over. */
function bySender(chunks: Array<{ data: Buffer; cred: PeerCred }>): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const { data, cred } of chunks) {
    if (cred.pidfd >= 0) native().close(cred.pidfd);
    const last = out.at(-1);
    if (last && last[0] === cred.pid) last[1] += data.toString();
    else out.push([cred.pid, data.toString()]);
  }
  return out;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
}

function fdFlags(fd: number): number {
  const m = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return Number.parseInt(m![1]!, 8);
}

const servers: Array<{ close(): void }> = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) s.close();
});

describe.runIf(linux)('native addon', () => {
  it('gives the in-process peer: pid, uid, gid and a close-on-exec pidfd', async () => {
    const srv = await listen();
    servers.push(srv);
    const client = connect(srv.path);
    const accepted = await srv.next();
    const cred = native().peerCred(fdOf(accepted));
    expect(cred).toMatchObject({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    expect(cred.pidfd).toBeGreaterThanOrEqual(0);
    expect(fdFlags(cred.pidfd) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(native().pidfdAlive(cred.pidfd)).toBe(true);
    native().close(cred.pidfd);
    client.destroy();
  });

  it("gives a spawned child's pid, and its pidfd reports the child gone once it exits", async () => {
    const srv = await listen();
    servers.push(srv);
    const py = 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); sys.stdin.read()';
    const child = spawn('python3', ['-c', py, srv.path], { stdio: ['pipe', 'ignore', 'inherit'] });
    const accepted = await srv.next();
    const cred = native().peerCred(fdOf(accepted));
    expect(cred.pid).toBe(child.pid);
    expect(native().pidfdAlive(cred.pidfd)).toBe(true);
    child.stdin!.end();
    await exited(child);
    expect(native().pidfdAlive(cred.pidfd)).toBe(false);
    native().close(cred.pidfd);
  });

  it('attributes each read to the process that wrote it: parent, forked child, parent', async () => {
    const srv = await listen();
    servers.push(srv);
    const py = `
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'parent-1;')
time.sleep(0.05)
pid = os.fork()
if pid == 0:
    s.sendall(b'child;')
    os._exit(0)
os.waitpid(pid, 0)
s.sendall(b'parent-2;')
print(pid, flush=True)
s.close()
`;
    const child = spawn('python3', ['-c', py, srv.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let printed = '';
    child.stdout!.on('data', (d: Buffer) => {
      printed += d.toString();
    });
    const accepted = await srv.next();
    const chunks = await readAll(fdOf(accepted));
    await exited(child);
    const grandchild = Number(printed.trim());
    expect(bySender(chunks)).toEqual([
      [child.pid, 'parent-1;'],
      [grandchild, 'child;'],
      [child.pid, 'parent-2;'],
    ]);
    expect(chunks.every((c) => c.cred.uid === process.getuid!())).toBe(true);
  });

  it.each([
    [true, process.pid],
    [false, -1],
  ])(
    'credits bytes written before accept to their sender only with passCred on the listener (%s)',
    async (pass, pid) => {
      const srv = await listen(pass);
      servers.push(srv);
      const client = connect(srv.path);
      client.write('early');
      const accepted = await srv.next();
      await new Promise((r) => setTimeout(r, 50));
      const done = readAll(fdOf(accepted));
      client.end();
      const chunks = await done;
      expect(bySender(chunks)).toEqual([[pid, 'early']]);
      if (!pass) expect(chunks[0]?.cred).toEqual({ pid: -1, uid: -1, gid: -1, pidfd: -1 });
    },
  );

  it('closes every fd a client passes with SCM_RIGHTS and still delivers the sender pidfd', async () => {
    const srv = await listen();
    servers.push(srv);
    const marker = join(dir, 'passed-fd-marker');
    writeFileSync(marker, 'x');
    const py = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
f = open(sys.argv[2])
for _ in range(4):
    socket.send_fds(s, [b'fds;'], [f.fileno()] * 200)
s.close()
`;
    const child = spawn('python3', ['-c', py, srv.path, marker], { stdio: ['ignore', 'ignore', 'inherit'] });
    const accepted = await srv.next();
    const before = readdirSync('/proc/self/fd').length;
    const chunks = await readAll(fdOf(accepted));
    await exited(child);
    expect(chunks.every((c) => c.cred.pid === child.pid && c.cred.pidfd >= 0)).toBe(true);
    expect(chunks.every((c) => (fdFlags(c.cred.pidfd) & O_CLOEXEC) === O_CLOEXEC)).toBe(true);
    expect(bySender(chunks)).toEqual([[child.pid, 'fds;'.repeat(4)]]);
    const open = readdirSync('/proc/self/fd');
    expect(open.length).toBe(before);
    const leaked = open.filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === marker;
      } catch {
        return false;
      }
    });
    expect(leaked).toEqual([]);
  });

  it('reports EOF, survives stopReader from inside its own callback, and stopReader is idempotent', async () => {
    const srv = await listen();
    servers.push(srv);
    const client = connect(srv.path);
    const accepted = await srv.next();
    const before = readdirSync('/proc/self/fd').length;
    const seen: string[] = [];
    await new Promise<void>((resolve) => {
      const handle = native().startReader(fdOf(accepted), (_err, data, cred) => {
        if (cred && cred.pidfd >= 0) native().close(cred.pidfd);
        seen.push(data === null ? 'EOF' : data.toString());
        native().stopReader(handle);
        native().stopReader(handle);
        // Only once 'one' was read on its own: written on a timer, a stalled loop could read both at once.
        client.write('two');
        setTimeout(resolve, 50);
      });
      expect(readdirSync('/proc/self/fd').length).toBe(before + 1);
      client.write('one');
    });
    expect(seen).toEqual(['one']);
    expect(readdirSync('/proc/self/fd').length).toBe(before);

    const other = connect(srv.path);
    const second = await srv.next();
    const eof = readAll(fdOf(second));
    other.end();
    expect(await eof).toEqual([]);
  });

  it('opens pidfds for live processes and refuses dead ones with ESRCH', async () => {
    const self = native().pidfdOpen(process.pid);
    expect(self).toBeGreaterThanOrEqual(0);
    expect(fdFlags(self) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(native().pidfdAlive(self)).toBe(true);
    native().close(self);

    const child = spawn('sleep', ['10']);
    const pidfd = native().pidfdOpen(child.pid!);
    expect(native().pidfdAlive(pidfd)).toBe(true);
    child.kill();
    await exited(child);
    expect(native().pidfdAlive(pidfd)).toBe(false);
    native().close(pidfd);
    expect(() => native().pidfdOpen(child.pid!)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('throws errors carrying the errno name and number', () => {
    expect(() => native().close(-1)).toThrow(expect.objectContaining({ code: 'EBADF', errno: -9 }));
    expect(() => native().peerCred(0x7ffffff)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => native().keyRead(1)).toThrow(expect.objectContaining({ code: 'ENOKEY' }));
    expect(() => native().pidfdAlive(0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('flock excludes a second process until released', () => {
    const file = join(dir, 'lock');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    const other = `
      const a = require(${JSON.stringify(addonPath)});
      const fd = require('node:fs').openSync(${JSON.stringify(file)}, 'r');
      console.log(a.flock(fd, true, true));`;
    const tryLock = () => spawnSync(process.execPath, ['-e', other], { encoding: 'utf8' }).stdout.trim();
    try {
      expect(native().flock(fd, true, true)).toBe(true);
      expect(tryLock()).toBe('false');
      native().funlock(fd);
      expect(tryLock()).toBe('true');
    } finally {
      closeSync(fd);
    }
  });

  it('harden makes a process non-dumpable with a zero core limit', () => {
    const script = `
      const a = require(${JSON.stringify(addonPath)});
      const before = a.isDumpable();
      a.harden();
      const core = require('node:fs').readFileSync('/proc/self/limits', 'utf8').split('\\n').find((l) => l.startsWith('Max core'));
      console.log(JSON.stringify({ before, after: a.isDumpable(), core }));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { before: boolean; after: boolean; core: string };
    expect(out.before).toBe(true);
    expect(out.after).toBe(false);
    expect(out.core).toMatch(/^Max core file size\s+0\s+0\s/);
    expect(native().isDumpable()).toBe(true);
  });

  it('cloexecFrom marks every fd from the given one close-on-exec, and none below it', () => {
    // In a child whose fds 200-202 a shell opened (node marks low ones itself) without close-on-exec; this process keeps its own as they were.
    const r = spawnSync(
      'bash',
      [
        '-c',
        `exec 200</dev/null 201</dev/null 202</dev/null; exec "$0" -e "$1"`,
        process.execPath,
        `const a = require(${JSON.stringify(addonPath)});
         const fs = require('node:fs');
         const cloexec = (fd) => (parseInt(/flags:\\s*([0-7]+)/.exec(fs.readFileSync('/proc/self/fdinfo/' + fd, 'utf8'))[1], 8) & 0o2000000) !== 0;
         const before = [200, 201, 202].map(cloexec);
         a.cloexecFrom(201);
         console.log(JSON.stringify({ before, after: [200, 201, 202].map(cloexec) }));`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ before: [false, false, false], after: [false, true, true] });
  });
});
