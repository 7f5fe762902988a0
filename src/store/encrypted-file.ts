import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { LockedError, NotFoundError, TooLargeError, UnavailableError, UsageError } from '../errors.js';
import { sweepTempFiles, writeFileAtomic } from '../lib/atomic-write.js';
import { fileKey, pathKey } from '../lib/file-key.js';
import { type LockOptions, withFileLock } from '../lib/file-lock.js';
import { makeDirs } from '../lib/make-dir.js';
import {
  PASSPHRASE_HINT,
  passphraseFromPipe,
  passphraseSource,
  readPassphrase,
  readPassphraseFile,
} from '../lib/passphrase.js';
import { shellQuote } from '../lib/shell.js';
import { assertItemName, byServiceThenAccount } from './item-rules.js';
import type { Item, ItemInput, ItemMeta, Store, StoreBackend, StoreContext, StoreProbe } from './types.js';
import { MAX_VALUE_BYTES } from './types.js';
import { vaultFile } from './vault-file.js';
import {
  decodeItems,
  deriveKey,
  encodeItems,
  type KdfParams,
  keyMatches,
  newKdfParams,
  openVault,
  type ParsedVault,
  parseVault,
  sealVault,
  type VaultKey,
  wipeKey,
} from './vault-format.js';

// One sealed file holds every item. Writers serialise on a lock file and rewrite the whole vault atomically,
// so concurrent writers lose nothing and a crash leaves the old or the new vault. Readers take no lock:
// rename() swaps the file in one step. scrypt and prompts happen before the lock is taken, so the lock is
// held only for a read, an encrypt and a write.
const LOCK_FILE = 'vault.lock';
const BOUNDARY =
  'Sealed vault: AES-256-GCM under a scrypt-derived key; readable only with the passphrase — the daemon holding it is the only door';

interface Paths {
  dir: string;
  vault: string;
  lock: string;
}

function vaultPaths(ctx: StoreContext): Paths {
  return {
    dir: ctx.paths.data,
    vault: vaultFile(ctx.paths.data),
    lock: join(ctx.paths.data, LOCK_FILE),
  };
}

/** The vault's bytes and the fileKey()s of the file they were read from and of its directory. */
interface VaultRead {
  bytes: Buffer;
  fileKey: string;
  dirKey: string;
}

/** Reads the vault file, refusing one that is not a private regular file of ours; undefined when absent. */
function readVaultFile(path: string): VaultRead | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path would otherwise hang the open; it is refused as not a file.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw symlinkError(path);
    throw new UnavailableError(
      `cannot read vault ${path}: ${code}`,
      code === 'EACCES'
        ? `the vault should be yours, mode 600: check with ls -l ${shellQuote(path)}`
        : 'check the vault file and its directory',
      { cause: err },
    );
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    assertPrivate(path, st);
    const dirKey = assertDirClosed(dirname(path));
    // One read for the common case; the spare byte shows whether the file grew since fstat, and then it
    // is read whole again (pread left the offset at 0).
    const size = Number(st.size);
    const head = Buffer.allocUnsafe(size + 1);
    const n = readSync(fd, head, 0, head.length, 0);
    return { bytes: n <= size ? head.subarray(0, n) : readFileSync(fd), fileKey: fileKey(st), dirKey };
  } finally {
    closeSync(fd);
  }
}

