import { type AuditRecord, auditRecordSchema } from './entry.js';
import { auditFiles, readLastLines } from './files.js';

/** A line of the log that is not an audit record (cut, edited, written by someone else). */
export interface DamagedLine {
  damaged: true;
  file: string;
}

/**
 * The last `n` lines of the log at `path`, oldest first, reaching back into rotated files when the live one
 * is short. Reads only the ends of files. A line that is not an audit record comes back as a DamagedLine
 * in its place, so the lines around it can still be read; `verifyAudit` says what is wrong with it.
 */
export function readAuditTail(path: string, n: number): (AuditRecord | DamagedLine)[] {
  const out: (AuditRecord | DamagedLine)[] = [];
  const files = auditFiles(path).reverse();
  for (const file of files) {
    if (out.length >= n) break;
    const tail = readLastLines(file, n - out.length);
    const records = (tail?.lines ?? []).map((line): AuditRecord | DamagedLine => {
      const parsed = auditRecordSchema.safeParse(safeJson(line));
      return parsed.success ? parsed.data : { damaged: true, file };
    });
    out.unshift(...records);
  }
  return out;
}

function safeJson(line: Buffer): unknown {
  try {
    return JSON.parse(line.toString('utf8'));
  } catch {
    return undefined;
  }
}
