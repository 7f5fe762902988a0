import { describe, expect, it } from 'vitest';
import { describeGrant } from '../../src/cli/clients.js';
import { visible } from '../../src/lib/visible.js';
import { parseGrantSpec } from '../../src/policy/edit.js';
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
  it('shows each grant in --grant spec syntax', () => {
    expect(describeGrant(grant(), NOW)).toBe('github.com read');
    expect(describeGrant(grant({ accounts: ['me', 'you'] }), NOW)).toBe('github.com/me github.com/you read');
    expect(describeGrant(grant({ services: [], servicePrefixes: ['aws/'] }), NOW)).toBe('aws/* read');
    expect(describeGrant(grant({ services: ['*'] }), NOW)).toBe('* read');
    expect(describeGrant(grant({ services: ['bot/x'], accounts: ['me,you'] }), NOW)).toBe(
      'bot%2Fx/me%2Cyou read',
    );
  });

  it('every spec it shows parses back to the same services, prefixes and accounts', () => {
    for (const spec of [
      'github.com',
      'github.com/me',
      'aws/*',
      'github.com/*',
      '*',
      'my%2Fsvc/me',
      'a%2Ab',
      'x%25y*',
    ]) {
      const g = parseGrantSpec(spec, { ops: 'read' });
      const shown = describeGrant(g, NOW).split(' ')[0]!;
      const again = parseGrantSpec(shown, { ops: 'read' });
      expect([again.services, again.servicePrefixes, again.accounts], `${spec} -> ${shown}`).toEqual([
        g.services,
        g.servicePrefixes,
        g.accounts,
      ]);
    }
  });

  it('a prefix or * limited to some accounts, which no spec expresses, lists its accounts', () => {
    expect(describeGrant(grant({ services: [], servicePrefixes: ['ci-'], accounts: ['deploy'] }), NOW)).toBe(
      'ci-* (accounts deploy) read',
    );
    expect(describeGrant(grant({ services: ['*'], accounts: ['me'] }), NOW)).toBe('* (accounts me) read');
  });

  it('tells a live grant from one that has expired', () => {
    expect(describeGrant(grant({ expiresAt: '2026-12-01T00:00:00.000Z' }), NOW)).toBe(
      'github.com read until 2026-12-01T00:00:00.000Z',
    );
    expect(describeGrant(grant({ expiresAt: '2026-11-01T00:00:00.000Z' }), NOW)).toBe(
      'github.com read EXPIRED at 2026-11-01T00:00:00.000Z',
    );
  });
});

describe('visible (every table cell, note and error line)', () => {
  it('escapes control and invisible characters, so a name cannot redraw the terminal', () => {
    expect(visible('/tmp/e\x1b[2K\r/index.mjs')).toBe('/tmp/e\\u{1b}[2K\\u{d}/index.mjs');
    expect(visible('abc\u202e')).toBe('abc\\u{202e}');
    expect(visible('plain /path/é ok')).toBe('plain /path/é ok');
  });
});
