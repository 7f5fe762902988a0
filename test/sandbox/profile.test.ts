import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import type { Grant, Operation } from '../../src/policy/grant.js';
import { decide } from '../../src/policy/match.js';
import { loadProfile, parseProfile } from '../../src/sandbox/profile.js';

// The sandbox profile: nono's credential_access section, read into the same Grant the policy uses.

async function usageError(text: string): Promise<UsageError> {
  const err = await parseProfile(text, 'p.toml').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UsageError);
  return err as UsageError;
}

/** Whether the grants allow `op` on service/account, by the daemon's own decision function. */
function allows(grants: Grant[], op: Operation, service: string, account: string): boolean {
  const client = { name: 'sandbox', exe: '/bin/sh', sha256: 'a'.repeat(64), grants };
  const d = decide(
    { clients: [client] },
    { exe: '/bin/sh', sha256: 'a'.repeat(64) },
    { op, service, account },
    new Date(),
  );
  return d.result === 'granted';
}

describe('parseProfile: credential_access -> grants', () => {
  it('maps the nono-style table (an agent keeping its OAuth token under one service)', async () => {
    const p = await parseProfile(
      `
[credential_access]
provider = "macos_keychain"
classes = ["generic_password"]
services = ["Claude Code-credentials"]
accounts = ["*"]
operations = ["read", "upsert", "delete"]
`,
      'agent.toml',
    );
    expect(p.grants).toEqual([
      {
        services: ['Claude Code-credentials'],
        servicePrefixes: [],
        accounts: ['*'],
        operations: ['read', 'create', 'update', 'delete'],
        source: 'profile',
      },
    ]);
    expect(p).toMatchObject({ allowPaths: [], readPaths: [], network: true });
    const g = p.grants;
    expect(allows(g, 'read', 'Claude Code-credentials', 'anyone')).toBe(true);
    expect(allows(g, 'create', 'Claude Code-credentials', 'me')).toBe(true);
    expect(allows(g, 'update', 'Claude Code-credentials', 'me')).toBe(true);
    expect(allows(g, 'read', 'Claude Code', 'me')).toBe(false);
    expect(allows(g, 'list', 'Claude Code-credentials', 'me')).toBe(false);
  });

  it('maps each operation word', async () => {
    const ops = async (words: string[]) =>
      (
        await parseProfile(
          `[credential_access]\nservices = ["s"]\naccounts = ["a"]\noperations = ${JSON.stringify(words)}`,
          'p',
        )
      ).grants[0]!.operations;
    expect(await ops(['read'])).toEqual(['read']);
    expect(await ops(['create'])).toEqual(['create']);
    expect(await ops(['update'])).toEqual(['update']);
    expect(await ops(['upsert'])).toEqual(['create', 'update']);
    expect(await ops(['delete'])).toEqual(['delete']);
    expect(await ops(['list'])).toEqual(['list']);
    expect(await ops(['write'])).toEqual(['create', 'update']);
    expect(await ops(['read', 'read', 'upsert', 'update'])).toEqual(['read', 'create', 'update']);
    expect(await ops(['status', 'read'])).toEqual(['read']);
  });

  it("nono's `status` (show-keychain-info, answered by the shim) needs no grant: a status-only grant is dropped", async () => {
    const p = await parseProfile(
      '[credential_access]\nprovider = "macos-keychain"\nclasses = ["generic-password"]\nservices = ["s"]\naccounts = ["a"]\noperations = ["status"]',
      'p',
    );
    expect(p.grants).toEqual([]);
  });

  it('a read-only grant allows exactly read on exactly the named items', async () => {
    const { grants } = await parseProfile(
      '[credential_access]\nservices = ["github.com"]\naccounts = ["me"]\noperations = ["read"]',
      'p',
    );
    expect(allows(grants, 'read', 'github.com', 'me')).toBe(true);
    for (const op of ['create', 'update', 'delete', 'list'] as const) {
      expect(allows(grants, op, 'github.com', 'me')).toBe(false);
    }
    expect(allows(grants, 'read', 'github.com', 'you')).toBe(false);
    expect(allows(grants, 'read', 'github.com.evil', 'me')).toBe(false);
    expect(allows(grants, 'read', 'gitlab.com', 'me')).toBe(false);
  });

  it('service_prefixes match by prefix; accounts need an explicit "*" to mean any', async () => {
    const { grants } = await parseProfile(
      '[credential_access]\nservice_prefixes = ["aws/"]\naccounts = ["*"]\noperations = ["read"]',
      'p',
    );
    expect(grants[0]).toMatchObject({ services: [], servicePrefixes: ['aws/'], accounts: ['*'] });
    expect(allows(grants, 'read', 'aws/prod', 'ci')).toBe(true);
    expect(allows(grants, 'read', 'aws', 'ci')).toBe(false);
    expect(allows(grants, 'read', 'gcp/prod', 'ci')).toBe(false);

    const named = (
      await parseProfile(
        '[credential_access]\nservice_prefixes = ["aws/"]\naccounts = ["ci"]\noperations = ["read"]',
        'p',
      )
    ).grants;
    expect(allows(named, 'read', 'aws/prod', 'ci')).toBe(true);
    expect(allows(named, 'read', 'aws/prod', 'admin')).toBe(false);
  });

  it('several grants as [[credential_access]]', async () => {
    const { grants } = await parseProfile(
      `
[[credential_access]]
services = ["github.com"]
accounts = ["me"]
operations = ["read"]

[[credential_access]]
service_prefixes = ["agent/"]
accounts = ["*"]
operations = ["read", "upsert"]
`,
      'p',
    );
    expect(grants).toHaveLength(2);
    expect(allows(grants, 'read', 'github.com', 'me')).toBe(true);
    expect(allows(grants, 'update', 'github.com', 'me')).toBe(false);
    expect(allows(grants, 'update', 'agent/cache', 'x')).toBe(true);
  });

  it('no credential_access: no grants (the broker refuses everything); [sandbox] paths and network', async () => {
    const p = await parseProfile(
      '[sandbox]\nallow_paths = ["/srv/out"]\nread_paths = ["/opt/data"]\nnetwork = false\n',
      'p',
    );
    expect(p).toEqual({ grants: [], allowPaths: ['/srv/out'], readPaths: ['/opt/data'], network: false });
    expect(await parseProfile('', 'empty')).toEqual({
      grants: [],
      allowPaths: [],
      readPaths: [],
      network: true,
    });
  });
});

