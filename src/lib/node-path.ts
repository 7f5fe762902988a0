import { realpathSync } from 'node:fs';
import { findCommand } from './which.js';

/**
 * The path to write into files that outlive this process (the service unit, shim wrappers) for the node
 * running now: the first `node` on PATH when it reaches this same file through a link, else execPath.
 * execPath is the versioned file (Homebrew's Cellar/node/VERSION/bin/node), which an upgrade of node
 * removes; the link on PATH (/opt/homebrew/bin/node) is re-pointed instead. A PATH `node` that is another
 * file (another node, a version manager's wrapper script) is not this node and is not used.
 */
export function stableNodePath(
  execPath: string = process.execPath,
  path: string | undefined = process.env.PATH,
  cwd: string = process.cwd(),
): string {
  const onPath = findCommand('node', path, cwd);
  if (onPath === undefined || onPath === execPath) return execPath;
  try {
    return realpathSync(onPath) === realpathSync(execPath) ? onPath : execPath;
  } catch {
    return execPath;
  }
}
