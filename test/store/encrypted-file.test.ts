import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CorruptError, type EntraclawError, LockedError } from '../../src/errors.js';
import { backend, rekeyVault } from '../../src/store/encrypted-file.js';
import type { Store, StoreContext } from '../../src/store/types.js';
import { requireOrSkip, rootOnly, tempContext } from '../support/context.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WRITER = fileURLToPath(new URL('./fixtures/vault-writer.mjs', import.meta.url));
const BINARY = Buffer.from([0x00, 0xff, 0x80, 0x0a, 0x00, 0x41, 0xc3, 0x28]);
const CANARY = 'CANARY-e2c1-do-not-print';
const PASSPHRASE = 'correct horse battery staple';

const temps: { cleanup(): void }[] = [];
const stores: Store[] = [];

/** A private temp context whose only passphrase source is its passphrase file. */
function context(): StoreContext & { dir: string } {
  const t = tempContext();
  temps.push(t);
  delete t.ctx.env.ENTRACLAW_PASSPHRASE_FILE;
  delete t.ctx.env.CREDENTIALS_DIRECTORY;
  return Object.assign(t.ctx, { dir: t.dir });
}

async function open(ctx: StoreContext): Promise<Store> {
  const store = await backend.open(ctx);
  stores.push(store);
  return store;
}

function vaultPath(ctx: StoreContext): string {
  return join(ctx.paths.data, 'vault.ecv');
}

function tempFiles(ctx: StoreContext): string[] {
  return readdirSync(ctx.paths.data).filter((n) => n.endsWith('.tmp'));
}

async function caught(p: Promise<unknown>): Promise<EntraclawError> {
  try {
    await p;
  } catch (err) {
    return err as EntraclawError;
  }
  throw new Error('expected a rejection');
}

function spawnWriter(
  ctx: StoreContext,
  prefix: string,
  count: number,
  wait: boolean,
  wrap: string[] = [],
): ChildProcess {
  const [command, ...args] = [
    ...wrap,
    process.execPath,
    WRITER,
    ctx.paths.data,
    ctx.passphraseFile as string,
    prefix,
    String(count),
    wait ? 'wait' : '',
  ];
  return spawn(command!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Exit of a writer: how many sets it acknowledged, and how it ended. */
interface WriterExit {
  acked: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs a writer; `killAt` (acknowledged sets) SIGKILLs it 0–20 ms later, i.e. somewhere inside a later set.
 * With `start`, the writer waits after "ready" until that promise resolves. With `wrap`, the writer runs
 * under that command (e.g. strace and its options).
 */
function runWriter(
  ctx: StoreContext,
  prefix: string,
  count: number,
  opts: { killAt?: number; ready?: () => void; start?: Promise<void>; wrap?: string[] } = {},
): Promise<WriterExit> {
  const { killAt, ready, start, wrap } = opts;
  const child = spawnWriter(ctx, prefix, count, start !== undefined, wrap);
  start?.then(() => child.stdin?.end('go\n'));
  let acked = 0;
  let stdout = '';
  let stderr = '';
  let killing = false;
  const killSoon = () => {
    if (killing) return;
    killing = true;
    setTimeout(() => child.kill('SIGKILL'), Math.random() * 20);
  };
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  child.stdout?.on('data', (d) => {
    stdout += d;
    const lines = stdout.split('\n');
    stdout = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'ready') ready?.();
      else acked = Number(line) + 1;
      if (killAt !== undefined && acked >= killAt) killSoon();
    }
  });
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve({ acked, code, signal, stderr })),
  );
}

/** The steps of writeFileAtomic where a crash leaves a different state behind, in the order it takes them. */
const STEPS = ['open-temp', 'fchmod-temp', 'write-temp', 'fsync-temp', 'rename', 'fsync-dir'] as const;
type Step = (typeof STEPS)[number];
/** Steps after which the temp file exists and the vault still holds the old contents. */
const TEMP_LEFT: Step[] = ['fchmod-temp', 'write-temp', 'fsync-temp', 'rename'];
const TRACED = 'openat,write,fchmod,fsync,fdatasync,rename,renameat,renameat2,close';
const TEMP_NAME = /\/\.vault\.ecv\.[0-9a-f]{16}\.tmp$/;

/** One system call in an strace log, numbered per syscall as strace's `when=` counts them. */
interface TracedCall {
  name: string;
  nth: number;
  /** Which step of writeFileAtomic it is, and of which of the writer's sets (0-based). */
  step?: Step;
  set?: number;
  /** Entered but never returned: the call strace killed the writer at. */
  killed: boolean;
  line: string;
}

