// The SDK as a long-lived agent uses it, against a real daemon (run in this process only so that its
// idle timeout can be short) and real client processes: a connection the daemon closed for idleness is
// reopened by the next request, more requests at once than the daemon queues per connection wait in the
// SDK, and a request waiting for the user's confirmation outlives the idle timeout and gets its reply.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Agent, startAgent } from '../../src/daemon/server.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { backendFor } from '../../src/store/registry.js';
import { canary, NODE, SDK_URL, waitFor } from '../support/broker.js';
import { isolatedEnv, runCli } from '../support/cli.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

const IDLE_MS = 300;
const SVC = 'long-lived.example';
const SECRET = canary('long-lived');
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-long-lived-'));
const pass = join(dir, 'passphrase');
writeFileSync(pass, 'long-lived test passphrase\n', { mode: 0o600 });
const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass });
const socket = join(dir, 'run', 'entraclaw', 'agent.sock');
// The askpass answers yes after sleeping twice the idle timeout.
const askpass = join(dir, 'askpass.sh');
writeFileSync(askpass, `#!/bin/sh\nsleep ${(3 * IDLE_MS) / 1000}\nexit 0\n`);
chmodSync(askpass, 0o755);

// One client program, steps in argv: ACCOUNT (a get) | wait:MS | busy:MS | many:N (N gets at once) | touch:FILE |
// gate:FILE (waits for FILE) | sent:FILE (a get, FILE made once its frame is written). One JSON line per get.
const client = join(dir, 'client.mjs');
writeFileSync(
  client,
  `import { existsSync, writeFileSync } from 'node:fs';
import { connect } from ${JSON.stringify(SDK_URL)};
const c = await connect({ socket: ${JSON.stringify(socket)} });
const run = (p) => p.then((v) => ({ ok: v.toString() === ${JSON.stringify(SECRET)} }), (e) => ({ ok: false, code: e.code, message: e.message }));
for (const step of process.argv.slice(2)) {
  if (step.startsWith('wait:')) await new Promise((r) => setTimeout(r, Number(step.slice(5))));
  else if (step.startsWith('busy:')) {
    // Synchronous work: the daemon's idle close is not read meanwhile, so the next get goes out on it.
    const until = Date.now() + Number(step.slice(5));
    while (Date.now() < until) {}
  } else if (step.startsWith('touch:')) writeFileSync(step.slice(6), '');
  else if (step.startsWith('gate:')) while (!existsSync(step.slice(5))) await new Promise((r) => setTimeout(r, 10));
  else if (step.startsWith('sent:')) {
    // A get whose frame is written (one turn of the loop after the call) before the flag file says so.
    const reply = run(c.get('${SVC}', 'item'));
    await new Promise((r) => setImmediate(r));
    writeFileSync(step.slice(5), '');
    console.log(JSON.stringify(await reply));
  }
  else if (step.startsWith('many:')) {
    const all = await Promise.all(Array.from({ length: Number(step.slice(5)) }, () => run(c.get('${SVC}', 'item'))));
    console.log(JSON.stringify({ many: all.length, ok: all.filter((r) => r.ok).length, first: all.find((r) => !r.ok) }));
  } else console.log(JSON.stringify(await run(c.get('${SVC}', step))));
}
c.close();
const after = await run(c.get('${SVC}', 'item'));
console.log(JSON.stringify({ afterClose: after }));
`,
);

function runClient(steps: string[]): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [client, ...steps], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('close', (status) =>
      status === 0
        ? resolve(
            out
              .trim()
              .split('\n')
              .map((l) => JSON.parse(l) as Record<string, unknown>),
          )
        : reject(new Error(`client exited ${status}: ${err}`)),
    );
  });
}

