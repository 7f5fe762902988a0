import { randomBytes, timingSafeEqual } from 'node:crypto';
import { basename } from 'node:path';
import type { AuditEntry, AuditRecord } from '../audit/entry.js';
import type { AuditLog } from '../audit/log.js';
import { DeniedError, EntraclawError, LockedError, PromptCancelledError } from '../errors.js';
import { identifyByToken } from '../identity/darwin.js';
import { interpreterName } from '../identity/interpreter.js';
import { userNamespaceOf, withinNamespace } from '../identity/namespace.js';
import type { Identity, Refusal } from '../identity/peer.js';
import { identify, identifyParent } from '../identity/peer.js';
import { identifyAndWatch, stillWatched, unwatch, type Watch } from '../identity/watch.js';
import { forgetStats } from '../lib/file-key.js';
import { grantSpecFor, itemName } from '../lib/percent.js';
import { programLabel, visible } from '../lib/visible.js';
import type { Grant, GrantOperation } from '../policy/grant.js';
import { decide, filterVisible, findClient, setOperation } from '../policy/match.js';
import { recordPending } from '../policy/pending.js';
import type { Policy } from '../policy/schema.js';
import { expiredDaemonHint, isExpired, MAX_TEXT_BYTES, secretSetCommand } from '../store/item-rules.js';
import { forgetfulStoreNote } from '../store/select.js';
import type { Item, Store } from '../store/types.js';
import type { Confirmer } from './confirm.js';
import type { Connection, FrameHandler, SenderFrame } from './connection.js';
import type { ConsentMemory, Question } from './consent.js';
import type { Logger } from './log.js';
import type { PolicyCache } from './policy-cache.js';
import {
  MAX_FRAME,
  PROTOCOL_VERSION,
  parseHello,
  parseRequest,
  type Request,
  type RequestId,
  replyId,
  wireError,
} from './protocol.js';

/** Everything a request handler needs; explicit so tests can build a daemon around real parts. */
export interface HandlerDeps {
  store: Store;
  policy: PolicyCache;
  /** The audit log; append gives undefined for an entry held back by the throttle (audit/throttle.ts). */
  audit: Pick<AuditLog, 'head'> & { append(entry: AuditEntry): AuditRecord | undefined };
  pendingPath: string;
  log: Logger;
  uid: number;
  /** Canonical paths and hashes of our own shim scripts: requests through them are decided for the shim's parent. */
  shims: Map<string, string>;
  version: string;
  /** Sandbox mode: grants for whoever calls (see AgentOptions.boundary); no approval queue. */
  boundary?: Grant[];
  /**
   * The user namespace callers must be in (identity/namespace.ts): the daemon's own, or for a sandbox's
   * broker the sandbox's (or one nested in it), asked at each request since it exists only once bwrap
   * runs; unset: any.
   */
  namespace?: () => string;
  /** Asks the user about a grant with confirm = true; none configured means such grants are refused. */
  confirmUse?: Confirmer;
  /** The user's recent yeses, for grants with confirm_for. */
  consent?: ConsentMemory;
}

type Reply = { json: object; attachment?: Buffer };
/** A request that goes through identity and policy (audit_head is answered before either). */
type Served = Exclude<Request, { op: 'audit_head' }>;

function fail(id: unknown, code: string, message: string, extra: Record<string, unknown> = {}): Reply {
  return { json: { id, ok: false, error: { code, message, ...extra } } };
}

