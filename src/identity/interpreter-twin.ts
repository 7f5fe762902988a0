import { realpathSync, statSync } from 'node:fs';
import { basename, delimiter } from 'node:path';
import { findCommands } from '../lib/which.js';
import { hashExecutable } from './hash.js';
import { interpreterName } from './interpreter.js';

// The daemon knows an interpreter by its executable's name. A copy under another name (`mytool`) is
// pinned as a plain program, and approving it approves every script anyone runs with it: the approving
// commands look for such a twin among the interpreters on PATH and say so.
// A PATH longer than this is cut: each entry costs a stat per command, for a warning.
const MAX_PATH_DIRS = 64;
const COMMANDS = ['node', 'python3', 'python', 'ruby', 'perl', 'bash', 'sh', 'dash', 'zsh', 'deno', 'bun'];

/** The interpreter (on PATH, or the node running us) whose bytes the file at `exe` has; undefined if none. */
export function interpreterTwin(
  exe: string,
  sha256: string,
  path = process.env.PATH,
): { path: string; name: string } | undefined {
  if (interpreterName(basename(exe))) return undefined;
  let size: number;
  try {
    size = statSync(exe).size;
  } catch {
    return undefined;
  }
  // Every hit on PATH, not only the first: a version manager's shims (pyenv, rbenv, asdf) come first
  // and are small scripts, while the interpreters they hand over to sit further along.
  const bounded = path?.split(delimiter).slice(0, MAX_PATH_DIRS).join(delimiter);
  const candidates = [process.execPath, ...COMMANDS.flatMap((c) => findCommands(c, bounded, '/'))];
  // One file reached by several names (a symlink, a hard link, /bin beside /usr/bin) is looked at once.
  const seen = new Set<string>();
  for (const candidate of candidates) {
    try {
      const real = realpathSync(candidate);
      const st = statSync(real);
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) continue;
      seen.add(id);
      // Sizes first: hashing is only for a file that could be the same bytes.
      if (st.size !== size) continue;
      const name = interpreterName(basename(real));
      if (name && hashExecutable(real) === sha256) return { path: real, name };
    } catch {
      // Gone or unreadable: not a twin we can show.
    }
  }
  return undefined;
}

/** The warning an approving command prints for a program that is an interpreter under another name. */
export function twinWarning(exe: string, twin: { path: string; name: string }): string {
  return `warning: ${exe} has the same bytes as ${twin.path} (the ${twin.name} interpreter) under another name: it runs any script it is given, and this approval covers them all`;
}
