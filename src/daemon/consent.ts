// Remembered confirmations (a grant's confirm_for): the user's yes to one question covers the same
// process asking the same thing again for a while, so an agent polling a token does not raise a dialog
// storm. A yes is bound to one process (pid + start time: a recycled pid does not inherit it), one
// program (hashes), one client, one operation and one item. Only a yes is remembered; a no or a timeout
// asks again next time. Memory only: a daemon restart forgets every yes.
import type { Identity } from '../identity/peer.js';
import { parseDuration } from '../policy/duration.js';

/** Yeses kept at once; the oldest is forgotten first (it is asked again, nothing more). */
export const MAX_REMEMBERED = 1024;

/** What a yes was given to. */
export interface Question {
  client: string;
  subject: Identity;
  op: string;
  service?: string;
  account?: string;
}

/** The user's recent yeses, by question. */
export class ConsentMemory {
  private readonly yeses = new Map<string, number>();

  /** Whether a yes to this question, given at most `window` (a duration such as `10m`) ago, still holds. */
  holds(q: Question, window: string, now = Date.now()): boolean {
    const key = keyOf(q);
    const at = key === undefined ? undefined : this.yeses.get(key);
    if (at === undefined) return false;
    // The window is read at use, so shortening confirm_for in policy.toml takes effect at once.
    if (now - at < (parseDuration(window) ?? 0) && now >= at) return true;
    this.yeses.delete(key!);
    return false;
  }

  /** Records the user's yes to this question, at `now`. */
  remember(q: Question, now = Date.now()): void {
    const key = keyOf(q);
    if (key === undefined) return;
    this.yeses.delete(key);
    this.yeses.set(key, now);
    if (this.yeses.size > MAX_REMEMBERED) this.yeses.delete(this.yeses.keys().next().value!);
  }
}

// No start time (e.g. macOS), no memory: such a caller is asked every time.
function keyOf(q: Question): string | undefined {
  const s = q.subject;
  if (s.started === undefined) return undefined;
  return JSON.stringify([
    q.client,
    s.pid,
    s.started,
    s.sha256,
    s.script ?? null,
    s.scriptSha256 ?? null,
    q.op,
    q.service ?? null,
    q.account ?? null,
  ]);
}
