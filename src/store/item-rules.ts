import { ExpiredError, UsageError } from '../errors.js';
import { itemName } from '../lib/percent.js';
import { shellQuote } from '../lib/shell.js';
import type { ItemKind, ItemMeta } from './types.js';

const MAX_NAME_BYTES = 256;
const KINDS: readonly ItemKind[] = ['password', 'token', 'key'];

/** Rejects service/account names no store can hold faithfully: empty, too long, or with NUL/newlines. */
export function assertItemName(value: string, field: 'service' | 'account'): void {
  const hint = `give ${field === 'account' ? 'an' : 'a'} ${field} name of 1-${MAX_NAME_BYTES} bytes on one line`;
  if (value.length === 0) throw new UsageError(`${field} must not be empty`, hint);
  if (Buffer.byteLength(value) > MAX_NAME_BYTES)
    throw new UsageError(`${field} is longer than ${MAX_NAME_BYTES} bytes`, hint);
  if (/[\0\n\r]/.test(value))
    throw new UsageError(`${field} must not contain NUL or newline characters`, hint);
  // Half a surrogate pair has no UTF-8 form: a store would keep U+FFFD, another name than the one given.
  if (LONE_SURROGATE.test(value)) throw new UsageError(`${field} is not valid Unicode`, hint);
}

/**
 * Whether an item stored by another tool (a keyring attribute, a credential file's name, a key description)
 * has names every path can address: an item listed under a name that every read refuses would break
 * whatever walks the listing (`secret-tool search` reads each item it lists).
 */
export function isItemName(service: string, account: string): boolean {
  try {
    assertItemName(service, 'service');
    assertItemName(account, 'account');
    return true;
  } catch {
    return false;
  }
}

/** Largest label or scope, in UTF-8 bytes: what the daemon's protocol accepts (MAX_TEXT_BYTES). */
export const MAX_TEXT_BYTES = 1024;

/** Rejects a label or scope over MAX_TEXT_BYTES: the daemon could not take or hand out such an item. */
export function assertItemText(value: string | undefined, field: 'label' | 'scope'): void {
  if (value !== undefined && Buffer.byteLength(value) > MAX_TEXT_BYTES) {
    throw new UsageError(
      `${field} is longer than ${MAX_TEXT_BYTES} bytes`,
      `give a ${field} of at most ${MAX_TEXT_BYTES} bytes`,
    );
  }
}

/** Matches half a UTF-16 surrogate pair (with the u flag a whole pair is one code point, never matched). */
export const LONE_SURROGATE = /\p{Cs}/u;

/** Parses a --kind value. */
export function parseKind(value: string | undefined): ItemKind | undefined {
  if (value === undefined) return undefined;
  if (!(KINDS as readonly string[]).includes(value)) {
    throw new UsageError(`unknown kind "${value}"`, `use one of: ${KINDS.join(', ')}`);
  }
  return value as ItemKind;
}

/** Whether `value` is a date and time without Z or an offset (local time: another instant elsewhere). */
export function lacksTimezone(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value);
}

const TIME_HINT = 'use e.g. 2026-12-31T23:59:00Z';

/**
 * Whether `value` is a date and a time with spaces between them, as `date --rfc-3339=seconds` and Python's
 * str(datetime) write it: refused (a space splits an unquoted argument, and ISO-8601 readers of other
 * languages' clients want the T), but said as such rather than "not an ISO-8601 time".
 */
export function spaceForT(value: string): boolean {
  return /^\d{4}-\d{2}-\d{2} +\d{2}:/.test(value);
}

/** Parses an ISO-8601 timestamp with a timezone into canonical UTC form, within the years 0000-9999. */
export function parseTimestamp(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const iso = readTimestamp(value, flag);
  if (!withinFourDigitYears(iso)) {
    throw new UsageError(`${flag} "${value}" falls outside the years 0000 to 9999 in UTC`, TIME_HINT);
  }
  return iso;
}

/**
 * Whether a canonical UTC time has a four-digit year: an offset can carry 9999-12-31 past the year 9999
 * ("+010000-01-01T...") or 0000-01-01 before the year 0000 ("-000001-..."), times that ISO-8601 readers
 * expecting YYYY (policy.toml, other languages' clients) do not take back.
 */
export function withinFourDigitYears(iso: string): boolean {
  return /^\d{4}-/.test(iso);
}

