import { basename } from 'node:path';
import { interpreterName } from '../identity/interpreter.js';
import { grantable, grantSpecFor, itemGrantSpec, itemName } from '../lib/percent.js';
import { shellQuote } from '../lib/shell.js';
import { ANY, type Grant, type GrantOperation } from './grant.js';
import type { Client, Policy } from './schema.js';

/** Who is asking, as the daemon established it from kernel credentials (never from the request). */
export interface ClientIdentity {
  exe: string;
  sha256: string;
  /** For an interpreter: the canonical path of the script it runs, and that script's hash. */
  script?: string;
  scriptSha256?: string;
}

/**
 * What is being asked: an operation and, except for `list`, the item it touches. `write` is a set not
 * yet known to create or update: it fits only a grant allowing both, and the daemon asks it only of a
 * caller that may do neither, so that its answer never depends on whether the item exists.
 */
export interface AccessRequest {
  op: GrantOperation;
  service?: string;
  account?: string;
}

/**
 * The outcome for one request. `unknown` means no client in the policy is this program: the caller
 * queues it as pending for the user to approve. Plain data, so it can be logged and tested as is.
 */
export type Decision =
  | { result: 'granted'; client: Client; grant: Grant }
  | { result: 'denied'; reason: string; client?: Client; hint?: string }
  | { result: 'unknown' };

/**
 * Decides one request. A client matches when its sha256 matches and, if it is pinned to a script, the
 * script path and hash match too; a script-pinned client wins over an unpinned one for the same binary.
 * A known path with a different hash is denied (not queued): the program changed since it was approved.
 * Expired grants never match (a grant expiring at `now` is expired). `list` needs any grant allowing
 * list; the daemon then filters the items with filterVisible.
 */
export function decide(
  policy: Policy,
  identity: ClientIdentity,
  request: AccessRequest,
  now: Date,
): Decision {
  const client = findClient(policy.clients, identity);
  if (!client) return changedProgram(policy.clients, identity) ?? { result: 'unknown' };
  if (request.op === 'list') {
    const grant = strictest(client.grants.filter((g) => isLive(g, now) && allows(g, 'list')));
    return grant
      ? { result: 'granted', client, grant }
      : denied(
          client,
          `client "${client.name}" has no grant that allows list`,
          grantHint(client, grantSpecFor(request) ?? 'SERVICE', 'list'),
        );
  }
  const { service, account } = request;
  if (service === undefined || account === undefined) {
    return denied(client, `a ${request.op} request must name a service and an account`);
  }
  const fits = (g: Grant) => allows(g, request.op) && covers(g, service, account);
  const grant = strictest(client.grants.filter((g) => isLive(g, now) && fits(g)));
  if (grant) return { result: 'granted', client, grant };
  // The one that ran out last is the one the user remembers giving.
  const lapsed = client.grants
    .filter(fits)
    .reduce<Grant | undefined>(
      (latest, g) => (!latest || Date.parse(g.expiresAt!) > Date.parse(latest.expiresAt!) ? g : latest),
      undefined,
    );
  const spec = grantable({ service, account }) ? itemGrantSpec(service, account) : undefined;
  if (lapsed) {
    return denied(
      client,
      `the grant of client "${client.name}" for ${itemName(service, account)} expired at ${lapsed.expiresAt}`,
      spec ? `${grantHint(client, spec, request.op)} --ttl 8h` : UNGRANTABLE,
    );
  }
  return denied(
    client,
    `no grant of client "${client.name}" allows ${request.op} on ${itemName(service, account)}`,
    grantHint(client, spec, request.op),
  );
}

// Of several grants that fit, the one that asks the user wins: a confirm grant added for one item must
// not be bypassed by a broader grant that does not ask (and asking every time beats a remembered yes).
function strictest(grants: readonly Grant[]): Grant | undefined {
  const rank = (g: Grant) => (g.confirm ? (g.confirmFor ? 1 : 2) : 0);
  return grants.reduce<Grant | undefined>((best, g) => (!best || rank(g) > rank(best) ? g : best), undefined);
}

/** The items a client may see in a `list` reply: those some live grant allowing list covers. */
export function filterVisible<T extends { service: string; account: string }>(
  grants: readonly Grant[],
  items: readonly T[],
  now: Date,
): T[] {
  const listing = grants.filter((g) => isLive(g, now) && allows(g, 'list'));
  return items.filter((item) => listing.some((g) => covers(g, item.service, item.account)));
}

/** The operation a `set` needs: create when the item is absent, update when it exists. */
export function setOperation(itemExists: boolean): 'create' | 'update' {
  return itemExists ? 'update' : 'create';
}

/**
 * The client whose pins (hash, and script + its hash) the identity matches now, if any. A script pin also
 * needs the caller's executable to be named as the same interpreter as the pinned one (sameParser).
 */
export function findClient(clients: readonly Client[], who: ClientIdentity): Client | undefined {
  const sha = who.sha256.toLowerCase();
  const scriptSha = who.scriptSha256?.toLowerCase();
  const matching = clients.filter(
    (c) =>
      c.sha256 === sha &&
      (c.script === undefined
        ? // The interpreter itself (every script it runs) only where it was approved: a copy of python
          // under another name, approved as a plain program, must not approve python for every script.
          who.script === undefined || c.exe === who.exe
        : c.script === who.script && c.scriptSha256 === scriptSha && sameParser(c.exe, who.exe)),
  );
  return matching.find((c) => c.script !== undefined) ?? matching[0];
}

