// examples/demo-client.c, the client `make run` uses on macOS, speaks the wire protocol from
// docs/protocol.md alone (no SDK). Compiled here with the system's cc and run against a real daemon:
// approved, it is served its grant and refused the rest; an unapproved build of it is queued.
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, canary, run, startBroker } from '../support/broker.js';
import { requireOrSkip } from '../support/context.js';

const SOURCE = join(import.meta.dirname, '..', '..', 'examples', 'demo-client.c');
const TOKEN = canary('c-client');
const hasCc = spawnSync('cc', ['--version']).status === 0;

let b: Broker;
let client: string;
// The broker's directory as the daemon names programs in it: macOS's tmpdir (/var/folders) is a link.
let home: string;
beforeAll(async () => {
  b = await startBroker('entraclaw-c-client', [['demo.example.com', 'robot', TOKEN]]);
  home = realpathSync(b.dir);
  client = join(home, 'demo-client');
  if (!hasCc) return;
  const cc = spawnSync('cc', ['-O2', '-Wall', '-Werror', '-o', client, SOURCE], { encoding: 'utf8' });
  expect(cc.status, cc.stderr).toBe(0);
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

describe('the C demo client', () => {
  it('approved, is served its one grant and refused another item', async (ctx) => {
    requireOrSkip(ctx, hasCc ? undefined : 'no C compiler (cc)');
    const r0 = b.cli([
      'register',
      client,
      '--grant',
      'demo.example.com/robot',
      '--ops',
      'read',
      '--name',
      'c-demo',
    ]);
    expect(r0.status, r0.stderr).toBe(0);
    const r = await run(client, [], { env: b.clientEnv });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`demo-client: the daemon sees me as ${client} (client: c-demo)`);
    expect(r.stdout).toContain(
      `demo-client: got demo.example.com/robot (${TOKEN.length} bytes, starts ${TOKEN.slice(0, 5)}...)`,
    );
    expect(r.stdout).toMatch(
      /bank\.example\.com\/me refused as expected: denied: no grant of client "c-demo"/,
    );
  }, 30_000);

  it('another build of it (different bytes) is not the approved client: queued, and served nothing', async (ctx) => {
    requireOrSkip(ctx, hasCc ? undefined : 'no C compiler (cc)');
    const other = join(home, 'demo-client-modified');
    copyFileSync(client, other);
    appendFileSync(other, Buffer.from([0]));
    const r = await run(other, [], { env: b.clientEnv });
    expect(r.stdout).toContain('(client: not approved)');
    expect(r.stdout).toMatch(/demo\.example\.com\/robot refused: pending: /);
    expect(r.stdout).not.toContain(TOKEN.slice(0, 5));
    expect(readFileSync(join(b.stateDir, 'pending.json'), 'utf8')).toContain(other);
  }, 30_000);

  it('approving one copy of a program drops the pending entries of its other copies, which it now serves', async (ctx) => {
    requireOrSkip(ctx, hasCc ? undefined : 'no C compiler (cc)');
    // A compiled program is its hash wherever it lives: the same bytes under two paths are one program.
    const build = join(home, 'demo-client-copy');
    copyFileSync(client, build);
    appendFileSync(build, Buffer.from('copy'));
    const copies = ['a', 'b'].map((d) => {
      mkdirSync(join(home, d));
      const path = join(home, d, 'demo-client');
      copyFileSync(build, path);
      return path;
    });
    const pending = () =>
      (
        JSON.parse(b.cli(['pending', '--json']).stdout.toString()) as Array<{ id: string; exe: string }>
      ).filter((e) => copies.includes(e.exe));
    for (const copy of copies) {
      const r = await run(copy, [], { env: b.clientEnv });
      expect(r.stdout).toMatch(/demo\.example\.com\/robot refused: pending: /);
    }
    const queued = pending();
    expect(queued.map((e) => e.exe).sort()).toEqual(copies);
    const first = queued.find((e) => e.exe === copies[0])!;
    const ok = b.cli(['approve', first.id, '--grant', 'demo.example.com/robot', '--name', 'c-copy']);
    expect(ok.status, ok.stderr).toBe(0);
    // The other copy is served as that client, so nothing of it is left to approve.
    expect(pending()).toEqual([]);
    const served = await run(copies[1]!, [], { env: b.clientEnv });
    expect(served.stdout).toContain('(client: c-copy)');
    expect(b.cli(['revoke', 'c-copy']).status).toBe(0);
  }, 30_000);
});
