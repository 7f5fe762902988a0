import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Broker,
  b64,
  canary,
  expectNoSecret,
  fileSha256,
  NODE,
  nodeClientSource,
  type RunResult,
  run,
  SDK_URL,
  secretFreePlaces,
  startBroker,
  waitFor,
} from '../support/broker.js';
import { CLI } from '../support/cli.js';
import {
  brokerClientsMissing,
  describeIfProvided,
  randomName,
  requireOrSkip,
  rootOnly,
} from '../support/context.js';

// Approval, grants and audit against the real daemon: each client is its own node process on the TS SDK,
// each approval a real CLI run editing the policy file the running daemon reloads.

const SVC = 'api.example.com';
const ALICE = canary('alice');
const BOB = canary('bob');
const OTHER = canary('other');
const WRITTEN = canary('written');
const NODE_SHA256 = fileSha256(NODE);

let b: Broker;
beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker('entraclaw-policy', [
    [SVC, 'alice', ALICE],
    [SVC, 'bob', BOB],
    ['other.example', 'x', OTHER],
  ]);
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

const script = (name: string) => b.file(`${name}.mjs`, nodeClientSource());
function register(script: string, name: string, grant: string, ops: string, ttl?: string): void {
  b.register({ exe: NODE, script, grant, ops, name, ...(ttl ? { ttl } : {}) });
}
function refused(r: RunResult, code: string, message?: RegExp): void {
  expect(r.result, r.stderr).toMatchObject({ ok: false, code });
  expect(r.result.value_b64).toBeUndefined();
  if (message) expect(r.result.message).toMatch(message);
}
const value = (r: RunResult) => {
  expect(r.result, r.stderr).toMatchObject({ ok: true });
  return Buffer.from(r.result.value_b64 ?? '', 'base64').toString();
};

interface Pending {
  id: string;
  exe: string;
  sha256: string;
  script?: string;
  scriptSha256?: string;
  argv: string[];
  requests: Array<{ op: string; service?: string; account?: string }>;
}
const pendingList = (): Pending[] => JSON.parse(b.cli(['pending', '--json']).stdout.toString()) as Pending[];