/** Builds the one dispatch function for every frame: hello first, then identity, policy, store, audit. */
export function createHandler(deps: HandlerDeps): FrameHandler {
  const auditTrouble = troubleLog(deps.log);
  return async (frame, conn) => {
    const started = performance.now();
    const id = replyId(frame.json);
    if (!conn.greeted) {
      try {
        parseHello(frame.json, frame.attachment);
      } catch (err) {
        // The reason goes out before the hang-up: a client author learns which version or field was wrong.
        const reply = fail(id, 'bad_request', (err as Error).message);
        conn.reply(reply.json);
        conn.close('no hello', true);
        return reply;
      }
      conn.greeted = true;
      watchSender(frame, conn, deps);
      return {
        json: { id, ok: true, v: PROTOCOL_VERSION, server: `entraclaw/${deps.version}`, maxFrame: MAX_FRAME },
      };
    }
    if ((frame.json as { op?: unknown }).op === 'confirm') return confirm(frame, conn, deps);
    const reused = reusedId(conn, id);
    if (reused) {
      frame.attachment.fill(0);
      return reused;
    }
    let request: Request;
    try {
      request = parseRequest(frame.json, frame.attachment);
    } catch (err) {
      return { json: { id, ok: false, error: wireError(err) } };
    }
    // Where the audit chain stands, so `entraclaw audit verify` can notice its newest lines cut off. Not
    // secret and not audited (a line for it would move the head it reports).
    if (request.op === 'audit_head') {
      if (frame.sender?.uid !== deps.uid)
        return fail(request.id, 'denied', 'the sender could not be established');
      return { json: { id: request.id, ok: true, ...deps.audit.head() } };
    }
    const audit: Partial<AuditEntry> = { requestId: String(request.id), op: request.op };
    if ('service' in request && request.service) audit.service = request.service;
    if ('account' in request && request.account) audit.account = request.account;
    const finish = (reply: Reply, decision: AuditEntry['decision'], reason?: string): Reply => {
      const entry = {
        time: new Date().toISOString(),
        ...audit,
        decision,
        ...(reason ? { reason } : {}),
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      } as AuditEntry;
      let line: AuditRecord | undefined;
      try {
        line = deps.audit.append(entry);
        auditTrouble.fine();
      } catch (err) {
        if (!(err instanceof EntraclawError)) throw err;
        return unaudited(reply, request, err, auditTrouble);
      }
      // `agent -v`: the audit line, as the log line it would otherwise take `entraclaw audit` to see.
      if (line) {
        const { time: _time, prev: _prev, decision: _decision, ...said } = line;
        deps.log('debug', decision, said);
      } else {
        const { time: _time, decision: _decision, ...said } = entry;
        deps.log('debug', decision, { ...said, throttled: 'not in the audit log one by one' });
      }
      return reply;
    };
    try {
      const watched = watchedSender(frame, conn, deps, audit);
      const subject: Unpinned = watched ?? whoIsAsking(frame, deps, audit, lookerFor(conn, deps));
      // A sandboxed caller that could not be pinned is served (see unpinned); every audit line says so.
      const note = subject.unpinned ? `caller not pinned: ${subject.unpinned}` : undefined;
      const audited: typeof finish = note
        ? (reply, decision, reason) => finish(reply, decision, reason ? `${reason}; ${note}` : note)
        : finish;
      const confirmFirst = watched ? undefined : { conn, senderPid: frame.sender!.pid };
      return await serve(request, subject, deps, audit, audited, confirmFirst);
    } catch (err) {
      if (!(err instanceof EntraclawError))
        deps.log('error', 'request failed', { op: request.op, error: (err as Error).message });
      // The user cancelled the vault's passphrase prompt at the agent's terminal: for the client the store
      // is locked (nothing was wrong with its request), and the agent asks again at the next one.
      const error =
        err instanceof PromptCancelledError
          ? wireError(
              new LockedError(
                "the vault is locked: its passphrase prompt at the agent's terminal was cancelled",
                'ask again: the agent prompts at the next request that needs the vault',
              ),
            )
          : wireError(err);
      const decision = error.code === 'denied' ? 'denied' : 'error';
      return finish({ json: { id: request.id, ok: false, error } }, decision, error.message);
    }
  };
}

// Linux identifies the sender of each message from /proc; macOS from the connection's audit token.
function lookerFor(conn: Connection, deps: HandlerDeps): typeof identify {
  if (process.platform !== 'darwin') return identify;
  return (pid) => identifyByToken(conn.fd, pid, deps.uid);
}

