import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EntraclawError } from '../../src/errors.js';
import {
  addClient,
  addGrants,
  formatPolicy,
  parseGrantSpec,
  repinClient,
  revokeClient,
  savePolicy,
  upgradeClient,
} from '../../src/policy/edit.js';
import { loadPolicy, parsePolicy } from '../../src/policy/load.js';
import type { Client, Policy } from '../../src/policy/schema.js';
import { usageError } from '../support/errors.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const NOW = new Date('2026-11-24T10:00:00Z');

const bot: Client = {
  name: 'deploy-bot',
  exe: '/usr/bin/node',
  sha256: A,
  script: '/home/me/bot/index.js',
  scriptSha256: B,
  added: '2026-11-24T10:00:00.000Z',
  grants: [
    {
      services: ['github.com'],
      servicePrefixes: ['aws/'],
      accounts: ['*'],
      operations: ['read', 'list'],
      expiresAt: '2026-12-01T00:00:00.000Z',
      source: 'user',
    },
  ],
};
const ssh: Client = { name: 'ssh', exe: '/usr/bin/ssh', sha256: C, grants: [] };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as EntraclawError).code;
  }
  return undefined;
}

describe('addClient', () => {
  it('appends without touching its input', () => {
    const before: Policy = { clients: [bot] };
    const after = addClient(before, ssh);
    expect(after.clients).toEqual([bot, ssh]);
    expect(before.clients).toEqual([bot]);
  });

  it('refuses a taken name or an already approved program with conflict', () => {
    expect(code(() => addClient({ clients: [bot] }, { ...ssh, name: 'deploy-bot' }))).toBe('conflict');
    expect(code(() => addClient({ clients: [bot] }, { ...bot, name: 'again' }))).toBe('conflict');
    // The same interpreter with another script is another program.
    expect(
      addClient({ clients: [bot] }, { ...bot, name: 'other', script: '/other.js' }).clients,
    ).toHaveLength(2);
  });

  it('refuses the same program at another version, pointing at upgrade', () => {
    const err = (() => {
      try {
        addClient({ clients: [bot] }, { ...bot, name: 'newer', scriptSha256: C });
      } catch (e) {
        return e as EntraclawError;
      }
    })();
    expect(err?.code).toBe('conflict');
    expect(err?.hint).toBe(
      'if this version is the one to trust, re-pin it: entraclaw upgrade /home/me/bot/index.js',
    );
    expect(code(() => addClient({ clients: [ssh] }, { ...ssh, name: 'ssh2', sha256: A }))).toBe('conflict');
  });
});

describe('addGrants', () => {
  it('appends grants to the named client only', () => {
    const g = parseGrantSpec('npm', { ops: 'read' });
    const p = addGrants({ clients: [bot, ssh] }, 'ssh', [g]);
    expect(p.clients[1]!.grants).toEqual([g]);
    expect(p.clients[0]).toBe(bot);
    expect(code(() => addGrants({ clients: [bot] }, 'nobody', [g]))).toBe('not_found');
  });

  it('adds nothing for a grant the client already has, whatever the key order', () => {
    const g = parseGrantSpec('npm', { ops: 'read' });
    const reordered = Object.fromEntries(Object.entries(g).reverse()) as typeof g;
    const p = addGrants(addGrants({ clients: [ssh] }, 'ssh', [g]), 'ssh', [reordered, g]);
    expect(p.clients[0]!.grants).toEqual([g]);
    const other = parseGrantSpec('npm', { ops: 'read,list' });
    expect(addGrants(p, 'ssh', [other]).clients[0]!.grants).toEqual([g, other]);
  });
});

