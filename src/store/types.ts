import type { EntraclawError } from '../errors.js';

/** What an item is: a plain password, an OAuth-style token (with expiry/scope), or a key. */
export type ItemKind = 'password' | 'token' | 'key';

/** How long a store keeps data (after keyring-rs): until deleted, until reboot, or only for this process. */
export type Persistence = 'until-delete' | 'until-reboot' | 'process-only';

/** Names of every backend Entraclaw knows. */
export const STORE_NAMES = [
  'secret-service',
  'kernel-keyring',
  'systemd-creds',
  'encrypted-file',
  'macos-keychain',
] as const;
/** One of the store backends' names, as config, `--store` and `doctor` spell them. */
export type StoreName = (typeof STORE_NAMES)[number];

/** Largest value any store accepts; backends may declare a smaller cap. */
export const MAX_VALUE_BYTES = 1024 * 1024;

/** Everything about an item except its value. Times are ISO-8601 UTC strings. */
export interface ItemMeta {
  service: string;
  account: string;
  kind: ItemKind;
  label?: string;
  createdAt: string;
  updatedAt: string;
  expiresAt?: string;
  scope?: string;
}

/** An item with its value; the value is bytes so binary secrets survive. */
export interface Item extends ItemMeta {
  value: Buffer;
}

/** What a caller supplies to `set`; the store fills createdAt/updatedAt. */
export interface ItemInput {
  service: string;
  account: string;
  value: Buffer;
  kind?: ItemKind;
  label?: string;
  expiresAt?: string;
  scope?: string;
}

/** One backend behind the common interface. `get` returns undefined for a missing item. */
export interface Store {
  readonly name: StoreName;
  readonly persistence: Persistence;
  readonly readOnly: boolean;
  /** Largest value this backend accepts (<= MAX_VALUE_BYTES). */
  readonly maxValueBytes: number;
  get(service: string, account: string): Promise<Item | undefined>;
  set(input: ItemInput): Promise<ItemMeta>;
  /** Returns false when there was nothing to delete. */
  delete(service: string, account: string): Promise<boolean>;
  list(filter?: { service?: string }): Promise<ItemMeta[]>;
  close(): Promise<void>;
}

/** A backend's answer to "can you be used here, and what do you protect against?". */
export interface StoreProbe {
  name: StoreName;
  available: boolean;
  /** Why it is (un)available, in one sentence a user can act on. */
  reason: string;
  persistence: Persistence;
  readOnly: boolean;
  /** The security boundary this store gives, stated plainly. */
  boundary: string;
}

/** Inputs a backend needs to open; explicit so tests can inject paths and environment. */
export interface StoreContext {
  env: NodeJS.ProcessEnv;
  /** XDG-resolved directories for this user. */
  paths: { config: string; data: string; state: string; runtime: string };
  /** Where the vault passphrase comes from, if the caller named one. */
  passphraseFile?: string;
  /** Whether an interactive prompt may be shown (stdin and stderr are TTYs). */
  interactive: boolean;
  /** Per-call timeout for IPC-backed stores, in milliseconds. */
  timeoutMs: number;
  /** Told when a write has waited a while for a file lock another process holds (the CLI says so). */
  onLockWait?: (lockPath: string, holder: string) => void;
}

/** How a long-lived caller (the agent) opens a store it was told to use. */
export interface OpenOptions {
  /**
   * A store that is locked now (a keyring not yet unlocked at login) is opened anyway: each call then
   * fails as locked until it is unlocked, and `deferred` is told why once. Backends that cannot be
   * unlocked from outside ignore it.
   */
  whenLocked?: { deferred(why: EntraclawError): void };
}

/** A backend module: probe cheaply, open when chosen. */
export interface StoreBackend {
  probe(ctx: StoreContext): Promise<StoreProbe>;
  open(ctx: StoreContext, opts?: OpenOptions): Promise<Store>;
}
