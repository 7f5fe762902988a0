import { describe, expect, it } from 'vitest';
import {
  MAX_FRAME,
  PROTOCOL_VERSION,
  parseHello,
  parseRequest,
  replyId,
  WIRE_ERROR_CODES,
  wireError,
} from '../../src/daemon/protocol.js';
import { DeniedError, EntraclawError, NotFoundError, UsageError } from '../../src/errors.js';
import { MAX_VALUE_BYTES } from '../../src/store/types.js';

const none = Buffer.alloc(0);

function failure(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (err) {
    return { code: (err as EntraclawError).code, message: (err as Error).message };
  }
  throw new Error('expected a failure');
}

describe('limits', () => {
  it('caps a frame at 1 MiB + 64 KiB', () => {
    expect(MAX_FRAME).toBe(1024 * 1024 + 64 * 1024);
    expect(MAX_FRAME).toBeGreaterThan(MAX_VALUE_BYTES);
  });
});

describe('parseHello', () => {
  it('accepts a hello with an optional client string', () => {
    expect(parseHello({ v: 1, op: 'hello', id: 0 })).toEqual({ v: 1, op: 'hello', id: 0 });
    expect(parseHello({ v: 1, op: 'hello', id: 'h', client: 'py/1.0' }).client).toBe('py/1.0');
  });

  it('refuses another first message, another version, unknown fields', () => {
    expect(failure(() => parseHello({ id: 1, op: 'get', service: 's', account: 'a' })).message).toMatch(
      /first message must be a hello/,
    );
    expect(failure(() => parseHello({ v: 2, op: 'hello', id: 0 })).message).toMatch(
      /unsupported protocol version 2/,
    );
    expect(failure(() => parseHello({ v: 1, op: 'hello', id: 0, uid: 0 })).message).toMatch(
      /unknown field "uid"/,
    );
    expect(failure(() => parseHello([])).code).toBe('bad_request');
    expect(PROTOCOL_VERSION).toBe(1);
  });
});

