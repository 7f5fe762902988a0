// Linux kernel keyring backend: one `user` key per item in the user keyring (@u), through the native
// addon's raw syscalls (spawning keyctl costs ~1.5 ms per call; the addon ~2 µs).
//
// Key payload: 4-byte big-endian length of a JSON metadata object, the JSON, then the value bytes.
// Service and account live only in the key description, so `list` needs no payload to filter.

import { readFileSync } from 'node:fs';
import {
  CorruptError,
  DeniedError,
  EntraclawError,
  TooLargeError,
  UnavailableError,
  UsageError,
} from '../errors.js';
import { ADDON_HINT, type NativeAddon, native } from '../lib/native.js';
import { itemName } from '../lib/percent.js';
import { shellQuote } from '../lib/shell.js';
import { byServiceThenAccount, isItemName } from './item-rules.js';
import type {
  Item,
  ItemInput,
  ItemKind,
  ItemMeta,
  Store,
  StoreBackend,
  StoreContext,
  StoreProbe,
} from './types.js';

/** KEY_SPEC_USER_KEYRING: the calling user's keyring, shared by all of the user's sessions. */
const USER_KEYRING = -4;
/** KEY_SPEC_SESSION_KEYRING: the process's session keyring, through which it normally possesses @u. */
const SESSION_KEYRING = -3;
const KEY_TYPE = 'user';
const PREFIX = 'entraclaw:';
/** The kernel's cap on a `user` key payload. */
const USER_KEY_MAX_PAYLOAD = 32767;
/** Room kept for the length word and the metadata JSON, so the value cap does not depend on the label. */
const HEADER_MAX = 4096;
/** The kernel's cap on a key description. */
const DESCRIPTION_MAX = 4095;
/** KEYCTL_SET_TIMEOUT takes an unsigned int; keep within the addon's int32. */
const TIMEOUT_MAX_SECONDS = 0x7fffffff;
const KINDS: readonly ItemKind[] = ['password', 'token', 'key'];

const BOUNDARY =
  'Kernel keyring: RAM only and gone at reboot; any process of this user that possesses the user keyring ' +
  'can read these keys (keyctl), root can read everything';

/** What is stored in the payload besides the value. */
interface StoredMeta {
  kind: ItemKind;
  label?: string;
  createdAt: string;
  updatedAt: string;
  expiresAt?: string;
  scope?: string;
}

/** A kernel errno surfaced by the addon. */
interface ErrnoError extends Error {
  code?: string;
}

function errnoOf(err: unknown): string | undefined {
  return err instanceof Error ? (err as ErrnoError).code : undefined;
}

/** Errors that mean the key is not (or no longer) there: never created, expired by its timeout, revoked. */
function isAbsent(err: unknown): boolean {
  const code = errnoOf(err);
  return code === 'ENOKEY' || code === 'EKEYEXPIRED' || code === 'EKEYREVOKED';
}

/** This user's key quota and usage, from /proc/key-users; undefined when /proc does not say. */
function quotaUsage(): string | undefined {
  const uid = process.getuid?.() ?? 0;
  try {
    for (const line of readFileSync('/proc/key-users', 'utf8').split('\n')) {
      const m = /^\s*(\d+):\s+\d+\s+\d+\/\d+\s+(\d+)\/(\d+)\s+(\d+)\/(\d+)/.exec(line);
      if (m && Number(m[1]) === uid) return `uid ${uid} holds ${m[2]}/${m[3]} keys and ${m[4]}/${m[5]} bytes`;
    }
  } catch {
    // /proc may be hidden in a sandbox; the message then gives the defaults instead.
  }
  return undefined;
}

/**
 * Maps one addon error to the error Entraclaw reports; the single place kernel errors are translated.
 * `possessed`: the process is known to possess @u (an opened store), so EACCES on an item can only come
 * from that key's own permissions.
 */
