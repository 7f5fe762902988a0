import { basename, dirname } from 'node:path';
import { ConflictError, NotFoundError, UsageError } from '../errors.js';
import { interpreterName } from '../identity/interpreter.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { makeOwnDir } from '../lib/make-dir.js';
import { shellQuote } from '../lib/shell.js';
import { DURATION_FORMAT, parseDuration } from './duration.js';
import { ANY, GRANT_OPERATIONS, type Grant, type GrantOperation, type GrantSource } from './grant.js';
import { parsePolicy } from './load.js';
import type { ClientIdentity } from './match.js';
import { CLIENT_NAME, type Client, isConfirmWindow, nameProblem, type Policy } from './schema.js';
import { tomlComments } from './toml-lines.js';

// Pure edits return a new policy and never change their input, so a failed save leaves nothing half-done.

/** `base`, or `base-2`, `base-3`... : the first name no client of `policy` has (for default names). */
export function freeName(policy: Policy, base: string): string {
  const taken = new Set(policy.clients.map((c) => c.name));
  for (let n = 1; ; n++) {
    const suffix = n === 1 ? '' : `-${n}`;
    const name = `${base.slice(0, 64 - suffix.length)}${suffix}`;
    if (!taken.has(name)) return name;
  }
}

/** Adds a client; throws ConflictError when its name or its program (hash + script pin) is taken. */
export function addClient(policy: Policy, client: Client): Policy {
  if (!CLIENT_NAME.test(client.name)) {
    throw new UsageError(
      `"${client.name}" is not a valid client name`,
      'use 1-64 ASCII letters, digits or _.@+- not starting with . @ + or - (--name)',
    );
  }
  const byName = policy.clients.find((c) => c.name === client.name);
  if (byName) {
    throw new ConflictError(
      `a client named "${client.name}" already exists`,
      'choose another --name, or grant it more with `entraclaw grant`',
    );
  }
  const same = policy.clients.find((c) => samePin(c, client));
  if (same) {
    throw new ConflictError(
      `this program is already approved as client "${same.name}"`,
      `add grants to it with \`entraclaw grant ${same.name}\``,
    );
  }
  // The same program (path and script) pinned at another version: that is an upgrade, not a second client.
  const older = policy.clients.find((c) => c.exe === client.exe && c.script === client.script);
  if (older) {
    throw new ConflictError(
      `${client.script ?? client.exe} is already approved as client "${older.name}", pinned to another version`,
      `if this version is the one to trust, re-pin it: entraclaw upgrade ${shellQuote(client.script ?? client.exe)}`,
    );
  }
  return { clients: [...policy.clients, client] };
}

/**
 * Appends grants to the client named `name`, skipping any it already has exactly (a command run twice
 * adds nothing); throws NotFoundError when there is no such client.
 */
export function addGrants(policy: Policy, name: string, grants: readonly Grant[]): Policy {
  if (!policy.clients.some((c) => c.name === name)) {
    throw new NotFoundError(`no client is named "${name}"`, 'see the client names with `entraclaw clients`');
  }
  const key = (g: Grant) => JSON.stringify(g, Object.keys(g).sort());
  return {
    clients: policy.clients.map((c) => {
      if (c.name !== name) return c;
      const have = new Set(c.grants.map(key));
      const added: Grant[] = [];
      for (const g of grants) {
        if (have.has(key(g))) continue;
        have.add(key(g));
        added.push(g);
      }
      return { ...c, grants: [...c.grants, ...added] };
    }),
  };
}

/**
 * Removes the client named `target`, or those pinned to the hash `sha256:HEX` (12 to 64 hex digits, as
 * `clients` shows 16; the `sha256:` may be left out); throws NotFoundError when none is, and
 * ConflictError when a short hash is ambiguous.
 */
