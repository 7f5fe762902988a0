import { itemGrantSpec, percentEncode } from '../lib/percent.js';
import { programLabel } from '../lib/visible.js';
import { pinOf } from './edit.js';
import { ANY, type Grant } from './grant.js';
import type { Client, Policy } from './schema.js';

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

// The longest policy-change line written to the audit log.
const MAX_LINE = 4000;

/**
 * One line saying how the policy changed between two loads, for the audit log: clients added (with their
 * pins and grants), removed, re-pinned or with other grants. `after` undefined is an invalid file (every
 * request denied, `error` says why); `before` undefined is the first load. Undefined when nothing changed.
 */
export function describePolicyChange(
  before: Policy | undefined,
  after: Policy | undefined,
  error?: string,
): string | undefined {
  if (!after) return `policy invalid, every request denied: ${error ?? 'unknown error'}`;
  if (!before) {
    // In full (pins and grants), so a change made while no daemon watched shows against the last load.
    const head = `policy loaded: ${after.clients.length} client(s)`;
    return bounded(
      head,
      after.clients.map((c) => `${c.name} ${program(c)} granted ${grants(c)}`),
      ':',
    );
  }
  const old = new Map(before.clients.map((c) => [c.name, c]));
  const now = new Map(after.clients.map((c) => [c.name, c]));
  const parts: string[] = [];
  for (const c of after.clients) {
    const was = old.get(c.name);
    if (!was) parts.push(`added ${c.name} ${program(c)} granted ${grants(c)}`);
    else {
      if (pinOf(was) !== pinOf(c) || was.sha256 !== c.sha256 || was.exe !== c.exe || was.script !== c.script)
        parts.push(`re-pinned ${c.name} ${program(was)} -> ${program(c)}`);
      if (JSON.stringify(was.grants) !== JSON.stringify(c.grants))
        parts.push(`grants of ${c.name} now ${grants(c)}`);
    }
  }
  for (const c of before.clients) if (!now.has(c.name)) parts.push(`removed ${c.name}`);
  return parts.length ? bounded('policy changed', parts, ':') : undefined;
}

// One audit line, not a file's worth: past MAX_LINE the rest is counted, not written.
function bounded(head: string, parts: string[], sep: string): string {
  if (parts.length === 0) return head;
  let line = `${head}${sep}`;
  for (const [i, part] of parts.entries()) {
    if (line.length + part.length > MAX_LINE) return `${line} ... and ${parts.length - i} more`;
    line += `${i ? ';' : ''} ${part}`;
  }
  return line;
}

function program(c: Client): string {
  return `(${programLabel(c.exe, c.script)} sha256:${pinOf(c).slice(0, 16)})`;
}

function grants(c: Client): string {
  return c.grants.length ? c.grants.map((g) => describeGrant(g)).join('; ') : 'nothing';
}
