#!/usr/bin/env node
// Wall time of a lookup through the drop-in shims (`entraclaw shim install DIR`: DIR/secret-tool and
// DIR/security, each a /bin/sh wrapper that execs node on our shim script, which asks the daemon) beside
// the real `secret-tool lookup` and a bare `node -e ''`, all measured in the same run.
//
//   make bench                       (all three benches, inside a private keyring session)
//   node bench/shims.mjs [--runs 30]
//
// The daemon decides a shim request for the shim's parent process. The parent here is a small registered
// caller script that runs every command (shims and anchors alike) in interleaved rounds and times them.
import { realpathSync, writeFileSync } from 'node:fs';
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
  ROOT,
  ratio,
  sandbox,
  startDaemon,
} from './lib.mjs';

ensurePrivateSession(import.meta.url);

const RUNS = numberFlag('runs', 30);
const NODE = realpathSync(process.execPath);
const SERVICE = `entraclaw-bench-${process.pid}`;
const ACCOUNT = 'bench';
const VALUE = `v-${process.pid}-0123456789abcdef`;
const TOOL_SERVICE = `${SERVICE}-secret-tool`;

// The registered parent of every shim call: times the commands it is given (interleaved) and, for the
// "what a native client would cost" line, one connect + hello + get from node through the SDK.
const CALLER_SOURCE = `import { timeCommands, summarize } from ${JSON.stringify(pathToFileURL(join(ROOT, 'bench', 'lib.mjs')).href)};
import { connect } from ${JSON.stringify(pathToFileURL(join(DIST, 'client', 'index.js')).href)};
const spec = JSON.parse(process.env.BENCH_SPEC);
const timed = timeCommands(spec.cmds, { n: spec.runs });
const ms = [];
for (let i = -20; i < 300; i++) {
  const t = performance.now();
  const conn = await connect();
  await conn.get(spec.service, spec.account);
  const dt = performance.now() - t;
  conn.close();
  if (i >= 0) ms.push(dt);
}
process.stdout.write(JSON.stringify({ wall: spec.cmds.map((c) => timed.get(c)), roundTrip: summarize(ms) }) + '\\n');
`;

const box = sandbox('shims');
const passFile = join(box.dirs.root, 'passphrase');
const socket = join(box.dirs.runtime, 'entraclaw', 'agent.sock');
const shimDir = join(box.dirs.root, 'shims');
const env = { ...box.env, ENTRACLAW_PASSPHRASE_FILE: passFile };
const cleanups = cleanupStack(box);

function cli(args, input) {
  return must([process.execPath, CLI, ...args], { env, input });
}

let result;
try {
  writeFileSync(passFile, 'entraclaw-bench-passphrase\n', { mode: 0o600 });
  cli(['secret', 'set', SERVICE, ACCOUNT, '--store', 'encrypted-file'], VALUE);
  await startDaemon({ env, socket, cleanups });

  cli(['shim', 'install', shimDir]);
  const caller = join(box.dirs.root, 'caller.mjs');
  writeFileSync(caller, CALLER_SOURCE, { mode: 0o644 });
  cli([
    'register',
    NODE,
    '--script',
    caller,
    '--grant',
    `${SERVICE}/${ACCOUNT}`,
    '--ops',
    'read',
    '--name',
    'bench-caller',
  ]);

  must(['secret-tool', 'store', '--label', 'entraclaw bench', 'service', TOOL_SERVICE, 'account', ACCOUNT], {
    env: box.env,
    input: VALUE,
  });
  cleanups.push(() =>
    must(['secret-tool', 'clear', 'service', TOOL_SERVICE, 'account', ACCOUNT], { env: box.env }),
  );

  const clientEnv = { ...env, ENTRACLAW_SOCKET: socket };
  const cmds = [
    {
      label: 'shim: secret-tool lookup service S account A',
      argv: [join(shimDir, 'secret-tool'), 'lookup', 'service', SERVICE, 'account', ACCOUNT],
      env: clientEnv,
      expect: VALUE,
    },
    {
      label: 'shim: security find-generic-password -s S -a A -w',
      argv: [join(shimDir, 'security'), 'find-generic-password', '-s', SERVICE, '-a', ACCOUNT, '-w'],
      env: clientEnv,
      expect: `${VALUE}\n`,
    },
    {
      label: 'real secret-tool lookup (gnome-keyring)',
      argv: ['secret-tool', 'lookup', 'service', TOOL_SERVICE, 'account', ACCOUNT],
      env: box.env,
      expect: VALUE,
    },
    { label: "node -e ''", argv: [NODE, '-e', ''], env: box.env },
    { label: '/bin/true (spawn floor)', argv: ['/bin/true'], env: box.env },
  ];
  const spec = { cmds, runs: RUNS, service: SERVICE, account: ACCOUNT };
  result = JSON.parse(must([NODE, caller], { env: { ...clientEnv, BENCH_SPEC: JSON.stringify(spec) } }));
  result.labels = cmds.map((c) => c.label);
} finally {
  await cleanups.run();
}

const [shimTool, shimSecurity, realTool, nodeE, trueBin] = result.wall;
const target = 1.3;
const rows = result.labels.map((label, i) => {
  const s = result.wall[i];
  const isShim = i < 2;
  return [
    label,
    fmt(s.p50),
    fmt(s.p95),
    fmt(s.min),
    String(s.n),
    ratio(s.p50, nodeE.p50),
    isShim ? `${s.p50 / nodeE.p50 <= target ? 'met' : 'MISSED'} (<= ${target}x node -e)` : '',
  ];
});
console.log(`\n## Shims (${machineLine()})\n`);
printTable(['command (wall)', 'p50', 'p95', 'min', 'n', 'p50 vs node -e', 'target'], rows);
const native = trueBin.p50 + result.roundTrip.p50;
console.log(
  `\nshim overhead over node -e '': secret-tool ${fmt(shimTool.p50 - nodeE.p50)}, security ${fmt(shimSecurity.p50 - nodeE.p50)} ` +
    `(sh wrapper, loading the shim script and the SDK, connect + hello + get, and the daemon deciding for the parent).`,
);
console.log(
  `to reach real secret-tool (${fmt(realTool.p50)}) the shim must not start node (${fmt(nodeE.p50)} alone): a small static ` +
    `client (C, ~200 lines: frame encode/decode, connect, one get) would cost about exec (/bin/true ${fmt(trueBin.p50)}) + ` +
    `connect + hello + get (${fmt(result.roundTrip.p50)} p50 measured from node here) = ~${fmt(native)}.`,
);
