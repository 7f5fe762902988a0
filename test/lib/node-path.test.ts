import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stableNodePath } from '../../src/lib/node-path.js';

// A Homebrew-like layout: the versioned node in a Cellar, a link to it on PATH.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-node-path-'));
const cellar = join(dir, 'Cellar', 'node', '20.1.0', 'bin', 'node');
const bin = join(dir, 'bin');
const other = join(dir, 'other-bin');
mkdirSync(join(dir, 'Cellar', 'node', '20.1.0', 'bin'), { recursive: true });
mkdirSync(bin);
mkdirSync(other);
writeFileSync(cellar, '#!/bin/sh\n');
chmodSync(cellar, 0o755);
symlinkSync(cellar, join(bin, 'node'));
// Another node (or a version manager's wrapper script): same name, another file.
writeFileSync(join(other, 'node'), '#!/bin/sh\n');
chmodSync(join(other, 'node'), 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('stableNodePath', () => {
  it('prefers the link on PATH that reaches the running node (it survives an upgrade)', () => {
    expect(stableNodePath(cellar, `${bin}:/usr/bin`, '/')).toBe(join(bin, 'node'));
  });

  it('keeps the running node when the first node on PATH is another file', () => {
    expect(stableNodePath(cellar, `${other}:${bin}`, '/')).toBe(cellar);
  });

  it('keeps the running node when PATH has no node, or names it directly', () => {
    expect(stableNodePath(cellar, join(dir, 'Cellar'), '/')).toBe(cellar);
    expect(stableNodePath(cellar, join(dir, 'Cellar', 'node', '20.1.0', 'bin'), '/')).toBe(cellar);
  });
});