/** Whether the vault exists, refusing a symlink or a file that is not private to us. */
function vaultExists(path: string): boolean {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new UnavailableError(`cannot stat vault ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
  if (st.isSymbolicLink()) throw symlinkError(path);
  assertPrivate(path, st);
  assertDirClosed(dirname(path));
  return true;
}

// Replacing the vault renames over the link, so following one would silently fork the user's vault.
function symlinkError(path: string): UnavailableError {
  return new UnavailableError(
    `vault ${path} is a symbolic link; refusing to follow it`,
    'keep the real file there, or set XDG_DATA_HOME so the data directory is where it lives',
  );
}

// Read once: a syscall on every vault read otherwise, and it cannot change under a running process of ours.
const ownUid = process.getuid?.();

function assertPrivate(
  path: string,
  st: { mode: number | bigint; uid: number | bigint; isFile(): boolean },
): void {
  if (!st.isFile()) throw new UnavailableError(`vault ${path} is not a regular file`);
  const mode = Number(st.mode);
  if (ownUid !== undefined && Number(st.uid) !== ownUid) {
    throw new UnavailableError(
      `vault ${path} is owned by uid ${st.uid}, not by you (uid ${ownUid}); refusing to use it`,
    );
  }
  if (mode & 0o077) {
    throw new UnavailableError(
      `vault ${path} is accessible to group or others (mode ${(mode & 0o777).toString(8)}); refusing to use it`,
      `run: chmod 600 ${shellQuote(path)}`,
    );
  }
}

/** Creates the vault directory 0700, refusing an existing one that others could write into. */
function ensureDir(dir: string): void {
  try {
    makeDirs(dir, 0o700);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UnavailableError(
      `cannot create the vault directory ${dir}: ${code}`,
      code === 'ENOENT'
        ? 'a directory above it is missing or a dangling symlink: fix it, or set XDG_DATA_HOME to where the vault should live'
        : 'it must be a directory you can write (mode 700): check its parents, or set XDG_DATA_HOME elsewhere',
      { cause: err },
    );
  }
  assertDirClosed(dir);
}

// Whoever can write the directory can swap the vault (rename over it) or plant a lock: refused for reads
// as for writes, so a get never quietly trusts a file that someone else could have put there. Returns
// the directory's fileKey(): a chmod of it changes its ctime, so a cached read notices.
function assertDirClosed(dir: string): string {
  const st = statSync(dir, { bigint: true });
  const mode = Number(st.mode);
  if (mode & 0o022) {
    throw new UnavailableError(
      `vault directory ${dir} is writable by group or others (mode ${(mode & 0o777).toString(8)})`,
      `run: chmod 700 ${shellQuote(dir)}`,
    );
  }
  return fileKey(st);
}

/** What an update does to the item list: the value to return, and whether the vault must be rewritten. */
type Mutation<T> = (items: Item[]) => { result: T; changed: boolean };

class EncryptedFileStore implements Store {
  readonly name = 'encrypted-file' as const;
  readonly persistence = 'until-delete' as const;
  readonly readOnly = false;
  readonly maxValueBytes = MAX_VALUE_BYTES;
  private passphrase: Buffer | undefined;
  private key: VaultKey | undefined;
  private closed = false;
  // Serialises passphrase and key work, so concurrent calls prompt once and run scrypt once.
  private keyQueue: Promise<unknown> = Promise.resolve();
  private readonly closing = new AbortController();
  // The items of the vault last decrypted, with the fileKey()s of its file and directory then: while both
  // stats still show those keys, a read is served from here without opening the file (the daemon reads
  // on every get). Any write, chmod or rename changes a key (ctime cannot be set from user space), and
  // then the file is read again; bytes equal to the last ones decrypted still skip the decryption.
  // Holding the plaintext adds no exposure beyond the key this store already holds; close() wipes both.
  private decrypted: (VaultRead & { items: Item[] }) | undefined;
  // The salt of the vault this process last opened (not secret): a wrong-passphrase failure on a vault
  // with another salt means the vault was re-encrypted or replaced since, not that the passphrase was typo'd.
  private openedSalt: Buffer | undefined;

  constructor(
    private readonly ctx: StoreContext,
    private readonly paths: Paths,
  ) {}

  async get(service: string, account: string): Promise<Item | undefined> {
    return this.read((items) => {
      const found = items.find((i) => i.service === service && i.account === account);
      // A copy: the caller wipes what it is given, and the cached item must survive that.
      return found && { ...found, value: Buffer.from(found.value) };
    });
  }

  async set(input: ItemInput): Promise<ItemMeta> {
    assertItemName(input.service, 'service');
    assertItemName(input.account, 'account');
    if (input.value.length > this.maxValueBytes) {
      throw new TooLargeError(
        `the value for ${input.service}/${input.account} is ${input.value.length} bytes; encrypted-file holds at most ${this.maxValueBytes}`,
      );
    }
    return this.update((items) => {
      const now = new Date().toISOString();
      const at = items.findIndex((i) => i.service === input.service && i.account === input.account);
      const item: Item = {
        service: input.service,
        account: input.account,
        kind: input.kind ?? 'password',
        createdAt: at >= 0 ? (items[at] as Item).createdAt : now,
        updatedAt: now,
        value: Buffer.from(input.value),
      };
      if (input.label !== undefined) item.label = input.label;
      if (input.expiresAt !== undefined) item.expiresAt = input.expiresAt;
      if (input.scope !== undefined) item.scope = input.scope;
      if (at >= 0) items[at] = item;
      else items.push(item);
      return { result: toMeta(item), changed: true };
    });
  }

  async delete(service: string, account: string): Promise<boolean> {
    if (!vaultExists(this.paths.vault)) return false;
    return this.update((items) => {
      const at = items.findIndex((i) => i.service === service && i.account === account);
      if (at >= 0) items.splice(at, 1);
      return { result: at >= 0, changed: at >= 0 };
    });
  }

  async list(filter?: { service?: string }): Promise<ItemMeta[]> {
    // Sorted as the other stores list, not in the order items were first written.
    return this.read((items) =>
      items
        .filter((i) => filter?.service === undefined || i.service === filter.service)
        .map(toMeta)
        .sort(byServiceThenAccount),
    );
  }

  /**
   * Re-encrypts every item under the passphrase `newPassphrase` gives (asked only once the current one has
   * opened the vault; zeroed here) with a fresh salt, in one atomic replacement; returns the number of items.
   */
  async rekey(newPassphrase: () => Promise<Buffer>): Promise<number> {
    this.assertOpen();
    const before = this.readParsed();
    if (!before) {
      throw new NotFoundError(
        `there is no vault at ${this.paths.vault} to re-encrypt`,
        'a new vault takes its passphrase at the first `entraclaw secret set --store encrypted-file`',
      );
    }
    // The current passphrase is proven (the vault opens) before the new one is asked for, and both scrypt
    // runs happen outside the lock.
    wipeValues(this.decrypt(before, await this.keyFor(before.params)));
    const fresh = await newPassphrase();
    let newKey: VaultKey;
    try {
      newKey = await deriveKey(fresh, newKdfParams(), this.paths.vault);
    } finally {
      fresh.fill(0);
    }
    return withFileLock(
      this.paths.lock,
      async () => {
        sweepTempFiles(this.paths.vault);
        const vault = this.readParsed();
        if (!vault) throw new NotFoundError(`the vault at ${this.paths.vault} was removed meanwhile`);
        const items = this.decrypt(vault, await this.keyFor(vault.params));
        try {
          this.replaceVault(items, newKey);
        } finally {
          wipeValues(items);
        }
        // The new key opens the vault from now on; the old passphrase is of no more use.
        this.replaceKey(newKey);
        this.passphrase?.fill(0);
        this.passphrase = undefined;
        return items.length;
      },
      this.lockOptions(),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    // A passphrase pipe that stays silent would otherwise hold the close (and a stopping daemon) for minutes.
    this.closing.abort();
    await this.keyQueue;
    this.forget();
  }

  /**
   * Runs `use` on the current vault's items, synchronously, before anything can replace (and wipe) them;
   * an absent vault is empty and needs no passphrase.
   */
  private async read<T>(use: (items: readonly Item[]) => T): Promise<T> {
    this.assertOpen();
    if (this.decrypted && this.unchanged(this.decrypted)) return use(this.decrypted.items);
    const read = readVaultFile(this.paths.vault);
    if (!read) {
      this.dropDecrypted();
      return use([]);
    }
    if (this.decrypted?.bytes.equals(read.bytes)) {
      this.decrypted = { ...read, items: this.decrypted.items };
    } else {
      const vault = parseVault(read.bytes, this.paths.vault);
      const items = await this.decryptCurrent(vault);
      this.dropDecrypted();
      this.decrypted = { ...read, items };
    }
    return use(this.decrypted.items);
  }

  // Two stats instead of open, fstat, stat, read and close; any stat error takes the full read's path.
  private unchanged(last: VaultRead): boolean {
    try {
      return pathKey(this.paths.vault) === last.fileKey && pathKey(this.paths.dir) === last.dirKey;
    } catch {
      return false;
    }
  }

  private readParsed(): ParsedVault | undefined {
    const read = readVaultFile(this.paths.vault);
    return read && parseVault(read.bytes, this.paths.vault);
  }

  private dropDecrypted(): void {
    if (this.decrypted) wipeValues(this.decrypted.items);
    this.decrypted = undefined;
  }

  /**
   * Decrypts the vault with the key for its parameters. A passphrase read earlier that no longer opens it
   * (the vault was re-encrypted by `entraclaw vault rekey` meanwhile) is read again from its source, once.
   */
  private async decryptCurrent(vault: ParsedVault): Promise<Item[]> {
    const earlier = this.passphrase !== undefined;
    try {
      return this.decrypt(vault, await this.keyFor(vault.params));
    } catch (err) {
      if (!(err instanceof LockedError) || !earlier) throw err;
      // A pipe gave its passphrase once per process: reading its source again would give the same one.
      const source = passphraseSource(this.ctx);
      if (source?.kind === 'file' && passphraseFromPipe(source.path)) {
        throw new LockedError(
          `the passphrase this process read from the pipe ${source.path} (from ${source.via}) no longer opens vault ${this.paths.vault}`,
          'a pipe is read once per process: if the vault was re-encrypted (entraclaw vault rekey), restart the agent (the process that read it) with the new passphrase',
          { cause: err },
        );
      }
      return this.decrypt(vault, await this.keyFor(vault.params));
    }
  }

  private decrypt(vault: ParsedVault, key: VaultKey): Item[] {
    const where = this.paths.vault;
    let plaintext: Buffer;
    try {
      plaintext = openVault(vault, key, where);
    } catch (err) {
      if (!(err instanceof LockedError)) throw err;
      // A wrong passphrase should be asked for again next time, not reused; and the user has to know
      // where it came from to fix it (the agent's environment may differ from their shell's).
      this.forget();
      const source = passphraseSource(this.ctx);
      if (this.openedSalt && !this.openedSalt.equals(vault.params.salt)) {
        // "restore a backup" would be the wrong advice here: it would undo the rekey and what came after.
        throw new LockedError(
          `the passphrase${source?.kind === 'file' ? ` from ${source.path} (${source.via})` : ''} no longer opens vault ${where}: it was re-encrypted (entraclaw vault rekey) or replaced since this process opened it`,
          source?.kind === 'file'
            ? `put the vault's current passphrase in ${source.path}: it is read again at the next request, no restart needed`
            : "restart this process and give it the vault's current passphrase",
          { cause: err },
        );
      }
      throw new LockedError(
        err.message,
        `${source?.kind === 'file' ? `the passphrase was read from ${source.path} (${source.via}): check it` : 'check the passphrase'}; if you are sure it is right, the vault header was modified — restore a backup`,
        { cause: err },
      );
    }
    this.openedSalt = Buffer.from(vault.params.salt);
    try {
      return decodeItems(plaintext, where);
    } finally {
      plaintext.fill(0);
    }
  }

  /** Lock, re-read and decrypt, apply `mutate`, seal and atomically replace, unlock. */
  private async update<T>(mutate: Mutation<T>): Promise<T> {
    this.assertOpen();
    ensureDir(this.paths.dir);
    const before = this.readParsed();
    // Derive outside the lock; inside it the key is normally reused as is.
    if (before) await this.keyFor(before.params);
    else await this.keyForNew();
    return withFileLock(
      this.paths.lock,
      async () => {
        // Only lock holders write temp files, so any found now were left by a writer that crashed.
        sweepTempFiles(this.paths.vault);
        const vault = this.readParsed();
        const items = vault ? await this.decryptCurrent(vault) : [];
        const key = vault ? await this.keyFor(vault.params) : await this.keyForNew();
        const { result, changed } = mutate(items);
        if (changed) this.replaceVault(items, key);
        wipeValues(items);
        return result;
      },
      this.lockOptions(),
    );
  }

  /** How a writer waiting on the vault lock is reported (the caller's onLockWait, if any). */
  private lockOptions(): LockOptions {
    const { onLockWait } = this.ctx;
    return onLockWait ? { onWait: (holder) => onLockWait(this.paths.lock, holder) } : {};
  }

  /** Seals `items` under `key` and atomically replaces the vault file with them; the caller holds the lock. */
  private replaceVault(items: readonly Item[], key: VaultKey): void {
    this.dropDecrypted();
    const plaintext = encodeItems(items);
    try {
      writeFileAtomic(this.paths.vault, sealVault(plaintext, key));
    } finally {
      plaintext.fill(0);
    }
  }

  /** The key for an existing vault's parameters, derived only when they differ from the cached one. */
  private keyFor(params: KdfParams): Promise<VaultKey> {
    return this.serial(async () => {
      // Checked here too: an operation still waiting for the lock when close() ran must not fetch secrets again.
      this.assertOpen();
      if (this.key && keyMatches(this.key, params)) return this.key;
      const key = await deriveKey(await this.getPassphrase(false), params, this.paths.vault);
      this.replaceKey(key);
      return key;
    });
  }

  /** A key for a vault about to be created: the cached one (its salt stays), else a fresh salt. */
  private keyForNew(): Promise<VaultKey> {
    return this.serial(async () => {
      this.assertOpen();
      if (this.key) return this.key;
      const key = await deriveKey(await this.getPassphrase(true), newKdfParams(), this.paths.vault);
      this.replaceKey(key);
      return key;
    });
  }

  private async getPassphrase(creating: boolean): Promise<Buffer> {
    this.passphrase ??= await readPassphrase(
      this.ctx,
      this.paths.vault,
      creating,
      undefined,
      this.closing.signal,
    );
    return this.passphrase;
  }

  private replaceKey(key: VaultKey): void {
    if (this.key !== key) wipeKey(this.key);
    this.key = key;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.keyQueue.then(fn, fn);
    this.keyQueue = run.catch(() => undefined);
    return run;
  }

  private forget(): void {
    this.dropDecrypted();
    wipeKey(this.key);
    this.passphrase?.fill(0);
    this.key = undefined;
    this.passphrase = undefined;
  }

  private assertOpen(): void {
    if (this.closed) throw new UsageError('this encrypted-file store was closed');
  }
}

