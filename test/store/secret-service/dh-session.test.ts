import { createHmac, getDiffieHellman } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DecryptError,
  decryptSecret,
  encryptSecret,
  sessionKey,
  startDhExchange,
} from '../../../src/store/secret-service/dh-session.js';

// RFC 5869 by hand, so the test does not share a code path with the implementation.
function hkdfSha256NoSalt(ikm: Buffer, length: number): Buffer {
  const prk = createHmac('sha256', Buffer.alloc(32)).update(ikm).digest();
  return createHmac('sha256', prk)
    .update(Buffer.from([1]))
    .digest()
    .subarray(0, length);
}

describe('dh-ietf1024-sha256-aes128-cbc-pkcs7 session crypto', () => {
  it('agrees on one AES-128 key with a peer doing the provider side (modp2, HKDF-SHA256)', () => {
    const client = startDhExchange();
    const provider = getDiffieHellman('modp2');
    const providerPublic = provider.generateKeys();
    const clientKey = client.deriveKey(providerPublic);
    const shared = provider.computeSecret(client.publicKey);
    const padded = Buffer.concat([Buffer.alloc(128 - shared.length), shared]);
    expect(clientKey).toHaveLength(16);
    expect(clientKey.equals(hkdfSha256NoSalt(padded, 16))).toBe(true);
  });

  it('left-pads a shared secret shorter than the 128-byte prime before hashing', () => {
    const short = Buffer.from([0x01, 0x02, 0x03]);
    const full = Buffer.concat([Buffer.alloc(125), short]);
    expect(sessionKey(short).equals(sessionKey(full))).toBe(true);
    expect(sessionKey(short).equals(hkdfSha256NoSalt(full, 16))).toBe(true);
    expect(sessionKey(short).equals(hkdfSha256NoSalt(short, 16))).toBe(false);
  });

  it('encrypts with a fresh IV and PKCS#7 padding, and decrypts back to the same bytes', () => {
    const key = sessionKey(Buffer.from('k'));
    const plaintext = Buffer.from([0x00, 0xff, 0xc3, 0x28, ...Buffer.alloc(12, 0x41)]);
    const a = encryptSecret(key, plaintext);
    const b = encryptSecret(key, plaintext);
    expect(a.iv).toHaveLength(16);
    expect(a.iv.equals(b.iv)).toBe(false);
    expect(a.ciphertext).toHaveLength(32);
    expect(a.ciphertext.includes(plaintext)).toBe(false);
    expect(decryptSecret(key, a.iv, a.ciphertext).equals(plaintext)).toBe(true);
  });

  it('throws DecryptError for a wrong key or a malformed IV, never returning garbage', () => {
    const { iv, ciphertext } = encryptSecret(sessionKey(Buffer.from('right')), Buffer.from('secret value'));
    const wrong = sessionKey(Buffer.from('wrong'));
    expect(() => decryptSecret(wrong, iv, ciphertext)).toThrow(DecryptError);
    expect(() => decryptSecret(sessionKey(Buffer.from('right')), iv.subarray(0, 8), ciphertext)).toThrow(
      DecryptError,
    );
  });
});
