import { addGrants } from '../policy/edit.js';
import type { GrantOptions } from './approve.js';
import { note, printJson } from './output.js';
import { editPolicy, grantsFrom, policyFiles } from './policy-files.js';

/** `entraclaw grant NAME --grant ...`: adds grants to an approved client. */
export async function grant(name: string, opts: GrantOptions): Promise<void> {
  const grants = grantsFrom(opts);
  await editPolicy(policyFiles().policy, (p) => ({ policy: addGrants(p, name, grants), result: undefined }));
  if (opts.json) printJson({ client: name, added: grants });
  else note(`added ${grants.length} grant(s) to ${name}`);
}
