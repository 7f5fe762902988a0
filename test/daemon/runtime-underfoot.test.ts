import { existsSync, lstatSync, rmSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  agentArgs,
  type Broker,
  b64,
  canary,
  NODE,
  nodeClientSource,
  run,
  startBroker,
  waitFor,
} from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

// The runtime directory changing under a running agent, as a user who keeps it up for weeks sees it: its
// socket deleted by systemd-tmpfiles or a careless rm, the whole directory emptied at a logout. Real
// daemon, real clients over the real socket.

const SVC = 'runtime.example';

describeIfProvided('an agent whose socket is deleted under it', brokerClientsMissing, () => {
  const SECRET = canary('runtime-socket');
  let b: Broker;
  let client: string;
  const get = async () => (await b.node(client, ['get', SVC, 'acct'])).result;
  const served = () => ({ ok: true, value_b64: b64(SECRET) });
  beforeAll(async () => {
    b = await startBroker('entraclaw-runtime', [[SVC, 'acct', SECRET]]);
    client = b.file('client.mjs', nodeClientSource());
    b.register({ exe: NODE, script: client, grant: SVC, ops: 'read', name: 'client' });
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('binds it again, so clients find it, and says so in its log', async () => {
    expect(await get()).toEqual(served());
    unlinkSync(b.socket);
    await waitFor(() => existsSync(b.socket), 'the socket bound again');
    expect(lstatSync(b.socket).mode & 0o777).toBe(0o600);
    expect(await get()).toEqual(served());
    expect(b.stderr()).toContain('the socket was deleted; listening there again');
  }, 60_000);

  it('its whole directory removed: made again, lock file too, so a second agent is still refused', async () => {
    rmSync(dirname(b.socket), { recursive: true });
    await waitFor(() => existsSync(b.socket), 'the socket bound again');
    expect(lstatSync(dirname(b.socket)).mode & 0o777).toBe(0o700);
    expect(await get()).toEqual(served());
    const second = await run(process.execPath, agentArgs(b.socket), { env: b.env, timeoutMs: 15_000 });
    expect(second.status, second.stderr).toBe(2);
    expect(second.stderr).toContain(
      `another entraclaw agent is already running on this socket (pid ${b.pid})`,
    );
    expect(await get()).toEqual(served());
  }, 60_000);

  it('a SIGTERM after that still removes the socket it bound last and exits 0', async () => {
    const exit = new Promise<number | null>((r) => b.process.once('exit', (code) => r(code)));
    b.process.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(existsSync(b.socket)).toBe(false);
  }, 60_000);
});
