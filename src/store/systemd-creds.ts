import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  type Stats,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { CorruptError, DeniedError, EntraclawError, TooLargeError, UnavailableError } from '../errors.js';
import { untrustedBy } from '../lib/private-file.js';
import { isEncryptedCredential } from '../lib/systemd-credential.js';
import { byServiceThenAccount, isItemName } from './item-rules.js';
import type { Item, ItemMeta, Store, StoreBackend, StoreContext, StoreProbe } from './types.js';
import { MAX_VALUE_BYTES } from './types.js';

// systemd decrypts `LoadCredential=`/`LoadCredentialEncrypted=`/`SetCredential=` into a private, read-only
// directory for the service; we only read it. A credential named `SERVICE@ACCOUNT` (both parts
// percent-encoded, as encodeURIComponent does; the account's `@` may stay raw) maps to one item; other
// credentials are not ours.
const SEPARATOR = '@';
const BOUNDARY =
  'systemd credentials: decrypted by systemd into a directory only this service can read; read-only here — set them with `systemd-creds encrypt` and LoadCredentialEncrypted=';

/** The credential file name for an item. */
export function credentialName(service: string, account: string): string {
  return `${encodeURIComponent(service)}${SEPARATOR}${encodeURIComponent(account)}`;
}

/**
 * The item a credential file name stands for, or undefined for credentials that are not ours. The name
 * splits at its first `@`, so an account that is an e-mail address may keep its `@` raw
 * (`github.com@me@example.com`), as people write it. A name that decodes to what no item may be called
 * (`%0A`, `%00`) is not ours either: listing it would offer an item that every read refuses.
 */
export function parseCredentialName(name: string): { service: string; account: string } | undefined {
  const at = name.indexOf(SEPARATOR);
  const service = name.slice(0, at);
  const account = name.slice(at + 1);
  if (at <= 0 || !account) return undefined;
  try {
    const ids = { service: decodeURIComponent(service), account: decodeURIComponent(account) };
    return isItemName(ids.service, ids.account) ? ids : undefined;
  } catch {
    return undefined;
  }
}

// The names an item may have: the canonical one, then the one with the account's `@` left raw.
function namesOf(service: string, account: string): string[] {
  const canonical = credentialName(service, account);
  const raw = `${encodeURIComponent(service)}${SEPARATOR}${encodeURIComponent(account).replaceAll('%40', '@')}`;
  return raw === canonical ? [canonical] : [canonical, raw];
}

// A credential file (as stat'd through any link) must be one only you and root can change (untrustedBy):
// systemd writes credentials as the service's user or root, read-only; a directory others can add files
// to (a sticky /tmp, a mount shared with another user) must not let them plant an item that reads take
// before the real one.
const untrusted = (st: Stats) => untrustedBy(st, process.getuid?.())?.why;

function readOnlyError(): EntraclawError {
  return new EntraclawError(
    'usage',
    'store "systemd-creds" is read-only',
    'write to another store (--store secret-service or --store encrypted-file) and load it into the service with LoadCredentialEncrypted=',
  );
}

class SystemdCredsStore implements Store {
  readonly name = 'systemd-creds' as const;
  readonly persistence = 'process-only' as const;
  readonly readOnly = true;
  readonly maxValueBytes = MAX_VALUE_BYTES;

  constructor(private readonly dir: string) {}

  private meta(st: Stats, ids: { service: string; account: string }): ItemMeta {
    return {
      ...ids,
      kind: 'password',
      createdAt: st.mtime.toISOString(),
      updatedAt: st.mtime.toISOString(),
    };
  }

  async get(service: string, account: string): Promise<Item | undefined> {
    const ids = { service, account };
    for (const file of namesOf(service, account)) {
      const item = await this.read(file, ids);
      if (item) return item;
    }
    // Another spelling of the same name (`%2f`, `%2A`, `%41`): list shows such a credential as this item,
    // so get must find it too. Only on a miss, so the usual read stays one stat and one read.
    const key = credentialName(service, account);
    const file = this.credentialFiles().get(key);
    return file === undefined ? undefined : this.read(file, ids);
  }