describe('revokeClient', () => {
  it('removes by name or by sha256 (any case)', () => {
    expect(revokeClient({ clients: [bot, ssh] }, 'ssh')).toEqual({
      policy: { clients: [bot] },
      removed: [ssh],
    });
    expect(revokeClient({ clients: [bot, ssh] }, C.toUpperCase()).removed).toEqual([ssh]);
  });

  it("takes a script client by its script's hash, and by its interpreter's hash only when it is the only one", () => {
    expect(revokeClient({ clients: [bot, ssh] }, B).removed).toEqual([bot]);
    expect(revokeClient({ clients: [bot, ssh] }, A).removed).toEqual([bot]);
  });

  it("refuses an interpreter's hash shared by several script clients, revoking nothing", () => {
    const other = { ...bot, name: 'other', script: '/o.js', scriptSha256: C };
    expect(code(() => revokeClient({ clients: [bot, other, ssh] }, A))).toBe('conflict');
  });

  it('asks for more digits only when they would tell the clients apart', () => {
    const hint = (policy: Policy, target: string) => {
      try {
        revokeClient(policy, target);
      } catch (err) {
        return (err as EntraclawError).hint;
      }
      return undefined;
    };
    const other = { ...bot, name: 'other', script: '/o.js', scriptSha256: C };
    // All 64 digits of the interpreter both clients run, and 16 of them: the same answer.
    for (const target of [A, `sha256:${A.slice(0, 16)}`]) {
      expect(hint({ clients: [bot, other] }, target)).toMatch(
        /revoke each by name \(entraclaw revoke deploy-bot\)/,
      );
    }
    const near = { ...ssh, name: 'near', exe: '/usr/bin/near', sha256: `${C.slice(0, 20)}${A.slice(20)}` };
    expect(hint({ clients: [ssh, near] }, C.slice(0, 16))).toMatch(/give more digits/);
  });

  it('throws not_found when nothing matches', () => {
    expect(code(() => revokeClient({ clients: [bot] }, 'nobody'))).toBe('not_found');
    expect(code(() => revokeClient({ clients: [bot] }, `sha256:${C.slice(0, 16)}`))).toBe('not_found');
  });

  it('takes the 16 digits `clients` shows (sha256: optional), refusing a prefix that names two programs', () => {
    expect(revokeClient({ clients: [bot, ssh] }, `sha256:${B.slice(0, 16)}`).removed).toEqual([bot]);
    expect(revokeClient({ clients: [bot, ssh] }, C.slice(0, 12)).removed).toEqual([ssh]);
    const near = { ...ssh, name: 'near', exe: '/usr/bin/near', sha256: `${C.slice(0, 20)}${A.slice(20)}` };
    expect(code(() => revokeClient({ clients: [ssh, near] }, `sha256:${C.slice(0, 16)}`))).toBe('conflict');
    expect(revokeClient({ clients: [ssh, near] }, `sha256:${C.slice(0, 24)}`).removed).toEqual([ssh]);
    expect(code(() => revokeClient({ clients: [ssh] }, 'sha256:abc'))).toBe('usage');
    expect(code(() => revokeClient({ clients: [ssh] }, 'sha256:zz'))).toBe('usage');
  });
});

describe('upgradeClient', () => {
  it('refuses a re-pin that would make two clients one program, changing nothing', () => {
    const stale = { ...bot, name: 'stale', scriptSha256: C };
    expect(code(() => upgradeClient({ clients: [bot, stale] }, '/home/me/bot/index.js', B))).toBe('conflict');
  });

  it('records a new exe hash and keeps grants', () => {
    const { policy, upgraded } = upgradeClient({ clients: [bot, ssh] }, '/usr/bin/ssh', A.toUpperCase());
    expect(policy.clients[1]).toEqual({ ...ssh, sha256: A });
    expect(upgraded.map((c) => c.name)).toEqual(['ssh']);
    expect(policy.clients[0]).toBe(bot);
  });

  it('records a new script hash for clients pinned to that script', () => {
    const { policy } = upgradeClient({ clients: [bot] }, '/home/me/bot/index.js', C);
    expect(policy.clients[0]).toEqual({ ...bot, scriptSha256: C });
  });

  it('upgrades every client of one interpreter', () => {
    const other = { ...bot, name: 'other', script: '/o.js' };
    expect(upgradeClient({ clients: [bot, other] }, '/usr/bin/node', C).upgraded).toHaveLength(2);
  });

  it('throws not_found for an unknown path and usage for a bad hash', () => {
    expect(code(() => upgradeClient({ clients: [bot] }, '/usr/bin/python3', C))).toBe('not_found');
    expect(code(() => upgradeClient({ clients: [bot] }, '/usr/bin/node', 'xyz'))).toBe('usage');
  });
});

