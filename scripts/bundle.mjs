// Bundles the two start-up-critical entry points after tsc: the CLI (commands stay lazily loaded as
// split chunks next to it) and each shim (one self-contained file). Loading one file instead of ~15 ES
// modules saves ~10-15 ms per run, and tools run these on every request (bench/stores, bench/shims).
// Chunks stay in dist/cli/ so paths relative to import.meta.url (the native addon, ../shim) still hold.
import { chmodSync, readFileSync } from 'node:fs';
import { build } from 'esbuild';

// Bundled: zod (as a package it pulls in ~8 MB of heap, every locale and module; bundled and
// tree-shaken ~3 MB, which keeps the daemon's idle RSS near node's own) and the D-Bus client (~30 CommonJS
// files resolved and read one by one: ~25 ms of every `secret get` on the Secret Service). Other
// packages stay in node_modules.
const BUNDLED = new Set(['zod', '@homebridge/dbus-native']);
const { dependencies } = JSON.parse(readFileSync('package.json', 'utf8'));
const external = [
  ...Object.keys(dependencies).filter((name) => !BUNDLED.has(name)),
  // Optional transports dbus-native requires only when asked (abstract sockets, X11 session lookup).
  'abstract-socket',
  'x11',
];

// We only ever send method calls (store/secret-service/bus.ts) and never export objects or run a bus,
// so dbus-native's XML introspection (xml2js, ~14 ms to load) and its server side are left out.
const NOT_USED = /[\\/]@homebridge[\\/]dbus-native[\\/]lib[\\/](introspect|server|server-handshake)\.js$/;
const leaveOutDbusExtras = {
  name: 'leave-out-dbus-extras',
  setup(b) {
    b.onLoad({ filter: NOT_USED }, (args) => ({
      contents: `const fail = () => { throw new Error('not bundled: ${args.path.split(/[\\/]/).pop()} of dbus-native'); };
module.exports = new Proxy({}, { get: () => fail });`,
      loader: 'js',
    }));
  },
};

// zod re-exports every locale as a namespace (z.locales), which keeps 60-odd translations in the bundle;
// messages here are English only (zod's default), so the namespace is cut down to `en`.
const ZOD_LOCALES = /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/;
const englishOnlyZod = {
  name: 'english-only-zod',
  setup(b) {
    b.onLoad({ filter: ZOD_LOCALES }, () => ({
      contents: "export { default as en } from './en.js';",
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  allowOverwrite: true,
  logLevel: 'warning',
  external,
  plugins: [leaveOutDbusExtras, englishOnlyZod],
  // CommonJS code bundled into ES modules still calls require() for node's built-ins.
  banner: {
    js: "import { createRequire as __ecRequire } from 'node:module'; const require = __ecRequire(import.meta.url);",
  },
};
await build({
  ...common,
  entryPoints: ['dist/cli/main.js'],
  outdir: 'dist/cli',
  splitting: true,
  chunkNames: 'chunk-[hash]',
});
// Runnable as it is (`./dist/cli/main.js`), as npm makes the installed bin: its shebang passes `--` to node.
chmodSync('dist/cli/main.js', 0o755);
await build({
  ...common,
  entryPoints: ['dist/shim/security-main.js', 'dist/shim/secret-tool-main.js'],
  outdir: 'dist/shim',
});
