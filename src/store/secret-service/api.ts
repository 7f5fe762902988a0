import { type Bus, DBusError } from './bus.js';
import { DH_ALGORITHM, decryptSecret, encryptSecret, startDhExchange } from './dh-session.js';

// Calls are built by hand from the spec rather than through dbus-native's introspecting proxies: that
// saves an Introspect round trip and an XML parse per object, which would dominate a warm `get`.
const SECRETS = 'org.freedesktop.secrets';
const SERVICE_PATH = '/org/freedesktop/secrets';
const SERVICE = 'org.freedesktop.Secret.Service';
const ITEM = 'org.freedesktop.Secret.Item';
const COLLECTION = 'org.freedesktop.Secret.Collection';
const PROPERTIES = 'org.freedesktop.DBus.Properties';
const CONTENT_TYPE = 'application/octet-stream';
/** The object path the spec uses for "no prompt needed" and "no such alias". */
export const NO_OBJECT = '/';
/** Where gnome-keyring and KWallet keep the login collection when no `default` alias is set. */
export const LOGIN_COLLECTION = '/org/freedesktop/secrets/collection/login';

/** An open encrypted session: its object path and the AES key both sides derived. */
export interface Session {
  path: string;
  key: Buffer;
}

/** An item's properties, as the Secret Service reports them (times in seconds since the epoch). */
export interface ItemProps {
  label: string;
  attributes: Record<string, string>;
  created: number;
  modified: number;
}

// gnome-keyring (GDBus) answers UnknownMethod for a path with no object; the spec names NoSuchObject.
const GONE = new Set([
  'org.freedesktop.Secret.Error.NoSuchObject',
  'org.freedesktop.DBus.Error.UnknownObject',
  'org.freedesktop.DBus.Error.UnknownMethod',
]);

/** Whether a call failed because its object is gone (item deleted, collection removed or never made). */
export function isGone(err: unknown): boolean {
  return err instanceof DBusError && GONE.has(err.dbusName);
}

type Variant = [unknown, [unknown]];
type Pairs<T> = [string, T][];

const variantValue = (v: unknown): unknown => (v as Variant)[1][0];
const toPairs = (attrs: Record<string, string>): Pairs<string> => Object.entries(attrs);

/** The Secret Service methods Entraclaw needs, over one bus connection. */
export class SecretServiceApi {
  constructor(private readonly bus: Bus) {}

  private on(path: string, iface: string, member: string, signature?: string, body?: unknown[]) {
    return this.bus.call({ destination: SECRETS, path, interface: iface, member, signature, body });
  }

  private service(member: string, signature?: string, body?: unknown[]) {
    return this.on(SERVICE_PATH, SERVICE, member, signature, body);
  }

  /** Whether a Secret Service provider is running or can be started on this bus. */
  async providerPresent(): Promise<boolean> {
    const dbus = {
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
    };
    const [owned] = await this.bus.call({ ...dbus, member: 'NameHasOwner', signature: 's', body: [SECRETS] });
    if (owned === true) return true;
    const [activatable] = await this.bus.call({ ...dbus, member: 'ListActivatableNames' });
    return (activatable as string[]).includes(SECRETS);
  }

  /** Opens the DH-encrypted session; a provider without it answers org.freedesktop.DBus.Error.NotSupported. */
  async openSession(): Promise<Session> {
    const dh = startDhExchange();
    const [output, path] = await this.service('OpenSession', 'sv', [DH_ALGORITHM, ['ay', dh.publicKey]]);
    return { path: path as string, key: dh.deriveKey(variantValue(output) as Buffer) };
  }

  /** Ends a session; the provider forgets its key. */
  async closeSession(session: Session): Promise<void> {
    await this.on(session.path, 'org.freedesktop.Secret.Session', 'Close');
  }

  /** The collection behind the `default` alias, or the login collection when no alias is set. */
  async defaultCollection(): Promise<string> {
    const [path] = await this.service('ReadAlias', 's', ['default']);
    return path === NO_OBJECT ? LOGIN_COLLECTION : (path as string);
  }

