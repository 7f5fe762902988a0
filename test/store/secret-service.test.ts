import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@homebridge/dbus-native';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { LockedError, TooLargeError, UnavailableError } from '../../src/errors.js';
import { LOGIN_COLLECTION, SecretServiceApi } from '../../src/store/secret-service/api.js';
import { Bus } from '../../src/store/secret-service/bus.js';
import { DH_ALGORITHM, encryptSecret } from '../../src/store/secret-service/dh-session.js';
import { backend } from '../../src/store/secret-service.js';
import type { Store, StoreContext } from '../../src/store/types.js';
import { CLI } from '../support/cli.js';
import { describeIfProvided, linuxOnly, randomName, requireOrSkip } from '../support/context.js';
import { lockCollectionOn, SECRETS, unlockWithPassword } from '../support/keyring-control.js';
import { bareBusConfig } from '../support/private-keyring.js';

// Runs against the real gnome-keyring that scripts/with-keyring.sh starts in a private D-Bus session.
// The lock test locks and re-unlocks the login keyring with that script's password, so refuse to run
// anywhere else rather than touch a developer's own keyring.
// Secret Service is a D-Bus (Linux) service: elsewhere the suites skip with that reason.
const noSecretService = linuxOnly('the Secret Service store (gnome-keyring on D-Bus)');
if (!noSecretService && !process.env.ENTRACLAW_IN_TEST_SESSION) {
  throw new Error('run under scripts/with-keyring.sh: these tests lock and unlock the login keyring');
}
const TEST_KEYRING_PASSWORD = 'entraclaw-test';
const BINARY = Buffer.concat([
  Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x80, 0x00, 0x0a, 0xed, 0xa0, 0x80]),
  randomBytes(64),
]);

// The store's only file: the lock its writers take turns on, in the runtime directory.
const runtime = mkdtempSync(join(tmpdir(), 'entraclaw-ss-runtime-'));
afterAll(() => rmSync(runtime, { recursive: true, force: true }));

function context(env: NodeJS.ProcessEnv = process.env, timeoutMs = 3000): StoreContext {
  const none = '/nonexistent';
  return {
    env,
    paths: { config: none, data: none, state: none, runtime },
    interactive: false,
    timeoutMs,
  };
}

/** A throwaway connection for what the tests do behind the store's back (lock, unlock, count items). */
async function withApi<T>(fn: (bus: Bus, api: SecretServiceApi) => Promise<T>): Promise<T> {
  const bus = Bus.connect(process.env.DBUS_SESSION_BUS_ADDRESS!, 3000);
  try {
    return await fn(bus, new SecretServiceApi(bus));
  } finally {
    bus.close();
  }
}

const lockCollection = (collection: string) =>
  withApi(async (bus, api) => {
    await lockCollectionOn(bus, collection);
    expect(await api.collectionLocked(collection)).toBe(true);
  });

const lockLogin = () => lockCollection(LOGIN_COLLECTION);

const unlockLogin = () =>
  withApi(async (bus, api) => {
    await unlockWithPassword(bus, api, LOGIN_COLLECTION, TEST_KEYRING_PASSWORD);
    expect(await api.collectionLocked(LOGIN_COLLECTION)).toBe(false);
  });

const COLLECTION_PASSWORD = 'entraclaw-test-2';

/** A second keyring, made with gnome-keyring's no-prompt call (its password travels DH-encrypted). */
const createCollection = (label: string) =>
  withApi(async (bus, api) => {
    const session = await api.openSession();
    const { iv, ciphertext } = encryptSecret(session.key, Buffer.from(COLLECTION_PASSWORD));
    const [path] = await bus.call({
      ...SECRETS,
      interface: 'org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface',
      member: 'CreateWithMasterPassword',
      signature: 'a{sv}(oayays)',
      body: [
        [['org.freedesktop.Secret.Collection.Label', ['s', label]]],
        [session.path, iv, ciphertext, 'text/plain'],
      ],
    });
    await api.closeSession(session);
    expect(await api.collectionLocked(path as string)).toBe(false);
    return path as string;
  });

