#!/usr/bin/env node
// The broker under load: a real `entraclaw agent` (encrypted-file store, throwaway dirs) and real client
// processes registered by hash, beside `keyctl pipe`, `secret-tool lookup` and @napi-rs/keyring measured
// in the same run.
//
//   make bench                       (all three benches, inside a private keyring session)
//   node bench/broker.mjs [--n 5000] [--runs 30] [--seconds 3] [--clients 32] [--settle-ms 15000]
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CLI,
  cleanupStack,
  DIST,
  ensurePrivateSession,
  fmt,
  machineLine,
  must,
  numberFlag,
  printTable,
  ratio,
  sandbox,
  startDaemon,
  summarize,
  timeCalls,
  timeCommands,
} from './lib.mjs';

ensurePrivateSession(import.meta.url);

const N = numberFlag('n', 5000);
const RUNS = numberFlag('runs', 30);
const SECONDS = numberFlag('seconds', 3);
const CLIENTS = numberFlag('clients', 32);
const NODE = realpathSync(process.execPath);
const SERVICE = `entraclaw-bench-${process.pid}`;
const ACCOUNT = 'bench';
const VALUE = `v-${process.pid}-0123456789abcdef`;
const NAPI_SERVICE = `${SERVICE}-napi`;
const TOOL_SERVICE = `${SERVICE}-secret-tool`;
const KEYCTL_DESC = `${SERVICE}-keyctl`;
/** How long the daemon is left alone before an idle RSS reading. */
const SETTLE_MS = numberFlag('settle-ms', 15_000);
const CLK_TCK = Number(must(['getconf', 'CLK_TCK'])) || 100;

// The client: one pinned script, several modes. It times only what the mode names and prints one JSON line.
const CLIENT_SOURCE = `import { connect } from ${JSON.stringify(pathToFileURL(join(DIST, 'client', 'index.js')).href)};
const [mode, service, account, a, b, c] = process.argv.slice(2);
const expect = process.env.BENCH_VALUE;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const check = (v) => { if (v.toString() !== expect) throw new Error('wrong value'); };
if (mode === 'warm') {
  // Sequential gets over one open connection.
  const n = Number(a);
  const conn = await connect();
  for (let i = 0; i < Math.min(500, n); i++) check(await conn.get(service, account));
  const ms = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    check(await conn.get(service, account));
    ms[i] = performance.now() - t;
  }
  conn.close();
  out({ ms });
} else if (mode === 'connect') {
  // A new connection each time: connect + hello + one get; close.
  const n = Number(a);
  const ms = new Array(n);
  for (let i = -20; i < n; i++) {
    const t = performance.now();
    const conn = await connect();
    check(await conn.get(service, account));
    const dt = performance.now() - t;
    conn.close();
    if (i >= 0) ms[i] = dt;
  }
  out({ ms });
} else if (mode === 'first') {
  // The first request this program ever makes: connect + hello + get.
  const t = performance.now();
  const conn = await connect();
  check(await conn.get(service, account));
  const ms = performance.now() - t;
  conn.close();
  out({ ms });
} else if (mode === 'load') {
  // Conns connections, each a sequential get loop. Says "ready" once connected and warm, then waits for
  // "go END_EPOCH_MS" on stdin, so every client starts together however long the others took to start.
  const conns = Number(a);
  const open = await Promise.all(Array.from({ length: conns }, () => connect()));
  for (const conn of open) check(await conn.get(service, account));
  process.stdout.write('ready\\n');
  const end = await new Promise((resolve) => {
    let text = '';
    process.stdin.on('data', (d) => {
      text += d;
      const m = /^go (\\d+)\\n/.exec(text);
      if (m) resolve(Number(m[1]));
    });
  });
  let gets = 0;
  await Promise.all(open.map(async (conn) => {
    while (Date.now() < end) {
      check(await conn.get(service, account));
      gets++;
    }
  }));
  for (const conn of open) conn.close();
  out({ gets, late: Date.now() - end });
} else {
  throw new Error('unknown mode ' + mode);
}
`;

