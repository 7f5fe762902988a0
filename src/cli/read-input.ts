import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isatty } from 'node:tty';
import { EntraclawError, TooLargeError, UsageError } from '../errors.js';

// A non-blocking stdin (a pipe whose other users set O_NONBLOCK, as node does on the pipes it reads) says
// EAGAIN until its writer writes: sleep between tries rather than spin a CPU for as long as that takes.
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const pause = () => Atomics.wait(sleeper, 0, 0, 10);

/** Reads at most `max` bytes from a file descriptor; one byte more is a TooLargeError naming `what`. */
export function readBounded(fd: number, max: number, what: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        pause();
        continue;
      }
      if ((err as NodeJS.ErrnoException).code === 'EOF') break;
      throw err;
    }
    if (n === 0) break;
    total += n;
    if (total > max)
      throw new TooLargeError(
        `${what} is larger than ${max} bytes`,
        'store large files encrypted elsewhere and keep only the key here',
      );
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  buf.fill(0);
  return Buffer.concat(chunks);
}

/** Reads a secret value from a named file (not stdin), bounded by `max`. */
export function readValueFile(path: string, max: number, what: string): Buffer {
  if (path === '')
    throw new UsageError('--from-file was given an empty path', 'check the path given to --from-file');
  const unreadable = (err: unknown) =>
    new UsageError(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      'check the path given to --from-file',
    );
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw unreadable(err);
  }
  try {
    if (fstatSync(fd).isDirectory())
      throw new UsageError(`${path} is a directory`, 'give --from-file a regular file');
    // /dev/stdin or /dev/tty at a terminal: the terminal would echo the secret as it is typed.
    if (isatty(fd))
      throw new UsageError(
        `${path} is a terminal: the value would show on the screen as you type it`,
        'leave out --from-file (or give --from-file -) to be asked for it with echo off',
      );
    return readBounded(fd, max, what);
  } catch (err) {
    // An open file can still fail to read (EIO from /proc/self/mem, a device): the file, not us.
    if (err instanceof EntraclawError) throw err;
    throw unreadable(err);
  } finally {
    closeSync(fd);
  }
}