describe('upgradeClient: nothing at that path', () => {
  const hint = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return `${(err as EntraclawError).message}\n${(err as EntraclawError).hint}`;
    }
    throw new Error('did not throw');
  };

  it('names the client pinned to the same bytes elsewhere (the program moved) and the --client re-pin', () => {
    expect(hint(() => upgradeClient({ clients: [bot, ssh] }, '/opt/ssh', ssh.sha256))).toBe(
      `no client runs /opt/ssh; client "ssh" is pinned to these bytes at /usr/bin/ssh (the program moved?)\n` +
        'to record its new path, keeping its grants: entraclaw upgrade /opt/ssh --client ssh',
    );
    // A moved script is re-pinned with its interpreter.
    expect(hint(() => upgradeClient({ clients: [bot] }, '/home/me/new/index.js', B))).toContain(
      'entraclaw upgrade /usr/bin/node --script /home/me/new/index.js --client deploy-bot',
    );
  });

  it('for an interpreter at a new path, names the clients running scripts with the old one, a re-pin each', () => {
    const other = { ...bot, name: 'other', script: '/o.js', scriptSha256: A };
    const text = hint(() =>
      upgradeClient({ clients: [bot, other, ssh] }, '/opt/node22/bin/node', 'e'.repeat(64)),
    );
    expect(text).toBe(
      'no client runs /opt/node22/bin/node; "deploy-bot", "other" run node scripts with /usr/bin/node\n' +
        'if /opt/node22/bin/node now runs them, re-pin each to it, keeping their grants: ' +
        'entraclaw upgrade /opt/node22/bin/node --script /home/me/bot/index.js && entraclaw upgrade /opt/node22/bin/node --script /o.js',
    );
    // No such client: the plain hint, which mentions --client for a program that moved.
    expect(hint(() => upgradeClient({ clients: [bot] }, '/usr/bin/python3', C))).toContain('--client NAME');
  });
});

describe('repinClient', () => {
  const node22 = { path: '/opt/node22/bin/node', sha256: C };

  it('moves the client of a script to another interpreter, keeping name, script pin and grants', () => {
    const { policy, before, client } = repinClient(
      { clients: [ssh, bot] },
      { exe: node22, script: { path: bot.script!, sha256: B } },
    );
    expect(before).toBe(bot);
    expect(client).toEqual({ ...bot, exe: node22.path, sha256: C });
    expect(policy.clients).toEqual([ssh, client]);
    // By name, without --script: the script pin is kept as it was.
    expect(repinClient({ clients: [bot] }, { name: 'deploy-bot', exe: node22 }).client).toEqual({
      ...bot,
      exe: node22.path,
      sha256: C,
    });
  });

  it('moves a script and a compiled program by client name', () => {
    const moved = repinClient(
      { clients: [bot] },
      { name: 'deploy-bot', exe: { path: bot.exe, sha256: A }, script: { path: '/srv/bot.js', sha256: C } },
    );
    expect(moved.client).toMatchObject({ script: '/srv/bot.js', scriptSha256: C, grants: bot.grants });
    expect(
      repinClient({ clients: [ssh] }, { name: 'ssh', exe: { path: '/opt/ssh', sha256: C } }).client,
    ).toEqual({ ...ssh, exe: '/opt/ssh', sha256: C });
  });

  it('refuses what would pin another program, and changes nothing', () => {
    // The script given as the program: that client would never match again.
    expect(
      code(() =>
        repinClient({ clients: [bot] }, { name: 'deploy-bot', exe: { path: '/srv/bot.js', sha256: C } }),
      ),
    ).toBe('usage');
    // A program pinned without a script does not become one script.
    expect(
      code(() =>
        repinClient({ clients: [ssh] }, { name: 'ssh', exe: node22, script: { path: '/x.js', sha256: B } }),
      ),
    ).toBe('usage');
    // Onto another client's program.
    const other = { ...bot, name: 'other', script: '/o.js', scriptSha256: A };
    expect(
      code(() =>
        repinClient(
          { clients: [bot, other] },
          { name: 'deploy-bot', exe: { path: bot.exe, sha256: A }, script: { path: '/o.js', sha256: A } },
        ),
      ),
    ).toBe('conflict');
    // Nobody of that name or script; two clients of one script.
    expect(code(() => repinClient({ clients: [bot] }, { name: 'nope', exe: node22 }))).toBe('not_found');
    expect(
      code(() => repinClient({ clients: [bot] }, { exe: node22, script: { path: '/x.js', sha256: B } })),
    ).toBe('not_found');
    const twin = { ...bot, name: 'py', exe: '/usr/bin/python3', sha256: C };
    expect(
      code(() =>
        repinClient({ clients: [bot, twin] }, { exe: node22, script: { path: bot.script!, sha256: B } }),
      ),
    ).toBe('conflict');
  });
});

