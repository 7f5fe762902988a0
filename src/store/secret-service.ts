import { dirname, join } from 'node:path';
import {
  CorruptError,
  EntraclawError,
  LockedError,
  NotFoundError,
  TooLargeError,
  UnavailableError,
  UsageError,
} from '../errors.js';
import { withFileLock } from '../lib/file-lock.js';
import { makeOwnDir } from '../lib/make-dir.js';
import { itemName } from '../lib/percent.js';
import { shellQuote } from '../lib/shell.js';
import { assertItemName, byServiceThenAccount } from './item-rules.js';
import { type ItemProps, isGone, NO_OBJECT, SecretServiceApi, type Session } from './secret-service/api.js';
import {
  defaultLabel,
  itemAttributes,
  itemMeta,
  preferredItem,
  USERNAME_ATTR,
} from './secret-service/attributes.js';
import { Bus, BusConnectionError, BusTimeoutError, DBusError } from './secret-service/bus.js';
import { DecryptError, DH_ALGORITHM } from './secret-service/dh-session.js';
import type { Item, ItemInput, ItemMeta, Store, StoreBackend, StoreContext, StoreProbe } from './types.js';
import { MAX_VALUE_BYTES } from './types.js';

const NAME = 'secret-service';
const DEFAULT_TIMEOUT_MS = 3000;
const BOUNDARY =
  'Secret Service: encrypted at rest by the keyring daemon; while unlocked, any process of this user can read these items over D-Bus';
// `gnome-keyring-daemon --unlock` alone does not unlock a running daemon's keyring: it has to start anew
// (--replace) with the password on stdin, read without echo.
const RESTART_UNLOCKED = '`read -rs P && printf %s "$P" | gnome-keyring-daemon --replace --unlock`';
const LOCKED_HINT = `unlock the login keyring (on a desktop: log in, or unlock it in Passwords and Keys; without one, restart it unlocked: ${RESTART_UNLOCKED}), or pick another store with \`--store encrypted-file\``;
const OTHER_STORE_HINT = 'pick another store with `--store encrypted-file`';
const IS_LOCKED = 'org.freedesktop.Secret.Error.IsLocked';

/** What a failing operation was doing, for the error message. */
interface Op {
  action: string;
  item?: string;
}

function collectionName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * A LockedError naming the collection and, when known, the item; `collection` is an object path. The hint
 * for the default collection is the login keyring's; another collection (a second keyring) is unlocked
 * by itself, which only the user can do.
 */
function lockedError(
  collection: string,
  names?: { service: string; account: string },
  isDefault = true,
): LockedError {
  const where = `the Secret Service collection "${collectionName(collection)}"`;
  const subject = names
    ? `${itemName(names.service, names.account)} is in ${where}, which is locked`
    : `${where} is locked`;
  const hint = isDefault
    ? LOCKED_HINT
    : `unlock the collection "${collectionName(collection)}" (Seahorse${
        names
          ? `, or \`secret-tool search --unlock service ${shellQuote(names.service)} account ${shellQuote(names.account)}\``
          : ''
      }), or pick another store with \`--store encrypted-file\``;
  return new LockedError(`${subject} (store "${NAME}"); Entraclaw never opens an unlock prompt`, hint);
}

// A write whose call went unanswered may still have been done by the keyring daemon (a slow CreateItem of
// a large value lands after we gave up): the user must not take the old value for the current one.
function unknownOutcome(op: Op): string {
  return op.action === 'store' || op.action === 'delete'
    ? `; the keyring daemon may have done it all the same`
    : '';
}

function unknownOutcomeHint(op: Op): string {
  return op.action === 'store' || op.action === 'delete'
    ? 'see what is there with `entraclaw secret ls --store secret-service`, and run the command again; '
    : '';
}

