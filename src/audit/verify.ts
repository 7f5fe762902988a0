import { readFileSync } from 'node:fs';
import { auditRecordSchema } from './entry.js';
import { auditFiles, split } from './files.js';
import { lineHash } from './log.js';

/**
 * The result of verifying a log. `anchor` is where the kept files start: the oldest line's `prev` and `seq`
 * (GENESIS and 0 when nothing was ever rotated away); what came before it cannot be checked.
 */
export type AuditVerification =
  | { ok: true; lines: number; files: string[]; anchor: { prev: string; seq: number } | undefined }
  | { ok: false; file: string; line: number; reason: string };

interface Line {
  file: string;
  line: number;
  bytes: Buffer;
  terminated: boolean;
  /** Stands for a rotated file with no line at all, which rotation never leaves. */
  emptyRotated?: true;
}

interface Checked {
  file: string;
  line: number;
  hash: string;
  seq: number;
}

/** The running daemon's word on the newest line it wrote: its seq and hash (from AuditLog.head()). */
export interface WrittenLine {
  seq: number;
  hash: string;
}

/**
 * Checks the hash chain of the log at `path` across its rotated files, oldest first, and reports the
 * first broken line (1-based within its file): an edited line, a line removed or inserted, lines out of
 * order, a damaged or truncated line. With `written`, also that the line the daemon last wrote is
 * there and unchanged: the chain alone cannot show its newest lines cut off or the last one edited.
 */
export function verifyAudit(path: string, written?: WrittenLine): AuditVerification {
  const files = auditFiles(path);
  const lines = files.flatMap((file) => readLines(file, file !== path));
  let anchor: { prev: string; seq: number } | undefined;
  let last: Checked | undefined;
  let beforeLast: Checked | undefined;
  for (let i = 0; i < lines.length; i++) {
    const at = lines[i]!;
    const fail = (reason: string, where: { file: string; line: number } = at) => ({
      ok: false as const,
      file: where.file,
      line: where.line,
      reason,
    });
    // Without this, an empty .1 beside a live file whose oldest lines were deleted would pass for rotation.
    if (at.emptyRotated) {
      return fail(
        'empty rotated file: rotation never leaves one, so its lines were deleted (or it was put there to pass for rotation)',
      );
    }
    if (!at.terminated) return fail('truncated last line (no newline): an interrupted write or a cut file');
    const parsed = parseRecord(at.bytes);
    if (typeof parsed === 'string') return fail(parsed);
    const { seq, prev } = parsed;
    if (!last) {
      anchor = { prev, seq };
    } else if (seq !== last.seq + 1 || prev !== last.hash) {
      const expected = last.seq + 1;
      if (beforeLast && prev === beforeLast.hash && seq === beforeLast.seq + 1) {
        return fail('inserted line: the line after it chains to the line before it', last);
      }
      if (seq === expected)
        return fail('edited line: it does not match the hash the next line records', last);
      const next = lines[i + 1] && parseRecord(lines[i + 1]!.bytes);
      if (seq > expected && typeof next === 'object' && next.seq === expected) {
        return fail(`line out of order (seq ${seq} where ${expected} belongs)`);
      }
      if (seq > expected)
        return fail(
          `${seq - expected} line(s) missing before this line (seq jumps from ${last.seq} to ${seq})`,
        );
      return fail(`line out of order or inserted (seq ${seq} after ${last.seq})`);
    }
    beforeLast = last;
    last = { file: at.file, line: at.line, hash: lineHash(at.bytes), seq };
    if (written && seq === written.seq && last.hash !== written.hash) {
      return fail("this line is not the one the daemon wrote (its hash differs from the running daemon's)");
    }
  }
  // Only rotation leaves a log that starts past seq 0, and it always leaves a rotated file behind.
  if (anchor && anchor.seq > 0 && files.length === 1) {
    return {
      ok: false,
      file: files[0]!,
      line: 1,
      reason: `the log starts at seq ${anchor.seq} and no rotated file holds the ${anchor.seq} line(s) before it: they were deleted`,
    };
  }
  if (written && (!last || last.seq < written.seq)) {
    const ends = last ? `ends at seq ${last.seq}` : 'is empty';
    return {
      ok: false,
      file: last?.file ?? path,
      line: last?.line ?? 0,
      reason: `the newest line(s) are missing: the running daemon wrote up to seq ${written.seq}, the log ${ends} (cut off or deleted)`,
    };
  }
  return { ok: true, lines: lines.length, files, anchor };
}

function readLines(file: string, rotated: boolean): Line[] {
  const data = readFileSync(file);
  if (rotated && data.length === 0)
    return [{ file, line: 0, bytes: data, terminated: true, emptyRotated: true }];
  const terminated = data.length > 0 && data[data.length - 1] === 0x0a;
  const parts = data.length === 0 ? [] : split(terminated ? data.subarray(0, -1) : data);
  return parts.map((bytes, i) => ({
    file,
    line: i + 1,
    bytes,
    terminated: terminated || i < parts.length - 1,
  }));
}

function parseRecord(bytes: Buffer): { seq: number; prev: string } | string {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return bytes.length === 0 ? 'empty line' : 'not valid JSON';
  }
  const result = auditRecordSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const what =
      issue.code === 'unrecognized_keys'
        ? `unknown field ${issue.keys.join(', ')}`
        : `${issue.path.join('.')}: ${issue.message}`;
    return `not a valid audit record (${what})`;
  }
  return result.data;
}