// Identity comes from the kernel's per-message credentials only; nothing in the request names the caller.
function whoIsAsking(
  frame: SenderFrame,
  deps: HandlerDeps,
  audit: Partial<AuditEntry>,
  look: typeof identify = identify,
): Identity {
  const sender = frame.sender;
  if (!sender)
    throw new DeniedError(
      'the sender of this request could not be established (bytes from more than one process, or no kernel credentials)',
    );
  audit.pid = sender.pid;
  audit.uid = sender.uid;
  if (sender.uid !== deps.uid) throw new DeniedError(`request sent by uid ${sender.uid}`);
  // Read before look(): its final pidfd check shows that the namespace read was the sender's.
  assertSessionNamespace(sender.pid, deps);
  const who = look(sender.pid, sender.pidfd);
  if ('refused' in who) {
    auditRefused(audit, who);
    if (deps.boundary) return unpinned(who, sender.uid);
    throw new DeniedError(`caller refused: ${who.reason}`);
  }
  auditAs(audit, who);
  if (!isShim(who, deps)) return who;
  // A request through our shim is decided for the program that ran the shim; the audit names both.
  const parent = identifyParent(who);
  audit.via = { pid: who.pid, exe: `${who.exe} ${who.script}` };
  if ('refused' in parent) {
    auditRefused(audit, parent);
    if (deps.boundary) return unpinned(parent, sender.uid);
    throw new DeniedError(`shim caller refused: ${parent.reason}`);
  }
  auditAs(audit, parent);
  // The program the request is decided for must be of this session too, not only the shim it ran.
  assertSessionNamespace(parent.pid, deps);
  return parent;
}

/**
 * Whether `who` is one of our shims: its script and that script's hash, run by an executable named as
 * node. The name matters as much as the bytes: node's bytes under another name (`bash -C SHIM evil.js`)
 * find the script by that name's rules while node runs another file, and would pass for the shim.
 */
function isShim(who: Pick<Identity, 'exe' | 'script' | 'scriptSha256'>, deps: HandlerDeps): boolean {
  return (
    who.script !== undefined &&
    deps.shims.get(who.script) === who.scriptSha256 &&
    interpreterName(basename(who.exe)) === 'node'
  );
}

// Refuses `pid` unless it is in the daemon's user namespace (where the daemon checks one).
function assertSessionNamespace(pid: number, deps: HandlerDeps): void {
  if (deps.namespace === undefined) return;
  const namespace = userNamespaceOf(pid);
  if (servedNamespace(pid, namespace, deps)) return;
  if (deps.boundary) {
    throw new DeniedError(
      `request from outside this sandbox (user namespace ${namespace ?? 'unreadable'}): another sandbox or the host`,
      "each sandbox's broker serves only the command it runs; give that program its own `entraclaw sandbox`",
    );
  }
  throw new DeniedError(
    `request from another user namespace (${namespace ?? 'unreadable'}): a sandbox or container, not this session`,
    'a sandboxed program gets secrets through `entraclaw sandbox`, its own broker and profile (docs/sandbox.md)',
  );
}

// The user's daemon serves its own namespace only; a sandbox's broker the sandbox's and those nested in it.
function servedNamespace(pid: number, namespace: string | undefined, deps: HandlerDeps): boolean {
  const want = deps.namespace!();
  return deps.boundary ? withinNamespace(pid, namespace, want) : namespace === want;
}

// A refused caller is audited with what is known of it, and nothing of the process it was reached through.
function auditRefused(audit: Partial<AuditEntry>, who: Refusal): void {
  audit.pid = who.pid;
  for (const key of ['exe', 'sha256', 'script'] as const) delete audit[key];
  if (who.exe) audit.exe = who.exe;
  if (who.sha256) audit.sha256 = who.sha256;
}

// The audit line names the program the request is decided for.
function auditAs(audit: Partial<AuditEntry>, who: Identity): void {
  Object.assign(audit, { pid: who.pid, uid: who.uid, exe: who.exe, sha256: who.sha256 });
  if (who.script) audit.script = who.script;
  else delete audit.script;
}

