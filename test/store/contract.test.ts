import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import type { EntraclawError } from '../../src/errors.js';
import { backendFor } from '../../src/store/registry.js';
import { credentialName } from '../../src/store/systemd-creds.js';
import type { Store, StoreName } from '../../src/store/types.js';
import { inTestSession, randomName, requireOrSkip, rootOnly, tempContext } from '../support/context.js';

// One contract, every store on this machine (after keyring-rs): the same cases, random names, cleanup.
// Under `make test` (scripts/with-keyring.sh) every Linux store must be usable: an unavailable one fails
// the run instead of silently shrinking the suite.
const WRITABLE: StoreName[] = ['secret-service', 'kernel-keyring', 'encrypted-file'];
const BINARY = Buffer.from([0x00, 0xff, 0x80, 0x0a, 0x00, 0x41, 0xc3, 0x28]);

for (const name of WRITABLE) {
  describe(`store contract: ${name}`, () => {
    const t = tempContext();
    let store: Store | undefined;
    let unavailable = '';
    const service = randomName('contract-svc');
    const created: string[] = [];

    beforeAll(async () => {
      const backend = await backendFor(name);
      const probe = await backend.probe(t.ctx);
      if (!probe.available) {
        unavailable = probe.reason;
        return;
      }
      store = await backend.open(t.ctx);
    });
    afterAll(async () => {
      for (const account of created) await store?.delete(service, account).catch(() => undefined);
      await store?.close();
      t.cleanup();
    });

    const run = (title: string, fn: (s: Store) => Promise<void>) =>
      it(title, async (ctx) => {
        if (!store) {
          if (inTestSession) throw new Error(`${name} must be available under make test: ${unavailable}`);
          return requireOrSkip(ctx, `${name} is not available here: ${unavailable}`);
        }
        await fn(store);
      });
    const account = (label: string) => {
      const a = randomName(label);
      created.push(a);
      return a;
    };

    run('round trip of binary bytes', async (s) => {
      const a = account('bin');
      await s.set({ service, account: a, value: BINARY });
      const got = await s.get(service, a);
      expect(got?.value.equals(BINARY)).toBe(true);
      expect(got?.kind).toBe('password');
    });

    run('missing entry is undefined, delete of missing is false', async (s) => {
      expect(await s.get(service, randomName('absent'))).toBeUndefined();
      expect(await s.delete(service, randomName('absent'))).toBe(false);
    });

    run('token metadata round trips', async (s) => {
      const a = account('tok');
      const expiresAt = new Date(Date.now() + 3600_000).toISOString();
      await s.set({
        service,
        account: a,
        value: Buffer.from('tok'),
        kind: 'token',
        expiresAt,
        scope: 'repo read:org',
        label: 'my token',
      });
      const got = await s.get(service, a);
      expect(got).toMatchObject({
        service,
        account: a,
        kind: 'token',
        expiresAt,
        scope: 'repo read:org',
        label: 'my token',
      });
    });

    run('update replaces the value and keeps createdAt', async (s) => {
      const a = account('upd');
      const first = await s.set({ service, account: a, value: Buffer.from('one') });
      await new Promise((r) => setTimeout(r, 1100));
      const second = await s.set({ service, account: a, value: Buffer.from('two') });
      expect(second.createdAt).toBe(first.createdAt);
      expect((await s.get(service, a))?.value.toString()).toBe('two');
      expect((await s.list({ service })).filter((m) => m.account === a)).toHaveLength(1);
    });

    run('delete removes the item', async (s) => {
      const a = account('del');
      await s.set({ service, account: a, value: Buffer.from('x') });
      expect(await s.delete(service, a)).toBe(true);
      expect(await s.get(service, a)).toBeUndefined();
    });

    run('list filters by service and carries no values', async (s) => {
      const a = account('ls');
      await s.set({ service, account: a, value: Buffer.from('canary-list-value') });
      const other = randomName('contract-other');
      await s.set({ service: other, account: a, value: Buffer.from('y') });
      try {
        const items = await s.list({ service });
        expect(items.some((m) => m.account === a)).toBe(true);
        expect(items.every((m) => m.service === service)).toBe(true);
        expect(JSON.stringify(items)).not.toContain('canary-list-value');
        expect(items.every((m) => !('value' in m))).toBe(true);
      } finally {
        await s.delete(other, a);
      }
    });

    run('names with slashes, spaces and unicode survive', async (s) => {
      const a = `${account('odd')}/with space/ünïcødé`;
      created.push(a);
      await s.set({ service, account: a, value: Buffer.from('odd') });
      expect((await s.get(service, a))?.value.toString()).toBe('odd');
      expect((await s.list({ service })).some((m) => m.account === a)).toBe(true);
    });

    run('a value over the store cap is refused with too_large and nothing is stored', async (s) => {
      const a = account('big');
      await expect(
        s.set({ service, account: a, value: Buffer.alloc(s.maxValueBytes + 1, 1) }),
      ).rejects.toMatchObject({ code: 'too_large' });
      expect(await s.get(service, a)).toBeUndefined();
    });
  });
}