describe('parseGrantSpec', () => {
  it('reads SERVICE as every account of that service', () => {
    expect(parseGrantSpec('github.com', { ops: 'read' })).toEqual({
      services: ['github.com'],
      servicePrefixes: [],
      accounts: ['*'],
      operations: ['read'],
      source: 'cli',
    });
  });

  it('reads SERVICE/ACCOUNT', () => {
    expect(parseGrantSpec('github.com/me', { ops: ['read', 'write'] })).toMatchObject({
      services: ['github.com'],
      accounts: ['me'],
      operations: ['read', 'write'],
    });
  });

  it('reads a trailing * as a service prefix for every account', () => {
    expect(parseGrantSpec('aws/*', { ops: 'read' })).toMatchObject({
      services: [],
      servicePrefixes: ['aws/'],
      accounts: ['*'],
    });
    expect(parseGrantSpec('aws-*', { ops: 'read' })).toMatchObject({ servicePrefixes: ['aws-'] });
    expect(parseGrantSpec('*', { ops: 'list' })).toMatchObject({
      services: ['*'],
      servicePrefixes: [],
      accounts: ['*'],
    });
  });

  it('decodes %-escapes inside names', () => {
    expect(parseGrantSpec('aws%2Fprod/deploy', { ops: 'read' })).toMatchObject({
      services: ['aws/prod'],
      accounts: ['deploy'],
    });
    expect(parseGrantSpec('svc/a%2Fb', { ops: 'read' })).toMatchObject({
      services: ['svc'],
      accounts: ['a/b'],
    });
    expect(parseGrantSpec('star%2A', { ops: 'read' })).toMatchObject({ services: ['star*'] });
    expect(parseGrantSpec('aws%2F*', { ops: 'read' })).toMatchObject({ servicePrefixes: ['aws/'] });
    expect(parseGrantSpec('100%25', { ops: 'read' })).toMatchObject({ services: ['100%'] });
  });

  it('round-trips the daemon hint format', () => {
    const service = 'aws/prod';
    const account = 'me@x/y';
    const spec = `${encodeURIComponent(service)}/${encodeURIComponent(account)}`;
    expect(parseGrantSpec(spec, { ops: 'read' })).toMatchObject({ services: [service], accounts: [account] });
  });

  it('takes ops as a comma list, dedupes them and accepts write', () => {
    expect(parseGrantSpec('s', { ops: ' read, list ,read,write' }).operations).toEqual([
      'read',
      'list',
      'write',
    ]);
  });

  it('turns a ttl into expires_at from now', () => {
    expect(parseGrantSpec('s', { ops: 'read', ttl: '30m', now: NOW }).expiresAt).toBe(
      '2026-11-24T10:30:00.000Z',
    );
    expect(parseGrantSpec('s', { ops: 'read', ttl: '12h', now: NOW }).expiresAt).toBe(
      '2026-11-24T22:00:00.000Z',
    );
    expect(parseGrantSpec('s', { ops: 'read', ttl: '7d', now: NOW }).expiresAt).toBe(
      '2026-12-01T10:00:00.000Z',
    );
    expect(parseGrantSpec('s', { ops: 'read', ttl: '2w', now: NOW }).expiresAt).toBe(
      '2026-12-08T10:00:00.000Z',
    );
    expect(parseGrantSpec('s', { ops: 'read', ttl: '90s', now: NOW }).expiresAt).toBe(
      '2026-11-24T10:01:30.000Z',
    );
  });

  it('turns a confirmation window into confirm + confirmFor, and refuses a bad or too long one', () => {
    expect(parseGrantSpec('s', { ops: 'read', confirmFor: '10m' })).toMatchObject({
      confirm: true,
      confirmFor: '10m',
    });
    expect(parseGrantSpec('s', { ops: 'read', confirm: true })).not.toHaveProperty('confirmFor');
    expect(parseGrantSpec('s', { ops: 'read', confirmFor: '24h' }).confirmFor).toBe('24h');
    for (const bad of ['25h', '2d', '10', 'soon', '0m', '-5m']) {
      expect(usageError(() => parseGrantSpec('s', { ops: 'read', confirmFor: bad })).message).toBe(
        `"${bad}" is not a confirmation window`,
      );
    }
  });

  it('records where the grant came from', () => {
    expect(parseGrantSpec('s', { ops: 'read', source: 'profile' }).source).toBe('profile');
  });

  it.each([
    ['an empty spec', '', 'read', undefined],
    ['an empty service', '/me', 'read', undefined],
    ['an empty account', 'svc/', 'read', undefined],
    ['a second slash', 'a/b/c', 'read', undefined],
    ['a * in the middle', 'a*b', 'read', undefined],
    ['a * in the account', 'svc/*x', 'read', undefined],
    ['a bad escape', 'svc%zz', 'read', undefined],
    ['a NUL', 'svc%00', 'read', undefined],
    ['no ops', 'svc', '', undefined],
    ['an unknown op', 'svc', 'read,steal', undefined],
    ['a bad ttl', 'svc', 'read', '10 years'],
    ['a zero ttl', 'svc', 'read', '0h'],
  ])('refuses %s with usage', (_name, spec, ops, ttl) => {
    expect(code(() => parseGrantSpec(spec, { ops, ...(ttl ? { ttl } : {}) }))).toBe('usage');
  });

  it('refuses a name escaped to a lone * (%2A), which the policy could only write as every service or account', () => {
    // The daemon's hint for an item named "*" spells it %2A: taking that as "*" would grant everything.
    for (const [spec, what] of [
      ['%2A', 'service'],
      ['%2A/me', 'service'],
      ['github.com/%2A', 'account'],
      ['%2A*', 'service prefix'],
    ] as const) {
      expect(usageError(() => parseGrantSpec(spec, { ops: 'read' })).message).toMatch(
        `grant "${spec}": ${what === 'account' ? 'an' : 'a'} ${what} named exactly "*" cannot be granted on its own`,
      );
    }
    // A * that is part of a longer name is still that literal name.
    expect(parseGrantSpec('%2A%2A/me%2A', { ops: 'read' })).toMatchObject({
      services: ['**'],
      accounts: ['me*'],
    });
    expect(parseGrantSpec('%2Ax*', { ops: 'read' }).servicePrefixes).toEqual(['*x']);
  });

  it('refuses a --ttl that ends after the year 9999 as a usage error, not an invalid time', () => {
    // Some of them have more milliseconds than a double counts exactly: too long all the same.
    for (const ttl of [
      '2920000d',
      '99999999d',
      '100000001d',
      '14285714w',
      '99999999999w',
      '9007199254740993s',
    ]) {
      expect(usageError(() => parseGrantSpec('s', { ops: 'read', ttl, now: NOW })).message).toBe(
        `--ttl ${ttl} ends after the year 9999`,
      );
    }
    expect(parseGrantSpec('s', { ops: 'read', ttl: '2900000d', now: NOW }).expiresAt).toMatch(/^9\d{3}-/);
  });

  it('names the one rule a spec breaks: a second "/" or a misplaced "*"', () => {
    expect(() => parseGrantSpec('a/b/c', { ops: 'read' })).toThrow(
      'grant "a/b/c": "/" separates SERVICE from ACCOUNT and may appear only once',
    );
    expect(() => parseGrantSpec('a*b', { ops: 'read' })).toThrow(
      'grant "a*b": "*" is only allowed at the end (a service prefix) or alone (everything)',
    );
  });
});

