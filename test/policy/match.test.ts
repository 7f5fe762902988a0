import { describe, expect, it } from 'vitest';
import type { Grant, Operation } from '../../src/policy/grant.js';
import {
  type ClientIdentity,
  decide,
  filterVisible,
  outlasting,
  setOperation,
  UNGRANTABLE,
} from '../../src/policy/match.js';
import type { Client, Policy } from '../../src/policy/schema.js';

const NODE = 'a'.repeat(64);
const NODE2 = 'c'.repeat(64);
const BOT = 'b'.repeat(64);
const OTHER = 'd'.repeat(64);
const NOW = new Date('2026-11-24T12:00:00Z');

function grant(over: Partial<Grant> = {}): Grant {
  return { services: ['github.com'], servicePrefixes: [], accounts: ['*'], operations: ['read'], ...over };
}

function client(over: Partial<Client> = {}): Client {
  return { name: 'bot', exe: '/usr/bin/node', sha256: NODE, grants: [grant()], ...over };
}

const policy = (...clients: Client[]): Policy => ({ clients });
const who = (over: Partial<ClientIdentity> = {}): ClientIdentity => ({
  exe: '/usr/bin/node',
  sha256: NODE,
  ...over,
});
const ask = (op: Operation, service?: string, account?: string) => ({ op, service, account });

