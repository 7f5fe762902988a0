// Who sent a request, from kernel facts only: the sender's pid and pidfd (SCM_CREDENTIALS/SCM_PIDFD
// of the very bytes), then /proc for its executable, argv, environment and script. Nothing the
// client says about itself is used. The order matters: read /proc first, then confirm through the
// pidfd that the process is still alive — a pid number is not reused while its process lives, so
// the reads described the sender and not a recycled pid.
//
// Limits, said plainly:
// - argv and environ are memory of the process itself. Code already running as the user can rewrite
//   them (process.title, writing over argv), so a same-user program started under an approved
//   interpreter binary can claim to run an approved script. Script pinning binds honest interpreters
//   to their scripts; a same-user attacker is out of scope on Linux without an LSM, as is ptrace.
// - A relative script is resolved against the process's current directory, which it may have
//   changed since it started (same caveat). Only the entry script is pinned, not what it imports.
// - A sender that exec()s an approved binary after sending and before we read /proc is seen as that
//   binary: exec keeps the pid and the pidfd. Linux has no exec counter to detect it.
// - Interpreters not known to interpreter.ts (php, lua, java, busybox sh...) count as binaries:
//   approving one approves whatever it runs.
// - identifyParent(): an orphan is adopted by the nearest subreaper, so an approved subreaper is
//   the parent of any orphaned shim below it.
// - macOS goes through darwin.ts (audit token); identify() itself refuses there.

import { basename } from 'node:path';
import { EntraclawError } from '../errors.js';
import { native } from '../lib/native.js';
import { analyzeCommand } from './interpreter.js';
import {
  type HashedFile,
  hashOpened,
  pidfdPid,
  readArgv,
  readEnviron,
  readStartTime,
  readStatus,
} from './proc.js';

/** A verified process: its executable (and script, for an interpreter) with their SHA-256. */
export interface Identity {
  pid: number;
  uid: number;
  ppid: number;
  /** Canonical path of the executable that was hashed. */
  exe: string;
  sha256: string;
  /** Canonical path of the script an interpreter runs, and its hash. */
  script?: string;
  scriptSha256?: string;
  /** argv for display and audit only (first ARGV_MAX arguments, ARG_CHARS_MAX characters each). */
  argv: string[];
  /** Start time from /proc (see readStartTime): pid + started names this one process. */
  started?: string;
  /** fileKey() of the executable and script that were hashed, to notice a change without rehashing. */
  files?: { exe: string; script?: string };
}

/** Why a process cannot be identified; `exe`/`sha256` are set when known, for the audit log. */
export interface Refusal {
  refused: true;
  reason: string;
  pid: number;
  exe?: string;
  sha256?: string;
}

/** Options of identify(); the defaults are the production behaviour. */
export interface IdentifyOptions {
  /** The uid a caller must run as (all of real, effective, saved, fs); defaults to our euid. */
  uid?: number;
  /** Accept pidfd -1 (kernels before 6.5) and skip the liveness check. Never in production. */
  allowNoPidfd?: boolean;
  /** Open fds of the process's /proc stat and status (a watch's), read instead of opening both again. */
  held?: { stat: number; status: number };
}

/** Arguments kept in Identity.argv. */
const ARGV_MAX = 16;
/** Characters kept per argument in Identity.argv. */
const ARG_CHARS_MAX = 256;

const EXITED = 'peer exited (cannot verify identity)';

/** Thrown inside identification when the answer is a refusal; carries what was learnt so far. */
class Refused extends Error {
  constructor(
    reason: string,
    readonly exe?: string,
    readonly sha256?: string,
  ) {
    super(reason);
  }
}

/**
 * Identifies the process behind `pid`, given a pidfd for it (from SCM_PIDFD or pidfdOpen). The
 * pidfd is only read, never closed: whoever passed it closes it.
 */
export function identify(pid: number, pidfd: number, opts: IdentifyOptions = {}): Identity | Refusal {
  if (process.platform !== 'linux') {
    return { refused: true, reason: 'identity verification is only implemented on Linux in this build', pid };
  }
  if (!Number.isInteger(pid) || pid <= 0) return { refused: true, reason: `invalid pid ${pid}`, pid };
  if (pidfd < 0 && !opts.allowNoPidfd) {
    return {
      refused: true,
      reason: 'no pidfd for the caller (Linux 6.5+ needed), so its identity cannot be verified',
      pid,
    };
  }
  let result: Identity | Refused;
  try {
    result = inspect(pid, opts.uid ?? process.geteuid!(), opts.held);
  } catch (err) {
    result = err instanceof Refused ? err : new Refused(explain(err));
  }
  if (pidfd >= 0 && !stillThere(pid, pidfd)) return { refused: true, reason: EXITED, pid };
  if (!(result instanceof Refused)) return result;
  return {
    refused: true,
    reason: result.message,
    pid,
    ...(result.exe ? { exe: result.exe } : {}),
    ...(result.sha256 ? { sha256: result.sha256 } : {}),
  };
}

