import { upgradeClient } from '../policy/edit.js';
import { note, printJson } from './output.js';
import { editPolicy, pinFile, policyFiles } from './policy-files.js';

/** `entraclaw upgrade PATH`: re-pins a program or script after an update, keeping its grants. */
export async function upgrade(path: string, opts: { json?: boolean }): Promise<void> {
  const files = policyFiles();
  const pinned = pinFile(path, 'program');
  const upgraded = await editPolicy(files.policy, (p) => {
    const r = upgradeClient(p, pinned.path, pinned.sha256);
    return { policy: r.policy, result: r.upgraded };
  });
  if (opts.json)
    printJson({ path: pinned.path, sha256: pinned.sha256, clients: upgraded.map((c) => c.name) });
  else note(`re-pinned ${upgraded.map((c) => c.name).join(', ')} to sha256:${pinned.sha256.slice(0, 16)}…`);
}
