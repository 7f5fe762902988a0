import { describe, expect, it } from 'vitest';
import { ConsentMemory, MAX_REMEMBERED, type Question } from '../../src/daemon/consent.js';
import type { Identity } from '../../src/identity/peer.js';

const subject: Identity = {
  pid: 4242,
  uid: 1000,
  ppid: 1,
  exe: '/usr/bin/python3',
  sha256: 'a'.repeat(64),
  script: '/home/me/bot.py',
  scriptSha256: 'b'.repeat(64),
  argv: ['python3', 'bot.py'],
  started: '123456',
};
const q: Question = { client: 'bot', subject, op: 'read', service: 'github.com', account: 'me' };
const T = 1_000_000;

describe('ConsentMemory', () => {
  it('holds a yes for the window, and not before one was given or after the window', () => {
    const m = new ConsentMemory();
    expect(m.holds(q, '10m', T)).toBe(false);
    m.remember(q, T);
    expect(m.holds(q, '10m', T)).toBe(true);
    expect(m.holds(q, '10m', T + 599_999)).toBe(true);
    expect(m.holds(q, '10m', T + 600_000)).toBe(false);
    // Once lapsed it is gone, even under a longer window.
    expect(m.holds(q, '1h', T + 1000)).toBe(false);
  });

  it('reads the window at use, so a shorter one applies to yeses already given', () => {
    const m = new ConsentMemory();
    m.remember(q, T);
    expect(m.holds(q, '1s', T + 1500)).toBe(false);
  });

  it('a clock that went back does not stretch a yes', () => {
    const m = new ConsentMemory();
    m.remember(q, T);
    expect(m.holds(q, '10m', T - 1)).toBe(false);
  });

  it.each<[string, Question]>([
    ['another process with the same pid (new start time)', { ...q, subject: { ...subject, started: '999' } }],
    ['another pid', { ...q, subject: { ...subject, pid: 4243 } }],
    ['another executable', { ...q, subject: { ...subject, sha256: 'c'.repeat(64) } }],
    ['an edited script', { ...q, subject: { ...subject, scriptSha256: 'd'.repeat(64) } }],
    ['another script', { ...q, subject: { ...subject, script: '/tmp/evil.py' } }],
    ['another client name', { ...q, client: 'other' }],
    ['another operation', { ...q, op: 'delete' }],
    ['another service', { ...q, service: 'gitlab.com' }],
    ['another account', { ...q, account: 'you' }],
  ])('a yes does not cover %s', (_name, other) => {
    const m = new ConsentMemory();
    m.remember(q, T);
    expect(m.holds(other, '10m', T + 1)).toBe(false);
    expect(m.holds(q, '10m', T + 1)).toBe(true);
  });

  it('remembers nothing for a process without a start time', () => {
    const m = new ConsentMemory();
    const { started: _, ...bare } = subject;
    const unknown = { ...q, subject: bare };
    m.remember(unknown, T);
    expect(m.holds(unknown, '10m', T + 1)).toBe(false);
  });

  it(`keeps at most ${MAX_REMEMBERED} yeses, forgetting the oldest`, () => {
    const m = new ConsentMemory();
    const nth = (i: number): Question => ({ ...q, account: `a${i}` });
    for (let i = 0; i <= MAX_REMEMBERED; i++) m.remember(nth(i), T);
    expect(m.holds(nth(0), '10m', T + 1)).toBe(false);
    expect(m.holds(nth(1), '10m', T + 1)).toBe(true);
    expect(m.holds(nth(MAX_REMEMBERED), '10m', T + 1)).toBe(true);
  });
});
