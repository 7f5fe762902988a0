import { isItemName } from '../item-rules.js';
import type { ItemInput, ItemKind, ItemMeta } from '../types.js';
import type { ItemProps } from './api.js';

// `service` and `account` are the lookup pair, so `secret-tool lookup service S account A` finds our
// items and items other tools store under that pair are ours to read (and Python keyring's, under
// `service` + `username`, when no item has the `account`). Our items carry `username` too, so Python
// keyring and keyring-rs (@napi-rs/keyring), which look up `service` + `username`, find them. The rest is
// metadata that must survive a round trip; the schema name lets people tell our items apart in Seahorse.
/** The xdg:schema value on every item Entraclaw writes. */
export const SCHEMA = 'io.entraclaw.Secret';
const SCHEMA_ATTR = 'xdg:schema';
const KIND_ATTR = 'entraclaw.kind';
const EXPIRES_ATTR = 'entraclaw.expires_at';
const SCOPE_ATTR = 'entraclaw.scope';
const KINDS: readonly string[] = ['password', 'token', 'key'] satisfies ItemKind[];

/** The label an item gets when the caller gives none. */
export function defaultLabel(service: string, account: string): string {
  return `entraclaw: ${service}/${account}`;
}

/** The attributes for `input`; attributes another tool put on the item are kept, ours are replaced. */
export function itemAttributes(
  input: ItemInput,
  existing: Record<string, string> = {},
): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(existing)) {
    if (k !== SCHEMA_ATTR && !k.startsWith('entraclaw.')) attrs[k] = v;
  }
  Object.assign(attrs, {
    service: input.service,
    account: input.account,
    [SCHEMA_ATTR]: SCHEMA,
    [KIND_ATTR]: input.kind ?? 'password',
  });
  // Another tool's `username` on an item with an `account` of its own is that tool's to keep.
  attrs[USERNAME_ATTR] ??= input.account;
  if (input.expiresAt !== undefined) attrs[EXPIRES_ATTR] = input.expiresAt;
  if (input.scope !== undefined) attrs[SCOPE_ATTR] = input.scope;
  return attrs;
}

/**
 * The attribute that names the account on items Python keyring and keyring-rs store (`service` +
 * `username`): such an item is addressed as service/username when it has no `account` of its own.
 */
export const USERNAME_ATTR = 'username';

/** An item's metadata, or undefined when it lacks a service and an account (not an item we address). */
export function itemMeta(props: ItemProps): ItemMeta | undefined {
  const a = props.attributes;
  const account = a.account ?? a[USERNAME_ATTR];
  if (a.service === undefined || account === undefined) return undefined;
  // Another tool may store names no Entraclaw path can address (empty, over 256 bytes, a newline).
  if (!isItemName(a.service, account)) return undefined;
  const kind = a[KIND_ATTR];
  return {
    service: a.service,
    account,
    kind: kind !== undefined && KINDS.includes(kind) ? (kind as ItemKind) : 'password',
    ...(props.label ? { label: props.label } : {}),
    createdAt: isoSeconds(props.created),
    updatedAt: isoSeconds(props.modified),
    ...(a[EXPIRES_ATTR] !== undefined ? { expiresAt: a[EXPIRES_ATTR] } : {}),
    ...(a[SCOPE_ATTR] !== undefined ? { scope: a[SCOPE_ATTR] } : {}),
  };
}

/**
 * Of several items under one service/account pair (another tool may have added its own), the one we
 * read and update: ours before foreign ones, then the most recently modified, so `set` then `get` agree.
 * Times have whole seconds, so a tie is common: it goes to the newest item by object path (the provider
 * numbers them as it creates them), never to the order a search returned, which differs between searches
 * and would make `ls` show another item than `get` reads.
 */
export function preferredItem<T extends { path: string; props: ItemProps }>(
  candidates: readonly T[],
): T | undefined {
  const ours = (c: T) => c.props.attributes[SCHEMA_ATTR] === SCHEMA;
  const better = (a: T, b: T) =>
    ours(a) !== ours(b)
      ? ours(a)
      : a.props.modified !== b.props.modified
        ? a.props.modified > b.props.modified
        : a.props.created !== b.props.created
          ? a.props.created > b.props.created
          : laterPath(a.path, b.path);
  return candidates.reduce<T | undefined>((best, c) => (!best || better(c, best) ? c : best), undefined);
}

// gnome-keyring's item paths end in a number (…/login/9, …/login/12): longer is later, then by text.
function laterPath(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b;
}

function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}
