import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, isolatedEnv } from '../support/cli.js';

// `make install`: what the README tells a new user to run to get `entraclaw` on their PATH.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('make install', () => {
  it('links BINDIR/entraclaw to the built CLI, which then runs, and says how to put BINDIR on PATH', () => {
    const bindir = join(dir, 'bin');
    const make = spawnSync('make', ['-s', 'install', `BINDIR=${bindir}`], {
      cwd: join(import.meta.dirname, '..', '..'),
      env: process.env,
      timeout: 120_000,
    });
    expect(make.status, make.stderr.toString()).toBe(0);
    expect(make.stdout.toString()).toContain(`add it to PATH: export PATH="${bindir}:$PATH"`);
    expect(readlinkSync(join(bindir, 'entraclaw'))).toBe(CLI);
    const version = spawnSync(join(bindir, 'entraclaw'), ['--version']);
    expect(version.status, version.stderr.toString()).toBe(0);
    expect(version.stdout.toString().trim()).toMatch(/^\d+\.\d+\.\d+$/);
  }, 150_000);
});

describe('make build', () => {
  it('does not build the native addon again after `npm ci` built it (the stamp touched after it is order-only)', () => {
    // -W: as if node_modules/.stamp had just been touched (after `npm ci`), without touching it.
    const make = spawnSync(
      'make',
      ['-s', '-n', '-W', 'node_modules/.stamp', 'build/Release/entraclaw_native.node'],
      { cwd: join(import.meta.dirname, '..', '..'), env: process.env, timeout: 60_000 },
    );
    expect(make.status, make.stderr.toString()).toBe(0);
    expect(make.stdout.toString()).not.toContain('build-native');
  });
});