export function revokeClient(policy: Policy, target: string): { policy: Policy; removed: Client[] } {
  const named = policy.clients.filter((c) => c.name === target);
  if (named.length > 0) return without(policy, named);
  const hex = target.replace(/^sha256:/i, '').toLowerCase();
  if (!/^[0-9a-f]{12,64}$/.test(hex)) {
    if (target.toLowerCase().startsWith('sha256:')) {
      throw new UsageError(
        `"${target}" is not sha256: followed by 12 to 64 hex digits`,
        'copy the hash from `entraclaw clients`, or revoke by name',
      );
    }
    throw noClient(target);
  }
  // A hash names what a client is pinned to: its script when it has one, else its executable.
  const pinned = policy.clients.filter((c) => pinOf(c).startsWith(hex));
  // The interpreter's hash names every script client it runs: one is taken, several are not guessed at.
  const removed = pinned.length > 0 ? pinned : policy.clients.filter((c) => c.sha256.startsWith(hex));
  if (removed.length === 0) throw noClient(target);
  const ambiguous = pinned.length > 0 ? new Set(pinned.map(pinOf)).size > 1 : removed.length > 1;
  if (ambiguous) {
    // More digits tell clients apart only when their hashes differ; an interpreter's hash shared by its
    // script clients stays shared at all 64 of them.
    const hashes = new Set(pinned.length > 0 ? pinned.map(pinOf) : removed.map((c) => c.sha256));
    const names = removed.map((c) => c.name);
    throw new ConflictError(
      `sha256:${hex} names ${removed.length} clients (${names.join(', ')}); nothing was revoked`,
      hashes.size > 1
        ? "give more digits of the hash, revoke by the script's hash, or revoke them one by one by name"
        : `it is the hash of the interpreter they all run: revoke each by name (entraclaw revoke ${names[0]}) or by its script's hash (\`entraclaw clients\` shows it)`,
    );
  }
  return without(policy, removed);
}

/**
 * The hash a program is known by (a client, or a pending entry): its script's when it has one, else its
 * executable's. An interpreter's hash is shared by every script it runs, so it names no single program.
 */
export function pinOf(p: ClientIdentity): string {
  return p.script ? (p.scriptSha256 ?? '') : p.sha256;
}

function without(policy: Policy, removed: Client[]): { policy: Policy; removed: Client[] } {
  return { policy: { clients: policy.clients.filter((c) => !removed.includes(c)) }, removed };
}

/**
 * Records a new hash for a program the user has checked: clients whose exe is `path` get `sha256`, clients
 * pinned to the script `path` get `scriptSha256`. Grants are kept. Throws NotFoundError when nothing
 * has that path.
 */
export function upgradeClient(
  policy: Policy,
  path: string,
  newSha256: string,
): { policy: Policy; upgraded: Client[] } {
  if (!/^[0-9a-fA-F]{64}$/.test(newSha256))
    throw new UsageError(`"${newSha256}" is not a SHA-256 (64 hex digits)`);
  const sha = newSha256.toLowerCase();
  const upgraded: Client[] = [];
  const clients = policy.clients.map((c) => {
    if (c.exe !== path && c.script !== path) return c;
    const next = {
      ...c,
      ...(c.exe === path ? { sha256: sha } : {}),
      ...(c.script === path ? { scriptSha256: sha } : {}),
    };
    upgraded.push(next);
    return next;
  });
  if (upgraded.length === 0) throw nothingAt(policy, path, sha);
  // Two clients of one program at two versions (an old one approved from a stale request) become the
  // same program once re-pinned: say which, rather than failing later as an invalid policy.
  for (const next of upgraded) {
    const twin = clients.find((c) => c !== next && samePin(c, next));
    if (twin) {
      throw new ConflictError(
        `re-pinning ${path} would make clients "${next.name}" and "${twin.name}" the same program; nothing was changed`,
        `keep one: entraclaw revoke ${upgraded.includes(twin) ? next.name : twin.name}, then upgrade again (add its grants to the other with entraclaw grant)`,
      );
    }
  }
  return { policy: { clients }, upgraded };
}

