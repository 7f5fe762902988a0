// SHA-256 of the executable behind a request. Hashing node (~94 MiB) costs ~64 ms, so results are cached
// by file identity: (dev, ino, size, mtime ns, ctime ns). ctime cannot be set from user space, so even a
// same-size rewrite that restores the old mtime misses the cache — unless it lands in the same timestamp
// tick as the change before it: Linux stamps files from a clock that advances once per jiffy (1-10 ms;
// before 6.13, or on filesystems without multigrain timestamps), so two same-size writes that close
// together leave the same key. As git does with its "racily clean" index entries, a hash taken while the
// file's last change is that recent is not cached: the next identification hashes the file again.
import { createHash } from 'node:crypto';
import { type BigIntStats, closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { EntraclawError } from '../errors.js';
import { fileKey } from '../lib/file-key.js';

/** 1 MiB reads: ~2.6x faster than stream-sized chunks on a large binary. */
const CHUNK_BYTES = 1024 * 1024;
/**
 * Largest file hashed. Hashing runs on the daemon's event loop: a huge (say sparse) "executable" would
 * stall every client for as long as reading it takes, and a touch makes it new again.
 */
export const MAX_HASH_BYTES = 1024 * 1024 * 1024;
/** Distinct executables remembered; the oldest entry goes first. */
const CACHE_ENTRIES = 1024;
/** Rehash attempts while the file changes under us, before giving up. */
const MAX_ATTEMPTS = 3;
/**
 * How long after a file's last change (its ctime) a hash of it is not cached: well past a jiffy, and past
 * the 1-2 s timestamp granularity of filesystems such as FAT or some network mounts.
 */
export const RACY_NS = 2_000_000_000n;

/** A bounded map from file identity to SHA-256, with hit/miss counts for diagnostics. */
export class HashCache {
  hits = 0;
  misses = 0;
  private readonly entries = new Map<string, string>();

  /** `racyNs`: how recent a change keeps a hash out of the cache (RACY_NS; 0: none, for tests of the key). */
  constructor(readonly racyNs: bigint = RACY_NS) {}

  /** The cached hash for this identity, counting the hit or miss. */
  lookup(key: string): string | undefined {
    const hash = this.entries.get(key);
    if (hash === undefined) this.misses++;
    else this.hits++;
    return hash;
  }

  /** Remembers a hash, evicting the oldest entry when full. */
  store(key: string, hash: string): void {
    if (this.entries.size >= CACHE_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, hash);
  }
}

const shared = new HashCache();

/** Hashes the whole file with positional reads, leaving the fd's own offset untouched. */
function sha256(fd: number): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let position = 0;
  for (;;) {
    const n = readSync(fd, buf, 0, CHUNK_BYTES, position);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    position += n;
  }
  return hash.digest('hex');
}

function hashFd(fd: number, cache: HashCache, stat?: BigIntStats): string {
  let st = stat ?? fstatSync(fd, { bigint: true });
  const cached = cache.lookup(fileKey(st));
  if (cached !== undefined) return cached;
  if (st.size > BigInt(MAX_HASH_BYTES)) {
    throw new EntraclawError(
      'too_large',
      `the file is ${st.size} bytes; files over ${MAX_HASH_BYTES} bytes are not pinned (hashing one would stall the daemon)`,
    );
  }
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const hash = sha256(fd);
    const after = fstatSync(fd, { bigint: true });
    // A hash of a file that changed mid-read describes no version of it.
    if (fileKey(after) === fileKey(st)) {
      if (!changedWithin(st, cache.racyNs)) cache.store(fileKey(st), hash);
      return hash;
    }
    st = after;
  }
  throw new EntraclawError('conflict', `file kept changing while it was hashed (fd ${fd})`);
}

// Whether the file's last change is so recent that another could still land in the same timestamp tick.
// A clock that went backwards counts as recent (not cached): the safe side. A window of 0 turns it off.
function changedWithin(st: BigIntStats, ns: bigint): boolean {
  return ns > 0n && BigInt(Date.now()) * 1_000_000n - st.ctimeNs < ns;
}

/**
 * SHA-256 (hex) of an executable given as an open fd (e.g. of /proc/<pid>/exe) or a path, cached by
 * (dev, ino, size, mtimeNs, ctimeNs). A path is opened once and fstat'ed, so the hash and the identity
 * describe the same file.
 */
export function hashExecutable(target: number | string, cache: HashCache = shared): string {
  if (typeof target === 'number') return hashFd(target, cache);
  const fd = openSync(target, 'r');
  try {
    return hashFd(fd, cache);
  } finally {
    closeSync(fd);
  }
}

/** hashExecutable() of an open fd whose bigint fstat the caller already took (one fstat fewer). */
export function hashStatted(fd: number, st: BigIntStats): string {
  return hashFd(fd, shared, st);
}
