import { BadRequestError, TooLargeError } from '../errors.js';
import { MAX_VALUE_BYTES } from '../store/types.js';

// This module is all of the wire format the SDK (and so every shim call) needs, and it stays free of zod:
// protocol.ts validates requests with zod for the daemon and re-exports these constants.

/** Protocol version spoken in the hello exchange. */
export const PROTOCOL_VERSION = 1;
/**
 * Largest frame body (everything after the 4-byte length): the largest value any store holds plus 64 KiB
 * for the JSON part, so a maximal `set` request or `get` reply always fits and nothing larger is buffered.
 */
export const MAX_FRAME = MAX_VALUE_BYTES + 64 * 1024;
/**
 * Largest JSON part of a request. Any valid request needs a few KiB (names of 256 bytes, label and scope
 * of 1024, escaped at most six-fold); the rest of a frame is for the value. Parsed, JSON can take tens of
 * times its size in memory (a deep `[[[...]]]`), so the daemon refuses more before parsing.
 */
export const MAX_REQUEST_JSON_BYTES = 64 * 1024;
/** Error codes that appear on the wire in `error.code`. */
export const WIRE_ERROR_CODES = [
  'denied',
  'pending',
  'not_found',
  'expired',
  'locked',
  'unavailable',
  'bad_request',
  'too_large',
  'internal',
] as const;
/** One wire error code. */
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/** Requests a client may pipeline before it must read replies; the daemon hangs up on more. */
export const MAX_QUEUED_FRAMES = 32;

// Frame = u32 BE L | u32 BE J | J bytes of UTF-8 JSON | L-4-J bytes of attachment (docs/protocol.md).
const LENGTH_BYTES = 4;
// The smallest JSON object, `{}`.
const MIN_JSON_BYTES = 2;

/** One frame split off the stream, its JSON part not yet parsed (parseJsonPart). */
export interface RawFrame {
  json: Buffer;
  attachment: Buffer;
  /** Bytes the frame took on the wire, length prefix included. */
  bytes: number;
}

/** One decoded frame: a JSON object and its (possibly empty) binary attachment. */
export interface Frame {
  json: Record<string, unknown>;
  attachment: Buffer;
  /** Bytes the frame took on the wire, length prefix included. */
  bytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits a byte stream into frames. It buffers at most one frame plus the unread rest of the last chunk,
 * and checks a frame's declared length before buffering its body, so a peer cannot make it allocate more
 * than MAX_FRAME. After an error the stream is out of step; every later push throws the same error.
 * It takes ownership of pushed chunks and zeroes the bytes it has consumed, since those of a `set`
 * request hold a secret. A JSON part over `maxJsonBytes` is refused before it is parsed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private size = 0;
  private failure: Error | undefined;

  constructor(private readonly maxJsonBytes = MAX_FRAME) {}

  /** Bytes received but not yet part of a returned frame. */
  get buffered(): number {
    return this.size;
  }

  /** Adds bytes and returns every frame they complete, in order. */
  push(chunk: Buffer): Frame[] {
    return this.guard(() => this.pushRaw(chunk).map((f) => ({ ...f, json: parseJsonPart(f.json) })));
  }

  /**
   * Adds bytes and returns every frame they complete, in order, without parsing their JSON: the daemon
   * parses a request when it handles it, so queued requests hold only their bytes.
   */
  pushRaw(chunk: Buffer): RawFrame[] {
    if (this.failure) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
    return this.guard(() => {
      const frames: RawFrame[] = [];
      for (let frame = this.next(); frame; frame = this.next()) frames.push(frame);
      return frames;
    });
  }

  // After an error the stream is out of step: remember it, and drop what is buffered.
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.failure = err as Error;
      this.wipe();
      throw err;
    }
  }

  private next(): RawFrame | undefined {
    if (this.size < LENGTH_BYTES) return undefined;
    const length = this.peekLength();
    if (length > MAX_FRAME)
      throw new TooLargeError(`frame of ${length} bytes exceeds the limit of ${MAX_FRAME}`);
    if (length < LENGTH_BYTES + MIN_JSON_BYTES)
      throw new BadRequestError(`frame of ${length} bytes is too short`);
    if (this.size < LENGTH_BYTES + length) return undefined;
    const body = this.take(LENGTH_BYTES + length).subarray(LENGTH_BYTES);
    return { ...splitBody(body, this.maxJsonBytes), bytes: LENGTH_BYTES + length };
  }

  private peekLength(): number {
    const head = Buffer.alloc(LENGTH_BYTES);
    let filled = 0;
    for (const c of this.chunks) {
      filled += c.copy(head, filled, 0, Math.min(c.length, LENGTH_BYTES - filled));
      if (filled === LENGTH_BYTES) break;
    }
    return head.readUInt32BE(0);
  }

  // Copies `n` bytes off the front into one fresh buffer and zeroes them in the chunks they came from.
  private take(n: number): Buffer {
    const out = Buffer.alloc(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const count = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, count);
      c.fill(0, 0, count);
      filled += count;
      if (count === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(count);
    }
    this.size -= n;
    return out;
  }

  /** Drops the bytes of a frame still incomplete (the stream ended), zeroing them. */
  discard(): void {
    this.wipe();
  }

  private wipe(): void {
    for (const c of this.chunks) c.fill(0);
    this.chunks = [];
    this.size = 0;
  }
}

function splitBody(body: Buffer, maxJsonBytes: number): Omit<RawFrame, 'bytes'> {
  const jsonLength = body.readUInt32BE(0);
  if (jsonLength > body.length - LENGTH_BYTES) {
    throw new BadRequestError(
      `JSON length ${jsonLength} exceeds the frame's ${body.length - LENGTH_BYTES} bytes`,
    );
  }
  if (jsonLength > maxJsonBytes) {
    throw new BadRequestError(`JSON part of ${jsonLength} bytes exceeds the limit of ${maxJsonBytes}`);
  }
  const jsonEnd = LENGTH_BYTES + jsonLength;
  return { json: body.subarray(LENGTH_BYTES, jsonEnd), attachment: body.subarray(jsonEnd) };
}

/** Parses a frame's JSON part; throws BadRequestError unless it is UTF-8 JSON holding an object. */
export function parseJsonPart(bytes: Buffer): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch {
    throw new BadRequestError('the JSON part is not valid UTF-8 JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new BadRequestError('the JSON part must be an object');
  }
  return json as Record<string, unknown>;
}

/** Encodes one frame; throws TooLargeError when it would exceed MAX_FRAME (the peer would refuse it). */
export function encodeFrame(json: object, attachment: Buffer = Buffer.alloc(0)): Buffer {
  const text = Buffer.from(JSON.stringify(json), 'utf8');
  const length = LENGTH_BYTES + text.length + attachment.length;
  if (length > MAX_FRAME)
    throw new TooLargeError(`frame of ${length} bytes exceeds the limit of ${MAX_FRAME}`);
  const out = Buffer.allocUnsafe(LENGTH_BYTES + length);
  out.writeUInt32BE(length, 0);
  out.writeUInt32BE(text.length, LENGTH_BYTES);
  text.copy(out, 2 * LENGTH_BYTES);
  attachment.copy(out, 2 * LENGTH_BYTES + text.length);
  return out;
}
