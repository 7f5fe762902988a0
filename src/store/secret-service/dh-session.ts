import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyPairKeyObjectResult,
  randomBytes,
} from 'node:crypto';

// The Secret Service spec's only encrypted transport: IETF 1024-bit MODP group (RFC 2409 group 2),
// the shared secret left-padded to the prime's length, HKDF-SHA256 with no salt and no info down to
// an AES-128 key, then AES-128-CBC with PKCS#7 padding and a fresh IV per secret.
/** The session algorithm name passed to OpenSession. */
export const DH_ALGORITHM = 'dh-ietf1024-sha256-aes128-cbc-pkcs7';
const PRIME_BYTES = 128;
const KEY_BYTES = 16;
const IV_BYTES = 16;

/** Our half of a DH exchange: send `publicKey`, then derive the AES key from the provider's reply. */
export interface DhExchange {
  publicKey: Buffer;
  deriveKey(peerPublicKey: Buffer): Buffer;
}

/**
 * Starts a DH exchange with a fresh private key. The key pair comes from generateKeyPairSync, not
 * getDiffieHellman('modp2'): that one re-verifies the well-known prime (OpenSSL DH_check) every time it
 * is called, ~50 ms, which every `entraclaw secret get` on this store used to pay (bench/stores.mjs).
 */
export function startDhExchange(): DhExchange {
  const { publicKey, privateKey } = generateDhKeyPair('modp2');
  const { algorithm, value } = splitDhSpki(publicKey.export({ type: 'spki', format: 'der' }));
  return {
    publicKey: leftPad(value, PRIME_BYTES),
    deriveKey(peerPublicKey) {
      const peer = createPublicKey({ key: dhSpki(algorithm, peerPublicKey), format: 'der', type: 'spki' });
      return sessionKey(diffieHellman({ privateKey, publicKey: peer }));
    },
  };
}

// Node supports generateKeyPairSync('dh', { group }) since 13.9; @types/node 20 lacks that overload.
const generateDhKeyPair = (group: string): KeyPairKeyObjectResult =>
  (generateKeyPairSync as unknown as (type: 'dh', options: { group: string }) => KeyPairKeyObjectResult)(
    'dh',
    { group },
  );

// The wire carries bare public values (big-endian integers); node:crypto takes DH public keys as DER
// SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier (OID + p, g), BIT STRING { INTEGER y } }. We take
// the AlgorithmIdentifier from our own key, so the peer's key is in exactly our group.

/** Reads a DER length at `at`; returns it and where the content starts. */
function derLength(der: Buffer, at: number): { length: number; start: number } {
  const first = der[at]!;
  if (first < 0x80) return { length: first, start: at + 1 };
  const bytes = first & 0x7f;
  let length = 0;
  for (let i = 1; i <= bytes; i++) length = length * 256 + der[at + i]!;
  return { length, start: at + 1 + bytes };
}

/** A DER element: tag, length, content. */
function derElement(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), content]);
}

/** Splits our SPKI into its AlgorithmIdentifier element and the public value y (unsigned, minimal). */
function splitDhSpki(spki: Buffer): { algorithm: Buffer; value: Buffer } {
  const outer = derLength(spki, 1);
  const alg = derLength(spki, outer.start + 1);
  const algEnd = alg.start + alg.length;
  const bits = derLength(spki, algEnd + 1);
  // BIT STRING content: one "unused bits" byte (0), then the INTEGER y.
  const int = derLength(spki, bits.start + 2);
  const y = spki.subarray(int.start, int.start + int.length);
  return { algorithm: spki.subarray(outer.start, algEnd), value: stripZeros(y) };
}

/** An SPKI for the public value `y` in the group named by `algorithm`. */
function dhSpki(algorithm: Buffer, y: Buffer): Buffer {
  const value = stripZeros(y);
  if (value.length > PRIME_BYTES) throw new Error('the peer public key is larger than the DH prime');
  // A DER INTEGER is signed: a value with its top bit set needs a leading zero byte.
  const integer = derElement(
    0x02,
    (value[0] ?? 0) & 0x80 || value.length === 0 ? Buffer.concat([Buffer.from([0]), value]) : value,
  );
  const bitString = derElement(0x03, Buffer.concat([Buffer.from([0]), integer]));
  return derElement(0x30, Buffer.concat([algorithm, bitString]));
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

function leftPad(b: Buffer, length: number): Buffer {
  const out = Buffer.alloc(Math.max(length, b.length));
  b.copy(out, out.length - b.length);
  return out;
}

/** The AES key both sides derive from a raw DH shared secret. */
export function sessionKey(sharedSecret: Buffer): Buffer {
  // OpenSSL drops leading zero bytes of the secret; libsecret and gnome-keyring hash the full-width one.
  const padded = Buffer.alloc(PRIME_BYTES);
  sharedSecret.copy(padded, PRIME_BYTES - sharedSecret.length);
  return Buffer.from(hkdfSync('sha256', padded, Buffer.alloc(0), Buffer.alloc(0), KEY_BYTES));
}

/** Encrypts one secret for the wire: the IV goes in the Secret's `parameters`, the ciphertext in `value`. */
export function encryptSecret(key: Buffer, plaintext: Buffer): { iv: Buffer; ciphertext: Buffer } {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-128-cbc', key, iv);
  return { iv, ciphertext: Buffer.concat([cipher.update(plaintext), cipher.final()]) };
}

/** A secret from the provider that does not decrypt under the session key (wrong key, IV or padding). */
export class DecryptError extends Error {
  override name = 'DecryptError';
}

/** Decrypts a secret received from the provider; throws DecryptError when it does not decrypt. */
export function decryptSecret(key: Buffer, iv: Buffer, ciphertext: Buffer): Buffer {
  if (iv.length !== IV_BYTES)
    throw new DecryptError(`expected a ${IV_BYTES}-byte IV, got ${iv.length} bytes`);
  try {
    const decipher = createDecipheriv('aes-128-cbc', key, iv);
    const parts = [decipher.update(ciphertext), decipher.final()];
    const plaintext = Buffer.concat(parts);
    // Best effort: leave one copy of the secret in memory, the one the caller gets.
    for (const part of parts) part.fill(0);
    return plaintext;
  } catch (err) {
    throw new DecryptError("the secret does not decrypt with this session's key", { cause: err });
  }
}
