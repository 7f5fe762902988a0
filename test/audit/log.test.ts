import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AuditEntry, GENESIS } from '../../src/audit/entry.js';
import { AuditLog, auditPath, lineHash } from '../../src/audit/log.js';
import { verifyAudit } from '../../src/audit/verify.js';
import type { EntraclawError } from '../../src/errors.js';
import { entry } from './fixtures.js';

let dir = '';
let path = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'entraclaw-audit-'));
  path = join(dir, 'state', 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const lines = (file = path) => readFileSync(file, 'utf8').split('\n').filter(Boolean);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as EntraclawError).code;
  }
  return undefined;
}

describe('AuditLog', () => {
  it('starts the chain at 64 zeros and links each line to the previous line bytes', () => {
    const log = AuditLog.open(path);
    for (let i = 0; i < 3; i++) log.append(entry(i));
    const [l0, l1, l2] = lines();
    expect(JSON.parse(l0!)).toMatchObject({ seq: 0, prev: GENESIS, requestId: '0' });
    expect(JSON.parse(l1!)).toMatchObject({ seq: 1, prev: lineHash(l0!) });
    expect(JSON.parse(l2!)).toMatchObject({ seq: 2, prev: lineHash(l1!) });
    expect(verifyAudit(path)).toMatchObject({ ok: true, lines: 3 });
  });

  it('writes the entry fields as given, plus seq and prev, one line each', () => {
    const log = AuditLog.open(path);
    const e = entry(1, { script: '/bot.js', via: { pid: 7, exe: '/usr/bin/node /shim/security-main.js' } });
    const record = log.append(e);
    expect(record).toEqual({ ...e, seq: 0, prev: GENESIS });
    expect(JSON.parse(lines()[0]!)).toEqual(record);
  });

  it('creates the file 0600 in a 0700 directory and tightens a loose existing file', () => {
    AuditLog.open(path).append(entry());
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
    chmodSync(path, 0o644);
    AuditLog.open(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('continues the chain across a reopen', () => {
    AuditLog.open(path).append(entry(0));
    const log = AuditLog.open(path);
    expect(log.append(entry(1))).toMatchObject({ seq: 1, prev: lineHash(lines()[0]!) });
    expect(verifyAudit(path)).toMatchObject({ ok: true, lines: 2 });
  });

  it('logs entries refused before the caller was identified', () => {
    const log = AuditLog.open(path);
    log.append({
      time: new Date().toISOString(),
      requestId: '-',
      pid: 9,
      uid: 1001,
      op: 'connect',
      decision: 'denied',
      reason: 'uid 1001 is not 1000',
      durationMs: 0,
    });
    log.append({
      time: new Date().toISOString(),
      requestId: '5',
      op: 'get',
      service: 's',
      account: 'a',
      decision: 'denied',
      durationMs: 0,
    });
    expect(verifyAudit(path)).toMatchObject({ ok: true, lines: 2 });
  });

  describe('refuses what must never be logged', () => {
    it.each(['value', 'secret', 'password', 'token'])('an entry with a "%s" field', (field) => {
      const log = AuditLog.open(path);
      const bad = { ...entry(), [field]: 'hunter2' } as AuditEntry;
      expect(code(() => log.append(bad))).toBe('usage');
      expect(existsSync(path) ? readFileSync(path, 'utf8') : '').not.toContain('hunter2');
    });

    it('a value smuggled into via', () => {
      const bad = entry(0, { via: { pid: 1, exe: '/x', value: 'hunter2' } as unknown as AuditEntry['via'] });
      expect(code(() => AuditLog.open(path).append(bad))).toBe('usage');
    });

    it.each([
      ['a bad decision', { decision: 'maybe' }],
      ['a bad op', { op: 'steal' }],
      ['a bad time', { time: 'yesterday' }],
      ['an uppercase hash', { sha256: 'A'.repeat(64) }],
      ['a negative duration', { durationMs: -1 }],
      ['a missing requestId', { requestId: undefined }],
    ])('%s', (_name, over) => {
      expect(code(() => AuditLog.open(path).append(entry(0, over as Partial<AuditEntry>)))).toBe('usage');
    });
  });

  it('refuses appends after close', () => {
    const log = AuditLog.open(path);
    log.close();
    expect(code(() => log.append(entry()))).toBe('internal');
  });

  it('refuses nonsense rotation settings', () => {
    expect(code(() => AuditLog.open(path, { keep: 0 }))).toBe('usage');
    expect(code(() => AuditLog.open(path, { maxBytes: 0 }))).toBe('usage');
  });

  describe('rotation', () => {
    const size = Buffer.byteLength(`${JSON.stringify({ ...entry(0), seq: 0, prev: GENESIS })}\n`);

    it('rotates before a line would pass maxBytes and keeps the chain across files', () => {
      const log = AuditLog.open(path, { maxBytes: size * 2, keep: 5 });
      for (let i = 0; i < 7; i++) log.append(entry(i));
      // Two lines per file: .3 has 0-1, .2 has 2-3, .1 has 4-5, the live file has 6.
      expect(lines(`${path}.3`).map((l) => JSON.parse(l).seq)).toEqual([0, 1]);
      expect(lines(`${path}.1`).map((l) => JSON.parse(l).seq)).toEqual([4, 5]);
      expect(lines().map((l) => JSON.parse(l).seq)).toEqual([6]);
      for (const f of [`${path}.3`, `${path}.2`, `${path}.1`, path])
        expect(statSync(f).size).toBeLessThanOrEqual(size * 2);
      expect(JSON.parse(lines()[0]!).prev).toBe(lineHash(lines(`${path}.1`)[1]!));
      expect(verifyAudit(path)).toEqual({
        ok: true,
        lines: 7,
        files: [`${path}.3`, `${path}.2`, `${path}.1`, path],
        anchor: { prev: GENESIS, seq: 0 },
      });
    });

    it('drops the oldest files beyond keep without breaking verification', () => {
      const log = AuditLog.open(path, { maxBytes: size, keep: 2 });
      for (let i = 0; i < 6; i++) log.append(entry(i));
      expect(existsSync(`${path}.3`)).toBe(false);
      const oldest = JSON.parse(lines(`${path}.2`)[0]!);
      expect(oldest.seq).toBe(3);
      expect(verifyAudit(path)).toEqual({
        ok: true,
        lines: 3,
        files: [`${path}.2`, `${path}.1`, path],
        anchor: { prev: oldest.prev, seq: 3 },
      });
    });

    it('continues the chain after a reopen that follows a rotation with no append yet', () => {
      const log = AuditLog.open(path, { maxBytes: size, keep: 3 });
      log.append(entry(0));
      log.append(entry(1));
      rmSync(path);
      // As if the daemon stopped right after rotating: the live file does not exist.
      const again = AuditLog.open(path, { maxBytes: size, keep: 3 });
      expect(again.append(entry(2))).toMatchObject({ seq: 1 });
    });

    it('puts a line larger than maxBytes in a file of its own', () => {
      const log = AuditLog.open(path, { maxBytes: 10, keep: 5 });
      log.append(entry(0));
      log.append(entry(1));
      expect(lines()).toHaveLength(1);
      expect(lines(`${path}.1`)).toHaveLength(1);
      expect(verifyAudit(path)).toMatchObject({ ok: true, lines: 2 });
    });
  });

  describe('recovery from a torn last line', () => {
    it('seals it and chains to its bytes, so only that line fails verification', () => {
      const log = AuditLog.open(path);
      log.append(entry(0));
      log.append(entry(1));
      appendFileSync(path, '{"time":"2026-11-24T10:00:02.000Z","reque');
      expect(verifyAudit(path)).toMatchObject({ ok: false, line: 3, reason: /truncated last line/ });
      const damage: string[] = [];
      const next = AuditLog.open(path, { onDamage: (what) => damage.push(what) }).append(entry(3));
      expect(damage).toEqual([`${path} ended in a cut line; sealed it with a newline, new lines follow it`]);
      expect(next.seq).toBe(3);
      expect(next.prev).toBe(lineHash('{"time":"2026-11-24T10:00:02.000Z","reque'));
      expect(verifyAudit(path)).toMatchObject({ ok: false, line: 3, reason: /not valid JSON/ });
    });

    it('starts a fresh line when the file is cut under an open log, losing none of its own lines', () => {
      const damage: string[] = [];
      const log = AuditLog.open(path, { onDamage: (what) => damage.push(what) });
      for (let i = 0; i < 3; i++) log.append(entry(i));
      truncateSync(path, statSync(path).size - 20);
      const next = log.append(entry(3));
      const kept = readFileSync(path, 'utf8').split('\n');
      // The cut line stays as evidence, sealed; the new line is whole and chained to it.
      expect(kept).toHaveLength(5);
      expect(JSON.parse(kept[3]!)).toMatchObject({ requestId: '3', seq: 3, prev: lineHash(kept[2]!) });
      expect(next.prev).toBe(lineHash(kept[2]!));
      expect(damage).toEqual([
        expect.stringMatching(/changed size behind the daemon's back/),
        expect.stringMatching(/ended in a cut line; sealed it/),
      ]);
      expect(verifyAudit(path)).toMatchObject({ ok: false, line: 3, reason: /not valid JSON/ });
      log.append(entry(4));
      expect(verifyAudit(path)).toMatchObject({ ok: false, line: 3 });
      expect(JSON.parse(lines().at(-1)!)).toMatchObject({ seq: 4, prev: lineHash(lines()[3]!) });
    });

    it('chains to lines another writer appended under an open log', () => {
      const log = AuditLog.open(path);
      log.append(entry(0));
      appendFileSync(path, 'junk\n');
      expect(log.append(entry(1))).toMatchObject({ prev: lineHash('junk') });
      expect(verifyAudit(path)).toMatchObject({ ok: false, line: 2 });
    });

    it('recovers after a failed write, going on from the lines it wrote (which verify then misses) and saying so once', () => {
      const damage: string[] = [];
      const log = AuditLog.open(path, { onDamage: (what) => damage.push(what) });
      const first = log.append(entry(0));
      rmSync(join(dir, 'state'), { recursive: true });
      writeFileSync(join(dir, 'state'), 'not a directory');
      expect(code(() => log.append(entry(1)))).toBe('unavailable');
      expect(code(() => log.append(entry(1)))).toBe('unavailable');
      rmSync(join(dir, 'state'));
      mkdirSync(join(dir, 'state'));
      // Not a new chain from GENESIS: the deleted history would pass verify as a whole log.
      expect(log.append(entry(2))).toMatchObject({ seq: 1, prev: lineHash(JSON.stringify(first)) });
      expect(verifyAudit(path).ok).toBe(false);
      expect(damage).toEqual([
        expect.stringContaining('no longer holds the 1 line(s) this daemon chained to'),
      ]);
    });
  });

  describe('when the live file is moved or deleted under an open log', () => {
    it('writes the next line to a new file at the path, not to the moved one', () => {
      const log = AuditLog.open(path);
      log.append(entry(0));
      renameSync(path, `${path}.moved`);
      log.append(entry(1));
      expect(lines(`${path}.moved`)).toHaveLength(1);
      expect(JSON.parse(lines()[0]!)).toMatchObject({ seq: 1, requestId: '1' });
      expect(statSync(path).mode & 0o777).toBe(0o600);
    });

    it('keeps the chain going in a file recreated after a delete, which verify then flags', () => {
      const log = AuditLog.open(path);
      log.append(entry(0));
      rmSync(path);
      log.append(entry(1));
      expect(JSON.parse(lines()[0]!)).toMatchObject({ seq: 1 });
      expect(verifyAudit(path).ok).toBe(false);
    });
  });

  it('lives in the state directory', () => {
    expect(auditPath({ config: '/c', data: '/d', state: '/s', runtime: '/r' })).toBe('/s/audit.jsonl');
  });
});
