import { NotFoundError, UsageError } from '../errors.js';
import { grantSpecFor } from '../lib/percent.js';
import { programLabel } from '../lib/visible.js';
import { pinOf } from '../policy/edit.js';
import { loadPolicy } from '../policy/load.js';
import { findClient } from '../policy/match.js';
import { listPending, type PendingEntry, removePending } from '../policy/pending.js';
import type { Client } from '../policy/schema.js';
import { note, printJson } from './output.js';
import { policyFiles } from './policy-files.js';
import { printTable } from './table.js';

/** `entraclaw pending`: programs that asked before being approved (kept 24 h). */
export async function pending(opts: { json?: boolean }): Promise<void> {
  const files = policyFiles();
  const entries: PendingEntry[] = [];
  const served: string[] = [];
  // A program approved since it was queued (policy.toml edited by hand, a half-saved file the daemon read
  // with a client missing) is served now: listing it as waiting would have the user approve it again.
  const clients = currentClients(files.policy);
  for (const e of listPending(files.pending)) {
    const client = findClient(clients, e);
    if (client) served.push(client.name);
    else entries.push(e);
  }
  if (served.length > 0) {
    note(
      `${served.length} queued program${served.length === 1 ? ' is' : 's are'} approved now (left out): ${[...new Set(served)].join(', ')}`,
    );
  }
  if (opts.json) return printJson(entries);
  if (entries.length === 0) return void process.stdout.write('nothing pending\n');
  printTable([
    ['ID', 'PROGRAM', 'SHA256', 'LAST SEEN', 'ASKED FOR'],
    ...entries.map((e) => [
      e.id,
      programLabel(e.exe, e.script),
      // What pins it, and what `approve sha256:` takes: the script's hash when it has one.
      pinOf(e).slice(0, 16),
      e.lastSeen,
      // Written as a --grant spec would be (percent-encoded), so a "/" inside a name is not ambiguous.
      e.requests
        .map((r) => {
          const spec = grantSpecFor(r);
          return spec === undefined ? r.op : `${r.op} ${spec}`;
        })
        .join(', '),
    ]),
  ]);
  process.stdout.write(`\napprove with:\n${entries.map((e) => `  ${approveCommand(e)}\n`).join('')}`);
}

// The clients of the policy as it is; none when it does not load (then every entry is still listed, and
// the daemon, which denies everything meanwhile, and `doctor` say why).
function currentClients(path: string): Client[] {
  try {
    return loadPolicy(path).clients;
  } catch {
    return [];
  }
}

// The command that grants exactly what the entry asked for, when that is one operation on named items;
// otherwise the template (one --ops for several operations would grant each of them on every item).
function approveCommand(e: PendingEntry): string {
  const ops = new Set(e.requests.map((r) => r.op));
  const specs = e.requests.map(grantSpecFor);
  if (ops.size !== 1 || specs.some((s) => s === undefined)) {
    return `entraclaw approve ${e.id} --grant SERVICE[/ACCOUNT] --ops OPS`;
  }
  const grants = [...new Set(specs)].map((s) => `--grant ${s}`).join(' ');
  return `entraclaw approve ${e.id} ${grants} --ops ${[...ops][0]}`;
}

/** `entraclaw deny ID`: drops a pending request. */
export async function deny(id: string, opts: { json?: boolean }): Promise<void> {
  if (!/^p-[0-9a-f]{8}$/.test(id)) {
    throw new UsageError(
      `"${id}" is not a pending id (p-xxxxxxxx)`,
      'deny takes the id `entraclaw pending` shows',
    );
  }
  if (!(await removePending(policyFiles().pending, id))) {
    throw new NotFoundError(
      `no pending request ${id} (approved or denied already, dropped after 24 h unseen, or never queued)`,
      'see `entraclaw pending` for the queue and `entraclaw clients` for the approved programs',
    );
  }
  if (opts.json) printJson({ denied: id });
  else note(`denied ${id}`);
}