/** Reads an `strace -o` log of the writer's main thread (the one the synchronous vault writes run on). */
function parseTrace(log: string, ctx: StoreContext): TracedCall[] {
  const fds = new Map<number, string>();
  const seen = new Map<string, number>();
  const calls: TracedCall[] = [];
  for (const line of log.split('\n')) {
    const m = /^(\w+)\((.*)\)\s+= (\S+)/.exec(line);
    if (!m) continue; // "+++ killed by SIGKILL +++", signals
    const [, name = '', args = '', ret = ''] = m;
    const nth = (seen.get(name) ?? 0) + 1;
    seen.set(name, nth);
    const opened = name === 'openat' ? /^AT_FDCWD, "([^"]*)"/.exec(args)?.[1] : undefined;
    const onFd = fds.get(Number(/^(\d+),?/.exec(args)?.[1]));
    const onTemp = onFd !== undefined && TEMP_NAME.test(onFd);
    let step: Step | undefined;
    if (opened !== undefined && TEMP_NAME.test(opened)) step = 'open-temp';
    else if (name === 'fchmod' && onTemp) step = 'fchmod-temp';
    else if (name === 'write' && onTemp) step = 'write-temp';
    else if ((name === 'fsync' || name === 'fdatasync') && onTemp) step = 'fsync-temp';
    else if (name.startsWith('rename') && args.includes(`"${vaultPath(ctx)}"`)) step = 'rename';
    else if ((name === 'fsync' || name === 'fdatasync') && onFd === ctx.paths.data) step = 'fsync-dir';
    if (opened !== undefined && /^\d+$/.test(ret)) fds.set(Number(ret), opened);
    if (name === 'close') fds.delete(Number(args));
    const set = step && calls.filter((c) => c.step === step).length;
    calls.push({ name, nth, step, set, killed: ret === '?', line });
  }
  return calls;
}

beforeAll(() => {
  // Child writers run the compiled code; a stale dist/ would test yesterday's vault.
  for (const f of [
    'store/encrypted-file',
    'store/vault-format',
    'lib/atomic-write',
    'lib/file-lock',
    'lib/passphrase',
  ]) {
    const built = join(ROOT, 'dist', `${f}.js`);
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(ROOT, 'src', `${f}.ts`)).mtimeMs) {
      throw new Error(
        `dist/${f}.js is missing or older than its source: run \`npx tsc -p tsconfig.json\` first`,
      );
    }
  }
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const t of temps.splice(0)) t.cleanup();
});

