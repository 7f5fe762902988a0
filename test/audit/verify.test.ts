import { mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GENESIS } from '../../src/audit/entry.js';
import { AuditLog, lineHash } from '../../src/audit/log.js';
import { verifyAudit } from '../../src/audit/verify.js';
import { entry } from './fixtures.js';

let dir = '';
let path = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'entraclaw-verify-'));
  path = join(dir, 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(n: number, opts = {}): AuditLog {
  const log = AuditLog.open(path, opts);
  for (let i = 0; i < n; i++) log.append(entry(i));
  return log;
}

const read = (file = path) => readFileSync(file, 'utf8').split('\n').slice(0, -1);
const save = (lines: string[], file = path) => writeFileSync(file, `${lines.join('\n')}\n`);

describe('verifyAudit against the line the daemon last wrote', () => {
  const headOf = (log: AuditLog) => {
    const h = log.head();
    return { seq: h.next - 1, hash: h.prev };
  };

  it('accepts the log as written, and lines appended after the head was taken', () => {
    const log = write(5);
    const head = headOf(log);
    expect(verifyAudit(path, head)).toMatchObject({ ok: true, lines: 5 });
    log.append(entry(5));
    expect(verifyAudit(path, head)).toMatchObject({ ok: true, lines: 6 });
  });

  it('finds the newest lines cut off, which the chain alone cannot', () => {
    const log = write(5);
    save(read().slice(0, 3));
    expect(verifyAudit(path)).toMatchObject({ ok: true, lines: 3 });
    expect(verifyAudit(path, headOf(log))).toEqual({
      ok: false,
      file: path,
      line: 3,
      reason:
        'the newest line(s) are missing: the running daemon wrote up to seq 4, the log ends at seq 2 (cut off or deleted)',
    });
    writeFileSync(path, '');
    expect(verifyAudit(path, headOf(log))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/the log is empty/),
    });
  });

  it('finds the last line edited, which no later line vouches for', () => {
    const log = write(5);
    const lines = read();
    lines[4] = lines[4]!.replace('"decision":"granted"', '"decision":"denied"');
    save(lines);
    expect(verifyAudit(path)).toMatchObject({ ok: true });
    expect(verifyAudit(path, headOf(log))).toMatchObject({
      ok: false,
      line: 5,
      reason: expect.stringMatching(/not the one the daemon wrote/),
    });
  });
});

