import { loadPolicy } from '../policy/load.js';
import type { Grant } from '../policy/schema.js';
import { printJson, printTable } from './output.js';
import { policyFiles } from './policy-files.js';

/** Renders a grant on one line, e.g. `github.com/* read,list until 2026-12-01T00:00:00.000Z (confirm each use)`. */
export function describeGrant(g: Grant): string {
  const services = [...g.services, ...g.servicePrefixes.map((p) => `${p}*`)].join(',');
  const until = g.expiresAt ? ` until ${g.expiresAt}` : '';
  const confirm = g.confirmFor
    ? ` (confirm; a yes lasts ${g.confirmFor} per process)`
    : g.confirm
      ? ' (confirm each use)'
      : '';
  return `${services}/${g.accounts.join(',')} ${g.operations.join(',')}${until}${confirm}`;
}

/** `entraclaw clients`: every approved program, its pin and its grants. */
export async function clients(opts: { json?: boolean }): Promise<void> {
  const policy = loadPolicy(policyFiles().policy);
  if (opts.json) return printJson(policy.clients);
  if (policy.clients.length === 0)
    return void process.stdout.write('no clients approved yet (see `entraclaw pending`)\n');
  printTable([
    ['NAME', 'PROGRAM', 'SHA256', 'GRANTS'],
    ...policy.clients.map((c) => [
      c.name,
      c.script ? `${c.exe} ${c.script}` : c.exe,
      c.sha256.slice(0, 16),
      c.grants.map(describeGrant).join('; '),
    ]),
  ]);
}