// No client names `path`. A program that moved (same bytes or new ones), or an interpreter replaced by
// one at another path (python3.11 -> python3.12, a node version manager), is re-pinned by client or by
// script instead: say so, naming the clients it most likely is.
function nothingAt(policy: Policy, path: string, sha: string): NotFoundError {
  const quoted = shellQuote(path);
  const same = policy.clients.filter((c) => pinOf(c) === sha || (c.script !== undefined && c.sha256 === sha));
  if (same.length > 0) {
    const c = same[0]!;
    // The moved file is the script of a script client, or else its program.
    const movedScript = c.script !== undefined && c.scriptSha256 === sha;
    return new NotFoundError(
      `no client runs ${path}; client "${c.name}" is pinned to these bytes at ${movedScript ? c.script : c.exe} (the program moved?)`,
      `to record its new path, keeping its grants: entraclaw upgrade ${movedScript ? `${shellQuote(c.exe)} --script ${quoted}` : quoted} --client ${c.name}`,
    );
  }
  const interpreter = interpreterName(basename(path));
  const scripts = interpreter
    ? policy.clients.filter((c) => c.script !== undefined && interpreterName(basename(c.exe)) === interpreter)
    : [];
  if (scripts.length > 0) {
    const commands = scripts.map((c) => `entraclaw upgrade ${quoted} --script ${shellQuote(c.script!)}`);
    return new NotFoundError(
      `no client runs ${path}; ${scripts.map((c) => `"${c.name}"`).join(', ')} run${scripts.length > 1 ? '' : 's'} ${interpreter} scripts with ${[...new Set(scripts.map((c) => c.exe))].join(', ')}`,
      `if ${path} now runs ${scripts.length > 1 ? 'them, re-pin each' : 'it, re-pin it'} to it, keeping ${scripts.length > 1 ? 'their' : 'its'} grants: ${commands.join(' && ')}`,
    );
  }
  return new NotFoundError(
    `no client runs ${path}`,
    'give the canonical path shown by `entraclaw clients`; for a program that moved: entraclaw upgrade NEWPATH --client NAME',
  );
}

/** A program (and, for an interpreter, its script) as it is on disk now: canonical path and SHA-256. */
export interface Pin {
  path: string;
  sha256: string;
}

/**
 * Re-pins one client to a program at another path, keeping its name and grants: the client named `name`,
 * else the one pinned to the path of `script`. With `script`, the script is re-pinned too; without it, a
 * script client keeps its script pin (only its interpreter moved). Throws NotFoundError when no client
 * is meant, ConflictError when several could be or another client already is that program.
 */
export function repinClient(
  policy: Policy,
  target: { name?: string; exe: Pin; script?: Pin },
): { policy: Policy; before: Client; client: Client } {
  const { name, exe, script } = target;
  const candidates =
    name !== undefined
      ? policy.clients.filter((c) => c.name === name)
      : policy.clients.filter((c) => script !== undefined && c.script === script.path);
  if (candidates.length === 0) {
    if (name !== undefined) {
      throw new NotFoundError(
        `no client is named "${name}"`,
        'see the client names with `entraclaw clients`',
      );
    }
    // A script that moved with its bytes unchanged: the client pinned to those bytes is the likely one.
    const same = policy.clients.filter((c) => c.script !== undefined && c.scriptSha256 === script?.sha256);
    throw new NotFoundError(
      `no client runs the script ${script?.path}${same.length > 0 ? `; client "${same[0]!.name}" is pinned to these bytes at ${same[0]!.script} (the script moved?)` : ''}`,
      same.length > 0
        ? `to record its new path, keeping its grants: entraclaw upgrade ${shellQuote(exe.path)} --script ${shellQuote(script!.path)} --client ${same[0]!.name}`
        : 'name the client to re-pin: entraclaw upgrade PROGRAM --script FILE --client NAME (`entraclaw clients` shows them)',
    );
  }
  if (candidates.length > 1) {
    throw new ConflictError(
      `clients ${candidates.map((c) => `"${c.name}"`).join(', ')} run the script ${script?.path}; nothing was changed`,
      `name the one to re-pin: --client ${candidates[0]!.name}`,
    );
  }
  const before = candidates[0]!;
  if (script !== undefined && before.script === undefined) {
    throw new UsageError(
      `client "${before.name}" is pinned to ${before.exe} alone, without a script: re-pinning it to one script makes it another program`,
      `register the script as its own client: entraclaw register ${shellQuote(exe.path)} --script ${shellQuote(script.path)} --grant ...`,
    );
  }
  if (before.script !== undefined && !interpreterName(basename(exe.path))) {
    // `upgrade ~/new/bot.py --client bot` would pin the script as the program: never this client again.
    throw new UsageError(
      `client "${before.name}" is a script run by ${before.exe}, and ${exe.path} is not an interpreter: PATH is the program that runs the script`,
      `for a script that moved: entraclaw upgrade ${shellQuote(before.exe)} --script ${shellQuote(exe.path)} --client ${before.name}`,
    );
  }
  const client: Client = {
    ...before,
    exe: exe.path,
    sha256: exe.sha256,
    ...(script ? { script: script.path, scriptSha256: script.sha256 } : {}),
  };
  const twin = policy.clients.find(
    (c) => c !== before && (samePin(c, client) || (c.exe === client.exe && c.script === client.script)),
  );
  if (twin) {
    throw new ConflictError(
      `${client.script ?? client.exe} is already approved as client "${twin.name}"; re-pinning "${before.name}" to it would make two clients of one program, so nothing was changed`,
      `keep one: entraclaw revoke ${before.name} (add its grants to "${twin.name}" with entraclaw grant), or revoke ${twin.name} and upgrade again`,
    );
  }
  return { policy: { clients: policy.clients.map((c) => (c === before ? client : c)) }, before, client };
}

