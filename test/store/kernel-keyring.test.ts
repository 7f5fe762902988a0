// The kernel-keyring backend against the real kernel: every item goes into this user's @u keyring
// under a random name and is removed again after each test.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { EntraclawError, TooLargeError } from '../../src/errors.js';
import { native } from '../../src/lib/native.js';
import { isExpired } from '../../src/store/item-rules.js';
import { backend, decodeError, EXPIRED_GRACE_SECONDS } from '../../src/store/kernel-keyring.js';
import type { Store } from '../../src/store/types.js';
import { randomName, requireOrSkip, rootOnly, tempContext } from '../support/context.js';
import { readableBuild } from '../support/readable-build.js';

const addonPath = fileURLToPath(new URL('../../build/Release/entraclaw_native.node', import.meta.url));

const linux = process.platform === 'linux';
// Root's key quota (root_maxbytes) is large; other users get 20 000 bytes in all, less than one full value.
const root = process.getuid?.() === 0;

describe.runIf(linux)('kernel-keyring store', () => {
  const temp = tempContext();
  let store: Store;
  const created: Array<[string, string]> = [];

  beforeAll(async () => {
    const probe = await backend.probe(temp.ctx);
    expect(probe, probe.reason).toMatchObject({ name: 'kernel-keyring', available: true, readOnly: false });
    expect(probe.persistence).toBe('until-reboot');
    expect(probe.boundary).toMatch(/RAM only/);
    store = await backend.open(temp.ctx);
  });

  afterAll(async () => {
    await store.close();
    temp.cleanup();
  });

  afterEach(async () => {
    for (const [service, account] of created.splice(0)) await store.delete(service, account);
  });

  /** A fresh (service, account) that afterEach removes. */
  function names(): [string, string] {
    const pair: [string, string] = [randomName('svc'), randomName('acct')];
    created.push(pair);
    return pair;
  }

  it('round-trips binary bytes, including NUL and 0xff', async () => {
    const [service, account] = names();
    const value = Buffer.from([0, 1, 0xff, 0, 0x7f, 0x80, 0xfe, 0]);
    await store.set({ service, account, value });
    const item = await store.get(service, account);
    expect(item?.value.equals(value)).toBe(true);
    expect(item?.kind).toBe('password');
  });

  it('round-trips metadata, and keeps createdAt on update', async () => {
    const [service, account] = names();
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const first = await store.set({
      service,
      account,
      value: Buffer.from('v1'),
      kind: 'token',
      label: 'Läbel / with; odd chars',
      expiresAt,
      scope: 'repo read:org',
    });
    expect(await store.get(service, account)).toEqual({ ...first, value: Buffer.from('v1') });
    expect(first).toMatchObject({
      kind: 'token',
      label: 'Läbel / with; odd chars',
      expiresAt,
      scope: 'repo read:org',
    });

    await new Promise((r) => setTimeout(r, 5));
    const second = await store.set({ service, account, value: Buffer.from('v2'), kind: 'key' });
    expect(second.createdAt).toBe(first.createdAt);
    expect(second.updatedAt > first.updatedAt).toBe(true);
    const item = await store.get(service, account);
    expect(item?.value.toString()).toBe('v2');
    expect(item).not.toHaveProperty('label');
    expect(item).not.toHaveProperty('expiresAt');
  });

  it('deletes, and reports whether there was anything to delete', async () => {
    const [service, account] = names();
    await store.set({ service, account, value: Buffer.from('x') });
    expect(await store.delete(service, account)).toBe(true);
    expect(await store.get(service, account)).toBeUndefined();
    expect(await store.delete(service, account)).toBe(false);
  });

  it('returns undefined for a missing item', async () => {
    expect(await store.get(randomName('nope'), randomName('nope'))).toBeUndefined();
  });

  it('lists only its own keys, filtered by service', async () => {
    const [service, a1] = names();
    const a2 = randomName('acct');
    created.push([service, a2]);
    const [other, a3] = names();
    await store.set({ service, account: a1, value: Buffer.from('1') });
    await store.set({ service, account: a2, value: Buffer.from('2'), label: 'two' });
    await store.set({ service: other, account: a3, value: Buffer.from('3') });
    // A foreign user key in the same keyring is ignored.
    const foreign = native().keyAdd('user', `not-entraclaw:${randomName()}`, Buffer.from('f'), -4);
    try {
      const mine = await store.list({ service });
      expect(mine.map((m) => m.account)).toEqual([a1, a2].sort());
      expect(mine.find((m) => m.account === a2)?.label).toBe('two');
      expect(mine.every((m) => !('value' in m))).toBe(true);
      const all = await store.list();
      expect(all.some((m) => m.service === other && m.account === a3)).toBe(true);
      expect(all.every((m) => !m.service.startsWith('not-entraclaw'))).toBe(true);
    } finally {
      native().keyInvalidate(foreign);
    }
  });

  it('a key under our prefix that is not ours to read is skipped by list, and is corrupt to get', async () => {
    const [service, account] = names();
    await store.set({ service, account, value: Buffer.from('mine') });
    const planted = randomName('planted');
    const foreign = native().keyAdd('user', `entraclaw:${planted}/y`, Buffer.from('{"kind":"token"}'), -4);
    try {
      const all = await store.list();
      expect(all.some((m) => m.service === service && m.account === account)).toBe(true);
      expect(all.some((m) => m.service === planted)).toBe(false);
      await expect(store.get(planted, 'y')).rejects.toMatchObject({ code: 'corrupt' });
    } finally {
      native().keyInvalidate(foreign);
    }
  });

  it('a key of ours whose names no read accepts (a newline, over 256 bytes) is not listed', async () => {
    const tag = randomName('badname');
    const payload = (meta: object, value: string) => {
      const json = Buffer.from(JSON.stringify(meta));
      const len = Buffer.alloc(4);
      len.writeUInt32BE(json.length);
      return Buffer.concat([len, json, Buffer.from(value)]);
    };
    const at = new Date().toISOString();
    const good = payload({ kind: 'password', createdAt: at, updatedAt: at }, 'v');
    // Any process of the user can add keys under our prefix; these decode to names every read refuses.
    const planted = [`${tag}%0Anl/a`, `${tag}/nul%00`, `${tag}${'s'.repeat(260)}/a`].map((d) =>
      native().keyAdd('user', `entraclaw:${d}`, good, -4),
    );
    const ok = native().keyAdd('user', `entraclaw:${tag}/ok`, good, -4);
    try {
      const listed = (await store.list()).filter((m) => m.service.startsWith(tag));
      expect(listed.map((m) => `${m.service}|${m.account}`)).toEqual([`${tag}|ok`]);
    } finally {
      for (const serial of [...planted, ok]) native().keyInvalidate(serial);
    }
  });

  it('a key under another spelling of our description (%2f, %61, %21) is not listed: get and rm could not find it', async () => {
    const tag = randomName('spelling');
    const at = new Date().toISOString();
    const json = Buffer.from(JSON.stringify({ kind: 'password', createdAt: at, updatedAt: at }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(json.length);
    const good = Buffer.concat([len, json, Buffer.from('v')]);
    // Each decodes to a name an item may have, but get, set and rm search for the exact description we write.
    const spellings = [`${tag}%2fx/a`, `%${tag.charCodeAt(0).toString(16)}${tag.slice(1)}/b`, `${tag}/c%21`];
    const planted = spellings.map((d) => native().keyAdd('user', `entraclaw:${d}`, good, -4));
    const ok = native().keyAdd('user', `entraclaw:${tag}/c!`, good, -4);
    try {
      const listed = (await store.list()).filter((m) => m.service.startsWith(tag));
      expect(listed.map((m) => `${m.service}|${m.account}`)).toEqual([`${tag}|c!`]);
      expect(await store.delete(tag, 'c!')).toBe(true);
      expect((await store.list()).filter((m) => m.service.startsWith(tag))).toEqual([]);
    } finally {
      for (const serial of planted) native().keyUnlink(serial, -4);
      if (await store.get(tag, 'c!')) native().keyInvalidate(ok);
    }
  });

  it('a key under our prefix whose permissions shut us out is left out of list, and get names it and the way out', async () => {
    const [service, account] = names();
    await store.set({ service, account, value: Buffer.from('mine') });
    const tag = randomName('perm');
    // `keyctl setperm`: one key may only be viewed by its possessor, the other not even that.
    const planted = ['view', 'none'].map((account, i) => {
      const serial = native().keyAdd('user', `entraclaw:${tag}/${account}`, Buffer.from('x'), -4);
      const r = spawnSync('keyctl', ['setperm', String(serial), i === 0 ? '0x01000000' : '0x00000000']);
      expect(r.status, r.stderr.toString()).toBe(0);
      return serial;
    });
    try {
      const all = await store.list();
      expect(all.some((m) => m.service === service && m.account === account)).toBe(true);
      expect(all.some((m) => m.service === tag)).toBe(false);
      for (const account of ['view', 'none']) {
        const err = await store.get(tag, account).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'denied' });
        expect((err as EntraclawError).message).toContain(`entraclaw:${tag}/${account}`);
        expect((err as EntraclawError).message).not.toMatch(/possess/);
        expect((err as EntraclawError).hint).toMatch(/keyctl unlink SERIAL @u/);
      }
    } finally {
      // Unlinking needs write permission on @u only, none on the key.
      for (const serial of planted) native().keyUnlink(serial, -4);
    }
  });

  it('keeps names with "/" and "%" apart', async () => {
    const service = `${randomName('svc')}/a%2Fb`;
    const account = 'x/y';
    created.push([service, account]);
    await store.set({ service, account, value: Buffer.from('slashy') });
    expect((await store.get(service, account))?.value.toString()).toBe('slashy');
    expect(await store.list({ service })).toMatchObject([{ service, account }]);
  });

  it('stores a value of exactly maxValueBytes', async (ctx) => {
    requireOrSkip(
      ctx,
      rootOnly('a key of 32 KiB (beyond the default kernel.keys.maxbytes of an ordinary user)'),
    );
    const [service, account] = names();
    const ok = Buffer.alloc(store.maxValueBytes, 0xab);
    await store.set({ service, account, value: ok, label: 'l'.repeat(1000), scope: 's'.repeat(1000) });
    expect((await store.get(service, account))?.value.equals(ok)).toBe(true);
  });

  it('refuses a value over its cap with TooLargeError naming the item and the alternatives', async () => {
    const [service, account] = names();
    const err = await store
      .set({ service, account, value: Buffer.alloc(store.maxValueBytes + 1) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooLargeError);
    expect((err as TooLargeError).code).toBe('too_large');
    expect((err as Error).message).toContain(`${service}/${account}`);
    expect((err as Error).message).toContain(String(store.maxValueBytes));
    expect((err as TooLargeError).hint).toMatch(/encrypted-file|secret-service/);
  });

  it('keeps an expired item readable as expired, and lets the kernel drop it an hour after expiresAt', async () => {
    const [service, account] = names();
    const expiresAt = new Date(Date.now() + 1000).toISOString();
    await store.set({ service, account, value: Buffer.from('short-lived'), kind: 'token', expiresAt });
    await new Promise((r) => setTimeout(r, 1500));
    // Past expiresAt: still there, marked expired (the CLI says exit 6; --allow-expired reads it).
    const item = await store.get(service, account);
    expect(item?.value.toString()).toBe('short-lived');
    expect(isExpired(item!)).toBe(true);
    expect((await store.list({ service })).map((i) => i.account)).toEqual([account]);
    // The kernel's own timer (/proc/keys, "timeout" column) runs out about an hour after expiresAt.
    const line = readFileSync('/proc/keys', 'utf8')
      .split('\n')
      .find((l) => l.includes(`${encodeURIComponent(service)}/${encodeURIComponent(account)}`));
    expect(line?.split(/\s+/)[3]).toMatch(/^(59m|60m|1h)$/);
    expect(EXPIRED_GRACE_SECONDS).toBe(3600);
  });

  it('an item stored long after its expiry still gets a kernel timeout: the grace, from now', async () => {
    const [service, account] = names();
    await store.set({
      service,
      account,
      value: Buffer.from('old'),
      kind: 'token',
      expiresAt: '2020-01-01T00:00:00Z',
    });
    expect(isExpired((await store.get(service, account))!)).toBe(true);
    const line = readFileSync('/proc/keys', 'utf8')
      .split('\n')
      .find((l) => l.includes(`${encodeURIComponent(service)}/${encodeURIComponent(account)}`));
    expect(line?.split(/\s+/)[3]).toMatch(/^(59m|60m|1h)$/);
  });

  it('maps a real EDQUOT (non-root quota) to an actionable unavailable error', () => {
    // Quotas are per uid and root's is huge, so as root provoke it as `nobody` in a child process, with a
    // copy of the addon nobody can read (the checkout may be in root's 0700 home).
    const build = root ? readableBuild() : undefined;
    onTestFinished(() => build?.cleanup());
    const script = `
      const a = require(${JSON.stringify(build?.addon ?? addonPath)});
      const serials = [];
      let out = { code: 'none' };
      try {
        for (let i = 0; i < 10; i++) serials.push(a.keyAdd('user', 'entraclaw:quota-' + i, Buffer.alloc(15000), -4));
      } catch (e) { out = { code: e.code, errno: e.errno, message: e.message }; }
      for (const s of serials) a.keyUnlink(s, -4);
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['-e', script], {
      ...(root ? { uid: 65534, gid: 65534 } : {}),
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const seen = JSON.parse(r.stdout) as { code: string; errno: number; message: string };
    expect(seen.code).toBe('EDQUOT');
    const err = decodeError(Object.assign(new Error(seen.message), seen), 'svc', 'acct');
    expect(err).toBeInstanceOf(EntraclawError);
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/quota exceeded.*"svc\/acct"/);
    expect(err.message).toMatch(/maxkeys|maxbytes/);
    expect(err.hint).toMatch(/encrypted-file/);
  });

  it('maps EACCES to denied and anything else to internal, never echoing a value', () => {
    const denied = decodeError(
      Object.assign(new Error('keyctl: Permission denied'), { code: 'EACCES' }),
      's',
      'a',
    );
    expect(denied.code).toBe('denied');
    expect(denied.hint).toMatch(/keyctl link @u @s/);
    const other = decodeError(Object.assign(new Error('keyctl: I/O error'), { code: 'EIO' }), 's', 'a');
    expect(other.code).toBe('internal');
    expect(other.cause).toBeInstanceOf(Error);
  });

  it('sees the loss of possession the probe checks for (private session keyring)', async () => {
    const probe = await backend.probe(temp.ctx);
    expect(probe.available).toBe(true);
    // `keyctl session -` gives the child a fresh anonymous session keyring without @u in it.
    const script = `
      const a = require(${JSON.stringify(addonPath)});
      console.log(a.keySearch(-3, 'keyring', '_uid.' + process.getuid()));`;
    const r = spawnSync('keyctl', ['session', '-', process.execPath, '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('-1');
  });
});
