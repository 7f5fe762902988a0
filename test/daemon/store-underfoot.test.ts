import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Broker,
  b64,
  canary,
  expectNoSecret,
  NODE,
  nodeClientSource,
  secretFreePlaces,
  startBroker,
} from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';
import {
  type PrivateKeyring,
  privateKeyringMissing,
  startPrivateKeyring,
} from '../support/private-keyring.js';

// The store changing under a running agent, as a user who keeps it up for weeks sees it: gnome-keyring
// or the session bus restarted. Real daemon, real clients over the real socket, real stores.

const SVC = 'underfoot.example';

describeIfProvided(
  'a secret-service agent whose keyring changes under it',
  privateKeyringMissing ?? brokerClientsMissing,
  () => {
    const SECRET = canary('underfoot-keyring');
    let kr: PrivateKeyring;
    let b: Broker;
    let client: string;
    const get = async () => (await b.node(client, ['get', SVC, 'acct'])).result;
    const served = { ok: true, value_b64: b64(SECRET) };
    beforeAll(async () => {
      kr = await startPrivateKeyring(mkdtempSync(join(tmpdir(), 'entraclaw-underfoot-kr-')));
      b = await startBroker(
        'entraclaw-underfoot-ss',
        [],
        { DBUS_SESSION_BUS_ADDRESS: kr.address },
        [],
        'secret-service',
      );
      client = b.file('client.mjs', nodeClientSource());
      b.register({ exe: NODE, script: client, grant: SVC, ops: 'read,write', name: 'client' });
      const set = await b.node(client, ['set', SVC, 'acct', b64(SECRET)]);
      expect(set.result, set.stderr).toEqual({ ok: true });
    }, 60_000);
    afterAll(async () => {
      await b?.stop();
      await kr?.stop();
    });

    it('gnome-keyring restarted in the same session: served again without restarting the agent', async () => {
      expect(await get()).toEqual(served);
      await kr.stopKeyring();
      await kr.startKeyring();
      expect(await get()).toEqual(served);
      const set = await b.node(client, ['set', SVC, 'acct', b64(SECRET)]);
      expect(set.result, set.stderr).toEqual({ ok: true });
    }, 60_000);

    it('the session bus gone: unavailable, saying so; a bus at the same address again: served without a restart', async () => {
      expect(await get()).toEqual(served);
      await kr.stopKeyring();
      await kr.stopBus();
      for (let i = 0; i < 2; i++) {
        expect(await get()).toMatchObject({
          ok: false,
          code: 'unavailable',
          message: expect.stringContaining('cannot use the D-Bus session bus'),
        });
      }
      await kr.startBus();
      await kr.startKeyring();
      expect(await get()).toEqual(served);
      expect(b.process.exitCode).toBeNull();
      expectNoSecret(secretFreePlaces(b), [SECRET]);
    }, 60_000);
  },
);
