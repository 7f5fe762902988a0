import * as crypto from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  closeSync,
  fstatSync,
  ftruncateSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { EntraclawError, UnavailableError, UsageError } from '../errors.js';
import { forgetStats, pathKey } from '../lib/file-key.js';
import { makeOwnDir } from '../lib/make-dir.js';
import type { Paths } from '../lib/paths.js';
import { type AuditEntry, type AuditRecord, auditEntrySchema, GENESIS } from './entry.js';
import { readLastLines, rotatedFile } from './files.js';

/** Where the audit log lives: `<state>/audit.jsonl`. */
export function auditPath(paths: Paths): string {
  return join(paths.state, 'audit.jsonl');
}

/** Rotation settings of an AuditLog. */
export interface AuditLogOptions {
  /** A file is rotated before a line would take it past this size. */
  maxBytes?: number;
  /** Rotated files kept (`.1` ... `.keep`); older ones are deleted. */
  keep?: number;
  /** Told when the log is found damaged on disk (a cut last line, lines written by someone else). */
  onDamage?: (what: string) => void;
}

/** Default size at which the live file is rotated. */
export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
/** Default number of rotated files kept. */
export const DEFAULT_KEEP = 5;

/** The hex SHA-256 that the next line records as `prev` for a line with these bytes (no newline). */
export function lineHash(line: Buffer | string): string {
  // crypto.hash (Node 20.12+) is the one-shot form, several times cheaper than a Hash object per line.
  return crypto.hash
    ? crypto.hash('sha256', line, 'hex')
    : crypto.createHash('sha256').update(line).digest('hex');
}

/**
 * The daemon's append-only, hash-chained JSONL log of every request: who asked, for what, and the decision;
 * never a value. There is one writer (the daemon), so appends are synchronous and need no lock. The chain
 * shows edits, deletions and reordering to verifyAudit; someone able to rewrite the file from the edited
 * line onwards is out of its reach.
 */
export class AuditLog {
  private seq = 0;
  private prev = GENESIS;
  private size = 0;
  // After a failed write the file may end in a partial line; re-read its end before writing again.
  private stale = true;
  private closed = false;
  private saidGone = false;
  // The live file, held open for appends, and the inode it was opened on ("dev:ino:", how pathKey() starts).
  private fd: number | undefined;
  private id = '';

