import { realpathSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { findCommand } from '../lib/which.js';
import { hashExecutable } from './hash.js';
import { interpreterName } from './interpreter.js';

// The daemon knows an interpreter by its executable's name. A copy under another name (`mytool`) is
// pinned as a plain program, and approving it approves every script anyone runs with it: the approving
// commands look for such a twin among the interpreters on PATH and say so.
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
  const candidates = new Set<string>([process.execPath]);
  for (const command of COMMANDS) {
    const found = findCommand(command, path, '/');
    if (found) candidates.add(found);
  }
  for (const candidate of candidates) {
    try {
      const real = realpathSync(candidate);
      // Sizes first: hashing is only for a file that could be the same bytes.
      if (statSync(real).size !== size) continue;
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
