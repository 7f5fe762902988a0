import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirs, makeOwnDir } from '../../src/lib/make-dir.js';
import { linuxOnly, requireOrSkip } from '../support/context.js';

const root = mkdtempSync(join(tmpdir(), 'entraclaw-mkdir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('makeDirs', () => {
  it('creates the missing parents with the mode asked for, and accepts what exists', () => {
    const dir = join(root, 'a', 'b', 'c');
    const old = process.umask(0);
    try {
      makeDirs(dir, 0o700);
      makeDirs(dir, 0o700);
    } finally {
      process.umask(old);
    }
    for (const d of [join(root, 'a'), join(root, 'a', 'b'), dir])
      expect(statSync(d).mode & 0o777).toBe(0o700);
  });

  it('fails at once where mkdir(2) says ENOENT under an existing parent (procfs), instead of spinning', (ctx) => {
    requireOrSkip(ctx, linuxOnly('procfs'));
    expect(() => makeDirs('/proc/entraclaw-no-such/deeper', 0o755)).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
  });

  it('a dangling symlink or a file in the way is an error, not a directory', () => {
    const dangling = join(root, 'dangling');
    symlinkSync(join(root, 'nowhere', 'target'), dangling);
    expect(() => makeDirs(join(dangling, 'entraclaw'), 0o700)).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(() => makeDirs(dangling, 0o700)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const file = join(root, 'file');
    writeFileSync(file, '');
    expect(() => makeDirs(join(file, 'entraclaw'), 0o700)).toThrow(
      expect.objectContaining({ code: 'ENOTDIR' }),
    );
  });
});

describe('makeOwnDir', () => {
  it('is "unavailable", naming the directory and the XDG variable to change', () => {
    const dangling = join(root, 'dangling-config');
    symlinkSync(join(root, 'nowhere', 'config'), dangling);
    const dir = join(dangling, 'entraclaw');
    expect(() => makeOwnDir(dir, 'XDG_CONFIG_HOME')).toThrow(
      expect.objectContaining({
        code: 'unavailable',
        message: `cannot create the directory ${dir}: ENOENT`,
        hint: expect.stringContaining('dangling symlink: fix it, or set XDG_CONFIG_HOME'),
      }),
    );
  });
});
