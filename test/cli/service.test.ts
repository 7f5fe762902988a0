import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';

// `entraclaw service` as a user meets it. HOME, XDG dirs and the runtime dir point into a temp dir and no
// bus address is passed on, so no run can reach (or enable anything in) the real user's service manager.
// Under /var/tmp: the cases are about a user whose files are where they normally are.
const root = mkdtempSync('/var/tmp/entraclaw-service-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function sandbox(extra: NodeJS.ProcessEnv = {}): { dir: string; env: NodeJS.ProcessEnv; unitFile: string } {
  const dir = join(root, `case-${n++}`);
  mkdirSync(dir);
  const env = isolatedEnv(dir, { DBUS_SESSION_BUS_ADDRESS: undefined, ...extra });
  return { dir, env, unitFile: join(dir, 'config', 'systemd', 'user', 'entraclaw.service') };
}

// A stand-in systemctl that logs its arguments and succeeds (to drive the paths a real user manager takes)
// or, like systemctl on a booted machine without a user bus, fails before touching anything.
// Listens on argv[1] for 20 s, long enough for the install that started it to see its socket answer.
const LISTENER =
  "require('net').createServer((c) => c.end()).listen(process.argv[1]); setTimeout(() => process.exit(), 20000)";

function fakeSystemctl(dir: string, noBus = false): { env: NodeJS.ProcessEnv; calls(): string[] } {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const log = join(dir, 'systemctl.log');
  const body = noBus
    ? `echo 'Failed to connect to bus: No medium found' >&2\nexit 1`
    : [
        `[ "$2" = show ] && printf 'ActiveState=active\\nSubState=running\\nUnitFileState=enabled\\n'`,
        // As a started agent would, something accepts connections on the socket (install waits for it).
        `[ "$2" = restart ] && mkdir -p "$XDG_RUNTIME_DIR/entraclaw" && (${JSON.stringify(process.execPath)} -e "${LISTENER}" "$XDG_RUNTIME_DIR/entraclaw/agent.sock" >/dev/null 2>&1 &)`,
        'exit 0',
      ].join('\n');
  writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> '${log}'\n${body}\n`, { mode: 0o755 });
  return {
    env: { PATH: `${bin}:${process.env.PATH}` },
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []),
  };
}

const hasSystemctl = spawnSync('systemctl', ['--version']).status === 0;

describe.runIf(process.platform === 'linux')('entraclaw service (systemd)', () => {
  it('install --dry-run --json prints the unit and the commands and writes nothing', () => {
    const { dir, env, unitFile } = sandbox();
    const r = runCli(['service', 'install', '--dry-run', '--json'], env);
    expect(r.status, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout.toString());
    expect(plan).toMatchObject({
      action: 'install',
      dryRun: true,
      manager: 'systemd',
      file: { path: unitFile, mode: '0644' },
    });
    expect(plan.file.contents).toContain(
      `ExecStart="${process.execPath}" --max-semi-space-size=1 "${CLI}" agent\n`,
    );
    expect(plan.file.contents).toContain('NoNewPrivileges=yes');
    expect(plan.commands.map((c: { argv: string[] }) => c.argv.join(' '))).toEqual([
      'systemctl --user daemon-reload',
      'systemctl --user enable entraclaw.service',
      'systemctl --user restart entraclaw.service',
    ]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('without --store (auto may fall back to the vault) it warns about the missing passphrase credential, and uses one that exists', () => {
    const { env } = sandbox();
    const cred = join(env.XDG_CONFIG_HOME!, 'entraclaw', 'passphrase.cred');
    const human = runCli(['service', 'install', '--dry-run'], env);
    expect(human.stderr).toContain('no --store: with auto (the default) the service uses the vault');
    expect(human.stderr).toContain(`without ${cred} its agent cannot open the vault (it will not start)`);
    const plan = JSON.parse(runCli(['service', 'install', '--dry-run', '--json'], env).stdout.toString());
    expect(plan.warnings.join('\n')).toContain(
      `without ${cred} its agent cannot open the vault (it will not start)`,
    );
    expect(plan.file.contents).not.toContain('LoadCredentialEncrypted');
    mkdirSync(join(env.XDG_CONFIG_HOME!, 'entraclaw'), { recursive: true });
    writeFileSync(cred, 'sealed');
    const withCred = JSON.parse(runCli(['service', 'install', '--dry-run', '--json'], env).stdout.toString());
    expect(withCred.warnings).toEqual([]);
    expect(withCred.file.contents).toContain('LoadCredentialEncrypted=');
    // A dry run writes no unit.
    expect(existsSync(join(env.XDG_CONFIG_HOME!, 'systemd'))).toBe(false);
  });

  it('install --dry-run without --json shows the same plan for a human', () => {
    const { dir, env, unitFile } = sandbox();
    const r = runCli(['service', 'install', '--dry-run'], env);
    expect(r.status, r.stderr).toBe(0);
    const out = r.stdout.toString();
    expect(out).toContain(`would write ${unitFile} (0644):`);
    expect(out).toContain('[Service]');
    expect(out).toContain('  systemctl --user daemon-reload\n');
    expect(readdirSync(dir)).toEqual([]);
  });

  it.runIf(hasSystemctl)(
    'install without a user manager writes the unit, then exits 5 naming the problem and the fix',
    () => {
      const { env, unitFile } = sandbox();
      const planned = JSON.parse(
        runCli(['service', 'install', '--dry-run', '--json'], env).stdout.toString(),
      );
      const r = runCli(['service', 'install'], env);
      expect(r.status, r.stderr).toBe(EXIT_CODES.unavailable);
      const wrote = r.stderr.indexOf(`wrote ${unitFile}`);
      const problem = r.stderr.indexOf('no systemd user manager');
      expect(wrote, r.stderr).toBeGreaterThanOrEqual(0);
      expect(problem, r.stderr).toBeGreaterThan(wrote);
      expect(r.stderr).toContain('log in with a systemd session or run `entraclaw agent` directly');
      expect(readFileSync(unitFile, 'utf8')).toBe(planned.file.contents);
      expect(statSync(unitFile).mode & 0o777).toBe(0o644);

      const j = runCli(['service', 'install', '--json'], env);
      expect(j.status).toBe(EXIT_CODES.unavailable);
      const err = JSON.parse(j.stderr.split('\n').find((l) => l.startsWith('{'))!).error;
      expect(err.code).toBe('unavailable');
      expect(err.message).toContain(unitFile);
    },
  );

  // The test session's private bus (scripts/with-keyring.sh) has no systemd on it, as a desktop-less
  // login with a D-Bus session but no user manager: systemctl fails activating org.freedesktop.systemd1.
  it.runIf(hasSystemctl && process.env.ENTRACLAW_IN_TEST_SESSION === '1')(
    'a session bus without systemd on it counts as no user manager: install exits 5, uninstall cleans up',
    () => {
      const { env, unitFile } = sandbox({ DBUS_SESSION_BUS_ADDRESS: process.env.DBUS_SESSION_BUS_ADDRESS });
      const r = runCli(['service', 'install'], env);
      expect(r.status, r.stderr).toBe(EXIT_CODES.unavailable);
      expect(r.stderr).toContain('no systemd user manager');
      expect(existsSync(unitFile)).toBe(true);
      const u = runCli(['service', 'uninstall'], env);
      expect(u.status, u.stderr).toBe(0);
      expect(existsSync(unitFile)).toBe(false);
    },
  );

  it('ENTRACLAW_STORE picks the store as --store does; --store wins', () => {
    const { env } = sandbox();
    const plan = (extra: string[], store?: string) =>
      JSON.parse(
        runCli(['service', 'install', '--dry-run', '--json', ...extra], {
          ...env,
          ...(store ? { ENTRACLAW_STORE: store } : {}),
        }).stdout.toString(),
      ).file.contents as string;
    expect(plan([], 'encrypted-file')).toContain(' agent --store "encrypted-file"');
    expect(plan(['--store', 'secret-service'], 'encrypted-file')).toContain(
      ' agent --store "secret-service"',
    );
    expect(plan([])).toMatch(/ agent\n/);
    const bad = runCli(['service', 'install', '--dry-run'], { ...env, ENTRACLAW_STORE: 'nope' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('ENTRACLAW_STORE');
    // and --help says so (it named only the config file and auto)
    const help = runCli(['service', 'install', '--help'], env).stdout.toString().replace(/\s+/g, ' ');
    expect(help).toContain('(default: $ENTRACLAW_STORE, else');
  });

  it('directories under /tmp get no warning: the unit has no private /tmp (no PrivateTmp=)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'entraclaw-service-tmp-'));
    try {
      const plan = JSON.parse(
        runCli(
          ['service', 'install', '--dry-run', '--json', '--store', 'secret-service'],
          isolatedEnv(dir, { DBUS_SESSION_BUS_ADDRESS: undefined }),
        ).stdout.toString(),
      );
      expect(plan.warnings.join('\n')).not.toContain('private /tmp');
      expect(plan.file.contents).not.toMatch(/^PrivateTmp=/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('status without a user manager still prints its report, then exits 5 saying the state is unknown', () => {
    const { dir, env: base, unitFile } = sandbox();
    const env = { ...base, ...fakeSystemctl(dir, true).env };
    const r = runCli(['service', 'status'], env);
    expect(r.status, r.stderr).toBe(EXIT_CODES.unavailable);
    expect(r.stdout.toString()).toContain(`file:    ${unitFile} (absent)`);
    expect(r.stdout.toString()).toContain('service: unknown (exit 1: Failed to connect to bus');
    expect(r.stderr).toContain('the service manager did not answer, so the state of the service is unknown');
    expect(r.stderr).toContain('hint: log in with a systemd session or run `entraclaw agent` directly');
    const j = runCli(['service', 'status', '--json'], env);
    expect(j.status).toBe(EXIT_CODES.unavailable);
    expect(JSON.parse(j.stdout.toString())).toMatchObject({ installed: false, reachable: false });
    expect(JSON.parse(j.stderr).error.code).toBe('unavailable');
    // Nothing was written by looking.
    expect(readdirSync(dir).sort()).toEqual(['bin', 'systemctl.log']);
  });

  it('uninstall without a user manager still removes the unit and its enablement link', () => {
    const { dir, env: base, unitFile } = sandbox();
    const env = { ...base, ...fakeSystemctl(dir, true).env };
    expect(runCli(['service', 'install'], env).status).toBe(EXIT_CODES.unavailable);
    const link = join(unitFile, '..', 'default.target.wants', 'entraclaw.service');
    mkdirSync(join(link, '..'));
    symlinkSync(unitFile, link);
    const r = runCli(['service', 'uninstall'], env);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(unitFile)).toBe(false);
    // lstat, not existsSync: a dangling link is exactly what must not be left behind.
    expect(() => lstatSync(link)).toThrow();
  });

  it('with a user manager: install enables and restarts, status reports, uninstall disables and removes', () => {
    const { dir, env, unitFile } = sandbox();
    const fake = fakeSystemctl(dir);
    const run = (args: string[]) => runCli(args, { ...env, ...fake.env });

    const install = run(['service', 'install', '--store', 'encrypted-file', '--json']);
    expect(install.status, install.stderr).toBe(0);
    // The shapes of the --dry-run plan: file.path, commands[].argv.
    expect(JSON.parse(install.stdout.toString())).toMatchObject({
      action: 'install',
      file: { path: unitFile, mode: '0644' },
      commands: [
        { argv: ['systemctl', '--user', 'daemon-reload'] },
        { argv: ['systemctl', '--user', 'enable', 'entraclaw.service'] },
        { argv: ['systemctl', '--user', 'restart', 'entraclaw.service'] },
      ],
    });
    expect(readFileSync(unitFile, 'utf8')).toContain(' agent --store "encrypted-file"\n');
    // No passphrase credential exists yet: the unit must not name one (systemd would refuse to start it).
    expect(readFileSync(unitFile, 'utf8')).not.toContain('LoadCredentialEncrypted');
    expect(install.stderr).toContain('systemd-creds encrypt');
    for (const d of ['config/entraclaw', 'data/entraclaw', 'state/entraclaw']) {
      expect(statSync(join(dir, d)).mode & 0o777).toBe(0o700);
    }
    // Then, until the agent's socket answers, only `show` (the state, for a unit failing to start).
    expect(fake.calls().slice(0, 3)).toEqual([
      '--user daemon-reload',
      '--user enable entraclaw.service',
      '--user restart entraclaw.service',
    ]);
    expect(
      fake
        .calls()
        .slice(3)
        .every((c) => c.startsWith('--user show entraclaw.service')),
    ).toBe(true);

    const status = JSON.parse(run(['service', 'status', '--json']).stdout.toString());
    expect(status).toMatchObject({
      installed: true,
      reachable: true,
      state: 'active (running)',
      enabled: 'enabled',
      socket: { path: join(dir, 'run', 'entraclaw', 'agent.sock'), reachable: true },
    });

    const uninstall = run(['service', 'uninstall', '--json']);
    expect(uninstall.status, uninstall.stderr).toBe(0);
    expect(existsSync(unitFile)).toBe(false);
    expect(JSON.parse(uninstall.stdout.toString())).toMatchObject({
      action: 'uninstall',
      file: { path: unitFile, removed: true },
      commands: [
        { argv: ['systemctl', '--user', 'disable', '--now', 'entraclaw.service'] },
        { argv: ['systemctl', '--user', 'daemon-reload'] },
      ],
    });
    expect(fake.calls().slice(-2)).toEqual([
      '--user disable --now entraclaw.service',
      '--user daemon-reload',
    ]);
  });

  it("status checks the socket agent.toml's [agent] socket names, where the service's agent listens", () => {
    const { dir, env } = sandbox({ ENTRACLAW_STORE: 'encrypted-file' });
    const fake = fakeSystemctl(dir);
    const sockDir = join(dir, 'sock');
    mkdirSync(sockDir, { mode: 0o700 });
    const socket = join(sockDir, 'agent.sock');
    mkdirSync(join(dir, 'config', 'entraclaw'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'config', 'entraclaw', 'agent.toml'), `[agent]\nsocket = "${socket}"\n`);
    // A real agent on that socket; status runs under it without the ENTRACLAW_SOCKET the agent sets for
    // its command, as from another shell.
    const r = runCli(
      [
        'agent',
        '--',
        'env',
        '-u',
        'ENTRACLAW_SOCKET',
        process.execPath,
        '--',
        CLI,
        'service',
        'status',
        '--json',
      ],
      { ...env, ...fake.env },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString()).socket).toEqual({ path: socket, reachable: true });
    // --socket still wins over the config.
    const other = join(dir, 'other.sock');
    const s = runCli(['service', 'status', '--json', '--socket', other], { ...env, ...fake.env });
    expect(JSON.parse(s.stdout.toString()).socket).toEqual({ path: other, reachable: false });
  });

  it("status ignores this shell's ENTRACLAW_SOCKET: the service's agent never sees it", () => {
    const { dir, env } = sandbox({ ENTRACLAW_STORE: 'encrypted-file' });
    const fake = fakeSystemctl(dir);
    const r = runCli(['service', 'status', '--json'], {
      ...env,
      ...fake.env,
      ENTRACLAW_SOCKET: join(dir, 'elsewhere.sock'),
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString()).socket.path).toBe(join(dir, 'run', 'entraclaw', 'agent.sock'));
  });

  it('uninstall --dry-run touches nothing', () => {
    const { dir, env, unitFile } = sandbox();
    const fake = fakeSystemctl(dir);
    runCli(['service', 'install'], { ...env, ...fake.env });
    const before = fake.calls().length;
    const r = runCli(['service', 'uninstall', '--dry-run'], { ...env, ...fake.env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toContain(`would remove ${unitFile}`);
    expect(existsSync(unitFile)).toBe(true);
    expect(fake.calls().length).toBe(before);
  });

  it('status and uninstall do not judge the store: ENTRACLAW_STORE=kernel-keyring or a typo in it does not stop them, and uninstall says nothing about the passphrase credential', () => {
    const { dir, env, unitFile } = sandbox();
    const fake = fakeSystemctl(dir);
    expect(runCli(['service', 'install', '--store', 'secret-service'], { ...env, ...fake.env }).status).toBe(
      0,
    );
    for (const store of ['kernel-keyring', 'nope']) {
      const run = (args: string[]) => runCli(args, { ...env, ...fake.env, ENTRACLAW_STORE: store });
      const status = run(['service', 'status', '--json']);
      expect(status.status, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout.toString())).toMatchObject({ installed: true });
      const plan = run(['service', 'uninstall', '--dry-run']);
      expect(plan.status, plan.stderr).toBe(0);
      expect(plan.stdout.toString()).toContain(`would remove ${unitFile}`);
      expect(plan.stderr).not.toContain('passphrase.cred');
      expect(
        JSON.parse(run(['service', 'uninstall', '--dry-run', '--json']).stdout.toString()).warnings,
      ).toEqual([]);
    }
    const removed = runCli(['service', 'uninstall'], {
      ...env,
      ...fake.env,
      ENTRACLAW_STORE: 'kernel-keyring',
    });
    expect(removed.status, removed.stderr).toBe(0);
    expect(existsSync(unitFile)).toBe(false);
  });

  it('refuses the kernel-keyring store and unknown stores as usage errors', () => {
    const { env } = sandbox();
    const kk = runCli(['service', 'install', '--store', 'kernel-keyring', '--dry-run'], env);
    expect(kk.status).toBe(EXIT_CODES.usage);
    expect(kk.stderr).toContain('KeyringMode=private');
    const bad = runCli(['service', 'install', '--store', 'nope', '--dry-run'], env);
    expect(bad.status).toBe(EXIT_CODES.usage);
    expect(bad.stderr).toContain('encrypted-file');
  });
});
