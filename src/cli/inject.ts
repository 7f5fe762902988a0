import { closeSync, openSync, statSync } from 'node:fs';
import { TooLargeError, UsageError } from '../errors.js';
import { resolveReference } from '../inject/resolve.js';
import { renderTemplate } from '../inject/template.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import type { Selection } from '../store/select.js';
import type { StoreOptions } from './context.js';
import { closeSelection, openStore } from './open-store.js';
import { readBounded } from './read-input.js';

const MAX_TEMPLATE_BYTES = 4 * 1024 * 1024;

/** `entraclaw inject -i TEMPLATE [-o FILE]`: renders `{{ entraclaw://SERVICE/ACCOUNT }}` tags; FILE is written 0600, atomically. */
export async function inject(opts: StoreOptions & { in?: string; out?: string }): Promise<void> {
  const source = opts.in ?? '-';
  const target = opts.out === '-' ? undefined : opts.out;
  if (target === '')
    throw new UsageError('-o was given an empty file name', 'give -o a file to write, or - for stdout');
  if (target !== undefined && source !== '-' && sameFile(source, target)) {
    throw new UsageError(
      `-o ${target} is the template itself: writing the secrets over it would lose the template`,
      'write the rendered file somewhere else',
    );
  }
  let text: Buffer;
  let fd: number | undefined;
  try {
    fd = source === '-' ? 0 : openSync(source, 'r');
    text = readBounded(fd, MAX_TEMPLATE_BYTES, `template ${source === '-' ? 'on stdin' : source}`);
  } catch (err) {
    if (err instanceof TooLargeError) throw new TooLargeError(err.message, 'split it into smaller templates');
    const code = (err as NodeJS.ErrnoException).code;
    if (!code) throw err;
    throw new UsageError(
      `cannot read template ${source}: ${code}`,
      'give -i an existing file (or - for stdin)',
    );
  } finally {
    if (fd !== undefined && fd !== 0) closeSync(fd);
  }
  const name = source === '-' ? 'stdin' : source;
  // The store is opened on the first reference only: a template without one needs no store (or passphrase).
  let sel: Promise<Selection> | undefined;
  let out: Buffer;
  try {
    // Rendered from the bytes, so text around the tags is copied exactly even when it is not UTF-8.
    out = await renderTemplate(
      text,
      async (service, account) => {
        sel ??= openStore(opts);
        return resolveReference(await sel, { service, account });
      },
      name,
    );
  } finally {
    // A store that failed to open has nothing to close, and its error is already on its way.
    if (sel) await sel.then(closeSelection, () => undefined);
  }
  // Nothing is written unless every reference resolved: a half-rendered file would be worse than none.
  if (target !== undefined) writeOutput(target, out);
  else
    await new Promise<void>((resolve, reject) =>
      process.stdout.write(out, (e) => (e ? reject(e) : resolve())),
    );
  out.fill(0);
}

function sameFile(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

// A path that cannot take the file is the user's to fix (exit 2); a full disk or an I/O error is not.
function writeOutput(path: string, data: Buffer): void {
  try {
    writeFileAtomic(path, data, 0o600);
  } catch (err) {
    const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code && ['ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'EROFS', 'ELOOP'].includes(code)) {
      throw new UsageError(
        (err as Error).message,
        '-o names the file to write: its directory must exist and be writable by you, and it must not be a directory',
      );
    }
    throw err;
  }
}
