import { EntraclawError } from '../errors.js';
import { pathKey } from '../lib/file-key.js';
import { guardingDirs } from '../lib/private-file.js';
import { describePolicyChange } from '../policy/describe.js';
import { loadPolicyWithWarnings } from '../policy/load.js';
import type { Policy } from '../policy/schema.js';
import type { Logger } from './log.js';

/**
 * The policy as of the last change on disk. Each request stats the file (cheap; one stat per batch of
 * requests, lib/file-key.ts) and reloads when it changed, so approvals take effect on the next request
 * without fs.watch's missed events; SIGHUP forces a reload. An invalid file denies everything until
 * fixed: fail secure, loudly.
 */
export class PolicyCache {
  private stamp = '';
  private policy: Policy | undefined;
  private error: string | undefined;
  private hint: string | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    /** Told, as one line (policy/describe.ts), what each reload changed: the audit log records it. */
    private readonly onChange: (what: string) => void = () => undefined,
  ) {}

  /** The current policy, or why the file is invalid and what to do about it. */
  current(): { policy: Policy } | { error: string; hint?: string } {
    const stamp = this.fileStamp();
    if (stamp !== this.stamp) this.reload(stamp);
    if (this.policy) return { policy: this.policy };
    return { error: this.error ?? 'policy not loaded', ...(this.hint ? { hint: this.hint } : {}) };
  }

  /** Forces a reload (SIGHUP). */
  reload(stamp = this.fileStamp()): void {
    this.stamp = stamp;
    const before = this.policy;
    const beforeError = this.error;
    try {
      const loaded = loadPolicyWithWarnings(this.path);
      this.policy = loaded.policy;
      this.error = undefined;
      this.hint = undefined;
      this.log('info', 'policy loaded', { path: this.path, clients: this.policy.clients.length });
      for (const warning of loaded.warnings) this.log('warn', 'policy entry is literal', { warning });
    } catch (err) {
      this.policy = undefined;
      this.error = err instanceof EntraclawError ? err.message : String(err);
      this.hint = err instanceof EntraclawError ? err.hint : undefined;
      // Invalid as before, for the same reason (a look again after a directory changed): nothing to tell.
      if (this.error === beforeError) return;
      this.log('error', 'policy invalid: denying every request until it is fixed', {
        path: this.path,
        error: this.error,
      });
    }
    const change = describePolicyChange(before, this.policy, this.error);
    if (change) this.onChange(change);
  }

  private fileStamp(): string {
    const key = stampOf(this.path);
    if (this.policy || this.error === undefined) return key;
    // While refused, the fix may be a chmod of a directory (the hint of a policy in one others can
    // write), which leaves the file as it was: those directories count too, until the file loads.
    return [key, ...[...guardingDirs(this.path)].map(stampOf)].join(' ');
  }
}

// A path that cannot be looked at (a symlink loop, a file where a directory should be) is not the
// missing file the loader reads as an empty policy: the loader refuses it. Stamped as absent, a missing
// policy turning into one went unnoticed, and the daemon kept queueing every caller as pending while the
// CLI and doctor said the file could not be read.
function stampOf(path: string): string {
  try {
    return pathKey(path) ?? 'absent';
  } catch (err) {
    return `unreadable:${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}
