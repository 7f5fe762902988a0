import type { Socket } from 'node:net';
import { TooLargeError } from '../errors.js';
import { forgetStats } from '../lib/file-key.js';
import { native, type PeerCred } from '../lib/native.js';
import { encodeFrame, FrameDecoder, MAX_REQUEST_JSON_BYTES, parseJsonPart } from './frame.js';
import { replyId } from './protocol.js';

/** Per-connection limits (named and explained in server.ts). */
export interface ConnectionLimits {
  idleTimeoutMs: number;
  frameTimeoutMs: number;
  maxQueuedFrames: number;
  /** Bytes held for all connections together (half-read and queued requests, unread replies); shared. */
  budget: ByteBudget;
}

/** A cap on request bytes the daemon holds in memory at once, across connections. */
export interface ByteBudget {
  used: number;
  readonly max: number;
}

/**
 * Processes that may have requests in flight on one connection at once, each holding a pidfd until its
 * requests are handled: what bounds the fds a connection costs (server.ts) when processes sharing it
 * take turns writing requests that are never read (the client does not read its replies).
 */
export const MAX_SENDERS_IN_FLIGHT = 2;

/** A pidfd shared by every frame of one sender held by a connection; closed when the last user releases it. */
class PidfdRef {
  private refs = 1;
  constructor(
    readonly fd: number,
    private readonly onClosed?: () => void,
  ) {}
  retain(): this {
    this.refs++;
    return this;
  }
  /** Whether more than one holder has it (the connection's last sender and a frame not yet handled). */
  shared(): boolean {
    return this.refs > 1;
  }
  release(): void {
    if (--this.refs > 0 || this.fd < 0) return;
    native().close(this.fd);
    this.onClosed?.();
  }
}

/** The bytes of a frame came from more than one sender. */
const MIXED = Symbol('mixed senders');

interface ChunkSender {
  pid: number;
  uid: number;
  ref: PidfdRef;
}

/** One complete request frame and the kernel-reported sender of every byte in it. */
export interface SenderFrame {
  /** The parsed JSON part; parsed from `jsonBytes` only when the frame is handled. */
  json: unknown;
  jsonBytes: Buffer;
  attachment: Buffer;
  /** Wire size of the frame, for the byte budget. */
  bytes: number;
  /** The sender, or undefined when bytes of this frame came from more than one process. */
  sender?: { pid: number; uid: number; pidfd: number };
  /** Releases the sender's pidfd; called once the frame is handled. */
  release(): void;
}

/** Handles one frame and returns exactly one reply (json + optional attachment). */
export type FrameHandler = (
  frame: SenderFrame,
  conn: Connection,
) => Promise<{ json: object; attachment?: Buffer }>;

/**
 * One client connection. libuv reads with read(2), which drops ancillary data, so the addon reads a
 * dup of the fd with recvmsg() and tells us who sent each chunk (SCM_CREDENTIALS + SCM_PIDFD). The
 * net.Socket stays paused and is used only to write replies and to close.
 */
export class Connection {
  private readonly decoder = new FrameDecoder(MAX_REQUEST_JSON_BYTES);
  private readonly queue: SenderFrame[] = [];
  private reader: object | undefined;
  private busy = false;
  private closed = false;
  // The peer shut down its writing side: what it sent is still answered, then the connection closes.
  private ended = false;
  // Waiting for the client to read its replies before its next request is handled.
  private stalled = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Chunks read so far: how the idle verdict tells that bytes came in after its timer fired. */
  private chunks = 0;
  private frameTimer: NodeJS.Timeout | undefined;
  // Who sent the bytes of the frame being assembled: nobody yet, one sender (the pidfd of its first chunk
  // ours to close), or MIXED. One entry per frame, not per chunk: a frame dripped a byte per recvmsg
  // would otherwise hold a pidfd per byte and use up the daemon's fds (every client refused).
  private partial: ChunkSender | typeof MIXED | undefined;
  // The sender of the latest chunk that came with a pidfd, kept so that its next chunks reuse that pidfd.
  private lastSender: ChunkSender | undefined;
  // Pidfds this connection holds open (the last sender's and those of frames held): at most MAX_SENDERS_IN_FLIGHT.
  private pidfds = 0;
  // Bytes of this connection counted in the shared budget: requests half-read, queued and in hand, and
  // replies written but not yet taken by the socket (the client is not reading).
  private held = 0;
  private inHand = 0;
  /** Whether the hello exchange has happened. */
  greeted = false;
  private readonly closers: (() => void)[] = [];