/** parseTimestamp without the year range: any instant a Date holds, in canonical UTC form. */
export function readTimestamp(value: string, flag: string): string {
  // RFC 3339 allows a lowercase t and z; Date.parse does not.
  const time = value.toUpperCase();
  if (lacksTimezone(time)) {
    // Read as local time it would mean another instant on another machine (the daemon's, a CI runner's).
    throw new UsageError(`${flag} "${value}" has no timezone`, 'add Z (UTC) or an offset such as +02:00');
  }
  if (spaceForT(value)) {
    const withT = value.replace(/ +/, 'T');
    let fixed: string | undefined;
    try {
      readTimestamp(withT, flag);
      fixed = withT;
    } catch {
      // The T alone does not make it right (no timezone, say): the generic example then.
    }
    throw new UsageError(
      `${flag} "${value}" has a space between the date and the time`,
      fixed ? `write a T there: ${fixed}` : `write a T there and a timezone, e.g. 2026-12-31T23:59:00Z`,
    );
  }
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):?(\d{2})))?$/.exec(
      time,
    );
  if (!m) throw new UsageError(`${flag} "${value}" is not an ISO-8601 time`, TIME_HINT);
  // Date.parse rolls 2030-02-30 over into March and takes 24:00, and refuses 25:00 as if it were not a
  // time at all; a date or time that does not exist is a typo, said as such either way.
  const [, y, mo, d, h = '0', mi = '0', s = '0', oh = '0', om = '0'] = m;
  // setUTCFullYear, not Date.UTC, which reads the years 0000-0099 as 1900-1999.
  const day = new Date(0);
  day.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  const real =
    day.getUTCFullYear() === Number(y) &&
    day.getUTCMonth() === Number(mo) - 1 &&
    day.getUTCDate() === Number(d) &&
    Number(h) < 24 &&
    Number(mi) < 60 &&
    Number(s) < 60 &&
    Number(oh) < 24 &&
    Number(om) < 60;
  if (!real) throw new UsageError(`${flag} "${value}" is not a date and time that exists`, TIME_HINT);
  const ms = Date.parse(time);
  if (Number.isNaN(ms)) throw new UsageError(`${flag} "${value}" is not an ISO-8601 time`, TIME_HINT);
  return new Date(ms).toISOString();
}

/** The order every store lists items in: by service, then account. */
export function byServiceThenAccount(
  a: Pick<ItemMeta, 'service' | 'account'>,
  b: Pick<ItemMeta, 'service' | 'account'>,
): number {
  return a.service.localeCompare(b.service) || a.account.localeCompare(b.account);
}

/** Whether an item's expires_at has passed at `now`. */
export function isExpired(meta: Pick<ItemMeta, 'expiresAt'>, now = Date.now()): boolean {
  if (meta.expiresAt === undefined) return false;
  const at = Date.parse(meta.expiresAt);
  // An expiry nobody can read (another tool wrote the attribute) fails closed: the token is treated as expired.
  return Number.isNaN(at) || at <= now;
}

/**
 * The command that stores service/account again, quoted for a shell: the hint for a missing or expired item.
 * Given the item, it carries what a rotation must give again, since a set replaces the whole item: its kind,
 * its scope, and an expiry to fill in (else the new token would be a password that never expires).
 */
export function secretSetCommand(
  service: string,
  account: string,
  item?: Pick<ItemMeta, 'kind' | 'expiresAt' | 'scope'>,
): string {
  const flags = [
    ...(item && item.kind !== 'password' ? ['--kind', item.kind] : []),
    ...(item?.expiresAt !== undefined ? ['--expires-at', 'NEW_EXPIRY'] : []),
    ...(item?.scope ? ['--scope', shellQuote(item.scope)] : []),
  ];
  const names = [shellQuote(service), shellQuote(account)];
  // A name that starts with "-" would be read as an option: the options first, then `--`.
  return service.startsWith('-') || account.startsWith('-')
    ? ['entraclaw secret set', ...flags, '--', ...names].join(' ')
    : ['entraclaw secret set', ...names, ...flags].join(' ');
}

const DAEMON_REFRESH = 'the user can refresh it with: ';
const DAEMON_ALLOW_EXPIRED = '; or ask again with allowExpired to read it anyway';

/** The daemon's hint for an expired item: the command that refreshes it, then allowExpired. */
export function expiredDaemonHint(item: ItemMeta): string {
  return `${DAEMON_REFRESH}${secretSetCommand(item.service, item.account, item)}${DAEMON_ALLOW_EXPIRED}`;
}

/** The refresh command in a daemon's expiredDaemonHint, for a client (a shim) that cannot ask allowExpired. */
export function refreshCommandIn(hint: string | undefined): string | undefined {
  return hint?.startsWith(DAEMON_REFRESH) && hint.endsWith(DAEMON_ALLOW_EXPIRED)
    ? hint.slice(DAEMON_REFRESH.length, -DAEMON_ALLOW_EXPIRED.length)
    : undefined;
}

/** Throws ExpiredError for an expired item unless the caller allows expired values. */
export function assertFresh(meta: ItemMeta, store: string, allowExpired: boolean, now = Date.now()): void {
  if (!allowExpired && isExpired(meta, now)) {
    const when = Number.isNaN(Date.parse(meta.expiresAt!))
      ? `has an unreadable expiry (${JSON.stringify(meta.expiresAt)}), so it counts as expired`
      : `expired at ${meta.expiresAt}`;
    throw new ExpiredError(
      `${itemName(meta.service, meta.account)} in ${store} ${when}`,
      `refresh it with \`${secretSetCommand(meta.service, meta.account, meta)}\`, or pass --allow-expired to read it anyway`,
    );
  }
}
