import type { AuditEntry } from '../../src/audit/entry.js';

/** A plausible audit entry; `n` makes each one distinct. */
export function entry(n = 0, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    time: new Date(Date.UTC(2026, 10, 24, 10, 0, n)).toISOString(),
    requestId: String(n),
    pid: 4242,
    uid: 1000,
    exe: '/usr/bin/node',
    sha256: 'a'.repeat(64),
    op: 'get',
    service: 'github.com',
    account: 'me',
    decision: 'granted',
    reason: 'client bot',
    durationMs: 1.25,
    ...over,
  };
}
