import { connect as netConnect, type Socket } from 'node:net';
import {
  encodeFrame,
  FrameDecoder,
  MAX_QUEUED_FRAMES,
  PROTOCOL_VERSION,
  type WireErrorCode,
} from '../daemon/frame.js';
import { socketPath } from '../daemon/socket-path.js';
import { TooLargeError } from '../errors.js';
import { native } from '../lib/native.js';
import { resolvePaths } from '../lib/paths.js';
import { shellQuote } from '../lib/shell.js';
import type { Grant } from '../policy/grant.js';
import { type ItemKind, type ItemMeta, MAX_VALUE_BYTES } from '../store/types.js';

// Re-exported so that an application can name them: the package exports only this module.
export type { Grant, ItemKind, ItemMeta };

/**
 * A BrokerError's `code`: one of docs/protocol.md's error codes (the SDK's own failures use them too).
 * - `denied`: the policy refuses it (no grant covers it, the grant expired, the program changed since it
 *   was approved, an invalid policy file); retrying will not help until the user changes the policy.
 * - `pending`: this program is not approved yet; `pendingId` is queued for `entraclaw approve`, and `hint`
 *   is that command. Retry after the user approves.
 * - `not_found`: no such item.
 * - `expired`: the item is past its `expiresAt`; refresh it, or `get(..., { allowExpired: true })`.
 * - `locked`: the store is locked; ask the user to unlock it.
 * - `unavailable`: no daemon at the socket (the message names it), the connection dropped (a write in
 *   flight may or may not have been done: the message says so), a request timed out, the client was
 *   closed, or the store or audit log cannot be used right now. Retry later.
 * - `bad_request`: a malformed request (bad names, options, a value that is not a Buffer or string); fix
 *   the caller.
 * - `too_large`: a value above 1 MiB, or a reply too large for one frame (list one service at a time).
 * - `internal`: an unexpected failure in the daemon (its log says more), or the store's data damaged.
 */
export type BrokerErrorCode = WireErrorCode;

/** Every failure of the SDK: a daemon's error reply, or the SDK's own (no daemon, dropped, timed out). */
export class BrokerError extends Error {
  override name = 'BrokerError';
  constructor(
    /** What went wrong, to branch on: see BrokerErrorCode. */
    readonly code: BrokerErrorCode,
    message: string,
    /** When present, what to do about it, for the user (e.g. the `entraclaw approve` command). */
    readonly hint?: string,
    /** With `pending` only: the id the request is queued as (`entraclaw approve <pendingId> ...`). */
    readonly pendingId?: string,
  ) {
    super(message);
  }
}

// Errors of a connection that dropped under a request (not the daemon's answer, not a timeout).
const DROPS = new WeakSet<Error>();
// Requests that change nothing, and may be sent again when their connection drops before the reply.
const REPEATABLE = new Set(['get', 'list', 'whoami', 'audit_head']);

function dropped(message: string, hint?: string): BrokerError {
  const err = new BrokerError('unavailable', message, hint);
  DROPS.add(err);
  return err;
}

// A write whose connection dropped before its reply: the daemon may have done it or not, and a caller
// that only sees "connection closed" cannot tell that from a write never sent.
function undecided(op: string, drop: Error): BrokerError {
  return new BrokerError(
    'unavailable',
    `${drop.message} before it answered this ${op}: it may or may not have been done`,
    op === 'set'
      ? 'get the item to see which value it holds, or set it again (a set replaces the whole item)'
      : 'get the item to see whether it is still there, or delete it again (not_found if it was done)',
  );
}

/** Who the daemon says we are, from the kernel's view of this process. */
export interface WhoAmI {
  pid: number;
  exe: string;
  sha256: string;
  script?: string;
  scriptSha256?: string;
  /** Set when the request came through a shim: the shim process; the fields above are its parent. */
  via?: { pid: number; exe: string };
  client: string | null;
  /** That client's grants, as policy.toml holds them (docs/protocol.md, `whoami`). */
  grants: Grant[];
}

/** Options of `connect()`. */
export interface ConnectOptions {
  /** Socket path; default $ENTRACLAW_SOCKET, then the runtime dir. */
  socket?: string;
  /**
   * Per-request timeout in milliseconds. The default (DEFAULT_TIMEOUT_MS) outlasts a grant with confirm,
   * which waits for the user's answer; a tool that must not wait for a person should set less.
   */
  timeoutMs?: number;
}

/**
 * Default per-request timeout: the daemon asks the user about a grant with confirm for up to 60 s, and
 * one question may be waiting behind another, so a shorter default would give up on an answered request.
 */