describe('decide: identity', () => {
  it('is unknown when no client matches (the caller queues it)', () => {
    expect(decide(policy(), who(), ask('read', 'github.com', 'me'), NOW)).toEqual({ result: 'unknown' });
    expect(
      decide(
        policy(client({ exe: '/usr/bin/ssh', sha256: OTHER })),
        who(),
        ask('read', 'github.com', 'me'),
        NOW,
      ),
    ).toEqual({
      result: 'unknown',
    });
  });

  it('matches on the hash, not the path', () => {
    const d = decide(
      policy(client({ exe: '/opt/node/bin/node' })),
      who(),
      ask('read', 'github.com', 'me'),
      NOW,
    );
    expect(d.result).toBe('granted');
  });

  it('an unpinned client matches scripts only when run by the interpreter it names', () => {
    const script = { script: '/home/u/any.py', scriptSha256: BOT };
    // A copy of the interpreter under another name, approved as a plain program (no script).
    const copy = client({ exe: '/tmp/mytool', sha256: NODE });
    expect(decide(policy(copy), who(script), ask('read', 'github.com', 'me'), NOW).result).toBe('unknown');
    // The copy itself, run as a program, is the client that was approved.
    expect(
      decide(policy(copy), who({ exe: '/tmp/mytool' }), ask('read', 'github.com', 'me'), NOW).result,
    ).toBe('granted');
    // The interpreter registered deliberately at its own path still covers every script it runs.
    expect(decide(policy(client()), who(script), ask('read', 'github.com', 'me'), NOW).result).toBe(
      'granted',
    );
  });

  it('compares hashes case-insensitively', () => {
    expect(
      decide(policy(client()), who({ sha256: NODE.toUpperCase() }), ask('read', 'github.com', 'me'), NOW)
        .result,
    ).toBe('granted');
  });

  it('denies a known path with a new hash and says how to upgrade', () => {
    const d = decide(policy(client()), who({ sha256: NODE2 }), ask('read', 'github.com', 'me'), NOW);
    expect(d).toMatchObject({ result: 'denied', client: { name: 'bot' } });
    expect(d.result === 'denied' && d.reason).toBe(
      'binary changed since approval (run `entraclaw upgrade /usr/bin/node`)',
    );
  });

  it('quotes a path with spaces in the upgrade advice', () => {
    const c = client({ exe: "/opt/my tools/it's" });
    const d = decide(policy(c), who({ exe: c.exe, sha256: NODE2 }), ask('read', 'github.com', 'me'), NOW);
    expect(d.result === 'denied' && d.reason).toContain(`entraclaw upgrade '/opt/my tools/it'\\''s'`);
  });

  describe('script pins', () => {
    const pinned = client({ name: 'deploy', script: '/home/me/bot/index.js', scriptSha256: BOT });

    it('matches when interpreter hash, script path and script hash all match', () => {
      const d = decide(
        policy(pinned),
        who({ script: '/home/me/bot/index.js', scriptSha256: BOT }),
        ask('read', 'github.com', 'x'),
        NOW,
      );
      expect(d).toMatchObject({ result: 'granted', client: { name: 'deploy' } });
    });

    it('is unknown for another script under the same interpreter', () => {
      expect(
        decide(
          policy(pinned),
          who({ script: '/tmp/evil.js', scriptSha256: OTHER }),
          ask('read', 'github.com', 'x'),
          NOW,
        ),
      ).toEqual({
        result: 'unknown',
      });
    });

    it('is unknown for the bare interpreter (no script)', () => {
      expect(decide(policy(pinned), who(), ask('read', 'github.com', 'x'), NOW)).toEqual({
        result: 'unknown',
      });
    });

    it('denies the pinned script with a new hash, naming the script to upgrade', () => {
      const d = decide(
        policy(pinned),
        who({ script: '/home/me/bot/index.js', scriptSha256: OTHER }),
        ask('read', 'github.com', 'x'),
        NOW,
      );
      expect(d.result === 'denied' && d.reason).toBe(
        'script changed since approval (run `entraclaw upgrade /home/me/bot/index.js`)',
      );
    });

    it('denies the pinned script under an upgraded interpreter, naming the interpreter', () => {
      const d = decide(
        policy(pinned),
        who({ sha256: NODE2, script: '/home/me/bot/index.js', scriptSha256: BOT }),
        ask('read', 'github.com', 'x'),
        NOW,
      );
      expect(d.result === 'denied' && d.reason).toBe(
        'interpreter changed since approval (run `entraclaw upgrade /usr/bin/node`)',
      );
      // Only this client runs that interpreter: nothing else to say about the re-pin.
      expect(d.result === 'denied' && d.hint).toBe(
        'if the change is yours, re-pin it and keep the grants of "deploy": entraclaw upgrade /usr/bin/node',
      );
    });

    it('names the interpreter and the script when both changed, with both re-pins in one command', () => {
      const d = decide(
        policy(pinned),
        who({ sha256: NODE2, script: '/home/me/bot/index.js', scriptSha256: OTHER }),
        ask('read', 'github.com', 'x'),
        NOW,
      );
      const both = 'entraclaw upgrade /usr/bin/node && entraclaw upgrade /home/me/bot/index.js';
      expect(d.result === 'denied' && d.reason).toBe(
        `interpreter and script changed since approval (run \`${both}\`)`,
      );
      expect(d.result === 'denied' && d.hint).toContain(`keep the grants of "deploy": ${both}`);
    });

    it('says that re-pinning a shared interpreter re-pins every client it runs', () => {
      const other = client({ name: 'other', script: '/home/me/other.js', scriptSha256: OTHER });
      const loose = client({ name: 'any', exe: '/opt/node', grants: [] });
      const d = decide(
        policy(pinned, other, loose),
        who({ sha256: NODE2, script: '/home/me/bot/index.js', scriptSha256: BOT }),
        ask('read', 'github.com', 'x'),
        NOW,
      );
      expect(d.result === 'denied' && d.hint).toBe(
        'if the change is yours, re-pin it and keep the grants of "deploy": entraclaw upgrade /usr/bin/node' +
          ' (it re-pins /usr/bin/node for every client that runs it: "deploy", "other")',
      );
      // A script change is that client's alone.
      const script = decide(
        policy(pinned, other),
        who({ script: '/home/me/bot/index.js', scriptSha256: OTHER }),
        ask('read', 'github.com', 'x'),
        NOW,
      );
      expect(script.result === 'denied' && script.hint).toBe(
        'if the change is yours, re-pin it and keep the grants of "deploy": entraclaw upgrade /home/me/bot/index.js',
      );
    });

    it('keeps two clients with one interpreter and different scripts apart', () => {
      const a = client({
        name: 'a',
        script: '/a.js',
        scriptSha256: BOT,
        grants: [grant({ services: ['svc-a'] })],
      });
      const b = client({
        name: 'b',
        script: '/b.js',
        scriptSha256: OTHER,
        grants: [grant({ services: ['svc-b'] })],
      });
      const p = policy(a, b);
      expect(
        decide(p, who({ script: '/a.js', scriptSha256: BOT }), ask('read', 'svc-a', 'x'), NOW),
      ).toMatchObject({ result: 'granted', client: { name: 'a' } });
      expect(
        decide(p, who({ script: '/b.js', scriptSha256: OTHER }), ask('read', 'svc-b', 'x'), NOW),
      ).toMatchObject({ result: 'granted', client: { name: 'b' } });
      // Each only gets its own grants.
      expect(
        decide(p, who({ script: '/a.js', scriptSha256: BOT }), ask('read', 'svc-b', 'x'), NOW),
      ).toMatchObject({ result: 'denied', client: { name: 'a' } });
      // A script's hash must be the one pinned for that path, not another client's.
      expect(
        decide(p, who({ script: '/a.js', scriptSha256: OTHER }), ask('read', 'svc-b', 'x'), NOW),
      ).toMatchObject({ result: 'denied', client: { name: 'a' } });
    });

    it('prefers the script-pinned client over an unpinned one for the same binary', () => {
      const loose = client({ name: 'any-node', grants: [grant({ services: ['loose'] })] });
      const p = policy(loose, pinned);
      const d = decide(
        p,
        who({ script: '/home/me/bot/index.js', scriptSha256: BOT }),
        ask('read', 'github.com', 'x'),
        NOW,
      );
      expect(d).toMatchObject({ result: 'granted', client: { name: 'deploy' } });
      // Any other script falls back to the unpinned client.
      expect(
        decide(p, who({ script: '/other.js', scriptSha256: OTHER }), ask('read', 'loose', 'x'), NOW),
      ).toMatchObject({
        result: 'granted',
        client: { name: 'any-node' },
      });
    });
  });
});

