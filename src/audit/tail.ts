import { CorruptError } from '../errors.js';
import { type AuditRecord, auditRecordSchema } from './entry.js';
import { auditFiles, readLastLines } from './files.js';

/**
 * The last `n` lines of the log at `path`, oldest first, reaching back into rotated files when the live one
 * is short. Reads only the ends of files. Throws CorruptError for a line that is not an audit record.
 */
export function readAuditTail(path: string, n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  const files = auditFiles(path).reverse();
  for (const file of files) {
    if (out.length >= n) break;
    const tail = readLastLines(file, n - out.length);
    const records = (tail?.lines ?? []).map((line) => {
      const parsed = auditRecordSchema.safeParse(safeJson(line));
      if (!parsed.success) {
        throw new CorruptError(
          `a damaged line near the end of ${file}`,
          'run `entraclaw audit verify` to find it',
        );
      }
      return parsed.data;
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
