import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './broker.js';
import { type Missing, rootOnly } from './context.js';

const SYSTEMD = '/lib/systemd/systemd';

/** A private `systemd --user` started by a test: its HOME, runtime dir and cgroups are the test's own. */
export interface UserManager {
  /** HOME, XDG_CONFIG_HOME and XDG_RUNTIME_DIR as the manager has them, for systemctl and the CLI. */
  env: NodeJS.ProcessEnv;
  /** `systemctl --user ARGS` against this manager. */
  systemctl(...args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Stops the manager and every process it started, then removes its cgroups. */
  stop(): Promise<void>;
}

/**
 * Why no private user manager can be started here, or undefined where one can: it takes root (mount and
 * cgroup namespaces, cgroup directories) and systemd's binary.
 */
export function userManagerMissing(): Missing | undefined {
  if (process.platform !== 'linux') return `a systemd user manager needs Linux (this is ${process.platform})`;
  const notRoot = rootOnly(
    'starting a private systemd --user (a mount and a cgroup namespace, cgroup directories)',
  );
  if (notRoot) return notRoot;
  if (!existsSync(SYSTEMD)) return `no ${SYSTEMD} (systemd is not installed)`;
  for (const tool of ['unshare', 'systemctl', 'systemd-creds']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not on PATH`;
  }
  return undefined;
}

// Runs as root. Every cgroup hierarchy gets a child of the caller's cgroup (ID) that the manager is moved
// into, then a cgroup namespace makes that child its root, and bind mounts make /sys/fs/cgroup/* show it:
// systemd --user starts by moving every process of its root cgroup into init.scope, which, run plainly
// from the machine's root cgroup, takes PID 1 and every other process with it. In the private mount
// namespace /run/systemd/system is faked where PID 1 is not systemd (systemd --user refuses to start
// otherwise), and / is made shared there: systemd builds each service's credential directory in a
// namespace of its own and propagates it back, which a private / would silently drop (an empty
// $CREDENTIALS_DIRECTORY). The host's mounts are private, so nothing propagates out.
const LAUNCHER = join(import.meta.dirname, 'user-manager.sh');

/** Starts a private `systemd --user` for root with HOME, XDG_CONFIG_HOME and XDG_RUNTIME_DIR under `dir`. */
export async function startUserManager(dir: string): Promise<UserManager> {
  const runtime = join(dir, 'run');
  mkdirSync(runtime, { recursive: true, mode: 0o700 });
  const env = {
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    HOME: join(dir, 'home'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_RUNTIME_DIR: runtime,
  };
  const list = join(dir, 'cgroups');
  const id = `entraclaw-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  let log = '';
  const child: ChildProcess = spawn('bash', [LAUNCHER, id, list, ...envArgs, SYSTEMD, '--user'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (log += d));
  child.stderr?.on('data', (d: Buffer) => (log += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  const systemctl = (...args: string[]) => {
    const r = spawnSync('systemctl', ['--user', ...args], { env, encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const removeCgroups = () => {
    if (!existsSync(list)) return;
    const dirs = readFileSync(list, 'utf8').trim().split('\n').filter(Boolean);
    for (const pair of dirs) {
      const cg = pair.slice(pair.indexOf('=') + 1);
      if (existsSync(join(cg, 'cgroup.kill'))) spawnSync('sh', ['-c', `echo 1 > '${cg}/cgroup.kill'`]);
    }
    for (const pair of dirs) {
      const cg = pair.slice(pair.indexOf('=') + 1);
      spawnSync('find', [cg, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
    }
  };
  const stop = async () => {
    if (!exited) child.kill('SIGTERM');
    await waitFor(() => exited, 'the user manager to exit');
    // cgroup.kill ends anything it left; an empty cgroup may take a moment to be removable.
    removeCgroups();
    await waitFor(() => {
      removeCgroups();
      return !readFileSync(list, 'utf8')
        .trim()
        .split('\n')
        .some((p) => p && existsSync(p.slice(p.indexOf('=') + 1)));
    }, 'the user manager cgroups to be removed');
  };
  try {
    await waitFor(
      () => exited || systemctl('show', '--property=Version', '--value').stdout.trim() !== '',
      'systemd --user to answer',
      30_000,
    );
    if (exited) throw new Error(`systemd --user exited at start:\n${log}`);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return { env, systemctl, stop };
}
