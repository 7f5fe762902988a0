import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit/entry.js';
import { AuditThrottle } from '../../src/audit/throttle.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function entry(over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    time: '2026-11-25T12:00:00.000Z',
    requestId: '1',
    pid: 42,
    uid: 1000,
    exe: '/usr/bin/evil',
    sha256: A,
    op: 'get',
    service: 'bank',
    account: 'me',
    decision: 'pending',
    reason: 'not approved',
    durationMs: 0.1,
    ...over,
  };
}

function throttle(limits = { perProgram: 3, allPrograms: 5, windowMs: 1000 }) {
  const clock = { now: 0 };
  return { t: new AuditThrottle(() => clock.now, limits), clock };
}

describe('AuditThrottle', () => {
  it("writes a program's first refusals of a window, holds back the rest, and sums them when the window ends", () => {
    const { t, clock } = throttle();
    const admitted = Array.from(
      { length: 10 },
      (_, i) => t.admit(entry({ requestId: String(i), decision: i % 2 ? 'denied' : 'pending' })).admitted,
    );
    expect(admitted).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(t.flush()).toEqual([]);
    clock.now = 1000;
    const next = t.admit(entry({ requestId: '10' }));
    expect(next.admitted).toBe(true);
    expect(next.summaries).toHaveLength(1);
    const s = next.summaries[0]!;
    expect(s).toMatchObject({ requestId: '-', sha256: A, exe: '/usr/bin/evil', pid: 42, op: 'get' });
    // What one held-back request asked for is not any other's: no item in the summary.
    expect(s.service).toBeUndefined();
    expect(s.account).toBeUndefined();
    expect(s.reason).toMatch(/^throttled: 7 more refused requests from this program \(4 denied, 3 pending\)/);
    expect(s.reason).toContain('at most 3 per program and 5 in all');
  });

  it('never holds back a granted request or a policy change', () => {
    const { t } = throttle();
    for (let i = 0; i < 3; i++) t.admit(entry());
    expect(t.admit(entry()).admitted).toBe(false);
    expect(t.admit(entry({ decision: 'granted' })).admitted).toBe(true);
    expect(t.admit(entry({ op: 'policy', decision: 'changed' })).admitted).toBe(true);
  });

  it('counts programs apart by their pinned bytes, and caps all of them together', () => {
    const { t } = throttle();
    const other = (i: number) => entry({ sha256: B, script: `/s${i}` });
    // One script per client: a program is exe + script.
    expect([0, 1, 2, 3].map((i) => t.admit(other(i)).admitted)).toEqual([true, true, true, true]);
    expect(t.admit(entry()).admitted).toBe(true);
    // Five written in all: the sixth is held back though its program wrote none.
    expect(t.admit(entry({ sha256: undefined, exe: '/x' })).admitted).toBe(false);
    const s = t.flush(true);
    expect(s).toHaveLength(1);
    expect(s[0]!.exe).toBe('/x');
  });

  it('flush(true) sums the current window, once; a quiet window gives nothing', () => {
    const { t, clock } = throttle();
    for (let i = 0; i < 5; i++) t.admit(entry());
    expect(t.flush(true).map((e) => e.reason?.slice(0, 30))).toEqual(['throttled: 2 more refused requ']);
    expect(t.flush(true)).toEqual([]);
    clock.now = 5000;
    expect(t.flush()).toEqual([]);
  });

  it("the timer's flush writes a finished window without waiting for the next request", () => {
    const { t, clock } = throttle();
    for (let i = 0; i < 4; i++) t.admit(entry());
    clock.now = 999;
    expect(t.flush()).toEqual([]);
    clock.now = 1000;
    expect(t.flush()).toHaveLength(1);
    // A new window: the program may write again.
    expect(t.admit(entry()).admitted).toBe(true);
  });

  it('beyond 256 programs held back in a window, the rest share one line that names none of them', () => {
    const { t } = throttle({ perProgram: 1, allPrograms: 1, windowMs: 1000 });
    t.admit(entry());
    for (let i = 0; i < 300; i++) t.admit(entry({ sha256: i.toString(16).padStart(64, '0'), exe: `/p${i}` }));
    const s = t.flush(true);
    expect(s).toHaveLength(257);
    const others = s.at(-1)!;
    expect(others.exe).toBeUndefined();
    expect(others.sha256).toBeUndefined();
    expect(others.reason).toMatch(/^throttled: 44 more refused requests from programs beyond the first 256/);
  });
});