// Best-effort hygiene: decrypted values nobody holds any more should not linger until garbage collection.
function wipeValues(items: readonly Item[]): void {
  for (const i of items) i.value.fill(0);
}

function toMeta(item: Item): ItemMeta {
  const { value: _value, ...meta } = item;
  return meta;
}

function supported(): boolean {
  return process.platform === 'linux' || process.platform === 'darwin';
}

function describeSource(ctx: StoreContext): string {
  const source = passphraseSource(ctx);
  if (!source) return `no passphrase source is configured (${PASSPHRASE_HINT})`;
  return source.kind === 'prompt'
    ? 'the passphrase will be asked for on this terminal'
    : `passphrase from ${source.path} (${source.via})`;
}

/**
 * Re-encrypts the vault of `ctx` under the passphrase `newPassphrase` gives once the current one has opened
 * it (see EncryptedFileStore.rekey); returns its path and item count.
 */
export async function rekeyVault(
  ctx: StoreContext,
  newPassphrase: () => Promise<Buffer>,
): Promise<{ vault: string; items: number }> {
  const paths = vaultPaths(ctx);
  const store = new EncryptedFileStore(ctx, paths);
  try {
    return { vault: paths.vault, items: await store.rekey(newPassphrase) };
  } finally {
    await store.close();
  }
}