  constructor(
    readonly socket: Socket,
    readonly fd: number,
    private readonly limits: ConnectionLimits,
    private readonly handle: FrameHandler,
    private readonly onClose: (conn: Connection, reason: string) => void,
    private readonly onError: (err: unknown) => void,
  ) {
    socket.on('error', () => this.close('socket error'));
    socket.on('close', () => this.close('peer closed'));
    socket.on('drain', () => this.account());
    this.reader = native().startReader(fd, (err, data, cred) => this.onChunk(err, data, cred));
    this.armIdle();
  }

  // A request still being answered (waiting for the user's confirmation, say) is not idleness: its
  // reply must reach the client, so the clock starts again instead. A client that has not read its
  // replies for as long is cut off.
  // A timer that fires after the event loop stalled (a long GC, a starved CPU) runs before the poll phase
  // reads what arrived meanwhile: the verdict waits for one poll (setImmediate runs after it), and bytes
  // read there start the clock again instead of losing a request already sent to an idle close.
  private armIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const chunks = this.chunks;
      setImmediate(() => {
        if (this.closed) return;
        if (this.stalled) this.close('replies not read');
        else if (this.busy || this.chunks !== chunks) this.armIdle();
        else this.close('idle timeout');
      });
    }, this.limits.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private onChunk(err: Error | null, data: Buffer | null, cred: PeerCred | null): void {
    // A new request may be in these bytes: stats taken before them are too old for it.
    forgetStats();
    this.chunks++;
    const ref = this.chunkRef(cred);
    try {
      if (this.closed) return;
      if (err) {
        this.close(`read error: ${err.message}`);
        return;
      }
      if (!data || !cred) {
        this.endOfInput();
        return;
      }
      if (!ref) {
        this.reply({
          id: null,
          ok: false,
          error: {
            code: 'unavailable',
            message: `requests from more than ${MAX_SENDERS_IN_FLIGHT} processes in flight on one connection; it is closed, and requests still queued were not done`,
            hint: 'give each process its own connection',
          },
        });
        this.close('too many senders in flight');
        return;
      }
      // Whether a frame was already in progress before these bytes: its deadline must not move.
      const midFrame = this.decoder.buffered > 0;
      let frames: ReturnType<FrameDecoder['pushRaw']>;
      try {
        frames = this.decoder.pushRaw(data);
      } catch (e) {
        // A malformed or oversized frame leaves the stream unsynchronised: answer once, then hang up.
        const code = (e as { code?: string }).code ?? 'bad_request';
        this.reply({ id: null, ok: false, error: { code, message: (e as Error).message } });
        this.close('bad frame');
        return;
      }
      const mine = (): ChunkSender => ({ pid: cred.pid, uid: cred.uid, ref: ref.retain() });
      this.addPartial(mine());
      for (const f of frames) {
        const senders = this.partial;
        // Later frames in this same chunk came only from this chunk's sender.
        this.partial = mine();
        this.queue.push(this.withSender(f.json, f.attachment, f.bytes, senders));
      }
      // Bytes left over belong to the next frame; if none are left, nobody owns the next frame yet.
      if (this.decoder.buffered === 0) this.releasePartial();
      if (this.queue.length > this.limits.maxQueuedFrames) {
        // The client learns why, as it does for the byte budget.
        this.reply({
          id: null,
          ok: false,
          error: {
            code: 'unavailable',
            message: `more than ${this.limits.maxQueuedFrames} requests in flight on one connection; it is closed, and requests still queued were not done`,
            hint: `keep at most ${this.limits.maxQueuedFrames} requests in flight per connection`,
          },
        });
        this.close('too many queued requests');
        return;
      }
      // Every connection may buffer a frame of up to MAX_FRAME; together they may not exceed the budget.
      this.account();
      if (this.limits.budget.used > this.limits.budget.max) {
        this.reply({
          id: null,
          ok: false,
          error: {
            code: 'unavailable',
            message: 'the daemon is holding too many bytes of requests and unread replies; retry',
          },
        });
        this.close('request byte budget exceeded');
        return;
      }
      // A new frame starts when none was in progress or when this chunk completed one and left more bytes.
      this.armFrameTimer(!midFrame || frames.length > 0);
      // Idle means no complete request: bytes that complete nothing (a slow drip) do not count.
      if (frames.length > 0) this.armIdle();
      if (frames.length > 0) drainSoon(this);
    } finally {
      ref?.release();
    }
  }

  // The pidfd that vouches for a chunk's bytes. A pidfd of the same process that a frame not yet handled
  // holds serves for its later chunks too (the kernel's new one is closed): found alive when a frame is
  // handled, that process has held the pid since the earlier chunk, so bytes reported with the pid since
  // were its own. So a process that pipelines requests, or drips one a byte at a time, costs one fd.
  // Once its frames are handled the next chunk takes the kernel's new pidfd, so a pidfd of a process
  // that has since died (its pid reused) stops standing in for the pid's new owner.
  // Undefined: a new sender while MAX_SENDERS_IN_FLIGHT others still hold theirs.
  private chunkRef(cred: PeerCred | null): PidfdRef | undefined {
    const fd = cred?.pidfd ?? -1;
    // A closed connection keeps nothing: close() has released its last sender already.
    if (!cred || fd < 0 || this.closed) return new PidfdRef(fd);
    const last = this.lastSender;
    if (last && last.pid === cred.pid && last.uid === cred.uid && last.ref.shared()) {
      native().close(fd);
      return last.ref.retain();
    }
    this.lastSender = undefined;
    last?.ref.release();
    if (this.pidfds >= MAX_SENDERS_IN_FLIGHT) {
      native().close(fd);
      return undefined;
    }
    this.pidfds++;
    const ref = new PidfdRef(fd, () => this.pidfds--);
    this.lastSender = { pid: cred.pid, uid: cred.uid, ref: ref.retain() };
    return ref;
  }

  // No byte comes after the end (a client may shut down its writing side after its last request, as
  // `socat` or `nc -N` do, and still read the replies): the requests read so far are answered, then the
  // connection closes. A frame the end cut short can never complete and is dropped unanswered.
  private endOfInput(): void {
    this.ended = true;
    if (this.reader) native().stopReader(this.reader);
    this.reader = undefined;
    clearTimeout(this.frameTimer);
    this.decoder.discard();
    this.releasePartial();
    this.account();
    this.closeIfDone();
  }

  private closeIfDone(): void {
    if (this.ended && !this.busy && this.queue.length === 0) this.close('peer closed', true);
  }

  // Adds the sender of a chunk to the frame being assembled. All bytes of a frame must come from one
  // process; otherwise the frame is ambiguous and refused, and no pidfd of it is worth keeping.
  private addPartial(s: ChunkSender): void {
    const had = this.partial;
    if (had === undefined) {
      this.partial = s;
      return;
    }
    s.ref.release();
    if (had === MIXED) return;
    // The first chunk's pidfd is kept: its process, found alive as this pid when the frame is handled,
    // held the pid from that chunk on, so later chunks reported with the same pid were its own too.
    // A first chunk without a pidfd (-1) leaves the frame with none, refused (it cannot be verified).
    if (s.pid !== had.pid || s.uid !== had.uid) {
      had.ref.release();
      this.partial = MIXED;
    }
  }

  private withSender(
    jsonBytes: Buffer,
    attachment: Buffer,
    bytes: number,
    senders: ChunkSender | typeof MIXED | undefined,
  ): SenderFrame {
    // pid -1: the kernel attached no credentials to these bytes; the sender is unknown, so fail closed.
    const keep = senders !== undefined && senders !== MIXED && senders.pid > 0 ? senders : undefined;
    if (senders !== undefined && senders !== MIXED && senders !== keep) senders.ref.release();
    return {
      json: undefined,
      jsonBytes,
      attachment,
      bytes,
      sender: keep ? { pid: keep.pid, uid: keep.uid, pidfd: keep.ref.fd } : undefined,
      release: () => keep?.ref.release(),
    };
  }

  private releasePartial(): void {
    if (this.partial !== undefined && this.partial !== MIXED) this.partial.ref.release();
    this.partial = undefined;
  }

  // Slowloris: a frame that starts must finish within frameTimeoutMs of its first byte. The deadline is
  // set once per frame; later bytes of the same frame never push it back (a drip of one byte a second
  // would otherwise hold the connection forever).
  private armFrameTimer(newFrame: boolean): void {
    if (this.decoder.buffered === 0) {
      clearTimeout(this.frameTimer);
      this.frameTimer = undefined;
      return;
    }
    if (!newFrame && this.frameTimer) return;
    clearTimeout(this.frameTimer);
    this.frameTimer = setTimeout(() => this.close('frame read timeout'), this.limits.frameTimeoutMs);
    this.frameTimer.unref();
  }

  /** Handles the queued frames one after another (drainSoon's batch calls it). */
  async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        // A client that does not read its replies gets no more of them: its next request waits until
        // the socket has taken the last one, so what the daemon holds for it stays within one reply.
        if (this.socket.writableNeedDrain && this.queue.length > 0) await this.repliesRead();
        const frame = this.closed ? undefined : this.queue.shift();
        if (!frame) break;
        this.inHand = frame.bytes;
        try {
          // Parsed only now, one request at a time: queued requests hold their bytes (within the byte
          // budget), not what hostile JSON can grow to once parsed. Malformed JSON is a framing error.
          try {
            frame.json = parseJsonPart(frame.jsonBytes);
          } catch (e) {
            this.reply({
              id: null,
              ok: false,
              error: { code: 'bad_request', message: (e as Error).message },
            });
            this.close('bad frame');
            break;
          }
          const r = await this.handle(frame, this).catch((err: unknown) => this.failed(frame, err));
          this.reply(r.json, r.attachment);
        } finally {
          frame.release();
          this.inHand = 0;
          this.account();
        }
      }
    } finally {
      this.busy = false;
      this.closeIfDone();
    }
  }

  // Resolves once the socket has taken the replies written so far ('drain'), or is closed.
  private repliesRead(): Promise<void> {
    this.stalled = true;
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.stalled = false;
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  // The handler answers every request itself; a throw that still escapes it is a bug of ours, and one
  // request's bug must not take the daemon (every other client's connection) down with it.
  private failed(frame: SenderFrame, err: unknown): { json: object; attachment?: Buffer } {
    this.onError(err);
    return {
      json: {
        id: replyId(frame.json),
        ok: false,
        error: { code: 'internal', message: 'internal error in the daemon (its log has the details)' },
      },
    };
  }

  // Brings this connection's share of the budget up to date (zero once closed).
  private account(): void {
    let now = 0;
    if (!this.closed) {
      now = this.decoder.buffered + this.inHand + this.socket.writableLength;
      for (const f of this.queue) now += f.bytes;
    }
    this.limits.budget.used += now - this.held;
    this.held = now;
  }

  /**
   * Whether no request byte is waiting: none queued here, none half-read, none in the socket. Whatever
   * arrives after a true answer was sent after it.
   */
  quiet(): boolean {
    return (
      !this.closed &&
      this.queue.length === 0 &&
      this.decoder.buffered === 0 &&
      native().socketInq(this.fd) === 0
    );
  }

  /** Runs fn when the connection closes (at once if it already has). */
  atClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closers.push(fn);
  }

  /**
   * Writes one reply frame. A reply over the frame cap (a list of many items, an item another tool gave a
   * huge label) goes out as a `too_large` error for the same request instead: the client learns why, and
   * the daemon, which would otherwise die of the throw, stays up for everyone else.
   */
  reply(json: object, attachment?: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(json, attachment);
    } catch (err) {
      if (!(err instanceof TooLargeError)) throw err;
      frame = encodeFrame({
        id: (json as { id?: unknown }).id ?? null,
        ok: false,
        error: {
          code: 'too_large',
          message: `the reply does not fit in one frame (${err.message})`,
          hint: 'list one service at a time; an item whose label or scope another tool made huge needs it shortened there',
        },
      });
    }
    this.socket.write(frame);
    this.account();
    // Unread replies count against the budget as requests do: a connection whose reply takes the daemon
    // over it while its earlier ones still wait to be read is closed (the client learns nothing more).
    if (this.limits.budget.used > this.limits.budget.max && this.socket.writableNeedDrain)
      this.close('reply byte budget exceeded');
  }

  /**
   * Stops reading, closes the socket and releases every pidfd still held. `flush`: replies still queued
   * for the socket go out first (a peer that does not read them is cut off after the frame timeout).
   */
  close(reason: string, flush = false): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.frameTimer);
    if (this.reader) native().stopReader(this.reader);
    this.reader = undefined;
    this.releasePartial();
    this.lastSender?.ref.release();
    this.lastSender = undefined;
    for (const f of this.queue.splice(0)) f.release();
    this.account();
    this.socket.end();
    if (flush && this.socket.writableLength > 0) {
      const cutOff = setTimeout(() => this.socket.destroy(), this.limits.frameTimeoutMs);
      cutOff.unref();
      this.socket.once('finish', () => {
        clearTimeout(cutOff);
        this.socket.destroy();
      });
    } else {
      this.socket.destroy();
    }
    for (const fn of this.closers.splice(0)) fn();
    this.onClose(this, reason);
  }
}

// Requests are handled after every readable socket of this turn has been read, all in one batch: the
// stats every request needs (lib/file-key.ts) are then taken once, after the last of those reads, and
// shared by the whole batch instead of taken again for each request.
const ready = new Set<Connection>();

function drainSoon(conn: Connection): void {
  if (ready.size === 0) setImmediate(drainReady);
  ready.add(conn);
}

function drainReady(): void {
  const batch = [...ready];
  ready.clear();
  for (const conn of batch) void conn.drain();
}