export function decodeError(
  err: unknown,
  service: string,
  account: string,
  possessed = false,
): EntraclawError {
  const item = `"${itemName(service, account)}"`;
  switch (errnoOf(err)) {
    case 'EDQUOT': {
      const root = process.getuid?.() === 0;
      const files = root ? 'root_maxkeys, root_maxbytes' : 'maxkeys, maxbytes';
      const usage =
        quotaUsage() ?? (root ? 'root has higher limits' : 'non-root users get 200 keys / 20000 bytes');
      return new UnavailableError(
        `kernel key quota exceeded while storing ${item}: the kernel limits every user's keys in count and ` +
          `total bytes (${usage}; see /proc/sys/kernel/keys/${files})`,
        'delete items you no longer need, raise the limits as root (sysctl kernel.keys.maxkeys=... ' +
          'kernel.keys.maxbytes=...), or use the encrypted-file or secret-service store',
        { cause: err },
      );
    }
    case 'EACCES':
      if (possessed) {
        return new DeniedError(
          `the kernel key ${shellQuote(description(service, account))} for ${item} does not let this process ` +
            'search, read or change it (EACCES): another program set its permissions (keyctl setperm), or it ' +
            "is not this user's key",
          '`keyctl show @u` lists it (as "key inaccessible" when it may not even be viewed); remove it from ' +
            'the user keyring with `keyctl unlink SERIAL @u`, then store the item again',
        );
      }
      return new DeniedError(
        `the kernel keyring refused access to ${item} (EACCES): this process does not possess the user ` +
          'keyring, or the key belongs to someone else',
        'run from a login session, or link the user keyring into the session keyring (keyctl link @u @s); ' +
          'systemd services get a private session keyring (KeyringMode=)',
      );
    default:
      return new EntraclawError(
        'internal',
        `kernel keyring operation on ${item} failed: ${err instanceof Error ? err.message : String(err)}`,
        undefined,
        { cause: err },
      );
  }
}

function description(service: string, account: string): string {
  return `${PREFIX}${encodeURIComponent(service)}/${encodeURIComponent(account)}`;
}

/**
 * Inverse of `description`; undefined for keys that are not ours (or whose names no read accepts). Only
 * the description we write for those names is ours: another spelling of them (`%2f`, `%61`, `%21` for a
 * `!` we leave raw) is a key that get, set and rm, which search by exact description, would never find.
 */
function parseDescription(desc: string): { service: string; account: string } | undefined {
  if (!desc.startsWith(PREFIX)) return undefined;
  const [service, account, ...rest] = desc.slice(PREFIX.length).split('/');
  if (service === undefined || account === undefined || rest.length > 0) return undefined;
  try {
    const ids = { service: decodeURIComponent(service), account: decodeURIComponent(account) };
    return isItemName(ids.service, ids.account) && description(ids.service, ids.account) === desc
      ? ids
      : undefined;
  } catch {
    return undefined;
  }
}

function encodePayload(meta: StoredMeta, value: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const payload = Buffer.alloc(4 + json.length + value.length);
  payload.writeUInt32BE(json.length, 0);
  json.copy(payload, 4);
  value.copy(payload, 4 + json.length);
  return payload;
}

function decodePayload(
  payload: Buffer,
  service: string,
  account: string,
): { meta: StoredMeta; value: Buffer } {
  const bad = () =>
    new CorruptError(
      `kernel key for "${itemName(service, account)}" is not in Entraclaw's format`,
      `remove it with: keyctl purge user ${shellQuote(description(service, account))}`,
    );
  if (payload.length < 4) throw bad();
  const jsonLength = payload.readUInt32BE(0);
  if (4 + jsonLength > payload.length) throw bad();
  let meta: StoredMeta;
  try {
    meta = JSON.parse(payload.subarray(4, 4 + jsonLength).toString('utf8')) as StoredMeta;
  } catch {
    throw bad();
  }
  if (
    !KINDS.includes(meta.kind) ||
    typeof meta.createdAt !== 'string' ||
    typeof meta.updatedAt !== 'string'
  ) {
    throw bad();
  }
  return { meta, value: payload.subarray(4 + jsonLength) };
}

function toMeta(service: string, account: string, m: StoredMeta): ItemMeta {
  const meta: ItemMeta = { service, account, kind: m.kind, createdAt: m.createdAt, updatedAt: m.updatedAt };
  if (m.label !== undefined) meta.label = m.label;
  if (m.expiresAt !== undefined) meta.expiresAt = m.expiresAt;
  if (m.scope !== undefined) meta.scope = m.scope;
  return meta;
}

/**
 * How long the kernel keeps a key after its expiresAt. Within it the item reads as expired (exit 6, and
 * `--allow-expired` still gets it, as on every other store); after it the kernel drops the key from RAM.
 */
export const EXPIRED_GRACE_SECONDS = 3600;

