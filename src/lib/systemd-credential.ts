/**
 * The key types systemd writes first in an encrypted credential (src/shared/creds-util.h, every
 * CRED_KEY_IS_VALID one: host, TPM2, both, with a public key, scoped, null), as hex.
 */
const ENCRYPTED_CREDENTIAL_IDS = new Set([
  '5a1c6a86df9d4096b1d5a65e0862f19a',
  '55b9ed1d38594d43a8319d2ebb332ac6',
  '0c7cc07b117645919c4b0bea08bc20fe',
  'faf7eb9341e3412ca1a436f95a29362f',
  '93a894094874449090caf2fc93cab553',
  'ef4ac13679a9480ea7db68897f9f165d',
  'af4950a849134eb1a73846304ff30c05',
  'adbc4ca3efb64201ba881b6f2e4095ea',
  '058469daf6f54324800549da0f8ea2fb',
]);

/**
 * Whether a credential's bytes are still what `systemd-creds encrypt` wrote (binary, or base64 as it
 * writes by default): systemd decrypts them only for a unit that loads them, so outside one, a directory of
 * `.cred` files would hand out ciphertext as the secret. No real secret starts with one of these 16 bytes.
 */
export function isEncryptedCredential(value: Buffer): boolean {
  const id = (b: Buffer) => b.length >= 16 && ENCRYPTED_CREDENTIAL_IDS.has(b.subarray(0, 16).toString('hex'));
  if (id(value)) return true;
  // 24 base64 characters carry the first 18 bytes; systemd-creds may wrap its output in lines.
  const head = value.subarray(0, 64).toString('latin1').replace(/\s+/g, '').slice(0, 24);
  return /^[A-Za-z0-9+/]{24}$/.test(head) && id(Buffer.from(head, 'base64'));
}