/**
 * Whether the pidfd's process still runs *as pid*. This is the same fdinfo read as the addon's
 * pidfdAlive(), but comparing the pid also catches a pidfd that was for another process all along,
 * for which "alive" would prove nothing. The pidfd predates our reads, so if its process still has
 * this pid now, it had it throughout them. Unreadable counts as gone (fail closed).
 */
function stillThere(pid: number, pidfd: number): boolean {
  try {
    return pidfdPid(pidfd) === pid;
  } catch {
    return false;
  }
}

/** Reads and checks everything /proc says about pid; throws Refused or an fs error. */
function inspect(pid: number, uid: number, held?: IdentifyOptions['held']): Identity {
  const status = readStatus(pid, held?.status);
  if (status.state === 'Z' || status.state === 'X') throw new Refused(EXITED);
  if (status.uids.some((u) => u !== uid)) {
    throw new Refused(`caller runs as uid ${status.uids.join('/')} (real/effective/saved/fs), not ${uid}`);
  }
  if (status.tracerPid !== 0) {
    throw new Refused(`process is being traced (by pid ${status.tracerPid}); run it without a debugger`);
  }
  const exe = hashOpened(`/proc/${pid}/exe`);
  if (exe.deleted) {
    throw new Refused(
      `executable was deleted/replaced since the process started (${exe.path}); restart it`,
      exe.path,
      exe.sha256,
    );
  }
  const argv = readArgv(pid);
  if (argv.length === 0) throw new Refused(EXITED, exe.path, exe.sha256);
  const env = readEnviron(pid);
  const what = analyzeCommand(basename(exe.path), argv, env);
  if (what.kind === 'refused') throw new Refused(what.reason, exe.path, exe.sha256);
  const identity: Identity = {
    pid,
    uid,
    ppid: status.ppid,
    exe: exe.path,
    sha256: exe.sha256,
    argv: argv.slice(0, ARGV_MAX).map((a) => a.slice(0, ARG_CHARS_MAX)),
    started: readStartTime(pid, held?.stat),
    files: { exe: exe.key },
  };
  if (what.kind === 'script') {
    const script = openScript(pid, what.scriptArg, exe);
    identity.script = script.path;
    identity.scriptSha256 = script.sha256;
    identity.files!.script = script.key;
  }
  return identity;
}

/**
 * Hashes the script through the process's own cwd and root (/proc/<pid>/cwd, /proc/<pid>/root), so
 * it is the file that process would open, even in a chroot or after its directory was renamed.
 */
function openScript(pid: number, arg: string, exe: HashedFile): HashedFile {
  const path = arg.startsWith('/') ? `/proc/${pid}/root${arg}` : `/proc/${pid}/cwd/${arg}`;
  let script: HashedFile;
  try {
    script = hashOpened(path);
  } catch (err) {
    if (err instanceof EntraclawError)
      throw new Refused(`script ${arg}: ${err.message}`, exe.path, exe.sha256);
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'was not found from its working directory (did it chdir?)'
        : code === 'ENOTREG'
          ? 'is not a regular file'
          : `cannot be read (${code ?? (err as Error).message})`;
    throw new Refused(`script ${arg} ${why}`, exe.path, exe.sha256);
  }
  if (script.deleted)
    throw new Refused(`script ${script.path} was deleted; restart it`, exe.path, exe.sha256);
  return script;
}

/** A reason for an unexpected failure while reading /proc. */
function explain(err: unknown): string {
  if (err instanceof EntraclawError) return err.message;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT' || e.code === 'ESRCH') return EXITED;
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    return 'cannot read the process in /proc: it is not dumpable (setuid, file capabilities or PR_SET_DUMPABLE 0)';
  }
  return `cannot read the process in /proc (${e.code ?? e.message})`;
}

/**
 * Identifies the parent of an identified process: for our shim, whose request is decided for the
 * program that ran it. Opens (and closes) its own pidfd for the parent, then checks the child's
 * parent is still that pid, so an exit-and-reuse of the parent pid is caught.
 */
export function identifyParent(child: Identity, opts: IdentifyOptions = {}): Identity | Refusal {
  const pid = child.ppid;
  if (pid <= 1) return { refused: true, reason: 'caller has no parent process (orphaned)', pid };
  let pidfd: number;
  try {
    pidfd = native().pidfdOpen(pid);
  } catch {
    return { refused: true, reason: EXITED, pid };
  }
  try {
    const parent = identify(pid, pidfd, opts);
    if ('refused' in parent) return parent;
    let now: number;
    try {
      now = readStatus(child.pid).ppid;
    } catch {
      return { refused: true, reason: 'caller exited before its parent was verified', pid };
    }
    if (now !== pid) {
      return {
        refused: true,
        reason: `caller's parent changed (was ${pid}, now ${now}) while it was verified`,
        pid,
      };
    }
    return parent;
  } finally {
    if (pidfd >= 0) native().close(pidfd);
  }
}
