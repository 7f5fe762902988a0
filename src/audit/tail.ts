import { type AuditRecord, auditRecordSchema } from './entry.js';
import { auditFiles, lineNumberAt, readLastLines } from './files.js';
import { lineHash } from './log.js';

/**
 * A line the log cannot vouch for: not an audit record at all (cut, written by someone else), or a valid
 * record where the hash chain breaks (hand-edited, or lines removed or inserted beside it). `record` is
 * what such a line says, when it parses; `reason` says which.
 */
export interface DamagedLine {
  damaged: true;
  file: string;
  /** Its line number in `file`, from 1. */
  line: number;
  reason: string;
  record?: AuditRecord;
}

/**
 * The last `n` lines of the log at `path`, oldest first, reaching back into rotated files when the live one
 * is short. Reads only the ends of files. A line that is not an audit record, or whose link in the hash
 * chain to a neighbour within the lines read is broken, comes back as a DamagedLine in its place, so the
 * lines around it can still be read; `verifyAudit` checks the whole chain and says what is wrong.
 */
export function readAuditTail(path: string, n: number): (AuditRecord | DamagedLine)[] {
  // One line more than shown: the first shown line is checked against the one before it.
  const lines: { file: string; offset: number; bytes: Buffer; record: AuditRecord | undefined }[] = [];
  for (const [age, file] of auditFiles(path).reverse().entries()) {
    if (lines.length > n) break;
    const want = n + 1 - lines.length;
    // The live file's last line without its newline is one the daemon is writing right now (`audit
    // verify` tells that from a cut-off end): left out rather than shown as damaged, one more read in
    // its place so that the lines shown follow one another.
    const tail = readLastLines(file, age === 0 ? want + 1 : want);
    const count = (tail?.lines.length ?? 0) - (age === 0 && tail && !tail.terminated ? 1 : 0);
    const from = Math.max(0, count - want);
    for (let j = count - 1; j >= from; j--) {
      const bytes = tail!.lines[j]!;
      const parsed = auditRecordSchema.safeParse(safeJson(bytes));
      lines.unshift({
        file,
        offset: tail!.offsets[j]!,
        bytes,
        record: parsed.success ? parsed.data : undefined,
      });
    }
  }
  const first = Math.max(0, lines.length - n);
  return lines.slice(first).map(({ file, offset, bytes, record }, k): AuditRecord | DamagedLine => {
    const i = first + k;
    const damaged = (reason: string): DamagedLine => ({
      damaged: true,
      file,
      line: lineNumberAt(file, offset),
      reason,
      ...(record ? { record } : {}),
    });
    if (!record) return damaged('not an audit record');
    // The chain vouches for a line through the next line's `prev`: a mismatch names the earlier line (as
    // `audit verify` does for an edit). The newest line has no next line here; `audit verify` asks the
    // running daemon about it.
    const next = lines[i + 1]?.record;
    if (next && !chains(bytes, record, next)) {
      return damaged(
        'the next line does not chain to it (this line edited, or lines removed or inserted after it)',
      );
    }
    const before = lines[i - 1];
    if (k === 0 && before?.record && !chains(before.bytes, before.record, record)) {
      return damaged(
        'it does not chain to the line before it (that line edited, or lines removed or inserted)',
      );
    }
    return record;
  });
}

// Whether `next` follows the line `bytes` (whose record is `record`) in the hash chain.
function chains(bytes: Buffer, record: AuditRecord, next: AuditRecord): boolean {
  return next.seq === record.seq + 1 && next.prev === lineHash(bytes);
}

function safeJson(line: Buffer): unknown {
  try {
    return JSON.parse(line.toString('utf8'));
  } catch {
    return undefined;
  }
}
