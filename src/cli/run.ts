import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { UsageError } from '../errors.js';
import { loadDotenvFiles } from '../inject/dotenv.js';
import { buildChildEnv, embeddedReferences, envReferences } from '../inject/env.js';
import { isMaskable, MIN_MASKED_BYTES } from '../inject/mask.js';
import { pipeMasked } from '../inject/masked-pipe.js';
import { formatReference, parseReference, REFERENCE_SCHEME, type Reference } from '../inject/reference.js';
import { resolveReference } from '../inject/resolve.js';
import { dieOfSigint } from '../lib/die-of-sigint.js';
import { native } from '../lib/native.js';
import { sameFile } from '../lib/same-file.js';
import { shellStatus } from '../lib/shell-status.js';
import { inForegroundOfTerminal } from '../lib/terminal.js';
import type { StoreOptions } from './context.js';
import { closeSelection, openStore } from './open-store.js';
import { note } from './output.js';
import { assertCommandNamed, cannotStart } from './start-error.js';

/** Options of `entraclaw run`. */
export interface RunOptions extends StoreOptions {
  envFile?: string[];
  env?: string[];
  mask?: boolean;
}

const FORWARDED: NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
];

/**
 * Signals a terminal sends to its whole foreground process group, which holds CMD too when we are in it:
 * relaying those would deliver each twice (and a second Ctrl-C often means "force quit").
 */
const FROM_TERMINAL = new Set<NodeJS.Signals>(['SIGINT', 'SIGQUIT', 'SIGWINCH']);

/**
 * `entraclaw run [--env-file F]... [--env NAME=REF]... [--mask] -- CMD ARGS`: resolves every
 * `entraclaw://SERVICE/ACCOUNT` reference before CMD starts (one failure and CMD never starts), runs CMD
 * with them, forwards signals and exits with CMD's status.
 */