async function serve(
  request: Served,
  subject: Identity,
  deps: HandlerDeps,
  audit: Partial<AuditEntry>,
  finish: (reply: Reply, decision: AuditEntry['decision'], reason?: string) => Reply,
  unconfirmed?: { conn: Connection; senderPid: number },
): Promise<Reply> {
  const id = request.id;
  const policy = deps.boundary ? boundaryPolicy(subject, deps.boundary) : currentPolicy(deps.policy);
  if (request.op === 'whoami') {
    // Only the client whose pins the caller matches now: a program changed since approval is no client.
    const client = findClient(policy.clients, subject);
    return finish(
      {
        json: {
          id,
          ok: true,
          pid: subject.pid,
          exe: subject.exe,
          sha256: subject.sha256,
          ...(subject.script ? { script: subject.script, scriptSha256: subject.scriptSha256 } : {}),
          ...(audit.via ? { via: audit.via } : {}),
          client: client?.name ?? null,
          grants: client?.grants ?? [],
        },
      },
      'granted',
    );
  }
  // A list names at most a service filter: it is not what is decided on, only what the hints name.
  const target =
    request.op === 'list'
      ? request.service
        ? { service: request.service }
        : {}
      : { service: request.service, account: request.account };
  // Whether a set creates or updates decides which grant it needs (nono's create/update split). The store
  // is asked only for a caller that may do one of them: anyone else learns nothing, not even whether the
  // item exists, and is refused (or queued) for `write`.
  let existing: Item | undefined;
  let op: GrantOperation = request.op === 'get' ? 'read' : request.op === 'set' ? 'write' : request.op;
  if (request.op === 'set') {
    const may = (o: 'create' | 'update') =>
      decide(policy, subject, { op: o, ...target }, new Date()).result === 'granted';
    if (may('create') || may('update')) {
      existing = await deps.store.get(request.service, request.account);
      existing?.value.fill(0);
      op = setOperation(existing !== undefined);
    }
  }
  const d = decide(policy, subject, { op, ...target }, new Date());
  if (d.result === 'unknown' && !deps.boundary) {
    const entry = await recordPending(
      deps.pendingPath,
      subject,
      subject.argv,
      subject.uid,
      { op, ...target },
      new Date(),
      (damaged) =>
        deps.log('warn', 'pending-approvals file was damaged; started a new queue', {
          error: damaged.message,
        }),
    );
    const grantHint = grantSpecFor(request) ?? 'SERVICE';
    return finish(
      fail(
        id,
        'pending',
        `${programLabel(subject.exe, subject.script)} is not approved yet; the request is queued as ${entry.id}`,
        {
          pendingId: entry.id,
          hint: `ask the user to run: entraclaw approve ${entry.id} --grant ${grantHint} --ops ${op}`,
        },
      ),
      'pending',
      `unknown client, queued as ${entry.id}`,
    );
  }
  if (d.result !== 'granted') {
    // In a sandbox the grants are the profile's, not a client's in policy.toml: say where to change them.
    throw new DeniedError(
      d.result === 'denied' ? d.reason : 'no grant for this program',
      deps.boundary
        ? deps.boundary.length === 0
          ? // Nothing to add an operation to: without --profile, or a profile with no [credential_access].
            `the sandbox grants nothing; run it with --profile FILE whose [credential_access] lists ${
              target.service === undefined ? 'the services to list' : JSON.stringify(target.service)
            } in services and "${op}" in operations (docs/sandbox.md)`
          : `the sandbox profile does not grant it; add "${op}" to the operations of a [credential_access] entry ${
              target.service === undefined
                ? 'that covers the services to list'
                : `whose services or service_prefixes cover ${JSON.stringify(target.service)}`
            } (docs/sandbox.md)`
        : d.result === 'denied'
          ? d.hint
          : undefined,
    );
  }
  audit.reason = `client ${d.client.name}`;
  if (unconfirmed) return challenge(unconfirmed.conn, request, subject, unconfirmed.senderPid, audit, finish);
  let granted = `client ${d.client.name}`;
  if (d.grant.confirm) {
    granted = await askUser(deps, { client: d.client.name, subject, op, ...target }, d.grant.confirmFor);
    // The question may have been open for a minute: a revoke or an expiry meanwhile wins over the yes.
    forgetStats();
    const policyNow = deps.boundary ? policy : currentPolicy(deps.policy);
    const still = decide(policyNow, subject, { op, ...target }, new Date());
    if (still.result !== 'granted' || still.client.name !== d.client.name) {
      throw new DeniedError(
        `client "${d.client.name}" lost this grant while the user was asked (revoked, changed or expired)`,
      );
    }
  }
  switch (request.op) {
    case 'get': {
      const item = await deps.store.get(request.service, request.account);
      if (!item) {
        const forgotten = forgetfulStoreNote(deps.store.name);
        return finish(
          fail(
            id,
            'not_found',
            `${itemName(request.service, request.account)} not found in ${deps.store.name}`,
            forgotten
              ? {
                  hint: `${forgotten}: the user can store it again with: ${secretSetCommand(request.service, request.account)}`,
                }
              : {},
          ),
          'granted',
          'not found',
        );
      }
      if (isExpired(item) && !request.allowExpired) {
        item.value.fill(0);
        return finish(
          fail(id, 'expired', `${itemName(request.service, request.account)} expired at ${item.expiresAt}`, {
            hint: expiredDaemonHint(item),
          }),
          'granted',
          'expired',
        );
      }
      const { value, ...meta } = item;
      return finish({ json: { id, ok: true, item: onWire(meta) }, attachment: value }, 'granted', granted);
    }
    case 'set': {
      const meta = await deps.store.set({
        service: request.service,
        account: request.account,
        value: request.value,
        ...(request.kind ? { kind: request.kind } : {}),
        ...(request.label ? { label: request.label } : {}),
        ...(request.expiresAt ? { expiresAt: request.expiresAt } : {}),
        ...(request.scope ? { scope: request.scope } : {}),
      });
      request.value.fill(0);
      // Our own write: a stat shared from before it must not describe the store after it.
      forgetStats();
      return finish(
        { json: { id, ok: true, item: meta, created: existing === undefined } },
        'granted',
        granted,
      );
    }
    case 'delete': {
      const deleted = await deps.store.delete(request.service, request.account);
      forgetStats();
      if (!deleted)
        return finish(
          fail(
            id,
            'not_found',
            `${itemName(request.service, request.account)} not found in ${deps.store.name}`,
          ),
          'granted',
          'not found',
        );
      return finish({ json: { id, ok: true } }, 'granted', granted);
    }
    case 'list': {
      const items = filterVisible(
        d.client.grants,
        await deps.store.list(request.service ? { service: request.service } : undefined),
        new Date(),
      ).map(onWire);
      return finish({ json: { id, ok: true, items } }, 'granted', granted);
    }
  }
}