  private constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
    private readonly onDamage: (what: string) => void,
  ) {}

  /** Opens (creating if needed) the log at `path` and continues its chain from the last line written. */
  static open(path: string, opts: AuditLogOptions = {}): AuditLog {
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    const keep = opts.keep ?? DEFAULT_KEEP;
    if (!(maxBytes > 0) || !Number.isInteger(keep) || keep < 1) {
      throw new UsageError(
        `invalid audit rotation (maxBytes ${maxBytes}, keep ${keep})`,
        'use maxBytes > 0 and keep >= 1',
      );
    }
    makeOwnDir(dirname(path), 'XDG_STATE_HOME');
    const log = new AuditLog(path, maxBytes, keep, opts.onDamage ?? (() => undefined));
    log.resume();
    return log;
  }

  /** Validates, chains and appends one entry; returns the line as written. Unknown fields are refused. */
  append(entry: AuditEntry): AuditRecord {
    if (this.closed) throw new EntraclawError('internal', `audit log ${this.path} is closed`);
    const parsed = auditEntrySchema.safeParse(entry);
    if (!parsed.success) {
      const why = parsed.error.issues
        .map((i) =>
          i.code === 'unrecognized_keys'
            ? `unknown field ${i.keys.join(', ')}`
            : `${i.path.join('.')}: ${i.message}`,
        )
        .join('; ');
      throw new UsageError(`audit entry refused: ${why}`);
    }
    let record: AuditRecord;
    let line: string;
    let bytes: Buffer;
    try {
      if (this.stale) this.resume();
      else if (this.changedBehindUs()) {
        this.onDamage(
          `${this.path} changed size behind the daemon's back (cut or written by another program)`,
        );
        this.resume();
      }
      // seq and prev are ours, so the validated entry needs no second pass through the record schema.
      record = { ...parsed.data, seq: this.seq, prev: this.prev };
      line = JSON.stringify(record);
      bytes = Buffer.from(`${line}\n`, 'utf8');
      if (this.size > 0 && this.size + bytes.length > this.maxBytes) this.rotate();
      this.write(bytes);
    } catch (err) {
      this.stale = true;
      this.release();
      const code = (err as NodeJS.ErrnoException).code;
      throw new UnavailableError(
        `cannot write the audit log ${this.path}: ${(err as Error).message}`,
        code === 'ENOSPC' || code === 'EDQUOT'
          ? `free space on the file system of ${dirname(this.path)} (or move XDG_STATE_HOME): the next request writes it again`
          : `check ${dirname(this.path)} (yours, writable, on a writable file system): the next request tries again`,
        { cause: err },
      );
    }
    this.size += bytes.length;
    this.saidGone = false;
    this.prev = lineHash(line);
    this.seq++;
    return record;
  }

  /** Where the chain stands: the file, the seq the next line gets, and the hash of the last line written. */
  head(): { path: string; next: number; prev: string } {
    return { path: this.path, next: this.seq, prev: this.prev };
  }

  /** Stops the log; later appends throw. */
  close(): void {
    this.closed = true;
    this.release();
  }

  // The fd of the file now at `path`: the held one while the path still names it; otherwise (moved away,
  // deleted, rotated) the file there now, created if need be, so a line never goes to a file nobody sees.
  private liveFd(): number {
    if (this.fd !== undefined && pathKey(this.path)?.startsWith(this.id)) return this.fd;
    this.release();
    const fd = openSync(this.path, 'a', 0o600);
    const opened = fstatSync(fd, { bigint: true });
    this.id = `${opened.dev}:${opened.ino}:`;
    this.fd = fd;
    return fd;
  }

  // Whether the live file is no longer the size our own appends left it at: cut (a torn last line
  // would swallow our next one) or written by someone else. Either way the chain resumes from what is
  // on disk now, on a fresh line.
  private changedBehindUs(): boolean {
    if (this.fd === undefined || !pathKey(this.path)?.startsWith(this.id)) return false;
    return fstatSync(this.fd).size !== this.size;
  }

  // A full disk takes part of a line before it fails (a short write, then the error): that part is cut
  // off again, or the file would hold a broken line for good and verify would distrust all after it.
  private write(bytes: Buffer): void {
    const fd = this.liveFd();
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(fd, bytes, done);
    } catch (err) {
      if (done > 0) {
        try {
          ftruncateSync(fd, this.size);
        } catch {}
      }
      throw err;
    }
  }

  private release(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  // Picks the chain up from the newest line on disk: the live file's, or after a rotation that had no
  // append yet, the last rotated file's.
  private resume(): void {
    const live = readLastLines(this.path, 2);
    this.size = live?.size ?? 0;
    if (live?.size) tighten(this.path);
    const tail = live?.size ? live : readLastLines(rotatedFile(this.path, 1), 2);
    const [before, last] = tail && tail.lines.length >= 2 ? tail.lines : [undefined, tail?.lines[0]];
    if (!tail || !last) {
      // Lines this log wrote are gone from disk (the state directory deleted, the file emptied): the
      // chain goes on from them rather than from the start, so `audit verify` says where history is
      // missing instead of taking the new file for a whole log.
      if (this.seq > 0) {
        // Once, not at each request that fails while its directory is still missing.
        if (!this.saidGone)
          this.onDamage(
            `${this.path} no longer holds the ${this.seq} line(s) this daemon chained to (deleted or emptied); new lines go on from seq ${this.seq}`,
          );
        this.saidGone = true;
        this.stale = false;
        return;
      }
      this.prev = GENESIS;
    } else {
      // A torn last line (a crash mid-write) is sealed with a newline and chained to as it is, so the
      // evidence stays and verifyAudit reports that one line rather than everything after it.
      if (!tail.terminated) {
        const file = tail === live ? this.path : rotatedFile(this.path, 1);
        appendFileSync(file, '\n');
        this.onDamage(`${file} ended in a cut line; sealed it with a newline, new lines follow it`);
      }
      if (tail === live && !tail.terminated) this.size++;
      const lastSeq = seqOf(last);
      const beforeSeq = before ? seqOf(before) : undefined;
      this.seq = lastSeq !== undefined ? lastSeq + 1 : beforeSeq !== undefined ? beforeSeq + 2 : 0;
      this.prev = lineHash(last);
    }
    this.stale = false;
  }

  private rotate(): void {
    this.release();
    try {
      unlinkSync(rotatedFile(this.path, this.keep));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (let n = this.keep - 1; n >= 1; n--) {
      try {
        renameSync(rotatedFile(this.path, n), rotatedFile(this.path, n + 1));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    renameSync(this.path, rotatedFile(this.path, 1));
    // Our own rename: a stat shared from before it (lib/file-key.ts) names the rotated file, not the new one.
    forgetStats();
    this.size = 0;
  }
}

function seqOf(line: Buffer): number | undefined {
  try {
    const seq = (JSON.parse(line.toString('utf8')) as { seq?: unknown }).seq;
    return Number.isInteger(seq) && (seq as number) >= 0 ? (seq as number) : undefined;
  } catch {
    return undefined;
  }
}

// The log names every program that asked for what: readable by the user only.
function tighten(path: string): void {
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}
