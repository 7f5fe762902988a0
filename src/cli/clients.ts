import { itemGrantSpec, percentEncode } from '../lib/percent.js';
import { pinOf } from '../policy/edit.js';
import { loadPolicy } from '../policy/load.js';
import { ANY, type Grant } from '../policy/schema.js';
import { printJson, printTable } from './output.js';
import { policyFiles } from './policy-files.js';

/**
 * Renders a grant on one line in `--grant` spec syntax, so what is shown can be pasted back: e.g.
 * `github.com aws/* ci/deploy read,list until 2026-12-01T00:00:00.000Z (confirm each use)`. A prefix or
 * `*` limited to some accounts has no spec; it is shown with its accounts in parentheses.
 */
export function describeGrant(g: Grant, now = new Date()): string {
  const everyAccount = g.accounts.includes(ANY);
  const only = ` (accounts ${g.accounts.map(percentEncode).join(',')})`;
  const specs: string[] = [];
  for (const service of g.services) {
    if (service === ANY) specs.push(everyAccount ? ANY : `${ANY}${only}`);
    else if (everyAccount) specs.push(percentEncode(service));
    else for (const account of g.accounts) specs.push(itemGrantSpec(service, account));
  }
  // A prefix is written with its slashes as they are (`aws/*`), as parseGrantSpec reads it.
  for (const prefix of g.servicePrefixes) {
    specs.push(`${percentEncode(prefix).replaceAll('%2F', '/')}*${everyAccount ? '' : only}`);
  }
  const until = !g.expiresAt
    ? ''
    : Date.parse(g.expiresAt) > now.getTime()
      ? ` until ${g.expiresAt}`
      : ` EXPIRED at ${g.expiresAt}`;
  const confirm = g.confirmFor
    ? ` (confirm, a yes lasts ${g.confirmFor} per process)`
    : g.confirm
      ? ' (confirm each use)'
      : '';
  return `${specs.join(' ')} ${g.operations.join(',')}${until}${confirm}`;
}

/** `entraclaw clients`: every approved program, its pin and its grants. */
export async function clients(opts: { json?: boolean }): Promise<void> {
  const policy = loadPolicy(policyFiles().policy);
  if (opts.json) return printJson(policy.clients);
  if (policy.clients.length === 0)
    return void process.stdout.write('no clients approved yet (see `entraclaw pending`)\n');
  printTable([
    // The hash a client is known by (its script's, for a script), as `revoke sha256:` takes it.
    ['NAME', 'PROGRAM', 'SHA256', 'GRANTS'],
    ...policy.clients.map((c) => [
      c.name,
      c.script ? `${c.exe} ${c.script}` : c.exe,
      pinOf(c).slice(0, 16),
      c.grants.map((g) => describeGrant(g)).join('; '),
    ]),
  ]);
}