/** Translates any failure of this backend into an Entraclaw error: the one place that maps D-Bus errors. */
export function decodeError(err: unknown, op: Op): EntraclawError {
  if (err instanceof EntraclawError) return err;
  const what = op.item ?? 'the item';
  if (err instanceof BusTimeoutError) {
    return new UnavailableError(
      `the Secret Service did not answer ${err.member} within ${err.timeoutMs} ms (trying to ${op.action}${op.item ? ` ${op.item}` : ''})${unknownOutcome(op)}`,
      `${unknownOutcomeHint(op)}the session bus or the keyring daemon is slow or stuck; restart it, raise [credentials] timeout_ms in agent.toml, or ${OTHER_STORE_HINT}`,
      { cause: err },
    );
  }
  if (err instanceof BusConnectionError) {
    return new UnavailableError(`cannot use the D-Bus session bus: ${err.message}`, OTHER_STORE_HINT, {
      cause: err,
    });
  }
  if (err instanceof DecryptError) {
    return new CorruptError(`${what} from the Secret Service did not decrypt: ${err.message}`, undefined, {
      cause: err,
    });
  }
  if (!(err instanceof DBusError)) {
    return new EntraclawError('internal', `the Secret Service client failed to ${op.action}`, undefined, {
      cause: err,
    });
  }
  if (isGone(err)) {
    return new NotFoundError(`${what} disappeared from the Secret Service while trying to ${op.action}`);
  }
  switch (err.dbusName) {
    case 'org.freedesktop.DBus.Error.ServiceUnknown':
    case 'org.freedesktop.DBus.Error.NameHasNoOwner':
      return new UnavailableError(
        'no Secret Service provider on the session bus (org.freedesktop.secrets is not running and cannot be started)',
        `start gnome-keyring-daemon (or another Secret Service provider), or ${OTHER_STORE_HINT}`,
        { cause: err },
      );
    case 'org.freedesktop.DBus.Error.NotSupported':
      if (err.member === 'OpenSession') {
        return new UnavailableError(
          `the Secret Service provider refused the encrypted session (${DH_ALGORITHM}); Entraclaw never sends secrets unencrypted over D-Bus`,
          OTHER_STORE_HINT,
          { cause: err },
        );
      }
      break;
    case IS_LOCKED:
      return new LockedError(
        `${what} is locked in the Secret Service (store "${NAME}"); Entraclaw never opens an unlock prompt`,
        LOCKED_HINT,
        { cause: err },
      );
    case 'org.freedesktop.DBus.Error.NoReply':
    case 'org.freedesktop.DBus.Error.Timeout':
    case 'org.freedesktop.DBus.Error.TimedOut':
      return new UnavailableError(
        `the Secret Service did not answer ${err.member} (trying to ${op.action}${op.item ? ` ${op.item}` : ''})${unknownOutcome(op)}`,
        `${unknownOutcomeHint(op)}${OTHER_STORE_HINT}`,
        { cause: err },
      );
  }
  return new EntraclawError(
    'internal',
    `the Secret Service failed to ${op.action}: ${err.dbusName}: ${err.message}`,
    undefined,
    { cause: err },
  );
}

function connect(ctx: StoreContext): Bus {
  const address = ctx.env.DBUS_SESSION_BUS_ADDRESS;
  if (!address) throw new UnavailableError('no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)');
  return Bus.connect(address, ctx.timeoutMs > 0 ? ctx.timeoutMs : DEFAULT_TIMEOUT_MS);
}

/** One connection to the Secret Service: the bus, its encrypted session and the default collection. */
interface Link {
  bus: Bus;
  api: SecretServiceApi;
  session: Session;
  collection: string;
}

/** Connects to the session bus, opens an encrypted session and finds the (unlocked) default collection. */
async function openLink(ctx: StoreContext): Promise<Link> {
  const bus = connect(ctx);
  try {
    const api = new SecretServiceApi(bus);
    // Refusing a locked collection here, not at the first read, lets `auto` fall back to another store.
    const [session, collection] = await Promise.all([api.openSession(), usableCollection(api)]);
    return { bus, api, session, collection };
  } catch (err) {
    bus.close();
    throw err;
  }
}

/** Ends a link: the session (best effort), the bus connection and the session key. */
async function closeLink(link: Link): Promise<void> {
  try {
    await link.api.closeSession(link.session);
  } catch {
    // Best effort: the provider also drops a session when its connection goes away, just below.
  } finally {
    link.bus.close();
    link.session.key.fill(0);
  }
}

/**
 * Whether a call failed because its link is of no more use: the bus connection went away (the session bus
 * stopped), or the provider no longer knows our session (gnome-keyring restarted). A new link may work.
 */
function lostLink(err: unknown): boolean {
  return (
    err instanceof BusConnectionError ||
    (err instanceof DBusError && err.dbusName === 'org.freedesktop.Secret.Error.NoSession')
  );
}