let agent: Agent;
const logged: string[] = [];
beforeAll(async () => {
  if (brokerClientsMissing) return;
  for (const account of ['item', 'confirmed']) {
    const r = runCli(['secret', 'set', SVC, account, '--store', 'encrypted-file'], env, SECRET);
    expect(r.status, r.stderr).toBe(0);
  }
  const grant = (args: string[]) => {
    const r = runCli(args, env);
    expect(r.status, r.stderr).toBe(0);
  };
  grant(['register', NODE, '--script', client, '--grant', `${SVC}/item`, '--name', 'long-lived']);
  grant(['grant', 'long-lived', '--grant', `${SVC}/confirmed`, '--confirm']);
  const paths = resolvePaths(env);
  const store = await (await backendFor('encrypted-file')).open({
    env,
    paths,
    passphraseFile: pass,
    interactive: false,
    timeoutMs: 3000,
  });
  agent = await startAgent({
    socket,
    paths,
    store,
    log: (level, message, fields) => logged.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    version: 'test',
    askpass,
    limits: { idleTimeoutMs: IDLE_MS },
  });
}, 60_000);
afterAll(async () => {
  await agent?.close();
  rmSync(dir, { recursive: true, force: true });
});

describeIfProvided('a long-lived SDK client', brokerClientsMissing, () => {
  it('reopens a connection the daemon closed for idleness, on the next request', async () => {
    const results = await runClient(['item', `wait:${4 * IDLE_MS}`, 'item']);
    expect(results.slice(0, 2)).toEqual([{ ok: true }, { ok: true }]);
    expect(logged.some((l) => l.includes('idle timeout'))).toBe(true);
  }, 30_000);

  it('asks a get again on a new connection when it went out on one the daemon had closed for idleness', async () => {
    const results = await runClient(['item', `busy:${4 * IDLE_MS}`, 'item']);
    expect(results.slice(0, 2)).toEqual([{ ok: true }, { ok: true }]);
  }, 30_000);

  it('serves a request that arrived while the daemon was stalled past the idle timeout', async () => {
    const ready = join(dir, 'stall-ready');
    const go = join(dir, 'stall-go');
    const sent = join(dir, 'stall-sent');
    const results = runClient(['item', `touch:${ready}`, `gate:${go}`, `sent:${sent}`]);
    await waitFor(() => existsSync(ready), 'the client to connect');
    const idleCloses = () => logged.filter((l) => l.includes('idle timeout')).length;
    const before = idleCloses();
    writeFileSync(go, '');
    // Block the daemon's event loop (it runs in this process) past its idle timeout, and until the get is
    // in its socket. Blocked in the check phase (setImmediate), the loop goes on to its timers next, with
    // the idle timer due and the request not yet read.
    await new Promise<void>((done) =>
      setImmediate(() => {
        const until = Date.now() + 3 * IDLE_MS;
        const cap = Date.now() + 20_000;
        while ((Date.now() < until || !existsSync(sent)) && Date.now() < cap) {
          // busy: nothing else of this process runs meanwhile
        }
        done();
      }),
    );
    expect(await results).toEqual([{ ok: true }, { ok: true }, { afterClose: expect.anything() }]);
    // Served on the connection it was sent on (the SDK would retry a get on a new one).
    expect(idleCloses()).toBe(before);
  }, 30_000);

  it('waits in the SDK beyond the requests the daemon queues per connection, and all are served', async () => {
    const [many] = await runClient(['many:100']);
    expect(many).toEqual({ many: 100, ok: 100 });
    expect(logged.some((l) => l.includes('too many queued requests'))).toBe(false);
  }, 30_000);

  it("keeps a request that waits for the user's answer past the idle timeout, and delivers the reply", async () => {
    const [confirmed] = await runClient(['confirmed']);
    expect(confirmed).toEqual({ ok: true });
  }, 30_000);

  it('refuses requests after close() at once, with unavailable', async () => {
    const results = await runClient(['item']);
    expect(results.at(-1)).toMatchObject({
      afterClose: { ok: false, code: 'unavailable', message: 'this entraclaw client was closed' },
    });
  }, 30_000);
});
