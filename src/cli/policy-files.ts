import { readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { hashExecutable } from '../identity/hash.js';
import { withFileLock } from '../lib/file-lock.js';
import { makeOwnDir } from '../lib/make-dir.js';
import { type Paths, resolvePaths } from '../lib/paths.js';
import { droppedComments, parseGrantSpec, savePolicy } from '../policy/edit.js';
import type { Grant } from '../policy/grant.js';
import { loadPolicyWithWarnings, policyPath } from '../policy/load.js';
import { pendingPath } from '../policy/pending.js';
import type { Policy } from '../policy/schema.js';
import { note } from './output.js';

/** Paths and file locations the approval commands share. */
export function policyFiles(env: NodeJS.ProcessEnv = process.env): {
  paths: Paths;
  policy: string;
  pending: string;
} {
  const paths = resolvePaths(env);
  return { paths, policy: policyPath(paths), pending: pendingPath(paths) };
}

/**
 * Loads, edits and saves the policy in one step, under a lock: two commands at once (a `grant` and a
 * `revoke`, say) must not each write their own copy, losing the other's change while both report success.
 * A symlinked policy.toml (dotfiles) is edited where it points, not replaced by a file.
 */
export async function editPolicy<T>(
  path: string,
  edit: (p: Policy) => { policy: Policy; result: T },
): Promise<T> {
  const real = linkTarget(path);
  makeOwnDir(dirname(real), 'XDG_CONFIG_HOME');
  return withFileLock(`${real}.lock`, async () => {
    // Read by its own name, as the daemon reads it, so every directory on the way is checked as it checks.
    const loaded = loadPolicyWithWarnings(path);
    const { policy, result } = edit(loaded.policy);
    savePolicy(real, policy, loaded.plainStars);
    // Said once, as it happens: the rewritten file no longer has them to lose.
    const dropped = droppedComments(loaded.source);
    if (dropped > 0) {
      note(
        `note: ${dropped} comment${dropped > 1 ? 's' : ''} written in ${real} ${dropped > 1 ? 'are' : 'is'} not kept: the CLI rewrites the whole file (values and hand edits are kept)`,
      );
    }
    return result;
  });
}

// Where writing `path` should go: the file a symlink names (even one not created yet), else path itself.
// A loop stops after the kernel's own limit of hops, and loading then fails with ELOOP.
function linkTarget(path: string, hops = 40): string {
  let target: string;
  try {
    target = readlinkSync(path);
  } catch {
    return path;
  }
  return hops > 0 ? linkTarget(resolve(dirname(path), target), hops - 1) : path;
}

/** Canonical path and SHA-256 of a program file, as the daemon will see it through /proc/PID/exe. */
export function pinFile(path: string, what: string): { path: string; sha256: string } {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    throw new UsageError(
      `${what} ${path} not found (${(err as NodeJS.ErrnoException).code})`,
      'give the path of an existing file',
    );
  }
  if (!statSync(real).isFile()) {
    throw new UsageError(
      `${what} ${path} is not a regular file`,
      'give the path of the program (or script) file',
    );
  }
  return { path: real, sha256: hashExecutable(real) };
}

/** The grant options every approving command shares. */
export interface GrantFlags {
  grant?: string[];
  ops?: string;
  ttl?: string;
  confirm?: boolean;
  confirmFor?: string;
}

/**
 * Parses every --grant spec with the shared --ops, --ttl, --confirm and --confirm-for, and notes on stderr
 * what a spec with a `/` and a trailing `*` grants.
 */
export function grantsFrom({ grant: specs, ops, ttl, confirm, confirmFor }: GrantFlags): Grant[] {
  if (!specs || specs.length === 0) {
    throw new UsageError(
      'at least one --grant SERVICE[/ACCOUNT] is required',
      'e.g. --grant github.com/me --ops read',
    );
  }
  const grants = specs.map((s) =>
    parseGrantSpec(s, {
      ops: ops ?? 'read',
      // An empty --ttl (an unset $TTL) is refused as no lifetime, never read as "no expiry".
      ...(ttl !== undefined ? { ttl } : {}),
      source: 'cli',
      ...(confirm ? { confirm } : {}),
      ...(confirmFor !== undefined ? { confirmFor } : {}),
    }),
  );
  // `svc/*` and `svc/me*` read like "the accounts of svc", but a trailing * makes the whole spec a service
  // prefix, for every account: say what was granted, and how to write what was more likely meant.
  specs.forEach((spec, i) => {
    const prefix = grants[i]!.servicePrefixes[0];
    if (prefix !== undefined && spec.includes('/')) {
      const service = spec.slice(0, spec.indexOf('/'));
      note(
        `note: --grant ${spec} grants services starting with ${JSON.stringify(prefix)}, any account (a service prefix); every account of the service ${service} is --grant ${service}`,
      );
    }
  });
  return grants;
}

/**
 * Notes that grants asking for confirmation are denied while the agent has no askpass program to ask
 * with (ENTRACLAW_ASKPASS, or [agent] askpass in agent.toml): a confirm grant is the strictest match, so
 * adding one can turn an item that was served into one that is refused.
 */
export async function noteAskpassNeeded(flags: Pick<GrantFlags, 'confirm' | 'confirmFor'>): Promise<void> {
  if (!flags.confirm && flags.confirmFor === undefined) return;
  if (process.env.ENTRACLAW_ASKPASS) return;
  const { loadAgentConfig } = await import('../config/agent-config.js');
  const config = await loadAgentConfig(resolvePaths().config).catch(() => undefined);
  if (config?.agent.askpass) return;
  note(
    'note: no askpass program is configured, so the agent denies what these grants cover instead of asking; set [agent] askpass in agent.toml (or ENTRACLAW_ASKPASS for the agent), e.g. /usr/bin/ssh-askpass',
  );
}

/** A default client name from a program and its script. */
export function defaultName(exe: string, script?: string): string {
  const name = basename(script ?? exe)
    .replace(/[^\w.-]/g, '_')
    .replace(/^[.-]+/, '')
    .slice(0, 64);
  return name || 'client';
}