describe('formatPolicy / savePolicy', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const file = () => {
    dir = mkdtempSync(join(tmpdir(), 'entraclaw-edit-'));
    return join(dir, 'sub', 'policy.toml');
  };

  it('round-trips: save then load gives the same policy', () => {
    const path = file();
    const policy: Policy = {
      clients: [
        bot,
        ssh,
        {
          name: 'odd',
          exe: '/opt/we"ird\\path/\u0001x\u007f',
          sha256: B,
          grants: [
            {
              services: ['*'],
              servicePrefixes: [],
              accounts: ['a"b', 'ü\t'],
              operations: ['write', 'delete'],
            },
            { services: [], servicePrefixes: ['p/'], accounts: ['*'], operations: ['list'], source: 'cli' },
            {
              services: ['signing'],
              servicePrefixes: [],
              accounts: ['release'],
              operations: ['read'],
              confirm: true,
            },
            {
              services: ['tokens'],
              servicePrefixes: [],
              accounts: ['*'],
              operations: ['read'],
              confirm: true,
              confirmFor: '15m',
            },
          ],
        },
      ],
    };
    savePolicy(path, policy);
    expect(loadPolicy(path)).toEqual(policy);
    savePolicy(path, { clients: [] });
    expect(loadPolicy(path)).toEqual({ clients: [] });
  });

  it('writes controls and invisible characters of names and paths as escapes, so the file shows what it grants', () => {
    // Names and paths a pending program chose: a bidi override (which reorders the rest of the line in an
    // editor or `cat`), a C1 CSI, a zero-width space, a line separator, a BOM and a tag character.
    const hidden = ['\u202e', '\u009b', '\u200b', '\u2028', '\ufeff', '\u{e0001}'];
    const policy: Policy = {
      clients: [
        {
          name: 'odd',
          exe: `/opt/${hidden.join('x')}/tool`,
          sha256: B,
          grants: [
            {
              services: hidden.map((c) => `svc${c}`),
              servicePrefixes: ['p\u202e/'],
              accounts: ['*\u200b', 'me'],
              operations: ['read'],
            },
          ],
        },
      ],
    };
    const path = file();
    savePolicy(path, policy);
    const text = readFileSync(path, 'utf8');
    // Every control but the newlines that end lines, every format character, and the separators.
    expect(text).not.toMatch(/(?!\n)[\p{Cc}\p{Cf}\u2028\u2029]/u);
    expect(text).toContain('"svc\\u202e"');
    expect(text).toContain('"svc\\U000e0001"');
    expect(loadPolicy(path)).toEqual(policy);
  });

  it('writes 0600 atomically, with a header saying comments are not kept', () => {
    const path = file();
    savePolicy(path, { clients: [bot] });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    expect(text.startsWith('# Entraclaw policy')).toBe(true);
    expect(text).toMatch(/comments added here\n# are not preserved/);
    expect(readdirSync(join(dir, 'sub'))).toEqual(['policy.toml']);
  });

  it('reads naturally, in the documented layout', () => {
    const text = formatPolicy({ clients: [bot] });
    expect(text).toContain(`[[client]]
name = "deploy-bot"
exe = "/usr/bin/node"
sha256 = "${A}"
script = "/home/me/bot/index.js"
script_sha256 = "${B}"
added = "2026-11-24T10:00:00.000Z"

  [[client.grant]]
  services = ["github.com"]
  service_prefixes = ["aws/"]
  accounts = ["*"]
  operations = ["read", "list"]
  expires_at = "2026-12-01T00:00:00.000Z"
  source = "user"
`);
    expect(parsePolicy(text)).toEqual({ clients: [bot] });
  });

  it('refuses to write a policy the daemon would not load, leaving the old file', () => {
    const path = file();
    savePolicy(path, { clients: [ssh] });
    const bad = {
      clients: [
        {
          ...ssh,
          grants: [{ services: [], servicePrefixes: [], accounts: ['*'], operations: ['read' as const] }],
        },
      ],
    };
    expect(code(() => savePolicy(path, bad))).toBe('usage');
    expect(loadPolicy(path)).toEqual({ clients: [ssh] });
  });

  it('replaces hand edits, keeping their values', () => {
    const path = file();
    savePolicy(path, { clients: [ssh] });
    writeFileSync(path, `${readFileSync(path, 'utf8')}# my note\n`, { mode: 0o600 });
    const p = loadPolicy(path);
    savePolicy(path, addClient(p, { ...bot }));
    expect(readFileSync(path, 'utf8')).not.toContain('my note');
    expect(loadPolicy(path).clients.map((c) => c.name)).toEqual(['ssh', 'deploy-bot']);
  });
});