describeIfProvided('approval queue', brokerClientsMissing, () => {
  it('queues an unknown program as pending and serves its next request once approved', async () => {
    const newcomer = script('newcomer');
    const first = await b.node(newcomer, ['get', SVC, 'alice']);
    refused(first, 'pending', /not approved yet/);
    const id = first.result.pendingId!;
    expect(id).toMatch(/^p-[0-9a-f]{8}$/);

    const entry = pendingList().find((e) => e.id === id);
    expect(entry).toMatchObject({
      exe: NODE,
      sha256: NODE_SHA256,
      script: newcomer,
      scriptSha256: fileSha256(newcomer),
      requests: [{ op: 'read', service: SVC, account: 'alice' }],
    });
    expect(entry!.argv).toContain(newcomer);
    const table = b.cli(['pending']).stdout.toString();
    expect(table).toContain(id);
    expect(table).toContain(`read ${SVC}/alice`);
    // The command to run is spelled out, for exactly what was asked.
    const command = `entraclaw approve ${id} --grant ${SVC}/alice --ops read`;
    expect(table).toContain(`\napprove with:\n  ${command}\n`);

    const approved = b.cli(command.split(' ').slice(1));
    expect(approved.status, approved.stderr).toBe(0);
    expect(pendingList().some((e) => e.id === id)).toBe(false);
    // The same daemon process, no restart, no signal: the next request is served.
    expect(value(await b.node(newcomer, ['get', SVC, 'alice']))).toBe(ALICE);
    expect(b.process.exitCode).toBeNull();
  }, 30_000);

  it('a failed approve (name taken or invalid) keeps the entry pending; a taken default name gets a suffix', async () => {
    // Two scripts with one file name in two folders: their default client names collide.
    const twins = ['twin-a', 'twin-b'].map((d) => {
      mkdirSync(join(b.dir, d), { recursive: true });
      const path = join(b.dir, d, 'twin.mjs');
      writeFileSync(path, nodeClientSource());
      return path;
    });
    const ids: string[] = [];
    for (const t of twins) {
      const r = await b.node(t, ['get', SVC, 'alice']);
      refused(r, 'pending');
      ids.push(r.result.pendingId!);
    }
    const first = b.cli(['approve', ids[0]!, '--grant', `${SVC}/alice`, '--json']);
    expect(first.status, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout.toString()).name).toBe('twin.mjs');
    for (const [name, code, message] of [
      ['twin.mjs', 2, 'a client named "twin.mjs" already exists'],
      ['.bad', 2, '".bad" is not a valid client name'],
    ] as const) {
      const failed = b.cli(['approve', ids[1]!, '--grant', `${SVC}/alice`, '--name', name]);
      expect(failed.status).toBe(code);
      expect(failed.stderr).toContain(message);
      expect(failed.stderr).not.toContain('policy.toml:');
      expect(pendingList().some((e) => e.id === ids[1])).toBe(true);
    }
    const second = b.cli(['approve', ids[1]!, '--grant', `${SVC}/alice`, '--json']);
    expect(second.status, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout.toString()).name).toBe('twin.mjs-2');
    expect(pendingList().some((e) => e.id === ids[1])).toBe(false);
  }, 30_000);

  it("approve sha256: takes the 16 digits `pending` shows, which for a script are the script's hash", async () => {
    const one = script('by-hash-one');
    // Other bytes, so another hash (two copies of one script share theirs, and `approve` says so).
    const two = b.file('by-hash-two.mjs', `${nodeClientSource()}\n// two\n`);
    for (const s of [one, two]) refused(await b.node(s, ['get', SVC, 'alice']), 'pending');
    const table = b.cli(['pending']).stdout.toString();
    const shown = (path: string) => new RegExp(`${path}\\s+([0-9a-f]{16})\\s`).exec(table)?.[1];
    expect(shown(one), table).toBe(fileSha256(one).slice(0, 16));
    // node's own hash is shared by both scripts: it names neither.
    const byNode = b.cli(['approve', `sha256:${NODE_SHA256.slice(0, 16)}`, '--grant', `${SVC}/alice`]);
    expect(byNode.status).toBe(3);
    expect(byNode.stderr).toContain('a script is named by its own hash');
    // In any case, as revoke takes a hash.
    const upper = `SHA256:${shown(one)!.toUpperCase()}`;
    const ok = b.cli(['approve', upper, '--grant', `${SVC}/alice`, '--name', 'by-hash']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(value(await b.node(one, ['get', SVC, 'alice']))).toBe(ALICE);
    refused(await b.node(two, ['get', SVC, 'alice']), 'pending');
  }, 30_000);

  it('a program path with terminal control characters is shown escaped in `pending`, never raw', async () => {
    const sneaky = b.file('sneaky\x1b[2K\r.mjs', nodeClientSource());
    refused(await b.node(sneaky, ['get', SVC, 'alice']), 'pending');
    const table = b.cli(['pending']).stdout.toString();
    expect(table).toContain('sneaky\\u{1b}[2K\\u{d}.mjs');
    expect(table.includes('\x1b') || table.includes('\r')).toBe(false);
  }, 30_000);

  it('register of a program that is pending takes it off the queue (it is approved now)', async () => {
    const waiting = script('waiting');
    const r = await b.node(waiting, ['get', SVC, 'alice']);
    refused(r, 'pending');
    expect(pendingList().some((e) => e.id === r.result.pendingId)).toBe(true);
    b.register({ exe: NODE, script: waiting, grant: `${SVC}/alice`, name: 'waiting' });
    expect(pendingList().some((e) => e.id === r.result.pendingId)).toBe(false);
    expect(value(await b.node(waiting, ['get', SVC, 'alice']))).toBe(ALICE);
  }, 30_000);

  it('approve of a malformed hash is a usage error, not "not found"', () => {
    const r = b.cli(['approve', 'sha256:zz', '--grant', SVC]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('is not sha256: followed by 12 to 64 hex digits');
  });

  it('register of a directory is a usage error, not an internal one', () => {
    const r = b.cli(['register', b.dir, '--grant', SVC]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`program ${b.dir} is not a regular file`);
  });

  it('register of a #! script as the program is refused, naming the interpreter command to run', () => {
    for (const [shebang, program] of [
      ['#!/bin/sh', '/bin/sh'],
      ['#!/usr/bin/env python3', '"$(command -v python3)"'],
    ] as const) {
      const path = b.file(`tool-${program.length}.sh`, `${shebang}\necho hi\n`);
      chmodSync(path, 0o755);
      const r = b.cli(['register', path, '--grant', SVC]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`${path} is a script (${shebang})`);
      expect(r.stderr).toContain(`entraclaw register ${program} --script ${path} --grant`);
    }
    expect(b.cli(['clients', '--json']).stdout.toString()).not.toContain('tool-');
  });

  it('register of a file nobody may execute, or of --script behind a non-interpreter, is refused', () => {
    const data = b.file('not-a-program.txt', 'just data\n');
    const r = b.cli(['register', data, '--grant', SVC]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${data} is not executable: no program connecting to the daemon can be it`);
    const script = b.file('helper.mjs', 'console.log(1)\n');
    const ls = b.cli(['register', '/bin/ls', '--script', script, '--grant', SVC]);
    expect(ls.status).toBe(2);
    expect(ls.stderr).toContain('/bin/ls is not an interpreter entraclaw knows');
    expect(ls.stderr).toContain(
      `hint: register the program without --script, or the interpreter that runs the script`,
    );
    // Executable but no format the kernel runs: registered, with a warning that it can never match.
    const odd = b.file('odd-program', 'plain text with the x bit\n');
    chmodSync(odd, 0o755);
    const warned = b.cli(['register', odd, '--grant', SVC, '--name', 'odd']);
    expect(warned.status, warned.stderr).toBe(0);
    expect(warned.stderr).toContain(`warning: ${odd} is neither a #! script nor an executable binary`);
    expect(b.cli(['revoke', 'odd']).status).toBe(0);
    const elf = b.cli(['register', '/bin/ls', '--grant', SVC, '--name', 'ls-elf']);
    expect(elf.stderr).not.toContain('warning');
    expect(b.cli(['revoke', 'ls-elf']).status).toBe(0);
    const clients = b.cli(['clients', '--json']).stdout.toString();
    expect(clients).not.toContain('not-a-program');
    expect(clients).not.toContain('helper.mjs');
  });

  it('register of an interpreter without --script warns that it covers every script', () => {
    const r = b.cli(['register', NODE, '--grant', `${SVC}-bare/x`, '--name', 'bare-node']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: ${NODE} is the node interpreter, registered without --script`);
    expect(b.cli(['revoke', 'bare-node']).status).toBe(0);
  });

  it('approving an entry queued again while its program was being approved drops it, with the client named', async () => {
    const racer = script('racer');
    const first = await b.node(racer, ['get', SVC, 'alice']);
    refused(first, 'pending');
    const id = first.result.pendingId!;
    const pendingFile = join(b.stateDir, 'pending.json');
    // The race: a request decided on the old policy is queued just after the approval took its entry.
    const queued = readFileSync(pendingFile);
    expect(b.cli(['approve', id, '--grant', `${SVC}/alice`, '--name', 'racer']).status).toBe(0);
    writeFileSync(pendingFile, queued);
    // In the file, though `pending` leaves it out: the policy serves it.
    expect(readFileSync(pendingFile, 'utf8')).toContain(id);
    expect(b.cli(['pending']).stderr).toContain('approved now (left out): racer');
    const again = b.cli(['approve', id, '--grant', `${SVC}/alice`]);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain(`${id} is already approved as client "racer"`);
    expect(again.stderr).toContain('the pending entry is dropped');
    expect(pendingList().some((e) => e.id === id)).toBe(false);
    expect(value(await b.node(racer, ['get', SVC, 'alice']))).toBe(ALICE);
    expect(b.cli(['revoke', 'racer']).status).toBe(0);
  }, 30_000);

  it('pending leaves out a program the policy now serves (a client added by hand), and says so', async () => {
    const handled = script('hand-added');
    const first = await b.node(handled, ['get', SVC, 'alice']);
    refused(first, 'pending');
    const id = first.result.pendingId!;
    // Approved by editing policy.toml, as docs/policy.md allows: no CLI command touched the queue.
    const policy = join(b.dir, 'config', 'entraclaw', 'policy.toml');
    mkdirSync(dirname(policy), { recursive: true, mode: 0o700 });
    appendFileSync(
      policy,
      `\n[[client]]\nname = "hand-added"\nexe = "${NODE}"\nsha256 = "${NODE_SHA256}"\nscript = "${handled}"\nscript_sha256 = "${fileSha256(handled)}"\n\n  [[client.grant]]\n  services = ["${SVC}"]\n  accounts = ["alice"]\n  operations = ["read"]\n`,
      { mode: 0o600 },
    );
    expect(value(await b.node(handled, ['get', SVC, 'alice']))).toBe(ALICE);
    expect(pendingList().some((e) => e.id === id)).toBe(false);
    const text = b.cli(['pending']);
    expect(text.stdout.toString()).not.toContain(id);
    expect(text.stderr).toMatch(/queued programs? (is|are) approved now \(left out\): .*hand-added/);
    expect(b.cli(['revoke', 'hand-added']).status).toBe(0);
  }, 30_000);

  it('a full hash that names two programs points to the pending id or client name, and a second approve names the client', async () => {
    // One script content at two paths: one hash at all 64 digits, two pending entries.
    const source = `${nodeClientSource()}\n// dup\n`;
    const dups = ['dup-a', 'dup-b'].map((d) => {
      mkdirSync(join(b.dir, d), { recursive: true });
      const path = join(b.dir, d, 'dup.mjs');
      writeFileSync(path, source);
      return path;
    });
    const ids: string[] = [];
    for (const d of dups) {
      const r = await b.node(d, ['get', SVC, 'alice']);
      refused(r, 'pending');
      ids.push(r.result.pendingId!);
    }
    const full = fileSha256(dups[0]!);
    const both = b.cli(['approve', `sha256:${full}`, '--grant', `${SVC}/alice`]);
    expect(both.status).toBe(2);
    expect(both.stderr).toContain(`approve one by its pending id: entraclaw approve ${ids[0]}`);
    expect(both.stderr).not.toContain('more digits');
    for (const [i, id] of ids.entries())
      expect(b.cli(['approve', id, '--grant', `${SVC}/alice`, '--name', `dup-${i}`]).status).toBe(0);
    const byId = b.cli(['approve', ids[0]!, '--grant', `${SVC}/alice`]);
    expect(byId.status).toBe(3);
    expect(byId.stderr).toContain(`no pending request ${ids[0]} (approved or denied already`);
    const byHash = b.cli(['approve', `sha256:${full.slice(0, 16)}`, '--grant', `${SVC}/alice`]);
    expect(byHash.status).toBe(3);
    expect(byHash.stderr).toContain('it is already approved as client "dup-0", "dup-1"');
    // node's own hash: shared by every script client here, so more digits cannot help.
    const shared = b.cli(['revoke', `sha256:${NODE_SHA256}`]);
    expect(shared.status).toBe(2);
    expect(shared.stderr).toContain('it is the hash of the interpreter they all run: revoke each by name');
    expect(shared.stderr).not.toContain('more digits');
    expect(b.cli(['revoke', `sha256:${full}`]).status).toBe(0);
  }, 30_000);

  it('deny drops a pending entry; the program stays unapproved', async () => {
    const stranger = script('stranger');
    const first = await b.node(stranger, ['get', SVC, 'bob']);
    refused(first, 'pending');
    const id = first.result.pendingId!;
    expect(pendingList().some((e) => e.id === id)).toBe(true);

    const denied = b.cli(['deny', id]);
    expect(denied.status, denied.stderr).toBe(0);
    expect(pendingList().some((e) => e.id === id)).toBe(false);
    const twice = b.cli(['deny', id]);
    expect(twice.status).toBe(3);
    expect(twice.stderr.toString()).toContain(`no pending request ${id} (approved or denied already`);
    expect(twice.stderr.toString()).toContain('`entraclaw clients`');
    // Asking again queues it again; it never gets a value.
    refused(await b.node(stranger, ['get', SVC, 'bob']), 'pending');
  }, 30_000);
});

describeIfProvided('grants', brokerClientsMissing, () => {
  let reader: string;

  it('an approved client reads what it was granted and nothing else', async () => {
    reader = script('reader');
    register(reader, 'reader', `${SVC}/alice`, 'read');
    expect(value(await b.node(reader, ['get', SVC, 'alice']))).toBe(ALICE);
    refused(await b.node(reader, ['get', SVC, 'bob']), 'denied', /no grant of client "reader" allows read/);
    refused(await b.node(reader, ['get', 'other.example', 'x']), 'denied');
    // Wrong operation on the granted item.
    // Without a grant to create or update, a set learns nothing of the store: an item that exists and
    // one that does not get the same refusal, for `write`.
    const exists = await b.node(reader, ['set', SVC, 'alice', b64('overwritten')]);
    const absent = await b.node(reader, ['set', SVC, 'nobody', b64('overwritten')]);
    refused(exists, 'denied', /no grant of client "reader" allows write on/);
    expect(exists.result.message!.replace('alice', 'X')).toBe(absent.result.message!.replace('nobody', 'X'));
    expect(exists.result.hint).toMatch(/--ops write$/);
    refused(await b.node(reader, ['delete', SVC, 'alice']), 'denied', /allows delete/);
    refused(await b.node(reader, ['list', SVC]), 'denied', /no grant that allows list/);
    // Nothing changed.
    expect(value(await b.node(reader, ['get', SVC, 'alice']))).toBe(ALICE);
  }, 30_000);

  it('a missing item with a slash in its service is named unambiguously (as the CLI names it)', async () => {
    const slashed = script('slashed');
    register(slashed, 'slashed', 'bot%2Fx', 'read');
    refused(await b.node(slashed, ['get', 'bot/x', 'a']), 'not_found', /^bot%2Fx\/a not found in /);
  }, 30_000);

  it('list shows only the items a list grant covers', async () => {
    const lister = script('lister');
    register(lister, 'lister', `${SVC}/alice`, 'read,list');
    const all = await b.node(lister, ['list', '']);
    expect(all.result, all.stderr).toEqual({ ok: true, items: [`${SVC}/alice`] });
    expect((await b.node(lister, ['list', SVC])).result.items).toEqual([`${SVC}/alice`]);
    expect((await b.node(lister, ['list', 'other.example'])).result.items).toEqual([]);
  }, 30_000);

  it('a write grant creates but does not read or delete', async () => {
    const writer = script('writer');
    register(writer, 'writer', `${SVC}/written`, 'write');
    expect((await b.node(writer, ['set', SVC, 'written', b64(WRITTEN)])).result).toEqual({ ok: true });
    refused(await b.node(writer, ['get', SVC, 'written']), 'denied');
    refused(await b.node(writer, ['delete', SVC, 'written']), 'denied');
    refused(await b.node(writer, ['set', SVC, 'bob', b64('nope')]), 'denied');
    // A caller unknown to the policy is queued for `write`, whether or not the item exists.
    const unknownWriter = script('unknown-writer');
    for (const account of ['alice', 'nobody']) {
      refused(await b.node(unknownWriter, ['set', SVC, account, b64('nope')]), 'pending', /not approved yet/);
    }
    const queued = pendingList().find((e) => e.script === unknownWriter);
    expect(queued?.requests.map((r) => r.op)).toEqual(['write', 'write']);
    const check = b.cli(['grant', 'reader', '--grant', `${SVC}/written`, '--ops', 'read']);
    expect(check.status, check.stderr).toBe(0);
    expect(value(await b.node(reader, ['get', SVC, 'written']))).toBe(WRITTEN);
  }, 30_000);

  it('a policy file others can write denies every request, with the fix, until it is fixed; no restart', async () => {
    const policy = join(b.dir, 'config', 'entraclaw', 'policy.toml');
    chmodSync(policy, 0o664);
    try {
      const r = await b.node(reader, ['get', SVC, 'alice']);
      refused(r, 'denied', /policy file is invalid .*writable by other users.*every request is denied/);
      expect(r.result.hint).toBe(`chmod 600 ${policy}`);
    } finally {
      chmodSync(policy, 0o600);
    }
    expect(value(await b.node(reader, ['get', SVC, 'alice']))).toBe(ALICE);
  }, 30_000);

  it('revoke refuses the very next request', async () => {
    expect(value(await b.node(reader, ['get', SVC, 'alice']))).toBe(ALICE);
    const r = b.cli(['revoke', 'reader']);
    expect(r.status, r.stderr).toBe(0);
    // Revoked means unknown again: queued for approval, never served.
    refused(await b.node(reader, ['get', SVC, 'alice']), 'pending');
  }, 30_000);

  it('revoke refuses the next request of every connection, even with requests batched in flight', async () => {
    // Eight connections keep the daemon busy, so requests reach it in batches that share their stats
    // (lib/file-key.ts). Each connection's first request written after `revoke` returned must be refused.
    const busy = b.file(
      'busy.mjs',
      `import { connect } from ${JSON.stringify(SDK_URL)};
const [service, account] = process.argv.slice(2);
const conns = await Promise.all(Array.from({ length: 8 }, () => connect({ socket: process.env.ENTRACLAW_SOCKET })));
let revoked = false;
process.stdin.on('data', () => { revoked = true; });
let served = 0;
const after = await Promise.all(conns.map(async (c) => {
  for (;;) {
    const sentAfter = revoked;
    try {
      await c.get(service, account);
      served++;
      if (served === 8) process.stdout.write('serving\\n');
      if (sentAfter) return 'served';
    } catch (e) {
      // Refused: by the revoke (possibly before this process read the line saying it happened).
      return e.code;
    }
  }
}));
process.stdout.write(JSON.stringify({ ok: true, served, after }) + '\\n');
for (const c of conns) c.close();
`,
    );
    register(busy, 'busy', `${SVC}/alice`, 'read');
    const child = spawn(NODE, [busy, SVC, 'alice'], { env: b.clientEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    await waitFor(() => stdout.includes('serving') || child.exitCode !== null, 'the busy client serving');
    const r = b.cli(['revoke', 'busy']);
    expect(r.status, r.stderr).toBe(0);
    child.stdin.end('revoked\n');
    await closed;
    const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
      served: number;
      after: string[];
    };
    expect(result.served, stderr).toBeGreaterThanOrEqual(8);
    expect(result.after).toEqual(Array(8).fill('pending'));
  }, 30_000);

  it('an expired item is `expired` with what to do, never its value', async () => {
    const stale = canary('stale');
    const set = b.cli(
      [
        'secret',
        'set',
        SVC,
        'stale',
        '--store',
        'encrypted-file',
        '--kind',
        'token',
        '--expires-at',
        '2020-01-01',
        '--scope',
        'repo read:org',
      ],
      stale,
    );
    expect(set.status, set.stderr).toBe(0);
    const reader = script('stale-reader');
    register(reader, 'stale-reader', SVC, 'read');
    const r = await b.node(reader, ['get', SVC, 'stale']);
    refused(r, 'expired', /^api\.example\.com\/stale expired at 2020-01-01T00:00:00\.000Z$/);
    expect(r.result.hint).toBe(
      "the user can refresh it with: entraclaw secret set api.example.com stale --kind token --expires-at NEW_EXPIRY --scope 'repo read:org'; or ask again with allowExpired to read it anyway",
    );
    expect(`${r.stdout}${r.stderr}`).not.toContain(stale);
  }, 30_000);

  it('a daemon on the kernel keyring without the item says that the kernel forgets items', async () => {
    const reader = script('kk-reader');
    register(reader, 'kk-reader', SVC, 'read');
    // The kernel keyring drops an expired item an hour after its expiry (and every item at reboot): a
    // client then gets not_found, and the hint says why a token stored there may be gone.
    const gone = randomName('gone');
    const kk = await run(
      process.execPath,
      [
        CLI,
        'agent',
        '--store',
        'kernel-keyring',
        '--socket',
        join(b.dir, 'kk.sock'),
        '--',
        NODE,
        reader,
        'get',
        SVC,
        gone,
      ],
      { env: { ...b.env, XDG_STATE_HOME: mkdtempSync(join(b.dir, 'kk-state-')) }, timeoutMs: 20_000 },
    );
    const last = JSON.parse(kk.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(last, kk.stderr).toMatchObject({
      ok: false,
      code: 'not_found',
      hint: `the kernel keyring forgets every item at reboot, and an item with an expiry an hour after it expired: the user can store it again with: entraclaw secret set api.example.com ${gone}`,
    });
  }, 40_000);

  it('a grant with --ttl is refused once it expires', async () => {
    const brief = script('brief');
    register(brief, 'brief', `${SVC}/alice`, 'read', '3s');
    const clients = JSON.parse(b.cli(['clients', '--json']).stdout.toString()) as Array<{
      name: string;
      grants: Array<{ expiresAt?: string }>;
    }>;
    const expiresAt = Date.parse(clients.find((c) => c.name === 'brief')!.grants[0]!.expiresAt!);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(3000);
    expect(value(await b.node(brief, ['get', SVC, 'alice']))).toBe(ALICE);
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() + 100)));
    refused(await b.node(brief, ['get', SVC, 'alice']), 'denied', /expired/);
  }, 30_000);
});

describeIfProvided('audit', brokerClientsMissing, () => {
  interface Record {
    op: string;
    decision: string;
    exe?: string;
    sha256?: string;
    script?: string;
    service?: string;
    account?: string;
    reason?: string;
  }

  it('records every decision with who asked; verify passes', () => {
    const verify = b.cli(['audit', 'verify']);
    expect(verify.status, verify.stderr).toBe(0);
    expect(verify.stdout.toString()).toMatch(
      /^audit log intact: \d+ lines in 1 file\(s\); it ends at the running daemon's last line\n$/,
    );
    // All of the log: the busy client above adds records for as long as its revoke takes, which on a
    // loaded machine can push the early ones out of a fixed tail.
    const records = JSON.parse(b.cli(['audit', '--json', '--tail', '1000000']).stdout.toString()) as Record[];
    expect(records.length).toBeGreaterThan(10);
    // Every policy.toml change the daemon loaded is in the chain too: approvals, revokes, hand edits.
    const changes = records.filter((r) => r.op === 'policy');
    for (const c of changes) {
      expect(c.decision).toBe('changed');
      expect(c.reason).toMatch(/^policy (loaded|changed|invalid)/);
      expect(c.exe).toBeUndefined();
    }
    const reasons = changes.map((c) => c.reason).join('\n');
    expect(reasons).toMatch(/^policy changed: .*added reader /m);
    expect(reasons).toMatch(/^policy changed: .*removed reader/m);
    for (const r of records.filter((r) => r.op !== 'policy')) {
      expect(r.op).toMatch(/^(get|set|delete|list|whoami|connect)$/);
      expect(r.decision).toMatch(/^(granted|denied|pending|error)$/);
      expect(r.exe).toBe(NODE);
      expect(r.sha256).toBe(NODE_SHA256);
    }
    const decisions = new Set(records.filter((r) => r.op !== 'policy').map((r) => r.decision));
    expect([...decisions].sort()).toEqual(['denied', 'granted', 'pending']);
    expect(records).toContainEqual(
      expect.objectContaining({
        op: 'get',
        decision: 'granted',
        script: join(b.dir, 'reader.mjs'),
        service: SVC,
        account: 'alice',
      }),
    );
  });

  it('audit verify names the line whose byte was edited', () => {
    const path = join(b.stateDir, 'audit.jsonl');
    const original = readFileSync(path);
    const lines = original.toString('utf8').split('\n');
    const k = Math.floor((lines.length - 1) / 2) + 1; // 1-based, a middle line
    expect(k).toBeGreaterThan(1);
    const line = lines[k - 1]!;
    const at = line.indexOf('"requestId":"') + '"requestId":"'.length;
    const edited = [...lines];
    edited[k - 1] = `${line.slice(0, at)}${line[at] === 'Z' ? 'Y' : 'Z'}${line.slice(at + 1)}`;
    writeFileSync(path, edited.join('\n'));
    try {
      const broken = b.cli(['audit', 'verify']);
      expect(broken.status).toBe(5);
      expect(broken.stderr).toContain(`audit.jsonl:${k}:`);
      expect(broken.stderr).toMatch(/edited line/);
    } finally {
      writeFileSync(path, original);
    }
    expect(b.cli(['audit', 'verify']).status).toBe(0);
  });

  it('audit verify asks the running daemon, so a cut-off end or an edited last line is caught', () => {
    const path = join(b.stateDir, 'audit.jsonl');
    const original = readFileSync(path);
    const lines = original.toString('utf8').split('\n').slice(0, -1);
    try {
      writeFileSync(path, `${lines.slice(0, -2).join('\n')}\n`);
      const cut = b.cli(['audit', 'verify']);
      expect(cut.status).toBe(5);
      expect(cut.stderr).toMatch(/the newest line\(s\) are missing: the running daemon wrote up to seq \d+/);
      const last = lines.at(-1)!;
      const at = last.indexOf('"requestId":"') + '"requestId":"'.length;
      writeFileSync(
        path,
        `${[...lines.slice(0, -1), `${last.slice(0, at)}${last[at] === 'Z' ? 'Y' : 'Z'}${last.slice(at + 1)}`].join('\n')}\n`,
      );
      const edited = b.cli(['audit', 'verify', '--json']);
      expect(edited.status).toBe(5);
      expect(JSON.parse(edited.stdout.toString())).toMatchObject({
        ok: false,
        line: lines.length,
        daemonChecked: true,
        reason: expect.stringMatching(/not the one the daemon wrote/),
      });
    } finally {
      writeFileSync(path, original);
    }
    const intact = b.cli(['audit', 'verify', '--json']);
    expect(intact.status, intact.stderr).toBe(0);
    expect(JSON.parse(intact.stdout.toString())).toMatchObject({ ok: true, daemonChecked: true });
  });
});

describeIfProvided('secrets never leak', brokerClientsMissing, () => {
  it('no canary in audit, pending, policy, daemon stderr, client errors or CLI listings', () => {
    for (const args of [
      ['pending'],
      ['pending', '--json'],
      ['clients'],
      ['clients', '--json'],
      ['audit', '--tail', '1000'],
      ['audit', '--json', '--tail', '1000'],
    ]) {
      expect(b.cli(args).status).toBe(0);
    }
    const places: Record<string, string> = {
      ...secretFreePlaces(b),
      'daemon argv': readFileSync(`/proc/${b.pid}/cmdline`, 'latin1'),
      vault: readFileSync(join(b.dir, 'data', 'entraclaw', 'vault.ecv'), 'latin1'),
    };
    // The checks are not vacuous: the daemon logged and audited this file's requests.
    expect(places['daemon stderr']).toMatch(/listening/);
    expect(places['state and config files']).toContain('"decision":"granted"');
    expectNoSecret(places, [ALICE, BOB, OTHER, WRITTEN]);
  });

  it('no canary in the daemon environment', (ctx) => {
    // The daemon is not dumpable: /proc/PID/environ is closed to its own user, as to any program of theirs.
    requireOrSkip(ctx, rootOnly("reading the non-dumpable daemon's /proc/PID/environ"));
    const environ = readFileSync(`/proc/${b.pid}/environ`, 'latin1');
    expect(environ).toContain('ENTRACLAW_PASSPHRASE_FILE=');
    expectNoSecret({ 'daemon environment': environ }, [ALICE, BOB, OTHER, WRITTEN]);
  });
});