// Same bytes pinned: the executable, and the script when there is one.
/** Whether two programs are pinned to the same bytes (executable, and script when there is one). */
export function samePin(a: ClientIdentity, b: ClientIdentity): boolean {
  return a.sha256 === b.sha256 && a.script === b.script && a.scriptSha256 === b.scriptSha256;
}

function noClient(what: string): NotFoundError {
  return new NotFoundError(
    `no client is named or hashed "${what}"`,
    'see the clients with `entraclaw clients`',
  );
}

/** Options of parseGrantSpec. */
export interface GrantSpecOptions {
  /** Operations, as a list or comma-separated (`read,list`); `write` means create + update. */
  ops: string | readonly string[];
  /** Lifetime such as `30m`, `12h`, `7d`, `2w`; none means no expiry. */
  ttl?: string;
  now?: Date;
  source?: GrantSource;
  /** Every use needs the user's confirmation (askpass). */
  confirm?: boolean;
  /** Confirmation, with a yes remembered this long (e.g. `10m`) per process, item and operation. */
  confirmFor?: string;
}

/**
 * Parses a grant given on the command line as `SERVICE[/ACCOUNT]`: `github.com` is every account of
 * github.com, `github.com/me` only `me`. A spec ending in `*` is a service prefix for every account:
 * `aws/*` covers every service whose name starts with `aws/` (so `github.com/*` is a prefix too, not "all
 * accounts"; `*` alone is every service). Write a `/`, `*` or `%` inside a name as %2F, %2A, %25.
 */
export function parseGrantSpec(spec: string, opts: GrantSpecOptions): Grant {
  const operations = parseOps(opts.ops);
  const expiresAt = opts.ttl === undefined ? undefined : expiryOf(opts.ttl, opts.now ?? new Date());
  const base = {
    operations,
    ...(expiresAt ? { expiresAt } : {}),
    source: opts.source ?? 'cli',
    ...(opts.confirm || opts.confirmFor !== undefined ? { confirm: true } : {}),
    ...(opts.confirmFor !== undefined ? { confirmFor: confirmWindow(opts.confirmFor) } : {}),
  };
  if (spec === ANY) return { services: [ANY], servicePrefixes: [], accounts: [ANY], ...base };
  if (spec.endsWith('*')) {
    // A prefix is taken as written, slashes included: `aws/*` is the prefix `aws/`.
    const prefix = notAll(decode(spec.slice(0, -1).replaceAll('/', '%2F'), spec), 'service prefix', spec);
    return {
      services: [],
      servicePrefixes: [checkName(prefix, 'service prefix', spec)],
      accounts: [ANY],
      ...base,
    };
  }
  const slash = spec.indexOf('/');
  const service = notAll(decode(slash < 0 ? spec : spec.slice(0, slash), spec), 'service', spec);
  const account = slash < 0 ? ANY : notAll(decode(spec.slice(slash + 1), spec), 'account', spec);
  return {
    services: [checkName(service, 'service', spec)],
    servicePrefixes: [],
    accounts: [checkName(account, 'account', spec)],
    ...base,
  };
}

