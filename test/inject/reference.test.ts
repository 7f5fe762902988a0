import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { findReferences, formatReference, isReference, parseReference } from '../../src/inject/reference.js';
import { usageError } from '../support/errors.js';

describe('parseReference', () => {
  it('reads service and account', () => {
    expect(parseReference('entraclaw://github/me')).toEqual({ service: 'github', account: 'me' });
  });

  it('percent-decodes both parts, including "/" and UTF-8', () => {
    expect(parseReference('entraclaw://a%2Fb/caf%C3%A9%20x')).toEqual({ service: 'a/b', account: 'café x' });
  });

  it('accepts : @ + and unreserved characters raw, and keeps + as +', () => {
    expect(parseReference('entraclaw://host:443/me+1@example.com~_.-')).toEqual({
      service: 'host:443',
      account: 'me+1@example.com~_.-',
    });
  });

  it.each([
    ['entraclaw://onlyone'],
    ['entraclaw://a/b/c'],
    ['entraclaw://a/'],
    ['entraclaw:///b'],
    ['entraclaw://'],
  ])('rejects %s: exactly two non-empty parts', (text) => {
    expect(usageError(() => parseReference(text, 'TOKEN')).message).toMatch(
      /^TOKEN: .*exactly two non-empty parts/,
    );
  });

  it.each([
    ['entraclaw://a b/c'],
    ['entraclaw://a/b?x=1'],
    ['entraclaw://a/b#frag'],
    ["entraclaw://a/it's"],
    ['entraclaw://a/%zz'],
    ['entraclaw://a/%4'],
    ['entraclaw://a/é'],
  ])('rejects %s: characters that must be encoded', (text) => {
    expect(usageError(() => parseReference(text, 'DB_PASSWORD')).message).toMatch(
      /^DB_PASSWORD: .*(percent-encoded|malformed escape)/,
    );
  });

  it.each([
    ['entraclaw://SECRET-ghp_x1', 'TOKEN: the reference has one part; it must have exactly two'],
    ['entraclaw://SECRET-ghp_x1/', 'TOKEN: the reference has 2 parts, an empty one among them;'],
    [
      'entraclaw://svc/SECRET-ghp x1',
      'TOKEN: the reference has a space at character 27, which must be percent-encoded (%20)',
    ],
    [
      'entraclaw://svc/SECRET-ghp%x1',
      'TOKEN: the reference has a % not followed by two hex digits at character 27',
    ],
    [
      'entraclaw://svc/SECRET-ghpéx1',
      'TOKEN: the reference has U+00E9 at character 27, which must be percent-encoded (as its UTF-8 bytes)',
    ],
    [
      'entraclaw://svc/SECRET-ghp"x1',
      `TOKEN: the reference has the character '"' at character 27, which must be percent-encoded (%22)`,
    ],
    ['entraclaw://svc/SECRET-ghp%0Ax1', 'TOKEN: in the reference, account must not contain NUL or newline'],
  ])('describes %s without quoting it (a secret pasted where a name belongs)', (text, start) => {
    const err = usageError(() => parseReference(text, 'TOKEN'));
    expect(err.message.startsWith(start), err.message).toBe(true);
    expect(`${err.message} ${err.hint}`).not.toContain('SECRET');
  });

  it('names the variable when a % escape is not valid UTF-8', () => {
    const err = usageError(() => parseReference('entraclaw://svc/%FF%FE', 'API_KEY'));
    expect(err.message).toBe(
      "API_KEY: the reference's account has a % escape that is not valid UTF-8 (its text is not shown: a mistyped reference may hold a secret)",
    );
    expect(err.code).toBe('usage');
  });

  it('applies the store name rules to decoded parts (no newline, no NUL)', () => {
    expect(usageError(() => parseReference('entraclaw://svc/a%0Ab', 'X')).message).toMatch(/^X: .*newline/);
    expect(usageError(() => parseReference('entraclaw://svc%00/a', 'X')).message).toMatch(/^X: .*service/);
  });

  it('does not echo a value that is not a reference (it may be a secret)', () => {
    const err = usageError(() => parseReference('hunter2-secret', 'PASSWORD'));
    expect(err.message).toBe('PASSWORD: not an entraclaw:// reference');
    expect(err.message).not.toContain('hunter2');
  });

  it('is case-sensitive about the scheme', () => {
    expect(() => parseReference('ENTRACLAW://a/b')).toThrow(UsageError);
  });
});

describe('isReference', () => {
  it.each([
    ['entraclaw://a/b', true],
    ['entraclaw://a%20b/c', true],
    [' entraclaw://a/b', false],
    ['entraclaw://a/b ', false],
    ['entraclaw://a/b/c', false],
    ['entraclaw://a/%zz', false],
    ['prefix entraclaw://a/b', false],
    ['https://a/b', false],
    ['', false],
  ])('%j -> %s', (value, expected) => {
    expect(isReference(value)).toBe(expected);
  });
});

describe('findReferences', () => {
  it('finds every reference with its position', () => {
    const text = 'url=entraclaw://db/user and "entraclaw://db/pass%20word"\n{{entraclaw://x/y}}';
    const found = findReferences(text);
    expect(found.map((f) => [f.reference, text.slice(f.start, f.end)])).toEqual([
      [{ service: 'db', account: 'user' }, 'entraclaw://db/user'],
      [{ service: 'db', account: 'pass word' }, 'entraclaw://db/pass%20word'],
      [{ service: 'x', account: 'y' }, 'entraclaw://x/y'],
    ]);
  });

  it('returns nothing for text without references', () => {
    expect(findReferences('no refs here, only https://example.com/a')).toEqual([]);
  });

  it('is loud about a malformed reference instead of skipping it', () => {
    expect(() => findReferences('x entraclaw://a/b/c y', 'config.yml:3')).toThrow(/^config\.yml:3: /);
  });
});

describe('formatReference', () => {
  it.each([
    [{ service: 'github', account: 'me' }],
    [{ service: 'a/b', account: "it's (*) !" }],
    [{ service: 'café', account: 'x y+z@h:1' }],
  ])('round-trips %j through parseReference', (ref) => {
    const text = formatReference(ref);
    expect(isReference(text)).toBe(true);
    expect(parseReference(text)).toEqual(ref);
  });
});
