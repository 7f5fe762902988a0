// pathKey() (the addon's stat) must agree with fileKey() of Node's bigint stat, or every watched sender
// would look changed (or, worse, a changed file unchanged).
import { mkdtempSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileKey, forgetStats, pathKey, sharedReading, shareStats } from '../../src/lib/file-key.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-file-key-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pathKey', () => {
  it('equals fileKey of a bigint stat, for a large binary and a fresh file', () => {
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    for (const path of [process.execPath, file]) {
      expect(pathKey(path)).toBe(fileKey(statSync(path, { bigint: true })));
    }
  });

  it('changes on a same-size rewrite that restores the mtime, and on a rename over the file', () => {
    const file = join(dir, 'g');
    writeFileSync(file, 'one');
    const before = pathKey(file);
    const { mtime } = statSync(file);
    writeFileSync(file, 'two');
    utimesSync(file, mtime, mtime);
    expect(pathKey(file)).not.toBe(before);
    const again = pathKey(file);
    writeFileSync(`${file}.new`, 'two');
    renameSync(`${file}.new`, file);
    expect(pathKey(file)).not.toBe(again);
  });

  it('follows symlinks, is undefined for a missing path, and refuses what stat cannot name', () => {
    const target = join(dir, 't');
    writeFileSync(target, 't');
    symlinkSync(target, join(dir, 'link'));
    expect(pathKey(join(dir, 'link'))).toBe(pathKey(target));
    expect(pathKey(join(dir, 'missing'))).toBeUndefined();
    expect(() => pathKey(`${target}\0suffix`)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => pathKey(join(target, 'below'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  });

  it('shares a stat until forgetStats() or the next turn, and only while shareStats() is on', async () => {
    const file = join(dir, 's');
    writeFileSync(file, 'one');
    const stop = shareStats();
    try {
      const first = pathKey(file);
      writeFileSync(file, 'three');
      // Same turn, no forget: the shared stat (taken after every request then in hand) answers.
      expect(pathKey(file)).toBe(first);
      forgetStats();
      const second = pathKey(file);
      expect(second).not.toBe(first);
      writeFileSync(file, 'four!');
      await new Promise((r) => setImmediate(r));
      expect(pathKey(file)).not.toBe(second);
    } finally {
      stop();
    }
    const off = pathKey(file);
    writeFileSync(file, 'five!!');
    expect(pathKey(file)).not.toBe(off);
  });

  it('sharedReading reads once per key while shared, again after forgetStats(), and keeps no throw', () => {
    let reads = 0;
    const read = () => ++reads;
    expect([sharedReading('k', read), sharedReading('k', read)]).toEqual([1, 2]);
    const stop = shareStats();
    try {
      expect([sharedReading('k', read), sharedReading('k', read), sharedReading('j', read)]).toEqual([
        3, 3, 4,
      ]);
      expect(() =>
        sharedReading('t', () => {
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(sharedReading('t', read)).toBe(5);
      forgetStats();
      expect(sharedReading('k', read)).toBe(6);
    } finally {
      stop();
    }
  });
});