describe('encrypted-file store', () => {
  it('rekeyVault re-encrypts under a new passphrase; a store open meanwhile reads the new one from its file', async () => {
    const ctx = context();
    const s = await open(ctx);
    await s.set({ service: 'svc', account: 'a', value: Buffer.from(CANARY) });
    expect((await s.get('svc', 'a'))?.value.toString()).toBe(CANARY);
    const fresh = 'a brand new passphrase';
    expect(await rekeyVault(ctx, async () => Buffer.from(fresh))).toEqual({
      vault: vaultPath(ctx),
      items: 1,
    });
    // The old passphrase no longer opens it.
    expect(await caught((await open(ctx)).get('svc', 'a'))).toBeInstanceOf(LockedError);
    // The user points the passphrase file at the new one: the store that held the old one goes on.
    writeFileSync(ctx.passphraseFile!, `${fresh}\n`, { mode: 0o600 });
    expect((await s.get('svc', 'a'))?.value.toString()).toBe(CANARY);
    await s.set({ service: 'svc', account: 'b', value: Buffer.from('second') });
    expect((await (await open(ctx)).list()).map((i) => i.account)).toEqual(['a', 'b']);
  });

  it('after a rekey, a store whose passphrase came from a pipe says to restart it, not that the vault is damaged', async () => {
    const ctx = context();
    await (await open(ctx)).set({ service: 'svc', account: 'a', value: Buffer.from(CANARY) });
    const fifo = join(ctx.dir, 'pipe-once');
    expect(spawnSync('mkfifo', ['-m', '600', fifo]).status).toBe(0);
    // A read end of our own keeps what the writer wrote in the pipe until the store opens it, whenever
    // that is: a writer that had not opened the pipe yet when the store read it would give nothing.
    const holder = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const writer = spawnSync('sh', ['-c', 'printf "%s\\n" "$P" > "$F"'], {
        env: { F: fifo, P: PASSPHRASE, PATH: process.env.PATH },
      });
      expect(writer.status, writer.stderr.toString()).toBe(0);
      const piped = await open({ ...ctx, passphraseFile: fifo });
      expect((await piped.get('svc', 'a'))?.value.toString()).toBe(CANARY);
      await rekeyVault(ctx, async () => Buffer.from('a brand new passphrase'));
      const err = await caught(piped.get('svc', 'a'));
      expect(err).toBeInstanceOf(LockedError);
      expect(err.message).toContain(`the pipe ${fifo}`);
      expect(err.hint).toContain('restart the agent (the process that read it) with the new passphrase');
    } finally {
      closeSync(holder);
    }
  });

  it('close() while a passphrase pipe is silent ends the wait: the read fails as locked, nothing hangs', async () => {
    const ctx = context();
    await (await open(ctx)).set({ service: 'svc', account: 'a', value: Buffer.from(CANARY) });
    const fifo = join(ctx.dir, 'pipe');
    // Holds the pipe open for writing and never writes: a password manager waiting on its own unlock.
    const writer = spawn('sh', ['-c', 'mkfifo -m 600 "$F" && exec 3<>"$F" && echo ready && read x'], {
      env: { F: fifo, PATH: process.env.PATH },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      await new Promise((resolve) => writer.stdout.once('data', resolve));
      const piped = await backend.open({ ...ctx, passphraseFile: fifo });
      const reading = caught(piped.get('svc', 'a'));
      await new Promise((resolve) => setImmediate(resolve));
      await piped.close();
      const err = await reading;
      expect(err).toBeInstanceOf(LockedError);
      expect(err.message).toContain(`stopped waiting for the passphrase pipe ${fifo}`);
    } finally {
      writer.kill();
    }
  });

  it('round trips binary values and metadata; update keeps createdAt; delete; list', async () => {
    const ctx = context();
    const s = await open(ctx);
    expect(await s.get('svc', 'nobody')).toBeUndefined();
    expect(await s.list()).toEqual([]);

    const first = await s.set({ service: 'svc', account: 'bin', value: BINARY });
    const expiresAt = '2030-01-01T00:00:00.000Z';
    await s.set({
      service: 'svc',
      account: 'tok',
      value: Buffer.from('t'),
      kind: 'token',
      expiresAt,
      scope: 'repo',
      label: 'L',
    });
    await s.set({ service: 'other', account: 'x', value: Buffer.from('x') });
    expect((await s.get('svc', 'bin'))?.value.equals(BINARY)).toBe(true);
    expect(await s.get('svc', 'tok')).toMatchObject({ kind: 'token', expiresAt, scope: 'repo', label: 'L' });

    await new Promise((r) => setTimeout(r, 5));
    const second = await s.set({ service: 'svc', account: 'bin', value: Buffer.from('two') });
    expect(second.createdAt).toBe(first.createdAt);
    expect(second.updatedAt > first.updatedAt).toBe(true);

    // A second, independent instance reads what the first wrote.
    const again = await open(ctx);
    expect((await again.get('svc', 'bin'))?.value.toString()).toBe('two');
    const listed = await again.list({ service: 'svc' });
    expect(listed.map((m) => m.account).sort()).toEqual(['bin', 'tok']);
    expect(listed.every((m) => !('value' in m))).toBe(true);
    // Sorted by service, then account, like the other stores, whatever the order of writing.
    const all = (await again.list()).map((m) => `${m.service}/${m.account}`);
    expect(all).toHaveLength(3);
    expect(all).toEqual([...all].sort((a, b) => a.localeCompare(b)));

    expect(await again.delete('svc', 'bin')).toBe(true);
    expect(await again.delete('svc', 'bin')).toBe(false);
    expect(await s.get('svc', 'bin')).toBeUndefined();
    expect(await s.list()).toHaveLength(2);
  });

  it('creates the directory 0700 and the vault and lock files 0600, whatever the umask', async () => {
    const ctx = context();
    const old = process.umask(0);
    try {
      await (await open(ctx)).set({ service: 's', account: 'a', value: Buffer.from('v') });
    } finally {
      process.umask(old);
    }
    expect(statSync(ctx.paths.data).mode & 0o777).toBe(0o700);
    expect(statSync(vaultPath(ctx)).mode & 0o777).toBe(0o600);
    expect(statSync(join(ctx.paths.data, 'vault.lock')).mode & 0o777).toBe(0o600);
    expect(tempFiles(ctx)).toEqual([]);
  });

  it('a vault directory that cannot be created is "unavailable" naming it, not an internal error', async () => {
    const ctx = context();
    // The data directory's parent is a dangling symlink (a dotfiles link to an unmounted disk, say).
    const dangling = join(ctx.dir, 'dangling');
    symlinkSync(join(ctx.dir, 'nowhere', 'deeper'), dangling);
    const s = await open({ ...ctx, paths: { ...ctx.paths, data: join(dangling, 'entraclaw') } });
    const err = await caught(s.set({ service: 's', account: 'a', value: Buffer.from('v') }));
    expect(err.code).toBe('unavailable');
    expect(err.message).toBe(`cannot create the vault directory ${join(dangling, 'entraclaw')}: ENOENT`);
    expect(err.hint).toMatch(/missing or a dangling symlink/);
  });

  it('refuses reads, not only writes, from a vault directory others can write; doctor says so', async () => {
    const ctx = context();
    const s = await open(ctx);
    await s.set({ service: 's', account: 'a', value: Buffer.from('v') });
    // Read once first: a store that served the last read from memory must still see the chmod.
    expect((await s.get('s', 'a'))?.value.toString()).toBe('v');
    chmodSync(ctx.paths.data, 0o777);
    try {
      const err = await caught(s.get('s', 'a'));
      expect(err.code).toBe('unavailable');
      expect(err.message).toContain(`vault directory ${ctx.paths.data} is writable by group or others`);
      expect(err.hint).toBe(`run: chmod 700 ${ctx.paths.data}`);
      expect(await backend.probe(ctx)).toMatchObject({ available: false, reason: /writable by group/ });
    } finally {
      chmodSync(ctx.paths.data, 0o700);
    }
  });

  it('a FIFO planted at the vault path is refused as not a file, never waited on', async () => {
    const ctx = context();
    const s = await open(ctx);
    await s.set({ service: 's', account: 'a', value: Buffer.from('v') });
    unlinkSync(vaultPath(ctx));
    expect(spawnSync('mkfifo', ['-m', '600', vaultPath(ctx)]).status).toBe(0);
    const err = await caught(s.get('s', 'a'));
    expect(err.code).toBe('unavailable');
    expect(err.message).toBe(`vault ${vaultPath(ctx)} is not a regular file`);
    expect(await backend.probe(ctx)).toMatchObject({ available: false, reason: /is not a regular file/ });
  });

  it('refuses a vault that group or others can read, and says which chmod to run', async () => {
    const ctx = context();
    const s = await open(ctx);
    await s.set({ service: 's', account: 'a', value: Buffer.from('v') });
    expect((await s.get('s', 'a'))?.value.toString()).toBe('v');
    chmodSync(vaultPath(ctx), 0o640);
    const err = await caught(backend.open(ctx));
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain(`vault ${vaultPath(ctx)} is accessible to group or others`);
    expect(err.hint).toBe(`run: chmod 600 ${vaultPath(ctx)}`);
    await expect(s.get('s', 'a')).rejects.toMatchObject({ code: 'unavailable' });
    await expect(s.set({ service: 's', account: 'b', value: Buffer.from('v') })).rejects.toMatchObject({
      code: 'unavailable',
    });
  });

  it('without a passphrase: an absent vault reads as empty, writes and an existing vault are locked', async () => {
    const ctx = context();
    const bare: StoreContext = { ...ctx, passphraseFile: undefined };
    const s = await open(bare);
    expect(await s.get('s', 'a')).toBeUndefined();
    expect(await s.list()).toEqual([]);
    expect(await s.delete('s', 'a')).toBe(false);
    const err = await caught(s.set({ service: 's', account: 'a', value: Buffer.from('v') }));
    expect(err).toBeInstanceOf(LockedError);
    expect(err.message).toBe(
      `vault ${vaultPath(ctx)} does not exist yet, and no passphrase was given to create it with`,
    );
    expect(err.hint).toMatch(/--passphrase-file.*ENTRACLAW_PASSPHRASE_FILE.*entraclaw\.passphrase.*terminal/);
    expect(existsSync(vaultPath(ctx))).toBe(false);

    await (await open(ctx)).set({ service: 's', account: 'a', value: Buffer.from('v') });
    await expect(backend.open(bare)).rejects.toBeInstanceOf(LockedError);
    await expect(s.get('s', 'a')).rejects.toThrow(
      `vault ${vaultPath(ctx)} is locked: no passphrase available`,
    );
  });

  it('finds the passphrase via ENTRACLAW_PASSPHRASE_FILE and $CREDENTIALS_DIRECTORY', async () => {
    const ctx = context();
    await (await open(ctx)).set({ service: 's', account: 'a', value: Buffer.from('v') });
    const viaEnv = await open({
      ...ctx,
      passphraseFile: undefined,
      env: { ENTRACLAW_PASSPHRASE_FILE: ctx.passphraseFile },
    });
    expect((await viaEnv.get('s', 'a'))?.value.toString()).toBe('v');

    const creds = join(ctx.dir, 'creds');
    mkdirSync(creds, { mode: 0o700 });
    writeFileSync(join(creds, 'entraclaw.passphrase'), PASSPHRASE, { mode: 0o400 }); // no newline: same passphrase
    const viaSystemd = await open({
      ...ctx,
      passphraseFile: undefined,
      env: { CREDENTIALS_DIRECTORY: creds },
    });
    expect((await viaSystemd.get('s', 'a'))?.value.toString()).toBe('v');
  });

  it('a wrong passphrase is a LockedError; a modified vault is a CorruptError; neither returns data', async () => {
    const ctx = context();
    await (await open(ctx)).set({ service: 's', account: 'a', value: Buffer.from(CANARY) });
    const wrongFile = join(ctx.dir, 'wrong');
    writeFileSync(wrongFile, 'not the passphrase\n', { mode: 0o600 });
    const wrong = await open({ ...ctx, passphraseFile: wrongFile });
    const err = await caught(wrong.get('s', 'a'));
    expect(err).toBeInstanceOf(LockedError);
    expect(err.message).toBe(`wrong passphrase for vault ${vaultPath(ctx)}`);
    await expect(wrong.set({ service: 's', account: 'b', value: Buffer.from('v') })).rejects.toBeInstanceOf(
      LockedError,
    );

    const bytes = readFileSync(vaultPath(ctx));
    bytes[bytes.length - 17] = (bytes[bytes.length - 17] as number) ^ 0x40;
    writeFileSync(vaultPath(ctx), bytes, { mode: 0o600 });
    const bad = await caught((await open(ctx)).get('s', 'a'));
    expect(bad).toBeInstanceOf(CorruptError);
    expect(bad.message).toBe(
      `vault ${vaultPath(ctx)} failed authentication: modified or corrupt; nothing was read`,
    );
  });

  it('caches the derived key, and re-derives when the vault is re-created with a new salt', async () => {
    const ctx = context();
    const s = await open(ctx);
    await s.set({ service: 's', account: 'a', value: Buffer.from('one') });
    const reader = await open(ctx);
    let t0 = performance.now();
    await reader.get('s', 'a');
    const firstMs = performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < 10; i++) await reader.get('s', 'a');
    const tenMs = performance.now() - t0;
    console.info(`first get (with scrypt) ${firstMs.toFixed(0)} ms; ten cached gets ${tenMs.toFixed(0)} ms`);
    expect(tenMs).toBeLessThan(firstMs);

    unlinkSync(vaultPath(ctx));
    await (await open(ctx)).set({ service: 's', account: 'a', value: Buffer.from('two') });
    expect((await reader.get('s', 'a'))?.value.toString()).toBe('two');
  });

  it('serves an unchanged vault from its decrypted copy, yet sees every change to the bytes on disk', async () => {
    const ctx = context();
    const writer = await open(ctx);
    await writer.set({ service: 's', account: 'a', value: Buffer.from('one') });
    const reader = await open(ctx);
    const first = await reader.get('s', 'a');
    // The caller owns what it gets: wiping it must not reach the copy the next read is served from.
    first?.value.fill(0);
    expect((await reader.get('s', 'a'))?.value.toString()).toBe('one');

    const backup = readFileSync(vaultPath(ctx));
    await writer.set({ service: 's', account: 'a', value: Buffer.from('two') });
    expect((await reader.get('s', 'a'))?.value.toString()).toBe('two');
    // A backup restored in place with the old mtime put back: same size, inode and mtime, other bytes.
    // Only the ctime, which no one can set, tells the reader to look again.
    const before = statSync(vaultPath(ctx), { bigint: true });
    writeFileSync(vaultPath(ctx), backup, { mode: 0o600 });
    // touch, not utimes(): the mtime goes back to the nanosecond.
    const ns = before.mtimeNs;
    const at = `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
    expect(spawnSync('touch', ['-m', '-d', at, vaultPath(ctx)]).status).toBe(0);
    const after = statSync(vaultPath(ctx), { bigint: true });
    expect([after.ino, after.size, after.mtimeNs]).toEqual([before.ino, before.size, before.mtimeNs]);
    expect((await reader.get('s', 'a'))?.value.toString()).toBe('one');

    const flipped = Buffer.from(backup);
    flipped[flipped.length - 20] = (flipped[flipped.length - 20] as number) ^ 0x01;
    writeFileSync(vaultPath(ctx), flipped, { mode: 0o600 });
    await expect(reader.get('s', 'a')).rejects.toBeInstanceOf(CorruptError);
    await expect(reader.list()).rejects.toBeInstanceOf(CorruptError);
    unlinkSync(vaultPath(ctx));
    expect(await reader.get('s', 'a')).toBeUndefined();
  });

  it('a value over 1 MiB is refused with TooLargeError naming the item', async () => {
    const s = await open(context());
    const err = await caught(
      s.set({ service: 'big', account: 'blob', value: Buffer.alloc(1024 * 1024 + 1, 0x41) }),
    );
    expect(err.code).toBe('too_large');
    expect(err.message).toContain('big/blob');
    await s.set({ service: 'big', account: 'ok', value: Buffer.alloc(1024 * 1024, 0x41) });
    expect((await s.get('big', 'ok'))?.value.length).toBe(1024 * 1024);
  });

  it('a temp file left by a crashed writer does not break the next write, which removes it', async () => {
    const ctx = context();
    const s = await open(ctx);
    await s.set({ service: 's', account: 'a', value: Buffer.from('v') });
    const leftover = join(ctx.paths.data, '.vault.ecv.0123456789abcdef.tmp');
    writeFileSync(leftover, 'half a vault', { mode: 0o600 });
    await s.set({ service: 's', account: 'b', value: Buffer.from('w') });
    expect(existsSync(leftover)).toBe(false);
    expect((await s.list()).length).toBe(2);
  });

  it('kill -9 at random points during 200 writes never corrupts the vault or loses an acknowledged write', async () => {
    const ctx = context();
    // A large vault keeps each write on disk long enough for kills to land inside it, not only between writes.
    const seed = Buffer.alloc(512 * 1024, 'seed');
    await (await open(ctx)).set({ service: 'seed', account: 'seed', value: seed });
    const rounds = 10;
    const kept: number[] = [];
    let leftTemp = 0;
    for (let round = 0; round < rounds; round++) {
      const prefix = `r${round}`;
      const exit = await runWriter(ctx, prefix, 200, { killAt: Math.floor(Math.random() * 60) });
      expect(exit.signal, exit.stderr).toBe('SIGKILL');
      const temps = tempFiles(ctx);
      expect(temps.length).toBeLessThanOrEqual(1);
      leftTemp += temps.length;

      const s = await open(ctx);
      const all = await s.list({ service: 'writer' });
      const mine = all.filter((m) => m.account.startsWith(`${prefix}-`)).map((m) => m.account);
      const expected = Array.from(
        { length: mine.length },
        (_, i) => `${prefix}-${String(i).padStart(3, '0')}`,
      );
      expect(mine).toEqual(expected);
      expect(mine.length).toBeGreaterThanOrEqual(exit.acked);
      if (mine.length > 0) {
        const last = mine[mine.length - 1] as string;
        expect((await s.get('writer', last))?.value.toString()).toBe(`value of ${last}`);
      }
      kept.push(mine.length);
      // Earlier rounds are untouched.
      for (let r = 0; r < round; r++) {
        expect(all.filter((m) => m.account.startsWith(`r${r}-`))).toHaveLength(kept[r] as number);
      }
      expect((await s.get('seed', 'seed'))?.value.equals(seed)).toBe(true);
    }
    console.info(
      `kill -9 rounds kept ${kept.join(', ')} items; ${leftTemp} round(s) left a temp file mid-write`,
    );
  }, 120_000);

  it('kill -9 at each step of a vault write (strace fault injection) leaves the old or the new vault, never a broken one', async (t) => {
    const strace = spawnSync('strace', ['-qq', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' });
    requireOrSkip(
      t,
      strace.status === 0
        ? undefined
        : `strace cannot run here (${(strace.stderr || strace.error?.message || '').trim()})`,
    );
    // Random kills (above) rarely land inside writeFileAtomic; here strace kills the writer on entering each
    // of its calls in turn, and its log proves which call that was.
    const ctx = context();
    const log = join(ctx.dir, 'strace.log');
    // No -f: only the main thread is traced, which is where the synchronous vault writes run, so `when=`
    // counts its calls alone (libuv's threads load modules and would shift the numbers).
    const underStrace = (...inject: string[]) => [
      'strace',
      '-qq',
      '-o',
      log,
      '-e',
      `trace=${TRACED}`,
      ...inject,
      '--',
    ];
    const SETS = 12;
    await (await open(ctx)).set({ service: 'seed', account: 'seed', value: Buffer.from('seed') });

    // A clean run names, per step and set, the call number strace's when= must pick.
    const calibration = await runWriter(ctx, 'cal', SETS, { wrap: underStrace() });
    expect(calibration.code, calibration.stderr).toBe(0);
    const plan = parseTrace(readFileSync(log, 'utf8'), ctx);
    for (const step of STEPS)
      expect(
        plan.filter((c) => c.step === step),
        step,
      ).toHaveLength(SETS);

    const kept = new Map<string, number>([['cal', SETS]]);
    const hits: string[] = [];
    let round = 0;
    for (const [i, step] of STEPS.entries()) {
      for (const set of [i, STEPS.length + i]) {
        const target = plan.find((c) => c.step === step && c.set === set)!;
        // Node's main thread makes calls of the same name that are no step (V8 schedules GC tasks with an
        // eventfd write) at points that vary from run to run, so target.nth can miss: each miss aims again
        // at the k-th step call of that name, by where it was (or how far short it fell) in the run just seen.
        const k = plan.filter((c) => c.name === target.name && c.step !== undefined).indexOf(target);
        let when = target.nth;
        let died: TracedCall | undefined;
        for (let aim = 0; aim < 12; aim++) {
          const prefix = `k${round++}`;
          const inject = `inject=${target.name}:signal=SIGKILL:when=${when}`;
          const exit = await runWriter(ctx, prefix, SETS, { wrap: underStrace('-e', inject) });
          expect(exit.signal, exit.stderr).toBe('SIGKILL');
          const trace = readFileSync(log, 'utf8');
          expect(trace.trimEnd().endsWith('+++ killed by SIGKILL +++'), trace.slice(-500)).toBe(true);
          const calls = parseTrace(trace, ctx);
          died = calls.at(-1);
          expect(died?.killed, `${inject}: ${died?.line}`).toBe(true);
          // The writer acknowledged every set before the one it died in, and none after.
          const atStep = died?.step !== undefined;
          if (atStep) expect(died?.set, died?.line).toBe(exit.acked);

          // A fresh store opens it: exactly the acknowledged sets, plus the one being written once renamed.
          const s = await open(ctx);
          const all = (await s.list({ service: 'writer' })).map((m) => m.account);
          const mine = all.filter((a) => a.startsWith(`${prefix}-`));
          const expected = (n: number) =>
            Array.from({ length: n }, (_, j) => `${prefix}-${String(j).padStart(3, '0')}`);
          expect(mine).toEqual(expected(mine.length));
          if (atStep)
            expect(mine, died?.line).toHaveLength(exit.acked + (died?.step === 'fsync-dir' ? 1 : 0));
          else expect([exit.acked, exit.acked + 1]).toContain(mine.length);
          if (mine.length > 0) {
            const last = mine.at(-1) as string;
            expect((await s.get('writer', last))?.value.toString()).toBe(`value of ${last}`);
          }
          // Earlier rounds are untouched.
          for (const [p, n] of kept)
            expect(
              all.filter((a) => a.startsWith(`${p}-`)),
              p,
            ).toHaveLength(n);
          kept.set(prefix, mine.length);
          // A temp file is left exactly when the kill came between creating it and renaming it; the next
          // write sweeps it.
          if (atStep)
            expect(tempFiles(ctx), died?.line).toHaveLength(TEMP_LEFT.includes(died?.step as Step) ? 1 : 0);
          await s.set({ service: 'after', account: prefix, value: Buffer.from(prefix) });
          expect(tempFiles(ctx)).toEqual([]);
          await s.close();
          if (died?.step === step && died.set === set) break;
          const steps = calls.filter((c) => c.name === target.name && c.step !== undefined);
          when = steps[k]?.nth ?? when + k + 1 - steps.length;
        }
        expect(`${died?.step} of set ${died?.set}`, died?.line).toBe(`${step} of set ${set}`);
        hits.push(`${step}@${set}`);
      }
    }
    expect(hits).toHaveLength(STEPS.length * 2);
    console.info(`strace killed the writer at ${hits.join(', ')} in ${round} runs`);
  }, 120_000);

  it('concurrent writer processes lose no item, from the first write of a new vault on', async () => {
    const ctx = context();
    const prefixes = ['a', 'b', 'c'];
    let go = () => {};
    const start = new Promise<void>((resolve) => {
      go = resolve;
    });
    let ready = 0;
    const onReady = () => {
      if (++ready === prefixes.length) go();
    };
    // Released together, so their writes interleave (and race to create the vault, each with its own salt).
    const writers = prefixes.map((prefix) => runWriter(ctx, prefix, 40, { ready: onReady, start }));
    for (const exit of await Promise.all(writers)) expect(exit.code, exit.stderr).toBe(0);
    const s = await open(ctx);
    const accounts = (await s.list()).map((m) => m.account).sort();
    const expected = prefixes.flatMap((p) =>
      Array.from({ length: 40 }, (_, i) => `${p}-${String(i).padStart(3, '0')}`),
    );
    expect(accounts).toEqual(expected);
    expect((await s.get('writer', 'b-039'))?.value.toString()).toBe('value of b-039');
    expect(tempFiles(ctx)).toEqual([]);
  }, 60_000);

  it('ENOSPC leaves the previous vault intact, names the path and errno, and leaves no temp file', async (t) => {
    requireOrSkip(t, rootOnly('mounting a 64 KiB tmpfs'));
    const ctx = context();
    const mnt = join(ctx.dir, 'small');
    mkdirSync(mnt);
    const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt], {
      encoding: 'utf8',
    });
    // Under CI, as root, a mount that fails is a failure, not a silent skip of this case.
    requireOrSkip(
      t,
      mount.status === 0
        ? undefined
        : `cannot mount a 64k tmpfs here (${(mount.stderr || mount.error?.message || '').trim()}); needs root`,
    );
    try {
      ctx.paths.data = join(mnt, 'entraclaw');
      const s = await open(ctx);
      await s.set({ service: 's', account: 'canary', value: Buffer.from(CANARY) });
      const before = readFileSync(vaultPath(ctx));

      // A value bigger than the whole filesystem: the temp file cannot be written.
      const big = await caught(
        s.set({ service: 's', account: 'big', value: Buffer.alloc(200 * 1024, CANARY) }),
      );
      expect(big.code).toBe('unavailable');
      expect(big.message).toBe(
        `cannot write ${vaultPath(ctx)}: ENOSPC (no space left on device); the previous contents are unchanged`,
      );
      expect(readFileSync(vaultPath(ctx)).equals(before)).toBe(true);
      expect(tempFiles(ctx)).toEqual([]);

      // A full disk: even a small update fails the same way, and works again once there is room.
      const filler = join(mnt, 'filler');
      try {
        for (;;) appendFileSync(filler, Buffer.alloc(4096));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      const full = await caught(s.set({ service: 's', account: 'small', value: Buffer.alloc(8192, 'x') }));
      expect(full.message).toContain('ENOSPC');
      expect(tempFiles(ctx)).toEqual([]);
      expect((await (await open(ctx)).get('s', 'canary'))?.value.toString()).toBe(CANARY);
      for (const e of [big, full])
        expect(JSON.stringify({ m: e.message, h: e.hint, s: e.stack })).not.toContain(CANARY);

      rmSync(filler);
      await s.set({ service: 's', account: 'small', value: Buffer.from('fits') });
      expect((await s.list()).map((m) => m.account).sort()).toEqual(['canary', 'small']);
    } finally {
      for (const st of stores.splice(0)) await st.close();
      spawnSync('umount', [mnt]);
    }
  });

  it('no error message or hint ever contains a stored secret or the passphrase', async () => {
    const ctx = context();
    const s = await open(ctx);
    await s.set({ service: 's', account: 'a', value: Buffer.from(CANARY) });
    const errors: EntraclawError[] = [];
    const wrongFile = join(ctx.dir, 'wrong');
    writeFileSync(wrongFile, `${CANARY}-as-passphrase\n`, { mode: 0o600 });
    errors.push(await caught((await open({ ...ctx, passphraseFile: wrongFile })).get('s', 'a')));
    errors.push(
      await caught(s.set({ service: 's', account: 'b', value: Buffer.alloc(2 * 1024 * 1024, CANARY) })),
    );
    const loose = join(ctx.dir, 'loose');
    writeFileSync(loose, `${CANARY}\n`, { mode: 0o644 });
    errors.push(await caught((await open({ ...ctx, passphraseFile: loose })).get('s', 'a')));
    const bytes = readFileSync(vaultPath(ctx));
    bytes[20] = (bytes[20] as number) ^ 1;
    writeFileSync(vaultPath(ctx), bytes, { mode: 0o600 });
    errors.push(await caught((await open(ctx)).get('s', 'a')));
    chmodSync(vaultPath(ctx), 0o604);
    errors.push(await caught(backend.open(ctx)));
    expect(errors.map((e) => e.code)).toEqual(['locked', 'too_large', 'usage', 'corrupt', 'unavailable']);
    for (const e of errors) {
      const text = JSON.stringify({ m: e.message, h: e.hint, s: e.stack, c: String(e.cause ?? '') });
      expect(text).not.toContain(CANARY);
      expect(text).not.toContain(PASSPHRASE);
    }
  });

  it('probe is available and says where the vault is and where the passphrase comes from', async () => {
    const ctx = context();
    const p = await backend.probe(ctx);
    expect(p).toMatchObject({
      name: 'encrypted-file',
      available: true,
      persistence: 'until-delete',
      readOnly: false,
    });
    expect(p.reason).toContain(`no vault yet (it will be created at ${vaultPath(ctx)})`);
    expect(p.reason).toContain(`passphrase from ${ctx.passphraseFile}`);
    expect(p.boundary).toMatch(/^Sealed vault: AES-256-GCM under a scrypt-derived key/);
    await (await open(ctx)).set({ service: 's', account: 'a', value: Buffer.from('v') });
    const q = await backend.probe({ ...ctx, passphraseFile: undefined });
    expect(q.reason).toContain(`vault at ${vaultPath(ctx)}`);
    expect(q.reason).toContain('no passphrase source is configured');
  });

  it('probe says "not available" for what every command would fail on: a shared passphrase file, a damaged vault', async () => {
    const ctx = context();
    await (await open(ctx)).set({ service: 's', account: 'a', value: Buffer.from('v') });
    chmodSync(ctx.passphraseFile!, 0o644);
    try {
      expect(await backend.probe(ctx)).toMatchObject({
        available: false,
        reason: /accessible to group or others/,
      });
    } finally {
      chmodSync(ctx.passphraseFile!, 0o600);
    }
    writeFileSync(vaultPath(ctx), 'garbage\n', { mode: 0o600 });
    expect(await backend.probe(ctx)).toMatchObject({ available: false, reason: /not an Entraclaw vault/ });
  });
});
