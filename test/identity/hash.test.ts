import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HashCache, hashExecutable, MAX_HASH_BYTES, RACY_NS } from '../../src/identity/hash.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('hashExecutable', () => {
  it('refuses a file over the cap (a sparse "binary" would stall the daemon while it is read)', () => {
    const huge = join(dir, 'sparse');
    writeFileSync(huge, '');
    truncateSync(huge, MAX_HASH_BYTES + 1);
    expect(() => hashExecutable(huge, new HashCache())).toThrow(
      `files over ${MAX_HASH_BYTES} bytes are not pinned`,
    );
  });

  it('hashes files larger than one chunk, by path and by fd, without moving the fd offset', () => {
    const file = join(dir, 'big');
    const content = Buffer.alloc(3.5 * 1024 * 1024);
    for (let i = 0; i < content.length; i += 4096) content[i] = i % 251;
    writeFileSync(file, content);
    const expected = sha256(content);
    expect(hashExecutable(file, new HashCache())).toBe(expected);
    const fd = openSync(file, 'r');
    try {
      expect(hashExecutable(fd, new HashCache())).toBe(expected);
      // readFileSync(fd) starts at the fd's offset: still 0 if hashing used positional reads.
      expect(readFileSync(fd).equals(content)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it('hits the cache while the file is unchanged', () => {
    const file = join(dir, 'same');
    writeFileSync(file, 'v1');
    // No racy window here: this is about the key; the window has its own tests below.
    const cache = new HashCache(0n);
    const first = hashExecutable(file, cache);
    expect(hashExecutable(file, cache)).toBe(first);
    expect(hashExecutable(file, cache)).toBe(first);
    expect(cache).toMatchObject({ hits: 2, misses: 1 });
  });

  it('misses after a same-size rewrite, even when the old mtime is restored', async () => {
    const file = join(dir, 'rewritten');
    writeFileSync(file, 'AAAA');
    const { atime, mtime } = statSync(file);
    const cache = new HashCache(0n);
    expect(hashExecutable(file, cache)).toBe(sha256(Buffer.from('AAAA')));
    await new Promise((r) => setTimeout(r, 10));
    writeFileSync(file, 'BBBB');
    utimesSync(file, atime, mtime);
    expect(hashExecutable(file, cache)).toBe(sha256(Buffer.from('BBBB')));
    expect(cache).toMatchObject({ hits: 0, misses: 2 });
  });

  it('misses after a touch, then hits again', async () => {
    const file = join(dir, 'touched');
    writeFileSync(file, 'same bytes');
    const cache = new HashCache(0n);
    const hash = hashExecutable(file, cache);
    await new Promise((r) => setTimeout(r, 10));
    const now = new Date();
    utimesSync(file, now, now);
    expect(hashExecutable(file, cache)).toBe(hash);
    expect(hashExecutable(file, cache)).toBe(hash);
    expect(cache).toMatchObject({ hits: 1, misses: 2 });
  });

  it('does not cache the hash of a file changed within the racy window (a same-tick rewrite keeps its key)', () => {
    const file = join(dir, 'racy');
    writeFileSync(file, 'just written');
    const cache = new HashCache();
    expect(cache.racyNs).toBe(RACY_NS);
    const hash = hashExecutable(file, cache);
    expect(hashExecutable(file, cache)).toBe(hash);
    // Hashed afresh each time: a rewrite in the same timestamp tick could not hide behind a cached hash.
    expect(cache).toMatchObject({ hits: 0, misses: 2 });
  });

  it('caches it once the last change is older than the window', async () => {
    const file = join(dir, 'settled');
    writeFileSync(file, 'written a moment ago');
    const cache = new HashCache(5_000_000n);
    await new Promise((r) => setTimeout(r, 50));
    const hash = hashExecutable(file, cache);
    expect(hashExecutable(file, cache)).toBe(hash);
    expect(cache).toMatchObject({ hits: 1, misses: 1 });
  });
});