describe('verifyAudit', () => {
  it('accepts an intact log and an empty or missing one', () => {
    write(5);
    expect(verifyAudit(path)).toEqual({
      ok: true,
      lines: 5,
      files: [path],
      anchor: { prev: GENESIS, seq: 0 },
    });
    expect(verifyAudit(join(dir, 'none.jsonl'))).toEqual({
      ok: true,
      lines: 0,
      files: [],
      anchor: undefined,
    });
    expect(verifyAudit(join(dir, 'missing-dir', 'a.jsonl'))).toMatchObject({ ok: true, lines: 0 });
  });

  it.each([1, 2, 3, 4])('finds an edited line %i at that line', (n) => {
    write(5);
    const lines = read();
    lines[n - 1] = lines[n - 1]!.replace('"decision":"granted"', '"decision":"denied"');
    save(lines);
    expect(verifyAudit(path)).toEqual({
      ok: false,
      file: path,
      line: n,
      reason: expect.stringMatching(/^edited line/),
    });
  });

  it('finds an edit that breaks the JSON at that line', () => {
    write(5);
    const lines = read();
    lines[2] = lines[2]!.slice(0, -3);
    save(lines);
    expect(verifyAudit(path)).toMatchObject({ ok: false, line: 3, reason: 'not valid JSON' });
  });

  it('finds a value added to a line at that line', () => {
    write(3);
    const lines = read();
    lines[1] = lines[1]!.replace('{', '{"value":"hunter2",');
    save(lines);
    expect(verifyAudit(path)).toMatchObject({ ok: false, line: 2, reason: /unknown field value/ });
  });

  it.each([2, 3, 4])('finds deleted line %i where it was', (n) => {
    write(5);
    const lines = read();
    lines.splice(n - 1, 1);
    save(lines);
    expect(verifyAudit(path)).toEqual({
      ok: false,
      file: path,
      line: n,
      reason: expect.stringMatching(/1 line\(s\) missing before this line/),
    });
  });

  it('cannot see the newest line removed: nothing after it vouches for it', () => {
    write(5);
    save(read().slice(0, -1));
    expect(verifyAudit(path)).toMatchObject({ ok: true, lines: 4 });
  });

  it('finds the first lines removed: only rotation starts a log past seq 0, and it leaves a rotated file', () => {
    write(5);
    save(read().slice(2));
    expect(verifyAudit(path)).toEqual({
      ok: false,
      file: path,
      line: 1,
      reason: 'the log starts at seq 2 and no rotated file holds the 2 line(s) before it: they were deleted',
    });
  });

  it('finds the first lines removed though an empty rotated file sits beside it: rotation never leaves one', () => {
    write(5);
    save(read().slice(2));
    writeFileSync(`${path}.1`, '');
    expect(verifyAudit(path)).toEqual({
      ok: false,
      file: `${path}.1`,
      line: 0,
      reason:
        'empty rotated file: rotation never leaves one, so its lines were deleted (or it was put there to pass for rotation)',
    });
  });

  it('finds the whole log deleted under a running daemon, which then wrote on into a new file', () => {
    const log = write(5);
    unlinkSync(path);
    log.append(entry(5));
    expect(verifyAudit(path)).toMatchObject({
      ok: false,
      line: 1,
      reason: /starts at seq 5 .* they were deleted/,
    });
  });

  it('finds several deleted lines', () => {
    write(6);
    const lines = read();
    lines.splice(1, 3);
    save(lines);
    expect(verifyAudit(path)).toMatchObject({
      ok: false,
      line: 2,
      reason: /3 line\(s\) missing .*seq jumps from 0 to 4/,
    });
  });

  it('finds a forged line inserted with a well-chained prev and seq', () => {
    write(5);
    const lines = read();
    const forged = JSON.stringify({ ...entry(99), seq: 2, prev: lineHash(lines[1]!) });
    lines.splice(2, 0, forged);
    save(lines);
    expect(verifyAudit(path)).toEqual({
      ok: false,
      file: path,
      line: 3,
      reason: expect.stringMatching(/^inserted line/),
    });
  });

  it('finds a replayed (duplicated) line at the copy', () => {
    write(5);
    const lines = read();
    lines.splice(3, 0, lines[0]!);
    save(lines);
    expect(verifyAudit(path)).toMatchObject({ ok: false, line: 4, reason: /out of order or inserted/ });
  });

  it('finds two swapped lines at the first of them', () => {
    write(5);
    const lines = read();
    [lines[1], lines[2]] = [lines[2]!, lines[1]!];
    save(lines);
    expect(verifyAudit(path)).toMatchObject({ ok: false, line: 2, reason: /out of order/ });
  });

  it('finds a truncated last line', () => {
    write(3);
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.slice(0, -20));
    expect(verifyAudit(path)).toMatchObject({ ok: false, line: 3, reason: /truncated last line/ });
    // Even when only the newline is gone.
    writeFileSync(path, text.slice(0, -1));
    expect(verifyAudit(path)).toMatchObject({ ok: false, line: 3, reason: /truncated last line/ });
  });

  it('finds an empty line', () => {
    write(3);
    const lines = read();
    lines.splice(1, 0, '');
    save(lines);
    expect(verifyAudit(path)).toMatchObject({ ok: false, line: 2, reason: 'empty line' });
  });

  describe('across rotated files', () => {
    // Three lines per file.
    const line = Buffer.byteLength(`${JSON.stringify({ ...entry(10), seq: 10, prev: GENESIS })}\n`);
    const opts = { maxBytes: line * 3, keep: 9 };

    it('reports the file and its own line number', () => {
      write(12, opts);
      const files = (verifyAudit(path) as { files: string[] }).files;
      expect(files.length).toBeGreaterThan(2);
      const middle = files[1]!;
      const lines = read(middle);
      lines[1] = lines[1]!.replace('"pid":4242', '"pid":4243');
      save(lines, middle);
      expect(verifyAudit(path)).toEqual({
        ok: false,
        file: middle,
        line: 2,
        reason: expect.stringMatching(/^edited line/),
      });
    });

    it('finds an edit to the last line of a rotated file from the first line of the next', () => {
      write(12, opts);
      const files = (verifyAudit(path) as { files: string[] }).files;
      const lines = read(files[0]!);
      lines[lines.length - 1] = lines.at(-1)!.replace('"me"', '"you"');
      save(lines, files[0]!);
      expect(verifyAudit(path)).toMatchObject({
        ok: false,
        file: files[0],
        line: lines.length,
        reason: /^edited line/,
      });
    });

    it('finds a missing rotated file in the middle', () => {
      write(12, opts);
      const files = (verifyAudit(path) as { files: string[] }).files;
      rmSync(files[1]!);
      expect(verifyAudit(path)).toMatchObject({
        ok: false,
        file: files[2],
        line: 1,
        reason: /missing before this line/,
      });
    });

    it('finds rotated files renamed out of order', () => {
      write(12, opts);
      renameSync(`${path}.1`, `${path}.tmp`);
      renameSync(`${path}.2`, `${path}.1`);
      renameSync(`${path}.tmp`, `${path}.2`);
      expect(verifyAudit(path)).toMatchObject({ ok: false, file: `${path}.2`, line: 1 });
    });

    it('anchors on the oldest kept file when older ones were dropped', () => {
      write(12, { ...opts, keep: 1 });
      const result = verifyAudit(path);
      const first = JSON.parse(read(`${path}.1`)[0]!);
      expect(result).toMatchObject({
        ok: true,
        files: [`${path}.1`, path],
        anchor: { prev: first.prev, seq: first.seq },
      });
      expect(first.seq).toBeGreaterThan(0);
    });
  });
});
