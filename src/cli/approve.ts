import { ConflictError, NotFoundError, UsageError } from '../errors.js';
import { interpreterTwin, twinWarning } from '../identity/interpreter-twin.js';
import { programLabel } from '../lib/visible.js';
import { addClient, freeName, pinOf, samePin } from '../policy/edit.js';
import { loadPolicy } from '../policy/load.js';
import { findClient } from '../policy/match.js';
import { dropPending, listPending, type PendingEntry, takePending } from '../policy/pending.js';
import type { Client, Policy } from '../policy/schema.js';
import { note, printJson } from './output.js';
import {
  defaultName,
  editPolicy,
  type GrantFlags,
  grantsFrom,
  noteAskpassNeeded,
  policyFiles,
} from './policy-files.js';

/** Options of `approve` and `register`. */
export interface GrantOptions extends GrantFlags {
  name?: string;
  json?: boolean;
}

// What approving one pending entry did: the client it became, or the client that already pinned it.
interface Approval {
  entry: PendingEntry;
  client: Client;
  already: Client | undefined;
}

// No pending program has this hash: say so, and when an approved client already does, name it (approving
// twice, say), since that is what the user is after.
function notPending(sha: string, policy: Policy): NotFoundError {
  const approved = policy.clients.filter((c) => pinOf(c).startsWith(sha)).map((c) => c.name);
  if (approved.length > 0) {
    return new NotFoundError(
      `no pending program has hash ${sha}: it is already approved as client ${approved.map((n) => `"${n}"`).join(', ')}`,
      `add grants with \`entraclaw grant ${approved[0]} --grant ...\``,
    );
  }
  return new NotFoundError(
    `no pending program has hash ${sha}`,
    'see `entraclaw pending` (a script is named by its own hash), or pre-approve with `entraclaw register PATH`',
  );
}

// The approved client of that name, if the policy loads (a broken policy must not hide the usage error).
function clientNamed(policyPath: string, name: string): Client | undefined {
  try {
    return loadPolicy(policyPath).clients.find((c) => c.name === name);
  } catch {
    return undefined;
  }
}

/**
 * Drops the pending entries the daemon now serves as `client`: the same bytes queued under another path
 * (a compiled program is its hash wherever it lives) would otherwise wait for an approval they no longer need.
 */
export async function dropServed(pendingPath: string, client: Client): Promise<void> {
  await dropPending(pendingPath, (e) => findClient([client], e) !== undefined);
}

/** `entraclaw approve <pending-id|sha256:HEX>`: turns a queued program into a client with the given grants. */
export async function approve(target: string, opts: GrantOptions): Promise<void> {
  const files = policyFiles();
  const grants = grantsFrom(opts);
  await noteAskpassNeeded(opts);
  let id = target;
  // Any case, as revoke takes it: `SHA256:ABC...` is a hash, not a pending id that does not exist.
  if (/^sha256:/i.test(target)) {
    const sha = target.slice(7).toLowerCase();
    if (!/^[0-9a-f]{12,64}$/.test(sha)) {
      throw new UsageError(
        `"${target}" is not sha256: followed by 12 to 64 hex digits`,
        'copy the hash from `entraclaw pending`, or use the pending id (p-xxxxxxxx)',
      );
    }
    const hits = listPending(files.pending).filter((e) => pinOf(e).startsWith(sha));
    if (hits.length === 0) throw notPending(sha, loadPolicy(files.policy));
    if (hits.length > 1) {
      // More digits tell entries apart only when their hashes differ: the same script at two paths has
      // one hash at all 64 digits.
      const ids = hits.map((h) => h.id);
      throw new UsageError(
        `sha256:${sha} matches ${hits.length} pending programs (${ids.join(', ')})`,
        new Set(hits.map(pinOf)).size > 1
          ? 'give more digits of the hash, or the pending id'
          : `they have the same content (one hash); approve one by its pending id: entraclaw approve ${ids[0]} --grant ...`,
      );
    }
    id = hits[0]!.id;
  } else if (!/^p-[0-9a-f]{8}$/.test(target)) {
    // The name of an approved client is the natural mistake: approve is for the queue, grant for clients.
    const client = clientNamed(files.policy, target);
    throw new UsageError(
      `"${target}" is neither a pending id (p-xxxxxxxx) nor sha256:HEX${client ? `; it is the name of an approved client` : ''}`,
      client ? `add grants to it with \`entraclaw grant ${target} --grant ...\`` : 'see `entraclaw pending`',
    );
  }
  // The entry leaves the queue only once the policy is saved: a taken name or a bad one loses nothing.
  const { entry, client, already } = await takePending(files.pending, id, (entry) =>
    editPolicy(files.policy, (p): { policy: Policy; result: Approval } => {
      // A request that arrived while this program was being approved queues it again: that entry is
      // stale, and taking it (with the policy unchanged) is how it goes.
      const already = p.clients.find((c) => samePin(c, entry));
      if (already) return { policy: p, result: { entry, client: already, already } };
      const client = {
        name: opts.name ?? freeName(p, defaultName(entry.exe, entry.script)),
        exe: entry.exe,
        sha256: entry.sha256,
        ...(entry.script ? { script: entry.script, scriptSha256: entry.scriptSha256 } : {}),
        added: new Date().toISOString(),
        grants,
      };
      return { policy: addClient(p, client), result: { entry, client, already: undefined } };
    }),
  );
  if (already) {
    throw new ConflictError(
      `${id} is already approved as client "${already.name}" (it was queued before that client was added, or while it was being approved); the pending entry is dropped`,
      `add grants to it with \`entraclaw grant ${already.name}\``,
    );
  }
  await dropServed(files.pending, client);
  const twin = entry.script ? undefined : interpreterTwin(entry.exe, entry.sha256);
  if (twin) note(twinWarning(entry.exe, twin));
  if (opts.json) printJson(client);
  else
    note(
      `approved ${client.name} (${programLabel(entry.exe, entry.script)}); takes effect on its next request`,
    );
}
