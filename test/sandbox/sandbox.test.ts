import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { SDK_URL } from '../support/broker.js';
import { CLI, isolatedEnv } from '../support/cli.js';
import {
  bwrapMissing,
  describeIfProvided,
  inTestSession,
  randomName,
  requireOrSkip,
  yamaForbidsAttach,
} from '../support/context.js';
import { readableBuild } from '../support/readable-build.js';
import { PLAIN_PROCESS_PROBE, sameUserProbe } from '../support/same-user-probe.js';

// `entraclaw sandbox` end to end: real bubblewrap, the real Secret Service (gnome-keyring, from
// scripts/with-keyring.sh), a real kernel-keyring key and a real vault. The sandboxed command runs the
// real `secret-tool`/`security` command lines and reports each result; the profile grants exactly one
// item, read-only. Where bwrap, keyctl or the keyring session is missing the suite is skipped, saying
// which; under CI (CI=true) it fails instead.
//
// The fixture lives under /var/tmp, not /tmp: /tmp is hidden wholesale inside the sandbox, which would
// make "the vault is not visible" true for the wrong reason.

const haveKeyctl = spawnSync('keyctl', ['--version']).status === 0;
/** What this machine lacks for the end-to-end tests, if anything (under CI they then fail, naming it). */
const missing =
  bwrapMissing() ??
  (!haveKeyctl
    ? 'keyctl is not installed (Debian package keyutils)'
    : !inTestSession
      ? 'no Secret Service to test against: run under scripts/with-keyring.sh, as make test does'
      : undefined);
const run = missing === undefined;

