import { fstatSync, type Stats, statSync } from 'node:fs';

/**
 * Whether two paths (links followed) or open descriptors are the same file, pipe or terminal: the same
 * device and inode. False when either cannot be stat'd.
 */
export function sameFile(a: string | number, b: string | number): boolean {
  const stat = (f: string | number): Stats => (typeof f === 'number' ? fstatSync(f) : statSync(f));
  try {
    const [x, y] = [stat(a), stat(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}
