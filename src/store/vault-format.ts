import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  scrypt,
  timingSafeEqual,
} from 'node:crypto';
import { CorruptError, LockedError } from '../errors.js';
import type { Item, ItemKind } from './types.js';

// Bytes of a sealed vault, in order:
//   MAGIC (8) | VERSION (1) | header length (u32 BE) | header JSON     <- "header bytes": GCM AAD, HMAC input
//   check (32) = HMAC-SHA256(checkKey, header bytes)                   <- tells a wrong passphrase from damage
//   ciphertext | GCM tag (16)
// Both keys come from one scrypt output, so the KDF parameters in the header are bound twice: by the AAD
// and by the check. Parameters are range-checked before any key is derived, so a planted header can
// neither downgrade the KDF nor make us allocate or spin without bound.
const MAGIC = Buffer.from('ECLAWVLT', 'latin1');
const VERSION = 1;
const PREFIX_LEN = MAGIC.length + 1 + 4;
const MAX_HEADER_LEN = 1024;
const CHECK_LEN = 32;
const TAG_LEN = 16;
const NONCE_LEN = 12;
const SALT_LEN = 32;
const KEY_LEN = 32;

/** scrypt parameters written into new vaults (OWASP minimum: N=2^17, r=8, p=1). */
export const DEFAULT_KDF = { N: 2 ** 17, r: 8, p: 1 } as const;
const MIN_N = 2 ** 17;
const MIN_R = 8;
// Ceiling: 1 GiB of scrypt memory and 16x the default work; beyond that a header is an attack, not a setting.
const MAX_MEM_BYTES = 1024 ** 3;
const MAX_WORK = 16 * DEFAULT_KDF.N * DEFAULT_KDF.r * DEFAULT_KDF.p;
const MIN_SALT = 16;
const MAX_SALT = 64;

/** scrypt parameters and salt of one vault. */
export interface KdfParams {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
}

/** Derives 64 bytes (encryption key then check key) from a passphrase; injectable so tests can go fast. */
export type Kdf = (passphrase: Buffer, params: KdfParams) => Promise<Buffer>;

/** A derived vault key and the parameters it was derived under. Zero it with `wipeKey`. */
export interface VaultKey {
  params: KdfParams;
  material: Buffer;
}

