import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

// The store changing under a running agent, as a user who keeps it up for weeks sees it: the vault
// re-encrypted or damaged behind its back, the login keyring locked, gnome-keyring or the session bus
// restarted. Real daemon, real clients over the real socket, real stores.

const SVC = 'underfoot.example';
const TROUBLE = 'the store cannot serve requests';
const AGAIN = 'the store serves requests again';

/** How many of the daemon's log lines so far contain `text`. */
function logged(b: Broker, text: string): string[] {
  return b
    .stderr()
    .split('\n')
    .filter((l) => l.includes(text));
}

describeIfProvided('an encrypted-file agent whose vault changes under it', brokerClientsMissing, () => {
  const SECRET = canary('underfoot-vault');
  const NEW_PASS = 'the passphrase after the rekey';
  let b: Broker;
  let client: string;
  let vault: string;
  beforeAll(async () => {
    b = await startBroker('entraclaw-underfoot', [[SVC, 'acct', SECRET]]);
    client = b.file('client.mjs', nodeClientSource());
    b.register({ exe: NODE, script: client, grant: SVC, ops: 'read,write,list', name: 'client' });
    vault = join(b.dir, 'data', 'entraclaw', 'vault.ecv');
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('`vault rekey` meanwhile: locked, saying so and what to do (once in the log), nothing written with the old key; the new passphrase in its file is served without a restart', async () => {
    expect((await b.node(client, ['get', SVC, 'acct'])).result).toEqual({ ok: true, value_b64: b64(SECRET) });
    const newPass = join(b.dir, 'new-passphrase');
    writeFileSync(newPass, NEW_PASS, { mode: 0o600 });
    const rekey = b.cli(['vault', 'rekey', '--new-passphrase-file', newPass]);
    expect(rekey.status, rekey.stderr).toBe(0);
    const rekeyed = readFileSync(vault);

    const passFile = b.env.ENTRACLAW_PASSPHRASE_FILE!;
    for (let i = 0; i < 2; i++) {
      const r = await b.node(client, ['get', SVC, 'acct']);
      expect(r.result, r.stderr).toMatchObject({
        ok: false,
        code: 'locked',
        message: `the passphrase from ${passFile} (ENTRACLAW_PASSPHRASE_FILE) no longer opens vault ${vault}: it was re-encrypted (entraclaw vault rekey) or replaced since this process opened it`,
        hint: `put the vault's current passphrase in ${passFile}: it is read again at the next request, no restart needed`,
      });
    }
    const set = await b.node(client, ['set', SVC, 'other', b64('x')]);
    expect(set.result).toMatchObject({ ok: false, code: 'locked' });
    expect(readFileSync(vault).equals(rekeyed)).toBe(true);
    // Three failed requests, one log line, which says what to do.
    const trouble = logged(b, TROUBLE);
    expect(trouble).toHaveLength(1);
    expect(trouble[0]).toContain('code=locked');
    expect(trouble[0]).toContain(`put the vault's current passphrase in ${passFile}`);

    writeFileSync(passFile, NEW_PASS);
    expect((await b.node(client, ['get', SVC, 'acct'])).result).toEqual({ ok: true, value_b64: b64(SECRET) });
    expect(logged(b, AGAIN)).toHaveLength(1);
    expectNoSecret(secretFreePlaces(b), [SECRET, NEW_PASS]);
  }, 60_000);

  it('a vault replaced by a damaged file: each request says so, nothing is written over it, the log says it once', async () => {
    const damaged = Buffer.from('not a vault at all');
    const temp = `${vault}.planted`;
    writeFileSync(temp, damaged, { mode: 0o600 });
    renameSync(temp, vault);
    for (const args of [
      ['get', SVC, 'acct'],
      ['set', SVC, 'acct', b64('y')],
      ['list', ''],
    ]) {
      const r = await b.node(client, args);
      expect(r.result, r.stderr).toMatchObject({
        ok: false,
        code: 'internal',
        message: expect.stringContaining(`vault ${vault} is unreadable`),
        hint: 'restore the vault from a backup',
      });
    }
    expect(readFileSync(vault).equals(damaged)).toBe(true);
    const trouble = logged(b, 'code=corrupt');
    expect(trouble).toHaveLength(1);
    expect(trouble[0]).toContain(TROUBLE);
    expect(trouble[0]).toContain('restore the vault from a backup');
    expect(b.process.exitCode).toBeNull();
  }, 60_000);
});

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

    it('the login keyring locked, then unlocked: locked meanwhile (said once in the log), then served without a restart', async () => {
      expect(await get()).toEqual(served);
      await kr.lock();
      try {
        for (let i = 0; i < 3; i++) expect(await get()).toMatchObject({ ok: false, code: 'locked' });
        expect(logged(b, TROUBLE)).toHaveLength(1);
        expect(logged(b, TROUBLE)[0]).toContain('code=locked');
      } finally {
        await kr.unlock();
      }
      expect(await get()).toEqual(served);
      expect(logged(b, AGAIN)).toHaveLength(1);
    }, 60_000);

    it('an agent started while the keyring is locked (at login) starts, says so, answers locked, and serves once it is unlocked', async () => {
      await kr.lock();
      let late: Broker | undefined;
      try {
        // Exiting instead would only have the service manager restart it until its start limit gives up.
        late = await startBroker(
          'entraclaw-underfoot-late',
          [],
          { DBUS_SESSION_BUS_ADDRESS: kr.address },
          [],
          'secret-service',
        );
        const lateClient = late.file('client.mjs', nodeClientSource());
        late.register({ exe: NODE, script: lateClient, grant: SVC, ops: 'read', name: 'client' });
        expect(logged(late, 'store locked at start')).toHaveLength(1);
        const locked = (await late.node(lateClient, ['get', SVC, 'acct'])).result;
        expect(locked).toMatchObject({ ok: false, code: 'locked' });
        await kr.unlock();
        expect((await late.node(lateClient, ['get', SVC, 'acct'])).result).toEqual(served);
        expect(late.process.exitCode).toBeNull();
      } finally {
        await kr.unlock();
        await late?.stop();
      }
    }, 60_000);

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
