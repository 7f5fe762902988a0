import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditEntry, AuditRecord } from '../audit/entry.js';
import { AuditLog } from '../audit/log.js';
import { AuditThrottle, WINDOW_MS } from '../audit/throttle.js';
import { EntraclawError, UnavailableError } from '../errors.js';
import { userNamespaceOf } from '../identity/namespace.js';
import { forgetStats, pathKey, shareStats } from '../lib/file-key.js';
import { makeOwnDir } from '../lib/make-dir.js';
import { native } from '../lib/native.js';
import type { Paths } from '../lib/paths.js';
import type { Grant } from '../policy/grant.js';
import type { Store } from '../store/types.js';
import { askpassConfirmer } from './confirm.js';
import { Connection, type ConnectionLimits, MAX_SENDERS_IN_FLIGHT } from './connection.js';
import { ConsentMemory } from './consent.js';
import { MAX_QUEUED_FRAMES } from './frame.js';
import { createHandler, MAX_WATCHES_PER_CONNECTION } from './handlers.js';
import type { Logger } from './log.js';
import { PolicyCache } from './policy-cache.js';
import {
  assertSocketOrAbsent,
  defaultSocket,
  MAX_SOCKET_PATH,
  preparePrivateDir,
  socketLock,
} from './socket-path.js';
import { watchStore } from './store-health.js';

// Limits, after ssh-agent's AGENT_MAX_LEN & co. Frame size is capped in frame.ts (MAX_FRAME).
/** Connections beyond this are closed at once: bounds fds and memory under a flood. */
export const MAX_CONNECTIONS = 2048;
/** fds one connection may hold: the socket, the reader's dup, a pidfd per sender in flight, 3 per watch. */
const FDS_PER_CONNECTION = 2 + MAX_SENDERS_IN_FLIGHT + 3 * MAX_WATCHES_PER_CONNECTION;
/** fds kept for everything else: the store, the audit log, policy reads, hashing, the listener. */
const FD_HEADROOM = 128;
/** Pending connections the kernel queues before accept (capped by net.core.somaxconn). */
export const LISTEN_BACKLOG = 4096;
/** A connection with no complete request for this long is closed. */
export const IDLE_TIMEOUT_MS = 60_000;
/** A frame that has started must be complete within this time (slowloris). */
export const FRAME_TIMEOUT_MS = 10_000;
/**
 * Request bytes all connections may hold at once (half-read and queued frames). Without it 2048
 * connections x (one frame being read + 32 queued) of up to 1 MiB each could hold gigabytes; with it a
 * flood of large frames costs at most this, and the connection that goes over is closed.
 */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** How often the daemon checks that its socket is still there, to bind it anew when it was deleted. */
export const SOCKET_CHECK_MS = 2_000;

/** What the daemon needs to run; tests pass their own paths and store. */
export interface AgentOptions {
  socket: string;
  paths: Paths;
  store: Store;
  log: Logger;
  version: string;
  limits?: Partial<ConnectionLimits & { maxConnections: number }>;
  /**
   * Sandbox mode: every same-uid caller in the sandbox's user namespace (serveNamespace) gets these
   * grants (the sandbox is the boundary, as in nono), nothing is queued for approval, and the audit goes
   * to `auditFile`.
   */
  boundary?: { grants: Grant[]; auditFile: string };
  /** Absolute path of the program that asks the user about grants with confirm = true (confirm.ts). */
  askpass?: string;
}

/** A running daemon. */
export interface Agent {
  server: Server;
  socket: string;
  connections(): number;
  reloadPolicy(): void;
  /** Sandbox mode: the user namespace of the sandbox, the only one served from now on. */
  serveNamespace(ns: string): void;
  close(): Promise<void>;
}

// Our own shim scripts, by canonical path and hash: a request arriving through one is decided for the
// shim's parent process. Only the exact files we ship qualify.
function shimScripts(): Map<string, string> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'shim');
  const out = new Map<string, string>();
  for (const name of ['security-main.cjs', 'secret-tool-main.cjs']) {
    try {
      const path = realpathSync(join(dir, name));
      out.set(path, createHash('sha256').update(readFileSync(path)).digest('hex'));
    } catch {
      // Not built: shims are then plain clients.
    }
  }
  return out;
}