const deleteCollection = (collection: string) =>
  withApi(async (bus) => {
    const [prompt] = await bus.call({
      ...SECRETS,
      path: collection,
      interface: 'org.freedesktop.Secret.Collection',
      member: 'Delete',
    });
    expect(prompt).toBe('/');
  });

const countItems = (service: string, account: string) =>
  withApi(async (_bus, api) => (await api.searchItems({ service, account })).unlocked.length);

function secretTool(args: string[], input?: Buffer | string) {
  return spawnSync('secret-tool', args, { input, timeout: 5000 });
}

async function elapsed<T>(p: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const t0 = performance.now();
  const [result] = await Promise.allSettled([p]);
  return { ms: performance.now() - t0, result: result! };
}

function rejection(r: PromiseSettledResult<unknown>): unknown {
  if (r.status !== 'rejected') throw new Error('expected the call to fail');
  return r.reason;
}

describeIfProvided('secret-service store (real gnome-keyring)', noSecretService, () => {
  let store: Store;
  const made: [string, string][] = [];
  const item = (label: string) => {
    const pair: [string, string] = [randomName(`ss-${label}`), randomName('acct')];
    made.push(pair);
    return { service: pair[0], account: pair[1] };
  };

  beforeEach(async () => {
    store = await backend.open(context());
  });
  afterEach(async () => {
    await store.close();
    for (const [service, account] of made.splice(0))
      secretTool(['clear', 'service', service, 'account', account]);
  });

  it('probes as available, persistent, with its boundary', async () => {
    const probe = await backend.probe(context());
    expect(probe).toMatchObject({
      name: 'secret-service',
      available: true,
      persistence: 'until-delete',
      readOnly: false,
    });
    expect(probe.reason).toMatch(/login collection is unlocked/);
    expect(probe.boundary).toMatch(/any process of this user can read these items over D-Bus/);
  });

  it('round-trips binary bytes (NUL, 0xff, invalid UTF-8), also through a fresh connection', async () => {
    const { service, account } = item('bin');
    await store.set({ service, account, value: BINARY });
    expect((await store.get(service, account))?.value.equals(BINARY)).toBe(true);
    const other = await backend.open(context());
    try {
      expect((await other.get(service, account))?.value.equals(BINARY)).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('keeps kind, expiresAt, scope and label; defaults to password and a generated label', async () => {
    const tok = item('meta');
    const meta = {
      kind: 'token',
      expiresAt: '2030-01-02T03:04:05.000Z',
      scope: 'repo read:org',
      label: 'GitHub token',
    } as const;
    const stored = await store.set({ ...tok, value: Buffer.from('t'), ...meta });
    expect(stored).toMatchObject({ ...tok, ...meta });
    expect(await store.get(tok.service, tok.account)).toMatchObject({ ...tok, ...meta });

    const plain = item('plain');
    await store.set({ ...plain, value: Buffer.from('p') });
    const got = await store.get(plain.service, plain.account);
    expect(got).toMatchObject({ kind: 'password', label: `entraclaw: ${plain.service}/${plain.account}` });
    expect(got).not.toHaveProperty('expiresAt');
    expect(got).not.toHaveProperty('scope');
    expect(got?.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    expect(Math.abs(Date.parse(got!.createdAt) - Date.now())).toBeLessThan(60_000);
  });

  it('updates in place: createdAt kept, updatedAt advances, metadata replaced, no duplicate item', async () => {
    const { service, account } = item('upd');
    const first = await store.set({
      service,
      account,
      value: Buffer.from('one'),
      kind: 'token',
      scope: 'a',
      expiresAt: '2030-01-01T00:00:00.000Z',
    });
    // Created/Modified have one-second resolution.
    await new Promise((r) => setTimeout(r, 1100));
    const second = await store.set({ service, account, value: Buffer.from('two'), kind: 'key' });
    expect(second.createdAt).toBe(first.createdAt);
    expect(Date.parse(second.updatedAt)).toBeGreaterThan(Date.parse(first.updatedAt));
    const got = await store.get(service, account);
    expect(got?.value.toString()).toBe('two');
    expect(got).toMatchObject({ kind: 'key', createdAt: first.createdAt });
    expect(got).not.toHaveProperty('scope');
    expect(got).not.toHaveProperty('expiresAt');
    expect(await countItems(service, account)).toBe(1);
  });

  it('writers in several processes at once leave one item, holding one of their values', async () => {
    const { service, account } = item('race');
    const env = { ...process.env, XDG_RUNTIME_DIR: runtime };
    const writers = Array.from(
      { length: 8 },
      (_, i) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(
            process.execPath,
            [
              CLI,
              'secret',
              'set',
              service,
              account,
              '--store',
              'secret-service',
              '--expires-at',
              `2030-01-0${i + 1}T00:00:00Z`,
            ],
            { env, stdio: ['pipe', 'ignore', 'ignore'] },
          );
          child.stdin.end(`value-${i}`);
          child.on('close', resolve);
        }),
    );
    expect(await Promise.all(writers)).toEqual(Array(8).fill(0));
    expect(await countItems(service, account)).toBe(1);
    expect((await store.get(service, account))?.value.toString()).toMatch(/^value-[0-7]$/);
  }, 60_000);

  it('deletes, and says whether there was anything to delete', async () => {
    const { service, account } = item('del');
    await store.set({ service, account, value: Buffer.from('x') });
    await store.get(service, account);
    expect(await store.delete(service, account)).toBe(true);
    expect(await store.get(service, account)).toBeUndefined();
    expect(secretTool(['lookup', 'service', service, 'account', account]).status).not.toBe(0);
    expect(await store.delete(service, account)).toBe(false);
  });

  it('lists metadata only, filtered by service, without fetching any secret', async () => {
    const a1 = item('ls');
    const a2 = { service: a1.service, account: randomName('acct2') };
    made.push([a2.service, a2.account]);
    const b = item('ls-other');
    for (const x of [a1, a2, b]) await store.set({ ...x, value: Buffer.from(`canary-${x.account}`) });
    // An item without an account is not one Entraclaw can address, so list leaves it out. (It carries an
    // extra attribute because `secret-tool store service S` alone would replace one of ours.)
    expect(secretTool(['store', '--label=no-account', 'service', a1.service, 'user', 'u'], 'x').status).toBe(
      0,
    );
    const getSecret = vi.spyOn(SecretServiceApi.prototype, 'getSecret');
    try {
      const filtered = await store.list({ service: a1.service });
      expect(filtered.map((m) => m.account)).toEqual([a1.account, a2.account].sort());
      expect(filtered.every((m) => !('value' in m))).toBe(true);
      expect(JSON.stringify(filtered)).not.toContain('canary-');
      const all = await store.list();
      expect(all.filter((m) => m.service === b.service).map((m) => m.account)).toEqual([b.account]);
      expect(all.filter((m) => m.service === a1.service)).toHaveLength(2);
      expect(getSecret).not.toHaveBeenCalled();
    } finally {
      getSecret.mockRestore();
      secretTool(['clear', 'service', a1.service]);
    }
  });

  it('stores items that `secret-tool lookup service S account A` finds, byte for byte', async () => {
    const { service, account } = item('st-out');
    await store.set({ service, account, value: BINARY });
    const out = secretTool(['lookup', 'service', service, 'account', account]);
    expect(out.status).toBe(0);
    expect(out.stdout.equals(BINARY)).toBe(true);
  });

  it('stores items that Python keyring and @napi-rs/keyring (service + username) read and delete, byte for byte', async (ctx) => {
    const python = ['python3', '/usr/bin/python3'].find(
      (p) => spawnSync(p, ['-c', 'import keyring.backends.SecretService']).status === 0,
    );
    requireOrSkip(ctx, python ? undefined : 'python3 with the keyring module (Debian: python3-keyring)');
    const text = item('py-reads');
    await store.set({ ...text, value: Buffer.from('fröm entraclaw') });
    const read = `import keyring, sys
v = keyring.get_password(sys.argv[1], sys.argv[2])
sys.stdout.buffer.write(b'<none>' if v is None else v.encode())`;
    const py = (what: string) =>
      spawnSync(python!, ['-c', what, text.service, text.account], { timeout: 10_000 });
    expect(py(read).stdout.toString()).toBe('fröm entraclaw');
    await store.set({ ...text, value: Buffer.from('rotated') });
    expect(py(read).stdout.toString()).toBe('rotated');
    const del = py('import keyring, sys; keyring.delete_password(sys.argv[1], sys.argv[2])');
    expect(del.status, del.stderr.toString()).toBe(0);
    expect(await store.get(text.service, text.account)).toBeUndefined();

    const { Entry } = await import('@napi-rs/keyring');
    const bin = item('napi-reads');
    await store.set({ ...bin, value: BINARY });
    const entry = new Entry(bin.service, bin.account);
    expect(Buffer.from(entry.getSecret() ?? []).equals(BINARY)).toBe(true);
    // keyring-rs updates the one item it matches in place: both see its value, and there is still one item.
    entry.setPassword('from-napi');
    expect((await store.get(bin.service, bin.account))?.value.toString()).toBe('from-napi');
    expect(await countItems(bin.service, bin.account)).toBe(1);
    expect(entry.deleteCredential()).toBe(true);
    expect(await store.get(bin.service, bin.account)).toBeUndefined();
  });

  it('reads items that `secret-tool store` created', async () => {
    const { service, account } = item('st-in');
    expect(
      secretTool(
        ['store', '--label=made by secret-tool', 'service', service, 'account', account],
        'from\0secret-tool',
      ).status,
    ).toBe(0);
    const got = await store.get(service, account);
    expect(got?.value.toString('latin1')).toBe('from\0secret-tool');
    expect(got).toMatchObject({ kind: 'password', label: 'made by secret-tool' });
  });

  it('leaves out items another tool stored under names no Entraclaw path accepts (empty, a newline, over 256 bytes)', async () => {
    const account = randomName('acct');
    const services = ['', `${randomName('nl')}\nx`, `${randomName('long')}${'s'.repeat(260)}`];
    const ok = randomName('ss-ok');
    try {
      for (const service of [...services, ok]) {
        const r = secretTool(['store', '--label=foreign', 'service', service, 'account', account], 'v');
        expect(r.status, r.stderr.toString()).toBe(0);
      }
      // Every read refuses these names, so a listing with them would break `secret-tool search` on the shim.
      const listed = (await store.list()).filter((m) => m.account === account);
      expect(listed.map((m) => m.service)).toEqual([ok]);
    } finally {
      for (const service of [...services, ok]) secretTool(['clear', 'service', service, 'account', account]);
    }
  });

  it("reads, lists, updates and deletes Python keyring's items (service + username, no account)", async () => {
    const { service, account } = item('username');
    const stored = secretTool(
      [
        'store',
        '--label=Password for u on s',
        'service',
        service,
        'username',
        account,
        'application',
        'Python keyring library',
      ],
      'from-python',
    );
    expect(stored.status, stored.stderr.toString()).toBe(0);
    expect((await store.get(service, account))?.value.toString()).toBe('from-python');
    expect((await store.list({ service })).map((m) => m.account)).toEqual([account]);

    // Updated in place: Python keyring still finds it under its own attributes, and there is one item.
    await store.set({ service, account, value: Buffer.from('from-entraclaw') });
    expect(secretTool(['lookup', 'service', service, 'username', account]).stdout.toString()).toBe(
      'from-entraclaw',
    );
    expect(await store.list({ service })).toHaveLength(1);

    expect(await store.delete(service, account)).toBe(true);
    expect(secretTool(['lookup', 'service', service, 'username', account]).status).toBe(1);
    expect(await store.get(service, account)).toBeUndefined();
  });

  it('an item whose username matches but whose own account differs is not that account', async () => {
    const { service, account } = item('username-other');
    const other = randomName('acct');
    made.push([service, other]);
    expect(
      secretTool(['store', '--label=x', 'service', service, 'account', other, 'username', account], 'v')
        .status,
    ).toBe(0);
    expect(await store.get(service, account)).toBeUndefined();
    expect(await store.delete(service, account)).toBe(false);
    expect((await store.get(service, other))?.value.toString()).toBe('v');
  });

  it('several items another tool stored under one pair are listed once, as the item get reads', async () => {
    const { service, account } = item('dup');
    for (const [extra, value] of [
      ['x', 'first'],
      ['y', 'second'],
    ]) {
      const r = secretTool(
        ['store', `--label=dup ${extra}`, 'service', service, 'account', account, 'extra', extra!],
        value,
      );
      expect(r.status, r.stderr.toString()).toBe(0);
    }
    // Python keyring's item under the same pair (service + username) is the pair's too, read only when
    // no item has the account itself.
    expect(
      secretTool(['store', '--label=dup py', 'service', service, 'username', account], 'py').status,
    ).toBe(0);
    expect(await countItems(service, account)).toBe(2);
    const got = await store.get(service, account);
    const listed = await store.list({ service });
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ service, account, label: got?.label });
    expect((await store.list()).filter((m) => m.service === service)).toHaveLength(1);
    secretTool(['clear', 'service', service, 'username', account]);
  });

  it('a locked second keyring does not stop the listing; its items are left out and name it when read', async () => {
    const mine = item('beside-locked');
    await store.set({ ...mine, value: Buffer.from('login') });
    const inWork = item('in-locked');
    const collection = await createCollection(randomName('work').replaceAll('-', ''));
    try {
      await withApi(async (_bus, api) => {
        const session = await api.openSession();
        for (const attributes of [inWork, { app: 'unrelated' }]) {
          const made = await api.createItem(collection, session, {
            label: 'w',
            attributes,
            value: Buffer.from('w'),
          });
          expect(made.prompt).toBe('/');
        }
        await api.closeSession(session);
      });
      expect((await store.get(inWork.service, inWork.account))?.value.toString()).toBe('w');
      await lockCollection(collection);

      const all = await store.list();
      expect(all.some((m) => m.service === mine.service)).toBe(true);
      expect(all.some((m) => m.service === inWork.service)).toBe(false);
      expect(await store.list({ service: inWork.service })).toEqual([]);
      const name = collection.slice(collection.lastIndexOf('/') + 1);
      const attempts: Array<() => Promise<unknown>> = [
        () => store.get(inWork.service, inWork.account),
        () => store.set({ ...inWork, value: Buffer.from('n') }),
        () => store.delete(inWork.service, inWork.account),
      ];
      for (const attempt of attempts) {
        const err = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(LockedError);
        expect((err as Error).message).toContain(
          `${inWork.service}/${inWork.account} is in the Secret Service collection "${name}"`,
        );
        expect((err as LockedError).hint).toContain(`unlock the collection "${name}"`);
        expect((err as LockedError).hint).toContain(
          `secret-tool search --unlock service ${inWork.service} account ${inWork.account}`,
        );
      }
    } finally {
      await deleteCollection(collection);
    }
  });

  it('a warm get notices an item that another tool deleted or replaced', async () => {
    const { service, account } = item('warm');
    await store.set({ service, account, value: Buffer.from('ours') });
    expect((await store.get(service, account))?.value.toString()).toBe('ours');
    expect(secretTool(['clear', 'service', service, 'account', account]).status).toBe(0);
    expect(await store.get(service, account)).toBeUndefined();
    expect(
      secretTool(['store', '--label=theirs', 'service', service, 'account', account], 'theirs').status,
    ).toBe(0);
    expect((await store.get(service, account))?.value.toString()).toBe('theirs');
  });

  it('sends secrets over a DH-encrypted session: the plaintext never appears on the bus', async () => {
    const monitor = spawn('dbus-monitor', ['--session', '--binary'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    monitor.stdout.on('data', (c: Buffer) => chunks.push(c));
    const captured = () => Buffer.concat(chunks);
    try {
      const marker = randomName('monitor-ready');
      // Asked until the monitor shows it: dbus-monitor starts (and subscribes) in its own time.
      for (const until = Date.now() + 15_000; Date.now() < until && !captured().includes(marker); ) {
        await store.get(marker, 'x');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(captured().includes(marker)).toBe(true);

      const { service, account } = item('wire');
      const canary = Buffer.from(`canary-${randomBytes(16).toString('hex')}`);
      const fresh = await backend.open(context());
      try {
        await fresh.set({ service, account, value: canary });
        expect((await fresh.get(service, account))?.value.equals(canary)).toBe(true);
      } finally {
        await fresh.close();
      }
      // The monitor prints in bus order, in its own time: once a later call shows, all of the above has.
      const done = randomName('monitor-done');
      await store.get(done, 'x');
      for (const until = Date.now() + 15_000; Date.now() < until && !captured().includes(done); )
        await new Promise((r) => setTimeout(r, 20));
      expect(captured().includes(done)).toBe(true);
      const wire = captured();
      expect(wire.includes(Buffer.from(DH_ALGORITHM))).toBe(true);
      expect(wire.includes(Buffer.from(service))).toBe(true);
      expect(wire.includes(canary)).toBe(false);
    } finally {
      monitor.kill();
    }
  });

  it('refuses a value over 1 MiB with TooLargeError and stores nothing; 1 MiB itself fits', async () => {
    const { service, account } = item('big');
    const tooBig = store.set({ service, account, value: Buffer.alloc(store.maxValueBytes + 1, 7) });
    await expect(tooBig).rejects.toBeInstanceOf(TooLargeError);
    expect(await store.get(service, account)).toBeUndefined();
    const max = randomBytes(store.maxValueBytes);
    await store.set({ service, account, value: max });
    expect((await store.get(service, account))?.value.equals(max)).toBe(true);
  });

  it("refuses another tool's value over 1 MiB as too large, naming its size, rather than serve it", async () => {
    const { Entry } = await import('@napi-rs/keyring');
    const big = item('foreign-big');
    const entry = new Entry(big.service, big.account);
    entry.setSecret(Buffer.alloc(store.maxValueBytes + 1, 7));
    try {
      const err = await store.get(big.service, big.account).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TooLargeError);
      expect((err as Error).message).toContain(`is ${store.maxValueBytes + 1} bytes, more than the`);
    } finally {
      entry.deleteCredential();
    }
  });

  it('close() leaves nothing that keeps the process alive', async () => {
    const alive = () =>
      process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap' || r === 'Timeout').length;
    const before = alive();
    const s = await backend.open(context());
    await s.get(randomName('absent'), 'x');
    await s.close();
    await new Promise((r) => setImmediate(r));
    expect(alive()).toBeLessThanOrEqual(before);
  });

  describe('locked keyring', () => {
    afterEach(async () => {
      if (await withApi((_bus, api) => api.collectionLocked(LOGIN_COLLECTION))) await unlockLogin();
    });

    it('fails fast with LockedError naming the item and the store, and never asks to unlock', async () => {
      const warm = item('locked-warm');
      const cold = item('locked-cold');
      await store.set({ ...warm, value: Buffer.from('w') });
      await store.set({ ...cold, value: Buffer.from('c') });
      await store.get(warm.service, warm.account);
      const calls = vi.spyOn(Bus.prototype, 'call');
      await lockLogin();
      const t0 = performance.now();
      try {
        for (const { service, account } of [warm, cold]) {
          const err = rejection((await elapsed(store.get(service, account))).result);
          expect(err).toBeInstanceOf(LockedError);
          expect((err as Error).message).toContain(`${service}/${account}`);
          expect((err as Error).message).toContain('secret-service');
          expect((err as LockedError).hint).toMatch(
            /gnome-keyring-daemon --replace --unlock.*--store encrypted-file/,
          );
        }
        await expect(store.set({ ...item('locked-new'), value: Buffer.from('n') })).rejects.toBeInstanceOf(
          LockedError,
        );
        await expect(store.set({ ...warm, value: Buffer.from('n') })).rejects.toBeInstanceOf(LockedError);
        await expect(store.delete(cold.service, cold.account)).rejects.toBeInstanceOf(LockedError);
        await expect(store.list()).rejects.toBeInstanceOf(LockedError);
        await expect(backend.open(context())).rejects.toBeInstanceOf(LockedError);
        const probe = await backend.probe(context());
        expect(probe.available).toBe(false);
        expect(probe.reason).toMatch(/collection "login" is locked/);
        expect(performance.now() - t0).toBeLessThan(1000);
        const members = calls.mock.calls.map(([c]) => c.member);
        expect(members).not.toContain('Unlock');
        expect(members).not.toContain('Prompt');
      } finally {
        calls.mockRestore();
        await unlockLogin();
      }
      expect((await store.get(cold.service, cold.account))?.value.toString()).toBe('c');
    });
  });
});

describeIfProvided('secret-service store without a usable provider', noSecretService, () => {
  const scratch = mkdtempSync(join(tmpdir(), 'entraclaw-ss-'));
  let emptyBus: ChildProcess | undefined;
  let emptyBusAddress = '';

  beforeAll(async () => {
    // A bus of our own with no service directories: nothing can be activated on it.
    const config = join(scratch, 'bus.conf');
    writeFileSync(config, bareBusConfig(`unix:path=${join(scratch, 'bus')}`));
    const bus = spawn('dbus-daemon', ['--config-file', config, '--nofork', '--print-address=1'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    emptyBus = bus;
    emptyBusAddress = await new Promise<string>((resolve, reject) => {
      bus.once('error', reject);
      bus.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
    });
  });
  afterAll(() => {
    emptyBus?.kill();
    rmSync(scratch, { recursive: true, force: true });
  });

  async function expectUnavailable(ctx: StoreContext, reason: RegExp, withinMs: number) {
    const opened = await elapsed(backend.open(ctx));
    const err = rejection(opened.result);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(reason);
    expect(opened.ms).toBeLessThan(withinMs);
    const probed = await elapsed(backend.probe(ctx));
    expect(probed.ms).toBeLessThan(withinMs);
    if (probed.result.status !== 'fulfilled') throw probed.result.reason;
    expect(probed.result.value.available).toBe(false);
  }

  it('no DBUS_SESSION_BUS_ADDRESS -> UnavailableError', async () => {
    await expectUnavailable(context({}), /DBUS_SESSION_BUS_ADDRESS is not set/, 5000);
  });

  it('an address that is not a D-Bus address -> UnavailableError saying so', async () => {
    await expectUnavailable(
      context({ DBUS_SESSION_BUS_ADDRESS: 'garbage' }),
      /"garbage" is not a D-Bus address \(expected e\.g\. unix:path=/,
      5000,
    );
  });

  it('an address with only abstract sockets -> UnavailableError saying so; a path alternative is used', async () => {
    await expectUnavailable(
      context({ DBUS_SESSION_BUS_ADDRESS: 'unix:abstract=/tmp/dbus-x,guid=0' }),
      /offers only abstract sockets \(unix:abstract=\.\.\.\), which entraclaw cannot use/,
      5000,
    );
    const both = `unix:abstract=/tmp/dbus-x;${process.env.DBUS_SESSION_BUS_ADDRESS}`;
    const s = await backend.open(context({ ...process.env, DBUS_SESSION_BUS_ADDRESS: both }));
    await s.close();
  });

  it('a bus socket that does not exist -> UnavailableError within 5 s', async () => {
    const ctx = context({ DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(scratch, 'no-such-socket')}` });
    await expectUnavailable(ctx, /ENOENT/, 5000);
  });

  it('a bus without org.freedesktop.secrets -> UnavailableError within 5 s', async () => {
    const ctx = context({ DBUS_SESSION_BUS_ADDRESS: emptyBusAddress });
    await expectUnavailable(ctx, /no Secret Service provider/, 5000);
    expect((await backend.probe(ctx)).reason).toMatch(/neither running nor activatable/);
  });

  it('a provider that refuses the DH session -> UnavailableError saying so; plain is never asked for', async () => {
    const fake = createClient({ busAddress: emptyBusAddress });
    const algorithms: string[] = [];
    const refusal = Object.assign(new Error('only plain here'), {
      dbusName: 'org.freedesktop.DBus.Error.NotSupported',
    });
    fake.exportInterface(
      {
        OpenSession(algorithm: string) {
          algorithms.push(algorithm);
          return refusal;
        },
        ReadAlias: () => '/',
      },
      '/org/freedesktop/secrets',
      {
        name: 'org.freedesktop.Secret.Service',
        methods: { OpenSession: ['sv', 'vo'], ReadAlias: ['s', 'o'] },
        properties: {},
        signals: {},
      },
    );
    fake.exportInterface({ Locked: false }, LOGIN_COLLECTION, {
      name: 'org.freedesktop.Secret.Collection',
      methods: {},
      properties: { Locked: 'b' },
      signals: {},
    });
    await new Promise<void>((resolve, reject) =>
      fake.requestName('org.freedesktop.secrets', 4, (err, result) =>
        err || result !== 1 ? reject(new Error(`could not own the name: ${err?.name ?? result}`)) : resolve(),
      ),
    );
    try {
      const ctx = context({ DBUS_SESSION_BUS_ADDRESS: emptyBusAddress });
      await expectUnavailable(
        ctx,
        /refused the encrypted session \(dh-ietf1024-sha256-aes128-cbc-pkcs7\)/,
        5000,
      );
      expect((await backend.probe(ctx)).reason).toMatch(/refused the encrypted session/);
      expect(new Set(algorithms)).toEqual(new Set([DH_ALGORITHM]));
    } finally {
      fake.connection.stream.destroy();
    }
  });

  it('a bus that accepts but never answers -> UnavailableError after the timeout, not a hang', async () => {
    const path = join(scratch, 'stuck');
    const held: Socket[] = [];
    const server: Server = createServer((s) => held.push(s));
    await new Promise<void>((r) => server.listen(path, r));
    try {
      await expectUnavailable(
        context({ DBUS_SESSION_BUS_ADDRESS: `unix:path=${path}` }, 300),
        /did not answer/,
        1500,
      );
    } finally {
      for (const s of held) s.destroy();
      server.close();
    }
  });

  it('a provider that stops answering mid-session -> UnavailableError after the timeout', async () => {
    const store = await backend.open(context(process.env, 300));
    const { service, account } = { service: randomName('ss-stuck'), account: 'a' };
    const pid = await providerPid();
    process.kill(pid, 'SIGSTOP');
    try {
      const got = await elapsed(store.get(service, account));
      expect(rejection(got.result)).toBeInstanceOf(UnavailableError);
      expect((rejection(got.result) as Error).message).toMatch(/did not answer SearchItems within 300 ms/);
      expect(got.ms).toBeLessThan(1500);
    } finally {
      process.kill(pid, 'SIGCONT');
      await store.close();
    }
  });

  it('a write left unanswered says it may have been done all the same, and how to look; a read does not', async () => {
    const store = await backend.open(context(process.env, 300));
    const { service, account } = { service: randomName('ss-stuck-write'), account: 'a' };
    const pid = await providerPid();
    process.kill(pid, 'SIGSTOP');
    try {
      for (const write of [
        () => store.set({ service, account, value: Buffer.from('v') }),
        () => store.delete(service, account),
      ]) {
        const err = await write().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UnavailableError);
        expect((err as UnavailableError).message).toMatch(
          new RegExp(
            `did not answer \\w+ within 300 ms \\(trying to (store|delete) ${service}/a\\); the keyring daemon may have done it all the same`,
          ),
        );
        expect((err as UnavailableError).hint).toContain(
          'see what is there with `entraclaw secret ls --store secret-service`, and run the command again',
        );
      }
      const read = await store.get(service, account).catch((e: unknown) => e);
      expect((read as UnavailableError).message).not.toContain('may have done it');
    } finally {
      process.kill(pid, 'SIGCONT');
      await store.close();
    }
  });
});

// The pid of the provider on this test session's bus, and no other gnome-keyring on the machine.
async function providerPid(): Promise<number> {
  return withApi(async (bus) => {
    const [owner] = await bus.call({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'GetConnectionUnixProcessID',
      signature: 's',
      body: ['org.freedesktop.secrets'],
    });
    return owner as number;
  });
}
