// "The same file, unchanged" without reading it: (dev, ino, size, mtime ns, ctime ns). ctime cannot be
// set from user space, so even a same-size rewrite that restores the old mtime changes the key.
import type { BigIntStats } from 'node:fs';
import { native } from './native.js';

/** dev:ino:size:mtime:ctime (ns) of a bigint stat: the identity hash cache's and identity/watch.ts's key. */
export function fileKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * fileKey() of whatever `path` names now (symlinks followed), or undefined when nothing is there; other
 * stat errors throw. One addon call: the daemon asks this of a few files on every request.
 */
export function pathKey(path: string): string | undefined {
  return native().statKey(path) ?? undefined;
}
