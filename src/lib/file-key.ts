// "The same file, unchanged" without reading it: (dev, ino, size, mtime ns, ctime ns). ctime cannot be
// set from user space, so even a same-size rewrite that restores the old mtime changes the key.
import type { BigIntStats } from 'node:fs';
import { native } from './native.js';

/** dev:ino:size:mtime:ctime (ns) of a bigint stat: the identity hash cache's and identity/watch.ts's key. */
export function fileKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

// The daemon stats the same few files (policy, audit log, vault, each caller's pinned executable) and
// looks at the same callers in /proc for every request. A reading taken after the last socket read is,
// for every request read so far, as fresh as one taken now: each of those requests was already in hand
// when it was taken. So, once shareStats() is on, pathKey() and sharedReading() answer a repeat question
// from such a reading, and forgetStats() drops them: on every socket read, after the daemon's own writes,
// and before a decision taken again after a wait (a user's confirmation). Whatever is left goes at the
// next turn of the event loop.
let shared: Map<string, unknown> | undefined;
let sharers = 0;

/** Lets pathKey() and sharedReading() reuse readings taken since the last forgetStats() (the daemon; see above) until the returned stop(). */
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

/** Drops every shared reading: the next question of each kind reads again. */
export function forgetStats(): void {
  shared?.clear();
}

/**
 * read() once per `key` while sharing is on and nothing was forgotten since (see above); read() every time
 * otherwise. A throw is not kept: the next caller reads again.
 */
export function sharedReading<T>(key: string, read: () => T): T {
  if (!shared) return read();
  if (shared.has(key)) return shared.get(key) as T;
  const value = read();
  if (shared.size === 0) setImmediate(forgetStats);
  shared.set(key, value);
  return value;
}

/**
 * fileKey() of whatever `path` names now (symlinks followed), or undefined when nothing is there; other
 * stat errors throw. One addon call: the daemon asks this of a few files on every request.
 */
export function pathKey(path: string): string | undefined {
  // Keys of other readings never start with '/', so they cannot meet a path's.
  return sharedReading(path, () => native().statKey(path) ?? undefined);
}
