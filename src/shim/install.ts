import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { shellQuote } from '../lib/shell.js';

/** The shim commands and the entry script each runs. */
export const SHIMS = { security: 'security-main.js', 'secret-tool': 'secret-tool-main.js' } as const;

/**
 * The wrapper for one shim. It `exec`s node so that the process talking to the daemon is node running our
 * shim script, whose parent is the tool that ran `security` / `secret-tool`: the daemon decides for that
 * parent. `--` keeps Node from reading its own options (e.g. --env-file) out of the caller's arguments.
 */
export function shimWrapper(nodePath: string, script: string): string {
  return `#!/bin/sh\n# entraclaw shim: talks to the entraclaw daemon, never to a store directly.\nexec ${shellQuote(nodePath)} -- ${shellQuote(script)} "$@"\n`;
}

/** Writes the `security` and `secret-tool` shims into `dir` (mode 0755) and returns their paths. */
export function installShims(dir: string, nodePath = process.execPath): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Resolved via ../shim so it holds both in dist/shim and from the bundled CLI's chunks in dist/cli.
  const here = join(dirname(fileURLToPath(import.meta.url)), '..', 'shim');
  return Object.entries(SHIMS).map(([name, script]) => {
    const path = join(dir, name);
    writeFileAtomic(path, Buffer.from(shimWrapper(nodePath, join(here, script))), 0o755);
    return path;
  });
}
