import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withFileLock } from '../../src/lib/file-lock.js';

const BUILT = new URL('../../dist/lib/file-lock.js', import.meta.url).href;
const dirs: string[] = [];
const children: ChildProcess[] = [];

/** A separate process that takes the lock, says "held", and keeps it until killed. */
async function holder(lock: string): Promise<ChildProcess> {
  const code = `import { withFileLock } from ${JSON.stringify(BUILT)};
    await withFileLock(${JSON.stringify(lock)}, async () => { console.log('held'); await new Promise(() => setInterval(() => {}, 1000)); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await once(child.stdout as NodeJS.ReadableStream, 'data');
  return child;
}

function lockPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'entraclaw-lock-'));
  dirs.push(dir);
  return join(dir, 'test.lock');
}

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('withFileLock', () => {
  it('excludes another process, times out as unavailable, and is freed when the holder is killed -9', async () => {
    const lock = lockPath();
    const child = await holder(lock);
    expect(statSync(lock).mode & 0o777).toBe(0o600);
    await expect(withFileLock(lock, async () => 'got it', { timeoutMs: 300 })).rejects.toMatchObject({
      code: 'unavailable',
      message: `timed out after 300 ms waiting for the lock ${lock}, held by pid ${child.pid} (node); nothing was changed`,
    });
    const waiting = withFileLock(lock, async () => 'got it', { timeoutMs: 10_000 });
    child.kill('SIGKILL');
    expect(await waiting).toBe('got it');
  });

  it('tells a waiter who holds the lock, once, and still takes it when the holder is done', async () => {
    const lock = lockPath();
    const child = await holder(lock);
    const told: string[] = [];
    let noticed: () => void = () => {};
    const notice = new Promise<void>((r) => {
      noticed = r;
    });
    const waiting = withFileLock(lock, async () => 'got it', {
      onWait: (who) => {
        told.push(who);
        noticed();
      },
    });
    await notice;
    child.kill('SIGKILL');
    expect(await waiting).toBe('got it');
    expect(told).toEqual([`pid ${child.pid} (node)`]);
  });

  it('serialises callers in one process and releases the lock when fn throws', async () => {
    const lock = lockPath();
    const order: string[] = [];
    const slow = withFileLock(lock, async () => {
      order.push('a start');
      await new Promise((r) => setTimeout(r, 50));
      order.push('a end');
      throw new Error('boom');
    });
    const fast = withFileLock(lock, async () => order.push('b'));
    await expect(slow).rejects.toThrow('boom');
    await fast;
    expect(order).toEqual(['a start', 'a end', 'b']);
    expect(await withFileLock(lock, async () => 'free', { timeoutMs: 100 })).toBe('free');
  });
});

describe('a lock that cannot be taken', () => {
  it('names the lock file and the errno, and says what to check', async () => {
    const lock = join(lockPath(), '..', 'missing-dir', 'test.lock');
    await expect(withFileLock(lock, async () => 'ran')).rejects.toMatchObject({
      code: 'unavailable',
      message: `cannot lock ${lock}: ENOENT`,
      hint: expect.stringMatching(/missing-dir exists and is a writable directory of yours/),
    });
  });

  it('a link or a directory where the lock file goes is named as such, with the command that removes it', async () => {
    // The directory is fine here: a hint that only says to check it sends the user nowhere.
    const link = lockPath();
    symlinkSync(join(link, '..', 'elsewhere'), link);
    await expect(withFileLock(link, async () => 'ran')).rejects.toMatchObject({
      code: 'unavailable',
      message: `cannot lock ${link}: ELOOP (it is a symbolic link, which is never followed)`,
      hint: `remove it (a regular file is made in its place): rm ${link}`,
    });
    const dir = lockPath();
    mkdirSync(dir);
    await expect(withFileLock(dir, async () => 'ran')).rejects.toMatchObject({
      code: 'unavailable',
      message: `cannot lock ${dir}: EISDIR (it is a directory)`,
      hint: `remove it (a regular file is made in its place): rmdir ${dir}`,
    });
  });
});
