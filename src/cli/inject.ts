import { closeSync, lstatSync, openSync, readlinkSync, realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { TooLargeError, UsageError } from '../errors.js';
import { REFERENCE_SCHEME } from '../inject/reference.js';
import { resolveReference } from '../inject/resolve.js';
import { renderTemplate } from '../inject/template.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { native } from '../lib/native.js';
import { sameFile } from '../lib/same-file.js';
import type { Selection } from '../store/select.js';
import type { StoreOptions } from './context.js';
import { closeSelection, openStore } from './open-store.js';
import { note } from './output.js';
import { readBounded } from './read-input.js';

const MAX_TEMPLATE_BYTES = 4 * 1024 * 1024;

/** `entraclaw inject -i TEMPLATE [-o FILE]`: renders `{{ entraclaw://SERVICE/ACCOUNT }}` tags; FILE is written 0600, atomically. */
export async function inject(opts: StoreOptions & { in?: string; out?: string }): Promise<void> {
  // A value is about to be in memory: a crash must not write it to a core file (the daemon's own rule).
  native().noCoreDump();
  const source = opts.in ?? '-';
  const target = opts.out === '-' ? undefined : opts.out;
  if (target !== undefined && source !== '-' && sameFile(source, target)) {
    throw new UsageError(
      `-o ${target} is the template itself: writing the secrets over it would lose the template`,
      'write the rendered file somewhere else',
    );
  }
  if (target !== undefined) refuseSpecialTarget(target);
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
  const bare: string[] = [];
  try {
    // Rendered from the bytes, so text around the tags is copied exactly even when it is not UTF-8.
    out = await renderTemplate(
      text,
      async (service, account) => {
        sel ??= openStore(opts);
        return resolveReference(await sel, { service, account });
      },
      name,
      (where) => bare.push(where),
    );
  } finally {
    // A store that failed to open has nothing to close, and its error is already on its way.
    if (sel) await sel.then(closeSelection, () => undefined);
  }
  // Only a tag is replaced; a reference written without one reaches the output as text, so say where.
  if (bare.length > 0) {
    note(
      `warning: ${bare.join(', ')}: ${REFERENCE_SCHEME} outside {{ }} is copied as text, not replaced by the secret (write {{ ${REFERENCE_SCHEME}SERVICE/ACCOUNT }} to insert it)`,
    );
  }
  // Nothing is written unless every reference resolved: a half-rendered file would be worse than none.
  if (target !== undefined) writeOutput(target, out);
  else
    await new Promise<void>((resolve, reject) =>
      process.stdout.write(out, (e) => (e ? reject(e) : resolve())),
    );
  out.fill(0);
}

/**
 * `-o` replaces what it names with a new regular file (rename), never writes into it. Over a device, a FIFO
 * or a socket, or in /dev or /proc (`-o /dev/stdout`, `/dev/fd/1`), that would put a file holding the
 * secrets where a terminal, a pipe or `/dev/null` was; run as root, for every user of the machine.
 */
function refuseSpecialTarget(target: string): void {
  const refuse = (what: string) =>
    new UsageError(
      `-o ${target} is ${what}: inject replaces the file -o names with a new one, so a regular file holding the secrets would take its place; nothing was written`,
      'use -o - (stdout) to write to a terminal, a pipe or a device, or give -o the path of a regular file',
    );
  const inDevOrProc = (path: string): string | undefined => {
    try {
      const dir = realpathSync(dirname(path));
      return /^\/(dev|proc)(\/|$)/.test(dir) ? dir : undefined;
    } catch {
      return undefined; // no such directory: the write reports it
    }
  };
  const dir = inDevOrProc(target);
  if (dir) throw refuse(`in ${dir}`);
  let st: Stats;
  try {
    st = lstatSync(target);
    if (st.isSymbolicLink()) {
      // A link to /proc/self/fd/1 (what /dev/stdout is) stands for a descriptor, whatever it is now.
      const linkDir = inDevOrProc(resolve(dirname(target), readlinkSync(target)));
      if (linkDir) throw refuse(`a symlink into ${linkDir}`);
      st = statSync(target);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    return; // nothing there (or a dangling link): a new file is created
  }
  if (st.isCharacterDevice() || st.isBlockDevice()) throw refuse('a device');
  if (st.isFIFO()) throw refuse('a named pipe (FIFO)');
  if (st.isSocket()) throw refuse('a socket');
}

// A path that cannot take the file is the user's to fix (exit 2); a full disk or an I/O error is not.
// EBUSY is rename(2) refusing a directory in use (`-o .`, `-o DIR/.`, `-o /`) or a mount point.
function writeOutput(path: string, data: Buffer): void {
  try {
    writeFileAtomic(path, data, 0o600);
  } catch (err) {
    const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (
      code &&
      ['ENOENT', 'ENOTDIR', 'EISDIR', 'EBUSY', 'EACCES', 'EPERM', 'EROFS', 'ELOOP'].includes(code)
    ) {
      throw new UsageError(
        (err as Error).message,
        '-o names the file to write: its directory must exist and be writable by you, and it must not be a directory',
      );
    }
    throw err;
  }
}
