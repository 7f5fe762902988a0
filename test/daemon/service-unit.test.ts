import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { launchdPlist, systemdUnit } from '../../src/daemon/service-unit.js';
import type { EntraclawError } from '../../src/errors.js';
import type { Paths } from '../../src/lib/paths.js';
import { requireOrSkip } from '../support/context.js';

// The generated files are checked by the real parsers that will read them: systemd-analyze for the unit,
// Python's plistlib for the plist. Hand-rolled string checks alone would bless any quoting bug.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cliPath = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const hasPython = spawnSync('python3', ['--version']).status === 0;

function pathsUnder(base: string): Paths {
  return {
    config: join(base, '.config', 'entraclaw'),
    data: join(base, '.local', 'share', 'entraclaw'),
    state: join(base, '.local', 'state', 'entraclaw'),
    runtime: join(base, 'run', 'entraclaw'),
  };
}

let runs = 0;
/** Runs `systemd-analyze --user verify` on the unit; returns its status and the lines about our unit. */
function verify(unit: string): { status: number | null; complaints: string[]; stderr: string } {
  const at = join(dir, `verify-${runs++}`);
  // --user needs an existing private runtime directory to set up its (offline) manager.
  mkdirSync(join(at, 'run'), { recursive: true, mode: 0o700 });
  writeFileSync(join(at, 'entraclaw.service'), unit);
  const r = spawnSync('systemd-analyze', ['--user', 'verify', join(at, 'entraclaw.service')], {
    env: { PATH: process.env.PATH, HOME: join(at, 'home'), XDG_RUNTIME_DIR: join(at, 'run') },
    encoding: 'utf8',
    timeout: 30_000,
  });
  // Every warning about a line of ours is prefixed with the unit's file or name.
  const complaints = r.stderr.split('\n').filter((l) => l.includes('entraclaw.service'));
  return { status: r.status, complaints, stderr: r.stderr };
}

const HARDENING = [
  'NoNewPrivileges=yes',
  'RestrictAddressFamilies=AF_UNIX',
  'RestrictNamespaces=yes',
  'RestrictRealtime=yes',
  'LockPersonality=yes',
  'MemoryDenyWriteExecute=no',
  'SystemCallArchitectures=native',
  'RestrictSUIDSGID=yes',
  'KeyringMode=private',
  'UMask=0077',
  'LimitCORE=0',
  'MemoryMax=256M',
  'TasksMax=64',
  'Type=simple',
  'Restart=on-failure',
  'RestartSec=2',
  'StandardError=journal',
  'RuntimeDirectory=entraclaw',
  'RuntimeDirectoryMode=0700',
  'WantedBy=default.target',
];