const box = sandbox('broker');
const passFile = join(box.dirs.root, 'passphrase');
const socket = join(box.dirs.runtime, 'entraclaw', 'agent.sock');
const env = { ...box.env, ENTRACLAW_PASSPHRASE_FILE: passFile };
const clientEnv = { ...env, ENTRACLAW_SOCKET: socket, BENCH_VALUE: VALUE };
const cleanups = cleanupStack(box);
let daemon;

function cli(args, input) {
  return must([process.execPath, CLI, ...args], { env, input });
}

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]) / 1024;
}

/** RssAnon / RssFile of a process, for the detail column. */
function rssSplit(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024;
  return `anon ${kb('RssAnon').toFixed(1)} / file ${kb('RssFile').toFixed(1)} MiB`;
}

/** utime + stime of a process, in ms. */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // Fields after "(comm) ": state is [0], utime [11], stime [12], in clock ticks.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Runs the client script (under `exe`, default node) and resolves its JSON line. */
function client(script, args, exe = NODE) {
  return new Promise((resolve, reject) => {
    const child = spawn(exe, [script, ...args], { env: clientEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
      } catch (err) {
        reject(new Error(`client ${args.join(' ')} failed (${err.message}): ${stdout}\n${stderr}`));
      }
    });
  });
}

/**
 * Runs `procs` load clients (node with `argv`, speaking the load client's ready/go protocol): waits until
 * all are connected and warm, then lets them run together for `seconds`. Returns the total gets (round
 * trips), the server's CPU time in that window and its peak RSS (sampled every 50 ms).
 */
