import { programLabel } from '../lib/visible.js';
import { describeGrant } from '../policy/describe.js';
import { pinOf } from '../policy/edit.js';
import { loadPolicyWithWarnings } from '../policy/load.js';
import { note, printJson } from './output.js';
import { policyFiles } from './policy-files.js';
import { printTable } from './table.js';

/** `entraclaw clients`: every approved program, its pin and its grants. */
export async function clients(opts: { json?: boolean }): Promise<void> {
  const { policy, warnings } = loadPolicyWithWarnings(policyFiles().policy);
  for (const warning of warnings) note(`warning: ${warning}`);
  if (opts.json) return printJson(policy.clients);
  if (policy.clients.length === 0)
    return void process.stdout.write('no clients approved yet (see `entraclaw pending`)\n');
  printTable([
    // The hash a client is known by (its script's, for a script), as `revoke sha256:` takes it.
    ['NAME', 'PROGRAM', 'SHA256', 'GRANTS'],
    ...policy.clients.map((c) => [
      c.name,
      programLabel(c.exe, c.script),
      pinOf(c).slice(0, 16),
      c.grants.map((g) => describeGrant(g)).join('; '),
    ]),
  ]);
}