describe('decide: grants', () => {
  const granted = (g: Grant, op: Operation, service: string, account: string, now = NOW) =>
    decide(policy(client({ grants: [g] })), who(), ask(op, service, account), now).result;

  it('matches exact service names only', () => {
    expect(granted(grant(), 'read', 'github.com', 'me')).toBe('granted');
    expect(granted(grant(), 'read', 'github.co', 'me')).toBe('denied');
    expect(granted(grant(), 'read', 'github.com.evil', 'me')).toBe('denied');
    expect(granted(grant(), 'read', 'GitHub.com', 'me')).toBe('denied');
  });

  it('matches service prefixes', () => {
    const g = grant({ services: [], servicePrefixes: ['aws/'] });
    expect(granted(g, 'read', 'aws/prod', 'me')).toBe('granted');
    expect(granted(g, 'read', 'aws/', 'me')).toBe('granted');
    expect(granted(g, 'read', 'aws', 'me')).toBe('denied');
    expect(granted(g, 'read', 'awsx/prod', 'me')).toBe('denied');
    expect(granted(g, 'read', 'x/aws/prod', 'me')).toBe('denied');
  });

  it('treats "*" as any only when written, and literally nowhere else', () => {
    expect(granted(grant({ accounts: ['*'] }), 'read', 'github.com', 'anyone')).toBe('granted');
    expect(granted(grant({ accounts: ['me'] }), 'read', 'github.com', 'me')).toBe('granted');
    expect(granted(grant({ accounts: ['me'] }), 'read', 'github.com', 'you')).toBe('denied');
    expect(granted(grant({ accounts: ['me*'] }), 'read', 'github.com', 'meow')).toBe('denied');
    expect(granted(grant({ services: ['*'] }), 'read', 'anything', 'x')).toBe('granted');
    expect(granted(grant({ services: ['git*'] }), 'read', 'github.com', 'x')).toBe('denied');
  });

  it('needs the operation; write covers create and update only', () => {
    expect(granted(grant({ operations: ['read'] }), 'delete', 'github.com', 'me')).toBe('denied');
    expect(granted(grant({ operations: ['write'] }), 'create', 'github.com', 'me')).toBe('granted');
    expect(granted(grant({ operations: ['write'] }), 'update', 'github.com', 'me')).toBe('granted');
    expect(granted(grant({ operations: ['write'] }), 'delete', 'github.com', 'me')).toBe('denied');
    expect(granted(grant({ operations: ['write'] }), 'read', 'github.com', 'me')).toBe('denied');
    expect(granted(grant({ operations: ['create'] }), 'update', 'github.com', 'me')).toBe('denied');
    expect(granted(grant({ operations: ['update'] }), 'update', 'github.com', 'me')).toBe('granted');
    expect(granted(grant({ operations: ['delete'] }), 'delete', 'github.com', 'me')).toBe('granted');
    expect(granted(grant({ operations: ['list'] }), 'read', 'github.com', 'me')).toBe('denied');
  });

  it('treats a grant as expired from its expiry instant on', () => {
    const g = grant({ expiresAt: '2026-11-24T12:00:00.000Z' });
    expect(granted(g, 'read', 'github.com', 'me', new Date('2026-11-24T11:59:59.999Z'))).toBe('granted');
    expect(granted(g, 'read', 'github.com', 'me', new Date('2026-11-24T12:00:00.000Z'))).toBe('denied');
    expect(granted(g, 'read', 'github.com', 'me', new Date('2026-11-24T12:00:00.001Z'))).toBe('denied');
  });

  it('says when the only fitting grant has expired', () => {
    const d = decide(
      policy(client({ grants: [grant({ expiresAt: '2026-01-01T00:00:00.000Z' })] })),
      who(),
      ask('read', 'github.com', 'me'),
      NOW,
    );
    expect(d.result === 'denied' && d.reason).toBe(
      'the grant of client "bot" for github.com/me expired at 2026-01-01T00:00:00.000Z',
    );
    expect(d.result === 'denied' && d.hint).toBe(
      'if that is intended, the user can allow it with: entraclaw grant bot --grant github.com/me --ops read --ttl 8h',
    );
  });

  it('of several expired grants that fit, names the one that ran out last', () => {
    const grants = ['2026-01-01T00:00:00.000Z', '2026-06-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'].map(
      (expiresAt) => grant({ expiresAt }),
    );
    const d = decide(policy(client({ grants })), who(), ask('read', 'github.com', 'me'), NOW);
    expect(d.result === 'denied' && d.reason).toBe(
      'the grant of client "bot" for github.com/me expired at 2026-06-01T00:00:00.000Z',
    );
  });

  it('uses a live grant when an expired one also fits', () => {
    const expired = grant({ expiresAt: '2026-01-01T00:00:00.000Z', source: 'cli' });
    const live = grant({ source: 'user' });
    const d = decide(
      policy(client({ grants: [expired, live] })),
      who(),
      ask('read', 'github.com', 'me'),
      NOW,
    );
    expect(d).toMatchObject({ result: 'granted', grant: { source: 'user' } });
  });

  it('returns the grant that allowed the request', () => {
    const a = grant({ services: ['npm'] });
    const b = grant({ services: ['github.com'], operations: ['read', 'write'] });
    const d = decide(policy(client({ grants: [a, b] })), who(), ask('update', 'github.com', 'me'), NOW);
    expect(d.result === 'granted' && d.grant).toBe(b);
  });

  it('a denial says which grant command would allow it, with the item percent-encoded', () => {
    const d = decide(policy(client()), who(), ask('create', 'bot/x', 'me'), NOW);
    expect(d.result === 'denied' && d.hint).toBe(
      'if that is intended, the user can allow it with: entraclaw grant bot --grant bot%2Fx/me --ops create',
    );
    const l = decide(policy(client()), who(), ask('list'), NOW);
    expect(l.result === 'denied' && l.hint).toMatch(/entraclaw grant bot --grant SERVICE --ops list$/);
  });

  it('a denial for an item named only "*" says it cannot be granted, not a grant of everything', () => {
    for (const [service, account] of [
      ['*', 'me'],
      ['elsewhere.example', '*'],
    ] as const) {
      const d = decide(policy(client()), who(), ask('read', service, account), NOW);
      expect(d.result === 'denied' && d.hint).toBe(UNGRANTABLE);
    }
  });

  it('denies a known client with no grants, naming it', () => {
    const d = decide(policy(client({ grants: [] })), who(), ask('read', 'github.com', 'me'), NOW);
    expect(d).toMatchObject({
      result: 'denied',
      reason: 'no grant of client "bot" allows read on github.com/me',
      client: { name: 'bot' },
    });
  });

  it('denies an item operation without a service or account', () => {
    expect(decide(policy(client()), who(), ask('read', 'github.com'), NOW)).toMatchObject({
      result: 'denied',
      reason: /must name a service and an account/,
    });
    expect(decide(policy(client()), who(), ask('delete'), NOW).result).toBe('denied');
  });

  it('grants list when some live grant allows list, whatever its services', () => {
    const c = client({
      grants: [grant({ operations: ['read'] }), grant({ services: ['npm'], operations: ['list'] })],
    });
    expect(decide(policy(c), who(), ask('list'), NOW)).toMatchObject({
      result: 'granted',
      grant: { services: ['npm'] },
    });
    expect(decide(policy(client()), who(), ask('list'), NOW)).toMatchObject({
      result: 'denied',
      reason: 'client "bot" has no grant that allows list',
      hint: /--grant SERVICE --ops list$/,
    });
    // A list filtered by service: the hint names it (the filter does not change the decision).
    expect(decide(policy(client()), who(), { op: 'list', service: 'a/b' }, NOW)).toMatchObject({
      result: 'denied',
      hint: /--grant a%2Fb --ops list$/,
    });
    const lapsed = client({ grants: [grant({ operations: ['list'], expiresAt: '2026-01-01T00:00:00Z' })] });
    expect(decide(policy(lapsed), who(), ask('list'), NOW).result).toBe('denied');
  });
});

