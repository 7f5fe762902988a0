// Confirm-on-use, as ssh-agent -c does it: a grant with `confirm = true` is served only after the user
// says yes in a program of their choosing (an askpass: ssh-askpass, a zenity/kdialog wrapper, a script
// that asks on a terminal). The program gets the question as its only argument and
// SSH_ASKPASS_PROMPT=confirm; exit status 0 is yes, anything else (or no answer in time) is no. The
// question names the program and the item, never a value.
import { type ChildProcess, spawn } from 'node:child_process';
import { descendantsOf, startTimeOf } from '../lib/proc-tree.js';
import type { Logger } from './log.js';

/** How long the user has to answer before the request is denied. */
export const CONFIRM_TIMEOUT_MS = 60_000;
/** Questions that may wait for the user at once; more are denied rather than queued without bound. */
export const MAX_WAITING_CONFIRMATIONS = 16;

/** The user's answer: yes, or no with why. */
export type Answer = { yes: true } | { yes: false; why: string };

/** Asks the user one question; resolves when they answer, the program fails or the time runs out. */
export type Confirmer = (question: string) => Promise<Answer>;

/** How long an open askpass has after SIGTERM at the daemon's stop before it and its dialog get SIGKILL. */
export const ASKPASS_STOP_GRACE_MS = 2_000;

/** A Confirmer that runs `askpass`, with `close()` for the daemon's shutdown. */
export type AskpassConfirmer = Confirmer & {
  /**
   * Takes down an open dialog (its question can no longer be answered) and refuses later questions;
   * resolves once it is gone, killed if it outlived the grace period.
   */
  close(): Promise<void>;
};

/** A Confirmer that runs `askpass`, one question at a time (two dialogs at once would be ambiguous). */
export function askpassConfirmer(
  askpass: string,
  log: Logger,
  timeoutMs = CONFIRM_TIMEOUT_MS,
  graceMs = ASKPASS_STOP_GRACE_MS,
): AskpassConfirmer {
  let tail: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  let closed = false;
  const open = new Set<ChildProcess>();
  const confirmer = (question: string): Promise<Answer> => {
    if (closed) return Promise.resolve({ yes: false, why: 'the daemon is stopping' });
    if (waiting >= MAX_WAITING_CONFIRMATIONS) {
      return Promise.resolve({
        yes: false,
        why: `${waiting} confirmations are already waiting for the user`,
      });
    }
    waiting++;
    const asked = tail.then(() =>
      closed
        ? { yes: false as const, why: 'the daemon is stopping' }
        : ask(askpass, question, timeoutMs, log, open),
    );
    tail = asked.catch(() => undefined);
    return asked.finally(() => {
      waiting--;
    });
  };
  return Object.assign(confirmer, {
    async close() {
      closed = true;
      await Promise.all([...open].map((child) => stop(child, graceMs)));
    },
  });
}

function ask(
  askpass: string,
  question: string,
  timeoutMs: number,
  log: Logger,
  open: Set<ChildProcess>,
): Promise<Answer> {
  return new Promise((resolve) => {
    let done = false;
    const answer = (a: Answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(a);
    };
    const child = spawn(askpass, [question], {
      stdio: 'ignore',
      env: { ...process.env, SSH_ASKPASS_PROMPT: 'confirm' },
    });
    open.add(child);
    child.on('close', () => open.delete(child));
    const timer = setTimeout(() => {
      takeDown(child, 'SIGKILL');
      answer({ yes: false, why: `no answer within ${Math.round(timeoutMs / 1000)} s` });
    }, timeoutMs);
    child.on('error', (err) => {
      log('error', 'cannot run the askpass program', { askpass, error: err.message });
      answer({ yes: false, why: `the askpass program ${askpass} could not run (${err.message})` });
    });
    child.on('exit', (code, signal) =>
      answer(
        code === 0
          ? { yes: true }
          : { yes: false, why: `the user declined (askpass ${signal ?? `exit ${code}`})` },
      ),
    );
  });
}

// An askpass is often a wrapper script around the dialog (zenity, kdialog): the dialog goes too. Not a
// process group: a terminal askpass must stay in the terminal's session to read from it.
function takeDown(child: ChildProcess, signal: NodeJS.Signals): void {
  const tree = child.pid === undefined ? [] : descendantsOf(child.pid);
  child.kill(signal);
  for (const pid of tree) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

// SIGTERM to the askpass and what it runs, then SIGKILL to whichever of them is still there after the
// grace period: a wrapper that ignores SIGTERM (a terminal askpass guarding its prompt, `trap '' TERM`)
// would otherwise outlive the daemon with its dialog, whose answer now goes nowhere. The tree is taken
// before the first signal, as a wrapper gone by then leaves its dialog to init, where we could not find
// it; each pid with its start time, so a pid recycled meanwhile is not killed.
async function stop(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined) return;
  const tree = [child.pid, ...descendantsOf(child.pid)]
    .map((pid) => ({ pid, started: startTimeOf(pid) }))
    .filter((p) => p.started !== undefined);
  const left = () => tree.filter((p) => startTimeOf(p.pid) === p.started);
  const signal = (sig: NodeJS.Signals) => {
    for (const { pid } of left()) {
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (left().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  signal('SIGKILL');
}