// The daemon finds the script by parsing argv with the rules of the interpreter the caller's executable is
// named after, but the bytes decide what really runs. A copy of node named `perl` or `bash` (same hash)
// run as `perl -C pinned.mjs evil.mjs` is read as perl running pinned.mjs, while node takes `-C` as a
// valued option and runs evil.mjs (or `-e CODE`). So a script pin holds only for a caller whose name
// selects the same parser as the pinned executable's did.
function sameParser(pinnedExe: string, callerExe: string): boolean {
  return interpreterName(basename(pinnedExe)) === interpreterName(basename(callerExe));
}

// The same path (and script) as an approved client but different bytes: an upgrade, or a swapped binary.
// The refusal names each file that changed (for a script client, its interpreter and/or its script), so
// one look says what to re-pin, and says when re-pinning the interpreter re-pins other clients too.
function changedProgram(clients: readonly Client[], who: ClientIdentity): Decision | undefined {
  const samePath = clients.filter(
    (c) => c.exe === who.exe && (c.script === undefined || c.script === who.script),
  );
  const client = samePath.find((c) => c.script !== undefined) ?? samePath[0];
  if (!client) return undefined;
  const exeChanged = client.sha256 !== who.sha256.toLowerCase();
  const scriptChanged =
    client.script !== undefined && client.scriptSha256 !== who.scriptSha256?.toLowerCase();
  const changed = [
    ...(exeChanged ? [client.script !== undefined ? 'interpreter' : 'binary'] : []),
    ...(scriptChanged ? ['script'] : []),
  ];
  const command = [...(exeChanged ? [client.exe] : []), ...(scriptChanged ? [client.script!] : [])]
    .map((path) => `entraclaw upgrade ${shellQuote(path)}`)
    .join(' && ');
  // `upgrade` of an executable re-pins every client whose exe it is: say so before it surprises anyone.
  const sharing = exeChanged ? clients.filter((c) => c.exe === client.exe).map((c) => c.name) : [];
  const also =
    sharing.length > 1
      ? ` (it re-pins ${client.exe} for every client that runs it: ${sharing.map((n) => `"${n}"`).join(', ')})`
      : '';
  return denied(
    client,
    `${changed.join(' and ')} changed since approval (run \`${command}\`)`,
    `if the change is yours, re-pin it and keep the grants of "${client.name}": ${command}${also}`,
  );
}

function denied(client: Client, reason: string, hint?: string): Decision {
  return { result: 'denied', reason, client, ...(hint ? { hint } : {}) };
}

// Client names are limited to shell-safe characters (schema.ts), so the command needs no quoting.
function grantHint(client: Client, spec: string | undefined, op: GrantOperation): string {
  if (spec === undefined) return UNGRANTABLE;
  return `if that is intended, the user can allow it with: entraclaw grant ${client.name} --grant ${spec} --ops ${op}`;
}

/** The hint for an item no grant can name alone (grantable()). */
export const UNGRANTABLE =
  'an item whose service or account is only "*" cannot be granted on its own (in a grant, * means every one): store it under another name';

/**
 * A live grant among `grants` that allows everything `grant` allows, on every item it names, for longer
 * (no expiry, or a later one): with it, `grant` running out ends no access. Undefined when none
 * does, or when `grant` does not expire. Containment is judged on the names as written (a shorter prefix
 * contains a longer one), so a grant covering the same items some other way is not found.
 */
export function outlasting(grants: readonly Grant[], grant: Grant, now: Date): Grant | undefined {
  if (grant.expiresAt === undefined) return undefined;
  const end = Date.parse(grant.expiresAt);
  return grants.find(
    (g) =>
      g !== grant &&
      isLive(g, now) &&
      (g.expiresAt === undefined || Date.parse(g.expiresAt) > end) &&
      grant.operations.every((op) => allows(g, op)) &&
      contains(g, grant),
  );
}

// Whether every item `inner` names is one `outer` names.
function contains(outer: Grant, inner: Grant): boolean {
  const byPrefix = (name: string) => outer.servicePrefixes.some((p) => name.startsWith(p));
  const services =
    outer.services.includes(ANY) ||
    (inner.services.every((s) => outer.services.includes(s) || (s !== ANY && byPrefix(s))) &&
      inner.servicePrefixes.every(byPrefix));
  return (
    services && (outer.accounts.includes(ANY) || inner.accounts.every((a) => outer.accounts.includes(a)))
  );
}

function isLive(grant: Grant, now: Date): boolean {
  return grant.expiresAt === undefined || Date.parse(grant.expiresAt) > now.getTime();
}

function allows(grant: Grant, op: GrantOperation): boolean {
  const has = (o: GrantOperation) => grant.operations.includes(o);
  if (has(op)) return true;
  if (op === 'write') return has('create') && has('update');
  return (op === 'create' || op === 'update') && has('write');
}

function covers(grant: Grant, service: string, account: string): boolean {
  const serviceOk =
    grant.services.includes(ANY) ||
    grant.services.includes(service) ||
    grant.servicePrefixes.some((p) => service.startsWith(p));
  return serviceOk && (grant.accounts.includes(ANY) || grant.accounts.includes(account));
}
