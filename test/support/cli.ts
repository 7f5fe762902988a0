import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** Absolute path of the built CLI (the Makefile builds before testing). */
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

/** Result of one CLI run. */
export interface CliResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the real CLI in a child process with the given environment and stdin. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, input?: Buffer | string): CliResult {
  const r = spawnSync(process.execPath, ['--', CLI, ...args], { env, input: input ?? '', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** An environment whose HOME and XDG dirs point into `dir`, so the CLI never touches the real user's files. */
export function isolatedEnv(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: join(dir, 'home'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_STATE_HOME: join(dir, 'state'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
    ...extra,
  };
  if (process.env.DBUS_SESSION_BUS_ADDRESS && !('DBUS_SESSION_BUS_ADDRESS' in extra)) {
    env.DBUS_SESSION_BUS_ADDRESS = process.env.DBUS_SESSION_BUS_ADDRESS;
  }
  return env;
}
