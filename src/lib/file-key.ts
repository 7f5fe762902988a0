// "The same file, unchanged" without reading it: (dev, ino, size, mtime ns, ctime ns). ctime cannot be
// set from user space, so even a same-size rewrite that restores the old mtime changes the key.
import type { BigIntStats } from 'node:fs';
import { native } from './native.js';

/** dev:ino:size:mtime:ctime (ns) of a bigint stat: the identity hash cache's and identity/watch.ts's key. */
export function fileKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

// The daemon stats the same few files (policy, audit log, vault, each caller's pinned executable) for
// every request. A stat taken after the last socket read is, for every request read so far, as fresh as
// one taken now: each of those requests was already in hand when it was taken. So, once shareStats() is
// on, pathKey() answers a repeat question from such a stat, and forgetStats() drops them: on every
// socket read, after the daemon's own writes, and before a decision taken again after a wait (a user's
// confirmation). Whatever is left goes at the next turn of the event loop.
let shared: Map<string, string | undefined> | undefined;
let sharers = 0;

/** Lets pathKey() reuse stats taken since the last forgetStats() (the daemon; see above) until the returned stop(). */
export function shareStats(): () => void {
  sharers++;
  shared ??= new Map();
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--sharers === 0) shared = undefined;
  };
}

/** Drops every shared stat: the next pathKey() of each path stats it again. */
export function forgetStats(): void {
  shared?.clear();
}

/**
 * fileKey() of whatever `path` names now (symlinks followed), or undefined when nothing is there; other
 * stat errors throw. One addon call: the daemon asks this of a few files on every request.
 */
export function pathKey(path: string): string | undefined {
  if (!shared) return native().statKey(path) ?? undefined;
  if (shared.has(path)) return shared.get(path);
  const key = native().statKey(path) ?? undefined;
  if (shared.size === 0) setImmediate(forgetStats);
  shared.set(path, key);
  return key;
}
