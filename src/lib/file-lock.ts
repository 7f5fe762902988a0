import { closeSync, constants, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { EntraclawError, UnavailableError } from '../errors.js';
import { lockHolderOf } from './lock-holder.js';
import { native } from './native.js';
import { shellQuote } from './shell.js';

/** How long `withFileLock` waits for another holder before giving up. */
export const LOCK_TIMEOUT_MS = 30_000;
/** How long `withFileLock` waits before telling `onWait` (a wait that long is worth a word to the user). */
export const LOCK_NOTICE_MS = 1_000;

/** Options for withFileLock. */
export interface LockOptions {
  timeoutMs?: number;
  /** Told once, after LOCK_NOTICE_MS of waiting, who holds the lock (a sentence; "another process" if unknown). */
  onWait?: (holder: string) => void;
}
// A blocking flock() would stall the whole event loop (and a daemon with it), so we poll LOCK_NB instead.
const POLL_MIN_MS = 2;
const POLL_MAX_MS = 50;

// flock() locks belong to an open file description, so two opens in one process exclude each other too;
// queueing callers of the same path in-process first just saves them from polling against each other.
const queues = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` while holding an exclusive flock() on `path` (created 0600 if missing). The kernel drops the lock
 * if this process dies, so a crashed holder never wedges the next one.
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const previous = queues.get(path) ?? Promise.resolve();
  const run = previous.then(
    () => locked(path, fn, opts),
    () => locked(path, fn, opts),
  );
  const tail = run.catch(() => undefined);
  queues.set(path, tail);
  try {
    return await run;
  } finally {
    if (queues.get(path) === tail) queues.delete(path);
  }
}

async function locked<T>(path: string, fn: () => Promise<T>, opts: LockOptions): Promise<T> {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw lockError(path, err);
  }
  try {
    await acquire(fd, path, opts);
    try {
      return await fn();
    } finally {
      // Unlock explicitly: a descriptor duplicated into a child would otherwise keep the lock alive.
      native().funlock(fd);
    }
  } finally {
    closeSync(fd);
  }
}

async function acquire(fd: number, path: string, opts: LockOptions): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? LOCK_TIMEOUT_MS;
  const start = Date.now();
  let told = false;
  for (let wait = POLL_MIN_MS; !tryLock(fd, path); wait = Math.min(wait * 2, POLL_MAX_MS)) {
    const waited = Date.now() - start;
    if (waited >= timeoutMs) {
      // Busy, like a locked store (exit 5): nothing is wrong with what was asked, and nothing was done.
      throw new UnavailableError(
        `timed out after ${timeoutMs} ms waiting for the lock ${path}, held by ${holderOf(fd)}; nothing was changed`,
        `retry once it is done (find the holder with \`fuser ${shellQuote(path)}\`)`,
      );
    }
    if (!told && opts.onWait && waited >= LOCK_NOTICE_MS) {
      told = true;
      opts.onWait(holderOf(fd));
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** Who holds the lock on fd's file, in words. */
function holderOf(fd: number): string {
  const holder = lockHolderOf(fd);
  if (!holder) return 'another process';
  return holder.command ? `pid ${holder.pid} (${holder.command})` : `pid ${holder.pid}`;
}

function tryLock(fd: number, path: string): boolean {
  try {
    return native().flock(fd, true, true);
  } catch (err) {
    // The addon missing says so itself, with how to build it: not a fault of the lock's directory.
    if (err instanceof EntraclawError) throw err;
    throw lockError(path, err);
  }
}

function lockError(path: string, err: unknown): UnavailableError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  // The lock file itself can be what is wrong (a link, a directory, a mode that shuts you out): the
  // directory alone would then look fine to whoever follows the hint.
  const what =
    code === 'ELOOP'
      ? ' (it is a symbolic link, which is never followed)'
      : code === 'EISDIR'
        ? ' (it is a directory)'
        : '';
  const hint =
    code === 'EROFS'
      ? `its directory is on a read-only file system: make ${shellQuote(dirname(path))} writable, or point the XDG_* directory that holds it elsewhere`
      : code === 'ELOOP' || code === 'EISDIR'
        ? `remove it (a regular file is made in its place): ${code === 'EISDIR' ? 'rmdir' : 'rm'} ${shellQuote(path)}`
        : code === 'EACCES' || code === 'EPERM'
          ? `it and its directory must be yours and writable: check ls -ld ${shellQuote(dirname(path))} ${shellQuote(path)}`
          : code === 'ENOSPC' || code === 'EDQUOT'
            ? 'the disk is full: free some space and retry'
            : `check that ${dirname(path)} exists and is a writable directory of yours`;
  return new UnavailableError(`cannot lock ${path}: ${code}${what}`, hint, { cause: err });
}
