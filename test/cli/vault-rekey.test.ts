import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { isolatedEnv, runCli, runCliInPty } from '../support/cli.js';
import { randomName } from '../support/context.js';

// `entraclaw vault rekey` as a user runs it: a real vault, real processes, a canary that must not leak.
const root = mkdtempSync(join(tmpdir(), 'entraclaw-rekey-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const CANARY = `CANARY-${randomName('rekey')}`;
const OLD = 'the old vault passphrase';
const NEW = 'a brand new vault passphrase';

/** A fresh home with a vault holding two items under OLD; the passphrase files and the env. */
function vaultHome() {
  const dir = mkdtempSync(join(root, 'home-'));
  const oldFile = join(dir, 'old');
  const newFile = join(dir, 'new');
  writeFileSync(oldFile, `${OLD}\n`, { mode: 0o600 });
  writeFileSync(newFile, `${NEW}\n`, { mode: 0o600 });
  const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: oldFile });
  const vault = join(resolvePaths(env).data, 'vault.ecv');
  for (const account of ['a', 'b']) {
    const r = runCli(
      ['secret', 'set', 'svc', account, '--store', 'encrypted-file'],
      env,
      `${CANARY}-${account}`,
    );
    expect(r.status, r.stderr).toBe(0);
  }
  return { dir, oldFile, newFile, env, vault };
}

const get = (env: NodeJS.ProcessEnv, account: string, passFile?: string) =>
  runCli(
    [
      'secret',
      'get',
      'svc',
      account,
      '--store',
      'encrypted-file',
      ...(passFile ? ['--passphrase-file', passFile] : []),
    ],
    env,
  );

describe('entraclaw vault rekey', () => {
  it('re-encrypts every item under the new passphrase; the old one no longer opens the vault', () => {
    const h = vaultHome();
    const before = readFileSync(h.vault);
    const r = runCli(['vault', 'rekey', '--new-passphrase-file', h.newFile, '--json'], h.env);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toEqual({ vault: h.vault, items: 2, rekeyed: true });
    // A fresh salt: the whole file is new, not only the key check.
    expect(readFileSync(h.vault).subarray(0, 64).equals(before.subarray(0, 64))).toBe(false);
    const stale = get(h.env, 'a');
    expect(stale.status).toBe(EXIT_CODES.locked);
    for (const account of ['a', 'b']) {
      const now = get(h.env, account, h.newFile);
      expect(now.status, now.stderr).toBe(0);
      expect(now.stdout.toString()).toBe(`${CANARY}-${account}`);
    }
    for (const out of [r.stdout.toString(), r.stderr, stale.stderr]) {
      expect(out).not.toContain(CANARY);
      expect(out).not.toContain(OLD);
      expect(out).not.toContain(NEW);
    }
  });

  it('says what to do next in plain text', () => {
    const h = vaultHome();
    const r = runCli(['vault', 'rekey', '--new-passphrase-file', h.newFile], h.env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`re-encrypted ${h.vault} (2 items) under the new passphrase`);
    expect(r.stderr).toContain('ENTRACLAW_PASSPHRASE_FILE');
  });

  it('a wrong current passphrase, a short new one or no way to ask for one changes nothing', () => {
    const h = vaultHome();
    const before = readFileSync(h.vault);
    const wrong = join(h.dir, 'wrong');
    writeFileSync(wrong, 'not the passphrase at all\n', { mode: 0o600 });
    const locked = runCli(
      ['vault', 'rekey', '--passphrase-file', wrong, '--new-passphrase-file', h.newFile],
      h.env,
    );
    expect(locked.status, locked.stderr).toBe(EXIT_CODES.locked);
    const short = join(h.dir, 'short');
    writeFileSync(short, 'abc\n', { mode: 0o600 });
    const tooShort = runCli(['vault', 'rekey', '--new-passphrase-file', short], h.env);
    expect(tooShort.status).toBe(EXIT_CODES.usage);
    expect(tooShort.stderr).toContain('the new passphrase needs at least 8 bytes; the vault was not changed');
    const noTty = runCli(['vault', 'rekey'], h.env);
    expect(noTty.status).toBe(EXIT_CODES.usage);
    expect(noTty.stderr).toContain('no new passphrase given, and there is no terminal to ask for one');
    expect(noTty.stderr).toContain('--new-passphrase-file');
    expect(readFileSync(h.vault).equals(before)).toBe(true);
    expect(get(h.env, 'a').stdout.toString()).toBe(`${CANARY}-a`);
  });

  it('an empty --passphrase-file or --new-passphrase-file is a usage error naming it, not "none given"', () => {
    const h = vaultHome();
    const before = readFileSync(h.vault);
    for (const args of [
      ['vault', 'rekey', '--passphrase-file=', '--new-passphrase-file', h.newFile],
      ['vault', 'rekey', '--new-passphrase-file='],
    ]) {
      const r = runCli(args, h.env);
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain(`entraclaw: ${args.find((a) => a.endsWith('='))!.slice(0, -1)} is empty`);
    }
    expect(readFileSync(h.vault)).toEqual(before);
    // Store commands likewise: not ENTRACLAW_PASSPHRASE_FILE in its place.
    for (const args of [
      ['secret', 'get', 'svc', 'a', '--store', 'encrypted-file', '--passphrase-file', ''],
      ['secret', 'ls', '--passphrase-file='],
    ]) {
      const r = runCli(args, h.env);
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain('entraclaw: --passphrase-file is empty');
      expect(r.stdout.toString()).not.toContain(CANARY);
    }
  });

  it('asks twice on a terminal; a mismatch changes nothing', () => {
    const h = vaultHome();
    const before = readFileSync(h.vault);
    const mismatch = runCliInPty(['vault', 'rekey'], h.env, [`${NEW}\r`, 'something else\r']);
    expect(mismatch.status, mismatch.output).toBe(EXIT_CODES.usage);
    expect(mismatch.output).toContain('the passphrases did not match; the vault was not changed');
    expect(readFileSync(h.vault).equals(before)).toBe(true);
    // A current passphrase that does not open the vault is found before the new one is asked for.
    const wrong = join(h.dir, 'wrong');
    writeFileSync(wrong, 'not the passphrase at all\n', { mode: 0o600 });
    const early = runCliInPty(['vault', 'rekey', '--passphrase-file', wrong], h.env, []);
    expect(early.status, early.output).toBe(EXIT_CODES.locked);
    expect(early.output).not.toContain('New passphrase');
    const typed = runCliInPty(['vault', 'rekey'], h.env, [`${NEW}\r`, `${NEW}\r`]);
    expect(typed.status, typed.output).toBe(0);
    expect(get(h.env, 'b', h.newFile).stdout.toString()).toBe(`${CANARY}-b`);
  });

  it('no vault yet is not found (exit 3), and none is created', () => {
    const dir = mkdtempSync(join(root, 'empty-'));
    const newFile = join(dir, 'new');
    writeFileSync(newFile, `${NEW}\n`, { mode: 0o600 });
    const r = runCli(['vault', 'rekey', '--new-passphrase-file', newFile], isolatedEnv(dir));
    expect(r.status, r.stderr).toBe(EXIT_CODES.not_found);
    expect(r.stderr).toContain('there is no vault at');
    expect(runCli(['secret', 'ls', '--store', 'encrypted-file'], isolatedEnv(dir)).status).toBe(0);
  });
});
