import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createLogger } from '../daemon/log.js';
import type { Agent } from '../daemon/server.js';
import { socketPath } from '../daemon/socket-path.js';
import { UsageError } from '../errors.js';
import { ENTRACLAW_PREFIX } from '../inject/env.js';
import { dieOfSigint } from '../lib/die-of-sigint.js';
import { assertNoInspector } from '../lib/inspector-signal.js';
import { native } from '../lib/native.js';
import { assertTrustedProgram } from '../lib/private-file.js';
import { shellStatus } from '../lib/shell-status.js';
import { inForegroundOfTerminal } from '../lib/terminal.js';
import { selectStore } from '../store/select.js';
import { type StoreOptions, storeContext } from './context.js';
import { reportError } from './output.js';
import { assertCommandNamed, cannotStart } from './start-error.js';

/** Options of `entraclaw agent`. */
export interface AgentCliOptions extends StoreOptions {
  socket?: string;
  verbose?: boolean;
}

/**
 * `entraclaw agent [-- CMD ARGS]`: runs the broker in the foreground until SIGTERM/SIGINT. With a
 * command (like `ssh-agent CMD`) it runs CMD with ENTRACLAW_SOCKET set and stops when CMD exits.
 */
export async function agent(opts: AgentCliOptions, command: string[]): Promise<void> {
  // Before any secret is in memory: no core dumps, no same-user ptrace (as ssh-agent does).
  native().harden();
  if (command.length > 0) assertCommandNamed(command, 'usage: entraclaw agent [-- CMD ARGS]');
  await assertNoInspector();
  const log = createLogger({ verbose: opts.verbose });
  const { ctx, requested, config } = await storeContext(opts);
  const sel = await selectStore(ctx, requested, {
    whenLocked: {
      deferred: (why) =>
        log('warn', 'store locked at start; serving "locked" until it is unlocked', {
          store: requested,
          reason: why.message,
          ...(why.hint ? { hint: why.hint } : {}),
        }),
    },
  });
  for (const s of sel.skipped) log('warn', `${s.name} not used`, { reason: s.reason, using: sel.store.name });
  const socket = socketPath(ctx.paths, opts.socket ?? config.agent.socket);
  const { startAgent } = await import('../daemon/server.js');
  const askpass = process.env.ENTRACLAW_ASKPASS || config.agent.askpass;
  if (askpass && !askpass.startsWith('/')) {
    throw new UsageError(
      `ENTRACLAW_ASKPASS must be an absolute path, not ${askpass}`,
      'e.g. /usr/bin/ssh-askpass',
    );
  }
  // Its exit status answers every confirmation: it must be as much yours as agent.toml that names it.
  if (askpass) assertTrustedProgram(askpass, 'the askpass program', process.getuid?.());
  // Not an error: grants without confirm are served as usual, and the program may be installed later.
  if (askpass && !existsSync(askpass)) {
    log('warn', 'the askpass program does not exist: grants with confirm = true are denied until it does', {
      askpass,
      hint: 'install it, or set [agent] askpass in agent.toml (or ENTRACLAW_ASKPASS) to a program that exists',
    });
  }
  // The handlers go in before the socket exists: whoever sees the socket may signal us at once (a service
  // manager stopping us, a test), and a SIGTERM that found no handler would kill the agent without its
  // cleanup (the socket left behind). One that comes before start-up has finished stops the agent then.
  let daemon: Agent | undefined;
  let stopAfterStart = false;
  let stopping = false;
  const stop = async (code: number, diedOfSigint = false) => {
    if (!daemon) {
      stopAfterStart = true;
      return;
    }
    if (stopping) return;
    stopping = true;
    log('info', 'stopping');
    await daemon.close();
    process.exitCode = code;
    if (diedOfSigint) await dieOfSigint();
    process.exit(code);
  };
  // With a command, SIGINT and SIGTERM are for it (as `run` passes them on): the agent stops when it has
  // exited, with its status. A Ctrl-C reaches it from the terminal already when we share its foreground.
  let child: ChildProcess | undefined;
  for (const s of ['SIGTERM', 'SIGINT'] as const) {
    process.on(s, () => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return void stop(0);
      if (!(s === 'SIGINT' && inForegroundOfTerminal())) child.kill(s);
    });
  }
  process.on('SIGHUP', () => {
    if (!daemon) return; // the policy is read as start-up ends anyway
    log('info', 'SIGHUP: reloading policy');
    daemon.reloadPolicy();
  });

  // Again once the store is open: a SIGUSR1 from node's first milliseconds opens the debugger a little later.
  await assertNoInspector();
  daemon = await startAgent({
    socket,
    paths: ctx.paths,
    store: sel.store,
    log,
    version: '0.1.0',
    ...(askpass ? { askpass } : {}),
  });
  if (stopAfterStart) return void stop(0);

  if (command.length > 0) {
    child = spawn(command[0]!, command.slice(1), { stdio: 'inherit', env: commandEnv(socket) });
    child.on('error', (err: NodeJS.ErrnoException) => {
      // Reported as every CLI error is (message, hint); the status stays 127, as a shell's.
      reportError(cannotStart(command[0]!, err.code, err.code ?? err.message), false);
      void stop(127);
    });
    // As `run` and `sandbox`: a command killed by a signal gives 128 + its number, as a shell reports it.
    child.on('exit', (code, signal) => void stop(shellStatus(code, signal), signal === 'SIGINT'));
  }
}

/**
 * CMD's environment: ours without ENTRACLAW_* (as for `run` and `sandbox`), plus the socket. An inherited
 * ENTRACLAW_PASSPHRASE_FILE or ENTRACLAW_STORE let `entraclaw secret get` in CMD open the store itself,
 * past the daemon that is to be CMD's only door (no grant, no approval, no audit line).
 */
function commandEnv(socket: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env))
    if (!name.startsWith(ENTRACLAW_PREFIX)) env[name] = value;
  env.ENTRACLAW_SOCKET = socket;
  return env;
}
