// Re-checking a caller on every request without re-reading all of /proc: a process is identified once
// (identify(), full hashing) and then *watched*. A watch holds an open /proc/<pid>/environ, which pins the
// mm (address space) the process had when it was identified; exec gives the process a new mm and drops
// the old one's users, so a read through the held fd returns nothing from then on. It also holds
// /proc/<pid>/stat and status open: those stay bound to the process they were opened for and fail once
// it has exited, whatever later gets its pid number, so a request whose sender has that pid and finds
// them readable comes from the watched process (it has held the pid since before the request was sent).
// Each later request costs a one-byte read of the held environ (the pinned mm is alive) and one
// procLook() over the held fds, shared by the watches of one pid within a batch of requests
// (lib/file-key.ts): the exec-replaced fields of /proc/<pid>/stat (start time, code/stack/data/argv/
// environ addresses) and the running image's inode are unchanged, no tracer, same uids, same user
// namespace; and a stat of the hashed executable and script shows them unchanged on disk. Any difference, or any error, means "not the watched process": the caller is
// identified from scratch again.
//
// What a watch cannot see (docs/protocol.md, "Watched senders"): a process that shares the old mm with
// a CLONE_VM sibling, execs the same binary with argv and environ of the same sizes and ASLR disabled,
// keeps our socket across that exec, and had been identified as an approved program before. Only an
// approved program that hands its daemon connection to code it execs can get there; same-user code
// able to do that can already write to the approved process's memory, which is out of scope.
import { closeSync, openSync, readSync } from 'node:fs';
import { pathKey, sharedReading } from '../lib/file-key.js';
import { native, type ProcLook } from '../lib/native.js';
import { type Identity, identify, type Refusal } from './peer.js';

/** An identified process under watch; `unwatch()` it when done. */
export interface Watch {
  readonly pid: number;
  readonly identity: Identity;
  /** The fd of /proc/<pid>/environ that pins the identified mm. */
  readonly envFd: number;
  /** Held fds of /proc/<pid>/stat and status, bound to the watched process. */
  readonly statFd: number;
  readonly statusFd: number;
  /** procLook() fields that must not change while the watch holds. */
  readonly layout: string;
  readonly uids: string;
  readonly exe: string;
  /** The user namespace the process was identified in (identity/namespace.ts's form). */
  readonly userns: string;
}

/**
 * Identifies pid like identify(), and also returns a watch when the process can be watched (Linux, a
 * pidfd, a non-empty environment, a readable layout). The environ fd is opened before identification,
 * so the watched mm is the one identified, or an older one that is already dead.
 */
export function identifyAndWatch(pid: number, pidfd: number): { who: Identity | Refusal; watch?: Watch } {
  const fds: number[] = [];
  try {
    for (const file of ['environ', 'stat', 'status']) fds.push(openSync(`/proc/${pid}/${file}`, 'r'));
  } catch {
    for (const fd of fds) closeSync(fd);
    return { who: identify(pid, pidfd) };
  }
  const [envFd, statFd, statusFd] = fds as [number, number, number];
  // stat and status stay bound to the task they were opened for, so reading them through the held fds
  // is reading them afresh; environ is read by path, since the held one shows the mm as of its opening.
  const who = identify(pid, pidfd, { held: { stat: statFd, status: statusFd } });
  // The pidfd ties the held fds to the sender: they were opened for whatever had this pid, and
  // identify() succeeds only when the pidfd shows, after its reads, that this was the sender, still
  // alive. So the look needs no pidfd of its own.
  const look = 'refused' in who || !who.files || pidfd < 0 ? undefined : lookAt(pid, envFd, statFd, statusFd);
  // An all-zero layout is what /proc shows a reader without ptrace-read access: nothing to compare.
  if (!look?.envAlive || look.tracerPid !== 0 || /^0( 0)*$/.test(look.layout)) {
    for (const fd of fds) closeSync(fd);
    return { who };
  }
  const identity = who as Identity;
  return {
    who,
    watch: {
      pid,
      identity,
      envFd,
      statFd,
      statusFd,
      layout: look.layout,
      uids: look.uids,
      exe: look.exe,
      userns: look.userns,
    },
  };
}

/**
 * Whether the watched process is still there and runs the image it was identified in. A request whose
 * kernel-reported sender has the watched pid, and for which this holds, was sent by the watched process.
 */
export function stillWatched(watch: Watch): boolean {
  // The process part of the look is shared by every watch of this pid in one batch of requests (one
  // program with many connections): each watch's own held fds vouch for it only through its layout (start
  // time and addresses) and its own pinned mm, which are checked here for every watch.
  const look = sharedReading(`proc-look:${watch.pid}`, () =>
    lookAt(watch.pid, -1, watch.statFd, watch.statusFd),
  );
  return (
    look !== undefined &&
    look.state !== 'Z' &&
    look.state !== 'X' &&
    look.tracerPid === 0 &&
    look.layout === watch.layout &&
    look.uids === watch.uids &&
    look.exe === watch.exe &&
    look.userns === watch.userns &&
    mmAlive(watch.envFd) &&
    unchangedOnDisk(watch.identity)
  );
}

/** Releases the pinned mm and the held /proc fds. */
export function unwatch(watch: Watch): void {
  for (const fd of [watch.envFd, watch.statFd, watch.statusFd]) closeSync(fd);
}

function lookAt(pid: number, envFd: number, statFd: number, statusFd: number): ProcLook | undefined {
  try {
    return native().procLook(pid, envFd, statFd, statusFd);
  } catch {
    return undefined;
  }
}

// Whether the mm that the held /proc/<pid>/environ pins still has users (procLook's envAlive): exec and
// exit drop them, and a read through the fd then returns nothing.
function mmAlive(envFd: number): boolean {
  try {
    return readSync(envFd, Buffer.alloc(1), 0, 1, 0) === 1;
  } catch {
    return false;
  }
}

// An upgraded binary (renamed over the old one) or an edited script must meet identify() again, which
// refuses the first and rehashes the second.
function unchangedOnDisk(identity: Identity): boolean {
  try {
    // A file that is gone has no key; it never matches, even a missing one.
    const exe = pathKey(identity.exe);
    if (exe === undefined || exe !== identity.files?.exe) return false;
    if (identity.script === undefined) return true;
    const script = pathKey(identity.script);
    return script !== undefined && script === identity.files.script;
  } catch {
    return false;
  }
}