/** A vault split into its parts; nothing in it is authenticated until `openVault` succeeds. */
export interface ParsedVault {
  params: KdfParams;
  nonce: Buffer;
  headerBytes: Buffer;
  check: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** scrypt from node:crypto, with maxmem sized to the parameters (Node's 32 MiB default is too small). */
export const scryptKdf: Kdf = (passphrase, { N, r, p, salt }) =>
  new Promise((resolve, reject) => {
    scrypt(passphrase, salt, 2 * KEY_LEN, { N, r, p, maxmem: 2 * 128 * N * r * p }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });

/** Fresh parameters for a new vault: the defaults and a random salt. */
export function newKdfParams(): KdfParams {
  return { ...DEFAULT_KDF, salt: randomBytes(SALT_LEN) };
}

/** Throws unless N, r, p lie between the floor and the DoS ceiling; `where` names the vault in the message. */
function assertKdfParams(params: Omit<KdfParams, 'salt'>, where: string): void {
  const { N, r, p } = params;
  const ints = [N, r, p].every((n) => Number.isSafeInteger(n) && n > 0);
  if (!ints || (N & (N - 1)) !== 0) {
    throw corrupt(where, `its KDF parameters are malformed (N=${N}, r=${r}, p=${p})`);
  }
  if (N < MIN_N || r < MIN_R) {
    throw corrupt(
      where,
      `its KDF parameters are below the minimum (N=${N}, r=${r}; need N>=${MIN_N}, r>=${MIN_R})`,
    );
  }
  if (128 * N * r > MAX_MEM_BYTES || N * r * p > MAX_WORK) {
    throw corrupt(
      where,
      `its KDF parameters are implausibly high (N=${N}, r=${r}, p=${p}); refusing to derive a key`,
    );
  }
}

/** Derives the key for `params`, checking them first. */
export async function deriveKey(
  passphrase: Buffer,
  params: KdfParams,
  where: string,
  kdf: Kdf = scryptKdf,
): Promise<VaultKey> {
  assertKdfParams(params, where);
  const material = await kdf(passphrase, params);
  if (material.length !== 2 * KEY_LEN)
    throw new Error(`KDF returned ${material.length} bytes, expected ${2 * KEY_LEN}`);
  return { params: { ...params, salt: Buffer.from(params.salt) }, material };
}

/** Whether `key` was derived under exactly these parameters (so it can be reused without scrypt). */
export function keyMatches(key: VaultKey, params: KdfParams): boolean {
  const a = key.params;
  return a.N === params.N && a.r === params.r && a.p === params.p && a.salt.equals(params.salt);
}

/** Zeroes a key's material (best effort: OpenSSL keeps its own copies while a cipher is live). */
export function wipeKey(key: VaultKey | undefined): void {
  key?.material.fill(0);
}

/** Splits vault bytes into parts and validates the header; throws CorruptError on anything malformed. */
export function parseVault(bytes: Buffer, where: string): ParsedVault {
  if (bytes.length === 0) throw corrupt(where, 'it is empty (0 bytes)');
  if (bytes.length < PREFIX_LEN || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw corrupt(where, 'it is not an Entraclaw vault (bad magic)');
  }
  const version = bytes[MAGIC.length] as number;
  if (version > VERSION) {
    // A newer Entraclaw wrote it: the vault is likely fine, and restoring an older backup would lose items.
    throw new CorruptError(
      `vault ${where} was written by a newer Entraclaw (vault format ${version}; this one reads format ${VERSION}); nothing was read`,
      'upgrade Entraclaw to read it; leave the file as it is (an older backup would lose what was stored since)',
    );
  }
  if (version !== VERSION) throw corrupt(where, `it has unsupported format version ${version}`);
  const headerLen = bytes.readUInt32BE(MAGIC.length + 1);
  if (headerLen > MAX_HEADER_LEN || bytes.length < PREFIX_LEN + headerLen + CHECK_LEN + TAG_LEN) {
    throw corrupt(where, 'it is truncated or its header length is wrong');
  }
  const headerEnd = PREFIX_LEN + headerLen;
  const header = parseHeaderJson(bytes.subarray(PREFIX_LEN, headerEnd), where);
  const params = { N: header.N, r: header.r, p: header.p, salt: strictBase64(header.salt, where, 'salt') };
  assertKdfParams(params, where);
  if (params.salt.length < MIN_SALT || params.salt.length > MAX_SALT)
    throw corrupt(where, 'its salt has a bad length');
  const nonce = strictBase64(header.nonce, where, 'nonce');
  if (nonce.length !== NONCE_LEN) throw corrupt(where, 'its nonce has a bad length');
  return {
    params,
    nonce,
    headerBytes: bytes.subarray(0, headerEnd),
    check: bytes.subarray(headerEnd, headerEnd + CHECK_LEN),
    ciphertext: bytes.subarray(headerEnd + CHECK_LEN, bytes.length - TAG_LEN),
    tag: bytes.subarray(bytes.length - TAG_LEN),
  };
}

/**
 * Authenticates and decrypts a parsed vault. A check mismatch is a LockedError (wrong passphrase, or a
 * header altered so the key no longer matches); a GCM failure is a CorruptError. Never returns partial data.
 */
export function openVault(vault: ParsedVault, key: VaultKey, where: string): Buffer {
  if (!keyMatches(key, vault.params))
    throw new Error('openVault: key was derived for different KDF parameters');
  const expected = checkValue(key, vault.headerBytes);
  if (!timingSafeEqual(expected, vault.check)) {
    throw new LockedError(
      `wrong passphrase for vault ${where}`,
      'check the passphrase source; if you are sure it is right, the vault header was modified — restore a backup',
    );
  }
  const decipher = createDecipheriv('aes-256-gcm', encKey(key), vault.nonce, { authTagLength: TAG_LEN });
  decipher.setAAD(vault.headerBytes);
  decipher.setAuthTag(vault.tag);
  const head = decipher.update(vault.ciphertext);
  try {
    decipher.final();
  } catch (cause) {
    // GCM releases plaintext before it checks the tag; the unauthenticated bytes must not outlive this.
    head.fill(0);
    throw new CorruptError(
      `vault ${where} failed authentication: modified or corrupt; nothing was read`,
      'restore the vault from a backup',
      { cause },
    );
  }
  return head;
}

/** Encrypts `plaintext` into vault bytes under `key`, with a fresh random nonce. */
export function sealVault(plaintext: Buffer, key: VaultKey): Buffer {
  const nonce = randomBytes(NONCE_LEN);
  const { N, r, p, salt } = key.params;
  const json = Buffer.from(
    JSON.stringify({
      kdf: 'scrypt',
      N,
      r,
      p,
      salt: salt.toString('base64'),
      cipher: 'aes-256-gcm',
      nonce: nonce.toString('base64'),
    }),
  );
  const prefix = Buffer.alloc(PREFIX_LEN);
  MAGIC.copy(prefix);
  prefix[MAGIC.length] = VERSION;
  prefix.writeUInt32BE(json.length, MAGIC.length + 1);
  const headerBytes = Buffer.concat([prefix, json]);
  const cipher = createCipheriv('aes-256-gcm', encKey(key), nonce, { authTagLength: TAG_LEN });
  cipher.setAAD(headerBytes);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([headerBytes, checkValue(key, headerBytes), ciphertext, cipher.getAuthTag()]);
}

/** Serialises items to the vault plaintext (values base64, so any bytes survive). */
export function encodeItems(items: readonly Item[]): Buffer {
  return Buffer.from(
    JSON.stringify({ items: items.map((i) => ({ ...i, value: i.value.toString('base64') })) }),
  );
}

/** Parses decrypted vault plaintext back into items; a shape we never write is a CorruptError. */
export function decodeItems(plaintext: Buffer, where: string): Item[] {
  let doc: unknown;
  try {
    doc = JSON.parse(plaintext.toString('utf8'));
  } catch (cause) {
    throw new CorruptError(`vault ${where} decrypted but its contents are not valid JSON`, undefined, {
      cause,
    });
  }
  const items = (doc as { items?: unknown })?.items;
  if (!Array.isArray(items)) throw new CorruptError(`vault ${where} decrypted but has no item list`);
  return items.map((raw, n) => toItem(raw, n, where));
}

const KINDS: readonly ItemKind[] = ['password', 'token', 'key'];
const OPTIONAL = ['label', 'expiresAt', 'scope'] as const;

function toItem(raw: unknown, n: number, where: string): Item {
  const r = raw as Record<string, unknown>;
  const strings = ['service', 'account', 'createdAt', 'updatedAt', 'value'].every(
    (k) => typeof r?.[k] === 'string',
  );
  const optionals = OPTIONAL.every((k) => r?.[k] === undefined || typeof r[k] === 'string');
  if (!strings || !optionals || !KINDS.includes(r.kind as ItemKind)) {
    throw new CorruptError(`vault ${where} decrypted but item #${n} is malformed`);
  }
  const item: Item = {
    service: r.service as string,
    account: r.account as string,
    kind: r.kind as ItemKind,
    createdAt: r.createdAt as string,
    updatedAt: r.updatedAt as string,
    value: Buffer.from(r.value as string, 'base64'),
  };
  for (const k of OPTIONAL) if (typeof r[k] === 'string') item[k] = r[k];
  return item;
}

interface HeaderJson {
  N: number;
  r: number;
  p: number;
  salt: string;
  nonce: string;
}

const HEADER_KEYS = ['kdf', 'N', 'r', 'p', 'salt', 'cipher', 'nonce'];

function parseHeaderJson(bytes: Buffer, where: string): HeaderJson {
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw corrupt(where, 'its header is not valid JSON');
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h))
    throw corrupt(where, 'its header is not an object');
  const keys = Object.keys(h);
  if (keys.length !== HEADER_KEYS.length || !HEADER_KEYS.every((k) => keys.includes(k))) {
    throw corrupt(where, 'its header has missing or unknown fields');
  }
  if (h.kdf !== 'scrypt' || h.cipher !== 'aes-256-gcm')
    throw corrupt(where, 'it names an unsupported KDF or cipher');
  if (typeof h.salt !== 'string' || typeof h.nonce !== 'string')
    throw corrupt(where, 'its salt or nonce is not a string');
  return h as unknown as HeaderJson;
}

// Node's base64 decoder ignores stray characters and trailing bits; insisting on the canonical form means
// two different headers can never decode to the same salt or nonce.
function strictBase64(text: string, where: string, field: string): Buffer {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw corrupt(where, `its ${field} is not canonical base64`);
  return bytes;
}

function encKey(key: VaultKey): Buffer {
  return key.material.subarray(0, KEY_LEN);
}

function checkValue(key: VaultKey, headerBytes: Buffer): Buffer {
  return createHmac('sha256', key.material.subarray(KEY_LEN)).update(headerBytes).digest();
}

function corrupt(where: string, why: string): CorruptError {
  return new CorruptError(
    `vault ${where} is unreadable: ${why}; nothing was read`,
    'restore the vault from a backup',
  );
}
