import { describeGrant } from '../policy/describe.js';
import { addGrants } from '../policy/edit.js';
import { outlasting } from '../policy/match.js';
import type { GrantOptions } from './approve.js';
import { note, printJson } from './output.js';
import { editPolicy, grantsFrom, noteAskpassNeeded, policyFiles } from './policy-files.js';

/** `entraclaw grant NAME --grant ...`: adds grants to an approved client (none it already has). */
export async function grant(name: string, opts: GrantOptions): Promise<void> {
  const grants = grantsFrom(opts);
  await noteAskpassNeeded(opts);
  const { added, kept } = await editPolicy(policyFiles().policy, (p) => {
    const policy = addGrants(p, name, grants);
    const before = p.clients.find((c) => c.name === name)!.grants.length;
    const after = policy.clients.find((c) => c.name === name)!.grants;
    const added = after.slice(before);
    const now = new Date();
    // A --ttl beside a grant that covers as much for longer limits nothing: say so, or it reads as a limit.
    const kept = added.flatMap((g) => {
      const longer = outlasting(after, g, now);
      return longer ? [{ grant: g, by: longer }] : [];
    });
    return { policy, result: { added, kept } };
  });
  if (opts.json) printJson({ client: name, added });
  else if (added.length === 0)
    note(`${name} already has ${grants.length > 1 ? 'these grants' : 'this grant'}; nothing added`);
  else note(`added ${added.length} grant(s) to ${name}`);
  for (const { grant: g, by } of kept) {
    note(
      `note: when ${describeGrant(g)} runs out, ${name} keeps that access: its grant ${describeGrant(by)} covers it ${by.expiresAt ? 'for longer' : 'without expiry'}; to end it then, remove that grant from policy.toml (or \`entraclaw revoke ${name}\` and register it again with --ttl)`,
    );
  }
}
