import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditFiles, lineNumberAt, readLastLines, split } from '../../src/audit/files.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'entraclaw-files-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('auditFiles', () => {
  it('lists rotated files oldest first (numerically), then the live file', () => {
    const path = join(dir, 'audit.jsonl');
    for (const n of [
      'audit.jsonl',
      'audit.jsonl.1',
      'audit.jsonl.2',
      'audit.jsonl.10',
      'audit.jsonl.x',
      'audit.jsonl.0',
      'other.1',
    ]) {
      writeFileSync(join(dir, n), '');
    }
    expect(auditFiles(path)).toEqual([`${path}.10`, `${path}.2`, `${path}.1`, path]);
  });

  it('lists rotated files even when the live one is missing, and nothing for a missing directory', () => {
    const path = join(dir, 'audit.jsonl');
    writeFileSync(`${path}.1`, '');
    expect(auditFiles(path)).toEqual([`${path}.1`]);
    expect(auditFiles(join(dir, 'nope', 'audit.jsonl'))).toEqual([]);
  });
});

describe('readLastLines', () => {
  const file = () => join(dir, 'f');
  const text = (t: { lines: Buffer[] } | undefined) => t?.lines.map((l) => l.toString());

  it('returns the last n lines and whether the file ends with a newline', () => {
    writeFileSync(file(), 'a\nb\nc\n');
    expect(text(readLastLines(file(), 2))).toEqual(['b', 'c']);
    expect(readLastLines(file(), 2)).toMatchObject({ terminated: true, size: 6 });
    writeFileSync(file(), 'a\nb\nc');
    expect(text(readLastLines(file(), 2))).toEqual(['b', 'c']);
    expect(readLastLines(file(), 1)!.terminated).toBe(false);
  });

  it('returns what there is when the file is short, empty or missing', () => {
    writeFileSync(file(), 'only\n');
    expect(text(readLastLines(file(), 5))).toEqual(['only']);
    writeFileSync(file(), '');
    expect(readLastLines(file(), 5)).toEqual({ lines: [], offsets: [], terminated: false, size: 0 });
    expect(readLastLines(join(dir, 'missing'), 1)).toBeUndefined();
  });

  it('handles lines longer than its read chunk', () => {
    const long = 'x'.repeat(200_000);
    writeFileSync(file(), `first\n${long}\nlast\n`);
    expect(text(readLastLines(file(), 2))).toEqual([long, 'last']);
    expect(text(readLastLines(file(), 3))).toEqual(['first', long, 'last']);
    expect(readLastLines(file(), 2)!.offsets).toEqual([6, 6 + long.length + 1]);
  });
});

describe('lineNumberAt', () => {
  const file = () => join(dir, 'numbered');
  it('numbers the line starting at an offset from 1, across read chunks', () => {
    const long = 'x'.repeat(200_000);
    writeFileSync(file(), `a\n${long}\nb\nc`);
    const tail = readLastLines(file(), 3)!;
    expect(tail.offsets.map((o) => lineNumberAt(file(), o))).toEqual([2, 3, 4]);
    expect(lineNumberAt(file(), 0)).toBe(1);
  });
});

describe('split', () => {
  it('splits on newlines and keeps what follows the last one', () => {
    expect(split(Buffer.from('a\n\nb')).map(String)).toEqual(['a', '', 'b']);
    expect(split(Buffer.from('')).map(String)).toEqual(['']);
  });
});