  /**
   * Every credential that is one of our items, by its canonical name, mapped to the file that stands for
   * it: the canonical name (or the one with the account's `@` raw) when there is one, else the first
   * other spelling in sorted order. get and list both go by this, so they agree on which file is an item.
   */
  private credentialFiles(): Map<string, string> {
    // A credential is a file, or a link to one as get reads it (a directory of secrets mounted by a
    // container runtime links each name into a data directory); anything else is not an item.
    // Names are read as bytes: one that is not UTF-8 names no item (node would turn its bytes into U+FFFD,
    // a name no file has), and must not break the listing of the others.
    const files = readdirSync(this.dir, { withFileTypes: true, encoding: 'buffer' })
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && this.trustedFile(e.name))
      .map((e) => e.name)
      .filter((raw) => Buffer.from(raw.toString('utf8'), 'utf8').equals(raw))
      .map((raw) => raw.toString('utf8'))
      .sort();
    const byKey = new Map<string, string>();
    for (const file of files) {
      const ids = parseCredentialName(file);
      if (!ids) continue;
      const key = credentialName(ids.service, ids.account);
      const preferred = namesOf(ids.service, ids.account);
      const held = byKey.get(key);
      const rank = (f: string) => (preferred.includes(f) ? preferred.indexOf(f) : preferred.length);
      if (held === undefined || rank(file) < rank(held)) byKey.set(key, file);
    }
    return byKey;
  }

  // A file, or a link to one, that untrusted() does not refuse: what get would read.
  private trustedFile(name: Buffer): boolean {
    try {
      const st = statSync(Buffer.concat([Buffer.from(`${this.dir}/`), name]));
      return st.isFile() && untrusted(st) === undefined;
    } catch {
      return false;
    }
  }

  // One credential file, or undefined when there is none by that name (a directory is not a credential).
  private async read(file: string, ids: { service: string; account: string }): Promise<Item | undefined> {
    const path = join(this.dir, file);
    let value: Buffer;
    let st: Stats;
    let fd: number | undefined;
    try {
      // Checked on the fd that is read, so the file judged is the file handed out; O_NONBLOCK, so a FIFO
      // by that name is passed over rather than waited on.
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      // Sized before it is read: a credential is loaded whole, and items hold at most 1 MiB everywhere.
      st = fstatSync(fd);
      if (!st.isFile()) return undefined;
      const why = untrusted(st);
      if (why !== undefined) {
        throw new DeniedError(
          `systemd credential ${file} in ${this.dir} ${why}: its value is not handed out as the secret`,
          `a credential must be owned by you or root and writable by its owner alone (systemd writes them so); remove it, or point $CREDENTIALS_DIRECTORY at a directory only you and root can write`,
        );
      }
      if (st.size > this.maxValueBytes) {
        throw new TooLargeError(
          `systemd credential ${file} is ${st.size} bytes; items hold at most ${this.maxValueBytes}`,
          'keep large files elsewhere and only their key in a credential',
        );
      }
      value = readFileSync(fd);
    } catch (err) {
      if (err instanceof TooLargeError || err instanceof DeniedError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new UnavailableError(
        `cannot read systemd credential ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        `a credential is a file in $CREDENTIALS_DIRECTORY (${this.dir}), set by the unit's LoadCredential= or SetCredential=`,
      );
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    if (isEncryptedCredential(value)) {
      value.fill(0);
      throw new CorruptError(
        `systemd credential ${file} in ${this.dir} is still encrypted (as \`systemd-creds encrypt\` wrote it): ` +
          'systemd decrypts a credential only for the unit that loads it',
        'load it with LoadCredentialEncrypted= in the unit that runs entraclaw, or point $CREDENTIALS_DIRECTORY ' +
          'at decrypted credentials (`systemd-creds decrypt` into a directory only you can read)',
      );
    }
    return { ...this.meta(st, ids), value };
  }

  async set(): Promise<ItemMeta> {
    throw readOnlyError();
  }

  async delete(): Promise<boolean> {
    throw readOnlyError();
  }

  async list(filter?: { service?: string }): Promise<ItemMeta[]> {
    const out: ItemMeta[] = [];
    // An item under several names is listed once, from the file get reads.
    for (const file of [...this.credentialFiles().values()].sort()) {
      const ids = parseCredentialName(file)!;
      if (filter?.service !== undefined && ids.service !== filter.service) continue;
      out.push(this.meta(statSync(join(this.dir, file)), ids));
    }
    // File names sort `big1@x` before `big@x` ('1' < '@'): list in the order every other store does.
    return out.sort(byServiceThenAccount);
  }

  async close(): Promise<void> {}
}

function directory(ctx: StoreContext): { dir?: string; reason: string } {
  const dir = ctx.env.CREDENTIALS_DIRECTORY;
  if (!dir) return { reason: 'not running as a systemd service ($CREDENTIALS_DIRECTORY is not set)' };
  try {
    if (!statSync(dir).isDirectory()) return { reason: `$CREDENTIALS_DIRECTORY (${dir}) is not a directory` };
  } catch (err) {
    return {
      reason: `$CREDENTIALS_DIRECTORY (${dir}) is not readable: ${(err as NodeJS.ErrnoException).code}`,
    };
  }
  return { dir, reason: `reading credentials from ${dir}` };
}

/** The read-only systemd credentials backend. */
export const backend: StoreBackend = {
  async probe(ctx): Promise<StoreProbe> {
    const { dir, reason } = directory(ctx);
    return {
      name: 'systemd-creds',
      available: dir !== undefined,
      reason,
      persistence: 'process-only',
      readOnly: true,
      boundary: BOUNDARY,
    };
  },
  async open(ctx): Promise<Store> {
    const { dir, reason } = directory(ctx);
    if (!dir) {
      throw new UnavailableError(
        `store "systemd-creds" is unavailable: ${reason}`,
        // Unset, only a store named explicitly gets here, and selectStore's hint (doctor) covers it.
        ctx.env.CREDENTIALS_DIRECTORY
          ? '$CREDENTIALS_DIRECTORY is set, so the credentials there are read first (systemd sets it for a unit with LoadCredential=): point it at that directory, or unset it where entraclaw is not running as such a service'
          : undefined,
      );
    }
    return new SystemdCredsStore(dir);
  },
};
