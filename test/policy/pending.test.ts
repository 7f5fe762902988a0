import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EntraclawError } from '../../src/errors.js';
import {
  listPending,
  MAX_ARG_CHARS,
  MAX_ARGS,
  MAX_PENDING,
  MAX_PENDING_BYTES,
  MAX_PENDING_REQUESTS,
  pendingPath,
  recordPending,
  removePending,
  takePending,
} from '../../src/policy/pending.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const T0 = new Date('2026-11-24T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const MIN = 60_000;
const HOUR = 3600_000;

const node = { exe: '/usr/bin/node', sha256: A };
const bot = { ...node, script: '/home/me/bot.js', scriptSha256: B };
const read = (service: string, account = 'me') => ({ op: 'read' as const, service, account });

let dir = '';
let path = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'entraclaw-pending-'));
  path = join(dir, 'state', 'pending.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('recordPending', () => {
  it('creates an entry with a p-xxxxxxxx id in a 0600 file', async () => {
    const e = await recordPending(
      path,
      bot,
      ['node', '/home/me/bot.js', '--go'],
      1000,
      read('github.com'),
      T0,
    );
    expect(e).toEqual({
      id: expect.stringMatching(/^p-[0-9a-f]{8}$/),
      exe: '/usr/bin/node',
      sha256: A,
      script: '/home/me/bot.js',
      scriptSha256: B,
      argv: ['node', '/home/me/bot.js', '--go'],
      uid: 1000,
      firstSeen: T0.toISOString(),
      lastSeen: T0.toISOString(),
      requests: [{ op: 'read', service: 'github.com', account: 'me' }],
    });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(listPending(path, T0)).toEqual([e]);
    // No temp file left behind; the lock file stays, private like the queue.
    expect(readdirSync(join(dir, 'state')).sort()).toEqual(['pending.json', 'pending.json.lock']);
    expect(statSync(`${path}.lock`).mode & 0o777).toBe(0o600);
  });

  it('loses no entry when several processes record at once (daemon and CLI share the file)', async () => {
    // Real processes on the built module: each records 15 programs of its own as fast as it can.
    const mod = pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', 'policy', 'pending.js')).href;
    const code = `const { recordPending } = await import(${JSON.stringify(mod)});
for (let i = 0; i < 15; i++)
  await recordPending(process.argv[1], { exe: '/bin/p' + process.argv[2] + '-' + i, sha256: 'a'.repeat(64) }, [], 1000, { op: 'read', service: 's', account: 'a' }, new Date());`;
    await Promise.all(
      Array.from(
        { length: 6 },
        (_, n) =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', code, path, String(n)], {
              stdio: ['ignore', 'ignore', 'pipe'],
            });
            let err = '';
            child.stderr.on('data', (d) => {
              err += d;
            });
            child.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`writer ${n} failed: ${err}`))));
          }),
      ),
    );
    expect(listPending(path)).toHaveLength(90);
  }, 30_000);

  it('keeps one entry per program, deduping its requests and refreshing lastSeen', async () => {
    const first = await recordPending(path, bot, ['node', 'bot.js'], 1000, read('github.com'), T0);
    await recordPending(path, bot, ['node', 'bot.js'], 1000, read('npm'), at(MIN));
    const again = await recordPending(
      path,
      bot,
      ['node', 'bot.js', 'x'],
      1000,
      read('github.com'),
      at(2 * MIN),
    );
    expect(again.id).toBe(first.id);
    expect(again.firstSeen).toBe(T0.toISOString());
    expect(again.lastSeen).toBe(at(2 * MIN).toISOString());
    expect(again.argv).toEqual(['node', 'bot.js', 'x']);
    // A repeated request moves to the end (most recent) instead of appearing twice.
    expect(again.requests.map((r) => r.service)).toEqual(['npm', 'github.com']);
    expect(listPending(path, at(2 * MIN))).toHaveLength(1);
  });

  it('keeps a list request without service or account', async () => {
    const e = await recordPending(path, node, [], 1000, { op: 'list' }, T0);
    expect(e.requests).toEqual([{ op: 'list' }]);
    expect(listPending(path, T0)[0]!.requests).toEqual([{ op: 'list' }]);
  });

  it('tells apart programs by exe, hash and script pin', async () => {
    await recordPending(path, node, [], 1000, read('s'), T0);
    await recordPending(path, bot, [], 1000, read('s'), T0);
    await recordPending(path, { ...bot, scriptSha256: A }, [], 1000, read('s'), T0);
    await recordPending(path, { ...node, sha256: B }, [], 1000, read('s'), T0);
    await recordPending(path, { ...node, exe: '/usr/local/bin/node' }, [], 1000, read('s'), T0);
    const ids = listPending(path, T0).map((e) => e.id);
    expect(new Set(ids).size).toBe(5);
  });

  it('does not rewrite the file for a repeat within a minute', async () => {
    await recordPending(path, node, [], 1000, read('s'), T0);
    const before = readFileSync(path, 'utf8');
    const e = await recordPending(path, node, ['changed'], 1000, read('s'), at(MIN - 1));
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(e.lastSeen).toBe(T0.toISOString());
    expect((await recordPending(path, node, [], 1000, read('s'), at(MIN))).lastSeen).toBe(
      at(MIN).toISOString(),
    );
  });

  it('truncates argv to 16 args of 256 characters', async () => {
    const argv = Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(300, 'x'));
    const e = await recordPending(path, node, argv, 1000, read('s'), T0);
    expect(e.argv).toHaveLength(16);
    expect(e.argv.every((a) => a.length === 256)).toBe(true);
    expect(e.argv[15]!.startsWith('15')).toBe(true);
  });

  it('keeps the 32 most recent distinct requests', async () => {
    for (let i = 0; i < MAX_PENDING_REQUESTS + 5; i++)
      await recordPending(path, node, [], 1000, read(`svc-${i}`), at(i * MIN));
    const [e] = listPending(path, at(40 * MIN));
    expect(e!.requests).toHaveLength(MAX_PENDING_REQUESTS);
    expect(e!.requests[0]!.service).toBe('svc-5');
    expect(e!.requests.at(-1)!.service).toBe(`svc-${MAX_PENDING_REQUESTS + 4}`);
  });

  it('keeps at most 256 entries, dropping the least recently seen', async () => {
    for (let i = 0; i < MAX_PENDING + 3; i++) {
      await recordPending(path, { exe: `/bin/p${i}`, sha256: A }, [], 1000, read('s'), at(i * 1000));
    }
    const entries = listPending(path, at(HOUR));
    expect(entries).toHaveLength(MAX_PENDING);
    expect(entries[0]!.exe).toBe('/bin/p3');
    expect(entries.at(-1)!.exe).toBe(`/bin/p${MAX_PENDING + 2}`);
  });

  it('keeps the file within MAX_PENDING_BYTES however long the names, dropping the least recently seen', async () => {
    // The longest an unapproved program can make its entry: a path near PATH_MAX, full argv, the longest
    // item names, all of control characters (six bytes each in JSON).
    const junk = (n: number) => '\x01'.repeat(n);
    const argv = Array.from({ length: MAX_ARGS }, () => junk(MAX_ARG_CHARS));
    const programs = 48;
    for (let i = 0; i < programs; i++) {
      const exe = `/tmp/${junk(4000)}/p${i}`;
      for (let r = 0; r < 4; r++) {
        const ask = { op: 'read' as const, service: `${junk(250)}${r}`, account: junk(256) };
        await recordPending(path, { exe, sha256: A }, argv, 1000, ask, at(i * MIN + r));
      }
      expect(statSync(path).size).toBeLessThanOrEqual(MAX_PENDING_BYTES);
    }
    const entries = listPending(path, at(HOUR));
    // A few of them fill the budget; the newest are the ones kept, in the order they came.
    expect(entries.length).toBeGreaterThan(1);
    expect(entries.length).toBeLessThan(programs);
    expect(entries.map((e) => e.exe.split('/').at(-1))).toEqual(
      Array.from({ length: entries.length }, (_, k) => `p${programs - entries.length + k}`),
    );
    expect(entries.at(-1)!.requests).toHaveLength(4);
  });
});

