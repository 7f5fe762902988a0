// Builds the native addon with node-gyp against the headers of the Node that runs this script:
// nothing can be downloaded at build time, so node-gyp must never fetch headers.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || prefix;
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(
    `entraclaw: Node headers not found under ${nodedir}/include/node; set npm_config_nodedir to your Node install prefix`,
  );
  process.exit(1);
}
// npm passes its bundled node-gyp to install scripts; run directly (make), use that same copy: beside
// node's prefix, or (Homebrew, nvm with a separate npm) in the global root npm itself reports.
const inNpm = (root) => join(root, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const bundled = () =>
  [join(prefix, 'lib', 'node_modules'), globalRoot()]
    .map((root) => root && inNpm(root))
    .find((p) => p && existsSync(p));
const gyp = process.env.npm_config_node_gyp || bundled();
const [cmd, args] = gyp ? [process.execPath, [gyp]] : ['npx', ['--no-install', 'node-gyp']];
function globalRoot() {
  const r = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}
const r = spawnSync(cmd, [...args, 'rebuild', `--nodedir=${nodedir}`], { stdio: 'inherit' });
if (r.status !== 0) {
  // node-gyp's own output ends in a stack trace; say last, in one place, what the build needs.
  console.error(
    `entraclaw: building the native addon (native/entraclaw.c) failed${r.error ? `: ${r.error.message}` : ''}. ` +
      'It needs python3, make and a C compiler: on Debian or Ubuntu `sudo apt-get install build-essential python3`, ' +
      'on macOS `xcode-select --install`; then install again (`npm rebuild entraclaw` where it is installed, ' +
      '`make build` in a checkout).',
  );
}
process.exit(r.status ?? 1);