class SecretServiceStore implements Store {
  readonly name = NAME;
  readonly persistence = 'until-delete' as const;
  readonly readOnly = false;
  readonly maxValueBytes = MAX_VALUE_BYTES;
  private closed = false;
  /** Where each service/account pair was last found, so a warm `get` needs no search. */
  private readonly paths = new Map<string, string>();
  /** The link in use; undefined once it was lost, until the next call opens another. */
  private link: Link | undefined;
  /** A new link being opened, shared by the calls that wait for it. */
  private opening: Promise<Link> | undefined;

  constructor(
    private readonly ctx: StoreContext,
    /** Undefined: opened at the first call (a keyring locked when the agent started). */
    link: Link | undefined,
    /** flock()ed around each set: see set(). */
    private readonly lockPath: string,
  ) {
    this.link = link;
  }

  /**
   * Runs `fn` on the current link, mapping failures to Entraclaw errors. A long-lived store (the agent's)
   * outlives restarts of the keyring daemon and of the session bus: a call that finds its link lost is
   * run once more on a new one, and while none can be opened each call says why.
   */
  private async run<T>(op: Op, fn: (link: Link) => Promise<T>): Promise<T> {
    try {
      const link = await this.current();
      try {
        return await fn(link);
      } catch (err) {
        if (!lostLink(err)) throw err;
        this.drop(link);
        return await fn(await this.current());
      }
    } catch (err) {
      throw decodeError(err, op);
    }
  }

  /** The link in use, or a new one when the last was lost. */
  private current(): Promise<Link> {
    if (this.closed) return Promise.reject(new UsageError('this secret-service store was closed'));
    if (this.link) return Promise.resolve(this.link);
    this.opening ??= openLink(this.ctx)
      .then((link) => {
        if (this.closed) {
          void closeLink(link);
          throw new UsageError('this secret-service store was closed');
        }
        this.link = link;
        return link;
      })
      .finally(() => {
        this.opening = undefined;
      });
    return this.opening;
  }

