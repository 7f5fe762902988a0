import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** Absolute path of the built CLI (the Makefile builds before testing). */
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.cjs');

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

// Runs a command on a real pty and types each answer once the next prompt (text ending in ": ") shows.
const PTY_DRIVER = `
import json, os, pty, select, sys, time
argv, answers = json.loads(sys.argv[1]), [a.encode('latin1') for a in json.loads(sys.argv[2])]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, typed, deadline = b'', 0, time.time() + 20
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.1)
    if not r:
        continue
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
    while typed < len(answers) and out.count(b': ') > typed:
        time.sleep(0.05)
        os.write(fd, answers[typed])
        typed += 1
else:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
sys.stdout.write(json.dumps({'status': os.waitstatus_to_exitcode(status), 'output': out.decode('latin1')}))
`;

/** Runs the CLI with a pty as its terminal, typing `answers` at its prompts; a hang is killed after 20 s. */
export function runCliInPty(
  args: string[],
  env: NodeJS.ProcessEnv,
  answers: string[],
): { status: number; output: string } {
  const argv = [process.execPath, '--', CLI, ...args];
  const r = spawnSync('python3', ['-c', PTY_DRIVER, JSON.stringify(argv), JSON.stringify(answers)], {
    env,
    timeout: 30_000,
  });
  return JSON.parse(r.stdout.toString()) as { status: number; output: string };
}