  /** Whether a collection is locked; undefined when there is no such collection. */
  async collectionLocked(collection: string): Promise<boolean | undefined> {
    try {
      const [locked] = await this.on(collection, PROPERTIES, 'Get', 'ss', [COLLECTION, 'Locked']);
      return variantValue(locked) === true;
    } catch (err) {
      if (isGone(err)) return undefined;
      throw err;
    }
  }

  /** Items (in any collection) whose attributes include all of `attrs`, split by lock state. */
  async searchItems(attrs: Record<string, string>): Promise<{ unlocked: string[]; locked: string[] }> {
    const [unlocked, locked] = await this.service('SearchItems', 'a{ss}', [toPairs(attrs)]);
    return { unlocked: unlocked as string[], locked: locked as string[] };
  }

  /** Every property of an item in one round trip. */
  async itemProps(item: string): Promise<ItemProps> {
    const [all] = await this.on(item, PROPERTIES, 'GetAll', 's', [ITEM]);
    const props = new Map(all as Pairs<unknown>);
    return {
      label: String(variantValue(props.get('Label')) ?? ''),
      attributes: Object.fromEntries(variantValue(props.get('Attributes')) as Pairs<string>),
      created: Number(variantValue(props.get('Created'))),
      modified: Number(variantValue(props.get('Modified'))),
    };
  }

  /** An item's secret, decrypted with the session key. */
  async getSecret(item: string, session: Session): Promise<Buffer> {
    const [secret] = await this.on(item, ITEM, 'GetSecret', 'o', [session.path]);
    const [, iv, ciphertext] = secret as [string, Buffer, Buffer, string];
    return decryptSecret(session.key, iv, ciphertext);
  }

  /** Replaces an item's secret. */
  async setSecret(item: string, session: Session, value: Buffer): Promise<void> {
    await this.on(item, ITEM, 'SetSecret', '(oayays)', [wireSecret(session, value)]);
  }

  /** Replaces an item's label and attributes. */
  async setLabelAndAttributes(item: string, label: string, attrs: Record<string, string>): Promise<void> {
    await Promise.all([
      this.on(item, PROPERTIES, 'Set', 'ssv', [ITEM, 'Label', ['s', label]]),
      this.on(item, PROPERTIES, 'Set', 'ssv', [ITEM, 'Attributes', ['a{ss}', toPairs(attrs)]]),
    ]);
  }

  /**
   * Creates an item (with replace=true: an item a concurrent writer made with all these attributes is
   * overwritten, not duplicated); returns its path and a prompt path.
   */
  async createItem(
    collection: string,
    session: Session,
    item: { label: string; attributes: Record<string, string>; value: Buffer },
  ): Promise<{ item: string; prompt: string }> {
    const props = [
      [`${ITEM}.Label`, ['s', item.label]],
      [`${ITEM}.Attributes`, ['a{ss}', toPairs(item.attributes)]],
    ];
    const [path, prompt] = await this.on(collection, COLLECTION, 'CreateItem', 'a{sv}(oayays)b', [
      props,
      wireSecret(session, item.value),
      true,
    ]);
    return { item: path as string, prompt: prompt as string };
  }

  /** Deletes an item; returns a prompt path (NO_OBJECT when none is needed). */
  async deleteItem(item: string): Promise<string> {
    const [prompt] = await this.on(item, ITEM, 'Delete');
    return prompt as string;
  }

  /** Withdraws a prompt the provider asked for, so nothing pops up on the user's screen. */
  async dismissPrompt(prompt: string): Promise<void> {
    await this.on(prompt, 'org.freedesktop.Secret.Prompt', 'Dismiss');
  }
}

function wireSecret(session: Session, value: Buffer): [string, Buffer, Buffer, string] {
  const { iv, ciphertext } = encryptSecret(session.key, value);
  return [session.path, iv, ciphertext, CONTENT_TYPE];
}
