import { auditPath } from '../audit/log.js';
import { readAuditTail } from '../audit/tail.js';
import { verifyAudit } from '../audit/verify.js';
import { CorruptError, UsageError } from '../errors.js';
import { resolvePaths } from '../lib/paths.js';
import { printJson, printTable } from './output.js';

/** `entraclaw audit [--tail N]`: the latest decisions, oldest first. */
export async function audit(opts: { tail?: string; json?: boolean }): Promise<void> {
  const n = opts.tail === undefined ? 20 : Number(opts.tail);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--tail "${opts.tail}" is not a positive integer`);
  const records = readAuditTail(auditPath(resolvePaths()), n);
  if (opts.json) return printJson(records);
  printTable([
    ['TIME', 'DECISION', 'OP', 'ITEM', 'PROGRAM', 'REASON'],
    ...records.map((r) => [
      r.time,
      r.decision,
      r.op,
      r.service ? `${r.service}/${r.account ?? '*'}` : '-',
      `${r.exe ?? '?'}${r.script ? ` ${r.script}` : ''}${r.via ? ` (via ${r.via.exe})` : ''}`,
      r.reason ?? '',
    ]),
  ]);
}

/** `entraclaw audit verify`: checks the hash chain; exit 5 pointing at the first broken line. */
export async function auditVerify(opts: { json?: boolean }): Promise<void> {
  const r = verifyAudit(auditPath(resolvePaths()));
  if (opts.json) printJson(r);
  if (!r.ok)
    throw new CorruptError(
      `audit log broken at ${r.file}:${r.line}: ${r.reason}`,
      'lines from there on cannot be trusted; keep a copy for investigation',
    );
  if (!opts.json) process.stdout.write(`audit log intact: ${r.lines} lines in ${r.files.length} file(s)\n`);
}
