import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TooLargeError, UsageError } from '../errors.js';

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
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
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
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new UsageError(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code}`,
      'check the path given to --from-file',
    );
  }
  try {
    if (fstatSync(fd).isDirectory())
      throw new UsageError(`${path} is a directory`, 'give --from-file a regular file');
    return readBounded(fd, max, what);
  } finally {
    closeSync(fd);
  }
}

/** Prompts on the terminal without echo and returns what was typed (without the newline). */
export async function promptHidden(question: string): Promise<Buffer> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  const bytes: number[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        for (const b of chunk) {
          if (b === 0x03) return reject(new UsageError('cancelled'));
          if (b === 0x0d || b === 0x0a) return resolve();
          if (b === 0x7f) bytes.pop();
          else bytes.push(b);
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    stdin.removeAllListeners('data');
    process.stderr.write('\n');
  }
  const out = Buffer.from(bytes);
  bytes.fill(0);
  return out;
}
