import { describe, expect, it } from 'vitest';
import { BrokerError, connect } from '../../src/client/index.js';

const TIMEOUT = 'connect(): timeoutMs must be a positive integer (milliseconds) of at most 2147483647';

describe('connect() options, as JavaScript may pass them', () => {
  it.each([
    [{ sokcet: '/tmp/x.sock' }, 'connect(): unknown option "sokcet" (known: socket, timeoutMs)'],
    [{ socket: '' }, 'connect(): socket must be a non-empty path'],
    [{ socket: 42 }, 'connect(): socket must be a non-empty path'],
    [{ timeoutMs: '5000' }, TIMEOUT],
    [{ timeoutMs: 0 }, TIMEOUT],
    // More than a Node timer takes (it would fire after 1 ms, failing every request at once).
    [{ timeoutMs: 2 ** 31 }, TIMEOUT],
    [{ timeoutMs: Number.MAX_SAFE_INTEGER }, TIMEOUT],
    [null, 'connect(): options must be an object'],
  ])('refuses %j before connecting anywhere', async (opts, message) => {
    const err = await connect(opts as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BrokerError);
    expect(err).toMatchObject({ code: 'bad_request', message });
  });

  it('takes the known options (and fails only at the connect itself)', async () => {
    const err = await connect({ socket: '/nonexistent/entraclaw.sock', timeoutMs: 2 ** 31 - 1 }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'unavailable' });
  });
});