// Another tool (a Secret Service client) may have given an item a label or scope of any size: cut to what
// the protocol itself accepts, so one such item cannot make every get or list of it too large to send.
function onWire<T extends { label?: string; scope?: string }>(meta: T): T {
  const cut = (text: string | undefined) =>
    text === undefined || Buffer.byteLength(text) <= MAX_TEXT_BYTES
      ? text
      : truncateUtf8(text, MAX_TEXT_BYTES);
  const label = cut(meta.label);
  const scope = cut(meta.scope);
  if (label === meta.label && scope === meta.scope) return meta;
  return { ...meta, ...(label !== undefined ? { label } : {}), ...(scope !== undefined ? { scope } : {}) };
}

// The longest prefix of `text` within `max` UTF-8 bytes, ending in "…" (3 bytes), never halving a character.
function truncateUtf8(text: string, max: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max - 3) break;
    bytes += n;
    end += ch.length;
  }
  return `${text.slice(0, end)}…`;
}

// A grant with confirm = true: the user answers through the askpass program before anything is done.
// With confirm_for, a recent yes to the same question from the same process answers it instead.
async function askUser(deps: HandlerDeps, q: Question, remember: string | undefined): Promise<string> {
  if (!deps.confirmUse) {
    // confirm_for asks once per window, not on every use: the reason says which the grant wants.
    const needs = remember
      ? `needs your confirmation (a yes lasts ${remember} per process)`
      : 'needs confirmation on every use';
    throw new DeniedError(
      `the grant of client "${q.client}" ${needs}, and no askpass program is configured`,
      'set [agent] askpass = "/usr/bin/ssh-askpass" in agent.toml (or ENTRACLAW_ASKPASS) and restart the agent',
    );
  }
  if (remember && deps.consent?.holds(q, remember)) {
    return `client ${q.client}, confirmed by the user within ${remember}`;
  }
  const { subject, op } = q;
  const what = op === 'list' ? 'list items' : `${op} ${q.service}/${q.account}`;
  const program = programLabel(subject.exe, subject.script);
  const lasts = remember ? ` (a yes holds for this process for ${remember})` : '';
  // Item names and paths come from the caller: escaped, so they cannot restyle or reorder the question.
  const answer = await deps.confirmUse(
    visible(`Entraclaw: allow "${q.client}" (${program}, pid ${subject.pid}) to ${what}?${lasts}`),
  );
  if (!answer.yes) throw new DeniedError(`not confirmed: ${answer.why}`);
  if (remember) deps.consent?.remember(q);
  return `client ${q.client}, confirmed by the user`;
}

