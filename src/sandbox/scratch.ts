// The sandbox's scratch directory (private broker socket, shims) for the run, under a root the caller
// picks: `entraclaw sandbox` uses Entraclaw's runtime directory, which every sandbox hides, so no other
// run can rewrite what this one binds. A run killed with SIGKILL cannot remove it, so each run holds a
// lock in its directory and the next run removes the directories whose lock nobody holds. Nothing
// secret is ever written there.
import { closeSync, lstatSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../lib/native.js';

const PREFIX = 'entraclaw-sandbox-';
const LOCK = 'owner.lock';
/** Younger directories are left alone: their run may not have taken its lock yet. */
const GRACE_MS = 10_000;

/** A scratch directory held by this run until `release()`. */
export interface Scratch {
  dir: string;
  release(): void;
}

/** Creates this run's scratch directory and locks it for the life of the run. */
export function createScratch(root = tmpdir()): Scratch {
  const dir = mkdtempSync(join(root, PREFIX));
  const fd = openSync(join(dir, LOCK), 'w', 0o600);
  native().flock(fd, true, true);
  return {
    dir,
    release() {
      rmSync(dir, { recursive: true, force: true });
      closeSync(fd);
    },
  };
}

/** Removes scratch directories of ours left by runs that died; returns how many were removed. */
export function sweepStaleScratch(root = tmpdir(), now = Date.now()): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => n.startsWith(PREFIX));
  } catch {
    return 0;
  }
  for (const name of names) {
    const dir = join(root, name);
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid!() || now - st.mtimeMs < GRACE_MS) continue;
      if (held(join(dir, LOCK))) continue;
      rmSync(dir, { recursive: true, force: true });
      removed++;
    } catch {
      // Another run removing it at the same time, or not ours to read: leave it.
    }
  }
  return removed;
}

// Whether a live run holds the lock (its flock is gone with its process).
function held(lock: string): boolean {
  let fd: number;
  try {
    fd = openSync(lock, 'r');
  } catch {
    return false;
  }
  try {
    return !native().flock(fd, true, true);
  } finally {
    closeSync(fd);
  }
}
