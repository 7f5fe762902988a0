import type { AuditEntry } from './entry.js';

/** Refused requests (pending, denied, error) audited one by one per program in a window; more are counted. */
export const PER_PROGRAM = 60;
/** Refused requests audited one by one in a window, all programs together. */
export const ALL_PROGRAMS = 600;
/** The window, in milliseconds. */
export const WINDOW_MS = 60_000;
// Beyond this many programs held back in one window, the rest are summed under one line: a summary per
// program must not become a flood of its own.
const MAX_SUMMARIES = 256;
const OTHERS = '(other programs)';

/** Limits of an AuditThrottle; the defaults are the constants above. */
export interface ThrottleLimits {
  perProgram: number;
  allPrograms: number;
  windowMs: number;
}

interface HeldBack {
  sample: AuditEntry;
  count: number;
  decisions: Map<string, number>;
  first: string;
  last: string;
}

/**
 * Decides which audit entries are written one by one. A program that is refused again and again (an
 * unapproved loop, a flood meant to rotate the history away) gets PER_PROGRAM lines a window, all such
 * programs ALL_PROGRAMS together; the rest become one summary line per program when the window ends,
 * saying how many, which decisions and when. Granted requests and policy changes are always written: they
 * are what the log is for, and only approved programs or the user cause them. Pure: the clock is given.
 */
export class AuditThrottle {
  private windowStart: number | undefined;
  private total = 0;
  private readonly written = new Map<string, number>();
  private heldBack = new Map<string, HeldBack>();
  private readonly limits: ThrottleLimits;

  constructor(
    private readonly now: () => number = Date.now,
    limits: Partial<ThrottleLimits> = {},
  ) {
    this.limits = {
      perProgram: limits.perProgram ?? PER_PROGRAM,
      allPrograms: limits.allPrograms ?? ALL_PROGRAMS,
      windowMs: limits.windowMs ?? WINDOW_MS,
    };
  }

  /**
   * Whether `entry` is to be written now, and the summaries of the window that ended, if one did, to be
   * written before it.
   */
  admit(entry: AuditEntry): { summaries: AuditEntry[]; admitted: boolean } {
    const summaries = this.roll(false);
    if (entry.decision === 'granted' || entry.decision === 'changed') return { summaries, admitted: true };
    const key = programKey(entry);
    const mine = this.written.get(key) ?? 0;
    if (mine < this.limits.perProgram && this.total < this.limits.allPrograms) {
      this.written.set(key, mine + 1);
      this.total++;
      return { summaries, admitted: true };
    }
    this.holdBack(key, entry);
    return { summaries, admitted: false };
  }

  /** Summaries of entries held back: of windows that have ended, or with `all`, also of the current one. */
  flush(all = false): AuditEntry[] {
    return this.roll(all);
  }

  private roll(all: boolean): AuditEntry[] {
    const now = this.now();
    if (this.windowStart === undefined) this.windowStart = now;
    const ended = now - this.windowStart >= this.limits.windowMs;
    if (!ended && !all) return [];
    const summaries = [...this.heldBack.entries()].map(([key, h]) => summary(key, h, this.limits));
    this.heldBack = new Map();
    if (ended) {
      this.windowStart = now;
      this.total = 0;
      this.written.clear();
    }
    return summaries;
  }

  private holdBack(key: string, entry: AuditEntry): void {
    const at = entry.time;
    let h = this.heldBack.get(key);
    if (!h) {
      if (key !== OTHERS && this.heldBack.size >= MAX_SUMMARIES) {
        this.holdBack(OTHERS, othersOf(entry));
        return;
      }
      h = { sample: entry, count: 0, decisions: new Map(), first: at, last: at };
      this.heldBack.set(key, h);
    }
    h.count++;
    h.decisions.set(entry.decision, (h.decisions.get(entry.decision) ?? 0) + 1);
    h.last = at;
  }
}

// A program is its pinned bytes when known, else what is known of the caller.
function programKey(e: AuditEntry): string {
  if (e.sha256) return `${e.sha256} ${e.script ?? ''}`;
  if (e.exe) return `exe ${e.exe}`;
  return e.uid !== undefined ? `uid ${e.uid}` : 'unknown';
}

// What a line summing many programs may say of them: nothing that belongs to one of them.
function othersOf(e: AuditEntry): AuditEntry {
  return { time: e.time, requestId: '-', op: e.op, decision: e.decision, durationMs: 0 };
}

function summary(key: string, h: HeldBack, limits: ThrottleLimits): AuditEntry {
  const {
    time: _t,
    requestId: _r,
    service: _s,
    account: _a,
    reason: _why,
    durationMs: _d,
    ...who
  } = h.sample;
  const decisions = [...h.decisions].map(([d, n]) => `${n} ${d}`).join(', ');
  const whom = key === OTHERS ? 'programs beyond the first 256 held back' : 'this program';
  return {
    ...who,
    time: h.last,
    requestId: '-',
    decision: h.sample.decision,
    reason: `throttled: ${h.count} more refused requests from ${whom} (${decisions}) from ${h.first} to ${h.last} are not written one by one; at most ${limits.perProgram} per program and ${limits.allPrograms} in all are, each ${limits.windowMs / 1000} s`,
    durationMs: 0,
  };
}