/**
 * A fresh $CREDENTIALS_DIRECTORY, removed when the test ends: `put` leaves a credential there as systemd
 * does (a file only its owner may read), `open` opens the systemd-creds store over it.
 */
function credentials(ctx: TestContext): {
  dir: string;
  put(name: string, value: string | Buffer): void;
  open(): Promise<Store>;
} {
  const t = tempContext();
  ctx.onTestFinished(() => t.cleanup());
  const dir = join(t.dir, 'credentials');
  mkdirSync(dir, { mode: 0o700 });
  t.ctx.env.CREDENTIALS_DIRECTORY = dir;
  return {
    dir,
    put: (name, value) => writeFileSync(join(dir, name), value, { mode: 0o400 }),
    open: async () => (await backendFor('systemd-creds')).open(t.ctx),
  };
}

describe('store contract: systemd-creds (read side, real credentials directory)', () => {
  it('reads, lists and refuses writes', async (ctx) => {
    const creds = credentials(ctx);
    // As systemd leaves a credential in $CREDENTIALS_DIRECTORY (the next test has systemd-creds make one).
    creds.put(credentialName('github.com', 'bot/1'), BINARY);
    creds.put('unrelated-credential', 'x');
    const store = await creds.open();
    expect((await store.get('github.com', 'bot/1'))?.value.equals(BINARY)).toBe(true);
    expect(await store.get('github.com', 'nobody')).toBeUndefined();
    expect((await store.list()).map((m) => `${m.service}|${m.account}`)).toEqual(['github.com|bot/1']);
    await expect(store.set({ service: 'a', account: 'b', value: Buffer.from('c') })).rejects.toMatchObject({
      code: 'usage',
    });
    await expect(store.delete('github.com', 'bot/1')).rejects.toMatchObject({ code: 'usage' });
  });

  it('lists by service, then account, as every store does, not in the order of the file names', async (ctx) => {
    const creds = credentials(ctx);
    // By file name `big1@x` < `big@x` < `big@x1` ('1' < '@'); by service then account big/x comes first.
    for (const name of ['big1@x', 'big@x1', 'big@x', 'a%2Fb@c']) creds.put(name, 'v');
    const store = await creds.open();
    expect((await store.list()).map((m) => `${m.service}|${m.account}`)).toEqual([
      'a/b|c',
      'big|x',
      'big|x1',
      'big1|x',
    ]);
  });

  it('reads what systemd-creds encrypted with the host key and decrypted, as for LoadCredentialEncrypted=', async (ctx) => {
    const creds = credentials(ctx);
    const name = credentialName('github.com', 'bot/1');
    const sealed = join(creds.dir, '..', 'sealed.cred');
    // systemd-creds needs root (and the systemd package) for the host key.
    const enc = spawnSync('systemd-creds', ['encrypt', '--with-key=host', `--name=${name}`, '-', sealed], {
      input: BINARY,
      encoding: 'utf8',
    });
    requireOrSkip(
      ctx,
      enc.status === 0
        ? undefined
        : (rootOnly('systemd-creds encrypt --with-key=host (the host key is readable by root alone)') ??
            `systemd-creds encrypt --with-key=host fails here: ${(enc.stderr || enc.error?.message || '').trim()}`),
    );
    const dec = spawnSync('systemd-creds', ['decrypt', `--name=${name}`, sealed, join(creds.dir, name)], {
      encoding: 'utf8',
    });
    expect(dec.status, dec.stderr).toBe(0);
    const store = await creds.open();
    expect((await store.get('github.com', 'bot/1'))?.value.equals(BINARY)).toBe(true);
    expect((await store.list()).map((m) => `${m.service}|${m.account}`)).toEqual(['github.com|bot/1']);
  });

  it('a credential left as systemd-creds encrypt wrote it (base64 or binary) is corrupt to get, never handed out as the secret', async (ctx) => {
    const creds = credentials(ctx);
    const names = { b64: credentialName('sealed', 'b64'), bin: credentialName('sealed', 'bin') };
    const enc = spawnSync(
      'systemd-creds',
      ['encrypt', '--with-key=host', `--name=${names.b64}`, '-', join(creds.dir, names.b64)],
      { input: BINARY, encoding: 'utf8' },
    );
    requireOrSkip(
      ctx,
      enc.status === 0
        ? undefined
        : (rootOnly('systemd-creds encrypt --with-key=host (the host key is readable by root alone)') ??
            `systemd-creds encrypt --with-key=host fails here: ${(enc.stderr || enc.error?.message || '').trim()}`),
    );
    // The same credential as bytes, as LoadCredentialEncrypted= also takes it.
    creds.put(names.bin, Buffer.from(readFileSync(join(creds.dir, names.b64), 'latin1'), 'base64'));
    // A value that only looks like base64 stays a value.
    creds.put(credentialName('plain', 'b64-like'), 'WhxqhtAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    const store = await creds.open();
    for (const account of ['b64', 'bin']) {
      const err = await store.get('sealed', account).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'corrupt' });
      expect((err as EntraclawError).message).toMatch(/still encrypted/);
      expect((err as EntraclawError).hint).toMatch(/LoadCredentialEncrypted=/);
    }
    expect((await store.get('plain', 'b64-like'))?.value.toString()).toBe(
      'WhxqhtAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    );
  });

  it('an e-mail account may keep its @ raw in the name; a directory or a non-UTF-8 name is no credential; each item is listed once', async (ctx) => {
    const creds = credentials(ctx);
    creds.put('github.com@me@example.com', 'raw');
    creds.put('gitlab.com@me%40example.com', 'canonical');
    creds.put('gitlab.com@me@example.com', 'shadowed');
    mkdirSync(join(creds.dir, 'dir@x'));
    // A name whose bytes are not UTF-8 names no item, and must not break the listing of the others.
    writeFileSync(
      Buffer.concat([Buffer.from(`${creds.dir}/n`), Buffer.from([0xff]), Buffer.from('@a')]),
      'x',
      {
        mode: 0o400,
      },
    );
    const store = await creds.open();
    expect((await store.get('github.com', 'me@example.com'))?.value.toString()).toBe('raw');
    expect((await store.get('gitlab.com', 'me@example.com'))?.value.toString()).toBe('canonical');
    expect(await store.get('dir', 'x')).toBeUndefined();
    expect((await store.list()).map((m) => `${m.service}|${m.account}`)).toEqual([
      'github.com|me@example.com',
      'gitlab.com|me@example.com',
    ]);
  });

  it('a credential listed under a name is read by that name, however its name was percent-encoded', async (ctx) => {
    const creds = credentials(ctx);
    // Lower-case hex, an encoded `*` (encodeURIComponent leaves it raw), a letter encoded needlessly.
    creds.put('my%2fsvc@a', 'lower-hex');
    creds.put('%2A@%2A', 'star');
    creds.put('%41bc@d', 'letter');
    // Two spellings of one item: the canonical one is the item, in get and in list.
    creds.put('x%2fy@b', 'other spelling');
    creds.put('x%2Fy@b', 'canonical');
    const store = await creds.open();
    const listed = await store.list();
    expect(listed.map((m) => `${m.service}|${m.account}`).sort()).toEqual(
      ['*|*', 'Abc|d', 'my/svc|a', 'x/y|b'].sort(),
    );
    for (const m of listed)
      expect(await store.get(m.service, m.account), `${m.service}/${m.account}`).toBeDefined();
    expect((await store.get('my/svc', 'a'))?.value.toString()).toBe('lower-hex');
    expect((await store.get('*', '*'))?.value.toString()).toBe('star');
    expect((await store.get('Abc', 'd'))?.value.toString()).toBe('letter');
    expect((await store.get('x/y', 'b'))?.value.toString()).toBe('canonical');
    expect(await store.get('my/svc', 'b')).toBeUndefined();
  });

  it('a credential that is a link to a file is listed as get reads it; a dangling link or one to a directory is no credential', async (ctx) => {
    const creds = credentials(ctx);
    // A container runtime's secret mount: each name links into a data directory.
    const data = join(creds.dir, '..data');
    mkdirSync(data);
    writeFileSync(join(data, 'token'), 'linked');
    symlinkSync(join(data, 'token'), join(creds.dir, 'svc@linked'));
    symlinkSync(join(creds.dir, 'missing'), join(creds.dir, 'svc@dangling'));
    symlinkSync(data, join(creds.dir, 'svc@dir'));
    const store = await creds.open();
    expect((await store.list()).map((m) => `${m.service}|${m.account}`)).toEqual(['svc|linked']);
    expect((await store.get('svc', 'linked'))?.value.toString()).toBe('linked');
    expect(await store.get('svc', 'dangling')).toBeUndefined();
    expect(await store.get('svc', 'dir')).toBeUndefined();
  });

  it('a credential whose name decodes to what no item may be called (newline, NUL) is not listed', async (ctx) => {
    const creds = credentials(ctx);
    creds.put('ok@a', 'ok');
    // Every read refuses these names (service: must not contain NUL or newline characters), so a listing
    // that offered them would break whatever walks it: `secret-tool search` reads each item it lists.
    creds.put('nl%0Asvc@a', 'x');
    creds.put('svc@nul%00', 'x');
    creds.put('cr%0D@a', 'x');
    const store = await creds.open();
    expect((await store.list()).map((m) => `${m.service}|${m.account}`)).toEqual(['ok|a']);
  });
});
