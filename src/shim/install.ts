import { accessSync, constants, lstatSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConflictError, UsageError } from '../errors.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { makeDirs } from '../lib/make-dir.js';
import { shellQuote } from '../lib/shell.js';

/** The shim commands and the entry script each runs. */
export const SHIMS = { security: 'security-main.cjs', 'secret-tool': 'secret-tool-main.cjs' } as const;

/**
 * The wrapper for one shim. It `exec`s node so that the process talking to the daemon is node running our
 * shim script, whose parent is the tool that ran `security` / `secret-tool`: the daemon decides for that
 * parent. `--` keeps Node from reading its own options (e.g. --env-file) out of the caller's arguments.
 * The paths are fixed at install: when the checkout moved or node was updated away, the wrapper says so
 * and how to re-install, instead of node's "Cannot find module" stack trace (exit 1, as an unreachable
 * daemon).
 */
export function shimWrapper(nodePath: string, script: string): string {
  const node = shellQuote(nodePath);
  const main = shellQuote(script);
  return [
    '#!/bin/sh',
    MARK,
    `[ -f ${main} ] && [ -x ${node} ] && exec ${node} -- ${main} "$@"`,
    `printf '%s: this entraclaw shim cannot start: %s or %s is gone (entraclaw moved, or node was updated); run: entraclaw shim install %s\\n' "\${0##*/}" ${node} ${main} "\${0%/*}" >&2`,
    'exit 1',
    '',
  ].join('\n');
}

/** The second line of every shim: how install tells its own files from anything else. */
const MARK = '# entraclaw shim: talks to the entraclaw daemon, never to a store directly.';

/**
 * Writes the `security` and `secret-tool` shims into `dir` (mode 0755) and returns their paths. A file
 * there that is not one of our shims (say the real /usr/bin/secret-tool) is kept, and nothing is written,
 * unless `force`.
 */
export function installShims(dir: string, opts: { force?: boolean; nodePath?: string } = {}): string[] {
  try {
    makeDirs(dir, 0o755);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot use ${dir} as the shim directory (${code === 'EEXIST' || code === 'ENOTDIR' ? 'a file is in the way' : code})`,
      'name a directory of your own, e.g. ~/.entraclaw/bin',
    );
  }
  try {
    // Checked before anything is written, and said as the same mistake as a directory that cannot be made.
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new UsageError(
      `cannot use ${dir} as the shim directory (${(err as NodeJS.ErrnoException).code}: you cannot write in it)`,
      'name a directory of your own, e.g. ~/.entraclaw/bin',
    );
  }
  const paths = Object.keys(SHIMS).map((name) => join(dir, name));
  const foreign = opts.force ? [] : paths.filter((path) => !ours(path));
  if (foreign.length > 0) {
    throw new ConflictError(
      `${foreign.join(' and ')} ${foreign.length > 1 ? 'exist and are' : 'exists and is'} not an entraclaw shim; nothing was written`,
      'install into a directory of your own (e.g. ~/.entraclaw/bin) and put it first in PATH, or pass --force to replace them',
    );
  }
  // Resolved via ../shim so it holds both in dist/shim and from the bundled CLI's chunks in dist/cli.
  const here = join(dirname(fileURLToPath(import.meta.url)), '..', 'shim');
  return Object.values(SHIMS).map((script, i) => {
    const wrapper = shimWrapper(opts.nodePath ?? process.execPath, join(here, script));
    writeFileAtomic(paths[i]!, Buffer.from(wrapper), 0o755);
    return paths[i]!;
  });
}

// Absent, or a file whose second line is our mark (an earlier install, perhaps for another node).
function ours(path: string): boolean {
  let text: string;
  try {
    const st = lstatSync(path);
    if (!st.isFile()) return false;
    text = readFileSync(path, 'latin1').slice(0, 512);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
  return text.split('\n')[1] === MARK;
}
