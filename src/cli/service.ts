import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadAgentConfig } from '../config/agent-config.js';
import {
  LAUNCHD_LABEL,
  launchdLogDir,
  launchdPlist,
  PASSPHRASE_CREDENTIAL,
  passphraseCredentialPath,
  SYSTEMD_UNIT_NAME,
  systemdUnit,
} from '../daemon/service-unit.js';
import { socketPath } from '../daemon/socket-path.js';
import { UnavailableError, UsageError } from '../errors.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { makeDirs } from '../lib/make-dir.js';
import { stableNodePath } from '../lib/node-path.js';
import { homeDir, type Paths, resolvePaths, xdgDir } from '../lib/paths.js';
import { shellQuote } from '../lib/shell.js';
import { storeRequest } from '../store/registry.js';
import type { StoreName } from '../store/types.js';
import { note, printJson } from './output.js';

// systemctl and launchctl normally answer at once; a hung bus must not hang the CLI with it.
const COMMAND_TIMEOUT_MS = 15_000;
const SOCKET_PROBE_TIMEOUT_MS = 1_000;
const NO_MANAGER_HINT = 'log in with a systemd session or run `entraclaw agent` directly';

/** What `entraclaw service` can do. */
export type ServiceAction = 'install' | 'uninstall' | 'status';

