import { addGrants } from '../policy/edit.js';
import type { GrantOptions } from './approve.js';
import { note, printJson } from './output.js';
import { editPolicy, grantsFrom, noteAskpassNeeded, policyFiles } from './policy-files.js';

/** `entraclaw grant NAME --grant ...`: adds grants to an approved client (none it already has). */
export async function grant(name: string, opts: GrantOptions): Promise<void> {
  const grants = grantsFrom(opts);
  await noteAskpassNeeded(opts);
  const added = await editPolicy(policyFiles().policy, (p) => {
    const policy = addGrants(p, name, grants);
    const before = p.clients.find((c) => c.name === name)!.grants.length;
    const after = policy.clients.find((c) => c.name === name)!.grants;
    return { policy, result: after.slice(before) };
  });
  if (opts.json) printJson({ client: name, added });
  else if (added.length === 0)
    note(`${name} already has ${grants.length > 1 ? 'these grants' : 'this grant'}; nothing added`);
  else note(`added ${added.length} grant(s) to ${name}`);
}
