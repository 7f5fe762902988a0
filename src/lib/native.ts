import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '../errors.js';

/** Kernel credentials of one chunk of bytes (Linux SCM_CREDENTIALS / SCM_PIDFD) or of the peer. */
export interface PeerCred {
  /** -1 (with uid and gid -1) when the kernel attached no sender to the bytes: treat as unidentified. */
  pid: number;
  uid: number;
  gid: number;
  /** A pidfd for the process (owned by the caller, who must close it), or -1 when the kernel gave none. */
  pidfd: number;
}

/** What procLook() sees of a process. */
export interface ProcLook {
  state: string;
  tracerPid: number;
  uids: string;
  layout: string;
  exe: string;
  envAlive: boolean;
  /** The user namespace, as readlink of /proc/PID/ns/user gives it; "" when unreadable. */
  userns: string;
}

/** Signature of the callback the per-message reader calls for each recvmsg(). */
export type ReaderCallback = (err: Error | null, data: Buffer | null, cred: PeerCred | null) => void;

/** The C addon in native/entraclaw.c. Every function throws an Error with `.code` = errno name on failure. */
export interface NativeAddon {
  /** SO_PEERCRED (+ SO_PEERPIDFD where available) of a connected Unix socket; macOS: LOCAL_PEERPID + euid. */
  peerCred(fd: number): PeerCred;
  /** The uid behind the other end of a connected Unix socket (SO_PEERCRED; macOS getpeereid). */
  peerUid(fd: number): number;
  /**
   * Sets SO_PASSCRED (+ SO_PASSPIDFD) on a socket. Call it on the listening socket: connections inherit it
   * at connect(); bytes sent before the receiver asked for credentials carry none (seen on Linux 6.18).
   */
  passCred(fd: number): void;
  /**
   * Starts reading fd (dup'd internally) with recvmsg + SO_PASSCRED/SO_PASSPIDFD; calls cb per read with the
   * bytes and the sender's credentials; data === null means EOF. Returns a handle for stopReader.
   */
  startReader(fd: number, cb: ReaderCallback): object;
  /** Stops the reader and closes its dup'd fd. Idempotent. */
  stopReader(handle: object): void;
  /** Whether the process behind a pidfd is still alive (fdinfo Pid != -1). */
  pidfdAlive(pidfd: number): boolean;
  /** pidfd_open(pid); -1 when unsupported. */
  pidfdOpen(pid: number): number;
  /**
   * One look at a process for identity/watch.ts: the pid behind pidfd (-2 when pidfd is -1), state,
   * TracerPid, uids ("r e s f"), the exec-replaced part of /proc/<pid>/stat, dev:ino of /proc/<pid>/exe,
   * and whether the mm pinned by envFd (an open /proc/<pid>/environ) still has users. stat and status
   * are read through statFd/statusFd when given (held fds), else opened by path.
   */
  procLook(pid: number, envFd: number, statFd: number, statusFd: number): ProcLook;
  /**
   * macOS: the peer's audit token (LOCAL_PEERTOKEN) as pid, euid, egid, pidversion and the executable path
   * from proc_pidpath_audittoken (fails once the pid was reused). Elsewhere throws ENOSYS.
   */
  peerToken(fd: number): { pid: number; uid: number; gid: number; pidversion: number; exe: string };
  /**
   * Inode numbers of pid's user namespace and its ancestors (NS_GET_PARENT), nearest first, at most
   * maxDepth; the chain ends at the initial namespace or the first one above the caller's.
   */
  userNamespaceChain(pid: number, maxDepth: number): number[];
  /** Bytes waiting in a socket's receive queue (FIONREAD). */
  socketInq(fd: number): number;
  /** stat(2) of path as "dev:ino:size:mtimeNs:ctimeNs"; null when it does not exist (ENOENT). */
  statKey(path: string): string | null;
  /** close(2). */
  close(fd: number): void;
  /** pipe(2) as [readFd, writeFd], both close-on-exec. */
  pipe(): [number, number];
  /** PR_SET_DUMPABLE 0 and RLIMIT_CORE 0 (macOS: RLIMIT_CORE 0 only; PT_DENY_ATTACH would block debugging node). */
  harden(): void;
  /** Linux: PR_SET_DUMPABLE 0 only (execve resets it for children); macOS: soft RLIMIT_CORE 0. */
  noCoreDump(): void;
  /** Raises the soft RLIMIT_NOFILE towards `want` (capped by the hard limit); returns the soft limit now. */
  raiseNofile(want: number): number;
  /** Whether this process is currently dumpable (for tests). */
  isDumpable(): boolean;
  /** Marks every open fd >= lowest close-on-exec (close_range, or each fd /proc/self/fd lists). */
  cloexecFrom(lowest: number): number;
  /** flock(fd, LOCK_EX|LOCK_NB when nonblocking) — returns false when nonblocking and held elsewhere. */
  flock(fd: number, exclusive: boolean, nonblocking: boolean): boolean;
  /** flock(fd, LOCK_UN). */
  funlock(fd: number): void;
  // Linux kernel keyring (raw syscalls, no libkeyutils).
  /** add_key("user", desc, payload, keyring) -> key serial. keyring: -4 = @u (KEY_SPEC_USER_KEYRING). */
  keyAdd(type: string, description: string, payload: Buffer, keyring: number): number;
  /** KEYCTL_SEARCH in keyring for (type, description) -> serial, or -1 if not found. */
  keySearch(keyring: number, type: string, description: string): number;
  /** KEYCTL_READ -> payload. */
  keyRead(serial: number): Buffer;
  /** KEYCTL_DESCRIBE -> "type;uid;gid;perm;description". */
  keyDescribe(serial: number): string;
  /** KEYCTL_UNLINK from keyring. */
  keyUnlink(serial: number, keyring: number): void;
  /** KEYCTL_INVALIDATE. */
  keyInvalidate(serial: number): void;
  /** KEYCTL_SET_TIMEOUT in seconds (0 clears). */
  keySetTimeout(serial: number, seconds: number): void;
  /** The serials linked in a keyring (KEYCTL_READ on a keyring). */
  keyringList(keyring: number): number[];
}

let cached: NativeAddon | undefined;

/**
 * How to build the addon: a checkout has the Makefile, an npm-installed package only its install script.
 * An npm that runs only approved install scripts skips it, `npm rebuild` included, until it is approved.
 */
export const ADDON_HINT =
  'in a checkout run `make build`; for an npm-installed entraclaw run `npm rebuild entraclaw` (`npm rebuild -g entraclaw` for a global install), which builds it with node-gyp from your Node headers; if npm skipped its install script as not approved, run `npm install-scripts approve entraclaw` first (global: `npm install -g --allow-scripts=entraclaw`)';

/**
 * Loads the native addon built by `npm install` (build/Release/entraclaw_native.node). Without it (an
 * install with --ignore-scripts, a checkout not built) the error is an UnavailableError (exit 5) naming
 * the file and how to build it, not an internal error.
 */
export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    try {
      cached = require('../../build/Release/entraclaw_native.node') as NativeAddon;
    } catch (cause) {
      const path = fileURLToPath(new URL('../../build/Release/entraclaw_native.node', import.meta.url));
      const missing = (cause as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
      throw new UnavailableError(
        missing
          ? `entraclaw's native addon is not built (${path})`
          : `entraclaw's native addon ${path} cannot be loaded: ${(cause as Error).message}`,
        ADDON_HINT,
        { cause },
      );
    }
  }
  return cached;
}