describe('expiry', () => {
  it('drops entries 24 h after they were last seen', async () => {
    const e = await recordPending(path, node, [], 1000, read('s'), T0);
    expect(listPending(path, at(24 * HOUR)).map((x) => x.id)).toEqual([e.id]);
    expect(listPending(path, at(24 * HOUR + 1))).toEqual([]);
  });

  it('counts from the last sighting, not the first', async () => {
    await recordPending(path, node, [], 1000, read('s'), T0);
    await recordPending(path, node, [], 1000, read('t'), at(20 * HOUR));
    expect(listPending(path, at(30 * HOUR))).toHaveLength(1);
    expect(listPending(path, at(44 * HOUR + 1))).toEqual([]);
  });

  it('after the clock was set back, a repeat refreshes lastSeen, and an entry a day or more ahead is dropped', async () => {
    const e = await recordPending(path, node, [], 1000, read('s'), at(2 * HOUR));
    // The clock went back two hours: the next sighting counts from now, so the entry ages as usual.
    const again = await recordPending(path, node, [], 1000, read('s'), T0);
    expect(again.id).toBe(e.id);
    expect(again.lastSeen).toBe(T0.toISOString());
    expect(listPending(path, at(24 * HOUR + 1))).toEqual([]);
    // Never seen again after the clock went back: dropped, not kept until the clock catches up.
    await recordPending(path, bot, [], 1000, read('s'), at(48 * HOUR));
    expect(listPending(path, at(24 * HOUR)).map((x) => x.script)).toEqual([bot.script]);
    expect(listPending(path, at(24 * HOUR - 1))).toEqual([]);
  });

  it('gives an expired program a fresh entry with a new id', async () => {
    const old = await recordPending(path, node, [], 1000, read('s'), T0);
    const fresh = await recordPending(path, node, [], 1000, read('s'), at(25 * HOUR));
    expect(fresh.id).not.toBe(old.id);
    expect(fresh.firstSeen).toBe(at(25 * HOUR).toISOString());
    expect(listPending(path, at(25 * HOUR))).toEqual([fresh]);
  });
});