export const DEFAULT_TIMEOUT_MS = 130_000;
/** Largest per-request timeout (about 24.8 days): the longest delay a Node timer takes. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/**
 * Requests one connection has in flight at once; more wait here. The daemon hangs up on a client with
 * more than MAX_QUEUED_FRAMES unread requests, and each request may add a confirm frame of its own.
 */
const MAX_IN_FLIGHT = MAX_QUEUED_FRAMES / 2;

interface Waiter {
  resolve(v: { json: Record<string, unknown>; attachment: Buffer }): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  /** The connection the request went out on. */
  sock: Socket;
}

/**
 * A connection to the Entraclaw daemon. Requests may be issued concurrently; replies are matched by id.
 * The daemon closes a connection idle for 60 s: the next request opens a new one (identity is checked per
 * request anyway), so a long-lived client keeps working. An idle connection does not keep the process
 * alive; a request in flight does. A read (get, list, whoami) whose connection drops
 * before its reply is asked once more on a new one: the daemon may have closed the connection just as it
 * was sent, leaving it unread. Writes in flight fail with `unavailable`, since a set or delete might then
 * happen twice.
 */
export class Client {
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private inFlight = 0;
  private readonly queued: (() => void)[] = [];
  private link: Promise<Socket> | undefined;
  private closed = false;

  private constructor(
    private readonly path: string,
    private readonly timeoutMs: number,
    /** How to start a daemon where this client looks for it, for the hint of a failed connect. */
    private readonly startHint: string,
  ) {}

  /** Opens a connection and performs the hello exchange. */
  static async connect(opts: ConnectOptions = {}): Promise<Client> {
    checkOptions(opts);
    // A socket named by the caller or $ENTRACLAW_SOCKET is where a plain `entraclaw agent` started from
    // another shell does not listen; the default one is where an agent moved by agent.toml is not found.
    const named = opts.socket || process.env.ENTRACLAW_SOCKET;
    const path = opts.socket ?? socketPath(resolvePaths());
    const client = new Client(
      path,
      opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      named
        ? `start one there with \`entraclaw agent --socket ${shellQuote(path)}\`, or name the socket your agent listens on (connect({ socket }) or ENTRACLAW_SOCKET)`
        : "start it with `entraclaw agent` or `entraclaw service install`; an agent on another socket (its --socket, agent.toml's [agent] socket) is found through ENTRACLAW_SOCKET or connect({ socket })",
    );
    await client.socket();
    return client;
  }

  // The open connection, or a new one (with its hello) when there is none.
  private socket(): Promise<Socket> {
    if (this.closed) {
      return Promise.reject(
        new BrokerError('unavailable', 'this entraclaw client was closed', 'call connect() again'),
      );
    }
    if (!this.link) {
      const opening = this.open();
      this.link = opening;
      opening.catch(() => {
        if (this.link === opening) this.link = undefined;
      });
    }
    return this.link;
  }

