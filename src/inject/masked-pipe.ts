import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { createMaskStream } from './mask.js';

// Copies one of a command's output pipes, masked, onto ours. While the command runs, the copy lasts until
// the pipe ends. Once the command has exited, the pipe may still be held open by processes it left
// behind (`server &`), which may never close it; so from then on the copy also ends as soon as the pipe
// has gone quiet — what the command wrote before it exited is in the pipe already, and has been read
// once a read finds nothing more. A descendant that keeps writing cannot hold it open forever either:
// reading stops after DRAIN_LIMIT_MS in all.

/** How long a pipe must stay silent, after the command exited, to count as drained. */
export const QUIET_MS = 100;
/** The most time spent reading after the command exited, not counting time our own output was full. */
export const DRAIN_LIMIT_MS = 2_000;

/** One masked copy of a command's output pipe. */
export interface MaskedPipe {
  /** Resolves once the copy is over and everything read has been handed, masked, to the output. */
  readonly done: Promise<void>;
  /** Tells the copy that the command has exited: from now on it ends when the pipe goes quiet. */
  commandExited(): void;
  /** Stops reading now; what was read is still masked and handed on. */
  stop(): void;
}

/** Starts copying `from` to `to` with every maskable secret masked. */
export function pipeMasked(from: Readable, to: Writable, secrets: readonly Buffer[]): MaskedPipe {
  const masker = createMaskStream(secrets);
  let reading = true;
  let drainingSince: number | undefined; // set while the command has exited and we are free to read
  let exited = false;
  let held = false; // our output is full: the pipe is paused, so its silence means nothing
  let budget = DRAIN_LIMIT_MS;
  let chunks = 0;
  let quiet: NodeJS.Timeout | undefined;
  let limit: NodeJS.Timeout | undefined;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });

  const stopClocks = () => {
    clearTimeout(quiet);
    clearTimeout(limit);
    if (drainingSince !== undefined) budget -= performance.now() - drainingSince;
    drainingSince = undefined;
  };
  // A timer fires before the event loop polls for input, so a late one (a busy loop) could see silence
  // where data is waiting: the verdict waits for setImmediate, which runs after that poll.
  const armQuiet = () => {
    clearTimeout(quiet);
    quiet = setTimeout(() => {
      const seen = chunks;
      setImmediate(() => {
        if (chunks === seen && drainingSince !== undefined) stop();
      });
    }, QUIET_MS);
  };
  const startClocks = () => {
    drainingSince = performance.now();
    armQuiet();
    limit = setTimeout(stop, Math.max(0, budget));
  };

  const onData = (chunk: Buffer) => {
    chunks++;
    if (!masker.write(chunk)) {
      held = true;
      from.pause();
      stopClocks();
    } else if (drainingSince !== undefined) armQuiet();
  };
  masker.on('drain', () => {
    if (!reading || !held) return;
    held = false;
    from.resume();
    if (exited) startClocks();
  });

  function stop(): void {
    if (!reading) return;
    reading = false;
    stopClocks();
    from.off('data', onData);
    from.pause();
    // Read but not yet passed on (we were paused for our output): it is the command's output too.
    for (let chunk = from.read() as Buffer | null; chunk !== null; chunk = from.read() as Buffer | null) {
      masker.write(chunk);
    }
    from.destroy();
    masker.cut();
  }

  from.on('data', onData);
  from.on('end', () => {
    if (!reading) return;
    reading = false;
    stopClocks();
    masker.end();
  });
  masker.on('end', finish);
  masker.pipe(to);
  // Like the direct pipe the command has without masking: when our side is closed (`| head -1`), the
  // command's pipe is closed too, so its next write gets SIGPIPE/EPIPE — instead of an unhandled EPIPE here.
  to.on('error', () => {
    masker.unpipe(to);
    reading = false;
    stopClocks();
    from.destroy();
    finish();
  });

  return {
    done,
    commandExited() {
      if (exited) return;
      exited = true;
      if (reading && !held) startClocks();
    },
    stop,
  };
}