/**
 * Seconds for KEYCTL_SET_TIMEOUT so the key lives until EXPIRED_GRACE_SECONDS after `expiresAt`: the
 * kernel adds the timeout to the current whole second and expires the key when that second starts. 0 = no
 * timeout, only when no expiry was asked for. An item stored when its grace is already over gets the grace
 * from now: every item with an expiry has a kernel timeout, yet one stored on purpose does not vanish at once.
 */
function timeoutSeconds(expiresAt: string | undefined, now: number): number {
  if (expiresAt === undefined) return 0;
  const at = Date.parse(expiresAt) + EXPIRED_GRACE_SECONDS * 1000;
  if (at <= now) return EXPIRED_GRACE_SECONDS;
  return Math.min(Math.ceil(at / 1000) - Math.floor(now / 1000), TIMEOUT_MAX_SECONDS);
}

class KernelKeyringStore implements Store {
  readonly name = 'kernel-keyring' as const;
  readonly persistence = 'until-reboot' as const;
  readonly readOnly = false;
  readonly maxValueBytes = USER_KEY_MAX_PAYLOAD - HEADER_MAX;

  constructor(private readonly addon: NativeAddon) {}

  /** The serial of the item's key, or undefined when there is none (or it expired). */
  private find(service: string, account: string): number | undefined {
    try {
      const serial = this.addon.keySearch(USER_KEYRING, KEY_TYPE, description(service, account));
      return serial === -1 ? undefined : serial;
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw decodeError(err, service, account, true);
    }
  }

  private read(
    serial: number,
    service: string,
    account: string,
  ): { meta: StoredMeta; value: Buffer } | undefined {
    let payload: Buffer;
    try {
      payload = this.addon.keyRead(serial);
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw decodeError(err, service, account, true);
    }
    return decodePayload(payload, service, account);
  }

  async get(service: string, account: string): Promise<Item | undefined> {
    const serial = this.find(service, account);
    const found = serial === undefined ? undefined : this.read(serial, service, account);
    return found && { ...toMeta(service, account, found.meta), value: found.value };
  }

  async set(input: ItemInput): Promise<ItemMeta> {
    const { service, account, value } = input;
    const desc = description(service, account);
    if (Buffer.byteLength(desc) > DESCRIPTION_MAX) {
      throw new TooLargeError(
        `service and account of "${itemName(service, account)}" are too long for a kernel key description ` +
          `(${DESCRIPTION_MAX} bytes once URI-encoded)`,
      );
    }
    if (value.length > this.maxValueBytes) {
      throw new TooLargeError(
        `item "${itemName(service, account)}" is ${value.length} bytes; the kernel keyring holds at most ` +
          `${this.maxValueBytes} bytes per value`,
        'use the encrypted-file or secret-service store for larger values',
      );
    }
    if (input.expiresAt !== undefined && Number.isNaN(Date.parse(input.expiresAt))) {
      throw new UsageError(
        `expiresAt of "${itemName(service, account)}" is not an ISO-8601 time: ${input.expiresAt}`,
      );
    }
    const nowMs = Date.now();
    const now = new Date(nowMs).toISOString();
    const serial = this.find(service, account);
    const previous = serial === undefined ? undefined : this.read(serial, service, account);
    const meta: StoredMeta = {
      kind: input.kind ?? 'password',
      label: input.label,
      createdAt: previous?.meta.createdAt ?? now,
      updatedAt: now,
      expiresAt: input.expiresAt,
      scope: input.scope,
    };
    const payload = encodePayload(meta, value);
    if (payload.length > USER_KEY_MAX_PAYLOAD) {
      payload.fill(0);
      throw new TooLargeError(
        `label and scope of "${itemName(service, account)}" leave too little room in a ${USER_KEY_MAX_PAYLOAD}-byte kernel key`,
        'shorten the label or scope, or use the encrypted-file or secret-service store',
      );
    }
    try {
      // add_key on an existing description updates that key in place (same serial) and clears its timeout.
      const added = this.addon.keyAdd(KEY_TYPE, desc, payload, USER_KEYRING);
      this.addon.keySetTimeout(added, timeoutSeconds(input.expiresAt, nowMs));
    } catch (err) {
      throw decodeError(err, service, account, true);
    } finally {
      payload.fill(0);
    }
    return toMeta(service, account, meta);
  }

  async delete(service: string, account: string): Promise<boolean> {
    const serial = this.find(service, account);
    if (serial === undefined) return false;
    try {
      // Invalidate rather than unlink: the key is destroyed even if another keyring also links it.
      this.addon.keyInvalidate(serial);
      return true;
    } catch (err) {
      if (isAbsent(err)) return false;
      throw decodeError(err, service, account, true);
    }
  }

