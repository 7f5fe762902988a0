import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'vitest';
import type { StoreContext } from '../../src/store/types.js';

/** A throwaway store context: private config/data/state dirs and a vault passphrase file. */
export function tempContext(env: NodeJS.ProcessEnv = process.env): {
  ctx: StoreContext;
  dir: string;
  cleanup(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'entraclaw-test-'));
  const passphraseFile = join(dir, 'passphrase');
  writeFileSync(passphraseFile, 'correct horse battery staple\n', { mode: 0o600 });
  const ctx: StoreContext = {
    env: { ...env },
    paths: {
      config: join(dir, 'config'),
      data: join(dir, 'data'),
      state: join(dir, 'state'),
      runtime: join(dir, 'run'),
    },
    passphraseFile,
    interactive: false,
    timeoutMs: 3000,
  };
  return { ctx, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A random item name so runs never collide in a real, shared keyring. */
export function randomName(prefix = 'entraclaw-test'): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** True when running under scripts/with-keyring.sh (as `make test` does), where every Linux store must be present. */
export const inTestSession = Boolean(process.env.ENTRACLAW_IN_TEST_SESSION);

/**
 * True when CI runs `make test` (CI=true) on Linux: that machine is set up to run every test (the Makefile
 * installs DEB_PKGS), so there a missing prerequisite is a failure, not a skip. On macOS the Linux
 * prerequisites (bubblewrap, keyctl, systemd) cannot be had, so they skip with their reason; and as an
 * ordinary user the few tests that need root (rootOnly) or a looser kernel.yama.ptrace_scope skip with theirs.
 */
export const inCI = process.platform === 'linux' && ['true', '1'].includes(process.env.CI ?? '');

/**
 * What a test lacks: a prerequisite the machine could be given (a string), or one no package gives: root
 * (rootOnly), a kernel setting only the administrator changes (yamaForbidsAttach).
 */
export type Missing = string | { beyondUser: string };

const uid = process.getuid?.();

/**
 * Undefined as root; otherwise why `what` cannot run as this ordinary user (another uid, a mount, the
 * host's credential key, a kernel setting). No package or setting gives an ordinary user those, so such a
 * test skips with this reason even under CI; run the suite as root (as CI does) to run it.
 */
export function rootOnly(what: string): Missing | undefined {
  return uid === 0 || uid === undefined
    ? undefined
    : { beyondUser: `${what}: that needs root, and this suite runs as uid ${uid}` };
}

/**
 * Yama's kernel.yama.ptrace_scope (0 where Yama is absent). At 1 (Ubuntu's default) a process may attach
 * only to its descendants, so a same-user PTRACE_ATTACH from a sibling fails with EPERM for every target:
 * it then tells nothing about our hardening (a read of /proc/PID/environ, which Yama does not restrict, still does).
 */
export const yamaPtraceScope = (() => {
  try {
    return Number(readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
})();

/** Undefined when a same-user PTRACE_ATTACH of a non-descendant can work here; otherwise why not (Yama). */
export function yamaForbidsAttach(what: string): Missing | undefined {
  return yamaPtraceScope === 0
    ? undefined
    : {
        beyondUser: `${what}: kernel.yama.ptrace_scope is ${yamaPtraceScope}, which forbids it for every process`,
      };
}

/**
 * Stops a test whose environment lacks what it tests (`missing` says what, or is undefined when nothing is):
 * under CI it fails, naming it, unless what it lacks is beyond the user (root, Yama); elsewhere it is
 * skipped with that reason.
 * Never a silent green pass.
 */
export function requireOrSkip(ctx: TestContext, missing: Missing | undefined): void {
  if (missing === undefined) return;
  if (typeof missing === 'string' && inCI)
    throw new Error(`${missing}: under CI (CI=true) every test must run, so this fails instead of skipping`);
  ctx.skip(typeof missing === 'string' ? missing : missing.beyondUser);
}

/** Why a test of `what` cannot run on this platform (it needs Linux), or undefined on Linux. */
export function linuxOnly(what: string): string | undefined {
  return process.platform === 'linux' ? undefined : `${what} needs Linux (this is ${process.platform})`;
}

/**
 * Why the end-to-end broker suites cannot run here, or undefined where they can. Their clients are node
 * and python3 scripts, pinned to their scripts through /proc; the macOS daemon refuses interpreters.
 */
export const brokerClientsMissing = linuxOnly(
  'a daemon that serves node and python3 clients (pinned through /proc)',
);

/** `describe(title, fn)` when nothing is `missing`; otherwise a single test of that title that requireOrSkip stops. */
export function describeIfProvided(title: string, missing: Missing | undefined, fn: () => void): void {
  if (missing === undefined) describe(title, fn);
  else it(title, (ctx) => requireOrSkip(ctx, missing));
}

/**
 * Why bubblewrap cannot build a sandbox here for the user `as` names (this process's by default), or
 * undefined when it can: Linux, bwrap installed (a package: under CI its absence fails), and a user
 * namespace for that user, which the administrator's kernel settings may forbid (Ubuntu 23.10+'s AppArmor
 * restriction, a limit of 0): then the tests skip with bwrap's reason even under CI.
 */
export function bwrapMissing(as: { uid: number; gid: number } | undefined = undefined): Missing | undefined {
  if (process.platform !== 'linux') return 'bubblewrap sandboxes are Linux only';
  if (spawnSync('bwrap', ['--version']).status !== 0)
    return 'bwrap is not installed (Debian package bubblewrap)';
  const probe = spawnSync('bwrap', ['--unshare-user', '--ro-bind', '/', '/', 'true'], {
    encoding: 'utf8',
    ...(as ?? {}),
  });
  if (probe.status === 0) return undefined;
  const why = probe.stderr.trim().split('\n')[0] || `exit ${probe.status}`;
  return { beyondUser: `bwrap cannot make a user namespace here for uid ${as?.uid ?? uid} (${why})` };
}
