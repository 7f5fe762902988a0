import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GENESIS } from '../../src/audit/entry.js';
import { AuditLog } from '../../src/audit/log.js';
import { readAuditTail } from '../../src/audit/tail.js';
import { entry } from './fixtures.js';

let dir = '';
let path = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'entraclaw-tail-'));
  path = join(dir, 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

// The seq of each line read back (undefined for a damaged one).
const seqs = (n: number) => readAuditTail(path, n).map((r) => ('seq' in r ? r.seq : undefined));

const line = Buffer.byteLength(`${JSON.stringify({ ...entry(10), seq: 10, prev: GENESIS })}\n`);

describe('readAuditTail', () => {
  it('returns the last n records, oldest first', () => {
    const log = AuditLog.open(path);
    for (let i = 0; i < 10; i++) log.append(entry(i));
    expect(seqs(3)).toEqual([7, 8, 9]);
    expect(readAuditTail(path, 3)[2]).toMatchObject({ requestId: '9', decision: 'granted' });
    expect(seqs(50)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('leaves out a newest line still being written (no newline yet), and shows the n whole ones before it', () => {
    const log = AuditLog.open(path, { maxBytes: line * 4, keep: 5 });
    for (let i = 0; i < 6; i++) log.append(entry(i));
    // What a reader sees in the middle of the daemon's write of the next line.
    appendFileSync(path, readFileSync(path, 'utf8').split('\n')[0]!.slice(0, 40));
    for (const n of [1, 2, 3]) {
      const tail = readAuditTail(path, n);
      expect(tail.filter((r) => 'damaged' in r)).toEqual([]);
      expect(seqs(n)).toEqual([3, 4, 5].slice(-n));
    }
  });

  it('reaches back into rotated files', () => {
    const log = AuditLog.open(path, { maxBytes: line * 2, keep: 5 });
    for (let i = 0; i < 7; i++) log.append(entry(i));
    expect(seqs(4)).toEqual([3, 4, 5, 6]);
    expect(readAuditTail(path, 100)).toHaveLength(7);
  });

  it('reads lines spread over many 64 KiB chunks', () => {
    const log = AuditLog.open(path);
    for (let i = 0; i < 600; i++) log.append(entry(i % 60, { reason: 'x'.repeat(200) }));
    expect(seqs(400)).toEqual(Array.from({ length: 400 }, (_, i) => 200 + i));
  });

  it('returns nothing for a missing or empty log', () => {
    expect(readAuditTail(path, 5)).toEqual([]);
    writeFileSync(path, '');
    expect(readAuditTail(path, 5)).toEqual([]);
  });

  it('marks a damaged line in its place and still returns the lines around it', () => {
    const log = AuditLog.open(path);
    log.append(entry(0));
    appendFileSync(path, 'garbage\n');
    log.append(entry(2));
    expect(readAuditTail(path, 5)).toEqual([
      expect.objectContaining({ requestId: '0' }),
      { damaged: true, file: path, line: 2, reason: 'not an audit record' },
      expect.objectContaining({ requestId: '2' }),
    ]);
    expect(readAuditTail(path, 1)).toEqual([expect.objectContaining({ requestId: '2' })]);
  });

  it('marks a valid line where the hash chain breaks, keeping what it says', () => {
    const log = AuditLog.open(path);
    for (let i = 0; i < 5; i++) log.append(entry(i));
    log.close();
    // A hand edit that leaves a valid record: a refusal turned into a grant.
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('"decision":"granted"', '"decision":"denied"');
    expect(lines[2]).toContain('"decision":"denied"');
    writeFileSync(path, lines.join('\n'));
    const shown = readAuditTail(path, 5);
    expect(shown.map((r) => ('damaged' in r ? r.reason : r.seq))).toEqual([
      0,
      1,
      expect.stringMatching(/^the next line does not chain to it/),
      3,
      4,
    ]);
    expect(shown[2]).toMatchObject({
      damaged: true,
      file: path,
      line: 3,
      record: { seq: 2, decision: 'denied' },
    });
    // Out of the window, the edited line still tells on the first line shown.
    expect(readAuditTail(path, 2).map((r) => ('damaged' in r ? r.reason : r.seq))).toEqual([
      expect.stringMatching(/^it does not chain to the line before it/),
      4,
    ]);
  });

  it('checks links across a rotated file', () => {
    const log = AuditLog.open(path, { maxBytes: line * 2, keep: 5 });
    for (let i = 0; i < 7; i++) log.append(entry(i));
    expect(readAuditTail(path, 7).every((r) => !('damaged' in r))).toBe(true);
  });
});