/** A sandboxed caller that could not be pinned (see unpinned); `unpinned` says why. */
type Unpinned = Identity & { unpinned?: string };

// In sandbox mode a caller that cannot be pinned — inline `sh -c` code (how agents run tools), an
// interpreter flag, LD_PRELOAD, a parent that already exited — is still inside the sandbox, and the
// sandbox is the boundary: it gets the profile's grants like any other process in there. Outside a
// sandbox the same refusal is a denial. The audit keeps what is known of the caller and why.
function unpinned(refusal: Refusal, uid: number): Unpinned {
  return {
    pid: refusal.pid,
    uid,
    ppid: 0,
    exe: refusal.exe ?? '(unknown)',
    sha256: refusal.sha256 ?? '0'.repeat(64),
    argv: [],
    unpinned: refusal.reason,
  };
}

// In a sandbox the boundary is the sandbox itself: whoever reaches this private socket is the sandboxed
// command (or one of its children), so the profile's grants apply to that identity, whatever it is.
function boundaryPolicy(subject: Identity, grants: Grant[]): Policy {
  return {
    clients: [
      {
        name: 'sandbox',
        exe: subject.exe,
        sha256: subject.sha256,
        ...(subject.script ? { script: subject.script, scriptSha256: subject.scriptSha256 } : {}),
        grants,
      },
    ],
  };
}

function currentPolicy(cache: PolicyCache): Policy {
  const loaded = cache.current();
  if ('error' in loaded)
    throw new DeniedError(
      `policy file is invalid (${loaded.error}); every request is denied until it is fixed`,
      loaded.hint ?? 'fix the file (docs/policy.md); `entraclaw clients` shows the error too',
    );
  return loaded.policy;
}

// Exec after send: a process can write a request and then exec an approved binary before we read
// /proc, and Linux has no exec counter to tell. So a granted request is served only after a confirmation
// that its sender can write only AFTER we identified it: the nonce leaves the daemon once /proc showed the
// approved program, at which point the code that wrote the request (if it was someone else's) is gone.
// The confirmation must come from the same pid, still the same program (identity re-checked).
/** Unconfirmed requests a connection may hold at once. */
export const MAX_UNCONFIRMED = 32;

interface Unconfirmed {
  nonce: Buffer;
  senderPid: number;
  subject: Identity;
  request: Served;
  audit: Partial<AuditEntry>;
  finish: (reply: Reply, decision: AuditEntry['decision'], reason?: string) => Reply;
}

const unconfirmed = new WeakMap<Connection, Map<string, Unconfirmed>>();

function challenge(
  conn: Connection,
  request: Served,
  subject: Identity,
  senderPid: number,
  audit: Partial<AuditEntry>,
  finish: Unconfirmed['finish'],
): Reply {
  const waiting = unconfirmed.get(conn) ?? new Map<string, Unconfirmed>();
  unconfirmed.set(conn, waiting);
  if (waiting.size >= MAX_UNCONFIRMED) {
    return fail(request.id, 'bad_request', `more than ${MAX_UNCONFIRMED} requests await confirmation`);
  }
  const nonce = randomBytes(16);
  waiting.set(waitingKey(request.id), { nonce, senderPid, subject, request, audit, finish });
  return { json: { id: request.id, challenge: nonce.toString('hex') } };
}

/**
 * The refusal for a request (of any op, valid or not) whose id is that of a request awaiting
 * confirmation on `conn`: its reply could not be told from the waiting one's final reply, so it goes out
 * under id null instead, before the request is looked at.
 */