async function load(argv, procs, seconds, server = daemon.pid) {
  const children = Array.from({ length: procs }, () => {
    const child = spawn(NODE, argv, {
      env: clientEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const ready = new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        stdout += d;
        if (stdout.startsWith('ready\n')) resolve();
      });
      child.on('close', (code) =>
        reject(new Error(`load client exited early (${code}): ${stdout}\n${stderr}`)),
      );
    });
    const done = new Promise((resolve, reject) => {
      child.on('close', (code) => {
        try {
          if (code !== 0) throw new Error(`exit ${code}`);
          resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
        } catch (err) {
          reject(new Error(`load client failed (${err.message}): ${stdout}\n${stderr}`));
        }
      });
    });
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  let peak = rssMiB(server);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(server));
  }, 50);
  const cpu0 = cpuMs(server);
  const end = Date.now() + seconds * 1000;
  for (const c of children) c.child.stdin.end(`go ${end}\n`);
  try {
    const results = await Promise.all(children.map((c) => c.done));
    return {
      gets: results.reduce((s, r) => s + r.gets, 0),
      cpu: cpuMs(server) - cpu0,
      peak: Math.max(peak, rssMiB(server)),
    };
  } finally {
    clearInterval(timer);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The floor for the throughput rows: a node server that only echoes 60-byte messages, driven like the
// load clients (the same ready/go start, one message in flight per connection), for SECONDS.
const ECHO_SOURCE = `import net from 'node:net';
const [mode, path, conns] = process.argv.slice(2);
if (mode === 'server') {
  net.createServer((s) => s.on('data', (d) => s.write(d))).listen(path, () => process.stdout.write('ready\\n'));
} else {
  const socks = await Promise.all(Array.from({ length: Number(conns) }, () => new Promise((r) => { const s = net.connect(path, () => r(s)); })));
  process.stdout.write('ready\\n');
  const end = await new Promise((resolve) => process.stdin.on('data', (d) => resolve(Number(/^go (\\d+)/.exec(String(d))[1]))));
  let gets = 0;
  const msg = Buffer.alloc(60, 1);
  await Promise.all(socks.map((s) => new Promise((resolve) => {
    s.on('data', () => { gets++; if (Date.now() < end) s.write(msg); else { s.destroy(); resolve(); } });
    s.write(msg);
  })));
  process.stdout.write(JSON.stringify({ gets }) + '\\n');
}
`;

/** Round trips/s of a bare node echo server driven by `procs` client processes of `conns` connections each. */
async function echoFloor(procs, conns) {
  const file = join(box.dirs.root, 'echo.mjs');
  const path = join(box.dirs.runtime, `echo-${procs}x${conns}.sock`);
  writeFileSync(file, ECHO_SOURCE);
  const server = spawn(NODE, [file, 'server', path], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((resolve) => server.stdout.once('data', resolve));
    const { gets } = await load([file, 'client', path, String(conns)], procs, SECONDS, server.pid);
    return gets / SECONDS;
  } finally {
    server.kill();
  }
}

const rows = [];
const notes = [];
try {
  // --- Daemon and registered client. ------------------------------------------------------------------
  writeFileSync(passFile, 'entraclaw-bench-passphrase\n', { mode: 0o600 });
  cli(['secret', 'set', SERVICE, ACCOUNT, '--store', 'encrypted-file'], VALUE);
  // BENCH_DAEMON_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the daemon.
  // The daemon runs as `entraclaw service install` runs it: with the unit's node flags.
  const { DAEMON_NODE_FLAGS } = await import(pathToFileURL(join(DIST, 'daemon', 'service-unit.js')).href);
  const nodeArgs = [
    ...DAEMON_NODE_FLAGS,
    ...(process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ];
  daemon = await startDaemon({ env, socket, cleanups, nodeArgs });
  await sleep(500);
  const rssStartup = rssMiB(daemon.pid);
  // Idle is the daemon at rest: V8 gives back the young generation it grew while starting up only after
  // some seconds without work (its memory reducer), so the idle reading is taken once that has happened.
  await sleep(SETTLE_MS);
  const rssIdleStart = rssMiB(daemon.pid);
  const rssIdleStartSplit = rssSplit(daemon.pid);

  const script = join(box.dirs.root, 'client.mjs');
  writeFileSync(script, CLIENT_SOURCE, { mode: 0o644 });
  const grant = ['--grant', `${SERVICE}/${ACCOUNT}`, '--ops', 'read'];
  cli(['register', NODE, '--script', script, ...grant, '--name', 'bench-node']);

  // --- Anchors. ---------------------------------------------------------------------------------------
  must(['secret-tool', 'store', '--label', 'entraclaw bench', 'service', TOOL_SERVICE, 'account', ACCOUNT], {
    env: box.env,
    input: VALUE,
  });
  cleanups.push(() =>
    must(['secret-tool', 'clear', 'service', TOOL_SERVICE, 'account', ACCOUNT], { env: box.env }),
  );
  const keyId = must(['keyctl', 'padd', 'user', KEYCTL_DESC, '@u'], { input: VALUE }).trim();
  cleanups.push(() => must(['keyctl', 'invalidate', keyId]));
  const { AsyncEntry } = await import('@napi-rs/keyring');
  const napi = new AsyncEntry(NAPI_SERVICE, ACCOUNT, { linux: { store: 'secret-service' } });
  await napi.setPassword(VALUE);
  cleanups.push(() => napi.deletePassword());
  const napiGet = await timeCalls(
    async () => {
      if ((await napi.getPassword()) !== VALUE) throw new Error('napi: wrong value');
    },
    { n: Math.min(N, 1000) },
  );
  const anchorCmds = {
    keyctl: {
      label: 'keyctl pipe',
      argv: ['keyctl', 'pipe', `%user:${KEYCTL_DESC}`],
      env: box.env,
      expect: VALUE,
    },
    secretTool: {
      label: 'secret-tool lookup',
      argv: ['secret-tool', 'lookup', 'service', TOOL_SERVICE, 'account', ACCOUNT],
      env: box.env,
      expect: VALUE,
    },
  };
  const anchors = timeCommands(Object.values(anchorCmds), { n: RUNS });

  // --- Broker. ----------------------------------------------------------------------------------------
  // The first request after start derives the vault key (scrypt) and hashes node and the script; every
  // later measurement is warm.
  const firstEver = (await client(script, ['first', SERVICE, ACCOUNT])).ms;
  await sleep(500);
  const rssAfterFirst = rssMiB(daemon.pid);
  const rssAfterFirstSplit = rssSplit(daemon.pid);
  const warm = summarize((await client(script, ['warm', SERVICE, ACCOUNT, String(N)])).ms);
  const fresh = summarize(
    (await client(script, ['connect', SERVICE, ACCOUNT, String(Math.min(N, 1000))])).ms,
  );

  const loadArgv = (conns) => [script, 'load', SERVICE, ACCOUNT, String(conns)];
  const inOne = await load(loadArgv(CLIENTS), 1, SECONDS);
  const floor = await echoFloor(1, CLIENTS);
  const procs = await load(loadArgv(1), CLIENTS, SECONDS);
  const procsFloor = await echoFloor(CLIENTS, 1);
  await sleep(2000);
  const rssSoonAfter = rssMiB(daemon.pid);
  await sleep(SETTLE_MS - 2000);
  const rssIdleAfter = rssMiB(daemon.pid);
  const rssIdleAfterSplit = rssSplit(daemon.pid);

  // First sight of a 94 MiB binary: a copy of node the daemon has never hashed.
  const copyDir = join(box.dirs.root, 'bin');
  mkdirSync(copyDir);
  // Named node: the daemon recognises an interpreter by its executable's basename.
  const nodeCopy = join(copyDir, 'node');
  copyFileSync(NODE, nodeCopy);
  chmodSync(nodeCopy, 0o755);
  // The copy has node's hash; the daemon's hash cache is keyed by file identity (dev, inode, size, times),
  // so to it the copy is a new file to hash. It is registered with its own copy of the script (a client
  // is a program + script pair); the new policy is then loaded by one request from the warm client, so
  // the copy's first request pays for hashing, not for the policy reload.
  const copyScript = join(box.dirs.root, 'client-copy.mjs');
  writeFileSync(copyScript, CLIENT_SOURCE, { mode: 0o644 });
  cli(['register', nodeCopy, '--script', copyScript, ...grant, '--name', 'bench-node-copy']);
  await client(script, ['first', SERVICE, ACCOUNT]);
  // A file changed within the last 2 s is hashed again on every identification (identity/hash.ts,
  // RACY_NS): the copy is left to settle first, so the second run shows the cached case.
  await sleep(2500);
  const cold = (await client(copyScript, ['first', SERVICE, ACCOUNT], nodeCopy)).ms;
  const coldAgain = (await client(copyScript, ['first', SERVICE, ACCOUNT], nodeCopy)).ms;
  const nodeMiB = statSync(NODE).size / 1024 / 1024;

  // --- Table. -----------------------------------------------------------------------------------------
  const yes = (ok) => (ok ? 'met' : 'MISSED');
  const kc = anchors.get(anchorCmds.keyctl);
  const st = anchors.get(anchorCmds.secretTool);
  const perSec = (gets) => `${Math.round(gets / SECONDS).toLocaleString('en-US')}/s`;
  rows.push([
    'warm get, one open connection (SDK, sequential)',
    fmt(warm.p50),
    fmt(warm.p95),
    `p50 <= 0.25x napi = ${fmt(0.25 * napiGet.p50)}`,
    `${yes(warm.p50 <= 0.25 * napiGet.p50)} (${ratio(warm.p50, napiGet.p50)} napi)`,
  ]);
  rows.push([
    '@napi-rs/keyring getPassword, in-process (secret-service)',
    fmt(napiGet.p50),
    fmt(napiGet.p95),
    'anchor',
    '',
  ]);
  rows.push(['keyctl pipe %user:DESC (wall)', fmt(kc.p50), fmt(kc.p95), 'anchor', '']);
  rows.push(['secret-tool lookup (wall)', fmt(st.p50), fmt(st.p95), 'anchor', '']);
  rows.push([
    `gets/s, ${CLIENTS} connections in 1 client process`,
    perSec(inOne.gets),
    `daemon ${fmt(inOne.cpu / inOne.gets)} CPU/get`,
    `>= 20,000/s on 2 cores`,
    yes(inOne.gets / SECONDS >= 20_000),
  ]);
  rows.push([
    `node echo server, ${CLIENTS} connections in 1 client process`,
    `${Math.round(floor).toLocaleString('en-US')}/s`,
    'round trips of 60 bytes, no work',
    'floor',
    '',
  ]);
  rows.push([
    `gets/s, ${CLIENTS} client processes x 1 connection`,
    perSec(procs.gets),
    `daemon ${fmt(procs.cpu / procs.gets)} CPU/get`,
    `>= 20,000/s on 2 cores`,
    yes(procs.gets / SECONDS >= 20_000),
  ]);
  rows.push([
    `node echo server, ${CLIENTS} client processes x 1 connection`,
    `${Math.round(procsFloor).toLocaleString('en-US')}/s`,
    'round trips of 60 bytes, no work',
    'floor',
    '',
  ]);
  rows.push([
    "daemon's first get after start (scrypt + hashing node)",
    fmt(firstEver),
    '',
    'report only',
    '',
  ]);
  rows.push([
    'new connection + hello + first get (warm hash cache)',
    fmt(fresh.p50),
    fmt(fresh.p95),
    'p50 <= 1 ms',
    yes(fresh.p50 <= 1),
  ]);
  rows.push([
    `first sight of a ${nodeMiB.toFixed(0)} MiB node copy (hash cold) + first get`,
    fmt(cold),
    `then ${fmt(coldAgain)} (cached)`,
    'report only',
    '',
  ]);
  rows.push(['daemon RSS 0.5 s after start', `${rssStartup.toFixed(1)} MiB`, '', 'report only', '']);
  rows.push([
    `daemon RSS idle (${SETTLE_MS / 1000} s at rest after start)`,
    `${rssIdleStart.toFixed(1)} MiB`,
    rssIdleStartSplit,
    '<= 60 MB',
    yes(rssIdleStart * 1.048576 <= 60),
  ]);
  rows.push([
    'daemon RSS after its first get (scrypt ran)',
    `${rssAfterFirst.toFixed(1)} MiB`,
    rssAfterFirstSplit,
    'report only',
    '',
  ]);
  rows.push([
    'daemon RSS peak under load',
    `${Math.max(inOne.peak, procs.peak).toFixed(1)} MiB`,
    `1 proc ${inOne.peak.toFixed(1)} / ${CLIENTS} procs ${procs.peak.toFixed(1)}`,
    'report only',
    '',
  ]);
  rows.push(['daemon RSS 2 s after load', `${rssSoonAfter.toFixed(1)} MiB`, '', 'report only', '']);
  rows.push([
    `daemon RSS idle (${SETTLE_MS / 1000} s at rest after load)`,
    `${rssIdleAfter.toFixed(1)} MiB`,
    rssIdleAfterSplit,
    'report only',
    '',
  ]);
  notes.push(
    `load: ${SECONDS} s per run; "1 client process" is one node process with ${CLIENTS} sockets, each one get in flight; ` +
      `"${CLIENTS} client processes" are separate node processes with one socket each (they share the 2 cores with the daemon).`,
  );
  notes.push(
    `first sight: the copy was just written, so it is in the page cache; the time is the daemon hashing ${nodeMiB.toFixed(0)} MiB, not disk reads.`,
  );
} finally {
  await cleanups.run();
}

console.log(`\n## Broker (${machineLine()})\n`);
printTable(['what', 'p50 / value', 'p95 / detail', 'target', 'result'], rows);
console.log('');
for (const n of notes) console.log(n);
