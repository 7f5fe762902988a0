import { UsageError } from '../errors.js';
import { revokeClient } from '../policy/edit.js';
import { note, printJson } from './output.js';
import { editPolicy, policyFiles } from './policy-files.js';

/** `entraclaw revoke NAME|sha256:HEX`: removes clients; takes effect on their next request. */
export async function revoke(target: string, opts: { json?: boolean }): Promise<void> {
  if (target.trim() === '')
    throw new UsageError('revoke needs a client name or sha256:HEX', 'see them with `entraclaw clients`');
  const removed = await editPolicy(policyFiles().policy, (p) => {
    const r = revokeClient(p, target);
    return { policy: r.policy, result: r.removed };
  });
  if (opts.json) printJson({ revoked: removed.map((c) => c.name) });
  else note(`revoked ${removed.map((c) => c.name).join(', ')}`);
}