// One daemon per socket, and one writer per audit log: an flock'd pid file beside each (SOCKET.lock,
// AUDIT.lock). Two daemons on one audit log would interleave two hash chains, which verify then reports
// as tampering. The kernel drops the locks if we die.
function acquireLock(path: string, held: (pid: string) => EntraclawError): number {
  const fd = openSync(path, 'a+', 0o600);
  if (!native().flock(fd, true, true)) {
    const pid = readFileSync(path, 'utf8').trim() || 'unknown';
    closeSync(fd);
    throw held(pid);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  return fd;
}

// The pid a lock file names, or undefined (no file, or nothing readable in it).
function readPid(path: string): string | undefined {
  try {
    return /^\d+$/.exec(readFileSync(path, 'utf8').trim())?.[0];
  } catch {
    return undefined;
  }
}

/** A lock acquireLock took, and the file it is on ("dev:ino:", as pathKey() of the path naming it starts). */
interface HeldLock {
  fd: number;
  id: string;
}

function holdLock(path: string, held: (pid: string) => EntraclawError): HeldLock {
  const fd = acquireLock(path, held);
  const st = fstatSync(fd, { bigint: true });
  return { fd, id: `${st.dev}:${st.ino}:` };
}

// Whether `path` still names the file `lock` is on. A lock file deleted (alone, or with its directory)
// no longer keeps a second daemon off, which would then take a new file at the same path.
function stillHeld(path: string, lock: HeldLock): boolean {
  return pathKey(path)?.startsWith(lock.id) === true;
}

// The lock taken again on the file at `path` now, `lock` released; acquireLock's error when another
// daemon took that file first.
function retake(path: string, lock: HeldLock, held: (pid: string) => EntraclawError): HeldLock {
  const fresh = holdLock(path, held);
  // Our own write: a stat shared from before it (lib/file-key.ts) would still say the lock is gone.
  forgetStats();
  releaseLock(lock.fd);
  return fresh;
}

function releaseLock(fd: number): void {
  native().funlock(fd);
  closeSync(fd);
}

/** Starts the daemon: private dir, lock, 0600 socket, kernel-checked connections. */
export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const uid = process.getuid?.() ?? 0;
  preparePrivateDir(opts.socket, {
    uid,
    createParents: opts.socket === defaultSocket(opts.paths),
  });
  assertSocketOrAbsent(opts.socket);
  const socketHeld = (pid: string) =>
    new EntraclawError(
      'conflict',
      `another entraclaw agent is already running on this socket (pid ${pid})`,
      'stop it first; a second instance needs its own --socket and its own XDG_STATE_HOME (one agent per audit log)',
    );
  // Who held the lock last, for the log line if their socket is still there (a SIGKILL, a crash).
  const previous = readPid(socketLock(opts.socket));
  let lock = holdLock(socketLock(opts.socket), socketHeld);
  const limits: ConnectionLimits = {
    idleTimeoutMs: opts.limits?.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
    frameTimeoutMs: opts.limits?.frameTimeoutMs ?? FRAME_TIMEOUT_MS,
    maxQueuedFrames: opts.limits?.maxQueuedFrames ?? MAX_QUEUED_FRAMES,
    budget: opts.limits?.budget ?? { used: 0, max: MAX_BUFFERED_BYTES },
  };
  const wanted = opts.limits?.maxConnections ?? MAX_CONNECTIONS;
  // Fit the connection limit to the fds we may have, rather than fail with EMFILE under load.
  const nofile = native().raiseNofile(wanted * FDS_PER_CONNECTION + FD_HEADROOM);
  const maxConnections = Math.max(
    1,
    Math.min(wanted, Math.floor((nofile - FD_HEADROOM) / FDS_PER_CONNECTION)),
  );
  if (maxConnections < wanted) {
    opts.log('warn', 'open-file limit too low for the connection limit; serving fewer connections', {
      nofile,
      maxConnections,
      hint: 'raise LimitNOFILE (systemd) or `ulimit -Hn`',
    });
  }
  const auditFile = opts.boundary?.auditFile ?? join(opts.paths.state, 'audit.jsonl');
  const auditLock = `${auditFile}.lock`;
  makeOwnDir(dirname(auditFile), 'XDG_STATE_HOME');
  const auditHeld = (pid: string) =>
    new EntraclawError(
      'conflict',
      `another entraclaw agent (pid ${pid}) already writes the audit log ${auditFile}`,
      'one agent per state directory: stop the other, or give this one its own XDG_STATE_HOME',
    );
  let auditLockHeld: HeldLock;
  try {
    auditLockHeld = holdLock(auditLock, auditHeld);
  } catch (err) {
    releaseLock(lock.fd);
    throw err;
  }
  // A second agent must not interleave its chain with ours: before each line the audit lock must still
  // be held (stillHeld); when its file is gone it is taken again, and when another agent has taken it
  // meanwhile, nothing more is written (or served) here. A state directory that is gone is made again
  // first, as the runtime directory is: requests would otherwise fail until the user made it by hand.
  const holdAuditLock = () => {
    if (stillHeld(auditLock, auditLockHeld)) return;
    makeOwnDir(dirname(auditLock), 'XDG_STATE_HOME');
    try {
      auditLockHeld = retake(auditLock, auditLockHeld, auditHeld);
    } catch (err) {
      if (!(err instanceof EntraclawError)) return;
      throw new UnavailableError(
        `the audit log's lock file was deleted under this agent and ${err.message}`,
        'stop one of the two agents; one agent per state directory',
      );
    }
    opts.log('warn', "the audit log's lock file was deleted; holding it again", { lock: auditLock });
  };
  const auditLog = AuditLog.open(auditFile, {
    onDamage: (what) =>
      opts.log('warn', 'audit log damaged', { what, hint: 'run `entraclaw audit verify` to see where' }),
  });
  const audit = {
    append: (entry: AuditEntry): AuditRecord => {
      holdAuditLock();
      return auditLog.append(entry);
    },
    head: () => auditLog.head(),
    close: () => auditLog.close(),
  };
  // A program refused in a loop must not rotate the history away: past its share a window, its refusals
  // are summed in one line (audit/throttle.ts). Summaries of a quiet window are written by the timer.
  const throttle = new AuditThrottle();
  const record = (entry: AuditEntry): AuditRecord | undefined => {
    const { summaries, admitted } = throttle.admit(entry);
    for (const e of summaries) audit.append(e);
    return admitted ? audit.append(entry) : undefined;
  };
  // For lines written outside a request (nobody to answer): a failure is logged, never thrown.
  const tryRecord = (entry: AuditEntry): void => {
    try {
      record(entry);
    } catch (err) {
      opts.log('error', 'cannot write the audit log', { op: entry.op, error: (err as Error).message });
    }
  };
  const writeHeldBack = (all: boolean) => {
    try {
      for (const e of throttle.flush(all)) audit.append(e);
    } catch (err) {
      opts.log('error', 'cannot audit throttled requests', { error: (err as Error).message });
    }
  };
  const throttleTimer = setInterval(() => writeHeldBack(false), WINDOW_MS);
  throttleTimer.unref();
  const auditSink = { append: record, head: () => audit.head() };
  // Every load of policy.toml that changes what is approved is a line in the audit chain, so an approval,
  // a revoke or a hand edit shows up beside the requests it decided.
  const policy = new PolicyCache(join(opts.paths.config, 'policy.toml'), opts.log, (what) => {
    try {
      audit.append({
        time: new Date().toISOString(),
        requestId: '-',
        op: 'policy',
        decision: 'changed',
        reason: what,
        durationMs: 0,
      });
    } catch (err) {
      opts.log('error', 'cannot audit a policy change', { error: (err as Error).message });
    }
  });
  // In a sandbox the profile's grants are the policy; policy.toml is never consulted.
  if (!opts.boundary) policy.current();
  const askpass = opts.askpass ? askpassConfirmer(opts.askpass, opts.log) : undefined;
  // A sandbox's broker serves its own namespace by design; the user's daemon serves the session's.
  const own = process.platform === 'linux' ? userNamespaceOf('self') : undefined;
  // A sandbox's broker serves the sandbox's namespace only, known once bwrap has made it (serveNamespace):
  // until then nobody, so a command of another sandbox that finds this socket (through /tmp) gets nothing.
  let sandboxNamespace: string | undefined;
  const namespace = opts.boundary
    ? () => sandboxNamespace ?? '(the sandbox has not started)'
    : own
      ? () => own
      : undefined;
  const handler = createHandler({
    store: watchStore(opts.store, opts.log),
    policy,
    audit: auditSink,
    pendingPath: join(opts.paths.state, 'pending.json'),
    log: opts.log,
    uid,
    shims: shimScripts(),
    version: opts.version,
    ...(opts.boundary ? { boundary: opts.boundary.grants } : {}),
    ...(namespace ? { namespace } : {}),
    ...(askpass ? { confirmUse: askpass, consent: new ConsentMemory() } : {}),
  });
  const live = new Set<Connection>();
  const onError = (err: unknown) =>
    opts.log('error', 'request failed inside the daemon', {
      error: err instanceof Error ? err.message : String(err),
    });
  const onClose = (c: Connection, reason: string) => {
    live.delete(c);
    opts.log('debug', 'connection closed', { reason });
  };

  const onConnection = (socket: Socket) => {
    // Peer credentials must be read now, synchronously: later the fd may already be gone.
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    let peer: ReturnType<ReturnType<typeof native>['peerCred']>;
    try {
      peer = native().peerCred(fd);
    } catch (err) {
      opts.log('warn', 'cannot read peer credentials; connection dropped', { error: (err as Error).message });
      socket.destroy();
      return;
    }
    if (peer.pidfd >= 0) native().close(peer.pidfd);
    // Other users are refused before a single byte is read (OpenSSH agent-getpeereid).
    if (peer.uid !== uid) {
      opts.log('warn', 'refused connection from another uid', { uid: peer.uid, pid: peer.pid });
      // A throw here would reach no handler and end the daemon: an audit log that cannot be written (a
      // full disk) must not let another user stop it by connecting.
      tryRecord({
        time: new Date().toISOString(),
        requestId: '-',
        pid: peer.pid,
        uid: peer.uid,
        op: 'connect',
        decision: 'denied',
        reason: `uid ${peer.uid} is not ${uid}`,
        durationMs: 0,
      });
      socket.destroy();
      return;
    }
    if (live.size >= maxConnections) {
      opts.log('warn', 'connection limit reached; connection dropped', { limit: maxConnections });
      socket.destroy();
      return;
    }
    live.add(new Connection(socket, fd, limits, handler, onClose, onError));
  };

  // A listener at the socket path. It is bound at a name of its own and renamed into place: closing a
  // listener unlinks the path it was bound at (libuv does), and that must never be the socket path, which
  // may hold another daemon's socket by the time we stop. A path too long for that is bound directly.
  let bound = 0;
  const listen = async (): Promise<Server> => {
    const listener = createServer({ pauseOnConnect: true }, onConnection);
    listener.maxConnections = maxConnections + 64;
    const aside = `${opts.socket}.${process.pid}.${++bound}`;
    const at = Buffer.byteLength(aside) <= MAX_SOCKET_PATH ? aside : opts.socket;
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        // A deep backlog: a burst of clients connecting at once must queue, not fail with EAGAIN.
        listener.listen({ path: at, backlog: LISTEN_BACKLOG }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
      // Connections inherit SO_PASSCRED/SO_PASSPIDFD from the listener, so even bytes a client writes
      // before we accept it carry the sender's credentials; set before the socket is at the path clients
      // know, so no connection predates it.
      native().passCred((listener as unknown as { _handle: { fd: number } })._handle.fd);
      if (at !== opts.socket) renameSync(at, opts.socket);
    } catch (err) {
      listener.close();
      throw err;
    } finally {
      process.umask(oldMask);
    }
    return listener;
  };

  // Unlink a stale socket only while holding the lock, so we never steal a live daemon's socket; checked
  // again under the lock, as anything but a socket there is the user's.
  assertSocketOrAbsent(opts.socket);
  let replaced = false;
  try {
    unlinkSync(opts.socket);
    replaced = true;
  } catch {}
  // Said, so a user who finds the agent "just works" after a crash knows one happened.
  if (replaced)
    opts.log('info', 'removed the socket an agent that is gone left behind (it did not stop cleanly)', {
      socket: opts.socket,
      ...(previous ? { pid: previous } : {}),
    });
  let server = await listen();
  let ours = lstatSync(opts.socket).ino;

  // The socket (or its whole directory) may be deleted under us: systemd-tmpfiles aging /tmp, a logout
  // emptying the runtime dir, a careless rm. Clients would then find no daemon, and a new agent would be
  // refused by our audit lock: the daemon binds its socket (and takes its lock file) anew instead. A path
  // that holds something else by now is not ours to take over.
  let rebinding = false;
  let stopped = false;
  let saidReplaced = false;
  let saidCannot = '';
  const rebindIfGone = async () => {
    if (rebinding || stopped) return;
    try {
      if (lstatSync(opts.socket).ino !== ours && !saidReplaced) {
        saidReplaced = true;
        opts.log('warn', 'the socket was replaced by another; not serving new connections there', {
          socket: opts.socket,
          hint: 'stop this agent, or the one that took the path',
        });
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
    }
    rebinding = true;
    // Stops accepting on the deleted path; the connections it accepted live on.
    server.close();
    // With no listener and no connection nothing else keeps node running: an agent that cannot bind
    // again at once (its directory a symlink for now) would exit 0, unseen by Restart=on-failure,
    // instead of retrying as it says. The timer holds it up until a listener does again.
    socketTimer.ref();
    try {
      preparePrivateDir(opts.socket, { uid, createParents: opts.socket === defaultSocket(opts.paths) });
      const lockPath = socketLock(opts.socket);
      if (!stillHeld(lockPath, lock)) lock = retake(lockPath, lock, socketHeld);
      const next = await listen();
      server = next;
      ours = lstatSync(opts.socket).ino;
      socketTimer.unref();
      if (stopped) return void next.close();
      saidCannot = '';
      opts.log('warn', 'the socket was deleted; listening there again', { socket: opts.socket });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (why !== saidCannot) {
        saidCannot = why;
        opts.log('error', 'the socket was deleted and cannot be made again; retrying', {
          socket: opts.socket,
          error: why,
        });
      }
    } finally {
      rebinding = false;
    }
  };
  const socketTimer = setInterval(() => void rebindIfGone(), SOCKET_CHECK_MS);
  socketTimer.unref();
  // Requests batched in one turn share the stats of files every request checks (lib/file-key.ts).
  const stopSharing = shareStats();
  opts.log('info', 'listening', { socket: opts.socket, store: opts.store.name, pid: process.pid });

  return {
    get server() {
      return server;
    },
    socket: opts.socket,
    connections: () => live.size,
    reloadPolicy: () => policy.reload(),
    serveNamespace: (ns: string) => {
      sandboxNamespace = ns;
    },
    async close() {
      // An open dialog would outlive the daemon, its question no longer answerable.
      const dialogs = askpass?.close();
      stopped = true;
      clearInterval(socketTimer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of live) c.close('daemon stopping');
      });
      await dialogs;
      // Only the socket we bound: whatever replaced it since is not ours to delete.
      try {
        if (lstatSync(opts.socket).ino === ours) unlinkSync(opts.socket);
      } catch {}
      clearInterval(throttleTimer);
      writeHeldBack(true);
      audit.close();
      stopSharing();
      await opts.store.close();
      releaseLock(auditLockHeld.fd);
      // A sandbox's audit file is its own (one per run): its lock file would only pile up.
      if (opts.boundary) rmSync(auditLock, { force: true });
      releaseLock(lock.fd);
    },
  };
}