function reusedId(conn: Connection, id: RequestId | null): Reply | undefined {
  if (id === null || !unconfirmed.get(conn)?.has(waitingKey(id))) return undefined;
  return fail(
    null,
    'bad_request',
    `a request with id ${JSON.stringify(id)} already awaits confirmation on this connection; ids must be unique among requests in flight`,
  );
}

// 1 and "1" are two ids (docs/protocol.md): the key keeps their types apart.
function waitingKey(id: number | string): string {
  return `${typeof id}:${id}`;
}

function sameProgram(a: Identity, b: Identity): boolean {
  return (
    a.pid === b.pid &&
    a.exe === b.exe &&
    a.sha256 === b.sha256 &&
    a.script === b.script &&
    a.scriptSha256 === b.scriptSha256
  );
}

async function confirm(frame: SenderFrame, conn: Connection, deps: HandlerDeps): Promise<Reply> {
  const json = frame.json as { id?: unknown; nonce?: unknown };
  const keys = Object.keys(json).sort().join(',');
  // Only named back as far as it helps: the keys are the client's, of any number and size.
  const shown = Buffer.byteLength(keys) > 120 ? truncateUtf8(keys, 120) : keys;
  const id = replyId(json);
  const entry = id === null ? undefined : unconfirmed.get(conn)?.get(waitingKey(id));
  // Every request gets exactly one reply: a confirm naming no waiting request is answered with id null
  // (that id was answered already, or never sent), and a malformed one ends the request it names.
  if (!entry) {
    return fail(null, 'bad_request', `no request with id ${JSON.stringify(id)} awaits confirmation`);
  }
  unconfirmed.get(conn)!.delete(waitingKey(id!));
  const { finish, request } = entry;
  const attached = frame.attachment.length > 0;
  if (keys !== 'id,nonce,op' || typeof json.nonce !== 'string' || attached) {
    if (request.op === 'set') request.value.fill(0);
    frame.attachment.fill(0);
    const what = attached ? 'with an attachment' : `fields: ${shown}`;
    const reason = `malformed confirm (${what}); it needs exactly {id, op:"confirm", nonce} with the challenge's hex nonce and no attachment`;
    return finish(fail(request.id, 'bad_request', reason), 'error', reason);
  }
  const given = Buffer.from(json.nonce, 'hex');
  const deny = (reason: string) => finish(fail(request.id, 'denied', reason), 'denied', reason);
  try {
    if (given.length !== entry.nonce.length || !timingSafeEqual(given, entry.nonce))
      return deny('wrong confirmation nonce');
    if (!frame.sender || frame.sender.pid !== entry.senderPid) {
      return deny('confirmation sent by another process than the request (fd shared?)');
    }
    let again: Identity;
    let watch: Watch | undefined;
    try {
      const watching: typeof identify = (pid, pidfd) => {
        const r = identifyAndWatch(pid, pidfd);
        watch = r.watch;
        return r.who;
      };
      again = whoIsAsking(frame, deps, {}, process.platform === 'linux' ? watching : lookerFor(conn, deps));
    } catch (err) {
      if (watch) unwatch(watch);
      return deny(`caller changed before confirming: ${(err as Error).message}`);
    }
    if (!sameProgram(again, entry.subject)) {
      if (watch) unwatch(watch);
      return deny('caller changed (exec?) between request and confirmation');
    }
    try {
      return await serve(request, again, deps, entry.audit, finish);
    } finally {
      if (watch) keepWatch(conn, watch, deps);
    }
  } catch (err) {
    const error = wireError(err);
    return finish(
      { json: { id: request.id, ok: false, error } },
      error.code === 'denied' ? 'denied' : 'error',
      error.message,
    );
  } finally {
    if (request.op === 'set') request.value.fill(0);
  }
}

// Watched senders (identity/watch.ts, docs/protocol.md): a process identified at a moment when nothing
// else was in flight on its connection is watched for exec from then on. Every later byte it sends was
// sent after that moment, so while the watch holds, each request was written by the identified program:
// no confirmation round trip and no full /proc read is needed. Shims are never watched (their requests
// are decided for their parent, which is re-identified every time).
/** Processes watched per connection: one, the usual client; another sharing the fd goes the long way. */
export const MAX_WATCHES_PER_CONNECTION = 1;