describe('filterVisible', () => {
  const items = [
    { service: 'github.com', account: 'me', kind: 'token' },
    { service: 'github.com', account: 'work', kind: 'token' },
    { service: 'aws/prod', account: 'deploy', kind: 'key' },
    { service: 'npm', account: 'me', kind: 'token' },
  ];

  it('keeps only items a live list grant covers', () => {
    const grants = [
      grant({ services: ['github.com'], accounts: ['me'], operations: ['list'] }),
      grant({ services: [], servicePrefixes: ['aws/'], operations: ['read', 'list'] }),
      grant({ services: ['npm'], operations: ['read'] }),
    ];
    expect(filterVisible(grants, items, NOW).map((i) => `${i.service}/${i.account}`)).toEqual([
      'github.com/me',
      'aws/prod/deploy',
    ]);
  });

  it('hides everything under expired grants and keeps item fields intact', () => {
    expect(
      filterVisible(
        [grant({ services: ['*'], operations: ['list'], expiresAt: NOW.toISOString() })],
        items,
        NOW,
      ),
    ).toEqual([]);
    expect(filterVisible([grant({ services: ['*'], operations: ['list'] })], items, NOW)).toEqual(items);
  });
});

describe('setOperation', () => {
  it('is create for a new item and update for an existing one', () => {
    expect(setOperation(false)).toBe('create');
    expect(setOperation(true)).toBe('update');
  });
});

