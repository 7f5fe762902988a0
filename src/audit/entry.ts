import * as z from 'zod';
import { OPS } from '../daemon/protocol.js';

/** What the daemon did with a request; `changed` marks a policy reload (op `policy`), not a request. */
export const DECISIONS = ['granted', 'denied', 'pending', 'error', 'changed'] as const;
/** One audited decision. */
export type AuditDecision = (typeof DECISIONS)[number];
/**
 * Operations an audit line records: the protocol's, `connect` for connections refused before a request,
 * and `policy` for a change of policy.toml the daemon loaded (who was approved, revoked, re-pinned).
 */
export const AUDIT_OPS = [...OPS, 'connect', 'policy'] as const;
/** The `prev` of the very first line of a log. */
export const GENESIS = '0'.repeat(64);

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
const count = z.number().int().nonnegative();

/**
 * One audited request, as the daemon hands it to AuditLog.append. There is no field for a secret value,
 * and the schema is strict, so nothing else (a `value`, a `secret`) can be logged by mistake. The caller's
 * pid/uid/exe/sha256 are optional because some requests are refused before the caller is identified
 * (a connection from another uid, a frame written by two processes) and those must be logged too.
 */
export const auditEntrySchema = z.strictObject({
  time: z.iso.datetime(),
  requestId: z.string(),
  pid: count.optional(),
  uid: count.optional(),
  exe: z.string().optional(),
  sha256: sha256.optional(),
  script: z.string().optional(),
  /** The shim a request came through; pid/exe above are then the program that ran the shim. */
  via: z.strictObject({ pid: count, exe: z.string() }).optional(),
  op: z.enum(AUDIT_OPS),
  service: z.string().optional(),
  account: z.string().optional(),
  decision: z.enum(DECISIONS),
  reason: z.string().optional(),
  durationMs: z.number().nonnegative(),
});
/** One audited request (see auditEntrySchema). */
export type AuditEntry = z.input<typeof auditEntrySchema>;

/**
 * One line of the log: the entry plus its place in the hash chain. `seq` counts lines from the start of
 * the log (across rotations); `prev` is the hex SHA-256 of the previous line's bytes, without its newline.
 */
export const auditRecordSchema = auditEntrySchema.extend({ seq: count, prev: sha256 });
/** One line of the log (see auditRecordSchema). */
export type AuditRecord = z.output<typeof auditRecordSchema>;
