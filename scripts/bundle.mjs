// Bundles the start-up-critical entry points after tsc: the CLI (main.cjs for `secret get`, program.js
// with the other commands as lazily loaded chunks) and each shim (one self-contained file). Loading one
// file instead of ~15 ES modules saves ~10-15 ms per run, and tools run these on every request
// (bench/stores, bench/shims). Everything stays in dist/cli/ so paths relative to import.meta.url (the
// native addon, ../shim) still hold.
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
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
// The CLI's commands, loaded by main.cjs for everything but the plain `secret get`: program.js (commander)
// with each command in lazily loaded chunks.
await build({
  ...common,
  entryPoints: ['dist/cli/program.js'],
  outdir: 'dist/cli',
  splitting: true,
  chunkNames: 'chunk-[hash]',
});

// The bin, dist/cli/main.cjs: `secret get`, which tools run on every request, as CommonJS. Node then
// starts no ES module loader and resolves no module graph: ~15 ms of each call (bench/stores). Kept out
// of it, each in a CommonJS file of its own loaded only when needed: the Secret Service backend with its
// D-Bus client, zod (a config file exists) and, as the ES module above, the rest of the CLI. The error
// classes are one shared file, as the CLI tells errors apart with instanceof.
const HOT_PATH_SPLITS = new Map([
  [resolve('dist/errors.js'), './errors.cjs'],
  [resolve('dist/store/secret-service.js'), './store-secret-service.cjs'],
  [resolve('dist/cli/program.js'), './program.js'],
]);
// A split-off CommonJS file is reached through a small bundled module that require()s it: esbuild would
// leave a dynamic import() of an external file as it is, and node would start its ES module loader for it.
const hotPathSplits = {
  name: 'hot-path-splits',
  setup(b) {
    const split = (to, kind) =>
      kind === 'dynamic-import' && to.endsWith('.cjs')
        ? { path: to, namespace: 'require-split' }
        : { path: to, external: true };
    b.onResolve({ filter: /^\./ }, (args) => {
      if (args.kind === 'entry-point' || args.namespace === 'require-split') return undefined;
      const to = HOT_PATH_SPLITS.get(resolve(args.resolveDir, args.path));
      return to ? split(to, args.kind) : undefined;
    });
    b.onResolve({ filter: /^zod$/ }, (args) => split('./zod.cjs', args.kind));
    b.onResolve({ filter: /\.cjs$/, namespace: 'require-split' }, (args) => ({
      path: args.path,
      external: true,
    }));
    b.onLoad({ filter: /.*/, namespace: 'require-split' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};
const commonJs = {
  ...common,
  format: 'cjs',
  define: { 'import.meta.url': '__ecModuleUrl' },
  banner: { js: "const __ecModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
};
await build({
  ...commonJs,
  entryPoints: {
    main: 'dist/cli/main.js',
    errors: 'dist/errors.js',
    'store-secret-service': 'dist/store/secret-service.js',
  },
  outdir: 'dist/cli',
  outExtension: { '.js': '.cjs' },
  // The TOML parser is small and needed whenever a config file exists: bundled here, not resolved.
  external: external.filter((name) => name !== 'smol-toml'),
  plugins: [...common.plugins, hotPathSplits],
});
await build({
  ...commonJs,
  stdin: { contents: "export * from 'zod';", resolveDir: '.', loader: 'js' },
  outfile: 'dist/cli/zod.cjs',
});
// tsc's ES module copy of the entry would run too, only slower: main.cjs is the one entry.
for (const ext of ['.js', '.d.ts']) rmSync(`dist/cli/main${ext}`);
// Runnable as it is (`./dist/cli/main.cjs`), as npm makes the installed bin: its shebang passes `--` to node.
chmodSync('dist/cli/main.cjs', 0o755);
// Each shim is one CommonJS file (dist/shim/*-main.cjs): node runs a CommonJS entry without starting its
// ES module loader, ~5 ms of every shim call (bench/shims). import.meta.url (the native addon's path) is
// the bundle's own file URL there.
await build({
  ...commonJs,
  entryPoints: ['dist/shim/security-main.js', 'dist/shim/secret-tool-main.js'],
  outdir: 'dist/shim',
  outExtension: { '.js': '.cjs' },
});
// tsc's ES module copies of the entry scripts would run too, but as plain clients: only the bundles are
// shims (src/daemon/server.ts), so only they are left.
for (const name of ['security-main', 'secret-tool-main']) {
  for (const ext of ['.js', '.d.ts']) rmSync(`dist/shim/${name}${ext}`);
}
