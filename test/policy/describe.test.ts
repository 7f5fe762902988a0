import { describe, expect, it } from 'vitest';
import { programLabel, terminalJson, visible } from '../../src/lib/visible.js';
import { describeGrant, describePolicyChange } from '../../src/policy/describe.js';
import { parseGrantSpec } from '../../src/policy/edit.js';
import type { Grant } from '../../src/policy/grant.js';
import type { Client } from '../../src/policy/schema.js';

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

describe('programLabel (the PROGRAM of pending, clients, audit; approve; the askpass question)', () => {
  it('quotes a path with a space of any kind, a quote or a backslash, so it cannot read as exe + script', () => {
    expect(programLabel('/usr/bin/node', '/home/me/bot.js')).toBe('/usr/bin/node /home/me/bot.js');
    expect(programLabel('/opt/node /home/me/bot.js')).toBe("'/opt/node /home/me/bot.js'");
    expect(programLabel('/opt/node\u3000/bot.js')).toBe("'/opt/node\u3000/bot.js'");
    expect(programLabel("/opt/it's", '/a\\b')).toBe("'/opt/it'\\''s' '/a\\b'");
  });
});

describe('terminalJson (every --json output)', () => {
  it('writes DEL, C1 controls and invisible characters as \\u escapes, and reads back as the same value', () => {
    const value = { name: 'a\u202eb\u009b2J\x7f\u{e0041}\u2028\x1b', list: [1, 'plain é'] };
    const text = terminalJson(value, 2);
    expect(text).toContain('"a\\u202eb\\u009b2J\\u007f\\udb40\\udc41\\u2028\\u001b"');
    expect(text).toContain('"plain é"');
    expect(JSON.parse(text)).toEqual(value);
    expect(text.split('\n')).toHaveLength(JSON.stringify(value, null, 2).split('\n').length);
  });
});

describe('describePolicyChange (the audit line of a policy reload)', () => {
  const client = (name: string, over: Partial<Client> = {}): Client => ({
    name,
    exe: '/usr/bin/tool',
    sha256: 'a'.repeat(64),
    grants: [grant()],
    ...over,
  });

  it('names every client of a first load, and says when the file is invalid', () => {
    expect(describePolicyChange(undefined, { clients: [] })).toBe('policy loaded: 0 client(s)');
    // In full, so a change made while no daemon watched shows against the previous load.
    expect(describePolicyChange(undefined, { clients: [client('a'), client('b', { grants: [] })] })).toBe(
      `policy loaded: 2 client(s): a (/usr/bin/tool sha256:${'a'.repeat(16)}) granted github.com read; ` +
        `b (/usr/bin/tool sha256:${'a'.repeat(16)}) granted nothing`,
    );
    const many = Array.from({ length: 100 }, (_, i) => client(`c${i}`));
    const line = describePolicyChange(undefined, { clients: many })!;
    expect(line.length).toBeLessThan(4100);
    expect(line).toMatch(/^policy loaded: 100 client\(s\): c0 .* \.\.\. and \d+ more$/);
    expect(describePolicyChange({ clients: [] }, undefined, 'policy.toml:3: unknown key "x"')).toBe(
      'policy invalid, every request denied: policy.toml:3: unknown key "x"',
    );
  });

  it('says who was added (pin and grants), removed, re-pinned or granted otherwise; nothing when equal', () => {
    const before = { clients: [client('keep'), client('gone'), client('moved'), client('more')] };
    const after = {
      clients: [
        client('keep'),
        client('moved', { sha256: 'b'.repeat(64) }),
        client('more', { grants: [grant(), grant({ services: ['npm'], operations: ['read', 'list'] })] }),
        client('new', { exe: '/usr/bin/node', script: '/bot/index.js', scriptSha256: 'c'.repeat(64) }),
      ],
    };
    expect(describePolicyChange(before, after)).toBe(
      'policy changed: ' +
        `re-pinned moved (/usr/bin/tool sha256:${'a'.repeat(16)}) -> (/usr/bin/tool sha256:${'b'.repeat(16)}); ` +
        'grants of more now github.com read; npm read,list; ' +
        `added new (/usr/bin/node /bot/index.js sha256:${'c'.repeat(16)}) granted github.com read; ` +
        'removed gone',
    );
    expect(describePolicyChange(before, structuredClone(before))).toBeUndefined();
  });
});

describe('describePolicyChange on a big rewrite', () => {
  it('stays one bounded line, counting what it left out', () => {
    const many = (n: number, tag: string): Client[] =>
      Array.from({ length: n }, (_, i) => ({
        name: `${tag}${i}`,
        exe: `/opt/${tag}/${i}`,
        sha256: 'd'.repeat(64),
        grants: [],
      }));
    const line = describePolicyChange({ clients: many(300, 'old') }, { clients: many(300, 'new') })!;
    expect(line.length).toBeLessThan(4100);
    expect(line).toMatch(/^policy changed: added new0 .* \.\.\. and \d+ more$/);
  });
});