describe('parseRequest', () => {
  it('parses each op into its own shape', () => {
    expect(
      parseRequest({ id: 1, op: 'get', service: 'github.com', account: 'me', allowExpired: true }, none),
    ).toEqual({
      id: 1,
      op: 'get',
      service: 'github.com',
      account: 'me',
      allowExpired: true,
    });
    expect(parseRequest({ id: 'x', op: 'delete', service: 's', account: 'a' }, none).op).toBe('delete');
    expect(parseRequest({ id: 2, op: 'list' }, none)).toEqual({ id: 2, op: 'list' });
    expect(parseRequest({ id: 2, op: 'list', service: 'aws' }, none)).toEqual({
      id: 2,
      op: 'list',
      service: 'aws',
    });
    expect(parseRequest({ id: 3, op: 'whoami' }, none)).toEqual({ id: 3, op: 'whoami' });
  });

  it('puts the attachment of a set in value and canonicalises expiresAt', () => {
    const value = Buffer.from([0, 1, 2]);
    const req = parseRequest(
      {
        id: 4,
        op: 'set',
        service: 's',
        account: 'a',
        kind: 'token',
        label: 'L',
        scope: 'repo',
        expiresAt: '2026-12-01T01:00:00+01:00',
      },
      value,
    );
    expect(req).toMatchObject({
      op: 'set',
      kind: 'token',
      label: 'L',
      scope: 'repo',
      expiresAt: '2026-12-01T00:00:00.000Z',
    });
    expect(req.op === 'set' && req.value).toBe(value);
  });

  it.each([
    ['an unknown op', { id: 1, op: 'dump' }, /unknown op "dump"/],
    ['no op', { id: 1 }, /unknown op \(none\)/],
    ['a missing id', { op: 'whoami' }, /id: must be a uint32 or a string of 1-64 characters/],
    ['a negative id', { id: -1, op: 'whoami' }, /id/],
    ['a fractional id', { id: 1.5, op: 'whoami' }, /id/],
    ['an id over uint32', { id: 2 ** 32, op: 'whoami' }, /id/],
    ['an empty string id', { id: '', op: 'whoami' }, /id/],
    ['a long string id', { id: 'x'.repeat(65), op: 'whoami' }, /id/],
    ['an unknown field', { id: 1, op: 'whoami', pid: 1 }, /unknown field "pid"/],
    [
      'a field of another op',
      { id: 1, op: 'get', service: 's', account: 'a', kind: 'token' },
      /unknown field "kind"/,
    ],
    [
      'a claimed identity',
      { id: 1, op: 'get', service: 's', account: 'a', exe: '/usr/bin/ssh' },
      /unknown field "exe"/,
    ],
    ['an empty service', { id: 1, op: 'get', service: '', account: 'a' }, /service: must not be empty/],
    [
      'a NUL in account',
      { id: 1, op: 'get', service: 's', account: 'a\0b' },
      /account: must not contain NUL/,
    ],
    ['a newline in service', { id: 1, op: 'delete', service: 's\n', account: 'a' }, /service/],
    [
      'half a surrogate pair in service',
      { id: 1, op: 'get', service: 'ok\ud800', account: 'a' },
      /service: must be valid Unicode/,
    ],
    [
      'half a surrogate pair in a label',
      { id: 1, op: 'set', service: 's', account: 'a', label: '\udc00x' },
      /label: must be valid Unicode/,
    ],
    ['a 257-byte service', { id: 1, op: 'get', service: 'x'.repeat(257), account: 'a' }, /at most 256 bytes/],
    [
      'a service over 256 bytes of UTF-8',
      { id: 1, op: 'get', service: 'é'.repeat(129), account: 'a' },
      /at most 256 bytes/,
    ],
    ['a missing account', { id: 1, op: 'get', service: 's' }, /account/],
    [
      'a non-boolean allowExpired',
      { id: 1, op: 'get', service: 's', account: 'a', allowExpired: 'yes' },
      /allowExpired/,
    ],
    ['an unknown kind', { id: 1, op: 'set', service: 's', account: 'a', kind: 'cookie' }, /kind/],
    [
      'a bad expiresAt',
      { id: 1, op: 'set', service: 's', account: 'a', expiresAt: 'tomorrow' },
      /expiresAt.*must be an ISO-8601 time/,
    ],
    [
      'an expiresAt without a timezone',
      { id: 1, op: 'set', service: 's', account: 'a', expiresAt: '2026-12-31T23:59:00' },
      /expiresAt.*has no timezone: add Z \(UTC\) or an offset/,
    ],
    [
      'an expiresAt with a space for the T',
      { id: 1, op: 'set', service: 's', account: 'a', expiresAt: '2026-12-31 23:59:00+00:00' },
      /expiresAt.*has a space between the date and the time: write a T there/,
    ],
    [
      'an expiresAt an offset carries past the year 9999',
      { id: 1, op: 'set', service: 's', account: 'a', expiresAt: '9999-12-31T23:59:59-01:00' },
      /expiresAt.*must fall within the years 0000 to 9999 in UTC/,
    ],
    ['a NUL in label', { id: 1, op: 'set', service: 's', account: 'a', label: 'a\0' }, /label/],
    ['the hello again', { v: 1, op: 'hello', id: 1 }, /hello was already exchanged on this connection/],
  ])('refuses %s with bad_request', (_name, json, message) => {
    const f = failure(() =>
      parseRequest(json, (json as { op?: string }).op === 'set' ? Buffer.from('v') : none),
    );
    expect(f.code).toBe('bad_request');
    expect(f.message).toMatch(message);
  });

  it('accepts names of exactly 256 bytes', () => {
    expect(() =>
      parseRequest({ id: 1, op: 'get', service: 'x'.repeat(256), account: 'é'.repeat(128) }, none),
    ).not.toThrow();
  });

  it('requires an attachment on set, and only there', () => {
    expect(
      failure(() => parseRequest({ id: 1, op: 'set', service: 's', account: 'a' }, none)).message,
    ).toMatch(/needs the value/);
    expect(
      failure(() => parseRequest({ id: 1, op: 'get', service: 's', account: 'a' }, Buffer.from('x'))).code,
    ).toBe('bad_request');
    expect(failure(() => parseRequest({ id: 1, op: 'whoami' }, Buffer.from('x'))).code).toBe('bad_request');
  });

  it('refuses a value over MAX_VALUE_BYTES with too_large', () => {
    const big = Buffer.alloc(MAX_VALUE_BYTES + 1);
    expect(failure(() => parseRequest({ id: 1, op: 'set', service: 's', account: 'a' }, big)).code).toBe(
      'too_large',
    );
    expect(() =>
      parseRequest({ id: 1, op: 'set', service: 's', account: 'a' }, Buffer.alloc(MAX_VALUE_BYTES)),
    ).not.toThrow();
  });

  it('refuses a non-object', () => {
    expect(failure(() => parseRequest(null, none)).code).toBe('bad_request');
    expect(failure(() => parseRequest('get', none)).code).toBe('bad_request');
  });
});

describe('replyId', () => {
  it('echoes a valid id and gives null for a missing or malformed one', () => {
    expect(replyId({ id: 0 })).toBe(0);
    expect(replyId({ id: 'req-1' })).toBe('req-1');
    expect(replyId({ op: 'whoami' })).toBeNull();
    expect(replyId({ id: -1 })).toBeNull();
    expect(replyId({ id: 1.5 })).toBeNull();
    expect(replyId({ id: 'x'.repeat(65) })).toBeNull();
    expect(replyId({ id: { pick: 'me' } })).toBeNull();
  });
});

describe('wireError', () => {
  it('keeps wire codes, message and hint', () => {
    expect(wireError(new DeniedError('no', 'ask'))).toEqual({ code: 'denied', message: 'no', hint: 'ask' });
    expect(wireError(new NotFoundError('gone'))).toEqual({ code: 'not_found', message: 'gone' });
  });

  it('translates internal-only codes and hides unexpected errors', () => {
    expect(wireError(new UsageError('bad name')).code).toBe('bad_request');
    expect(wireError(new EntraclawError('corrupt', 'x')).code).toBe('internal');
    expect(wireError(new EntraclawError('conflict', 'x')).code).toBe('unavailable');
    expect(wireError(new Error('ENOENT /home/me/.secret'))).toEqual({
      code: 'internal',
      message: 'internal error',
    });
  });

  it('only ever produces documented codes', () => {
    const codes = [
      'internal',
      'usage',
      'not_found',
      'denied',
      'pending',
      'unavailable',
      'locked',
      'expired',
      'too_large',
      'bad_request',
      'corrupt',
      'conflict',
    ] as const;
    for (const c of codes) expect(WIRE_ERROR_CODES).toContain(wireError(new EntraclawError(c, 'm')).code);
  });
});