describe('decide: several grants fit', () => {
  const broad = grant({ services: [], servicePrefixes: [''], operations: ['read', 'list'] });
  const remembered = grant({
    services: ['signing'],
    confirm: true,
    confirmFor: '10m',
    operations: ['read', 'list'],
  });
  const always = grant({ services: ['signing'], accounts: ['release'], confirm: true, operations: ['read'] });

  it('the grant that asks wins over a broader one that does not, in either order', () => {
    for (const grants of [
      [broad, always],
      [always, broad],
    ]) {
      const d = decide(policy(client({ grants })), who(), ask('read', 'signing', 'release'), NOW);
      expect(d).toMatchObject({ result: 'granted', grant: always });
    }
    const other = decide(
      policy(client({ grants: [broad, always] })),
      who(),
      ask('read', 'github.com', 'me'),
      NOW,
    );
    expect(other).toMatchObject({ result: 'granted', grant: broad });
  });

  it('asking every time wins over a remembered yes; list takes the asking grant too', () => {
    const grants = [broad, remembered, always];
    expect(decide(policy(client({ grants })), who(), ask('read', 'signing', 'release'), NOW)).toMatchObject({
      grant: always,
    });
    expect(decide(policy(client({ grants })), who(), ask('read', 'signing', 'other'), NOW)).toMatchObject({
      grant: remembered,
    });
    expect(decide(policy(client({ grants })), who(), ask('list'), NOW)).toMatchObject({ grant: remembered });
  });
});

