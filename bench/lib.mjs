// Shared helpers for the bench scripts: a private keyring session, throwaway HOME/XDG dirs, timing of
// in-process calls and of whole commands, percentiles and markdown tables. Nothing here asserts a time:
// benches print numbers beside anchors measured in the same run; they never pass or fail on speed.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(ROOT, 'dist');
export const CLI = join(DIST, 'cli', 'main.cjs');
export const PYTHON = '/usr/bin/python3';
/** The 1-minute load average when the bench started: the numbers mean little on a busy machine. */
const LOAD_AT_START = loadavg()[0];

/**
 * Makes sure this script runs inside scripts/with-keyring.sh: a private D-Bus session with a throwaway
 * gnome-keyring. Outside one it re-runs itself there, so a bench never writes into the user's real keyring.
 */
export function ensurePrivateSession(scriptUrl) {
  const inSession =
    process.env.ENTRACLAW_IN_TEST_SESSION === '1' &&
    /\/entraclaw-session\.[^/]+\/runtime$/.test(process.env.XDG_RUNTIME_DIR ?? '') &&
    Boolean(process.env.DBUS_SESSION_BUS_ADDRESS);
  if (inSession) return;
  const env = { ...process.env };
  delete env.ENTRACLAW_IN_TEST_SESSION;
  const r = spawnSync(
    join(ROOT, 'scripts', 'with-keyring.sh'),
    [process.execPath, fileURLToPath(scriptUrl), ...process.argv.slice(2)],
    { stdio: 'inherit', env },
  );
  process.exit(r.status ?? 1);
}

/** Throwaway HOME and XDG dirs (removed by `cleanup`), and the environment that points at them. */
export function sandbox(tag) {
  const root = mkdtempSync(join(tmpdir(), `entraclaw-bench-${tag}.`));
  const dirs = {
    root,
    home: join(root, 'home'),
    config: join(root, 'config'),
    data: join(root, 'data'),
    state: join(root, 'state'),
    runtime: join(root, 'runtime'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true, mode: 0o700 });
  chmodSync(dirs.runtime, 0o700);
  const env = {
    ...process.env,
    HOME: dirs.home,
    XDG_CONFIG_HOME: dirs.config,
    XDG_DATA_HOME: dirs.data,
    XDG_STATE_HOME: dirs.state,
    XDG_CACHE_HOME: join(dirs.root, 'cache'),
    XDG_RUNTIME_DIR: dirs.runtime,
    // Python keyring: always the Secret Service backend, never a file backend in the user's home.
    PYTHON_KEYRING_BACKEND: 'keyring.backends.SecretService.Keyring',
  };
  delete env.ENTRACLAW_SOCKET;
  delete env.ENTRACLAW_STORE;
  delete env.ENTRACLAW_PASSPHRASE_FILE;
  delete env.CREDENTIALS_DIRECTORY;
  return { dirs, env, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/**
 * Undo steps (last added runs first) that run exactly once: when the bench ends, or on SIGINT/SIGTERM/
 * SIGHUP (then the process exits 130), so an interrupted run leaves no kernel keys or items behind.
 */
export function cleanupStack(box) {
  const steps = [];
  let done;
  const run = () => {
    done ??= (async () => {
      for (const undo of steps.reverse()) {
        try {
          await undo();
        } catch (err) {
          console.error(`cleanup: ${err.message}`);
        }
      }
      box.cleanup();
    })();
    return done;
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      run().finally(() => process.exit(130));
    });
  }
  return { push: (undo) => steps.push(undo), run };
}

/**
 * Starts `entraclaw agent` on the vault with `nodeArgs` before the CLI, waits for its socket, and pushes
 * its stop (SIGTERM, then SIGKILL after 5 s) onto `cleanups`. Resolves the child process.
 */