/** Polls `check` every 20 ms until it holds (the test's own timeout bounds the wait). */
async function waitUntil(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** What one command inside the sandbox did. */
interface Outcome {
  rc: number;
  stdout: string;
  stderr: string;
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A script that runs each named command line and prints "name rc base64(stdout) base64(stderr)". */
function checkScript(checks: Record<string, string>): string {
  const lines = [
    // eval, not sh -c: the tools' parent is then this script file, as for an agent's own script.
    'run() { name=$1; shift; eval "$1" </dev/null >/tmp/o 2>/tmp/e; rc=$?;',
    '  printf "%s %s %s %s\\n" "$name" "$rc" "$(base64 -w0 </tmp/o)" "$(base64 -w0 </tmp/e)"; }',
  ];
  for (const [name, cmd] of Object.entries(checks)) lines.push(`run ${name} ${sq(cmd)}`);
  return `${lines.join('\n')}\n`;
}

function parseOutcomes(stdout: string): Record<string, Outcome> {
  const out: Record<string, Outcome> = {};
  for (const line of stdout.split('\n')) {
    const [name, rc, o, e] = line.split(' ');
    if (!name || rc === undefined) continue;
    out[name] = {
      rc: Number(rc),
      stdout: Buffer.from(o ?? '', 'base64').toString(),
      stderr: Buffer.from(e ?? '', 'base64').toString(),
    };
  }
  return out;
}

describeIfProvided('entraclaw sandbox (bubblewrap, real stores)', missing, () => {
  const root = run ? mkdtempSync('/var/tmp/entraclaw-sandbox-test-') : '';
  const project = run ? mkdtempSync(join(tmpdir(), 'entraclaw-sandbox-project-')) : '';
  const home = join(root, 'home');
  const pass = join(root, 'passphrase');
  const profile = join(root, 'agent.toml');
  // The granted item, another account of the same service, another service, a granted but absent item.
  const S = randomName('sbx-svc');
  const A = 'agent';
  const S2 = randomName('sbx-other');
  const GRANTED = `granted-${randomName('v')}`;
  const SAME_SERVICE = `sibling-${randomName('v')}`;
  const OTHER = `other-${randomName('v')}`;
  const KERNEL = `kernel-${randomName('v')}`;
  const VAULT = `vault-${randomName('v')}`;
  let keyId = '';

  const baseEnv = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: home,
    DBUS_SESSION_BUS_ADDRESS: process.env.DBUS_SESSION_BUS_ADDRESS,
    XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR,
    ENTRACLAW_PASSPHRASE_FILE: pass,
  });

  function cli(args: string[], input = '', env = baseEnv()) {
    const r = spawnSync(process.execPath, ['--', CLI, ...args], { env, input, timeout: 30_000 });
    return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  /** `entraclaw sandbox` on the Secret Service with `options`, running `command`. */
  const sandboxCli = (options: string[], command: string[]) =>
    cli(['sandbox', '--store', 'secret-service', ...options, '--', ...command]);

  function set(store: string, service: string, account: string, value: string, env = baseEnv()): void {
    const r = cli(['secret', 'set', service, account, '--store', store], value, env);
    expect(r.status, r.stderr).toBe(0);
  }

  /** The CLI's argv for `sandbox` on the Secret Service with the test profile, in `dir`, running `command`. */
  const sandboxArgv = (command: string[], dir = project) => [
    CLI,
    'sandbox',
    '--store',
    'secret-service',
    '--profile',
    profile,
    '--project',
    dir,
    '--',
    ...command,
  ];

  /**
   * Runs the checks inside `entraclaw sandbox`. `loginSession` runs it the way a desktop login does:
   * in a session keyring that links the user keyring (pam_keyinit), which the sandbox inherits.
   */
  function sandboxed(
    checks: Record<string, string>,
    opts: { env?: NodeJS.ProcessEnv; loginSession?: boolean; projectDir?: string } = {},
  ) {
    const dir = opts.projectDir ?? project;
    const script = join(dir, `check-${randomName('s')}.sh`);
    writeFileSync(script, checkScript(checks));
    const argv = sandboxArgv(['sh', script], dir);
    const r = opts.loginSession
      ? spawnSync(
          'keyctl',
          [
            'session',
            '-',
            'sh',
            '-c',
            'keyctl link @u @s >/dev/null && exec "$@"',
            'sh',
            process.execPath,
            ...argv,
          ],
          { env: opts.env ?? baseEnv(), timeout: 60_000 },
        )
      : spawnSync(process.execPath, argv, { env: opts.env ?? baseEnv(), timeout: 60_000 });
    rmSync(script, { force: true });
    return { status: r.status, outcomes: parseOutcomes(r.stdout.toString()), stderr: r.stderr.toString() };
  }

  beforeAll(() => {
    mkdirSync(home, { recursive: true });
    writeFileSync(pass, 'sandbox test passphrase\n', { mode: 0o600 });
    writeFileSync(
      profile,
      `# one item, read-only\n[credential_access]\nservices = [${JSON.stringify(S)}]\naccounts = ["${A}", "absent"]\noperations = ["read"]\n`,
    );
    set('secret-service', S, A, GRANTED);
    set('secret-service', S, 'sibling', SAME_SERVICE);
    set('secret-service', S2, A, OTHER);
    set('kernel-keyring', S, A, KERNEL);
    set('encrypted-file', S, A, VAULT);
    const found = spawnSync('keyctl', ['search', '@u', 'user', `entraclaw:${S}/${A}`]);
    keyId = found.stdout.toString().trim();
    expect(keyId, found.stderr.toString()).toMatch(/^\d+$/);
  }, 60_000);

  afterAll(() => {
    if (!run) return;
    for (const [svc, acct] of [
      [S, A],
      [S, 'sibling'],
      [S2, A],
    ] as const) {
      cli(['secret', 'rm', svc, acct, '--store', 'secret-service']);
    }
    cli(['secret', 'rm', S, A, '--store', 'kernel-keyring']);
    rmSync(root, { recursive: true, force: true });
    rmSync(project, { recursive: true, force: true });
  });

  describe('through the shims, only the granted item', () => {
    let r: ReturnType<typeof sandboxed>;
    beforeAll(() => {
      r = sandboxed({
        st_granted: `secret-tool lookup service ${sq(S)} account ${A}`,
        sec_granted: `security find-generic-password -s ${sq(S)} -a ${A} -w`,
        st_sibling: `secret-tool lookup service ${sq(S)} account sibling`,
        sec_sibling: `security find-generic-password -s ${sq(S)} -a sibling -w`,
        st_other: `secret-tool lookup service ${sq(S2)} account ${A}`,
        sec_other: `security find-generic-password -s ${sq(S2)} -a ${A} -w`,
        st_absent: `secret-tool lookup service ${sq(S)} account absent`,
        sec_absent: `security find-generic-password -s ${sq(S)} -a absent -w`,
        sec_no_account: `security find-generic-password -s ${sq(S)} -w`,
        st_store: `printf hijacked | secret-tool store --label x service ${sq(S)} account ${A}`,
        sec_add: `security add-generic-password -U -s ${sq(S)} -a ${A} -w hijacked`,
        sec_delete: `security delete-generic-password -s ${sq(S)} -a ${A}`,
        which: 'command -v secret-tool; command -v security',
      });
    }, 60_000);

    it('the sandboxed command exits normally, and its stderr carries no broker chatter', () => {
      expect(r.status, r.stderr).toBe(0);
      expect(Object.keys(r.outcomes)).toHaveLength(13);
      expect(r.stderr).not.toMatch(/entraclaw-agent (info|debug)/);
    });

    it('the shims come first on PATH', () => {
      expect(r.outcomes.which!.stdout).toBe('/run/entraclaw/bin/secret-tool\n/run/entraclaw/bin/security\n');
    });

    it('secret-tool lookup returns the granted item', () => {
      expect(r.outcomes.st_granted).toEqual({ rc: 0, stdout: GRANTED, stderr: '' });
    });

    it('security find-generic-password -w returns the granted item', () => {
      expect(r.outcomes.sec_granted).toEqual({ rc: 0, stdout: `${GRANTED}\n`, stderr: '' });
    });

    it('ungranted items are refused with the real tools’ codes (secret-tool 1; security 51 errSecAuthFailed)', () => {
      for (const name of ['st_sibling', 'st_other']) {
        expect(r.outcomes[name]!.rc, r.outcomes[name]!.stderr).toBe(1);
        expect(r.outcomes[name]!.stdout, name).toBe('');
      }
      for (const name of ['sec_sibling', 'sec_other']) {
        expect(r.outcomes[name]!.rc, r.outcomes[name]!.stderr).toBe(51);
        expect(r.outcomes[name]!.stdout, name).toBe('');
      }
      const all = JSON.stringify(r.outcomes);
      expect(all).not.toContain(SAME_SERVICE);
      expect(all).not.toContain(OTHER);
    });

    it('a refusal says which operation to add to the profile, for which service', () => {
      expect(r.outcomes.sec_other!.stderr).toContain(
        `add "read" to the operations of a [credential_access] entry whose services or service_prefixes cover ${JSON.stringify(S2)}`,
      );
      // Without -a the shim lists the service first: a read-only profile refuses that, and says so.
      expect(r.outcomes.sec_no_account!.rc, r.outcomes.sec_no_account!.stderr).toBe(51);
      expect(r.outcomes.sec_no_account!.stderr).toContain(
        `add "list" to the operations of a [credential_access] entry whose services or service_prefixes cover ${JSON.stringify(S)}`,
      );
    });

    it('a granted item that does not exist is "not found" (secret-tool 1 silent; security 44)', () => {
      expect(r.outcomes.st_absent).toEqual({ rc: 1, stdout: '', stderr: '' });
      expect(r.outcomes.sec_absent!.rc).toBe(44);
      expect(r.outcomes.sec_absent!.stderr).toContain('could not be found');
    });

    it('a read-only grant cannot write or delete, and the item is unchanged', () => {
      expect(r.outcomes.st_store!.rc, r.outcomes.st_store!.stderr).toBe(1);
      expect(r.outcomes.sec_add!.rc, r.outcomes.sec_add!.stderr).toBe(51);
      expect(r.outcomes.sec_delete!.rc, r.outcomes.sec_delete!.stderr).toBe(51);
      expect(cli(['secret', 'get', S, A, '--store', 'secret-service']).stdout).toBe(GRANTED);
    });
  });

  describe('`sh -c` inline code (how agents run tools) gets the profile, and no more', () => {
    it('secret-tool and security from sh -c: the granted item, nothing else; the audit says why', () => {
      const script = [
        `secret-tool lookup service ${sq(S)} account ${A}; echo " st=$?"`,
        `security find-generic-password -s ${sq(S)} -a ${A} -w; echo "sec=$?"`,
        `secret-tool lookup service ${sq(S2)} account ${A}; echo "st_other=$?"`,
        `security find-generic-password -s ${sq(S)} -a sibling -w; echo "sec_sibling=$?"`,
      ].join('\n');
      const r = sandboxCli(['--profile', profile, '--project', project], ['sh', '-c', script]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${GRANTED} st=0\n${GRANTED}\nsec=0\nst_other=1\nsec_sibling=51\n`);
      expect(r.stdout + r.stderr).not.toContain(OTHER);
      expect(r.stdout + r.stderr).not.toContain(SAME_SERVICE);
      // A refusal points at the profile, not at policy.toml's `entraclaw grant`.
      expect(r.stderr).toContain('sandbox profile does not grant it');
      const auditDir = join(home, '.local', 'state', 'entraclaw', 'sandbox-audit');
      // One log per run, and nothing else left behind (its lock goes with the run).
      expect(readdirSync(auditDir).every((f) => f.endsWith('.jsonl'))).toBe(true);
      const lines = readdirSync(auditDir).flatMap((f) =>
        readFileSync(join(auditDir, f), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { decision: string; reason?: string; service?: string }),
      );
      const granted = lines.filter((l) => l.decision === 'granted' && l.service === S);
      expect(granted.some((l) => /caller not pinned: .*inline code/.test(l.reason ?? ''))).toBe(true);
      expect(JSON.stringify(lines)).not.toContain(GRANTED);
      // Each run's log is a chain of its own, which `audit --file` verifies.
      for (const f of readdirSync(auditDir)) {
        const v = cli(['audit', '--file', join(auditDir, f), 'verify']);
        expect(v.status, v.stderr).toBe(0);
        expect(v.stdout).toMatch(/^audit log intact: [1-9]\d* lines in 1 file\(s\)\n$/);
      }
    });
  });

  it('without a profile nothing is granted, and a refusal says to give one (there is no entry to add to)', () => {
    const r = sandboxCli(
      ['--project', project],
      ['sh', '-c', `security find-generic-password -s ${sq(S)} -a ${A} -w; echo "sec=$?"`],
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('sec=51\n');
    expect(r.stderr).toContain(
      `the sandbox grants nothing; run it with --profile FILE whose [credential_access] lists ${JSON.stringify(S)} in services and "read" in operations`,
    );
    expect(r.stdout + r.stderr).not.toContain(GRANTED);
  }, 60_000);

  it("the user's daemon socket is masked wherever ENTRACLAW_SOCKET puts it; /proc/keys names no key", () => {
    // Outside the hidden directories, as `entraclaw agent --socket /var/tmp/...` would put it. The daemon
    // also refuses callers from the sandbox's user namespace (test/daemon/broker-identity.test.ts).
    const elsewhere = join(root, 'elsewhere');
    mkdirSync(elsewhere, { recursive: true, mode: 0o700 });
    const socket = join(elsewhere, 'agent.sock');
    writeFileSync(socket, 'not masked');
    const r = sandboxed(
      { main_socket: `cat ${sq(socket)}`, proc_keys: 'cat /proc/keys' },
      { env: { ...baseEnv(), ENTRACLAW_SOCKET: socket } },
    );
    expect(r.status, r.stderr).toBe(0);
    // /dev/null bound over them, on a nodev mount: nothing to read, let alone connect to.
    expect(r.outcomes.main_socket!.stdout).toBe('');
    expect(r.outcomes.main_socket!.rc).not.toBe(0);
    expect(r.outcomes.proc_keys!.stdout).toBe('');
    expect(readFileSync('/proc/keys', 'utf8')).toContain(`entraclaw:${S}/${A}`);
  }, 60_000);

  describe('everything else is out of reach', () => {
    let r: ReturnType<typeof sandboxed>;
    const vault = join(home, '.local', 'share', 'entraclaw', 'vault.ecv');
    const config = join(home, '.config', 'entraclaw');
    beforeAll(() => {
      expect(existsSync(vault)).toBe(true);
      mkdirSync(config, { recursive: true });
      writeFileSync(join(config, 'policy.toml'), '');
      r = sandboxed({
        abs_secret_tool: `/usr/bin/secret-tool lookup service ${sq(S)} account ${A}`,
        dbus_send:
          'dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets org.freedesktop.DBus.Peer.Ping',
        bus_env: 'env | grep ^DBUS_ || echo unset',
        bus_socket: `test -S ${sq((process.env.DBUS_SESSION_BUS_ADDRESS ?? '').replace(/^unix:path=([^,;]*).*$/, '$1'))}`,
        keyring_control: `test -e ${sq(`${process.env.XDG_RUNTIME_DIR}/keyring/control`)}`,
        keyctl_print: `keyctl pipe ${keyId}`,
        keyctl_search: `keyctl search @u user ${sq(`entraclaw:${S}/${A}`)}`,
        vault_visible: `test -e ${sq(vault)}`,
        vault_cat: `cat ${sq(vault)}`,
        config_ls: `ls ${sq(config)}`,
        passphrase: `cat ${sq(pass)}`,
        // Run by root (as CI is), the command must not keep capabilities that could lift the masks.
        caps: 'grep ^CapEff: /proc/self/status',
        umount_tmp: 'umount -l /tmp',
        umount_home: 'umount -l "$HOME"',
        home_ls: 'ls -A "$HOME"',
        home_var: 'printf %s "$HOME"',
        project_write: `echo written-inside > ${sq(join(project, 'out.txt'))} && cat ${sq(join(project, 'out.txt'))}`,
        entraclaw_env: 'env | grep ^ENTRACLAW_',
        // What an agent outside a sandbox can do (README, out of scope): approve itself in policy.toml.
        // Last, as it writes into the sandbox's $HOME.
        policy_write: `mkdir -p ${sq(config)} && printf '[[client]]\\nname = "self"\\n' >> ${sq(join(config, 'policy.toml'))}`,
      });
    }, 60_000);

    it('the real secret-tool by absolute path cannot reach the Secret Service', () => {
      expect(r.status, r.stderr).toBe(0);
      expect(r.outcomes.abs_secret_tool!.rc).not.toBe(0);
      expect(r.outcomes.abs_secret_tool!.stdout).toBe('');
    });

    it('dbus-send --session fails: no bus address, no bus socket, no keyring control socket', () => {
      expect(r.outcomes.dbus_send!.rc).not.toBe(0);
      expect(r.outcomes.bus_env!.stdout).toBe('unset\n');
      expect(r.outcomes.bus_socket!.rc).not.toBe(0);
      expect(r.outcomes.keyring_control!.rc).not.toBe(0);
    });

    it('the kernel keyring key is not readable or findable', () => {
      expect(r.outcomes.keyctl_print!.rc).not.toBe(0);
      expect(r.outcomes.keyctl_print!.stdout).not.toContain(KERNEL);
      expect(r.outcomes.keyctl_search!.rc).not.toBe(0);
    });

    it('the vault file, the passphrase file and ~/.config/entraclaw are not visible', () => {
      expect(r.outcomes.vault_visible!.rc).not.toBe(0);
      expect(r.outcomes.vault_cat!.rc).not.toBe(0);
      expect(r.outcomes.config_ls!.rc).not.toBe(0);
      expect(r.outcomes.passphrase!.rc).not.toBe(0);
      expect(r.outcomes.passphrase!.stdout).toBe('');
    });

    it('an agent cannot approve itself: what it writes as policy.toml never reaches the real one', () => {
      // The write itself works: it lands in the sandbox's own empty home, gone when the sandbox ends.
      expect(r.outcomes.policy_write!.rc, r.outcomes.policy_write!.stderr).toBe(0);
      expect(readFileSync(join(config, 'policy.toml'), 'utf8')).toBe('');
    });

    it('holds no capability, so the masks cannot be unmounted (even when entraclaw runs as root)', () => {
      expect(r.outcomes.caps!.stdout).toBe('CapEff:\t0000000000000000\n');
      expect(r.outcomes.umount_tmp!.rc).not.toBe(0);
      expect(r.outcomes.umount_home!.rc).not.toBe(0);
    });

    it('$HOME is empty (and still named)', () => {
      expect(r.outcomes.home_ls).toEqual({ rc: 0, stdout: '', stderr: '' });
      expect(r.outcomes.home_var!.stdout).toBe(home);
    });

    it('the project directory is writable, and the write lands outside', () => {
      expect(r.outcomes.project_write).toEqual({ rc: 0, stdout: 'written-inside\n', stderr: '' });
      expect(readFileSync(join(project, 'out.txt'), 'utf8')).toBe('written-inside\n');
    });

    it('only ENTRACLAW_SOCKET is set inside', () => {
      expect(r.outcomes.entraclaw_env!.stdout).toBe('ENTRACLAW_SOCKET=/run/entraclaw/agent.sock\n');
    });

    it('nothing inside ever printed a secret it was not granted', () => {
      const all = JSON.stringify(r.outcomes) + r.stderr;
      for (const v of [KERNEL, VAULT, SAME_SERVICE, OTHER, 'sandbox test passphrase'])
        expect(all).not.toContain(v);
    });
  });

  describe('a login session keyring (pam_keyinit) does not leak the kernel keyring', () => {
    it('outside the sandbox that session can read the key; inside it cannot', () => {
      const control = spawnSync('keyctl', [
        'session',
        '-',
        'sh',
        '-c',
        `keyctl link @u @s >/dev/null && keyctl pipe ${keyId}`,
      ]);
      expect(control.stdout.toString()).toContain(KERNEL);
      const r = sandboxed(
        { keyctl_print: `keyctl pipe ${keyId}`, keyctl_show: 'keyctl show @s' },
        { loginSession: true },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(r.outcomes.keyctl_print!.rc).not.toBe(0);
      expect(r.outcomes.keyctl_print!.stdout).not.toContain(KERNEL);
      expect(r.outcomes.keyctl_print!.stderr).toMatch(/Operation not permitted/);
      expect(r.outcomes.keyctl_show!.rc).not.toBe(0);
    });
  });

  describe('Entraclaw and keyring files outside $HOME and /tmp', () => {
    it('are hidden wherever XDG_*_HOME puts them, even with --project set to their parent directory', () => {
      const xdg = {
        XDG_CONFIG_HOME: join(root, 'xdg-config'),
        XDG_DATA_HOME: join(root, 'xdg-data'),
        XDG_STATE_HOME: join(root, 'xdg-state'),
      };
      const env = { ...baseEnv(), ...xdg };
      set('encrypted-file', S, A, VAULT, env);
      const vault = join(xdg.XDG_DATA_HOME, 'entraclaw', 'vault.ecv');
      mkdirSync(join(xdg.XDG_DATA_HOME, 'keyrings'), { recursive: true });
      writeFileSync(join(xdg.XDG_DATA_HOME, 'keyrings', 'login.keyring'), 'keyring bytes');
      mkdirSync(join(xdg.XDG_CONFIG_HOME, 'entraclaw'), { recursive: true });
      writeFileSync(join(xdg.XDG_CONFIG_HOME, 'entraclaw', 'policy.toml'), '');
      writeFileSync(join(root, 'notes.txt'), 'project file');
      expect(existsSync(vault)).toBe(true);
      for (const projectDir of [project, root]) {
        const r = sandboxed(
          {
            vault: `cat ${sq(vault)}`,
            keyrings: `ls ${sq(join(xdg.XDG_DATA_HOME, 'keyrings'))}`,
            config: `ls ${sq(join(xdg.XDG_CONFIG_HOME, 'entraclaw'))}`,
            passphrase: `cat ${sq(pass)}`,
            notes: `cat ${sq(join(root, 'notes.txt'))}`,
          },
          { env, projectDir },
        );
        expect(r.status, r.stderr).toBe(0);
        expect(r.outcomes.vault!.rc, projectDir).not.toBe(0);
        expect(r.outcomes.keyrings!.stdout, projectDir).toBe('');
        expect(r.outcomes.config!.stdout, projectDir).toBe('');
        expect(r.outcomes.passphrase!.stdout, projectDir).toBe('');
        // The rest of the fixture stays as visible as the rest of the system.
        expect(r.outcomes.notes!.stdout, projectDir).toBe('project file');
      }
    });

    it('that do not exist yet cannot be planted by a command that may write their parent (--project ~)', () => {
      const fresh = join(root, 'fresh-home');
      mkdirSync(fresh);
      const env = { ...baseEnv(), HOME: fresh };
      const planted = {
        policy: join(fresh, '.config', 'entraclaw', 'policy.toml'),
        agent: join(fresh, '.config', 'entraclaw', 'agent.toml'),
        data: join(fresh, '.local', 'share', 'entraclaw', 'vault.ecv'),
        state: join(fresh, '.local', 'state', 'entraclaw', 'pending.json'),
        keyring: join(fresh, '.local', 'share', 'keyrings', 'login.keyring'),
      };
      const plant = (file: string) => `mkdir -p ${sq(join(file, '..'))} && echo planted > ${sq(file)}`;
      const r = sandboxed(
        {
          ...Object.fromEntries(Object.entries(planted).map(([k, f]) => [k, plant(f)])),
          notes: `echo mine > ${sq(join(fresh, 'notes.txt'))}`,
        },
        { env, projectDir: fresh },
      );
      expect(r.status, r.stderr).toBe(0);
      for (const [what, file] of Object.entries(planted)) {
        expect(existsSync(file), `${what}: ${file}`).toBe(false);
      }
      // The project itself is written through, so the masks are what stopped the plants.
      expect(readFileSync(join(fresh, 'notes.txt'), 'utf8')).toBe('mine\n');

      const missing = join(fresh, 'passphrase-to-be');
      const refused = cli(['sandbox', '--store', 'secret-service', '--project', fresh, '--', 'true'], '', {
        ...env,
        ENTRACLAW_PASSPHRASE_FILE: missing,
      });
      expect(refused.status, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`the passphrase file ${missing} does not exist`);
      expect(existsSync(missing)).toBe(false);
    });

    it('cannot be carried off by renaming a directory above them, for this run or the next', () => {
      const fresh = join(root, 'rename-home');
      mkdirSync(fresh);
      const env = { ...baseEnv(), HOME: fresh };
      set('encrypted-file', S, A, VAULT, env);
      mkdirSync(join(fresh, '.local', 'bin'), { recursive: true });
      const moves = {
        local: `mv ${sq(join(fresh, '.local'))} ${sq(join(fresh, 'moved-local'))}`,
        share: `mv ${sq(join(fresh, '.local', 'share'))} ${sq(join(fresh, 'moved-share'))}`,
        config: `mv ${sq(join(fresh, '.config'))} ${sq(join(fresh, 'moved-config'))}`,
        // Beside the masks, the directories stay as writable as the project.
        bin: `touch ${sq(join(fresh, '.local', 'bin', 'tool'))}`,
      };
      const r = sandboxed(moves, { env, projectDir: fresh });
      expect(r.status, r.stderr).toBe(0);
      for (const what of ['local', 'share', 'config'] as const) {
        expect(r.outcomes[what]!.rc, what).not.toBe(0);
        expect(r.outcomes[what]!.stderr, what).toMatch(/busy/i);
      }
      expect(r.outcomes.bin!.rc).toBe(0);
      expect(existsSync(join(fresh, '.local', 'share', 'entraclaw', 'vault.ecv'))).toBe(true);
      expect(existsSync(join(fresh, 'moved-local'))).toBe(false);
      // And so the next run still hides the vault.
      const next = sandboxed(
        { vault: `cat ${sq(join(fresh, '.local', 'share', 'entraclaw', 'vault.ecv'))}` },
        { env, projectDir: fresh },
      );
      expect(next.outcomes.vault!.rc).not.toBe(0);
    });

    it('an fd left open by whatever started entraclaw does not reach the command', () => {
      const vault = join(home, '.local', 'share', 'entraclaw', 'vault.ecv');
      const config = join(home, '.config');
      mkdirSync(config, { recursive: true });
      const script = join(project, `fds-${randomName('s')}.sh`);
      writeFileSync(
        script,
        checkScript({ file: 'head -c 8 /proc/self/fd/201', dir: 'ls /proc/self/fd/200/' }),
      );
      try {
        // As a shell leaves them: `exec 201<file` has no close-on-exec (bash: dash stops at fd 9).
        const r = spawnSync(
          'bash',
          [
            '-c',
            'exec 201<"$1" 200<"$2"; shift 2; exec "$@"',
            'bash',
            vault,
            config,
            process.execPath,
            ...sandboxArgv(['sh', script]),
          ],
          { env: baseEnv(), timeout: 60_000 },
        );
        expect(r.status, r.stderr.toString()).toBe(0);
        const o = parseOutcomes(r.stdout.toString());
        expect(o.file!.rc).not.toBe(0);
        expect(o.file!.stdout).toBe('');
        expect(o.dir!.rc).not.toBe(0);
        expect(o.dir!.stdout).toBe('');
      } finally {
        rmSync(script, { force: true });
      }
    });

    it('an allowed path through a symlink in the project (planted by an earlier run?) is refused', () => {
      const proj = mkdtempSync(join(root, 'planted-'));
      const target = mkdtempSync(join(root, 'target-'));
      mkdirSync(join(proj, 'a'));
      symlinkSync(target, join(proj, 'a', 'b'));
      const r = sandboxCli(['--project', proj, '--allow-path', join(proj, 'a', 'b')], ['true']);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`goes through the symlink ${join(proj, 'a', 'b')}, inside ${proj}`);
      // Named as what it resolves to, it is the user's choice.
      const ok = sandboxCli(['--project', proj, '--allow-path', target], ['true']);
      expect(ok.status, ok.stderr).toBe(0);
    });

    it('a machine that forbids user namespaces gets which setting did, and exit 5, not bare bwrap exit 1', () => {
      const proj = mkdtempSync(join(root, 'no-userns-'));
      // A user namespace of its own whose limit is 0 (the limit is per namespace): bwrap's cannot be made.
      const r = spawnSync(
        'unshare',
        [
          '-U',
          '-r',
          'sh',
          '-c',
          'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"',
          'sh',
          process.execPath,
          '--',
          CLI,
          'sandbox',
          '--store',
          'encrypted-file',
          '--project',
          proj,
          '--',
          'touch',
          join(proj, 'ran'),
        ],
        { env: baseEnv(), encoding: 'utf8', timeout: 30_000 },
      );
      expect(r.stderr).toContain('the sandbox did not start: bubblewrap could not set it up');
      expect(r.stderr).toContain('user.max_user_namespaces is 0');
      expect(r.status, r.stderr).toBe(5);
      expect(existsSync(join(proj, 'ran'))).toBe(false);
    });

    it('a symlink on the way to a hidden directory, inside the project, is refused (it could be replaced)', () => {
      const dotted = mkdtempSync(join(root, 'dotfiles-home-'));
      mkdirSync(join(dotted, 'dotfiles', 'config', 'entraclaw'), { recursive: true });
      symlinkSync(join(dotted, 'dotfiles', 'config'), join(dotted, '.config'));
      const env = { ...baseEnv(), HOME: dotted };
      const r = cli(['sandbox', '--store', 'secret-service', '--project', dotted, '--', 'true'], '', env);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`goes through the symlink ${join(dotted, '.config')}, inside ${dotted}`);
      // With a project that does not hold the link, the same home is fine.
      const ok = cli(['sandbox', '--store', 'secret-service', '--project', project, '--', 'true'], '', env);
      expect(ok.status, ok.stderr).toBe(0);
    });

    it('the home directory (or /) as the default project is refused; named with --project it is taken', () => {
      mkdirSync(home, { recursive: true });
      for (const dir of [home, '/']) {
        const r = spawnSync(
          process.execPath,
          ['--', CLI, 'sandbox', '--store', 'secret-service', '--', 'true'],
          {
            env: { ...baseEnv(), PWD: dir },
            cwd: dir,
            timeout: 30_000,
          },
        );
        expect(r.status, r.stderr.toString()).toBe(2);
        expect(r.stderr.toString()).toContain(
          `the current directory ${dir} would be the sandbox's writable project, and it is (or contains) your home directory`,
        );
        expect(r.stderr.toString()).toContain('name it with --project');
      }
      const named = spawnSync(
        process.execPath,
        ['--', CLI, 'sandbox', '--store', 'secret-service', '--project', home, '--', 'true'],
        { env: { ...baseEnv(), PWD: home }, cwd: home, timeout: 30_000 },
      );
      expect(named.status, named.stderr.toString()).toBe(0);
    });

    it('with HOME unset or relative, the account home as the default project is refused', () => {
      const accountHome = userInfo().homedir;
      for (const HOME of [undefined, 'relative/home']) {
        const env: NodeJS.ProcessEnv = { ...baseEnv(), PWD: accountHome };
        if (HOME === undefined) delete env.HOME;
        else env.HOME = HOME;
        const r = spawnSync(
          process.execPath,
          ['--', CLI, 'sandbox', '--store', 'secret-service', '--', 'true'],
          {
            env,
            cwd: accountHome,
            timeout: 30_000,
          },
        );
        expect(r.status, r.stderr.toString()).toBe(2);
        expect(r.stderr.toString()).toContain(
          `the current directory ${accountHome} would be the sandbox's writable project, and it is (or contains) your home directory`,
        );
      }
    });

    it('a project reached through a symlink planted in an allowed path is refused, even as the cwd', () => {
      const proj = mkdtempSync(join(root, 'cwd-planted-'));
      const outside = mkdtempSync(join(root, 'cwd-target-'));
      symlinkSync(outside, join(proj, 'b'));
      const via = join(proj, 'b');
      const r = spawnSync(
        process.execPath,
        ['--', CLI, 'sandbox', '--store', 'secret-service', '--allow-path', proj, '--', 'true'],
        { env: { ...baseEnv(), PWD: via }, cwd: via, timeout: 30_000 },
      );
      expect(r.status, r.stderr.toString()).toBe(2);
      expect(r.stderr.toString()).toContain(
        `--project ${via} goes through the symlink ${via}, inside ${proj}`,
      );
    });

    it('a profile that is a symlink inside the project is refused (the command could re-point it)', () => {
      const link = join(project, `linked-${randomName('p')}.toml`);
      symlinkSync(profile, link);
      const r = sandboxCli(['--profile', link, '--project', project], ['true']);
      rmSync(link, { force: true });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`--profile ${link} goes through the symlink ${link}, inside ${project}`);
    });

    it("no other sandbox can reach a run's broker, shims or socket; its broker serves only its own sandbox", async () => {
      const go = join(project, `go-${randomName('g')}`);
      const out = join(project, `out-${randomName('o')}`);
      onTestFinished(() => {
        rmSync(go, { force: true });
        rmSync(out, { force: true });
      });
      const first = spawn(
        process.execPath,
        [
          '--',
          ...sandboxArgv([
            'sh',
            '-c',
            `while [ ! -e ${sq(go)} ]; do sleep 0.1; done; secret-tool lookup service ${sq(S)} account ${A} > ${sq(out)}`,
          ]),
        ],
        { env: baseEnv(), stdio: 'ignore' },
      );
      onTestFinished(() => {
        first.kill('SIGTERM');
      });
      // The run's scratch (socket, shims) is in Entraclaw's runtime directory, which every sandbox hides.
      const scratchRoot = join(process.env.XDG_RUNTIME_DIR!, 'entraclaw', 'sandbox');
      const sockets = () =>
        (existsSync(scratchRoot) ? readdirSync(scratchRoot) : [])
          .map((d) => join(scratchRoot, d, 'run', 'agent.sock'))
          .filter((f) => existsSync(f));
      await waitUntil(() => sockets().length > 0);
      const [socket] = sockets();
      const reach = sandboxCli(['--allow-path', scratchRoot, '--project', project], ['true']);
      expect(reach.status).toBe(2);
      expect(reach.stderr).toContain('which the sandbox must hide');
      // Whoever still gets to the socket (here: a process of the host) is not in the sandbox: refused.
      const client = `import { connect } from ${JSON.stringify(SDK_URL)};
const c = await connect({ socket: process.argv[1] });
try { await c.get(process.argv[2], process.argv[3]); console.log('SERVED'); }
catch (e) { console.log(e.code + ': ' + e.message); } finally { c.close(); }`;
      const host = spawnSync(process.execPath, ['--input-type=module', '-e', client, socket!, S, A], {
        env: baseEnv(),
        timeout: 30_000,
      });
      expect(host.stdout.toString()).toMatch(/^denied: request from outside this sandbox/);
      // Rewriting its scratch shims on the host (what a run with another XDG_RUNTIME_DIR could reach)
      // changes nothing inside: the shims were copied in.
      const shim = join(dirname(dirname(socket!)), 'bin', 'secret-tool');
      writeFileSync(shim, '#!/bin/sh\necho HIJACKED\n');
      writeFileSync(go, '');
      await waitUntil(() => existsSync(out) && readFileSync(out, 'utf8').length > 0);
      expect(readFileSync(out, 'utf8')).toBe(GRANTED);
    }, 60_000);

    it('a profile the command may write is used, with a warning that it can change its own grants', () => {
      const inProject = join(project, `profile-${randomName('p')}.toml`);
      writeFileSync(inProject, readFileSync(profile));
      const r = sandboxCli(['--profile', inProject, '--project', project], ['true']);
      rmSync(inProject, { force: true });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain(`warning: the profile ${inProject} is inside a path the command may write`);
    });

    it('a project inside a hidden directory is refused before anything runs', () => {
      const inside = join(home, '.config', 'entraclaw', 'project');
      mkdirSync(inside, { recursive: true });
      const r = cli(['sandbox', '--store', 'secret-service', '--project', inside, '--', 'true']);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('must hide');
    });

    it('a command that does not exist is a usage error naming it (exit 2, not a bare bwrap message)', () => {
      for (const [cmd, why] of [
        ['no-such-command-xyz', 'not found in PATH (ENOENT)'],
        [join(root, 'no-such-file'), 'not found (ENOENT)\n  hint: check the command name and PATH'],
      ] as const) {
        const r = cli(['sandbox', '--store', 'secret-service', '--', cmd]);
        expect(r.status).toBe(2);
        expect(r.stderr).toContain(`entraclaw: cannot start ${cmd}: ${why}`);
        expect(r.stderr).not.toContain('bwrap:');
      }
    });

    it('a script whose #! interpreter is missing is named as such (exit 2, not a bare bwrap message)', () => {
      const file = join(root, 'bad-interpreter');
      const interpreter = join(root, 'no-such-interpreter');
      writeFileSync(file, `#!${interpreter}\necho ran\n`, { mode: 0o755 });
      const r = cli(['sandbox', '--store', 'secret-service', '--', file]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(
        `entraclaw: cannot start ${file}: the interpreter its #! line names, ${interpreter}, does not exist (ENOENT)`,
      );
      expect(r.stderr).not.toContain('bwrap:');
    });

    it('a file that is not executable is a permission error with a hint to match, not "check PATH"', () => {
      const file = join(root, 'not-executable');
      writeFileSync(file, 'x', { mode: 0o644 });
      const r = cli(['sandbox', '--store', 'secret-service', '--', file]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(
        `entraclaw: cannot start ${file}: permission denied (EACCES)\n  hint: ${file} is not executable`,
      );
      expect(r.stderr).not.toContain('check the command name and PATH');
    });

    it('a missing path in a profile is named as the profile key, not as a flag', () => {
      const profile = join(root, 'missing-path.toml');
      writeFileSync(profile, `[sandbox]\nallow_paths = ["${join(root, 'gone')}"]\n`);
      const r = cli(['sandbox', '--store', 'secret-service', '--profile', profile, '--', 'true']);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`allow_paths in ${profile}: ${join(root, 'gone')} does not exist`);
    });

    it('a ~ path in a profile (or --allow-path=~/x, which the shell leaves) is refused saying ~ is not expanded, with the full path', () => {
      const profile = join(root, 'tilde-path.toml');
      writeFileSync(profile, '[sandbox]\nallow_paths = ["~/.cache/agent"]\n');
      const r = cli(['sandbox', '--store', 'secret-service', '--profile', profile, '--', 'true']);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`allow_paths in ${profile}: ~/.cache/agent does not exist`);
      expect(r.stderr).toContain(
        `hint: ~ is not expanded here: write the path in full, ${home}/.cache/agent`,
      );
      const flag = cli(['sandbox', '--store', 'secret-service', '--allow-path=~', '--', 'true']);
      expect(flag.status, flag.stderr).toBe(2);
      expect(flag.stderr).toContain(`hint: ~ is not expanded here: write the path in full, ${home}`);
    });

    it('a missing --project is a usage error', () => {
      const r = cli(['sandbox', '--store', 'secret-service', '--project', join(root, 'nope'), '--', 'true']);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('--project');
    });
  });

  describe('exit status and signals', () => {
    it("is the sandboxed command's", () => {
      const r = sandboxCli(['--project', project], ['sh', '-c', 'exit 9']);
      expect(r.status, r.stderr).toBe(9);
    });

    /** Starts a sandboxed trap script in its own process group, sends `signal` to `target`, returns the status. */
    async function signalled(signal: NodeJS.Signals, wholeGroup: boolean, trapped = true) {
      const ready = join(project, `ready-${signal}-${trapped}`);
      const got = join(project, `got-${signal}-${trapped}`);
      const trap = signal.replace(/^SIG/, '');
      const script = trapped
        ? `trap 'echo ${trap} > ${sq(got)}; exit 42' ${trap}; touch ${sq(ready)}; while :; do sleep 0.05; done`
        : `touch ${sq(ready)}; exec sleep 30`;
      const proc = spawn(
        process.execPath,
        [CLI, 'sandbox', '--store', 'secret-service', '--project', project, '--', 'sh', '-c', script],
        { env: baseEnv(), stdio: 'ignore', detached: true },
      );
      const [status, died] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
        const deadline = Date.now() + 30_000;
        const poll = setInterval(() => {
          if (existsSync(ready) || Date.now() > deadline) {
            clearInterval(poll);
            const sig = existsSync(ready) ? signal : 'SIGKILL';
            // A terminal's Ctrl-C goes to the whole foreground process group.
            process.kill(wholeGroup ? -proc.pid! : proc.pid!, sig);
          }
        }, 20);
        // A sandbox that failed at once is gone: nothing is left to signal (kill would throw ESRCH).
        proc.on('close', (code, sig) => {
          clearInterval(poll);
          resolve([code, sig]);
        });
      });
      if (!trapped) return { status, signal: died };
      expect(died).toBeNull();
      return { status, got: existsSync(got) ? readFileSync(got, 'utf8') : undefined };
    }

    it('SIGTERM to entraclaw reaches the sandboxed command, which can clean up', async () => {
      expect(await signalled('SIGTERM', false)).toEqual({ status: 42, got: 'TERM\n' });
    });

    it('Ctrl-C (SIGINT to the whole process group) reaches the command once, not as a SIGKILL', async () => {
      expect(await signalled('SIGINT', true)).toEqual({ status: 42, got: 'INT\n' });
    });

    it('Ctrl-C that kills the command kills entraclaw with SIGINT too, so a script running it stops', async () => {
      expect(await signalled('SIGINT', true, false)).toEqual({ status: null, signal: 'SIGINT' });
    });

    it('SIGHUP (a reload) is passed on and does not turn a later SIGTERM into a SIGKILL', async () => {
      const ready = join(project, 'ready-hup');
      const log = join(project, 'got-hup');
      const script = `trap 'echo HUP >> ${sq(log)}' HUP; trap 'echo TERM >> ${sq(log)}; exit 42' TERM; touch ${sq(ready)}; while :; do sleep 0.05; done`;
      const proc = spawn(
        process.execPath,
        [CLI, 'sandbox', '--store', 'secret-service', '--project', project, '--', 'sh', '-c', script],
        { env: baseEnv(), stdio: 'ignore' },
      );
      onTestFinished(() => void proc.kill('SIGKILL'));
      const closed = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
      await waitUntil(() => existsSync(ready));
      proc.kill('SIGHUP');
      await waitUntil(() => existsSync(log) && readFileSync(log, 'utf8') === 'HUP\n');
      proc.kill('SIGTERM');
      expect(await closed).toBe(42);
      expect(readFileSync(log, 'utf8')).toBe('HUP\nTERM\n');
    }, 30_000);

    it("SIGTERM still ends entraclaw when the command stopped the sandbox's init with ptrace and exited", async (ctx) => {
      // Under Yama the command cannot stop its parent, the init, at all: there is nothing to survive.
      requireOrSkip(ctx, yamaForbidsAttach("the command's attach to the sandbox's init, its parent"));
      const attached = join(project, 'attached');
      // PTRACE_ATTACH (16) to pid 1, the sandbox's init: it stops, and never reaps the exiting command.
      const py = `import ctypes; r = ctypes.CDLL(None).ptrace(16, 1, 0, 0); open(${JSON.stringify(attached)}, "w").write(str(r))`;
      const proc = spawn(
        process.execPath,
        [CLI, 'sandbox', '--store', 'secret-service', '--project', project, '--', 'python3', '-c', py],
        { env: baseEnv(), stdio: 'ignore' },
      );
      const closed = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
      // A failed run must not leave a stopped sandbox behind.
      onTestFinished(() => void proc.kill('SIGKILL'));
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (existsSync(attached) && readFileSync(attached, 'utf8') !== '') {
            clearInterval(poll);
            resolve();
          }
        }, 20);
        // A sandbox that failed at once writes nothing: stop waiting, and let the check below say so.
        void closed.then(() => {
          clearInterval(poll);
          resolve();
        });
      });
      expect(existsSync(attached) ? readFileSync(attached, 'utf8') : 'the sandbox ended first').toBe('0');
      // Once the command is a zombie under the stopped init, the signal must not be spent on it.
      const stat = (pid: number | string) => {
        try {
          const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
          const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
          return {
            comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')),
            state,
            ppid: Number(ppid),
          };
        } catch {
          return undefined;
        }
      };
      const below = (pid: number): boolean => {
        for (let p = stat(pid)?.ppid; p && p > 1; p = stat(p)?.ppid) if (p === proc.pid) return true;
        return false;
      };
      const commandAlive = () =>
        readdirSync('/proc')
          .filter((d) => /^\d+$/.test(d))
          .some((d) => {
            const s = stat(d);
            return s?.comm === 'python3' && s.state !== 'Z' && below(Number(d));
          });
      while (commandAlive()) await new Promise((resolve) => setTimeout(resolve, 20));
      proc.kill('SIGTERM');
      expect(await closed).toBe(143);
    }, 30_000);
  });
});