  private async open(): Promise<Socket> {
    const path = this.path;
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect(path);
      s.once('connect', () => resolve(s));
      s.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new BrokerError(
            'unavailable',
            `cannot connect to the entraclaw daemon at ${path}: ${err.code ?? err.message}`,
            this.startHint,
          ),
        ),
      );
    });
    try {
      assertOwnServer(sock, path);
    } catch (err) {
      sock.destroy();
      throw err;
    }
    // An open connection alone does not keep the program running: a script that never calls close()
    // would otherwise wait for the daemon's idle close (60 s) before exiting. A request in flight still
    // does, through its timeout timer, so no reply is lost to an exit.
    sock.unref();
    this.attach(sock);
    try {
      await this.exchange(sock, { op: 'hello', v: PROTOCOL_VERSION, client: 'entraclaw-js' });
    } catch (err) {
      sock.destroy();
      throw err;
    }
    return sock;
  }

  private attach(sock: Socket): void {
    const decoder = new FrameDecoder();
    const opened = this.link;
    // Whatever waits on this socket fails when it goes; the next request opens another.
    const drop = (err: Error) => {
      if (this.link === opened) this.link = undefined;
      this.failAll(sock, err);
    };
    sock.on('data', (chunk: Buffer) => {
      let frames: ReturnType<FrameDecoder['push']>;
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        sock.destroy();
        return drop(err as Error);
      }
      for (const f of frames) {
        const json = f.json as Record<string, unknown>;
        const w = this.waiters.get(json.id as number);
        if (!w) continue;
        // The daemon asks us to confirm a granted request after it has identified us (docs/protocol.md).
        if (typeof json.challenge === 'string') {
          sock.write(encodeFrame({ id: json.id, op: 'confirm', nonce: json.challenge }));
          continue;
        }
        this.waiters.delete(json.id as number);
        clearTimeout(w.timer);
        w.resolve({ json, attachment: f.attachment });
      }
    });
    // A dropped connection (the daemon at its connection limit, or stopping) is the daemon being
    // unavailable, said as a BrokerError like every other failure, not a bare EPIPE/ECONNRESET.
    sock.on('error', (err: NodeJS.ErrnoException) =>
      drop(
        dropped(
          `connection to the entraclaw daemon failed: ${err.code ?? err.message}`,
          'retry; if it persists, see the daemon log (it may be at its connection limit)',
        ),
      ),
    );
    sock.on('close', () => drop(dropped('connection to the entraclaw daemon closed')));
  }

  private failAll(sock: Socket, err: Error): void {
    for (const [id, w] of this.waiters) {
      if (w.sock !== sock) continue;
      clearTimeout(w.timer);
      w.reject(err);
      this.waiters.delete(id);
    }
  }

  // One request, sent once a slot is free and a connection is open.
  private async call(
    req: Record<string, unknown>,
    attachment?: Buffer,
  ): Promise<{ json: Record<string, unknown>; attachment: Buffer }> {
    // A finished request hands its slot straight to the next in line, so none is taken twice.
    if (this.inFlight < MAX_IN_FLIGHT) this.inFlight++;
    else await new Promise<void>((go) => this.queued.push(go));
    try {
      try {
        return await this.exchange(await this.socket(), req, attachment);
      } catch (err) {
        if (!(err instanceof Error && DROPS.has(err))) throw err;
        if (!REPEATABLE.has(String(req.op))) throw undecided(String(req.op), err);
        return await this.exchange(await this.socket(), req, attachment);
      }
    } finally {
      const next = this.queued.shift();
      if (next) next();
      else this.inFlight--;
    }
  }

  private exchange(
    sock: Socket,
    req: Record<string, unknown>,
    attachment?: Buffer,
  ): Promise<{ json: Record<string, unknown>; attachment: Buffer }> {
    const id = this.nextId++;
    // Encoded before anything waits for a reply: a request too large to send would otherwise leave a
    // waiter and its timer behind (keeping the process alive until the timeout), and fail as a bare error.
    let frame: Buffer;
    try {
      frame = encodeFrame({ id, ...req }, attachment);
    } catch (err) {
      const tooLarge = err instanceof TooLargeError;
      return Promise.reject(
        new BrokerError(
          tooLarge ? 'too_large' : 'bad_request',
          `cannot send this ${String(req.op)} request: ${(err as Error).message}`,
          tooLarge ? `a secret value may be at most ${MAX_VALUE_BYTES} bytes (1 MiB)` : undefined,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(
          new BrokerError(
            'unavailable',
            `no reply from the entraclaw daemon within ${this.timeoutMs} ms`,
            'a grant with confirm waits for the user to answer; otherwise the daemon may be stuck: see its log',
          ),
        );
      }, this.timeoutMs);
      this.waiters.set(id, {
        resolve: (r) => {
          if (r.json.ok === true) return resolve(r);
          const e = (r.json.error ?? {}) as {
            code?: BrokerErrorCode;
            message?: string;
            hint?: string;
            pendingId?: string;
          };
          reject(new BrokerError(e.code ?? 'internal', e.message ?? 'request failed', e.hint, e.pendingId));
        },
        reject,
        timer,
        sock,
      });
      sock.write(frame);
    });
  }

  /** Reads a secret's value. */
  async get(service: string, account: string, opts: { allowExpired?: boolean } = {}): Promise<Buffer> {
    return (await this.getItem(service, account, opts)).value;
  }

  /** Reads a secret with its metadata. */
  async getItem(
    service: string,
    account: string,
    opts: { allowExpired?: boolean } = {},
  ): Promise<ItemMeta & { value: Buffer }> {
    // From JavaScript anything can arrive: a truthy string must not read an expired token by accident.
    if (opts.allowExpired !== undefined && typeof opts.allowExpired !== 'boolean') {
      throw new BrokerError(
        'bad_request',
        `get(): allowExpired must be true or false, not ${typeof opts.allowExpired}`,
      );
    }
    const r = await this.call({
      op: 'get',
      service,
      account,
      ...(opts.allowExpired ? { allowExpired: true } : {}),
    });
    return { ...(r.json.item as ItemMeta), value: r.attachment };
  }

  /** Creates or updates a secret. */
  async set(
    service: string,
    account: string,
    value: Buffer | string,
    meta: { kind?: ItemKind; label?: string; expiresAt?: string; scope?: string } = {},
  ): Promise<ItemMeta> {
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
      throw new BrokerError(
        'bad_request',
        `set(): the value must be a Buffer or a string, not ${value === null ? 'null' : typeof value}`,
        'pass the secret as bytes (Buffer) or text; numbers and objects are not converted',
      );
    }
    const r = await this.call(
      { op: 'set', service, account, ...meta },
      Buffer.isBuffer(value) ? value : Buffer.from(value),
    );
    return r.json.item as ItemMeta;
  }

  /** Deletes a secret. */
  async delete(service: string, account: string): Promise<void> {
    await this.call({ op: 'delete', service, account });
  }

  /** Lists the items this client may see (metadata only). */
  async list(service?: string): Promise<ItemMeta[]> {
    const r = await this.call({ op: 'list', ...(service ? { service } : {}) });
    return r.json.items as ItemMeta[];
  }

  /** Asks the daemon who it thinks we are. */
  async whoami(): Promise<WhoAmI> {
    const { id: _id, ok: _ok, ...rest } = (await this.call({ op: 'whoami' })).json;
    return rest as unknown as WhoAmI;
  }

  /** Where the daemon's audit chain stands: its file, the next line's seq, the last line's hash. */
  async auditHead(): Promise<{ path: string; next: number; prev: string }> {
    const { json } = await this.call({ op: 'audit_head' });
    return { path: String(json.path), next: Number(json.next), prev: String(json.prev) };
  }

  /** Closes the connection; requests still in flight fail, and later ones are refused. */
  close(): void {
    this.closed = true;
    void this.link?.then(
      (sock) => {
        sock.end();
        sock.destroy();
      },
      () => undefined,
    );
  }
}

