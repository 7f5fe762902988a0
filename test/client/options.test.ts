import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, connect } from '../../src/client/index.js';
import { defaultSocket } from '../../src/daemon/socket-path.js';
import { resolvePaths } from '../../src/lib/paths.js';

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

describe('connect() with no daemon there', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('names the socket it was given, and how to start an agent on that one', async () => {
    delete process.env.ENTRACLAW_SOCKET;
    const err = await connect({ socket: '/nonexistent/my agent.sock' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BrokerError);
    expect(err).toMatchObject({
      code: 'unavailable',
      message: 'cannot connect to the entraclaw daemon at /nonexistent/my agent.sock: ENOENT',
      hint: expect.stringContaining(
        "start one there with `entraclaw agent --socket '/nonexistent/my agent.sock'`",
      ),
    });
  });

  it('names $ENTRACLAW_SOCKET the same way', async () => {
    process.env.ENTRACLAW_SOCKET = '/nonexistent/env.sock';
    const err = await connect().catch((e: unknown) => e);
    expect(err).toMatchObject({
      message: 'cannot connect to the entraclaw daemon at /nonexistent/env.sock: ENOENT',
      hint: expect.stringContaining('`entraclaw agent --socket /nonexistent/env.sock`'),
    });
  });

  it('at the default socket, says how to start the agent and how to reach one listening elsewhere', async () => {
    delete process.env.ENTRACLAW_SOCKET;
    process.env.XDG_RUNTIME_DIR = '/nonexistent/run';
    process.env.HOME = '/nonexistent/home';
    const err = await connect().catch((e: unknown) => e);
    expect(err).toMatchObject({
      message: `cannot connect to the entraclaw daemon at ${defaultSocket(resolvePaths())}: ENOENT`,
      hint: expect.stringMatching(/^start it with `entraclaw agent` or .*ENTRACLAW_SOCKET/),
    });
  });
});