// A name that decodes to a lone `*` (%2A) would be written as "*", which policy.toml reads as every
// service or every account: far more than the one literal name asked for. No grant can name it alone.
function notAll(name: string, what: string, spec: string): string {
  if (name !== ANY) return name;
  throw new UsageError(
    `grant "${spec}": ${what === 'account' ? 'an' : 'a'} ${what} named exactly "*" cannot be granted on its own (policy.toml reads "*" as every ${what === 'account' ? 'account' : 'service'})`,
    what === 'account'
      ? 'grant the service for every account (SERVICE, without /ACCOUNT) if that is what you mean'
      : 'grant * for every service if that is what you mean',
  );
}

function decode(part: string, spec: string): string {
  // Name the character that is out of place, not both rules at once.
  if (part.includes('/')) {
    throw new UsageError(
      `grant "${spec}": "/" separates SERVICE from ACCOUNT and may appear only once`,
      'write %2F for a / inside a name (e.g. aws%2Fprod/deploy)',
    );
  }
  if (part.includes('*')) {
    throw new UsageError(
      `grant "${spec}": "*" is only allowed at the end (a service prefix) or alone (everything)`,
      'write %2A for a literal *',
    );
  }
  try {
    return decodeURIComponent(part);
  } catch {
    throw new UsageError(`grant "${spec}" has a malformed %-escape`, 'write %25 for a literal %');
  }
}

function checkName(value: string, what: string, spec: string): string {
  const problem = nameProblem(value);
  if (problem)
    throw new UsageError(
      `grant "${spec}": the ${what} ${problem}`,
      'use SERVICE, SERVICE/ACCOUNT or PREFIX*',
    );
  return value;
}

function parseOps(ops: string | readonly string[]): GrantOperation[] {
  const list = (typeof ops === 'string' ? ops.split(',') : ops).map((o) => o.trim()).filter(Boolean);
  if (list.length === 0)
    throw new UsageError(
      'a grant needs at least one operation',
      `use --ops with ${GRANT_OPERATIONS.join(', ')}`,
    );
  for (const op of list) {
    if (!(GRANT_OPERATIONS as readonly string[]).includes(op)) {
      throw new UsageError(`unknown operation "${op}"`, `use ${GRANT_OPERATIONS.join(', ')}`);
    }
  }
  return [...new Set(list)] as GrantOperation[];
}

const LAST_EXPIRY = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function expiryOf(ttl: string, now: Date): string {
  // A lifetime too long for parseDuration to count exactly is no typo, only too long.
  const ms = parseDuration(ttl) ?? (/^\s*0*[1-9]\d*[smhdw]\s*$/.test(ttl) ? Infinity : undefined);
  if (ms === undefined) throw new UsageError(`"${ttl}" is not a lifetime`, `use ${DURATION_FORMAT}`);
  // policy.toml takes four-digit years (and a Date ends in 275760): a longer lifetime is no lifetime.
  if (now.getTime() + ms > LAST_EXPIRY) {
    throw new UsageError(
      `--ttl ${ttl} ends after the year 9999`,
      'give a shorter lifetime, or leave out --ttl for a grant that does not expire',
    );
  }
  return new Date(now.getTime() + ms).toISOString();
}

function confirmWindow(text: string): string {
  if (!isConfirmWindow(text)) {
    throw new UsageError(
      `"${text}" is not a confirmation window`,
      'use a number and a unit (s, m, h) of at most 24h: 30s, 10m, 8h; or --confirm to ask on every use',
    );
  }
  return text.trim();
}

const HEADER = `# Entraclaw policy: which programs may use which secrets.
# Written by the entraclaw CLI, which rewrites the whole file on every change: comments added here
# are not preserved (values and hand edits are). The daemon rereads it on the next request.
#
# [[client]]           name, exe, sha256 (64 hex), optional script + script_sha256 (interpreters), added
#   [[client.grant]]   services (exact, or "*"), service_prefixes, accounts (exact, or "*"),
#                      operations (read, list, write, create, update, delete), expires_at, source,
#                      confirm (ask the user on every use), confirm_for (ask, and let a yes
#                      last that long for the same process, item and operation, e.g. "10m")
`;