describe('parseProfile: what it refuses', () => {
  const base = 'services = ["s"]\naccounts = ["a"]\noperations = ["read"]';

  it('unknown keys, at the top, in [sandbox] and in credential_access', async () => {
    // The line is the unknown key's own, so the user goes straight to it.
    expect((await usageError(`[credential_access]\n${base}\nservice = "typo"`)).message).toMatch(
      /:5: unknown key "service" in \[credential_access\]$/,
    );
    expect((await usageError('[sandbox]\nallow_path = ["/x"]')).message).toMatch(
      /:2: unknown key "allow_path" in \[sandbox\]$/,
    );
    expect((await usageError('[grants]\nx = 1')).message).toMatch(/:1: unknown key "grants"$/);
    expect(
      (await usageError(`[[credential_access]]\n${base}\n[[credential_access]]\n${base}\nextra = 1`)).message,
    ).toMatch(/:9: unknown key "extra" in \[credential_access\]$/);
  });

  it('accounts must be listed (an empty or missing list is not "any")', async () => {
    expect(
      (await usageError('[credential_access]\nservices = ["s"]\noperations = ["read"]')).message,
    ).toMatch(/credential_access\.accounts: missing \(a required key\)/);
    const empty = await usageError(
      '[credential_access]\nservices = ["s"]\naccounts = []\noperations = ["read"]',
    );
    expect(empty.message).toMatch(/accounts.*\["\*"\]/);
  });

  it('services or service_prefixes are required', async () => {
    const err = await usageError('[credential_access]\naccounts = ["*"]\noperations = ["read"]');
    expect(err.message).toMatch(/services or service_prefixes/);
  });

  it('unknown operations, and no operations', async () => {
    expect(
      (await usageError('[credential_access]\nservices = ["s"]\naccounts = ["a"]\noperations = ["admin"]'))
        .message,
    ).toMatch(/credential_access\.operations\.0/);
    expect(
      (await usageError('[credential_access]\nservices = ["s"]\naccounts = ["a"]\noperations = []')).message,
    ).toMatch(/operation/);
  });

  it('bad names, a "*" prefix, bad classes and bad types', async () => {
    await usageError('[credential_access]\nservices = [""]\naccounts = ["a"]\noperations = ["read"]');
    await usageError('[credential_access]\nservices = ["a\\nb"]\naccounts = ["a"]\noperations = ["read"]');
    await usageError(
      `[credential_access]\nservices = ["${'x'.repeat(257)}"]\naccounts = ["a"]\noperations = ["read"]`,
    );
    expect(
      (
        await usageError(
          '[credential_access]\nservice_prefixes = ["*"]\naccounts = ["a"]\noperations = ["read"]',
        )
      ).message,
    ).toMatch(/services = \["\*"\]/);
    await usageError(`[credential_access]\n${base}\nclasses = ["certificate"]`);
    await usageError('[credential_access]\nservices = "s"\naccounts = ["a"]\noperations = ["read"]');
    await usageError('[sandbox]\nnetwork = "yes"');
  });

  it('a nono provider or classes that would grant nothing there are refused, not read as a grant', async () => {
    for (const provider of ['macos-keychain', 'macos_keychain']) {
      expect(
        (await parseProfile(`[credential_access]\n${base}\nprovider = "${provider}"`, 'p.toml')).grants,
      ).toHaveLength(1);
    }
    expect((await usageError(`[credential_access]\n${base}\nprovider = "macos-keychian"`)).message).toMatch(
      /macos-keychain/,
    );
    expect((await usageError(`[credential_access]\n${base}\nclasses = []`)).message).toMatch(/classes/);
  });

  it('a JSON (nono) profile is refused with what to write instead', async () => {
    const json =
      '{\n  "credential_access": [\n    { "services": ["s"], "accounts": ["*"], "operations": ["read"] }\n  ]\n}\n';
    const err = await usageError(json);
    expect(err.message).toMatch(/is JSON .*TOML/);
    expect(err.hint).toMatch(/\[\[credential_access\]\]/);
  });

  it('invalid TOML names the file and line on one line, with a hint', async () => {
    const err = await usageError('network = true\n[credential_access\n');
    expect(err.message).toMatch(/^profile \S*p\.toml:2 is not valid TOML: [^\n]+$/);
    expect(err.hint).toMatch(/^fix the syntax at line 2 of \S*p\.toml$/);
  });
});

describe('loadProfile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'entraclaw-profile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file, and a missing file is a usage error naming it', async () => {
    const file = join(dir, 'agent.toml');
    writeFileSync(file, '[credential_access]\nservices = ["s"]\naccounts = ["a"]\noperations = ["read"]\n');
    expect((await loadProfile(file)).grants).toHaveLength(1);
    const err = await loadProfile(join(dir, 'nope.toml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain('nope.toml');
  });
});
