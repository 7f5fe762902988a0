import type { AuditEntry } from '../audit/entry.js';
import type { AuditLog } from '../audit/log.js';
import { DeniedError, EntraclawError } from '../errors.js';
import type { Identity } from '../identity/peer.js';
import { identify, identifyParent } from '../identity/peer.js';
import { decide, filterVisible, setOperation } from '../policy/match.js';
import { recordPending } from '../policy/pending.js';
import type { Grant, Policy } from '../policy/schema.js';
import { isExpired } from '../store/item-rules.js';
import type { Store } from '../store/types.js';
import type { FrameHandler, SenderFrame } from './connection.js';
import type { Logger } from './log.js';
import type { PolicyCache } from './policy-cache.js';
import {
  MAX_FRAME,
  PROTOCOL_VERSION,
  parseHello,
  parseRequest,
  type Request,
  wireError,
} from './protocol.js';

/** Everything a request handler needs; explicit so tests can build a daemon around real parts. */
export interface HandlerDeps {
  store: Store;
  policy: PolicyCache;
  audit: AuditLog;
  pendingPath: string;
  log: Logger;
  uid: number;
  /** Canonical paths and hashes of our own shim scripts: requests through them are decided for the shim's parent. */
  shims: Map<string, string>;
  version: string;
  /** Sandbox mode: grants for whoever calls (see AgentOptions.boundary); no approval queue. */
  boundary?: Grant[];
}

type Reply = { json: object; attachment?: Buffer };

function fail(id: unknown, code: string, message: string, extra: Record<string, unknown> = {}): Reply {
  return { json: { id, ok: false, error: { code, message, ...extra } } };
}

/** Builds the one dispatch function for every frame: hello first, then identity, policy, store, audit. */
export function createHandler(deps: HandlerDeps): FrameHandler {
  return async (frame, conn) => {
    const started = performance.now();
    const id = (frame.json as { id?: unknown } | null)?.id ?? null;
    if (!conn.greeted) {
      try {
        parseHello(frame.json);
      } catch (err) {
        conn.close('no hello');
        return fail(id, 'bad_request', (err as Error).message);
      }
      conn.greeted = true;
      return {
        json: { id, ok: true, v: PROTOCOL_VERSION, server: `entraclaw/${deps.version}`, maxFrame: MAX_FRAME },
      };
    }
    let request: Request;
    try {
      request = parseRequest(frame.json, frame.attachment);
    } catch (err) {
      return { json: { id, ok: false, error: wireError(err) } };
    }
    const audit: Partial<AuditEntry> = { requestId: String(request.id), op: request.op };
    if ('service' in request && request.service) audit.service = request.service;
    if ('account' in request && request.account) audit.account = request.account;
    const finish = (reply: Reply, decision: AuditEntry['decision'], reason?: string): Reply => {
      deps.audit.append({
        time: new Date().toISOString(),
        ...audit,
        decision,
        ...(reason ? { reason } : {}),
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      } as AuditEntry);
      return reply;
    };
    try {
      const subject = whoIsAsking(frame, deps, audit);
      return await serve(request, subject, deps, audit, finish);
    } catch (err) {
      if (!(err instanceof EntraclawError))
        deps.log('error', 'request failed', { op: request.op, error: (err as Error).message });
      const error = wireError(err);
      const decision = error.code === 'denied' ? 'denied' : 'error';
      return finish({ json: { id: request.id, ok: false, error } }, decision, error.message);
    }
  };
}

// Identity comes from the kernel's per-message credentials only; nothing in the request names the caller.
function whoIsAsking(frame: SenderFrame, deps: HandlerDeps, audit: Partial<AuditEntry>): Identity {
  const sender = frame.sender;
  if (!sender)
    throw new DeniedError(
      'the sender of this request could not be established (bytes from more than one process, or no kernel credentials)',
    );
  audit.pid = sender.pid;
  audit.uid = sender.uid;
  if (sender.uid !== deps.uid) throw new DeniedError(`request sent by uid ${sender.uid}`);
  const who = identify(sender.pid, sender.pidfd);
  if ('refused' in who) {
    if (who.exe) audit.exe = who.exe;
    if (who.sha256) audit.sha256 = who.sha256;
    throw new DeniedError(`caller refused: ${who.reason}`);
  }
  Object.assign(audit, { exe: who.exe, sha256: who.sha256, ...(who.script ? { script: who.script } : {}) });
  if (!who.script || deps.shims.get(who.script) !== who.scriptSha256) return who;
  // A request through our shim is decided for the program that ran the shim; the audit names both.
  const parent = identifyParent(who);
  audit.via = { pid: who.pid, exe: `${who.exe} ${who.script}` };
  if ('refused' in parent) {
    audit.exe = parent.exe;
    throw new DeniedError(`shim caller refused: ${parent.reason}`);
  }
  Object.assign(audit, { pid: parent.pid, exe: parent.exe, sha256: parent.sha256, script: parent.script });
  if (!parent.script) delete audit.script;
  return parent;
}

