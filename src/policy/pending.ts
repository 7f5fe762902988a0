import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as z from 'zod';
import { CorruptError, NotFoundError } from '../errors.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import { withFileLock } from '../lib/file-lock.js';
import { makeOwnDir } from '../lib/make-dir.js';
import type { Paths } from '../lib/paths.js';
import { GRANT_OPERATIONS } from './grant.js';
import type { AccessRequest, ClientIdentity } from './match.js';

// Limits: the file is written on behalf of programs nobody approved yet, so each of them is bounded.
/** An entry not seen for this long is dropped. */
export const PENDING_TTL_MS = 24 * 3600 * 1000;
/** Most entries kept; the least recently seen go first. */
export const MAX_PENDING = 256;
/** Most distinct requests kept per entry; the oldest go first. */
export const MAX_PENDING_REQUESTS = 32;
/** Most argv elements kept. */
export const MAX_ARGS = 16;
/** Most characters kept of each argv element. */
export const MAX_ARG_CHARS = 256;
/**
 * Most bytes the file may take; the least recently seen entries go first past it. Every recording reads,
 * checks and rewrites the whole file on the daemon's event loop: without this, 256 entries with the longest
 * paths, argv and item names (control characters, six bytes each in JSON) made a ~40 MB file, and each
 * request of an unapproved program stalled every client for a quarter of a second. A full queue of
 * ordinary entries (~0.5 KB each) is far below it.
 */
export const MAX_PENDING_BYTES = 1024 * 1024;
// A client retrying in a loop must not become a disk-write loop: an unchanged entry's lastSeen is
// refreshed at most this often.
const LAST_SEEN_RESOLUTION_MS = 60 * 1000;

const requestSchema = z.strictObject({
  op: z.enum(GRANT_OPERATIONS),
  service: z.string().optional(),
  account: z.string().optional(),
});

const entrySchema = z.strictObject({
  id: z.string().regex(/^p-[0-9a-f]{8}$/),
  exe: z.string(),
  sha256: z.string(),
  script: z.string().optional(),
  scriptSha256: z.string().optional(),
  argv: z.array(z.string()),
  uid: z.number().int(),
  firstSeen: z.iso.datetime(),
  lastSeen: z.iso.datetime(),
  requests: z.array(requestSchema),
});

const fileSchema = z.strictObject({ v: z.literal(1), entries: z.array(entrySchema) });

/** A program that asked for a secret before the user approved it, with what it asked for. */
export type PendingEntry = z.infer<typeof entrySchema>;

/** Where pending approvals live: `<state>/pending.json`. */
export function pendingPath(paths: Paths): string {
  return join(paths.state, 'pending.json');
}

/**
 * Records one request from an unapproved program and returns its entry: one entry per program (exe, hash
 * and script pin), created on first sight and refreshed after. argv is kept (truncated) so the user can
 * tell programs apart when approving.
 */
export async function recordPending(
  path: string,
  identity: ClientIdentity,
  argv: readonly string[],
  uid: number,
  request: AccessRequest,
  now: Date,
  onReplaced: (damaged: CorruptError) => void = () => undefined,
): Promise<PendingEntry> {
  return locked(path, () => {
    let entries: PendingEntry[];
    try {
      entries = load(path, now);
    } catch (err) {
      // The queue is rebuilt by the next sightings; refusing here would turn every unknown client's request
      // into an internal error until someone deletes the file. Whoever records says that it was replaced.
      if (!(err instanceof CorruptError)) throw err;
      onReplaced(err);
      entries = [];
    }
    const time = now.toISOString();
    const req = {
      op: request.op,
      ...(request.service !== undefined ? { service: request.service } : {}),
      ...(request.account !== undefined ? { account: request.account } : {}),
    };
    const existing = entries.find((e) => sameProgram(e, identity));
    if (existing) {
      const known = existing.requests.some((r) => sameRequest(r, req));
      const age = now.getTime() - Date.parse(existing.lastSeen);
      // A lastSeen ahead of now (the clock was set back) is refreshed, or it would never be again.
      const fresh = age >= 0 && age < LAST_SEEN_RESOLUTION_MS;
      if (known && fresh && existing.uid === uid) return existing;
      existing.requests = [...existing.requests.filter((r) => !sameRequest(r, req)), req].slice(
        -MAX_PENDING_REQUESTS,
      );
      existing.lastSeen = time;
      existing.argv = truncateArgv(argv);
      existing.uid = uid;
      save(path, keepRecent(entries, existing));
      return existing;
    }
    const entry: PendingEntry = {
      id: newId(entries),
      exe: identity.exe,
      sha256: identity.sha256,
      ...(identity.script !== undefined ? { script: identity.script } : {}),
      ...(identity.scriptSha256 !== undefined ? { scriptSha256: identity.scriptSha256 } : {}),
      argv: truncateArgv(argv),
      uid,
      firstSeen: time,
      lastSeen: time,
      requests: [req],
    };
    entries.push(entry);
    save(path, keepRecent(entries, entry));
    return entry;
  });
}