  async list(filter?: { service?: string }): Promise<ItemMeta[]> {
    let serials: number[];
    try {
      serials = this.addon.keyringList(USER_KEYRING);
    } catch (err) {
      throw decodeError(err, filter?.service ?? '*', '*');
    }
    const items: ItemMeta[] = [];
    for (const serial of serials) {
      let described: string;
      try {
        described = this.addon.keyDescribe(serial);
      } catch (err) {
        // Keys expire or vanish between listing and describing; those are simply gone. A key that may not
        // be viewed (keyctl setperm) has no name we could list: it must not hide every other item.
        if (isAbsent(err) || errnoOf(err) === 'EACCES') continue;
        throw decodeError(err, filter?.service ?? '*', '*');
      }
      // "type;uid;gid;perm;description" — the description itself may contain ';'.
      const fields = described.split(';');
      if (fields[0] !== KEY_TYPE) continue;
      const names = parseDescription(fields.slice(4).join(';'));
      if (!names || (filter?.service !== undefined && names.service !== filter.service)) continue;
      let found: { meta: StoredMeta; value: Buffer } | undefined;
      try {
        found = this.read(serial, names.service, names.account);
      } catch (err) {
        // Any process of the user can add a key under our prefix: one that is not ours to read (not in our
        // format, or with permissions that deny us) must not hide every other item. A get of that very
        // item still reports it as corrupt or denied.
        if (err instanceof CorruptError || err instanceof DeniedError) continue;
        throw err;
      }
      if (found) {
        items.push(toMeta(names.service, names.account, found.meta));
        found.value.fill(0);
      }
    }
    return items.sort(byServiceThenAccount);
  }

  async close(): Promise<void> {}
}

/** Loads the addon on Linux; the reason it cannot be used otherwise. */
function loadAddon(): { addon?: NativeAddon; reason?: string } {
  if (process.platform !== 'linux') return { reason: 'The kernel keyring exists only on Linux.' };
  try {
    return { addon: native() };
  } catch (err) {
    return { reason: `${(err as Error).message}: ${ADDON_HINT}.` };
  }
}

const NOT_POSSESSED =
  'This process does not possess the user keyring (its session keyring does not link @u, as in systemd ' +
  'services); run `keyctl link @u @s` in this session or use another store.';

/** Keys in @u are readable only by processes that possess @u, normally through the session keyring. */
function possessesUserKeyring(addon: NativeAddon): boolean {
  const uid = process.getuid?.() ?? 0;
  try {
    return addon.keySearch(SESSION_KEYRING, 'keyring', `_uid.${uid}`) !== -1;
  } catch {
    return false;
  }
}

/** The kernel-keyring backend: probe checks the addon and that this process can use @u. */
export const backend: StoreBackend = {
  async probe(_ctx: StoreContext): Promise<StoreProbe> {
    const base = {
      name: 'kernel-keyring',
      persistence: 'until-reboot',
      readOnly: false,
      boundary: BOUNDARY,
    } as const;
    const { addon, reason } = loadAddon();
    if (!addon) return { ...base, available: false, reason: reason! };
    try {
      addon.keyringList(USER_KEYRING);
    } catch (err) {
      return {
        ...base,
        available: false,
        reason: `The user keyring cannot be listed: ${decodeError(err, '*', '*').message}.`,
      };
    }
    if (!possessesUserKeyring(addon)) return { ...base, available: false, reason: NOT_POSSESSED };
    return {
      ...base,
      available: true,
      reason: 'The user keyring (@u) is reachable through the native addon.',
    };
  },

  async open(_ctx: StoreContext): Promise<Store> {
    const { addon, reason } = loadAddon();
    if (!addon) throw new UnavailableError(`kernel-keyring store unavailable: ${reason}`);
    // As the probe: without possession every read and write would fail with EACCES, which is no denial
    // by policy but a store this process cannot use (exit 5, as doctor reports it).
    if (!possessesUserKeyring(addon)) {
      throw new UnavailableError(
        'store kernel-keyring: this process does not possess the user keyring (its session keyring does not ' +
          'link @u, as in systemd services or after `keyctl new_session`)',
        'run `keyctl link @u @s` in this session, run from a login session, or use another store (--store)',
      );
    }
    return new KernelKeyringStore(addon);
  },
};
