import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { stableNodePath } from '../lib/node-path.js';
import { installShims } from '../shim/install.js';
import { note, printJson } from './output.js';

/** `entraclaw shim install DIR`: writes the `security` and `secret-tool` shims (prepend DIR to PATH). */
export async function shimInstall(dir: string, opts: { json?: boolean; force?: boolean }): Promise<void> {
  // resolve('') is the current directory: `shim install "$DIR"` with DIR unset would write the shims there.
  if (dir === '')
    throw new UsageError('DIR is empty', 'name the directory for the shims, e.g. ~/.entraclaw/bin');
  const paths = installShims(resolve(dir), { force: opts.force === true, nodePath: stableNodePath() });
  if (opts.json) return printJson({ installed: paths });
  note(`installed ${paths.join(', ')}`);
  note(`use them with: export PATH=${resolve(dir)}:$PATH   (they need a running \`entraclaw agent\`)`);
}
