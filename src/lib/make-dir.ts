// Creating a directory and its missing parents. Node's recursive mkdir spins forever where mkdir(2) says
// ENOENT under a parent that exists (procfs: `shim install /proc/x` burned a core), so the missing ones
// are found by stat and made one at a time; and a failure names the directory and what to check.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UnavailableError } from '../errors.js';
import { shellQuote } from './shell.js';

/** `mkdir -p` with `mode` for the directories it creates; throws the errno error of the step that failed. */
export function makeDirs(dir: string, mode: number): void {
  const missing: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    let isDir: boolean;
    try {
      isDir = statSync(d).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(d);
      if (dirname(d) === d) break;
      continue;
    }
    // What exists must be a directory, the asked-for one included (mkdir -p fails on a file too).
    if (!isDir) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${d}'`), { code: 'ENOTDIR' });
    break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      // Made meanwhile by another process, or a dangling symlink (whose target's absence the next
      // step reports as ENOENT).
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  // The last one may have "existed" as a dangling symlink: stat it, which follows the link (ENOENT).
  if (missing.length > 0) statSync(resolve(dir));
}

/**
 * makeDirs() for one of Entraclaw's own directories; a failure is "unavailable", naming `dir` and the
 * XDG variable (`xdgVar`) that places it.
 */
export function makeOwnDir(dir: string, xdgVar: string): void {
  try {
    makeDirs(dir, 0o700);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    const hint =
      code === 'ENOENT'
        ? `a directory above it is missing or a dangling symlink: fix it, or set ${xdgVar} to a directory of yours`
        : code === 'ENOTDIR' || code === 'EEXIST'
          ? `a file is in the way: move it, or set ${xdgVar} elsewhere`
          : code === 'EROFS'
            ? `it is on a read-only file system: set ${xdgVar} to a writable directory`
            : `it must be a directory you can write: check ls -ld ${shellQuote(dirname(dir))}, or set ${xdgVar} elsewhere`;
    throw new UnavailableError(`cannot create the directory ${dir}: ${code}`, hint, { cause: err });
  }
}
