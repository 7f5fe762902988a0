import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseGrantSpec } from '../../src/policy/edit.js';
import { GRANT_OPERATIONS } from '../../src/policy/grant.js';
import { parsePolicy } from '../../src/policy/load.js';
import { decide } from '../../src/policy/match.js';

// docs/policy.md is the reference users edit policy.toml by: its example must be a valid policy that
// means what the text says, and its spec table must match parseGrantSpec.
const doc = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
const tomlBlocks = [...doc.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('docs/policy.md', () => {
  it('has one full example, and it is a valid policy meaning what the text says', () => {
    expect(tomlBlocks).toHaveLength(1);
    const policy = parsePolicy(tomlBlocks[0]!, 'docs/policy.md');
    expect(policy.clients.map((c) => c.name)).toEqual(['bot', 'deploy']);
    const bot = policy.clients[0]!;
    const who = { exe: bot.exe, sha256: bot.sha256, script: bot.script!, scriptSha256: bot.scriptSha256! };
    const at = new Date('2026-06-01T00:00:00Z');
    const ask = (op: 'read' | 'update' | 'list', service: string, account: string, now = at) =>
      decide(policy, who, { op, service, account }, now).result;
    expect(ask('read', 'github.com', 'me')).toBe('granted');
    expect(ask('update', 'github.com', 'me')).toBe('denied');
    expect(ask('update', 'bot/cache', 'anyone')).toBe('granted');
    expect(ask('update', 'bot/cache', 'anyone', new Date('2027-01-01T00:00:00Z'))).toBe('denied');
    // The interpreter alone (another script) is not the bot.
    expect(
      decide(
        policy,
        { exe: bot.exe, sha256: bot.sha256 },
        { op: 'read', service: 'github.com', account: 'me' },
        at,
      ).result,
    ).not.toBe('granted');
  });

  it('lists the operations the schema accepts', () => {
    for (const op of GRANT_OPERATIONS) expect(doc).toContain(`\`${op}\``);
  });

  it('its grant spec table is what parseGrantSpec does', () => {
    const g = (spec: string) => parseGrantSpec(spec, { ops: 'read' });
    expect(g('github.com')).toMatchObject({ services: ['github.com'], servicePrefixes: [], accounts: ['*'] });
    expect(g('github.com/me')).toMatchObject({ services: ['github.com'], accounts: ['me'] });
    expect(g('aws/*')).toMatchObject({ services: [], servicePrefixes: ['aws/'], accounts: ['*'] });
    expect(g('github.com/*')).toMatchObject({
      services: [],
      servicePrefixes: ['github.com/'],
      accounts: ['*'],
    });
    expect(g('*')).toMatchObject({ services: ['*'], accounts: ['*'] });
    expect(g('my%2Fsvc/me')).toMatchObject({ services: ['my/svc'], accounts: ['me'] });
    for (const row of ['`github.com`', '`github.com/me`', '`aws/*`', '`github.com/*`', '`*`']) {
      expect(doc).toContain(`| ${row} |`);
    }
  });
});
