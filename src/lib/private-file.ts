// A file that decides what the broker does (policy.toml: who gets secrets; agent.toml: the askpass program
// the agent runs as you, which also answers every confirmation) must be changeable by its owner alone:
// ours, not writable by group or others, in directories others cannot rename entries in.
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  type Stats,
  statSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';

/** Refuses a file (as fstat'd from the fd that was read) another uid owns or group/others can write. */
function assertPrivate(path: string, st: Stats, uid: number | undefined): void {
  if (uid !== undefined && st.uid !== uid) {
    throw new UsageError(
      `${path} is owned by uid ${st.uid}, not ${uid}`,
      `chown it to yourself: chown $(id -u) ${path}`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new UsageError(`${path} is writable by other users`, `chmod 600 ${path}`);
  }
}

/** How readPrivateFile names the file in its errors. */
export interface PrivateFileNames {
  /** The file as errors name it ("config /x/agent.toml"). */
  named: string;
  /** The hint of an error reading it, and of one that is not a regular file. */
  readHint: string;
  notFileHint: string;
  /** Its role, for assertClosedDirs ("the policy"). */
  role: string;
}

/**
 * Reads a file that decides what the broker does, checked on the very fd that is read (a stat by name could
 * see another file than was read) and then for its directories (assertPrivate, assertClosedDirs); undefined
 * when there is no such file. Opened O_NONBLOCK: a FIFO there would otherwise hold every command (and the
 * daemon) until someone writes to it.
 */
export function readPrivateFile(
  path: string,
  names: PrivateFileNames,
  uid: number | undefined,
): Buffer | undefined {
  const unreadable = (err: unknown) =>
    new UsageError(`cannot read ${names.named}: ${(err as Error).message}`, names.readHint, { cause: err });
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadable(err);
  }
  let bytes: Buffer;
  try {
    const st = fstatSync(fd);
    // What a pipe or device says could change from one read to the next; a directory reads as EISDIR below.
    if (!st.isFile() && !st.isDirectory()) {
      throw new UsageError(`${names.named} is not a regular file`, names.notFileHint);
    }
    assertPrivate(path, st, uid);
    bytes = readFileSync(fd);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw unreadable(err);
  } finally {
    closeSync(fd);
  }
  assertClosedDirs(path, names.role);
  return bytes;
}

/**
 * Who can rename entries in the file's directory can put another file (or symlink) in its place between
 * two reads, so that directory, the one the file really lives in (a dotfiles symlink), and that of every
 * symlink on the way (policy.toml -> dotfiles/current -> dotfiles/v2/policy.toml: whoever may write
 * dotfiles/ may point current at another file) must not be writable by group or others unless sticky
 * (/tmp: others cannot replace our entries there). `what` names the file's role in the message.
 */
function assertClosedDirs(path: string, what: string): void {
  const dirs = guardingDirs(path);
  for (const dir of dirs) {
    const mode = statSync(dir).mode;
    if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
      throw new UsageError(
        `${dir}, which holds ${path}, is writable by other users (mode ${(mode & 0o777).toString(8)}): they could replace ${what}`,
        `chmod 700 ${dir}`,
      );
    }
  }
}

/**
 * Refuses a program Entraclaw runs as you with power over its decisions (the askpass, whose exit status
 * answers confirmations) when someone else could change it: owned by another uid than yours or root's,
 * writable by group or others, or in such a directory. A missing one is left to fail when it is run.
 */
export function assertTrustedProgram(path: string, what: string, uid: number | undefined): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch {
    return;
  }
  const untrusted = untrustedBy(st, uid);
  if (untrusted?.owner) {
    throw new UsageError(
      `${what} ${path} ${untrusted.why}: its owner could answer for you`,
      `use a program of yours or of the system's (e.g. /usr/bin/ssh-askpass)`,
    );
  }
  if (untrusted) {
    throw new UsageError(`${what} ${path} ${untrusted.why}: they could answer for you`, `chmod go-w ${path}`);
  }
  assertClosedDirs(path, what);
}

/**
 * Why a file (as stat'd) is not one only you and root can change, or undefined: another uid than yours or
 * root's owns it (`owner`), or group or others can write it. `why` completes "PATH ...".
 */
export function untrustedBy(st: Stats, uid: number | undefined): { why: string; owner: boolean } | undefined {
  if (uid !== undefined && st.uid !== uid && st.uid !== 0)
    return { why: `is owned by uid ${st.uid}, neither you (${uid}) nor root`, owner: true };
  if ((st.mode & 0o022) !== 0)
    return { why: `is writable by other users (mode ${(st.mode & 0o777).toString(8)})`, owner: false };
  return undefined;
}

/**
 * The directories whose modes decide whether the file at `path` can be trusted: its own, that of each
 * symlink on the way, and the one the file really lives in.
 */
export function guardingDirs(path: string): Set<string> {
  const dirs = new Set([dirname(path)]);
  let hop = path;
  for (let hops = 0; hops < 40; hops++) {
    let target: string;
    try {
      target = readlinkSync(hop);
    } catch {
      break;
    }
    hop = resolve(dirname(hop), target);
    dirs.add(dirname(hop));
  }
  try {
    dirs.add(dirname(realpathSync(path)));
  } catch {
    // Gone since it was read (a rename mid-load): its directory by name is checked all the same.
  }
  return dirs;
}
