import { upgradeClient } from '../policy/edit.js';
import { note, printJson } from './output.js';
import { editPolicy, pinFile, policyFiles } from './policy-files.js';

/** `entraclaw upgrade PATH`: re-pins a program or script after an update, keeping its grants. */
export async function upgrade(path: string, opts: { json?: boolean }): Promise<void> {
  const files = policyFiles();
  const pinned = pinFile(path, 'program');
  const { upgraded, changed } = await editPolicy(files.policy, (p) => {
    const r = upgradeClient(p, pinned.path, pinned.sha256);
    const before = new Map(p.clients.map((c) => [c.name, `${c.sha256} ${c.scriptSha256}`]));
    const changed = r.upgraded.some((c) => before.get(c.name) !== `${c.sha256} ${c.scriptSha256}`);
    return { policy: r.policy, result: { upgraded: r.upgraded, changed } };
  });
  const names = upgraded.map((c) => c.name).join(', ');
  const short = `sha256:${pinned.sha256.slice(0, 16)}…`;
  if (opts.json)
    printJson({ path: pinned.path, sha256: pinned.sha256, clients: upgraded.map((c) => c.name), changed });
  else if (changed) note(`re-pinned ${names} to ${short}`);
  else note(`${names} already pinned ${pinned.path} at ${short}; nothing changed`);
}
