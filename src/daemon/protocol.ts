import * as z from 'zod';
import { BadRequestError, EntraclawError, type ErrorCode, TooLargeError } from '../errors.js';
import {
  LONE_SURROGATE,
  lacksTimezone,
  MAX_TEXT_BYTES,
  readTimestamp,
  spaceForT,
  withinFourDigitYears,
} from '../store/item-rules.js';
import { MAX_VALUE_BYTES } from '../store/types.js';
import { PROTOCOL_VERSION, type WireErrorCode } from './frame.js';

// Limits, named and explained first (after ssh-agent's AGENT_MAX_LEN). The wire format is in docs/protocol.md.

// PROTOCOL_VERSION, MAX_FRAME and the error codes live in frame.ts, which the SDK loads without zod.
export { MAX_FRAME, PROTOCOL_VERSION, WIRE_ERROR_CODES, type WireErrorCode } from './frame.js';
/** Largest service or account name, in UTF-8 bytes (the stores' own limit). */
export const MAX_NAME_BYTES = 256;
/** Largest string request id; numeric ids are uint32. */
export const MAX_ID_CHARS = 64;
// Largest label, scope and hello client string, in UTF-8 bytes: the stores' own limit on labels and scopes.
export { MAX_TEXT_BYTES };

/** Operations a client may request after the hello. */
export const OPS = ['get', 'set', 'delete', 'list', 'whoami', 'audit_head'] as const;
/** One requested operation. */
export type Op = (typeof OPS)[number];

/** The `error` object of a failed reply. */
export interface WireError {
  code: WireErrorCode;
  message: string;
  hint?: string;
  pendingId?: string;
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');

// One message for every way an id can be wrong: zod would otherwise name the limit of the branch that
// failed (a safe integer's 2^53 - 1 for 2^53), which is not the protocol's.
const BAD_ID = `must be a uint32 or a string of 1-${MAX_ID_CHARS} characters`;
const requestId = z.union(
  [z.uint32({ error: BAD_ID }), z.string().min(1, BAD_ID).max(MAX_ID_CHARS, BAD_ID)],
  { error: BAD_ID },
);

const LONE_SURROGATE_MESSAGE = 'must be valid Unicode (a \\u escape left half a surrogate pair)';

// Same rules as the stores (item-rules.ts), so a request the stores would refuse never gets past parsing.
const name = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => utf8Bytes(s) <= MAX_NAME_BYTES, `must be at most ${MAX_NAME_BYTES} bytes`)
  .refine((s) => !/[\0\n\r]/.test(s), 'must not contain NUL or newline characters')
  .refine((s) => !LONE_SURROGATE.test(s), LONE_SURROGATE_MESSAGE);

const text = z
  .string()
  .refine((s) => utf8Bytes(s) <= MAX_TEXT_BYTES, `must be at most ${MAX_TEXT_BYTES} bytes`)
  .refine((s) => !s.includes('\0'), 'must not contain NUL')
  .refine((s) => !LONE_SURROGATE.test(s), LONE_SURROGATE_MESSAGE);

// The CLI's --expires-at rules, so the socket accepts exactly what `entraclaw secret set` does.
const isoTime = z.string().transform((s, ctx) => {
  let iso: string | undefined;
  try {
    iso = readTimestamp(s, 'expiresAt');
  } catch {
    // Said below.
  }
  if (iso !== undefined && withinFourDigitYears(iso)) return iso;
  ctx.addIssue({
    code: 'custom',
    message:
      iso !== undefined
        ? 'must fall within the years 0000 to 9999 in UTC'
        : lacksTimezone(s)
          ? 'has no timezone: add Z (UTC) or an offset such as +02:00'
          : spaceForT(s)
            ? 'has a space between the date and the time: write a T there, e.g. 2026-12-31T23:59:00Z'
            : 'must be an ISO-8601 time, e.g. 2026-12-31T23:59:00Z',
  });
  return z.NEVER;
});

const helloSchema = z.strictObject({
  v: z.number(),
  op: z.literal('hello'),
  id: requestId,
  client: text.optional(),
});

const requestSchema = z.discriminatedUnion('op', [
  z.strictObject({
    id: requestId,
    op: z.literal('get'),
    service: name,
    account: name,
    allowExpired: z.boolean().optional(),
  }),
  z.strictObject({
    id: requestId,
    op: z.literal('set'),
    service: name,
    account: name,
    kind: z.enum(['password', 'token', 'key']).optional(),
    label: text.optional(),
    expiresAt: isoTime.optional(),
    scope: text.optional(),
  }),
  z.strictObject({ id: requestId, op: z.literal('delete'), service: name, account: name }),
  z.strictObject({ id: requestId, op: z.literal('list'), service: name.optional() }),
  z.strictObject({ id: requestId, op: z.literal('whoami') }),
  z.strictObject({ id: requestId, op: z.literal('audit_head') }),
]);