describe('takePending / removePending', () => {
  it('takes an entry out and returns it', async () => {
    const a = await recordPending(path, node, [], 1000, read('s'), T0);
    const b = await recordPending(path, bot, [], 1000, read('s'), T0);
    expect(await takePending(path, a.id, (e) => e, T0)).toEqual(a);
    expect(listPending(path, T0)).toEqual([b]);
    let code = '';
    try {
      await takePending(path, a.id, (e) => e, T0);
    } catch (err) {
      code = (err as EntraclawError).code;
    }
    expect(code).toBe('not_found');
  });

  it('does not take an expired entry', async () => {
    const a = await recordPending(path, node, [], 1000, read('s'), T0);
    await expect(takePending(path, a.id, (e) => e, at(25 * HOUR))).rejects.toThrow(/no pending request/);
  });

  it('keeps the entry when the approval that uses it fails', async () => {
    const a = await recordPending(path, node, [], 1000, read('s'), T0);
    await expect(
      takePending(
        path,
        a.id,
        () => {
          throw new Error('name taken');
        },
        T0,
      ),
    ).rejects.toThrow('name taken');
    expect(listPending(path, T0)).toEqual([a]);
  });

  it('removes an entry and says whether there was one', async () => {
    const a = await recordPending(path, node, [], 1000, read('s'), T0);
    expect(await removePending(path, a.id, T0)).toBe(true);
    expect(await removePending(path, a.id, T0)).toBe(false);
    expect(listPending(path, T0)).toEqual([]);
  });

  it('reads a missing file as nothing pending', async () => {
    expect(listPending(path)).toEqual([]);
    expect(await removePending(path, 'p-00000000')).toBe(false);
  });
});

describe('a damaged file', () => {
  it.each([
    ['not JSON', '{'],
    ['the wrong shape', '{"v":1,"entries":[{"id":"x"}]}'],
    ['an unknown field', JSON.stringify({ v: 1, entries: [], extra: 1 })],
  ])('is reported as corrupt when %s, and replaced by the next sighting', async (_name, text) => {
    await recordPending(path, node, [], 1000, read('s'), T0);
    writeFileSync(path, text);
    expect(() => listPending(path, T0)).toThrow(expect.objectContaining({ code: 'corrupt' }));
    const replaced: string[] = [];
    const e = await recordPending(path, node, [], 1000, read('s'), T0, (d) => replaced.push(d.message));
    expect(listPending(path, T0)).toEqual([e]);
    expect(replaced).toEqual([`${path} is not a valid pending-approvals file`]);
    // An intact file is not reported.
    await recordPending(path, node, [], 1000, read('t'), T0, (d) => replaced.push(d.message));
    expect(replaced).toHaveLength(1);
  });
});

describe('pendingPath', () => {
  it('lives in the state directory', async () => {
    expect(pendingPath({ config: '/c', data: '/d', state: '/s', runtime: '/r' })).toBe('/s/pending.json');
  });
});