  /** Forgets a lost link (and the item paths found through it): the next call opens a new one. */
  private drop(link: Link): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.paths.clear();
    void closeLink(link);
  }

  /**
   * The unlocked item we address as service/account, else the one Python keyring stores as
   * service/username; props are fetched only when several compete.
   */
  private async find(link: Link, service: string, account: string) {
    let { unlocked, locked } = await link.api.searchItems({ service, account });
    if (unlocked.length === 0 && locked.length === 0) {
      ({ unlocked, locked } = await link.api.searchItems({ service, [USERNAME_ATTR]: account }));
    }
    const first = unlocked[0];
    if (first === undefined) {
      if (locked[0] !== undefined) throw this.lockedItem(link, locked[0], { service, account });
      return undefined;
    }
    if (unlocked.length === 1) return { path: first, props: undefined };
    const all = await Promise.all(
      unlocked.map(async (path) => ({ path, props: await link.api.itemProps(path) })),
    );
    return preferredItem(all);
  }

  async get(service: string, account: string): Promise<Item | undefined> {
    assertNames(service, account);
    const key = pathKey(service, account);
    return this.run({ action: 'read', item: itemName(service, account) }, async (link) => {
      // A warm read skips SearchItems: the remembered path is re-checked by the attributes that come back
      // with the secret, and a path whose item is gone or re-used falls through to a fresh search.
      const cached = this.paths.get(key);
      if (cached !== undefined) {
        const item = await this.read(link, cached, service, account).catch((err: unknown) => {
          // Locked since: the search below finds which collection it is in, for the error and its hint.
          if (isGone(err) || (err instanceof DBusError && err.dbusName === IS_LOCKED)) return undefined;
          throw err;
        });
        if (item) return item;
        this.paths.delete(key);
      }
      const hit = await this.find(link, service, account);
      if (!hit) return undefined;
      this.paths.set(key, hit.path);
      return this.read(link, hit.path, service, account, hit.props);
    });
  }

  /** An item's metadata and secret in one round trip; undefined when it is no longer service/account. */
  private async read(
    link: Link,
    path: string,
    service: string,
    account: string,
    known?: ItemProps,
  ): Promise<Item | undefined> {
    const [props, value] = await Promise.all([
      known ?? link.api.itemProps(path),
      link.api.getSecret(path, link.session),
    ]);
    const meta = itemMeta(props);
    if (meta?.service !== service || meta.account !== account) {
      value.fill(0);
      return undefined;
    }
    // Another tool may have stored more than we ever write; refused as every store refuses it, rather than
    // served here and then too large for the daemon's frames.
    if (value.length > this.maxValueBytes) {
      value.fill(0);
      throw new TooLargeError(
        `${itemName(service, account)} in ${NAME} is ${value.length} bytes, more than the ${this.maxValueBytes} Entraclaw handles (another tool stored it)`,
        `read it with the tool that stored it (e.g. \`secret-tool lookup service ${shellQuote(service)} account ${shellQuote(account)}\`), or store a smaller value`,
      );
    }
    return { ...meta, value };
  }

  async set(input: ItemInput): Promise<ItemMeta> {
    const { service, account, value } = input;
    assertNames(service, account);
    if (value.length > this.maxValueBytes) {
      throw new TooLargeError(
        `the value for ${itemName(service, account)} is ${value.length} bytes; ${NAME} holds at most ${this.maxValueBytes}`,
      );
    }
    const item = itemName(service, account);
    // Find-then-create is not atomic on the bus: two of our writers at once would both create, leaving
    // duplicates (and an old value readable after a rotation). Our writers take turns; others' are theirs.
    makeOwnDir(dirname(this.lockPath), 'XDG_RUNTIME_DIR');
    return withFileLock(this.lockPath, () => this.store(input, item));
  }

  private store(input: ItemInput, item: string): Promise<ItemMeta> {
    const { service, account, value } = input;
    return this.run({ action: 'store', item }, async (link) => {
      const label = input.label ?? defaultLabel(service, account);
      const hit = await this.find(link, service, account);
      let path: string;
      if (hit) {
        // Updated in place, not through CreateItem(replace): gnome-keyring replaces only an item whose
        // attributes all match, so a changed expiry or scope would leave a duplicate behind and reset
        // the creation time.
        const existing = hit.props ?? (await link.api.itemProps(hit.path));
        await Promise.all([
          link.api.setSecret(hit.path, link.session, value),
          link.api.setLabelAndAttributes(hit.path, label, itemAttributes(input, existing.attributes)),
        ]);
        path = hit.path;
      } else {
        const created = await link.api.createItem(link.collection, link.session, {
          label,
          attributes: itemAttributes(input),
          value,
        });
        if (created.prompt !== NO_OBJECT) {
          await link.api.dismissPrompt(created.prompt);
          throw lockedError(link.collection, { service, account });
        }
        path = created.item;
      }
      this.paths.set(pathKey(service, account), path);
      const meta = itemMeta(await link.api.itemProps(path));
      if (!meta)
        throw new EntraclawError(
          'internal',
          `${item} lost its service/account attributes after being stored`,
        );
      return meta;
    });
  }

  async delete(service: string, account: string): Promise<boolean> {
    assertNames(service, account);
    const item = itemName(service, account);
    return this.run({ action: 'delete', item }, async (link) => {
      this.paths.delete(pathKey(service, account));
      const found = await Promise.all([
        link.api.searchItems({ service, account }),
        link.api.searchItems({ service, [USERNAME_ATTR]: account }),
      ]);
      const locked = found.flatMap((f) => f.locked);
      // A service/username item that also has another `account` is that account's, not this one's.
      const byUsername = await Promise.all(
        found[1].unlocked.map(async (path) => ({ path, meta: itemMeta(await link.api.itemProps(path)) })),
      );
      const unlocked = [
        ...new Set([
          ...found[0].unlocked,
          ...byUsername.filter((c) => c.meta?.account === account).map((c) => c.path),
        ]),
      ];
      if (locked[0] !== undefined) throw this.lockedItem(link, locked[0], { service, account });
      // Every item under the pair goes, so a foreign duplicate cannot resurface in the next `get`.
      for (const path of unlocked) {
        const prompt = await link.api.deleteItem(path);
        if (prompt !== NO_OBJECT) {
          await link.api.dismissPrompt(prompt);
          throw this.lockedItem(link, path, { service, account });
        }
      }
      return unlocked.length > 0;
    });
  }

  /** A LockedError for an item at `path`, with the hint for the collection it is in. */
  private lockedItem(link: Link, path: string, names: { service: string; account: string }): LockedError {
    const collection = collectionOf(path);
    return lockedError(collection, names, collection === link.collection);
  }

  /**
   * Every pair once, with the metadata of the item `get` reads for it. Items in a locked collection other
   * than the default one (a second keyring the user keeps locked) are left out rather than failing the
   * whole listing: they cannot be read until it is unlocked, and get, set and rm of such a pair say so.
   */
  async list(filter?: { service?: string }): Promise<ItemMeta[]> {
    return this.run({ action: 'list items' }, async (link) => {
      const query: Record<string, string> = filter?.service !== undefined ? { service: filter.service } : {};
      const { unlocked, locked } = await link.api.searchItems(query);
      if (locked.some((path) => collectionOf(path) === link.collection)) throw lockedError(link.collection);
      const all = await Promise.all(
        unlocked.map(async (path) => ({ path, props: await link.api.itemProps(path) })),
      );
      const byPair = new Map<string, Array<{ path: string; props: ItemProps; meta: ItemMeta }>>();
      for (const { path, props } of all) {
        const meta = itemMeta(props);
        if (meta === undefined) continue;
        const key = pathKey(meta.service, meta.account);
        byPair.set(key, [...(byPair.get(key) ?? []), { path, props, meta }]);
      }
      const metas: ItemMeta[] = [];
      for (const candidates of byPair.values()) {
        // As find(): items with an `account` attribute of their own come before Python keyring's.
        const withAccount = candidates.filter((c) => c.props.attributes.account !== undefined);
        metas.push(preferredItem(withAccount.length > 0 ? withAccount : candidates)!.meta);
      }
      return metas.sort(byServiceThenAccount);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const link = this.link;
    this.link = undefined;
    if (link) await closeLink(link);
  }
}

function assertNames(service: string, account: string): void {
  assertItemName(service, 'service');
  assertItemName(account, 'account');
}

function pathKey(service: string, account: string): string {
  // Names never contain NUL (assertItemName), so the pair maps to one key.
  return `${service}\0${account}`;
}

function collectionOf(itemPath: string): string {
  return itemPath.slice(0, itemPath.lastIndexOf('/'));
}

/** The default collection, which new items go to; it must exist and be unlocked. */
async function usableCollection(api: SecretServiceApi): Promise<string> {
  const collection = await api.defaultCollection();
  const locked = await api.collectionLocked(collection);
  if (locked === undefined) {
    throw new UnavailableError(
      `the Secret Service has no default collection (${collectionName(collection)} does not exist)`,
      `create the login keyring (log in to the desktop once, or without one: ${RESTART_UNLOCKED}, which makes it with that password), or ${OTHER_STORE_HINT}`,
    );
  }
  if (locked) throw lockedError(collection);
  return collection;
}

/** The freedesktop Secret Service backend (gnome-keyring, KeePassXC, KWallet) over an encrypted D-Bus session. */
export const backend: StoreBackend = {
  async probe(ctx): Promise<StoreProbe> {
    const base = { name: NAME, persistence: 'until-delete', readOnly: false, boundary: BOUNDARY } as const;
    let bus: Bus | undefined;
    try {
      bus = connect(ctx);
      const api = new SecretServiceApi(bus);
      if (!(await api.providerPresent())) {
        return {
          ...base,
          available: false,
          reason:
            'no Secret Service provider on the session bus (org.freedesktop.secrets is neither running nor activatable)',
        };
      }
      const collection = await usableCollection(api);
      await api.closeSession(await api.openSession());
      return {
        ...base,
        available: true,
        reason: `the Secret Service ${collectionName(collection)} collection is unlocked`,
      };
    } catch (err) {
      return { ...base, available: false, reason: decodeError(err, { action: 'probe' }).message };
    } finally {
      bus?.close();
    }
  },

  async open(ctx, opts): Promise<Store> {
    const lockPath = join(ctx.paths.runtime, 'secret-service.lock');
    try {
      return new SecretServiceStore(ctx, await openLink(ctx), lockPath);
    } catch (err) {
      const why = decodeError(err, { action: 'open an encrypted session' });
      // The agent started at login before the keyring was unlocked: exiting would only have the service
      // manager restart it until it gives up; a store that says "locked" per request serves once unlocked.
      if (why.code !== 'locked' || !opts?.whenLocked) throw why;
      opts.whenLocked.deferred(why);
      return new SecretServiceStore(ctx, undefined, lockPath);
    }
  },
};