describe('outlasting: a grant that keeps the access another one would end', () => {
  const soon = '2026-11-24T13:00:00.000Z';
  const later = '2026-11-25T12:00:00.000Z';
  const brief = grant({ accounts: ['me'], expiresAt: soon });

  it('finds a grant covering the same items and operations without expiry, or until later', () => {
    const forever = grant();
    expect(outlasting([forever, brief], brief, NOW)).toBe(forever);
    const longer = grant({ accounts: ['me'], operations: ['read', 'list'], expiresAt: later });
    expect(outlasting([brief, longer], brief, NOW)).toBe(longer);
    const everything = grant({ services: ['*'] });
    expect(outlasting([everything], brief, NOW)).toBe(everything);
    const prefix = grant({ services: [], servicePrefixes: ['git'] });
    expect(outlasting([prefix], brief, NOW)).toBe(prefix);
    const write = grant({ accounts: ['me'], operations: ['create', 'update'] });
    expect(
      outlasting([write], grant({ operations: ['write'], accounts: ['me'], expiresAt: soon }), NOW),
    ).toBe(write);
  });

  it('finds none where the expiry does end some access', () => {
    expect(outlasting([brief], brief, NOW)).toBeUndefined();
    expect(outlasting([grant()], grant(), NOW)).toBeUndefined();
    for (const other of [
      grant({ accounts: ['you'] }),
      grant({ services: ['gitlab.com'] }),
      grant({ operations: ['list'] }),
      grant({ servicePrefixes: ['github.com/'], services: [] }),
      grant({ accounts: ['me'], expiresAt: soon }),
      grant({ accounts: ['me'], expiresAt: '2026-11-24T12:30:00.000Z' }),
      grant({ expiresAt: '2026-11-24T11:00:00.000Z' }),
    ]) {
      expect(outlasting([other, brief], brief, NOW), JSON.stringify(other)).toBeUndefined();
    }
    const everyAccount = grant({ accounts: ['*'], expiresAt: soon });
    expect(outlasting([grant({ accounts: ['me'] })], everyAccount, NOW)).toBeUndefined();
  });
});