/** How many comments of `source` (a policy file) a rewrite drops: all but the lines of the CLI's header. */
export function droppedComments(source: string): number {
  const header = new Set(HEADER.split('\n').map((l) => l.trimEnd()));
  return tomlComments(source).filter((c) => !header.has(c)).length;
}

/**
 * Serialises a policy as TOML, with the header that explains the format. A `*` inside a name is written
 * as the escape \u002A, which says it is meant as a character, except in the names of `plainStars`: those
 * the file had typed as is, which policyWarnings must go on warning about.
 */
export function formatPolicy(policy: Policy, plainStars: ReadonlySet<string> = new Set()): string {
  const names = (items: readonly string[]) =>
    `[${items.map((n) => str(n, n !== ANY && !plainStars.has(n))).join(', ')}]`;
  const out = [HEADER];
  for (const c of policy.clients) {
    out.push('[[client]]');
    out.push(`name = ${str(c.name)}`, `exe = ${str(c.exe)}`, `sha256 = ${str(c.sha256)}`);
    if (c.script !== undefined)
      out.push(`script = ${str(c.script)}`, `script_sha256 = ${str(c.scriptSha256 ?? '')}`);
    if (c.added !== undefined) out.push(`added = ${str(c.added)}`);
    for (const g of c.grants) {
      out.push('', '  [[client.grant]]');
      if (g.services.length) out.push(`  services = ${names(g.services)}`);
      if (g.servicePrefixes.length) out.push(`  service_prefixes = ${names(g.servicePrefixes)}`);
      out.push(`  accounts = ${names(g.accounts)}`, `  operations = ${list(g.operations)}`);
      if (g.expiresAt !== undefined) out.push(`  expires_at = ${str(g.expiresAt)}`);
      if (g.source !== undefined) out.push(`  source = ${str(g.source)}`);
      if (g.confirm) out.push('  confirm = true');
      if (g.confirmFor !== undefined) out.push(`  confirm_for = ${str(g.confirmFor)}`);
    }
    out.push('');
  }
  return `${out.join('\n')}\n`.replace(/\n\n+$/, '\n');
}

/**
 * Writes the policy atomically (0600), after validating the text exactly as the daemon will read it, so the
 * CLI never leaves a file the daemon would refuse (which would deny every request).
 */
export function savePolicy(path: string, policy: Policy, plainStars?: ReadonlySet<string>): void {
  const text = formatPolicy(policy, plainStars);
  parsePolicy(text, path);
  makeOwnDir(dirname(path), 'XDG_CONFIG_HOME');
  writeFileAtomic(path, Buffer.from(text, 'utf8'), 0o600);
}

const ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\f': '\\f',
  '\r': '\\r',
};

// What a terminal or editor acts on or hides rather than shows: controls (C0, DEL, C1: U+009B is a CSI to
// xterm) and invisible format characters (a bidi override reorders the line, a zero-width space hides).
// Names and paths come from the program that asked (a pending entry), and `cat policy.toml` must show the
// user what the file grants, as `clients` does (lib/visible.ts).
const HIDDEN = /^[\p{Cc}\p{Cf}\u2028\u2029]$/u;

// A TOML basic string: quote, backslash and the HIDDEN characters escaped, and `*` too when `escapeStar`.
function str(s: string, escapeStar = false): string {
  let body = '';
  for (const c of s) {
    const code = c.codePointAt(0)!;
    if (ESCAPES[c] !== undefined) body += ESCAPES[c];
    else if (!HIDDEN.test(c) && !(escapeStar && c === '*')) body += c;
    else
      body +=
        code > 0xffff
          ? `\\U${code.toString(16).padStart(8, '0')}`
          : `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return `"${body}"`;
}

function list(items: readonly string[]): string {
  return `[${items.map((s) => str(s)).join(', ')}]`;
}
