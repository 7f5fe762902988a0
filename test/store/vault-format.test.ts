import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { CorruptError, LockedError } from '../../src/errors.js';
import type { Item } from '../../src/store/types.js';
import {
  DEFAULT_KDF,
  decodeItems,
  deriveKey,
  encodeItems,
  type Kdf,
  newKdfParams,
  openVault,
  parseVault,
  scryptKdf,
  sealVault,
} from '../../src/store/vault-format.js';

const WHERE = '/tmp/test/vault.ecv';
const PASS = Buffer.from('correct horse battery staple');
const CANARY = 'CANARY-7f3a9c-secret';
const ITEMS: Item[] = [
  {
    service: 'github.com',
    account: 'bot',
    kind: 'token',
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-02T00:00:00.000Z',
    expiresAt: '2027-01-01T00:00:00.000Z',
    scope: 'repo',
    label: 'ci',
    value: Buffer.from(CANARY),
  },
  {
    service: 'bin',
    account: 'b',
    kind: 'key',
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    value: Buffer.from([0, 255, 128, 10, 0]),
  },
];

// Stands in for scrypt where thousands of opens must stay fast; the header still carries the real
// parameters, which the codec checks before it calls any KDF.
const fastKdf: Kdf = async (pass, { N, r, p, salt }) =>
  createHash('sha512').update(`${N}/${r}/${p}/`).update(salt).update(pass).digest();

async function seal(items: Item[], kdf: Kdf = fastKdf): Promise<Buffer> {
  const key = await deriveKey(PASS, newKdfParams(), WHERE, kdf);
  return sealVault(encodeItems(items), key);
}

/** The whole read path: parse, derive, authenticate, decode. */
async function open(bytes: Buffer, pass = PASS, kdf: Kdf = fastKdf): Promise<Item[]> {
  const vault = parseVault(bytes, WHERE);
  const key = await deriveKey(pass, vault.params, WHERE, kdf);
  return decodeItems(openVault(vault, key, WHERE), WHERE);
}

/** Replaces the header JSON (fixing only the length prefix) and keeps check, ciphertext and tag as they were. */
function rewriteHeader(bytes: Buffer, edit: (h: Record<string, unknown>) => void): Buffer {
  const len = bytes.readUInt32BE(9);
  const header = JSON.parse(bytes.subarray(13, 13 + len).toString());
  edit(header);
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.from(bytes.subarray(0, 13));
  prefix.writeUInt32BE(json.length, 9);
  return Buffer.concat([prefix, json, bytes.subarray(13 + len)]);
}

/** Asserts that opening `bytes` fails closed: a CorruptError or a wrong-passphrase LockedError, never data. */
async function expectFailsClosed(bytes: Buffer, label: string): Promise<void> {
  let items: Item[] | undefined;
  let error: unknown;
  try {
    items = await open(bytes);
  } catch (err) {
    error = err;
  }
  expect(items, `${label} returned data`).toBeUndefined();
  const ok =
    error instanceof CorruptError ||
    (error instanceof LockedError && /^wrong passphrase for vault /.test(error.message));
  expect(ok, `${label} threw ${String(error)}`).toBe(true);
  expect(`${(error as Error).message} ${(error as CorruptError).hint}`).not.toContain(CANARY);
}