describe('npm run build', () => {
  it('makes the bin and the shims package.json names (the bundles), not only what tsc emits', () => {
    const repo = join(import.meta.dirname, '..', '..');
    const copy = join(dir, 'npm-build');
    for (const f of ['package.json', 'tsconfig.json', 'src', 'scripts'])
      cpSync(join(repo, f), join(copy, f), { recursive: true });
    symlinkSync(join(repo, 'node_modules'), join(copy, 'node_modules'));
    const build = spawnSync('npm', ['run', 'build'], { cwd: copy, env: process.env, timeout: 240_000 });
    expect(build.status, build.stderr.toString()).toBe(0);
    const pkg = JSON.parse(readFileSync(join(copy, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    for (const file of [
      ...Object.values(pkg.bin),
      'dist/shim/security-main.cjs',
      'dist/shim/secret-tool-main.cjs',
    ]) {
      expect(existsSync(join(copy, file)), file).toBe(true);
    }
    const version = spawnSync(join(copy, pkg.bin.entraclaw ?? ''), ['--version'], { timeout: 30_000 });
    expect(version.status, version.stderr.toString()).toBe(0);
    expect(version.stdout.toString().trim()).toMatch(/^\d+\.\d+\.\d+$/);
  }, 300_000);
});

describe('package.json', () => {
  it('exports only modules the build makes, each importable as the README says (npm install /path/to/entraclaw)', () => {
    const repo = join(import.meta.dirname, '..', '..');
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      exports: Record<string, string>;
    };
    // A project that installed the checkout: npm links it into node_modules.
    const project = join(dir, 'project');
    mkdirSync(join(project, 'node_modules'), { recursive: true });
    symlinkSync(repo, join(project, 'node_modules', 'entraclaw'));
    writeFileSync(join(project, 'package.json'), '{"type":"module"}');
    for (const sub of Object.keys(pkg.exports)) {
      const specifier = sub === '.' ? 'entraclaw' : `entraclaw/${sub.slice(2)}`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import('${specifier}')`], {
        cwd: project,
        timeout: 30_000,
      });
      expect(r.status, `${specifier}: ${r.stderr}`).toBe(0);
    }
    expect(Object.keys(pkg.exports)).toContain('./client');
    // `import ... from 'entraclaw'`, what a user tries first, is the SDK itself: the same module (one
    // BrokerError class for instanceof), from ES modules and from require() (Node >= 20.19).
    const same = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import * as root from 'entraclaw';
import * as client from 'entraclaw/client';
import { createRequire } from 'node:module';
const required = createRequire(process.cwd() + '/').call(null, 'entraclaw');
console.log(JSON.stringify([root.BrokerError === client.BrokerError, required.connect === client.connect]));`,
      ],
      { cwd: project, timeout: 30_000 },
    );
    expect(same.stderr.toString()).toBe('');
    expect(JSON.parse(same.stdout.toString())).toEqual([true, true]);
  });
});

describe('npm pack', () => {
  it('packs what the install script needs: unpacked as npm installs it, the addon builds and the bin uses it', () => {
    const repo = join(import.meta.dirname, '..', '..');
    const out = join(dir, 'pack');
    mkdirSync(out);
    const pack = spawnSync('npm', ['pack', '--pack-destination', out, '--json'], {
      cwd: repo,
      env: process.env,
      timeout: 120_000,
    });
    expect(pack.status, pack.stderr.toString()).toBe(0);
    const [{ filename, files }] = JSON.parse(pack.stdout.toString()) as [
      { filename: string; files: { path: string }[] },
    ];
    const paths = files.map((f) => f.path);
    // What the README and the SDK's declarations point a user at (docs/protocol.md's error codes) is in
    // the package; the build's make stamp, tests, the demo home and the addon's build output are not.
    for (const doc of ['README.md', 'docs/protocol.md', 'docs/policy.md', 'docs/exit-codes.md'])
      expect(paths).toContain(doc);
    expect(
      paths.filter((p) => /(^|\/)\.stamp$|^test\/|^\.demo\/|^build\/|^node_modules\/|^src\//.test(p)),
    ).toEqual([]);
    const tar = spawnSync('tar', ['xzf', join(out, filename), '-C', out]);
    expect(tar.status, tar.stderr.toString()).toBe(0);
    const pkg = join(out, 'package');
    // npm runs the package's install script in the unpacked package, with its dependencies beside it.
    const install = spawnSync('npm', ['run-script', 'install'], {
      cwd: pkg,
      env: process.env,
      timeout: 120_000,
    });
    expect(install.status, install.stderr.toString()).toBe(0);
    expect(existsSync(join(pkg, 'build', 'Release', 'entraclaw_native.node'))).toBe(true);
    symlinkSync(join(repo, 'node_modules'), join(pkg, 'node_modules'));
    const doctor = spawnSync(join(pkg, 'dist', 'cli', 'main.cjs'), ['doctor', '--json'], {
      env: isolatedEnv(join(dir, 'packed-user')),
      timeout: 30_000,
    });
    expect(doctor.status, doctor.stderr.toString()).toBe(0);
    const { stores } = JSON.parse(doctor.stdout.toString()) as {
      stores: { name: string; available: boolean; reason: string }[];
    };
    expect(stores.find((s) => s.name === 'kernel-keyring')).toMatchObject({
      available: true,
      reason: expect.stringContaining('native addon'),
    });
  }, 250_000);
});

describe('an installed package without its native addon (npm install --ignore-scripts)', () => {
  it('says the addon is not built and how to build it (exit 5), for the agent and for a vault write', () => {
    const repo = join(import.meta.dirname, '..', '..');
    const pkg = join(dir, 'no-addon');
    for (const f of ['package.json', 'dist']) cpSync(join(repo, f), join(pkg, f), { recursive: true });
    symlinkSync(join(repo, 'node_modules'), join(pkg, 'node_modules'));
    const user = join(dir, 'no-addon-user');
    mkdirSync(user);
    const passphrase = join(user, 'passphrase');
    writeFileSync(passphrase, 'correct horse battery staple', { mode: 0o600 });
    const cli = join(pkg, 'dist', 'cli', 'main.cjs');
    const runs = [
      spawnSync(cli, ['agent', '--store', 'encrypted-file', '--passphrase-file', passphrase, '--', 'true'], {
        env: isolatedEnv(user),
        timeout: 30_000,
      }),
      spawnSync(
        cli,
        ['secret', 'set', '--store', 'encrypted-file', '--passphrase-file', passphrase, 'svc', 'acct'],
        {
          env: isolatedEnv(user),
          input: 'value',
          timeout: 30_000,
        },
      ),
    ];
    for (const r of runs) {
      const stderr = r.stderr.toString();
      expect(stderr).toContain(
        `native addon is not built (${join(pkg, 'build', 'Release', 'entraclaw_native.node')})`,
      );
      expect(stderr).toContain('npm rebuild -g entraclaw');
      expect(stderr).not.toContain('internal error');
      expect(r.status, stderr).toBe(5);
    }

    // The SDK says it as a BrokerError, as it says every failure to reach the daemon.
    const socket = join(user, 'listener.sock');
    const listener = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import net from 'node:net';
const server = net.createServer(() => {}).listen(${JSON.stringify(socket)}, async () => {
  const { connect } = await import(${JSON.stringify(pathToFileURL(join(pkg, 'dist', 'client', 'index.js')).href)});
  try { await connect({ socket: ${JSON.stringify(socket)} }); console.log('connected'); }
  catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, hint: e.hint })); }
  server.close();
});`,
      ],
      { env: isolatedEnv(user), timeout: 30_000 },
    );
    const failure = JSON.parse(listener.stdout.toString());
    expect(failure, listener.stderr.toString()).toMatchObject({ name: 'BrokerError', code: 'unavailable' });
    expect(failure.message).toContain('native addon is not built');
    expect(failure.hint).toContain('npm rebuild');
    // An npm that runs only approved install scripts skipped the build, and skips `npm rebuild` too.
    expect(failure.hint).toContain('npm install-scripts approve entraclaw');
  });
});

describe('the install script where the addon cannot be built (no compiler, no make, no python)', () => {
  it('fails, and says last what the build needs and how to build it again', () => {
    const repo = join(import.meta.dirname, '..', '..');
    const pkg = join(dir, 'no-toolchain');
    for (const f of ['binding.gyp', 'native', 'scripts/build-native.mjs'])
      cpSync(join(repo, f), join(pkg, f), { recursive: true });
    const empty = join(dir, 'empty-path');
    mkdirSync(empty);
    const r = spawnSync(process.execPath, ['scripts/build-native.mjs'], {
      cwd: pkg,
      env: { ...isolatedEnv(join(dir, 'no-toolchain-user')), PATH: empty },
      timeout: 120_000,
    });
    const stderr = r.stderr.toString();
    expect(r.status, stderr).not.toBe(0);
    expect(existsSync(join(pkg, 'build', 'Release', 'entraclaw_native.node'))).toBe(false);
    expect(stderr.trimEnd().split('\n').at(-1)).toMatch(
      /^entraclaw: building the native addon \(native\/entraclaw\.c\) failed.*It needs python3, make and a C compiler: .*build-essential python3.*then install again \(`npm rebuild entraclaw` where it is installed/,
    );
  }, 150_000);
});
