// `entraclaw agent --socket PATH` with paths a user might mistype: it must never delete a file, loosen
// or tighten a directory it does not own the purpose of, or create directories all over the disk.

import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { maxSocketPath, preparePrivateDir } from '../../src/daemon/socket-path.js';
import { waitFor } from '../support/broker.js';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';
import { describeIfProvided, linuxOnly, requireOrSkip, rootOnly } from '../support/context.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-socket-path-'));
const pass = join(dir, 'pass');
writeFileSync(pass, 'socket path test\n', { mode: 0o600 });
const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass });
const agent = (socket: string) => runCli(['agent', '--store', 'encrypted-file', '--socket', socket], env);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the longest socket path', () => {
  it("is sun_path's size less the NUL: 108 bytes on Linux, 104 on macOS", () => {
    expect(maxSocketPath('linux')).toBe(107);
    expect(maxSocketPath('darwin')).toBe(103);
  });

  it('a longer path is refused before any directory is made', () => {
    const max = maxSocketPath();
    const base = join(dir, 'long');
    const socket = `${base}/${'s'.repeat(max + 1 - base.length - 1)}`;
    expect(Buffer.byteLength(socket)).toBe(max + 1);
    expect(() => preparePrivateDir(socket)).toThrow(`max ${max}`);
    expect(existsSync(base)).toBe(false);
  });
});

describe('entraclaw agent --socket PATH', () => {
  it('refuses a path holding a regular file, and leaves the file as it was', () => {
    const file = join(dir, 'precious.txt');
    writeFileSync(file, 'data');
    const r = agent(file);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`${file} exists and is not a socket; refusing to replace it`);
    expect(readFileSync(file, 'utf8')).toBe('data');
  });

  it('refuses a path that is a directory (usage error, not internal)', () => {
    const sub = join(dir, 'a-dir');
    mkdirSync(sub);
    const r = agent(sub);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('is not a socket');
  });

  it('refuses a directory open to others (like /tmp) and leaves its mode alone', () => {
    const open = join(dir, 'public');
    mkdirSync(open);
    chmodSync(open, 0o1777);
    const r = agent(join(open, 'a.sock'));
    expect(r.status).toBe(EXIT_CODES.denied);
    expect(r.stderr).toContain(`socket directory ${open} is open to group or others (mode 777)`);
    expect(statSync(open).mode & 0o7777).toBe(0o1777);
    expect(existsSync(join(open, 'a.sock'))).toBe(false);
  });

  it('makes a relative path absolute, so a command it runs from another directory still finds it', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--',
        CLI,
        'agent',
        '--store',
        'encrypted-file',
        '--socket',
        'rel/a.sock',
        '--',
        'sh',
        '-c',
        'cd / && printf %s "$ENTRACLAW_SOCKET"',
      ],
      { env, cwd: dir, timeout: 30_000 },
    );
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(r.stdout.toString()).toBe(join(dir, 'rel', 'a.sock'));
  });

  it('creates only the last directory of a custom path, never its missing parents', () => {
    const r = agent(join(dir, 'missing', 'deeper', 'a.sock'));
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`${join(dir, 'missing')} does not exist`);
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });
});

// XDG_RUNTIME_DIR names the default socket's directory on Linux only; macOS keeps it in ~/Library.
describeIfProvided('entraclaw agent on its default socket', linuxOnly('XDG_RUNTIME_DIR'), () => {
  const run = (runtime: string) =>
    runCli(['agent', '--store', 'encrypted-file'], { ...env, XDG_RUNTIME_DIR: runtime });

  it('refuses a runtime directory another user owns (they could swap the socket clients look for)', (ctx) => {
    requireOrSkip(ctx, rootOnly('giving a directory to another uid (chown)'));
    const foreign = join(dir, 'foreign-run');
    mkdirSync(foreign, { mode: 0o755 });
    chownSync(foreign, 65534, 65534);
    const r = run(foreign);
    expect(r.status).toBe(EXIT_CODES.denied);
    expect(r.stderr).toContain(`the runtime directory ${foreign} is owned by uid 65534, not 0`);
    expect(r.stderr).toContain('XDG_RUNTIME_DIR');
    expect(readdirSync(foreign)).toEqual([]);
  });

  it('refuses a runtime directory others can write, and leaves its mode alone', () => {
    const open = join(dir, 'open-run');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r = run(open);
    expect(r.status).toBe(EXIT_CODES.denied);
    expect(r.stderr).toContain(`the runtime directory ${open} is writable by group or others (mode 777)`);
    expect(statSync(open).mode & 0o777).toBe(0o777);
    expect(readdirSync(open)).toEqual([]);
  });
});

describe('a daemon killed with SIGKILL', () => {
  it('leaves a stale socket that doctor calls stale and the next agent replaces', async () => {
    const home = join(dir, 'stale');
    mkdirSync(home, { mode: 0o700 });
    const socket = join(home, 'agent.sock');
    const e = { ...env, ENTRACLAW_SOCKET: socket };
    const start = () =>
      spawn(process.execPath, ['--', CLI, 'agent', '--store', 'encrypted-file'], {
        env: e,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    const daemonLine = () => /^Daemon: .*$/m.exec(runCli(['doctor'], e).stdout.toString())?.[0];
    const first = start();
    first.stderr.resume();
    await waitFor(() => existsSync(socket), 'the first agent');
    expect(daemonLine()).toBe(`Daemon: running at ${socket}`);
    first.kill('SIGKILL');
    await new Promise((r) => first.on('exit', r));
    expect(existsSync(socket)).toBe(true);
    expect(daemonLine()).toContain('not running (a stale socket is left');
    const stale = statSync(socket, { bigint: true }).ctimeNs;
    const second = start();
    let said = '';
    second.stderr.on('data', (d: Buffer) => {
      said += d.toString();
    });
    // Running (its lock taken) and listening (the stale socket replaced, so a new ctime; its inode number
    // may be reused): a SIGTERM between the two would
    // stop a daemon that never bound a socket, and the stale one would rightly stay.
    await waitFor(
      () =>
        daemonLine() === `Daemon: running at ${socket}` &&
        statSync(socket, { bigint: true, throwIfNoEntry: false })?.ctimeNs !== stale,
      'the second agent',
    );
    // It says what it cleaned up, naming the agent that left it.
    const cleaned = `removed the socket an agent that is gone left behind (it did not stop cleanly) socket=${socket} pid=${first.pid}`;
    await waitFor(() => said.includes(cleaned), 'the second agent to say what it removed');
    second.kill('SIGTERM');
    await new Promise((r) => second.on('exit', r));
    expect(existsSync(socket)).toBe(false);
    expect(daemonLine()).toBe(`Daemon: not running at ${socket}`);
  }, 30_000);
});
