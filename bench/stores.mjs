#!/usr/bin/env node
// Per-backend `get` latency, in process (warm store) and as a whole CLI run, beside anchors measured in the
// same run: secret-tool, keyctl, Python keyring, @napi-rs/keyring and a bare `node -e ''`.
//
//   make bench                       (all three benches, inside a private keyring session)
//   node bench/stores.mjs [--n 2000] [--runs 30]
//
// Everything runs against throwaway HOME/XDG dirs and a throwaway gnome-keyring; kernel keys live in the
// user keyring (@u) under unique names and are removed at the end, as is every other item created here.
import { scrypt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CLI,
  cleanupStack,
  DIST,
  ensurePrivateSession,
  entraclawPaths,
  fmt,
  machineLine,
  must,
  numberFlag,
  PYTHON,
  printTable,
  ratio,
  sandbox,
  summarize,
  timeCalls,
  timeCommands,
} from './lib.mjs';

ensurePrivateSession(import.meta.url);

const N = numberFlag('n', 2000);
const RUNS = numberFlag('runs', 30);
const SERVICE = `entraclaw-bench-${process.pid}`;
const ACCOUNT = 'bench';
const VALUE = `v-${process.pid}-0123456789abcdef`;
const NAPI_SERVICE = `${SERVICE}-napi`;
const PY_SERVICE = `${SERVICE}-python`;
const TOOL_SERVICE = `${SERVICE}-secret-tool`;
const KEYCTL_DESC = `${SERVICE}-keyctl`;
const STORES = ['secret-service', 'kernel-keyring', 'encrypted-file', 'systemd-creds'];

const { backendFor } = await import(pathToFileURL(join(DIST, 'store', 'registry.js')).href);
const { credentialName } = await import(pathToFileURL(join(DIST, 'store', 'systemd-creds.js')).href);
const { DEFAULT_KDF } = await import(pathToFileURL(join(DIST, 'store', 'vault-format.js')).href);
const { AsyncEntry } = await import('@napi-rs/keyring');

const box = sandbox('stores');
const credsDir = join(box.dirs.root, 'credentials');
const passFile = join(box.dirs.root, 'passphrase');
const paths = entraclawPaths(box.dirs);
const cleanups = cleanupStack(box);

/** Python: times only keyring.get_password, in a loop, and prints the samples in ns. */
const PY_LOOP = `
import json, sys, time, keyring
s, a, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(min(50, n)):
    keyring.get_password(s, a)
out = []
for _ in range(n):
    t = time.perf_counter_ns(); keyring.get_password(s, a); out.append(time.perf_counter_ns() - t)
print(json.dumps({"backend": type(keyring.get_keyring()).__module__ + "." + type(keyring.get_keyring()).__name__, "ns": out}))
`;

function storeContext(env) {
  return { env, paths, passphraseFile: passFile, interactive: false, timeoutMs: 3000 };
}

