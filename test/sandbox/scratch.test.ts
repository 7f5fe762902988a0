// Scratch directories of sandbox runs: a run killed with SIGKILL leaves its directory, and the next run
// removes it; a live run's directory and a directory too young to be locked yet are left alone.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { sweepStaleScratch } from '../../src/sandbox/scratch.js';

const root = mkdtempSync(join(tmpdir(), 'entraclaw-scratch-test-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

// A real run's part: create and lock a scratch directory (built module), print it, then wait to be killed.
async function holder(): Promise<{ child: ChildProcess; dir: string }> {
  const mod = pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', 'sandbox', 'scratch.js')).href;
  const code = `const { createScratch } = await import(${JSON.stringify(mod)});
const s = createScratch(process.argv[1]); console.log(s.dir); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code, root], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const dir = await new Promise<string>((resolve) =>
    child.stdout!.once('data', (d) => resolve(String(d).trim())),
  );
  return { child, dir };
}

const age = (dir: string) => utimesSync(dir, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));

describe('sandbox scratch directories', () => {
  it('removes the directory of a run killed with SIGKILL, keeps a live run', async () => {
    const dead = await holder();
    const live = await holder();
    age(dead.dir);
    age(live.dir);
    dead.child.kill('SIGKILL');
    await new Promise((r) => dead.child.once('exit', r));
    expect(sweepStaleScratch(root)).toBe(1);
    expect(existsSync(dead.dir)).toBe(false);
    expect(existsSync(live.dir)).toBe(true);
  });

  it('leaves a directory too young to have its lock yet', () => {
    const young = join(root, 'entraclaw-sandbox-young');
    mkdirSync(young);
    expect(sweepStaleScratch(root)).toBe(0);
    expect(existsSync(young)).toBe(true);
    age(young);
    expect(sweepStaleScratch(root)).toBe(1);
    expect(existsSync(young)).toBe(false);
  });
});
