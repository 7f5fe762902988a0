import { createCipheriv, createDecipheriv, getDiffieHellman, hkdfSync, randomBytes } from 'node:crypto';

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

/** Starts a DH exchange with a fresh private key. */
export function startDhExchange(): DhExchange {
  const dh = getDiffieHellman('modp2');
  const publicKey = dh.generateKeys();
  return {
    publicKey,
    deriveKey(peerPublicKey) {
      return sessionKey(dh.computeSecret(peerPublicKey));
    },
  };
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
