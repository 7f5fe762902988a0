import { describe, expect, it } from 'vitest';
import { describeGrant } from '../../src/cli/clients.js';
import type { Grant } from '../../src/policy/schema.js';

const NOW = new Date('2026-11-24T12:00:00Z');
const grant = (over: Partial<Grant> = {}): Grant => ({
  services: ['github.com'],
  servicePrefixes: [],
  accounts: ['*'],
  operations: ['read'],
  ...over,
});

describe('describeGrant (entraclaw clients)', () => {
  it('writes names as a --grant spec would: a "/" or "," inside one is percent-encoded, * stays *', () => {
    expect(describeGrant(grant({ services: ['bot/x'], accounts: ['me,you'] }), NOW)).toBe(
      'bot%2Fx/me%2Cyou read',
    );
    expect(describeGrant(grant({ services: [], servicePrefixes: ['ci/'] }), NOW)).toBe('ci%2F*/* read');
  });

  it('tells a live grant from one that has expired', () => {
    expect(describeGrant(grant({ expiresAt: '2026-12-01T00:00:00.000Z' }), NOW)).toBe(
      'github.com/* read until 2026-12-01T00:00:00.000Z',
    );
    expect(describeGrant(grant({ expiresAt: '2026-11-01T00:00:00.000Z' }), NOW)).toBe(
      'github.com/* read EXPIRED at 2026-11-01T00:00:00.000Z',
    );
  });
});
