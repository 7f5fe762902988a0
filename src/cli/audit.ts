import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { AuditRecord } from '../audit/entry.js';
import { auditPath } from '../audit/log.js';
import { readAuditTail } from '../audit/tail.js';
import { verifyAudit, type WrittenLine } from '../audit/verify.js';
import { CorruptError, UsageError } from '../errors.js';
import { canonicalIfExists, resolvePaths } from '../lib/paths.js';
import { programLabel } from '../lib/visible.js';
import { note, printJson } from './output.js';
import { printTable } from './table.js';

/** The log to read: `--file` (which must exist: a typo is not an empty log), else the daemon's. */
function logPath(file: string | undefined): string {
  if (file === undefined) return auditPath(resolvePaths());
  const path = resolve(file);
  if (!existsSync(path)) {
    throw new UsageError(
      `no audit log at ${path}`,
      `sandbox runs write theirs as ${join(resolvePaths().state, 'sandbox-audit', '<ms>-<pid>.jsonl')}; leave --file out for the daemon's`,
    );
  }
  return path;
}

/** `entraclaw audit [--tail N] [--file LOG]`: the latest decisions, oldest first. */
export async function audit(opts: { tail?: string; json?: boolean; file?: string }): Promise<void> {
  // Digits only: Number() would also take 1e3, 0x10 and " 5 ".
  const n = opts.tail === undefined ? 20 : /^\d+$/.test(opts.tail) ? Number(opts.tail) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--tail "${opts.tail}" is not a positive integer`, 'e.g. --tail 20');
  const path = logPath(opts.file);
  const records = readingLog(path, () => readAuditTail(path, n));
  if (opts.json) printJson(records);
  // A header alone reads like a failure to parse: say there is nothing yet, and where it will be.
  else if (records.length === 0) note(`no audit entries yet in ${path}; the daemon writes one per decision`);
  else
    printTable([
      ['TIME', 'DECISION', 'OP', 'ITEM', 'PROGRAM', 'REASON'],
      ...records.map((r) => {
        if (!('damaged' in r)) return row(r, r.decision, r.reason ?? '');
        const why = `${r.reason} (entraclaw audit verify)`;
        // What a line the chain does not vouch for says is still shown: it is evidence, marked as such.
        return r.record ? row(r.record, 'DAMAGED', why) : ['?', 'DAMAGED', '-', '-', '-', why];
      }),
    ]);
  // The lines around a damaged one are shown, but the exit status says the log is not intact.
  const damaged = records.find((r) => 'damaged' in r);
  if (damaged)
    throw new CorruptError(
      damaged.record
        ? `the hash chain is broken at line ${damaged.line} of ${damaged.file}: ${damaged.reason}`
        : `line ${damaged.line} of ${damaged.file} is not an audit record`,
      'run `entraclaw audit verify` to see which and why; lines from there on cannot be trusted',
    );
}

/**
 * A log the user cannot read (a directory or file in the way, permissions) is theirs to fix, not a bug:
 * exit 2 naming the file, as for an unreadable policy.toml.
 */
function readingLog<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (!e.code || typeof e.errno !== 'number') throw err;
    const what =
      e.path && e.path !== path ? `${e.path} (for the audit log ${path})` : `the audit log ${path}`;
    throw new UsageError(
      `cannot read ${what}: ${e.code}`,
      `the audit log and its directory must be yours and readable: check with ls -ld ${dirname(path)} ${path}`,
      { cause: err },
    );
  }
}

function row(r: AuditRecord, decision: string, reason: string): string[] {
  return [
    r.time,
    decision,
    r.op,
    r.service ? `${r.service}/${r.account ?? '*'}` : '-',
    r.op === 'policy'
      ? '-'
      : `${r.exe === undefined ? '?' : programLabel(r.exe, r.script)}${r.via ? ` (via ${r.via.exe})` : ''}`,
    reason,
  ];
}

/**
 * `entraclaw audit verify`: checks the hash chain; exit 5 pointing at the first broken line. When the
 * daemon is running it is asked first where its chain stands, so newest lines cut off are caught too.
 */
export async function auditVerify(opts: { json?: boolean; file?: string }): Promise<void> {
  const path = logPath(opts.file);
  const written = await daemonHead(path);
  const r = readingLog(path, () => verifyAudit(path, written ?? undefined));
  if (opts.json) printJson({ ...r, daemonChecked: written !== undefined });
  if (!r.ok)
    throw new CorruptError(
      `audit log broken at ${r.file}:${r.line}: ${r.reason}`,
      'lines from there on cannot be trusted; keep a copy for investigation',
    );
  if (!opts.json) {
    // Said only when it was checked: that the end of the file is the daemon's last line, none cut off.
    const end = written !== undefined ? "; it ends at the running daemon's last line" : '';
    process.stdout.write(`audit log intact: ${r.lines} lines in ${r.files.length} file(s)${end}\n`);
    // Rotation drops the oldest file: what it held is gone and cannot be checked. Said, so a flood of
    // requests that pushed older lines out is not mistaken for a complete history.
    if (r.anchor && r.anchor.seq > 0) {
      note(
        `the kept chain starts at seq ${r.anchor.seq}: the ${r.anchor.seq} line(s) before it are in none of the kept files (rotated away, or the oldest files moved or removed); keep copies of rotated files (or ship the log elsewhere) to keep them`,
      );
    }
    if (written === undefined) {
      note(
        opts.file === undefined
          ? 'no running daemon writes this log, so a cut-off end could not be checked (start the agent and run again)'
          : 'no running daemon writes this log (a finished sandbox run, say), so a cut-off end could not be checked',
      );
    }
  }
}

// The head of the chain as the running daemon keeps it; null when it has written nothing yet, undefined
// when no daemon answers or it writes another file (a sandbox's private broker, another state dir).
async function daemonHead(path: string): Promise<WrittenLine | null | undefined> {
  const { connect } = await import('../client/index.js');
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    client = await connect({ timeoutMs: 3000 });
    const head = await client.auditHead();
    if (canonicalIfExists(head.path) !== canonicalIfExists(path)) return undefined;
    return head.next === 0 ? null : { seq: head.next - 1, hash: head.prev };
  } catch {
    return undefined;
  } finally {
    client?.close();
  }
}