describe('vault format', () => {
  it('round trips items with the real scrypt parameters, and a wrong passphrase is told apart', async () => {
    const t0 = performance.now();
    const bytes = await seal(ITEMS, scryptKdf);
    const kdfMs = performance.now() - t0;
    console.info(`scrypt N=2^17 r=8 p=1 took ${kdfMs.toFixed(0)} ms`);

    const vault = parseVault(bytes, WHERE);
    expect(vault.params).toMatchObject(DEFAULT_KDF);
    const items = await open(bytes, PASS, scryptKdf);
    expect(items).toEqual(ITEMS);
    expect(bytes.includes(Buffer.from(CANARY))).toBe(false);

    const wrong = open(bytes, Buffer.from('correct horse battery stapler'), scryptKdf);
    await expect(wrong).rejects.toBeInstanceOf(LockedError);
    await expect(wrong).rejects.toThrow(`wrong passphrase for vault ${WHERE}`);
  });

  it('uses a fresh nonce per write and keeps the salt', async () => {
    const key = await deriveKey(PASS, newKdfParams(), WHERE, fastKdf);
    const a = parseVault(sealVault(encodeItems(ITEMS), key), WHERE);
    const b = parseVault(sealVault(encodeItems(ITEMS), key), WHERE);
    expect(a.nonce.equals(b.nonce)).toBe(false);
    expect(a.params.salt.equals(b.params.salt)).toBe(true);
  });

  it('fails closed when any single byte is flipped, anywhere', async () => {
    const bytes = await seal(ITEMS.slice(1));
    expect(bytes.length).toBeLessThan(1024);
    for (let at = 0; at < bytes.length; at++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(bytes);
        bad[at] = (bad[at] as number) ^ mask;
        await expectFailsClosed(bad, `flip ^0x${mask.toString(16)} at ${at}/${bytes.length}`);
      }
    }
  });

  it('fails closed when truncated to any length or extended', async () => {
    const bytes = await seal(ITEMS.slice(1));
    for (let len = 0; len < bytes.length; len++)
      await expectFailsClosed(bytes.subarray(0, len), `truncated to ${len}`);
    await expectFailsClosed(Buffer.concat([bytes, Buffer.from([0])]), 'one byte appended');
  });

  it('a vault from a newer format version says to upgrade, not to restore a backup; an empty file says it is empty', async () => {
    const bytes = await seal(ITEMS);
    const newer = Buffer.from(bytes);
    newer[8] = 2;
    const err = await open(newer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptError);
    expect((err as CorruptError).message).toContain('written by a newer Entraclaw (vault format 2');
    expect((err as CorruptError).hint).toMatch(/^upgrade Entraclaw/);
    expect((err as CorruptError).hint).not.toContain('restore');
    const empty = await open(Buffer.alloc(0)).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(CorruptError);
    expect((empty as CorruptError).message).toContain('it is empty (0 bytes)');
  });

  it('a tampered ciphertext or tag is reported as tampering, not as a wrong passphrase', async () => {
    const bytes = await seal(ITEMS);
    const bad = Buffer.from(bytes);
    bad[bad.length - 20] = (bad[bad.length - 20] as number) ^ 1;
    await expect(open(bad)).rejects.toThrow(
      `vault ${WHERE} failed authentication: modified or corrupt; nothing was read`,
    );
    await expect(open(bad)).rejects.toBeInstanceOf(CorruptError);
  });

  it('refuses a KDF downgrade before deriving anything', async () => {
    const bytes = await seal(ITEMS);
    const kdf = vi.fn(fastKdf);
    for (const edit of [{ N: 2 ** 10 }, { r: 1 }, { N: 2 ** 16 }]) {
      const bad = rewriteHeader(bytes, (h) => Object.assign(h, edit));
      await expect(open(bad, PASS, kdf)).rejects.toThrow(/KDF parameters are below the minimum/);
      await expect(open(bad, PASS, kdf)).rejects.toBeInstanceOf(CorruptError);
    }
    expect(kdf).not.toHaveBeenCalled();
  });

  it('refuses absurd KDF parameters (a DoS header) before deriving anything', async () => {
    const bytes = await seal(ITEMS);
    const kdf = vi.fn(fastKdf);
    for (const edit of [
      { N: 2 ** 30 },
      { r: 4096 },
      { p: 10_000 },
      { N: 3 * 2 ** 17 },
      { N: 1.5 },
      { p: 0 },
    ]) {
      await expect(
        open(
          rewriteHeader(bytes, (h) => Object.assign(h, edit)),
          PASS,
          kdf,
        ),
      ).rejects.toBeInstanceOf(CorruptError);
    }
    expect(kdf).not.toHaveBeenCalled();
  });

  it('an in-range parameter change still fails closed (the header is authenticated)', async () => {
    const bytes = await seal(ITEMS);
    await expectFailsClosed(
      rewriteHeader(bytes, (h) => Object.assign(h, { N: 2 ** 18 })),
      'N raised',
    );
    await expectFailsClosed(
      rewriteHeader(bytes, (h) => Object.assign(h, { extra: 1 })),
      'field added',
    );
    await expectFailsClosed(
      rewriteHeader(bytes, (h) => Object.assign(h, { cipher: 'aes-128-gcm' })),
      'cipher swapped',
    );
  });

  it('the header bytes themselves are authenticated: same values, reordered, fail closed', async () => {
    const bytes = await seal(ITEMS);
    const reordered = rewriteHeader(bytes, (h) => {
      const { kdf } = h;
      delete h.kdf;
      h.kdf = kdf;
    });
    expect(parseVault(reordered, WHERE).params).toEqual(parseVault(bytes, WHERE).params);
    await expectFailsClosed(reordered, 'keys reordered');
  });

  it('rejects decrypted contents of a shape it never writes', () => {
    expect(() => decodeItems(Buffer.from('not json'), WHERE)).toThrow(CorruptError);
    expect(() => decodeItems(Buffer.from('{"items":{}}'), WHERE)).toThrow(CorruptError);
    expect(() => decodeItems(Buffer.from('{"items":[{"service":"a"}]}'), WHERE)).toThrow(
      /item #0 is malformed/,
    );
  });
});