/** Options of `entraclaw service`. */
export interface ServiceCliOptions {
  store?: string;
  socket?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** One command the action runs; `when` names the condition under which it is run at all. */
interface Step {
  argv: string[];
  when?: string;
  /** The manager finishes this after it returns: wait until the probe no longer finds the service. */
  awaitGone?: true;
}

/** Where the service definition lives and how this platform's service manager is driven. */
interface Target {
  manager: 'systemd' | 'launchd';
  file: string;
  contents: string;
  /** Directories created (0700) before the service first runs. */
  dirs: string[];
  /** Asks the manager about the service; steps with a `when` run only if it succeeds. */
  probe: string[];
  install: Step[];
  uninstall: Step[];
  /** Things the user should know before relying on the installed service. */
  warnings: string[];
}

/**
 * `entraclaw service install|uninstall|status`: runs the broker as a per-user service (systemd user unit
 * on Linux, LaunchAgent on macOS). `--dry-run` prints the file and the commands and touches nothing.
 */
export async function service(action: ServiceAction, opts: ServiceCliOptions): Promise<void> {
  const env = process.env;
  const paths = resolvePaths(env);
  const target = describeTarget(action, paths, opts, env);
  if (opts.dryRun && action !== 'status') return printPlan(action, target, opts.json);
  if (action === 'uninstall') return uninstall(target, opts);
  // The socket the service's agent listens on: --socket (written into the unit), then agent.toml's
  // [agent] socket, which that agent reads at its start, then the default. This shell's $ENTRACLAW_SOCKET
  // is not the service's (the unit does not set it), so it must not move the socket checked here.
  const socket = socketPath(paths, opts.socket ?? (await loadAgentConfig(paths.config)).agent.socket, {});
  if (action === 'status') return status(target, socket, opts);
  await install(target, socket, opts);
}

// The store is the installed unit's business only: status and uninstall neither read nor judge it (a
// shell with ENTRACLAW_STORE=kernel-keyring must still be able to look at or remove the service).
function describeTarget(
  action: ServiceAction,
  paths: Paths,
  opts: ServiceCliOptions,
  env: NodeJS.ProcessEnv,
): Target {
  const installing = action === 'install';
  const storeName = installing ? checkStore(opts.store, env.ENTRACLAW_STORE) : undefined;
  const home = homeDir(env);
  const common = {
    nodePath: stableNodePath(),
    cliPath: fileURLToPath(new URL('./main.cjs', import.meta.url)),
    paths,
  };
  const extra = { ...(storeName ? { storeName } : {}), ...(opts.socket ? { socketPath: opts.socket } : {}) };
  if (process.platform === 'darwin') {
    const file = join(home, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
    const domain = `gui/${process.getuid?.() ?? 0}`;
    const job = `${domain}/${LAUNCHD_LABEL}`;
    return {
      manager: 'launchd',
      file,
      contents: launchdPlist({ ...common, ...extra, home }),
      dirs: [paths.config, paths.data, launchdLogDir(home)],
      probe: ['launchctl', 'print', job],
      install: [
        // bootout returns before the old job is gone; bootstrapping over it fails ("Bootstrap failed: 5").
        { argv: ['launchctl', 'bootout', job], when: 'already loaded', awaitGone: true },
        { argv: ['launchctl', 'bootstrap', domain, file] },
      ],
      uninstall: [{ argv: ['launchctl', 'bootout', job], when: 'loaded' }],
      warnings: [],
    };
  }
  if (process.platform !== 'linux') {
    throw new UnavailableError(
      `entraclaw service is not supported on ${process.platform}`,
      'run `entraclaw agent` directly',
    );
  }
  if (storeName === 'kernel-keyring') {
    throw new UsageError(
      'the kernel-keyring store cannot back the service: its session keyring is private (KeyringMode=private) and does not link your user keyring, so it could not read the keys your shell stored',
      'use --store secret-service or --store encrypted-file, or run `entraclaw agent` directly',
    );
  }
  const credential = passphraseCredentialPath(paths);
  // A listed credential that is missing stops the unit from starting at all, so it is listed only if present.
  // Without --store the agent.toml store applies, by default `auto`, which falls back to the vault wherever
  // Secret Service is not reachable: it needs the credential too.
  const mayUseVault = storeName === 'encrypted-file' || storeName === undefined;
  const useCredential = mayUseVault && existsSync(credential);
  const makeIt =
    "your user manager cannot read the host key (root's can), so make a TPM2-only credential: " +
    `systemd-creds encrypt --with-key=tpm2 --name=${PASSPHRASE_CREDENTIAL} FILE ${credential}, then install again`;
  const warnings =
    !installing || useCredential
      ? []
      : storeName === 'encrypted-file'
        ? [
            `no ${credential}: the service's agent cannot open the vault, so it will not start. To unlock it, ${makeIt}`,
          ]
        : storeName === undefined
          ? [
              `no --store: with auto (the default) the service uses the vault where Secret Service is not reachable, and without ${credential} its agent cannot open the vault (it will not start). ` +
                `Pass --store secret-service if the service should use only Secret Service; otherwise ${makeIt}`,
            ]
          : [];
  const managerHome = homeAsManagerSeesIt(home);
  const unitDir = join(xdgDir(env.XDG_CONFIG_HOME) ?? join(home, '.config'), 'systemd', 'user');
  return {
    manager: 'systemd',
    file: join(unitDir, SYSTEMD_UNIT_NAME),
    contents: systemdUnit({
      ...common,
      ...extra,
      ...(managerHome ? { home: managerHome } : {}),
      ...(useCredential ? { passphraseCredential: credential } : {}),
    }),
    dirs: [paths.config, paths.data, paths.state],
    probe: [
      'systemctl',
      '--user',
      'show',
      SYSTEMD_UNIT_NAME,
      '--property=ActiveState,SubState,UnitFileState',
    ],
    // restart rather than `enable --now`: a reinstall must replace a daemon still running the old unit.
    install: [
      { argv: ['systemctl', '--user', 'daemon-reload'] },
      { argv: ['systemctl', '--user', 'enable', SYSTEMD_UNIT_NAME] },
      { argv: ['systemctl', '--user', 'restart', SYSTEMD_UNIT_NAME] },
    ],
    uninstall: [
      { argv: ['systemctl', '--user', 'disable', '--now', SYSTEMD_UNIT_NAME] },
      { argv: ['systemctl', '--user', 'daemon-reload'] },
    ],
    warnings,
  };
}

// %h is the home the user manager sees (from the user database), which this shell's $HOME may not be.
function homeAsManagerSeesIt(home: string): string | undefined {
  try {
    return userInfo().homedir === home ? home : undefined;
  } catch {
    return undefined;
  }
}

// As for every other command, --store, then $ENTRACLAW_STORE: the unit runs the agent on the store this
// shell would use, not on whatever the service manager's environment says.
function checkStore(flag: string | undefined, fromEnv: string | undefined): StoreName | undefined {
  const requested =
    flag !== undefined
      ? storeRequest(flag, '--store')
      : fromEnv
        ? storeRequest(fromEnv, 'ENTRACLAW_STORE')
        : 'auto';
  return requested === 'auto' ? undefined : requested;
}

function printPlan(action: 'install' | 'uninstall', t: Target, json?: boolean): void {
  const file =
    action === 'install'
      ? { path: t.file, mode: '0644', contents: t.contents }
      : { path: t.file, remove: true };
  const dirs = action === 'install' ? t.dirs : [];
  const steps = action === 'install' ? t.install : t.uninstall;
  if (json) {
    printJson({
      action,
      dryRun: true,
      manager: t.manager,
      file,
      dirs,
      commands: steps,
      warnings: t.warnings,
    });
    return;
  }
  for (const w of t.warnings) note(w);
  const out = process.stdout;
  for (const d of dirs) out.write(`would create ${d} (0700) if missing\n`);
  if (action === 'install') out.write(`would write ${t.file} (0644):\n\n${t.contents}\n`);
  else out.write(`would remove ${t.file} (if present)\n`);
  out.write('would run:\n');
  for (const s of steps) out.write(`  ${s.argv.map(shellQuote).join(' ')}${s.when ? `  (${s.when})` : ''}\n`);
}

async function install(t: Target, socket: string, opts: ServiceCliOptions): Promise<void> {
  for (const w of t.warnings) note(w);
  for (const d of t.dirs) makeDirs(d, 0o700);
  makeDirs(dirname(t.file), 0o755);
  writeFileAtomic(t.file, Buffer.from(t.contents), 0o644);
  note(`wrote ${t.file}`);
  const ran: string[][] = [];
  for (const step of t.install) {
    if (step.when && (await run(t.probe)).status !== 0) continue;
    await manage(step.argv, t);
    ran.push(step.argv);
    if (step.awaitGone) await gone(t.probe);
  }
  if (t.manager === 'systemd') await agentStarted(t, socket);
  if (opts.json)
    return printJson({
      action: 'install',
      manager: t.manager,
      // The shapes of --dry-run's plan, less what was not done: a script reads both the same way.
      file: { path: t.file, mode: '0644' },
      commands: ran.map((argv) => ({ argv })),
      socket,
    });
  process.stdout.write(`installed and started ${basename(t.file)}; clients connect to ${socket}\n`);
}

/** How long install waits for a service it stopped to be gone before starting the new one. */
const GONE_WAIT_MS = 5_000;

// Past the wait the next step runs anyway: its own error then says what the manager thinks.
async function gone(probe: string[]): Promise<void> {
  const deadline = Date.now() + GONE_WAIT_MS;
  while ((await run(probe)).status === 0 && Date.now() < deadline) await delay(100);
}

/** How long install waits for the started agent to accept connections. */
const START_WAIT_MS = 15_000;

// `systemctl restart` returns once the agent is forked: one that then exits (no passphrase credential, a
// store it cannot open) is restarted every 2 s for good, so "installed and started" is said only once
// its socket answers, and a unit that is failing or waiting to restart is an error pointing at its log.
async function agentStarted(t: Target, socket: string): Promise<void> {
  const hint = `see why with \`journalctl --user -u ${SYSTEMD_UNIT_NAME} -n 20\`; once fixed: \`systemctl --user restart ${SYSTEMD_UNIT_NAME}\``;
  const deadline = Date.now() + START_WAIT_MS;
  for (;;) {
    if (await socketReachable(socket)) return;
    const { state = 'unknown' } = await systemdState(t.probe);
    if (/failed|auto-restart/.test(state)) {
      throw new UnavailableError(
        `${SYSTEMD_UNIT_NAME} is installed, but its agent does not start: ${state}`,
        hint,
      );
    }
    if (Date.now() > deadline) {
      throw new UnavailableError(
        `${SYSTEMD_UNIT_NAME} is installed, but its agent accepts no connection on ${socket} after ${START_WAIT_MS / 1000} s: ${state}`,
        hint,
      );
    }
    await delay(100);
  }
}

async function uninstall(t: Target, opts: ServiceCliOptions): Promise<void> {
  const present = existsSync(t.file);
  const ran: string[][] = [];
  let managerUp = true;
  if (present) {
    const [stop, reload] = t.uninstall;
    if (!stop!.when || (await run(t.probe)).status === 0) {
      try {
        await manage(stop!.argv, t);
        ran.push(stop!.argv);
      } catch (err) {
        // Nothing runs without a manager, so removing the files is all there is to undo.
        if (!(err instanceof NoManagerError)) throw err;
        managerUp = false;
        note('no systemd user manager: removing the unit file and its enablement link only');
        removeWantsLink(t.file);
      }
    }
    unlinkSync(t.file);
    if (reload && managerUp) {
      await manage(reload.argv, t);
      ran.push(reload.argv);
    }
  }
  if (opts.json)
    return printJson({
      action: 'uninstall',
      manager: t.manager,
      file: { path: t.file, removed: present },
      commands: ran.map((argv) => ({ argv })),
    });
  process.stdout.write(present ? `removed ${t.file}\n` : `not installed (no ${t.file})\n`);
}

async function status(t: Target, path: string, opts: ServiceCliOptions): Promise<void> {
  const installed = existsSync(t.file);
  const service = t.manager === 'systemd' ? await systemdState(t.probe) : await launchdState(t.probe);
  const socket = { path, reachable: await socketReachable(path) };
  if (opts.json) printJson({ manager: t.manager, file: t.file, installed, ...service, socket });
  else {
    const out = process.stdout;
    out.write(`file:    ${t.file} (${installed ? 'present' : 'absent'})\n`);
    out.write(
      `service: ${service.reachable ? `${service.state}${service.enabled ? `, ${service.enabled}` : ''}` : `unknown (${service.reason})`}\n`,
    );
    out.write(`socket:  ${path} (${socket.reachable ? 'accepting connections' : 'not reachable'})\n`);
  }
  // The report is printed either way; a script checking `service status` must still learn that the state
  // of the service could not be known at all.
  if (!service.reachable) {
    throw new UnavailableError(
      `the service manager did not answer, so the state of the service is unknown (${service.reason})`,
      t.manager === 'systemd'
        ? NO_MANAGER_HINT
        : 'see `launchctl print` and the logs in ~/Library/Logs/entraclaw/',
    );
  }
}

interface ServiceState {
  /** Whether the service manager answered. */
  reachable: boolean;
  state?: string;
  enabled?: string;
  reason?: string;
}

async function systemdState(probe: string[]): Promise<ServiceState> {
  const r = await run(probe);
  if (r.status !== 0) return { reachable: false, reason: failure(r) };
  const props = Object.fromEntries(
    r.stdout.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return {
    reachable: true,
    state: `${props.ActiveState ?? 'unknown'} (${props.SubState ?? 'unknown'})`,
    enabled: props.UnitFileState || 'not installed',
  };
}

async function launchdState(probe: string[]): Promise<ServiceState> {
  const r = await run(probe);
  if (r.error || r.timedOut) return { reachable: false, reason: failure(r) };
  if (r.status !== 0) return { reachable: true, state: 'not loaded' };
  return { reachable: true, state: /^\s*state = (.+)$/m.exec(r.stdout)?.[1] ?? 'loaded' };
}

function removeWantsLink(unitFile: string): void {
  const link = join(dirname(unitFile), 'default.target.wants', basename(unitFile));
  try {
    if (lstatSync(link).isSymbolicLink() && readlinkSync(link) === unitFile) unlinkSync(link);
  } catch {
    // No link: the unit was never enabled.
  }
}

/** systemctl could not reach a user manager (no session bus, no $XDG_RUNTIME_DIR). */
class NoManagerError extends UnavailableError {
  override name = 'NoManagerError';
}

async function manage(argv: string[], t: Target): Promise<void> {
  const r = await run(argv);
  if (r.status === 0) return;
  if (
    t.manager === 'systemd' &&
    !r.error &&
    !r.timedOut &&
    // No bus at all, or a session bus on which nothing provides systemd (a D-Bus session without a
    // user manager: activating org.freedesktop.systemd1 fails).
    /Failed to connect to (the )?bus|\$DBUS_SESSION_BUS_ADDRESS|org\.freedesktop\.systemd1 (exited|was not provided)/.test(
      r.stderr,
    )
  ) {
    throw new NoManagerError(
      `no systemd user manager: wrote ${t.file} but nothing can load it (${argv.join(' ')}: ${firstLine(r.stderr)})`,
      NO_MANAGER_HINT,
    );
  }
  throw new UnavailableError(
    `${argv.join(' ')} failed: ${failure(r)}`,
    t.manager === 'systemd'
      ? `see \`journalctl --user -u ${SYSTEMD_UNIT_NAME}\``
      : 'see `launchctl print` and the logs in ~/Library/Logs/entraclaw/',
  );
}

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  error?: NodeJS.ErrnoException;
  timedOut: boolean;
}

function run(argv: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, COMMAND_TIMEOUT_MS);
    const settle = (status: number | null, error?: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, timedOut, ...(error ? { error } : {}) });
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // A spawn failure (ENOENT) emits 'error' and may never emit 'close'; resolving twice is harmless.
    child.on('error', (err) => settle(null, err));
    child.on('close', (status) => settle(status));
  });
}

function failure(r: RunResult): string {
  if (r.error?.code === 'ENOENT') return `${r.error.path ?? 'command'} not found on PATH`;
  if (r.error) return r.error.message;
  if (r.timedOut) return `no answer within ${COMMAND_TIMEOUT_MS / 1000}s`;
  return `exit ${r.status}${r.stderr.trim() ? `: ${firstLine(r.stderr)}` : ''}`;
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0]!;
}

function socketReachable(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ path, timeout: SOCKET_PROBE_TIMEOUT_MS });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.once('timeout', () => done(false));
  });
}
