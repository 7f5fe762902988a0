import { percentEncode } from '../lib/percent.js';
import { loadPolicy } from '../policy/load.js';
import { ANY, type Grant } from '../policy/schema.js';
import { printJson, printTable } from './output.js';
import { policyFiles } from './policy-files.js';

/** Renders a grant on one line, e.g. `github.com/* read,list until 2026-12-01T00:00:00.000Z (confirm each use)`. */
export function describeGrant(g: Grant, now = new Date()): string {
  // Names percent-encoded as in a --grant spec, so a "/" or "," inside one reads unambiguously.
  const name = (n: string) => (n === ANY ? n : percentEncode(n));
  const services = [...g.services.map(name), ...g.servicePrefixes.map((p) => `${percentEncode(p)}*`)].join(
    ',',
  );
  const until = !g.expiresAt
    ? ''
    : Date.parse(g.expiresAt) > now.getTime()
      ? ` until ${g.expiresAt}`
      : ` EXPIRED at ${g.expiresAt}`;
  const confirm = g.confirmFor
    ? ` (confirm; a yes lasts ${g.confirmFor} per process)`
    : g.confirm
      ? ' (confirm each use)'
      : '';
  return `${services}/${g.accounts.map(name).join(',')} ${g.operations.join(',')}${until}${confirm}`;
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
      c.grants.map((g) => describeGrant(g)).join('; '),
    ]),
  ]);
}
