// `entraclaw ... | head`: when the reader closes the pipe early, the CLI ends with 141 (as a tool killed by
// SIGPIPE) and prints no stack trace; the value it was writing never shows up on stderr.
import { type StdioOptions, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-epipe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const passphrase = join(dir, 'passphrase');
writeFileSync(passphrase, 'correct horse battery staple\n', { mode: 0o600 });
const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: passphrase });
const VALUE = `canary-epipe-${'x'.repeat(400_000)}`;

/** Runs the CLI, reads a few bytes of its stdout, then closes the pipe; resolves its status and stderr. */
function readThenClose(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.stdout.once('data', () => child.stdout.destroy());
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

describe('stdout closed by the reader', () => {
  it('secret get and inject end with 141 and no stack trace', async () => {
    const set = runCli(['secret', 'set', 'big', 'acct', '--store', 'encrypted-file'], env, VALUE);
    expect(set.status, set.stderr).toBe(0);
    const template = join(dir, 'template');
    writeFileSync(template, 'A={{ entraclaw://big/acct }}\n'.repeat(4));
    for (const args of [
      ['secret', 'get', 'big', 'acct', '--store', 'encrypted-file'],
      ['inject', '-i', template, '--store', 'encrypted-file'],
    ]) {
      const r = await readThenClose(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(141);
      expect(r.stderr).not.toMatch(/EPIPE|at |canary-epipe/);
    }
  }, 60_000);
});

describe('stdout or stderr that cannot be written (/dev/full)', () => {
  const toFull = (args: string[], which: 1 | 2, input = '') => {
    const full = openSync('/dev/full', 'w');
    try {
      const stdio: StdioOptions = ['pipe', which === 1 ? full : 'pipe', which === 2 ? full : 'pipe'];
      const r = spawnSync(process.execPath, [CLI, ...args], { env, stdio, input });
      return { status: r.status, stderr: r.stderr?.toString() ?? '' };
    } finally {
      closeSync(full);
    }
  };

  it('a full stdout is one clear error, exit 1, no stack trace and no value', () => {
    runCli(['secret', 'set', 'full', 'acct', '--store', 'encrypted-file'], env, VALUE);
    for (const args of [
      ['secret', 'get', 'full', 'acct', '--store', 'encrypted-file'],
      ['secret', 'ls', '--json', '--store', 'encrypted-file'],
      ['doctor'],
    ]) {
      const r = toFull(args, 1);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toBe(
        'entraclaw: cannot write the output: ENOSPC\n  hint: check where stdout goes (a full disk? a read-only file?)\n',
      );
    }
  });

  it('a full stderr does not turn a successful set into a failure', () => {
    expect(toFull(['secret', 'set', 'full', 'other', '--store', 'encrypted-file'], 2, 'v').status).toBe(0);
    expect(
      runCli(['secret', 'get', 'full', 'other', '--store', 'encrypted-file'], env).stdout.toString(),
    ).toBe('v');
  });
});
