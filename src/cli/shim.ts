import { resolve } from 'node:path';
import { stableNodePath } from '../lib/node-path.js';
import { installShims } from '../shim/install.js';
import { note, printJson } from './output.js';

/** `entraclaw shim install DIR`: writes the `security` and `secret-tool` shims (prepend DIR to PATH). */
export async function shimInstall(dir: string, opts: { json?: boolean; force?: boolean }): Promise<void> {
  const paths = installShims(resolve(dir), { force: opts.force === true, nodePath: stableNodePath() });
  if (opts.json) return printJson({ installed: paths });
  note(`installed ${paths.join(', ')}`);
  note(`use them with: export PATH=${resolve(dir)}:$PATH   (they need a running \`entraclaw agent\`)`);
}
