// Imported first by every entry point (the CLI, both shims) for its side effect.
//
// Node answers SIGUSR1 by opening its inspector: a debugger on 127.0.0.1:9229 that runs whatever code is
// sent to it inside this process. The port is TCP, so any local user can connect, and the process may be
// the daemon (the vault key, every value it serves; non-dumpable so that no debugger gets in), a
// sandbox's broker, `run` holding secrets or a shim with one in hand. A listener of our own replaces
// node's handler, so the signal does nothing here (`run` adds one that passes it on to CMD).
import { DeniedError } from '../errors.js';

process.on('SIGUSR1', () => undefined);

/**
 * Refuses to go on when a debugger is open in this process without having been asked for on node's own
 * command line: a SIGUSR1 that came in the few milliseconds before the listener above was in place.
 */
export async function assertNoInspector(): Promise<void> {
  if (process.execArgv.some((a) => a.startsWith('--inspect'))) return;
  const { url } = await import('node:inspector');
  if (url() === undefined) return;
  throw new DeniedError(
    `a debugger was opened in this process (${url()}), by a SIGUSR1 as it started or by --inspect in NODE_OPTIONS; it would let anyone on this machine read the secrets it holds`,
    process.env.NODE_OPTIONS?.includes('--inspect')
      ? 'remove --inspect from NODE_OPTIONS (to debug entraclaw, give node --inspect on its command line)'
      : 'start it again; if this recurs, find what sends SIGUSR1 to new processes',
  );
}