/** Every pending entry still within PENDING_TTL_MS, oldest first. Throws CorruptError for a damaged file. */
export function listPending(path: string, now = new Date()): PendingEntry[] {
  return load(path, now);
}

/**
 * Hands the entry `id` to `use` (the approval) and removes it once `use` has returned; if `use` throws,
 * the entry stays pending. Throws NotFoundError when it is not pending.
 */
export async function takePending<T>(
  path: string,
  id: string,
  use: (entry: PendingEntry) => T | Promise<T>,
  now = new Date(),
): Promise<T> {
  return locked(path, async () => {
    const entries = load(path, now);
    const entry = entries.find((e) => e.id === id);
    if (!entry)
      throw new NotFoundError(
        `no pending request ${id} (approved or denied already, dropped after 24 h unseen, or never queued)`,
        '`entraclaw pending` lists what waits; `entraclaw clients` lists the approved programs',
      );
    const result = await use(entry);
    save(
      path,
      entries.filter((e) => e !== entry),
    );
    return result;
  });
}

/** Removes the entry `id` (a refusal); returns false when it was not pending. */
export async function removePending(path: string, id: string, now = new Date()): Promise<boolean> {
  return (await dropPending(path, (e) => e.id === id, now)) > 0;
}

/** Removes every entry `match` selects (programs just approved another way); returns how many. */
export async function dropPending(
  path: string,
  match: (entry: PendingEntry) => boolean,
  now = new Date(),
): Promise<number> {
  return locked(path, () => {
    const entries = load(path, now);
    const kept = entries.filter((e) => !match(e));
    if (kept.length !== entries.length) save(path, kept);
    return entries.length - kept.length;
  });
}

// The daemon records and the CLI approves or denies at the same time; each read-modify-write holds this
// lock so neither loses the other's change. Readers need none: the file is replaced atomically.
function locked<T>(path: string, fn: () => T | Promise<T>): Promise<T> {
  makeOwnDir(dirname(path), 'XDG_STATE_HOME');
  return withFileLock(`${path}.lock`, async () => fn());
}

function load(path: string, now: Date): PendingEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let parsed: z.infer<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(text));
  } catch (cause) {
    throw new CorruptError(
      `${path} is not a valid pending-approvals file`,
      `delete it; programs are queued again when they next ask`,
      {
        cause,
      },
    );
  }
  // Also dropped: an entry last seen more than the TTL ahead of now, whose clock was far off; one only a
  // little ahead ages out within a TTL of the clock catching up.
  return parsed.entries.filter((e) => Math.abs(now.getTime() - Date.parse(e.lastSeen)) <= PENDING_TTL_MS);
}

function save(path: string, entries: PendingEntry[]): void {
  makeOwnDir(dirname(path), 'XDG_STATE_HOME');
  writeFileAtomic(path, Buffer.from(`${JSON.stringify({ v: 1, entries }, null, 2)}\n`, 'utf8'), 0o600);
}

function sameProgram(e: PendingEntry, who: ClientIdentity): boolean {
  return (
    e.exe === who.exe &&
    e.sha256 === who.sha256 &&
    e.script === who.script &&
    e.scriptSha256 === who.scriptSha256
  );
}

function sameRequest(a: z.infer<typeof requestSchema>, b: z.infer<typeof requestSchema>): boolean {
  return a.op === b.op && a.service === b.service && a.account === b.account;
}

function truncateArgv(argv: readonly string[]): string[] {
  return argv.slice(0, MAX_ARGS).map((a) => a.slice(0, MAX_ARG_CHARS));
}

function newId(entries: readonly PendingEntry[]): string {
  for (;;) {
    const id = `p-${randomBytes(4).toString('hex')}`;
    if (!entries.some((e) => e.id === id)) return id;
  }
}

// The file around its entries (`{"v": 1, "entries": [...]}`), with room to spare.
const ENVELOPE_BYTES = 64;

// The entries kept, in their order: `current` (just recorded) and then the most recently seen, as many as
// MAX_PENDING and MAX_PENDING_BYTES allow.
function keepRecent(entries: PendingEntry[], current: PendingEntry): PendingEntry[] {
  const byRecency = [
    current,
    ...entries.filter((e) => e !== current).sort((a, b) => Date.parse(b.lastSeen) - Date.parse(a.lastSeen)),
  ];
  const keep = new Set<PendingEntry>();
  let bytes = ENVELOPE_BYTES;
  for (const e of byRecency) {
    bytes += savedBytes(e);
    if (keep.size > 0 && (keep.size >= MAX_PENDING || bytes > MAX_PENDING_BYTES)) break;
    keep.add(e);
  }
  return keep.size === entries.length ? entries : entries.filter((e) => keep.has(e));
}

// An entry's bytes in the file as save() writes it: its lines indented by four, and the ",\n" after it.
function savedBytes(e: PendingEntry): number {
  const text = JSON.stringify(e, null, 2);
  return Buffer.byteLength(text) + 4 * text.split('\n').length + 2;
}
