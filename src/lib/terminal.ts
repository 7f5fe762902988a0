import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { statFields } from './proc-stat.js';

/**
 * Whether this process is in the foreground process group of its controlling terminal. Then a key such
 * as Ctrl-C (SIGINT), Ctrl-\ (SIGQUIT) or a window resize (SIGWINCH) is delivered by the kernel to every
 * process of the group, children included, and relaying it would deliver it twice.
 */
export function inForegroundOfTerminal(): boolean {
  try {
    if (process.platform === 'linux') {
      // state ppid pgrp session tty_nr tpgid ...
      const [, , pgrp, , , tpgid] = statFields(readFileSync('/proc/self/stat', 'latin1'));
      return Number(tpgid) > 0 && tpgid === pgrp;
    }
    const r = spawnSync('ps', ['-o', 'pgid=,tpgid=', '-p', String(process.pid)], { encoding: 'utf8' });
    const [pgid, tpgid] = r.stdout.trim().split(/\s+/);
    return Number(tpgid) > 0 && tpgid === pgid;
  } catch {
    return false;
  }
}