const watches = new WeakMap<Connection, Map<number, Watch>>();

function watchesOf(conn: Connection): Map<number, Watch> {
  let map = watches.get(conn);
  if (!map) {
    const created = new Map<number, Watch>();
    map = created;
    watches.set(conn, created);
    conn.atClose(() => {
      for (const w of created.values()) unwatch(w);
      created.clear();
    });
  }
  return map;
}

/** Watches the sender of a hello, when it can be identified and nothing else is in flight. */
function watchSender(frame: SenderFrame, conn: Connection, deps: HandlerDeps): void {
  const sender = frame.sender;
  if (!sender || sender.uid !== deps.uid || process.platform !== 'linux') return;
  if (watchesOf(conn).has(sender.pid)) return;
  const { watch } = identifyAndWatch(sender.pid, sender.pidfd);
  if (watch) keepWatch(conn, watch, deps);
}

// Checked after identification: if the connection is quiet now, whatever arrives later was sent later.
function keepWatch(conn: Connection, watch: Watch, deps: HandlerDeps): void {
  const map = watchesOf(conn);
  const shim = isShim(watch.identity, deps);
  let quiet = false;
  try {
    quiet = conn.quiet();
  } catch {}
  const old = map.get(watch.pid);
  // Only a process of this session is watched; stillWatched() then refuses it once it enters another
  // user namespace, and every request of one never watched meets whoIsAsking's namespace check.
  const foreign = deps.namespace !== undefined && !servedNamespace(watch.pid, watch.userns, deps);
  if (shim || foreign || !quiet || (!old && map.size >= MAX_WATCHES_PER_CONNECTION)) {
    unwatch(watch);
    return;
  }
  if (old) unwatch(old);
  map.set(watch.pid, watch);
}

/** The sender's identity when it is a watched process that still holds; undefined sends it the long way. */
function watchedSender(
  frame: SenderFrame,
  conn: Connection,
  deps: HandlerDeps,
  audit: Partial<AuditEntry>,
): Identity | undefined {
  const sender = frame.sender;
  const map = sender && watches.get(conn);
  const watch = map?.get(sender!.pid);
  if (!sender || !map || !watch) return undefined;
  // A watched program that has since entered a user namespace of its own (unshare) fails stillWatched:
  // the long way refuses it.
  if (sender.uid !== deps.uid || !stillWatched(watch)) {
    map.delete(sender.pid);
    unwatch(watch);
    return undefined;
  }
  auditAs(audit, watch.identity);
  return watch.identity;
}

/** Says once in the log that the audit log cannot be written (not at every request), and when it can again. */
function troubleLog(log: Logger): { failed(err: EntraclawError): void; fine(): void } {
  let said: string | undefined;
  return {
    failed(err) {
      if (said === err.message) return;
      said = err.message;
      log('error', 'cannot write the audit log: requests fail until it can', {
        error: err.message,
        ...(err.hint ? { hint: err.hint } : {}),
      });
    },
    fine() {
      if (said === undefined) return;
      said = undefined;
      log('info', 'the audit log is written again');
    },
  };
}

/**
 * The reply to a request whose audit line could not be written: nothing is served without one (a value
 * read is wiped, not sent), and the client is told why as `unavailable`. A write was already carried out
 * by then: it is said so, since a client that took it for undone might do it again or in another way.
 */
function unaudited(
  reply: Reply,
  request: Request,
  err: EntraclawError,
  trouble: ReturnType<typeof troubleLog>,
): Reply {
  trouble.failed(err);
  reply.attachment?.fill(0);
  const done =
    (reply.json as { ok?: unknown }).ok === true && (request.op === 'set' || request.op === 'delete');
  const message = done
    ? `this ${request.op} was carried out, but ${err.message}`
    : `nothing was served: ${err.message}`;
  return {
    json: {
      id: request.id,
      ok: false,
      error: { code: 'unavailable', message, ...(err.hint ? { hint: err.hint } : {}) },
    },
  };
}
