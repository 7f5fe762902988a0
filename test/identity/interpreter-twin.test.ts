import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashExecutable } from '../../src/identity/hash.js';
import { interpreterTwin } from '../../src/identity/interpreter-twin.js';

// Real files on a made-up PATH: a version manager's shim first, the interpreter it hands over to after.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-twin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function executable(path: string, text: string): string {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

describe('interpreterTwin', () => {
  const shims = join(dir, 'shims');
  const real = join(dir, 'real');
  const linked = join(dir, 'linked');
  mkdirSync(shims);
  mkdirSync(real);
  mkdirSync(linked);
  executable(join(shims, 'python3'), '#!/bin/sh\nexec "$(pyenv which python3)" "$@"\n');
  const python = executable(join(real, 'python3'), 'pretend these are the bytes of a python interpreter\n');
  symlinkSync(python, join(linked, 'python3'));
  const tool = join(dir, 'mytool');
  copyFileSync(python, tool);
  const sha = hashExecutable(tool);

  it('finds an interpreter behind a shim that comes first on PATH', () => {
    expect(interpreterTwin(tool, sha, [shims, real].join(':'))).toEqual({ path: python, name: 'python' });
  });

  it('looks at a file reached by two PATH entries once, and finds it either way', () => {
    expect(interpreterTwin(tool, sha, [shims, linked, real].join(':'))).toEqual({
      path: python,
      name: 'python',
    });
  });

  it('finds nothing when no interpreter on PATH has those bytes', () => {
    expect(interpreterTwin(tool, sha, shims)).toBeUndefined();
  });
});
