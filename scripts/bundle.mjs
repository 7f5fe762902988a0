// Bundles the two start-up-critical entry points after tsc: the CLI (commands stay lazily loaded as
// split chunks next to it) and each shim (one self-contained file). Loading one file instead of ~15 ES
// modules saves ~10-15 ms per run, and tools run these on every request (bench/stores, bench/shims).
// Chunks stay in dist/cli/ so paths relative to import.meta.url (the native addon, ../shim) still hold.
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

// npm packages stay in node_modules (several are CommonJS), except zod: loaded as a package it pulls in
// ~8 MB of heap (every locale and module), bundled and tree-shaken it costs ~3 MB, which is what keeps
// the daemon's idle RSS near node's own.
const { dependencies } = JSON.parse(readFileSync('package.json', 'utf8'));
const external = Object.keys(dependencies).filter((name) => name !== 'zod');

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  allowOverwrite: true,
  logLevel: 'warning',
};
await build({
  ...common,
  entryPoints: ['dist/cli/main.js'],
  outdir: 'dist/cli',
  splitting: true,
  chunkNames: 'chunk-[hash]',
  external,
});
await build({
  ...common,
  entryPoints: ['dist/shim/security-main.js', 'dist/shim/secret-tool-main.js'],
  outdir: 'dist/shim',
  external,
});