// From JavaScript nothing checks the options' names: a misspelt `sokcet` would quietly connect to the
// default daemon, and a timeout given as a string would never fire as meant.
function checkOptions(opts: ConnectOptions): void {
  const bad = (message: string) => new BrokerError('bad_request', `connect(): ${message}`);
  if (typeof opts !== 'object' || opts === null) throw bad('options must be an object');
  for (const key of Object.keys(opts)) {
    if (key !== 'socket' && key !== 'timeoutMs')
      throw bad(`unknown option "${key}" (known: socket, timeoutMs)`);
  }
  if (opts.socket !== undefined && (typeof opts.socket !== 'string' || opts.socket === '')) {
    throw bad('socket must be a non-empty path');
  }
  // Node's timers take at most 2^31 - 1 ms and fire after 1 ms for more: every request would time out.
  if (
    opts.timeoutMs !== undefined &&
    !(Number.isInteger(opts.timeoutMs) && opts.timeoutMs > 0 && opts.timeoutMs <= MAX_TIMEOUT_MS)
  ) {
    throw bad(`timeoutMs must be a positive integer (milliseconds) of at most ${MAX_TIMEOUT_MS}`);
  }
}

/** Connects to the daemon (see `Client.connect`). */
export function connect(opts?: ConnectOptions): Promise<Client> {
  return Client.connect(opts);
}

/**
 * Refuses a socket served by another user before a byte goes out: whoever can write to a directory on the
 * socket's path (a /tmp fallback another user created first, a shared --socket) could listen there, take
 * a set's value and answer gets with values of their choosing. The kernel names the server's uid.
 */
function assertOwnServer(sock: Socket, path: string): void {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const me = process.getuid?.();
  if (me === undefined) return;
  if (fd === undefined || fd < 0) {
    throw new BrokerError('unavailable', `cannot tell who serves the socket ${path}; nothing was sent to it`);
  }
  let uid: number;
  try {
    uid = native().peerUid(fd);
  } catch (err) {
    // Every SDK failure is a BrokerError (README): the addon missing or unbuilt is the daemon unreachable.
    const e = err as Error & { hint?: string };
    throw new BrokerError('unavailable', e.message, e.hint);
  }
  if (uid !== me) {
    throw new BrokerError(
      'denied',
      `the socket ${path} is served by uid ${uid}, not by you (uid ${me}); nothing was sent to it`,
      'another user controls that path: start your own daemon on a socket in a private directory (XDG_RUNTIME_DIR, or --socket / ENTRACLAW_SOCKET)',
    );
  }
}
