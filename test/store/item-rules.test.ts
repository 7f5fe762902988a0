import { describe, expect, it } from 'vitest';
import {
  assertFresh,
  assertItemName,
  isExpired,
  parseTimestamp,
  secretSetCommand,
} from '../../src/store/item-rules.js';
import { usageError } from '../support/errors.js';

describe('parseTimestamp (--expires-at, expires_at)', () => {
  it.each([
    ['2026-12-31T23:59:00Z', '2026-12-31T23:59:00.000Z'],
    ['2026-12-31T23:59Z', '2026-12-31T23:59:00.000Z'],
    ['2026-12-31T23:59:59.5Z', '2026-12-31T23:59:59.500Z'],
    ['2027-01-01T01:00:00+02:00', '2026-12-31T23:00:00.000Z'],
    ['2027-01-01T01:00:00+0200', '2026-12-31T23:00:00.000Z'],
    ['2028-02-29T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['2026-12-31', '2026-12-31T00:00:00.000Z'],
    // Date.UTC reads the years 0-99 as 1900-1999: these exist all the same (and have long passed).
    ['0050-06-15T00:00:00Z', '0050-06-15T00:00:00.000Z'],
    ['0000-01-01', '0000-01-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
    // RFC 3339 5.6: "t" and "z" may be lowercase.
    ['2026-12-31t23:59:00z', '2026-12-31T23:59:00.000Z'],
  ])('%s -> %s', (input, iso) => {
    expect(parseTimestamp(input, '--expires-at')).toBe(iso);
  });

  it.each([
    '2030-02-30T00:00:00Z',
    '2027-02-29T00:00:00Z',
    '2026-04-31',
    '2026-13-01T00:00:00Z',
    '2026-12-31T24:00:00Z',
    '2026-12-31T23:60:00Z',
    '2026-12-31T23:59:60Z',
    '2026-12-31T23:00:00+24:00',
  ])('%s does not exist: refused, not rolled over', (input) => {
    // Date.parse itself refuses some (month 13, minute 60); the others it would roll over.
    expect(usageError(() => parseTimestamp(input, '--expires-at')).message).toMatch(
      /^--expires-at ".*" is not (a date and time that exists|an ISO-8601 time)$/,
    );
  });

  it.each(['9999-12-31T23:59:59-01:00', '9999-12-31T23:00:00-02:00', '0000-01-01T00:00:00+01:00'])(
    '%s, which an offset carries out of the years 0000-9999 in UTC, is refused',
    (input) => {
      // It was stored as "+010000-01-01T00:59:59.000Z", a time policy.toml and YYYY readers refuse.
      expect(usageError(() => parseTimestamp(input, '--expires-at')).message).toBe(
        `--expires-at "${input}" falls outside the years 0000 to 9999 in UTC`,
      );
    },
  );

  it.each([['2026-12-31T25:00:00Z'], ['2026-12-31T23:59:61Z']])(
    '%s, a time Date.parse does not take at all, is said not to exist',
    (input) => {
      expect(usageError(() => parseTimestamp(input, '--expires-at')).message).toBe(
        `--expires-at "${input}" is not a date and time that exists`,
      );
    },
  );

  it.each([
    // `date --rfc-3339=seconds`, Python's str(datetime): the space RFC 3339 lets applications use.
    ['2026-12-31 23:59:00+00:00', 'write a T there: 2026-12-31T23:59:00+00:00'],
    ['2026-12-31  23:59Z', 'write a T there: 2026-12-31T23:59Z'],
    ['2026-12-31 23:59:00', 'write a T there and a timezone, e.g. 2026-12-31T23:59:00Z'],
  ])('"%s", with a space for the T, is refused saying so', (input, hint) => {
    const e = usageError(() => parseTimestamp(input, '--expires-at'));
    expect(e.message).toBe(`--expires-at "${input}" has a space between the date and the time`);
    expect(e.hint).toBe(hint);
  });

  it('a time without a timezone is refused for that reason', () => {
    const e = usageError(() => parseTimestamp('2030-01-01T00:00:00', '--expires-at'));
    expect(e.message).toBe('--expires-at "2030-01-01T00:00:00" has no timezone');
    expect(e.hint).toMatch(/add Z/);
  });

  it.each(['tomorrow', '2026/12/31', '31-12-2026', ''])('"%s" is not ISO-8601', (input) => {
    expect(usageError(() => parseTimestamp(input, '--expires-at')).message).toBe(
      `--expires-at "${input}" is not an ISO-8601 time`,
    );
  });
});

describe('assertItemName', () => {
  it('accepts any one-line Unicode name up to 256 bytes, astral characters included', () => {
    for (const name of ['github.com', 'a/b c', 'é'.repeat(128), 'key 😀']) {
      expect(() => assertItemName(name, 'service')).not.toThrow();
    }
  });

  it.each([
    ['', /service must not be empty/],
    ['x'.repeat(257), /longer than 256 bytes/],
    ['a\nb', /NUL or newline/],
    ['a\0b', /NUL or newline/],
    ['ok\ud800', /not valid Unicode/],
    ['\udc00', /not valid Unicode/],
  ])('refuses %j', (name, message) => {
    expect(usageError(() => assertItemName(name, 'service')).message).toMatch(message);
  });
});

describe('isExpired / assertFresh', () => {
  const meta = (expiresAt?: string) => ({
    service: 's',
    account: 'a',
    kind: 'token' as const,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...(expiresAt === undefined ? {} : { expiresAt }),
  });
  const now = Date.parse('2026-11-24T12:00:00Z');

  it('no expiry never expires; a past one has, at the instant itself too', () => {
    expect(isExpired(meta(), now)).toBe(false);
    expect(isExpired(meta('2026-11-24T12:00:01Z'), now)).toBe(false);
    expect(isExpired(meta('2026-11-24T12:00:00Z'), now)).toBe(true);
  });

  it('an expiry that cannot be read (written by another tool) fails closed, and says so', () => {
    expect(isExpired(meta('notadate'), now)).toBe(true);
    expect(() => assertFresh(meta('notadate'), 'secret-service', false, now)).toThrow(
      's/a in secret-service has an unreadable expiry ("notadate"), so it counts as expired',
    );
    expect(() => assertFresh(meta('notadate'), 'secret-service', true, now)).not.toThrow();
  });

  it('names the item as every message does, and gives the set command for it, quoted for a shell', () => {
    const item = { ...meta('2026-01-01T00:00:00Z'), service: 'my api/v2', account: "o'brien" };
    expect(() => assertFresh(item, 'encrypted-file', false, now)).toThrow(
      expect.objectContaining({
        message: "my api%2Fv2/o'brien in encrypted-file expired at 2026-01-01T00:00:00Z",
        hint: `refresh it with \`entraclaw secret set 'my api/v2' 'o'\\''brien' --kind token --expires-at NEW_EXPIRY\`, or pass --allow-expired to read it anyway`,
      }),
    );
  });

  it('the set command keeps kind and scope, and puts options before `--` when a name starts with "-"', () => {
    const item = { ...meta('2026-01-01T00:00:00Z'), service: '-svc', scope: "repo it's" };
    expect(secretSetCommand(item.service, item.account, item)).toBe(
      `entraclaw secret set --kind token --expires-at NEW_EXPIRY --scope 'repo it'\\''s' -- -svc a`,
    );
    expect(secretSetCommand('s', '-a')).toBe('entraclaw secret set -- s -a');
    expect(secretSetCommand('s', 'a', { kind: 'password' })).toBe('entraclaw secret set s a');
  });
});
