// Policy commands run at the same time (a script granting in a loop while the user revokes) must each
// land: every edit is a locked read-modify-write of policy.toml, never a lost update reported as done.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-policy-edits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cliAsync(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--', CLI, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

interface Listed {
  name: string;
  grants: Array<{ services: string[]; expiresAt?: string }>;
}
function clients(env: NodeJS.ProcessEnv): Listed[] {
  const r = runCli(['clients', '--json'], env);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.toString()) as Listed[];
}

// Each client its own program: the policy refuses two clients that pin the same bytes.
function register(env: NodeJS.ProcessEnv, name: string): void {
  const program = join(dir, `program-${name}`);
  writeFileSync(program, `\x7fELF not really, just ${name}`, { mode: 0o755 });
  const r = runCli(['register', program, '--grant', 'base/x', '--name', name], env);
  expect(r.status, r.stderr).toBe(0);
}

describe('concurrent policy edits', () => {
  it('keeps every grant of commands run at once, and a revoke that reports success has happened', async () => {
    const env = isolatedEnv(join(dir, 'concurrent'));
    for (const name of ['keep', 'gone1', 'gone2', 'gone3']) register(env, name);
    const runs = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => cliAsync(['grant', 'keep', '--grant', `svc${i}/x`], env)),
      ...['gone1', 'gone2', 'gone3'].map((name) => cliAsync(['revoke', name], env)),
    ]);
    for (const r of runs) expect(r.status, r.stderr).toBe(0);
    const now = clients(env);
    expect(now.map((c) => c.name)).toEqual(['keep']);
    const services = now[0]!.grants.flatMap((g) => g.services).sort();
    expect(services).toEqual(['base', ...Array.from({ length: 8 }, (_, i) => `svc${i}`)].sort());
  }, 60_000);

  it('revoke of an empty name is a usage error, and revokes nothing', () => {
    const env = isolatedEnv(join(dir, 'empty-revoke'));
    register(env, 'stays');
    const r = runCli(['revoke', ''], env);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('revoke needs a client name or sha256:HEX');
    expect(clients(env).map((c) => c.name)).toEqual(['stays']);
  });

  it('a grant the client already has is not added again, and the command says so', () => {
    const env = isolatedEnv(join(dir, 'again'));
    register(env, 'again');
    const first = runCli(['grant', 'again', '--grant', 'extra/x', '--ops', 'read,list', '--json'], env);
    expect(first.status, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout.toString()).added).toHaveLength(1);
    const second = runCli(['grant', 'again', '--grant', 'extra/x', '--ops', 'read,list'], env);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toBe('entraclaw: again already has this grant; nothing added\n');
    const json = runCli(['grant', 'again', '--grant', 'extra/x', '--ops', 'read,list', '--json'], env);
    expect(JSON.parse(json.stdout.toString())).toEqual({ client: 'again', added: [] });
    expect(clients(env)[0]!.grants).toHaveLength(2);
  });

  it('a confirm grant without an askpass program is added with a note that the agent would deny it', () => {
    const env = isolatedEnv(join(dir, 'askpass'));
    register(env, 'asks');
    const bare = runCli(['grant', 'asks', '--grant', 'conf/x', '--confirm-for', '10m'], env);
    expect(bare.status, bare.stderr).toBe(0);
    expect(bare.stderr).toContain(
      'note: no askpass program is configured, so the agent denies what these grants cover',
    );
    const plain = runCli(['grant', 'asks', '--grant', 'plain/x'], env);
    expect(plain.stderr).not.toContain('askpass');
    const withAskpass = runCli(['grant', 'asks', '--grant', 'conf/y', '--confirm'], {
      ...env,
      ENTRACLAW_ASKPASS: '/usr/bin/ssh-askpass',
    });
    expect(withAskpass.status, withAskpass.stderr).toBe(0);
    expect(withAskpass.stderr).not.toContain('askpass');
    const config = join(env.XDG_CONFIG_HOME!, 'entraclaw');
    mkdirSync(config, { recursive: true, mode: 0o700 });
    writeFileSync(join(config, 'agent.toml'), '[agent]\naskpass = "/usr/bin/ssh-askpass"\n');
    expect(runCli(['grant', 'asks', '--grant', 'conf/z', '--confirm'], env).stderr).not.toContain('askpass');
  });

  it('a --ttl grant beside one that covers it for longer says that its expiry ends no access', () => {
    const env = isolatedEnv(join(dir, 'outlasted'));
    register(env, 'kept');
    const limited = runCli(['grant', 'kept', '--grant', 'base/x', '--ttl', '1h'], env);
    expect(limited.status, limited.stderr).toBe(0);
    const until = clients(env)[0]!.grants[1]!.expiresAt!;
    expect(limited.stderr).toBe(
      'entraclaw: added 1 grant(s) to kept\n' +
        `entraclaw: note: when base/x read until ${until} runs out, kept keeps that access: its grant base/x read covers it without expiry; to end it then, remove that grant from policy.toml (or \`entraclaw revoke kept\` and register it again with --ttl)\n`,
    );
    // A grant for something the client did not have yet: the expiry is a limit, nothing to say.
    const fresh = runCli(['grant', 'kept', '--grant', 'new/x', '--ttl', '1h'], env);
    expect(fresh.stderr).toBe('entraclaw: added 1 grant(s) to kept\n');
  });

  it('an empty --ttl (an unset $TTL) is refused, never a grant that does not expire', () => {
    const env = isolatedEnv(join(dir, 'empty-ttl'));
    register(env, 'ttl');
    const r = runCli(['grant', 'ttl', '--grant', 'forever/x', '--ttl', '', '--json'], env);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stderr.toString()).error).toMatchObject({
      code: 'usage',
      message: '"" is not a lifetime',
    });
    expect(clients(env)[0]!.grants.flatMap((g) => g.services)).toEqual(['base']);
  });

  it('approve given the name of an approved client says so and points at grant; the policy is unchanged', () => {
    const env = isolatedEnv(join(dir, 'approve-name'));
    register(env, 'bot');
    const r = runCli(['approve', 'bot', '--grant', 'more/x'], env);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'entraclaw: "bot" is neither a pending id (p-xxxxxxxx) nor sha256:HEX; it is the name of an approved client\n' +
        '  hint: add grants to it with `entraclaw grant bot --grant ...`\n',
    );
    expect(clients(env)[0]!.grants.flatMap((g) => g.services)).toEqual(['base']);
    expect(runCli(['approve', 'nobody', '--grant', 'more/x'], env).stderr).toContain(
      'hint: see `entraclaw pending`',
    );
  });

  it('edits a symlinked policy.toml where it points, leaving the link in place', () => {
    const base = join(dir, 'linked');
    const env = isolatedEnv(base);
    const dotfiles = join(base, 'dotfiles');
    mkdirSync(dotfiles, { recursive: true, mode: 0o700 });
    mkdirSync(join(base, 'config', 'entraclaw'), { recursive: true, mode: 0o700 });
    const link = join(base, 'config', 'entraclaw', 'policy.toml');
    symlinkSync(join(dotfiles, 'policy.toml'), link);
    register(env, 'linked');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dotfiles, 'policy.toml'), 'utf8')).toContain('name = "linked"');
    expect(clients(env).map((c) => c.name)).toEqual(['linked']);
    // Through a symlink in a directory others can write, the daemon would refuse it: so does an edit.
    const hops = join(base, 'hops');
    mkdirSync(hops, { mode: 0o700 });
    symlinkSync(join(dotfiles, 'policy.toml'), join(hops, 'current'));
    rmSync(link);
    symlinkSync(join(hops, 'current'), link);
    chmodSync(hops, 0o777);
    const before = readFileSync(join(dotfiles, 'policy.toml'), 'utf8');
    const r = runCli(['grant', 'linked', '--grant', 'more'], env);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${hops}, which holds ${link}, is writable by other users`);
    expect(readFileSync(join(dotfiles, 'policy.toml'), 'utf8')).toBe(before);
    chmodSync(hops, 0o700);
  });
});

describe('a config or state directory that cannot be made', () => {
  it('a dangling XDG_CONFIG_HOME or XDG_STATE_HOME is "unavailable" naming the variable, not an internal error', () => {
    const home = mkdtempSync(join(tmpdir(), 'entraclaw-dangling-'));
    try {
      const dangling = join(home, 'dangling');
      symlinkSync(join(home, 'nowhere', 'target'), dangling);
      const config = runCli(['register', '/usr/bin/true', '--grant', 'x'], {
        ...isolatedEnv(home),
        XDG_CONFIG_HOME: dangling,
      });
      expect(config.status, config.stderr).toBe(5);
      expect(config.stderr).toContain(`cannot create the directory ${join(dangling, 'entraclaw')}: ENOENT`);
      expect(config.stderr).toContain('set XDG_CONFIG_HOME to a directory of yours');
      const state = runCli(['pending'], { ...isolatedEnv(home), XDG_STATE_HOME: dangling });
      expect(state.stderr).not.toContain('internal');
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('a policy.toml that cannot be read', () => {
  it('is a usage error with a hint line saying what to check, for reads and edits alike', () => {
    const base = join(dir, 'unreadable');
    const env = isolatedEnv(base);
    // A directory where the file belongs: EISDIR, whoever runs the test (root reads any mode).
    mkdirSync(join(base, 'config', 'entraclaw', 'policy.toml'), { recursive: true, mode: 0o700 });
    for (const args of [['clients'], ['register', '/usr/bin/true', '--grant', 'x']]) {
      const r = runCli(args, env);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain('cannot read');
      expect(r.stderr).toMatch(/\n {2}hint: .*ls -l .*policy\.toml\n/);
    }
  });
});

describe('a * that is only a literal character', () => {
  it('`grant` says what a SERVICE/PREFIX* spec grants; `clients` warns, by line, about a hand-edited one', () => {
    const env = isolatedEnv(join(dir, 'literal-star'));
    register(env, 'star');
    const granted = runCli(['grant', 'star', '--grant', 'svc/me*'], env);
    expect(granted.status, granted.stderr).toBe(0);
    expect(granted.stderr).toContain(
      'note: --grant svc/me* grants services starting with "svc/me", any account (a service prefix); every account of the service svc is --grant svc',
    );
    const policy = join(env.XDG_CONFIG_HOME!, 'entraclaw', 'policy.toml');
    writeFileSync(policy, readFileSync(policy, 'utf8').replace('accounts = ["x"]', 'accounts = ["me*"]'));
    const listed = runCli(['clients'], env);
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stderr).toMatch(
      /warning: .*policy\.toml:\d+: accounts entry "me\*" matches only the account of that exact name/,
    );
  });

  it('a %2A in a grant spec is written as a character on purpose: no warning later; a hand-typed * keeps its', () => {
    const env = isolatedEnv(join(dir, 'literal-star-spec'));
    register(env, 'spec');
    const policy = join(env.XDG_CONFIG_HOME!, 'entraclaw', 'policy.toml');
    writeFileSync(policy, readFileSync(policy, 'utf8').replace('accounts = ["x"]', 'accounts = ["me*"]'));
    const granted = runCli(['grant', 'spec', '--grant', 'svc/a%2Fb%2A'], env);
    expect(granted.status, granted.stderr).toBe(0);
    expect(granted.stderr).not.toContain('warning');
    const listed = runCli(['clients', '--json'], env);
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout.toString()).toContain(`"a/b*"`);
    expect(listed.stderr).not.toContain(`"a/b*"`);
    // The hand-typed entry the grant rewrote is still one the user has not said is meant.
    expect(listed.stderr).toMatch(/warning: .*policy\.toml:\d+: accounts entry "me\*" matches only/);
  });

  it("an expiry an offset carries past 9999 is refused at the line the user wrote, not the CLI's own text", () => {
    const env = isolatedEnv(join(dir, 'late-expiry'));
    register(env, 'late');
    const policy = join(env.XDG_CONFIG_HOME!, 'entraclaw', 'policy.toml');
    const text = readFileSync(policy, 'utf8').replace(
      'source = "cli"',
      'source = "cli"\n  expires_at = 9999-12-31T23:59:59-23:59',
    );
    writeFileSync(policy, text);
    const line = text.split('\n').findIndex((l) => l.trim().startsWith('expires_at =')) + 1;
    for (const args of [['clients'], ['grant', 'late', '--grant', 'other']]) {
      const r = runCli(args, env);
      expect(r.status, args[0]).toBe(2);
      expect(r.stderr).toContain(
        `policy.toml:${line}: expires_at: must fall within the years 0000 to 9999 in UTC`,
      );
    }
    expect(readFileSync(policy, 'utf8')).toBe(text);
  });

  it('an edit that drops comments written by hand says so, once; the header it writes is not counted', () => {
    const env = isolatedEnv(join(dir, 'comments'));
    register(env, 'commented');
    const policy = join(env.XDG_CONFIG_HOME!, 'entraclaw', 'policy.toml');
    const quiet = runCli(['grant', 'commented', '--grant', 'first'], env);
    expect(quiet.stderr).not.toContain('not kept');
    writeFileSync(
      policy,
      `# why the bot has this\n${readFileSync(policy, 'utf8').replace('source = "cli"', 'source = "cli"  # ticket 42')}`,
    );
    const r = runCli(['grant', 'commented', '--grant', 'second'], env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `note: 2 comments written in ${policy} are not kept: the CLI rewrites the whole file (values and hand edits are kept)`,
    );
    expect(readFileSync(policy, 'utf8')).not.toContain('ticket 42');
    expect(runCli(['grant', 'commented', '--grant', 'third'], env).stderr).not.toContain('not kept');
  });

  it('a * escaped by hand in an inline table is not warned about, and a grant keeps it escaped', () => {
    const env = isolatedEnv(join(dir, 'inline-star'));
    register(env, 'inline');
    const policy = join(env.XDG_CONFIG_HOME!, 'entraclaw', 'policy.toml');
    const pinned = /exe = (".*")\nsha256 = (".*")/.exec(readFileSync(policy, 'utf8'))!;
    writeFileSync(
      policy,
      `client = [{ name = "inline", exe = ${pinned[1]}, sha256 = ${pinned[2]},
  grant = [{ services = ["svc"], accounts = ["me\\u002a", "typed*"], operations = ["read"] }] }]
`,
    );
    const listed = runCli(['clients'], env);
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stderr).not.toContain('"me*"');
    // The line of the entry itself, not of the `client = [{` its inline table starts on.
    expect(listed.stderr).toMatch(/warning: .*policy\.toml:2: accounts entry "typed\*" matches only/);
    const granted = runCli(['grant', 'inline', '--grant', 'other'], env);
    expect(granted.status, granted.stderr).toBe(0);
    expect(readFileSync(policy, 'utf8')).toContain('accounts = ["me\\u002a", "typed*"]');
    const after = runCli(['clients'], env);
    expect(after.stderr).not.toContain('"me*"');
    expect(after.stderr).toMatch(/accounts entry "typed\*" matches only/);
  });
});