// Unprivileged bwrap runs the command one user namespace below the one it reports (it maps root first,
// to mount /dev/pts): the broker must serve that nested namespace too. Root's bwrap makes only one, so
// as root this runs the sandbox as another, unprivileged uid (nobody); as an ordinary user, as that user.
const USER = process.getuid?.() === 0 ? 65534 : (process.getuid?.() ?? 0);
const GROUP = process.getuid?.() === 0 ? 65534 : (process.getgid?.() ?? 0);
describeIfProvided(
  'entraclaw sandbox run by an unprivileged user',
  bwrapMissing({ uid: USER, gid: GROUP }),
  () => {
    const dir = mkdtempSync('/var/tmp/entraclaw-sandbox-user-');
    // A copy of the build that user can read (the checkout may be in root's 0700 home).
    const build = readableBuild();
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
      build.cleanup();
    });

    it('serves its command the granted item through both shims, and nothing else', () => {
      // Not the test session's bus: it is root's, and this user's sandbox has no business with it.
      const env = isolatedEnv(dir, {
        ENTRACLAW_PASSPHRASE_FILE: join(dir, 'pass'),
        DBUS_SESSION_BUS_ADDRESS: undefined,
      });
      for (const d of ['home', 'run', 'project']) mkdirSync(join(dir, d), { mode: 0o700 });
      writeFileSync(join(dir, 'pass'), 'unprivileged sandbox passphrase\n', { mode: 0o600 });
      const profile = join(dir, 'profile.toml');
      writeFileSync(
        profile,
        '[credential_access]\nservices = ["svc"]\naccounts = ["*"]\noperations = ["read"]\n',
      );
      spawnSync('chown', ['-R', `${USER}:${GROUP}`, dir]);
      const as = (args: string[], input = '') => {
        const r = spawnSync(process.execPath, ['--', build.cli, ...args], {
          env,
          input,
          cwd: join(dir, 'project'),
          uid: USER,
          gid: GROUP,
          timeout: 60_000,
        });
        return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
      };
      const SECRET = `unprivileged-${randomName('v')}`;
      for (const [service, value] of [
        ['svc', SECRET],
        ['other', 'not-granted'],
      ]) {
        const r = as(['secret', 'set', service!, 'me', '--store', 'encrypted-file'], value);
        expect(r.status, r.stderr).toBe(0);
      }
      const r = as([
        'sandbox',
        '--store',
        'encrypted-file',
        '--profile',
        profile,
        '--',
        'sh',
        '-c',
        'security find-generic-password -s svc -a me -w; secret-tool lookup service svc account me; echo; secret-tool lookup service other account me; echo "other=$?"; cat /proc/self/uid_map',
      ]);
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines.slice(0, 3)).toEqual([SECRET, SECRET, 'other=1']);
      // The command really ran in the nested namespace this is about (uid 0 of the first one mapped).
      expect(lines[3]!.trim().split(/\s+/)).toEqual([String(USER), '0', '1']);
      expect(r.stderr).toContain('no grant of client "sandbox" allows read on other/me');
      expect(r.stdout + r.stderr).not.toContain('not-granted');
      // The passphrase through a pipe, as a password manager gives it: nothing to mask, and it works.
      const { ENTRACLAW_PASSPHRASE_FILE: passFile, ...noPass } = env;
      const piped = spawnSync(
        'bash',
        [
          '-c',
          `cd project && "$NODE" -- "$CLI" sandbox --store encrypted-file --profile "$PROFILE" --passphrase-file <(cat "$PASS") -- security find-generic-password -s svc -a me -w`,
        ],
        {
          cwd: dir,
          env: { ...noPass, NODE: process.execPath, CLI: build.cli, PROFILE: profile, PASS: passFile },
          uid: USER,
          gid: GROUP,
          timeout: 60_000,
        },
      );
      expect(piped.status, piped.stderr.toString()).toBe(0);
      expect(piped.stdout.toString()).toBe(`${SECRET}\n`);
    }, 90_000);

    it('holds the vault key where other programs of that user cannot look: no ptrace, no /proc/PID/mem', async () => {
      const home = join(dir, 'harden');
      const env = isolatedEnv(home, {
        ENTRACLAW_PASSPHRASE_FILE: join(home, 'pass'),
        DBUS_SESSION_BUS_ADDRESS: undefined,
      });
      mkdirSync(home, { mode: 0o700 });
      for (const d of ['home', 'run', 'project']) mkdirSync(join(home, d), { mode: 0o700 });
      writeFileSync(join(home, 'pass'), 'hardened sandbox passphrase\n', { mode: 0o600 });
      spawnSync('chown', [`${USER}:${GROUP}`, dir]);
      spawnSync('chown', ['-R', `${USER}:${GROUP}`, home]);
      const set = spawnSync(
        process.execPath,
        ['--', build.cli, 'secret', 'set', 'svc', 'me', '--store', 'encrypted-file'],
        {
          env,
          input: randomName('v'),
          uid: USER,
          gid: GROUP,
        },
      );
      expect(set.status, set.stderr.toString()).toBe(0);
      // The attacks of another program of that user (sameUserProbe).
      const probe = (pid: number) => sameUserProbe(pid, { uid: USER, gid: GROUP });
      const started = (args: string[]) => {
        const child = spawn(process.execPath, args, {
          env,
          cwd: join(home, 'project'),
          uid: USER,
          gid: GROUP,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        onTestFinished(() => {
          child.kill('SIGKILL');
        });
        return child;
      };
      // The control: a plain node process of that user is open to both, so the check can fail.
      const plain = started(['-e', 'console.log("ready"); setTimeout(() => {}, 30000)']);
      await new Promise((resolve) => plain.stdout!.once('data', resolve));
      expect(probe(plain.pid!)).toEqual(PLAIN_PROCESS_PROBE);
      plain.kill('SIGKILL');
      const box = started([
        '--',
        build.cli,
        'sandbox',
        '--store',
        'encrypted-file',
        '--',
        'sh',
        '-c',
        'secret-tool lookup service svc account me >/dev/null; echo "ready $?"; sleep 30',
      ]);
      let out = '';
      box.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
      });
      let err = '';
      box.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
      });
      // The vault is open by now: the lookup went through its broker (denied, without a profile).
      await waitUntil(() => out.includes('ready') || box.exitCode !== null);
      expect(out, err).toContain('ready');
      // EPERM: the process is not dumpable.
      expect(probe(box.pid!)).toEqual(['1', 'refused']);
    }, 90_000);
  },
);