/** The sealed-vault backend: one AES-256-GCM file under the data directory, unlocked by a passphrase. */
export const backend: StoreBackend = {
  async probe(ctx): Promise<StoreProbe> {
    const { vault } = vaultPaths(ctx);
    let where: string;
    let usable = supported();
    try {
      // What every command would trip over first, checked without the key: the vault's own structure
      // and the passphrase file's permissions (a wrong passphrase shows only at the first read).
      // readVaultFile makes vaultExists' checks too (no symlink, private file, closed directory).
      const read = readVaultFile(vault);
      if (read) parseVault(read.bytes, vault);
      const source = passphraseSource(ctx);
      if (source?.kind === 'file') readPassphraseFile(source.path, source.via).fill(0);
      where = read ? `vault at ${vault}` : `no vault yet (it will be created at ${vault})`;
      // As open() says: a vault nothing here can unlock (no file, no terminal) is locked to every command.
      if (read && !source) {
        where = `vault at ${vault} is locked`;
        usable = false;
      }
    } catch (err) {
      where = (err as Error).message;
      usable = false;
    }
    return {
      name: 'encrypted-file',
      available: usable,
      reason: supported() ? `${where}; ${describeSource(ctx)}` : `not supported on ${process.platform}`,
      persistence: 'until-delete',
      readOnly: false,
      boundary: BOUNDARY,
    };
  },

  async open(ctx): Promise<Store> {
    if (!supported())
      throw new UnavailableError(`store "encrypted-file" is not supported on ${process.platform}`);
    const paths = vaultPaths(ctx);
    // Fail at open, not at first use, for an existing vault we could never read: auto selection can then
    // say why it passed this store over.
    if (vaultExists(paths.vault) && !passphraseSource(ctx)) {
      throw new LockedError(`vault ${paths.vault} is locked: no passphrase available`, PASSPHRASE_HINT);
    }
    return new EncryptedFileStore(ctx, paths);
  },
};