/** The hello that must open every connection. */
export type Hello = z.infer<typeof helloSchema>;
/** A request id: a uint32 or a short string, echoed in the reply. */
export type RequestId = z.infer<typeof requestId>;
type ParsedRequest = z.infer<typeof requestSchema>;
/** A validated request; `set` carries the attachment as `value`. */
export type Request =
  | Exclude<ParsedRequest, { op: 'set' }>
  | (Extract<ParsedRequest, { op: 'set' }> & { value: Buffer });

// Field names and ops are the client's, of any number and size: an error names a few, shortened, so that
// its reply stays small whatever the request held.
const NAMED_FIELDS = 4;
const NAMED_CHARS = 64;

function named(text: unknown): string {
  const chars = [...String(text)];
  return JSON.stringify(chars.length > NAMED_CHARS ? `${chars.slice(0, NAMED_CHARS).join('')}…` : text);
}

function describe(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const where = i.path.length ? `${i.path.join('.')}: ` : '';
      if (i.code === 'unrecognized_keys') {
        const more = i.keys.length > NAMED_FIELDS ? ` and ${i.keys.length - NAMED_FIELDS} more` : '';
        return `${where}unknown field ${i.keys.slice(0, NAMED_FIELDS).map(named).join(', ')}${more}`;
      }
      return `${where}${i.message}`;
    })
    .join('; ');
}

function asObject(json: unknown): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new BadRequestError('a message must be a JSON object');
  }
  return json as Record<string, unknown>;
}

/**
 * The id a reply to `json` carries: its id when that is a valid request id, else null. An id that is
 * missing or malformed names no request the client could be waiting on, and echoing it would send back
 * whatever the client put there.
 */
export function replyId(json: unknown): RequestId | null {
  const parsed = requestId.safeParse((json as { id?: unknown } | null)?.id);
  return parsed.success ? parsed.data : null;
}

/**
 * Validates the opening hello and its (empty) attachment; throws BadRequestError for anything else or
 * another protocol version.
 */
export function parseHello(json: unknown, attachment: Buffer = Buffer.alloc(0)): Hello {
  const obj = asObject(json);
  if (obj.op !== 'hello')
    throw new BadRequestError('the first message must be a hello', 'send {"v":1,"op":"hello","id":0}');
  if (attachment.length > 0) throw new BadRequestError('a hello carries no attachment');
  const parsed = helloSchema.safeParse(obj);
  if (!parsed.success) throw new BadRequestError(`bad hello: ${describe(parsed.error)}`);
  if (parsed.data.v !== PROTOCOL_VERSION) {
    throw new BadRequestError(
      `unsupported protocol version ${parsed.data.v}; this server speaks ${PROTOCOL_VERSION}`,
    );
  }
  return parsed.data;
}

/**
 * Validates one request and its binary attachment. Only `set` carries one (the value: 1 byte to
 * MAX_VALUE_BYTES); any other op with an attachment is malformed. Throws BadRequestError or TooLargeError.
 */
export function parseRequest(json: unknown, attachment: Buffer): Request {
  const obj = asObject(json);
  if (obj.op === 'hello') {
    throw new BadRequestError('hello was already exchanged on this connection', 'send it once, first');
  }
  if (!(OPS as readonly unknown[]).includes(obj.op)) {
    throw new BadRequestError(
      `unknown op ${obj.op === undefined ? '(none)' : named(obj.op)}`,
      `use one of ${OPS.join(', ')}`,
    );
  }
  const parsed = requestSchema.safeParse(obj);
  if (!parsed.success) throw new BadRequestError(`bad ${obj.op} request: ${describe(parsed.error)}`);
  const req = parsed.data;
  if (req.op !== 'set') {
    if (attachment.length > 0) throw new BadRequestError(`a ${req.op} request carries no attachment`);
    return req;
  }
  if (attachment.length === 0) throw new BadRequestError('a set request needs the value as its attachment');
  if (attachment.length > MAX_VALUE_BYTES) {
    throw new TooLargeError(
      `the value is ${attachment.length} bytes; at most ${MAX_VALUE_BYTES} are accepted`,
    );
  }
  return { ...req, value: attachment };
}

// Codes that exist inside Entraclaw but not on the wire, translated once at this boundary.
const TO_WIRE: Partial<Record<ErrorCode, WireErrorCode>> = {
  usage: 'bad_request',
  corrupt: 'internal',
  conflict: 'unavailable',
};

/**
 * The `error` object for a failed reply. Entraclaw errors keep their message and hint; anything else is
 * an unexpected failure whose message may carry internals, so the client sees only "internal error".
 */
export function wireError(err: unknown): WireError {
  if (!(err instanceof EntraclawError)) return { code: 'internal', message: 'internal error' };
  const code = TO_WIRE[err.code] ?? (err.code as WireErrorCode);
  return { code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
}