describe('systemdUnit', () => {
  const home = join(dir, 'home');
  const unit = systemdUnit({ nodePath: process.execPath, cliPath, paths: pathsUnder(home), home });

  it('passes systemd-analyze --user verify without a single complaint', (ctx) => {
    requireOrSkip(ctx, hasAnalyze ? undefined : 'systemd-analyze is not installed (Debian package systemd)');
    const r = verify(unit);
    expect(r.complaints, r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
  });

  it('runs `node cli agent` with the hardening options, paths under home as %h', () => {
    const lines = unit.split('\n');
    expect(lines).toContain(`ExecStart="${process.execPath}" --max-semi-space-size=1 "${cliPath}" agent`);
    for (const l of HARDENING) expect(lines).toContain(l);
    expect(lines).toContain('Environment="XDG_STATE_HOME=%h/.local/state"');
    expect(lines).toContain('Environment=DBUS_SESSION_BUS_ADDRESS=unix:path=%t/bus');
    expect(unit).not.toContain('LoadCredentialEncrypted');
    expect(unit).not.toContain(home);
  });

  it('quotes paths with spaces, %, $, " and \\ so systemd reads them back intact', (ctx) => {
    requireOrSkip(ctx, hasAnalyze ? undefined : 'systemd-analyze is not installed (Debian package systemd)');
    const odd = join(dir, 'with space', '100% $HOME "q" b\\s');
    const nodeDir = join(dir, 'node space', '50% $x');
    mkdirSync(odd, { recursive: true });
    mkdirSync(nodeDir, { recursive: true });
    const node = join(nodeDir, 'node bin');
    symlinkSync(process.execPath, node);
    writeFileSync(join(odd, 'main.js'), '');
    const unit = systemdUnit({
      nodePath: node,
      cliPath: join(odd, 'main.js'),
      paths: pathsUnder(odd),
      socketPath: join(odd, 'agent.sock'),
      storeName: 'encrypted-file',
      passphraseCredential: join(odd, 'pass phrase.cred'),
    });
    const r = verify(unit);
    expect(r.complaints, r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(unit).toContain('agent --store "encrypted-file" --socket "');
    expect(unit).toContain('$$HOME'); // ExecStart= would expand a bare $HOME in an argument
    expect(unit).toContain('LoadCredentialEncrypted=entraclaw.passphrase:');

    // The check has teeth: the same unit with the node path left unquoted is rejected.
    const broken = unit.replace(`"${node.replace(/%/g, '%%')}"`, node);
    expect(broken).not.toBe(unit);
    expect(verify(broken).status).not.toBe(0);
  });

  it('refuses a node path systemd would refuse to execute', () => {
    expect(() => systemdUnit({ nodePath: '/opt/no"de/node', cliPath, paths: pathsUnder(home) })).toThrow(
      /quotes or backslashes/,
    );
  });

  it('refuses control characters (a newline would inject a directive) and relative paths', () => {
    const base = { nodePath: process.execPath, cliPath, paths: pathsUnder(home) };
    for (const bad of [
      { ...base, cliPath: `${cliPath}\nExecStartPre=/bin/sh -c evil` },
      { ...base, socketPath: 'relative/agent.sock' },
    ]) {
      expect(() => systemdUnit(bad)).toThrow();
      try {
        systemdUnit(bad);
      } catch (err) {
        expect((err as EntraclawError).code).toBe('usage');
        // Every CLI error says what to do (docs/exit-codes.md).
        expect((err as EntraclawError).hint).toBeTruthy();
      }
    }
  });

  it('writes paths outside home literally', () => {
    const unit = systemdUnit({ nodePath: process.execPath, cliPath, paths: pathsUnder('/srv/x'), home });
    expect(unit).toContain('Environment="XDG_CONFIG_HOME=/srv/x/.config"');
  });

  it("keeps the broker in the session's user namespace: no PrivateUsers= nor an option that implies it", () => {
    // A broker in a namespace of its own cannot read its callers' /proc/PID/exe (broker-identity.test.ts).
    const directives = unit.split('\n').filter((l) => !l.startsWith('#'));
    for (const implied of [
      'PrivateUsers=',
      'ProtectSystem=',
      'ProtectHome=',
      'PrivateTmp=',
      'PrivateDevices=',
      'ProtectKernelTunables=',
      'ProtectKernelModules=',
      'ProtectKernelLogs=',
      'ProtectControlGroups=',
      'ProtectClock=',
      'ProtectHostname=',
      'ReadWritePaths=',
      'ReadOnlyPaths=',
      'InaccessiblePaths=',
      'TemporaryFileSystem=',
      'BindPaths=',
    ]) {
      expect(
        directives.filter((l) => l.startsWith(implied)),
        implied,
      ).toEqual([]);
    }
  });
});

describe('launchdPlist', () => {
  const home = join(dir, 'Users', 'a&b <c> "d" \'e\'');
  const paths: Paths = {
    config: join(home, '.config', 'entraclaw'),
    data: join(home, 'Library', 'Application Support', 'entraclaw'),
    state: join(home, 'Library', 'Application Support', 'entraclaw'),
    runtime: join(home, 'Library', 'Application Support', 'entraclaw'),
  };
  const nodePath = join(home, 'bin', 'node & <friends>');
  const plist = launchdPlist({ nodePath, cliPath, paths, home, storeName: 'macos-keychain' });
  const file = join(dir, 'agent.plist');
  writeFileSync(file, plist);

  it('parses with plistlib and every value, special characters included, round-trips', (ctx) => {
    requireOrSkip(ctx, hasPython ? undefined : 'python3 is not installed');
    const py = 'import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1],"rb"))))';
    const r = spawnSync('python3', ['-c', py, file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const logs = join(home, 'Library', 'Logs', 'entraclaw');
    expect(JSON.parse(r.stdout)).toEqual({
      Label: 'dev.entraclaw.agent',
      ProgramArguments: [nodePath, '--max-semi-space-size=1', cliPath, 'agent', '--store', 'macos-keychain'],
      EnvironmentVariables: { XDG_CONFIG_HOME: join(home, '.config') },
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: 10,
      ProcessType: 'Background',
      Umask: 0o077,
      StandardOutPath: join(logs, 'agent.out.log'),
      StandardErrorPath: join(logs, 'agent.err.log'),
    });
  });

  it('escapes XML special characters instead of emitting them raw', () => {
    expect(plist).toContain('node &amp; &lt;friends&gt;');
    expect(plist).not.toMatch(/<string>[^<]*&(?!amp;|lt;|gt;|quot;|apos;)/);
  });

  it('takes another label', () => {
    expect(launchdPlist({ nodePath, cliPath, paths, home, label: 'org.example.broker' })).toContain(
      '<string>org.example.broker</string>',
    );
  });

  it.runIf(process.platform === 'darwin')('passes plutil -lint', () => {
    expect(spawnSync('plutil', ['-lint', file]).status).toBe(0);
  });
});