function scryptOnce() {
  return new Promise((resolve, reject) => {
    const { N: n, r, p } = DEFAULT_KDF;
    scrypt('bench', 'salt-salt-salt-salt', 64, { N: n, r, p, maxmem: 2 * 128 * n * r * p }, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}

const rows = [];
const inProcess = {};
const wall = {};
const stores = {};
const skipped = {};
try {
  // --- Setup: one item per store and per anchor, all holding VALUE. -----------------------------------
  writeFileSync(passFile, 'entraclaw-bench-passphrase\n', { mode: 0o600 });
  mkdirSync(credsDir, { mode: 0o700 });
  writeFileSync(join(credsDir, credentialName(SERVICE, ACCOUNT)), VALUE, { mode: 0o400 });
  const credsEnv = { ...box.env, CREDENTIALS_DIRECTORY: credsDir };

  // A store that cannot be used here (no user keyring in this session, say) is reported, not fatal.
  for (const name of STORES) {
    try {
      const store = await (await backendFor(name)).open(
        storeContext(name === 'systemd-creds' ? credsEnv : box.env),
      );
      cleanups.push(() => store.close());
      if (name !== 'systemd-creds') {
        await store.set({ service: SERVICE, account: ACCOUNT, value: Buffer.from(VALUE) });
        cleanups.push(() => store.delete(SERVICE, ACCOUNT));
      }
      stores[name] = store;
    } catch (err) {
      skipped[name] = err.message;
    }
  }
  const usable = STORES.filter((name) => stores[name]);

  must(['secret-tool', 'store', '--label', 'entraclaw bench', 'service', TOOL_SERVICE, 'account', ACCOUNT], {
    env: box.env,
    input: VALUE,
  });
  cleanups.push(() =>
    must(['secret-tool', 'clear', 'service', TOOL_SERVICE, 'account', ACCOUNT], { env: box.env }),
  );

  const keyId = must(['keyctl', 'padd', 'user', KEYCTL_DESC, '@u'], { input: VALUE }).trim();
  cleanups.push(() => must(['keyctl', 'invalidate', keyId]));

  must(
    [
      PYTHON,
      '-c',
      'import sys, keyring; keyring.set_password(sys.argv[1], sys.argv[2], sys.argv[3])',
      PY_SERVICE,
      ACCOUNT,
      VALUE,
    ],
    { env: box.env },
  );
  cleanups.push(() =>
    must(
      [
        PYTHON,
        '-c',
        'import sys, keyring; keyring.delete_password(sys.argv[1], sys.argv[2])',
        PY_SERVICE,
        ACCOUNT,
      ],
      { env: box.env },
    ),
  );

  const napi = new AsyncEntry(NAPI_SERVICE, ACCOUNT, { linux: { store: 'secret-service' } });
  await napi.setPassword(VALUE);
  cleanups.push(() => napi.deletePassword());
  // No @napi-rs/keyring keyutils anchor: creating such an entry makes this process join a new anonymous
  // session keyring, after which nothing in the process (our kernel-keyring store included) possesses @u.

  // --- In process: warm store instances, only the call timed. -------------------------------------------
  for (const name of usable) {
    const store = stores[name];
    const n = name === 'secret-service' ? Math.min(N, 1000) : N;
    inProcess[name] = await timeCalls(
      async () => {
        const item = await store.get(SERVICE, ACCOUNT);
        if (item?.value.toString() !== VALUE) throw new Error(`${name}: wrong value`);
      },
      { n },
    );
  }
  inProcess.napi = await timeCalls(
    async () => {
      if ((await napi.getPassword()) !== VALUE) throw new Error('napi: wrong value');
    },
    { n: Math.min(N, 1000) },
  );
  const py = JSON.parse(
    must([PYTHON, '-c', PY_LOOP, PY_SERVICE, ACCOUNT, String(Math.min(N, 300))], { env: box.env }),
  );
  inProcess.python = summarize(py.ns.map((ns) => ns / 1e6));
  inProcess.scrypt = await timeCalls(scryptOnce, { n: 5, warmup: 1 });

  // --- Whole commands: wall time, interleaved rounds. ---------------------------------------------------
  const cli = (store, env) => ({
    label: `entraclaw secret get --store ${store}`,
    argv: [process.execPath, CLI, 'secret', 'get', SERVICE, ACCOUNT, '--store', store],
    env,
    expect: VALUE,
  });
  const storeCmds = {
    'secret-service': cli('secret-service', box.env),
    'kernel-keyring': cli('kernel-keyring', box.env),
    'encrypted-file': {
      ...cli('encrypted-file', { ...box.env, ENTRACLAW_PASSPHRASE_FILE: passFile }),
      n: Math.min(RUNS, 15),
    },
    'systemd-creds': cli('systemd-creds', credsEnv),
  };
  const cmds = {
    nodeE: { label: "node -e ''", argv: [process.execPath, '-e', ''], env: box.env },
    trueBin: { label: 'spawn floor: /bin/true', argv: ['/bin/true'], env: box.env },
    ...Object.fromEntries(usable.map((name) => [name, storeCmds[name]])),
    secretTool: {
      label: 'secret-tool lookup',
      argv: ['secret-tool', 'lookup', 'service', TOOL_SERVICE, 'account', ACCOUNT],
      env: box.env,
      expect: VALUE,
    },
    keyctl: {
      label: 'keyctl pipe',
      argv: ['keyctl', 'pipe', `%user:${KEYCTL_DESC}`],
      env: box.env,
      expect: VALUE,
    },
    python: {
      label: 'python3 keyring.get_password',
      argv: [
        PYTHON,
        '-c',
        'import sys, keyring; sys.stdout.write(keyring.get_password(sys.argv[1], sys.argv[2]))',
        PY_SERVICE,
        ACCOUNT,
      ],
      env: box.env,
      expect: VALUE,
    },
  };
  const timed = timeCommands(Object.values(cmds), { n: RUNS });
  for (const [k, c] of Object.entries(cmds)) wall[k] = timed.get(c);

  // --- Table. -----------------------------------------------------------------------------------------
  const node = wall.nodeE.p50;
  const row = (what, how, s, vsNode) => [
    what,
    how,
    fmt(s.p50),
    fmt(s.p95),
    fmt(s.min),
    String(s.n),
    vsNode ? ratio(s.p50, node) : '',
  ];
  const storeRow = (name, how, stats, vsNode) =>
    stats
      ? row(`entraclaw ${name} get`, how, stats, vsNode)
      : [`entraclaw ${name}`, `skipped: ${skipped[name]}`, '', '', '', '', ''];
  rows.push(storeRow('secret-service', 'in-process, warm store', inProcess['secret-service']));
  rows.push(
    row('@napi-rs/keyring getPassword (secret-service)', 'in-process, warm AsyncEntry', inProcess.napi),
  );
  rows.push(
    row(
      `python keyring.get_password (${py.backend.replace(/^keyring\.backends\./, '')})`,
      'in-process loop, call only',
      inProcess.python,
    ),
  );
  rows.push(storeRow('kernel-keyring', 'in-process, warm store', inProcess['kernel-keyring']));
  rows.push(storeRow('encrypted-file', 'in-process, key cached', inProcess['encrypted-file']));
  rows.push(storeRow('systemd-creds', 'in-process, warm store', inProcess['systemd-creds']));
  rows.push(
    row(
      `scrypt N=2^${Math.log2(DEFAULT_KDF.N)} r=${DEFAULT_KDF.r} p=${DEFAULT_KDF.p} (vault KDF alone)`,
      'in-process',
      inProcess.scrypt,
    ),
  );
  for (const name of usable) {
    rows.push(row(`entraclaw secret get --store ${name}`, 'CLI wall', wall[name], true));
  }
  rows.push(row('secret-tool lookup', 'wall', wall.secretTool, true));
  rows.push(row('keyctl pipe %user:DESC', 'wall', wall.keyctl, true));
  rows.push(row('python3 -c keyring.get_password', 'wall', wall.python, true));
  rows.push(row("node -e ''", 'wall', wall.nodeE, true));
  rows.push(row('/bin/true (spawn floor)', 'wall', wall.trueBin, true));
} finally {
  await cleanups.run();
}

console.log(`\n## Store get latency (${machineLine()})\n`);
printTable(['what', 'how', 'p50', 'p95', 'min', 'n', 'p50 vs node -e'], rows);

if (inProcess['secret-service']) {
  const ss = inProcess['secret-service'].p50 / inProcess.napi.p50;
  console.log(
    `\nin-process secret-service get vs @napi-rs/keyring: ${ratio(inProcess['secret-service'].p50, inProcess.napi.p50)} ` +
      `(${fmt(inProcess['secret-service'].p50)} vs ${fmt(inProcess.napi.p50)} p50; entraclaw is ${ss <= 1 ? 'faster' : 'slower'})`,
  );
}
const target = 1.3;
const usable = STORES.filter((name) => wall[name]);
const meets = usable.filter((name) => wall[name].p50 / wall.nodeE.p50 <= target);
const misses = usable.filter((name) => !meets.includes(name));
console.log(
  `entraclaw secret get wall vs node -e '' (target <= ${target}x): ` +
    usable.map((name) => `${name} ${ratio(wall[name].p50, wall.nodeE.p50)}`).join(', '),
);
console.log(`  meet the target: ${meets.join(', ') || 'none'}; miss: ${misses.join(', ') || 'none'}`);
const over = (name) => (wall[name] ? fmt(wall[name].p50 - wall.nodeE.p50) : 'n/a');
console.log(
  `  time over node -e '': kernel-keyring ${over('kernel-keyring')}, systemd-creds ${over('systemd-creds')} ` +
    '(loading the CommonJS bundle dist/cli/main.cjs and the native addon, then one syscall or file read); ' +
    `secret-service ${over('secret-service')} (also the bundled D-Bus client, then connect, authenticate, ` +
    'OpenSession with a DH exchange, collection check, SearchItems, GetSecret).',
);
if (misses.includes('encrypted-file')) {
  const floor = wall.nodeE.p50 + inProcess.scrypt.p50;
  console.log(
    `  encrypted-file cannot meet it by design: every fresh process must run scrypt (${fmt(inProcess.scrypt.p50)} p50 here) ` +
      `to unlock the vault, so its floor is node + scrypt = ${fmt(floor)} = ${ratio(floor, wall.nodeE.p50)} node -e ''. ` +
      'That cost is the brute-force resistance; the daemon pays it once and serves later reads from memory (bench/broker.mjs).',
  );
}
for (const [name, why] of Object.entries(skipped)) console.log(`  ${name} was skipped: ${why}`);
