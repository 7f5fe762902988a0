// Who a process started, from /proc (Linux; elsewhere nobody): the sandbox forwards signals to its
// command's processes, and the daemon takes down an askpass wrapper together with the dialog it runs.
import { readdirSync, readFileSync } from 'node:fs';
import { statFields } from './proc-stat.js';

/** The live (not zombie) children of `pid`, from every thread's /proc children list. */
export function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) =>
        readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number),
      )
      .filter(alive);
  } catch {
    return [];
  }
}

/** `pid`'s live descendants, parents before their children. */
export function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of childrenOf(next)) {
      // A recycled pid could come round again: each process once.
      if (out.includes(child)) continue;
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

// Not a zombie (nor gone).
function alive(pid: number): boolean {
  return startTimeOf(pid) !== undefined;
}

/**
 * When `pid` started (field 22 of /proc/PID/stat, clock ticks after boot), or undefined for a process
 * gone or a zombie: with the pid, it names one process, whatever later gets the same pid.
 */
export function startTimeOf(pid: number): string | undefined {
  try {
    const fields = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return fields[0] === undefined || fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** The process group of `pid` (its pgrp in /proc/PID/stat), or undefined once it is gone. */
export function processGroupOf(pid: number): number | undefined {
  try {
    const pgrp = Number(statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[2]);
    return Number.isInteger(pgrp) && pgrp > 0 ? pgrp : undefined;
  } catch {
    return undefined;
  }
}