async function serve(
  request: Request,
  subject: Identity,
  deps: HandlerDeps,
  audit: Partial<AuditEntry>,
  finish: (reply: Reply, decision: AuditEntry['decision'], reason?: string) => Reply,
): Promise<Reply> {
  const id = request.id;
  const policy = deps.boundary ? boundaryPolicy(subject, deps.boundary) : currentPolicy(deps.policy);
  if (request.op === 'whoami') {
    const d = decide(policy, subject, { op: 'list' }, new Date());
    const client = 'client' in d && d.client ? d.client : undefined;
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
  // Whether a set creates or updates decides which grant it needs (nono's create/update split).
  const existing = request.op === 'set' ? await deps.store.get(request.service, request.account) : undefined;
  existing?.value.fill(0);
  const op =
    request.op === 'set' ? setOperation(existing !== undefined) : request.op === 'get' ? 'read' : request.op;
  const target = request.op === 'list' ? {} : { service: request.service, account: request.account };
  const d = decide(policy, subject, { op, ...target }, new Date());
  if (d.result === 'unknown' && !deps.boundary) {
    const entry = recordPending(
      deps.pendingPath,
      subject,
      subject.argv,
      subject.uid,
      { op, ...target },
      new Date(),
    );
    const grantHint =
      request.op === 'list'
        ? 'SERVICE'
        : `${encodeURIComponent(request.service)}/${encodeURIComponent(request.account)}`;
    return finish(
      fail(
        id,
        'pending',
        `${subject.exe}${subject.script ? ` ${subject.script}` : ''} is not approved yet; the request is queued as ${entry.id}`,
        {
          pendingId: entry.id,
          hint: `ask the user to run: entraclaw approve ${entry.id} --grant ${grantHint} --ops ${op}`,
        },
      ),
      'pending',
      `unknown client, queued as ${entry.id}`,
    );
  }
  if (d.result !== 'granted')
    throw new DeniedError(d.result === 'denied' ? d.reason : 'no grant for this program');
  audit.reason = `client ${d.client.name}`;
  switch (request.op) {
    case 'get': {
      const item = await deps.store.get(request.service, request.account);
      if (!item)
        return finish(
          fail(id, 'not_found', `${request.service}/${request.account} not found in ${deps.store.name}`),
          'granted',
          'not found',
        );
      if (isExpired(item) && !request.allowExpired) {
        item.value.fill(0);
        return finish(
          fail(id, 'expired', `${request.service}/${request.account} expired at ${item.expiresAt}`),
          'granted',
          'expired',
        );
      }
      const { value, ...meta } = item;
      return finish(
        { json: { id, ok: true, item: meta }, attachment: value },
        'granted',
        `client ${d.client.name}`,
      );
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
      return finish(
        { json: { id, ok: true, item: meta, created: existing === undefined } },
        'granted',
        `client ${d.client.name}`,
      );
    }
    case 'delete': {
      const deleted = await deps.store.delete(request.service, request.account);
      if (!deleted)
        return finish(
          fail(id, 'not_found', `${request.service}/${request.account} not found in ${deps.store.name}`),
          'granted',
          'not found',
        );
      return finish({ json: { id, ok: true } }, 'granted', `client ${d.client.name}`);
    }
    case 'list': {
      const items = filterVisible(
        d.client.grants,
        await deps.store.list(request.service ? { service: request.service } : undefined),
        new Date(),
      );
      return finish({ json: { id, ok: true, items } }, 'granted', `client ${d.client.name}`);
    }
  }
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
    );
  return loaded.policy;
}
