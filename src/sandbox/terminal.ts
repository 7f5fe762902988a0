// The terminal's part in signalling a sandboxed command. The command runs in a session of its own (no
// controlling terminal: that is what stops TIOCSTI), so the keys a terminal turns into signals — Ctrl-C,
// Ctrl-Z, a resize — reach only `entraclaw sandbox`, in the terminal's foreground, never the command.
// Here they are handed on the way the terminal would have handed them to the command had it been in the
// foreground itself.
import { childrenOf, descendantsOf, processGroupOf } from '../lib/proc-tree.js';

/**
 * What a terminal signals for a key: the command's process group (the command, a shell's foreground
 * job, a build's compilers: what it started without a group of its own), never the sandbox's init.
 */
export function commandGroup(init: number): number[] {
  const groups = new Set(childrenOf(init).map(processGroupOf));
  return descendantsOf(init).filter((pid) => groups.has(processGroupOf(pid)));
}

/** Sends `signal` to each of `pids`; returns whether one of them took it. */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals): boolean {
  let sent = false;
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
      sent = true;
    } catch {
      // Already gone.
    }
  }
  return sent;
}

/**
 * Passes a resize (SIGWINCH) to the command's group and makes Ctrl-Z (SIGTSTP) suspend the whole
 * sandbox with us. Without a controlling terminal, a process left running inside while we are stopped
 * gets no SIGTTIN: it would go on reading the terminal, taking the keys typed to your shell. So every
 * process of the sandbox is stopped (SIGSTOP: one that caught or ignored SIGTSTP would read on), then
 * we stop ourselves with SIGTSTP, as the shell expects of a job, and resume them when `fg` resumes us.
 * Returns a function that removes the handlers.
 */
export function passTerminalSignals(init: () => number | undefined): () => void {
  const resize = () => {
    const pid = init();
    if (pid !== undefined) signalAll(commandGroup(pid), 'SIGWINCH');
  };
  const suspend = () => {
    const pid = init();
    const stopped: number[] = [];
    // Stopped processes fork no more: scan until a pass finds nothing new, so a child forked while we
    // stopped its parent is not left running.
    for (let more = pid === undefined ? [] : descendantsOf(pid); more.length > 0; ) {
      signalAll(more, 'SIGSTOP');
      stopped.push(...more);
      more = descendantsOf(pid!).filter((p) => !stopped.includes(p));
    }
    // Without our handler the default action stops us inside kill(), which returns once `fg` (SIGCONT)
    // resumed us. In an orphaned process group (no job-control shell above us to resume it) the kernel
    // discards the SIGTSTP and kill() returns at once. Either way the sandbox goes on when we do.
    process.off('SIGTSTP', suspend);
    process.kill(process.pid, 'SIGTSTP');
    process.on('SIGTSTP', suspend);
    signalAll(stopped, 'SIGCONT');
  };
  process.on('SIGWINCH', resize);
  process.on('SIGTSTP', suspend);
  return () => {
    process.off('SIGWINCH', resize);
    process.off('SIGTSTP', suspend);
  };
}
