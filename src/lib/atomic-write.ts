import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { UnavailableError } from '../errors.js';
import { shellQuote } from './shell.js';

const TEMP_SUFFIX = '.tmp';

/**
 * Replaces `path` with `data` so that a crash or a full disk leaves either the old or the new file: write a
 * temp file in the same directory, fsync it, rename it over `path`, fsync the directory. The temp file is
 * removed on failure. (macOS fsync does not flush the drive cache; durability there is best effort.)
 */
export function writeFileAtomic(path: string, data: Buffer, mode = 0o600): void {
  const temp = join(dirname(path), `${tempPrefix(path)}${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`);
  let fd: number | undefined;
  try {
    fd = openSync(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      mode,
    );
    // The umask may have narrowed `mode`; set it exactly so the result never depends on the caller's umask.
    fchmodSync(fd, mode);
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
    closeFd(fd);
    fd = undefined;
    renameSync(temp, path);
  } catch (err) {
    if (fd !== undefined) closeFd(fd);
    try {
      unlinkSync(temp);
    } catch {
      // Never created, or already renamed; either way nothing is left behind.
    }
    throw writeError(path, err);
  }
  try {
    fsyncDir(dirname(path));
  } catch (err) {
    throw writeError(path, err, 'the new contents are in place but may not survive a power loss');
  }
}

/**
 * Removes temp files that crashed writers of `path` left behind. Safe only while holding a lock that every
 * writer of `path` holds, since a live writer's temp file looks the same.
 */
export function sweepTempFiles(path: string): number {
  const prefix = tempPrefix(path);
  let removed = 0;
  for (const name of readdirSync(dirname(path))) {
    if (!name.startsWith(prefix) || !name.endsWith(TEMP_SUFFIX)) continue;
    try {
      unlinkSync(join(dirname(path), name));
      removed++;
    } catch {
      // Gone already (another sweeper); nothing to do.
    }
  }
  return removed;
}

/** fsyncs a directory so a rename or create inside it is durable. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// close(2) frees the descriptor even when it reports an error, so it must never be retried: the number may
// already belong to a file another thread opened.
function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Reported by the caller's own error path if it mattered (the data was fsynced before this).
  }
}

function tempPrefix(path: string): string {
  return `.${basename(path)}.`;
}

function writeError(
  path: string,
  err: unknown,
  outcome = existsSync(path) ? 'the previous contents are unchanged' : 'nothing was written',
): UnavailableError {
  const e = err as NodeJS.ErrnoException;
  const code = e.code ?? 'EIO';
  const text = typeof e.errno === 'number' ? getSystemErrorMap().get(e.errno)?.[1] : undefined;
  return new UnavailableError(
    `cannot write ${path}: ${code}${text ? ` (${text})` : ''}; ${outcome}`,
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'free some disk space and try again'
      : code === 'EROFS'
        ? `${dirname(path)} is on a read-only file system here: write where you can, or remount it`
        : code === 'EACCES' || code === 'EPERM'
          ? `check that ${dirname(path)} is yours and writable (ls -ld ${shellQuote(dirname(path))})`
          : code === 'ENOENT' || code === 'ENOTDIR'
            ? `${dirname(path)} is not an existing directory: create it first, or write elsewhere`
            : undefined,
    { cause: err },
  );
}
