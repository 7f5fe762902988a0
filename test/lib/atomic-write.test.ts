import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sweepTempFiles, writeFileAtomic } from '../../src/lib/atomic-write.js';
import { requireOrSkip, rootOnly } from '../support/context.js';

const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'entraclaw-atomic-'));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the file with exactly the requested mode and leaves no temp file', () => {
    const dir = tempDir();
    const path = join(dir, 'f');
    writeFileSync(path, 'old', { mode: 0o644 });
    writeFileAtomic(path, Buffer.from('new'));
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    writeFileAtomic(path, Buffer.from('newer'), 0o640);
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['f']);
  });

  it('a failed write names the path and errno and leaves the old contents and no temp file', () => {
    const dir = tempDir();
    const missing = join(dir, 'no-such-dir', 'f');
    // Nothing was there before: the message says nothing was written, and how to fix it.
    const err = (() => {
      try {
        writeFileAtomic(missing, Buffer.from('new'));
      } catch (e) {
        return e as { message: string; hint?: string };
      }
    })();
    expect(err?.message).toBe(
      `cannot write ${missing}: ENOENT (no such file or directory); nothing was written`,
    );
    expect(err?.hint).toBe(
      `${join(dir, 'no-such-dir')} is not an existing directory: create it first, or write elsewhere`,
    );
    // A directory in the way makes rename() fail after the temp file was written and fsynced.
    const blocked = join(dir, 'blocked');
    mkdirSync(blocked);
    writeFileSync(join(blocked, 'inside'), 'old');
    expect(() => writeFileAtomic(blocked, Buffer.from('new'))).toThrow(/^cannot write .*blocked: EISDIR/);
    expect(readFileSync(join(blocked, 'inside'), 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['blocked']);
  });

  it('a read-only file system is named as such, whoever the caller is (no advice meant for one store)', (t) => {
    requireOrSkip(t, rootOnly('mounting a read-only tmpfs'));
    const dir = tempDir();
    const mnt = join(dir, 'ro');
    mkdirSync(mnt);
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=16k', 'tmpfs', mnt], {
      encoding: 'utf8',
    });
    requireOrSkip(
      t,
      mount.status === 0
        ? undefined
        : `cannot mount a read-only tmpfs here (${(mount.stderr || mount.error?.message || '').trim()})`,
    );
    try {
      const path = join(mnt, 'policy.toml');
      let err: { message: string; hint?: string } | undefined;
      try {
        writeFileAtomic(path, Buffer.from('new'));
      } catch (e) {
        err = e as { message: string; hint?: string };
      }
      expect(err?.message).toBe(`cannot write ${path}: EROFS (read-only file system); nothing was written`);
      expect(err?.hint).toBe(`${mnt} is on a read-only file system here: write where you can, or remount it`);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  it('sweepTempFiles removes only temp files of that path', () => {
    const dir = tempDir();
    const path = join(dir, 'vault');
    for (const name of ['.vault.aa.tmp', '.vault.bb.tmp', '.other.cc.tmp', 'vault', '.vault.keep']) {
      writeFileSync(join(dir, name), '');
    }
    expect(sweepTempFiles(path)).toBe(2);
    expect(readdirSync(dir).sort()).toEqual(['.other.cc.tmp', '.vault.keep', 'vault']);
  });
});