export async function startDaemon({ env, socket, cleanups, nodeArgs = [] }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const daemon = spawn(
    process.execPath,
    [...nodeArgs, CLI, 'agent', '--store', 'encrypted-file', '--socket', socket],
    {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let daemonErr = '';
  daemon.stderr.on('data', (d) => {
    daemonErr += d;
  });
  let exited;
  daemon.on('exit', (code) => {
    exited = code;
  });
  cleanups.push(async () => {
    if (exited !== undefined) return;
    const done = new Promise((r) => daemon.once('exit', r));
    daemon.kill('SIGTERM');
    await Promise.race([done, sleep(5000)]);
    if (exited === undefined) daemon.kill('SIGKILL');
  });
  for (const t = Date.now(); !existsSync(socket); await sleep(10)) {
    if (exited !== undefined || Date.now() - t > 15_000)
      throw new Error(`daemon did not start: ${daemonErr}`);
  }
  return daemon;
}

/** Paths as the stores' StoreContext wants them, under the sandbox (entraclaw subdirectories, as resolvePaths). */
export function entraclawPaths(dirs) {
  return {
    config: join(dirs.config, 'entraclaw'),
    data: join(dirs.data, 'entraclaw'),
    state: join(dirs.state, 'entraclaw'),
    runtime: join(dirs.runtime, 'entraclaw'),
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** p50/p95/min/n of samples in milliseconds. */
export function summarize(samplesMs) {
  const s = [...samplesMs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), min: s[0] ?? Number.NaN, n: s.length };
}

/** Times `fn` (sync or async) `n` times after `warmup` untimed calls; milliseconds per call. */
export async function timeCalls(fn, { n, warmup = Math.min(50, Math.ceil(n / 10)) }) {
  for (let i = 0; i < warmup; i++) await fn();
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out[i] = performance.now() - t;
  }
  return summarize(out);
}

/** Runs one command to completion and returns its wall time in ms; throws when it fails or prints the wrong thing. */
export function runOnce(cmd) {
  const t = performance.now();
  const r = spawnSync(cmd.argv[0], cmd.argv.slice(1), {
    env: cmd.env ?? process.env,
    input: cmd.input,
    stdio: [cmd.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    maxBuffer: 1 << 20,
  });
  const ms = performance.now() - t;
  if (r.error || r.status !== 0 || (cmd.expect !== undefined && r.stdout.toString() !== cmd.expect)) {
    const why = r.error?.message ?? `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}`;
    throw new Error(
      `${cmd.label}: ${cmd.argv.join(' ')} failed: ${why}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  return ms;
}

/**
 * Wall time of whole commands, interleaved: round i runs every command once, so background noise and
 * CPU frequency drift fall on all of them alike. Each command may set its own `n` (fewer rounds).
 */
export function timeCommands(cmds, { n, warmup = 3, settleMs = 30 }) {
  for (const c of cmds) for (let i = 0; i < warmup; i++) runOnce(c);
  const samples = new Map(cmds.map((c) => [c, []]));
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < n; i++) {
    // A fresh order each round and a pause before each run: work a command leaves behind (gnome-keyring
    // writing its file, a freed 128 MiB scrypt buffer) must not be billed to whichever command runs next.
    for (const c of shuffled(cmds)) {
      if (i >= (c.n ?? n)) continue;
      Atomics.wait(pause, 0, 0, settleMs);
      samples.get(c).push(runOnce(c));
    }
  }
  return new Map(cmds.map((c) => [c, summarize(samples.get(c))]));
}

/** A copy of `items` in random order (Fisher-Yates). */
function shuffled(items) {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A duration for a table cell: µs below 1 ms, else ms. */
export function fmt(ms) {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.01 ? 2 : 1)} µs`;
  if (ms < 100) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(0)} ms`;
}

/** A ratio for a table cell. */
export function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a';
}

/** Prints a markdown table; `rows` are arrays of cells already formatted as strings. */
export function printTable(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  console.log(line(headers));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

/** One line describing the machine, printed above each table so numbers are read in context. */
export function machineLine() {
  const c = cpus();
  const cpu = `${c.length} x ${c[0]?.model.trim() ?? 'unknown CPU'}`;
  return `node ${process.version}, ${cpu}, ${process.platform} ${process.arch}, load average ${LOAD_AT_START.toFixed(2)} at start`;
}

/** Parses `--name value` / `--name=value` numeric flags with defaults. */
export function numberFlag(name, fallback) {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === `--${name}` && argv[i + 1] !== undefined) return Number(argv[i + 1]);
    if (a.startsWith(`--${name}=`)) return Number(a.slice(name.length + 3));
  }
  return fallback;
}

/** Runs a command that must succeed (setup and cleanup steps); returns stdout. */
export function must(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), {
    env: opts.env ?? process.env,
    input: opts.input,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (r.error || r.status !== 0) {
    throw new Error(`${argv.join(' ')} failed: ${r.error?.message ?? `exit ${r.status}`}\n${r.stderr}`);
  }
  return r.stdout.toString();
}