export async function run(command: string[], opts: RunOptions): Promise<void> {
  // A value is about to be in memory: a crash must not write it to a core file (the daemon's own rule).
  native().noCoreDump();
  assertCommandNamed(command, 'usage: entraclaw run [--env-file F] [--env NAME=REF] -- CMD ARGS');
  const overlay: [string, string][] = [...(await loadDotenvFiles(opts.envFile ?? []))].map(([k, v]) => [
    k,
    v,
  ]);
  for (const [i, pair] of (opts.env ?? []).entries()) {
    const eq = pair.indexOf('=');
    // Not echoed: what was typed where NAME=REFERENCE belongs may be the secret itself.
    if (eq <= 0)
      throw new UsageError(
        `--env number ${i + 1} is not NAME=VALUE (${eq < 0 ? 'it has no "="' : 'the name before "=" is empty'}; its text is not shown)`,
        'e.g. --env GITHUB_TOKEN=entraclaw://github.com/me',
      );
    overlay.push([pair.slice(0, eq), pair.slice(eq + 1)]);
  }
  const refs = envReferences(process.env, { overlay });
  // Only a whole value is replaced; one holding a reference among other text reaches CMD as written.
  const embedded = embeddedReferences(process.env, { overlay });
  if (embedded.length > 0) {
    note(
      `warning: ${embedded.join(', ')}: ${REFERENCE_SCHEME} inside a longer value is passed on as text, not replaced by the secret (only a whole value is a reference; build such a value with \`entraclaw inject\`)`,
    );
  }
  // CMD's arguments are its own, passed as typed (as `op run` does): `curl -u entraclaw://...` would send
  // the reference where the secret should be, so say which ones, by position (an argument may be a secret).
  const inArgs = command.flatMap((arg, i) =>
    i > 0 && arg.toLowerCase().includes(REFERENCE_SCHEME) ? [i] : [],
  );
  if (inArgs.length > 0) {
    const many = inArgs.length > 1;
    note(
      `warning: argument${many ? 's' : ''} ${inArgs.join(', ')} of the command ${many ? 'hold' : 'holds'} ${REFERENCE_SCHEME}, passed on as text: run resolves references in environment variables only (give the command its secret in one, e.g. --env TOKEN=${REFERENCE_SCHEME}SERVICE/ACCOUNT, or in a file written by \`entraclaw inject\`)`,
    );
  }
  const resolved = new Map<string, Buffer>();
  const unmasked: string[] = [];
  if (refs.length > 0) {
    const sel = await openStore(opts);
    try {
      for (const ref of refs) {
        const name = referencingVariable(overlay, ref);
        const value = await resolveReference(sel, ref, name);
        resolved.set(formatReference(ref), value);
        if (!isMaskable(value)) unmasked.push(name);
      }
    } finally {
      await closeSelection(sel);
    }
  }
  // --mask that cannot mask must say so: silently, the user would trust output that may show the secret.
  if (opts.mask && unmasked.length > 0) {
    note(
      `warning: --mask does not mask ${unmasked.join(', ')}: a secret shorter than ${MIN_MASKED_BYTES} bytes is not masked (it occurs by chance in ordinary output)`,
    );
  }
  const env = buildChildEnv(process.env, { resolved, overlay });
  const secrets = [...resolved.values()];
  const mask = Boolean(opts.mask) && secrets.some(isMaskable);
  let exitStatus: number | undefined;
  let exitSignal: NodeJS.Signals | null = null;
  let child: ChildProcess | undefined;
  let pipes: ReturnType<typeof pipeMasked>[] = [];
  // Caught from before the spawn: until a handler is in place a SIGTERM would kill us at once, and CMD
  // (already started) would run on with nobody to pass it on or wait for it. A handler only ever runs
  // after this synchronous stretch, so it always finds `child` set, unless the spawn threw.
  for (const s of FORWARDED) {
    process.on(s, () => {
      if (!child) {
        if (s !== 'SIGWINCH') process.exit(128 + constants.signals[s]);
      } else if (exitStatus === undefined) {
        if (!(FROM_TERMINAL.has(s) && inForegroundOfTerminal())) child.kill(s);
      } else if (s !== 'SIGWINCH') {
        // CMD is gone, so this is meant for us: what CMD's processes left behind may hold its output open
        // and our own output may be full, so hand on what was read and end now rather than wait for either.
        for (const p of pipes) p.stop();
        const code = exitStatus;
        setImmediate(() => process.exit(code));
      }
    });
  }
  // Real pipes, not spawn's 'pipe' (a socketpair): on Linux a command cannot open /dev/stdout or
  // /dev/stderr onto a socket (ENXIO), and `echo oops > /dev/stderr` or `tee /dev/stdout` would fail only
  // under --mask. Where our stdout and stderr are one place (a terminal, `2>&1`), CMD gets one pipe for
  // both, as it would have one terminal or file: two pipes read in turn would reorder its lines by up to
  // a pipe's worth, and a secret split across the two would go unmasked.
  const outputs = !mask ? [] : sameFile(1, 2) ? [native().pipe()] : [native().pipe(), native().pipe()];
  try {
    child = spawn(command[0]!, command.slice(1), {
      env,
      stdio: ['inherit', outputs[0]?.[1] ?? 'inherit', outputs.at(-1)?.[1] ?? 'inherit'],
    });
  } catch (err) {
    for (const fd of outputs.flat()) closeSync(fd);
    for (const v of secrets) v.fill(0);
    // execve's E2BIG comes back from spawn at once, not as an 'error' event: a secret (or any variable)
    // over the kernel's 128 KiB per-string limit, or all of them together over its total. Name the
    // largest variable, never its value.
    if ((err as NodeJS.ErrnoException).code === 'E2BIG') throw tooBigForExec(env);
    throw err;
  }
  const started = child;
  // CMD holds the write ends now; ours would keep its output from ever ending.
  for (const [, w] of outputs) closeSync(w);
  const targets = [process.stdout, process.stderr];
  pipes = outputs.map(([r], i) =>
    pipeMasked(new Socket({ fd: r, readable: true, writable: false }), targets[i]!, secrets),
  );
  // 'exit', not 'close': 'close' waits for CMD's output pipes to close, which processes CMD started in the
  // background (`server &`) hold open long after CMD itself has returned.
  const status = await new Promise<number>((resolve, reject) => {
    started.on('error', (err: NodeJS.ErrnoException) =>
      reject(cannotStart(command[0]!, err.code, err.code ?? err.message)),
    );
    started.on('exit', (code, signal) => {
      exitSignal = signal;
      exitStatus = shellStatus(code, signal);
      for (const p of pipes) p.commandExited();
      resolve(exitStatus);
    });
  });
  for (const v of secrets) v.fill(0);
  process.exitCode = status;
  await Promise.all(pipes.map((p) => p.done));
  if (exitSignal === 'SIGINT') await dieOfSigint();
}

/** Linux's MAX_ARG_STRLEN (32 pages of 4 KiB): the longest single `NAME=value` string execve accepts. */
const MAX_ENV_STRING = 131072;

function tooBigForExec(env: NodeJS.ProcessEnv): UsageError {
  let largest = '';
  let size = 0;
  for (const [k, v] of Object.entries(env)) {
    const n = Buffer.byteLength(`${k}=${v ?? ''}`) + 1;
    if (n > size) [largest, size] = [k, n];
  }
  return new UsageError(
    size > MAX_ENV_STRING
      ? `cannot start the command: ${largest} is ${size} bytes, and one environment variable may hold at most ${MAX_ENV_STRING} (E2BIG)`
      : `cannot start the command: its arguments and environment together are too large (E2BIG; the largest variable is ${largest}, ${size} bytes)`,
    'write a large secret to a file with `entraclaw inject -i TEMPLATE -o FILE` and give the command the file',
  );
}

// The variable name to blame when a reference fails: the overlay entry that wins (the last one), else the
// inherited variable. Values are compared as parsed references, so `%2f` and `%2F` spellings match too.
function referencingVariable(overlay: [string, string][], ref: Reference): string {
  const text = formatReference(ref);
  const same = ([, v]: [string, string | undefined]) => {
    if (!v?.startsWith(REFERENCE_SCHEME)) return false;
    try {
      return formatReference(parseReference(v)) === text;
    } catch {
      return false;
    }
  };
  const overlaid = new Set(overlay.map(([k]) => k));
  const hit =
    [...overlay].reverse().find(same) ??
    Object.entries(process.env).find((e) => !overlaid.has(e[0]) && same(e));
  return hit ? hit[0] : text;
}
