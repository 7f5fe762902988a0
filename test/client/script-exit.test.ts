// A short script on the SDK that never calls close() (README's one-liner, a quick tool) must exit once its
// requests are answered, not hang on the open connection until the daemon closes it for idleness (60 s).
// Real daemon, real client process; the client's watchdog (20 s) is well inside the daemon's idle close.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Broker, canary, NODE, SDK_URL, startBroker } from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

const SVC = 'script-exit.example';
const SECRET = canary('script-exit');
let b: Broker;

beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker('entraclaw-script-exit', [[SVC, 'me', SECRET]]);
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

describeIfProvided('an SDK script that does not close its client', brokerClientsMissing, () => {
  it('exits once its get is answered, with the connection still open', async () => {
    const script = b.file(
      'no-close.mjs',
      `import { connect } from ${JSON.stringify(SDK_URL)};
const c = await connect();
console.log(JSON.stringify({ ok: true, value_b64: (await c.get('${SVC}', 'me')).toString('base64') }));
`,
    );
    b.register({ exe: NODE, script, grant: `${SVC}/me`, ops: 'read', name: 'no-close' });
    const r = await b.node(script, [], { timeoutMs: 20_000 });
    expect(r.signal, 'killed by the watchdog: the open connection kept the script alive').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(Buffer.from(r.result.value_b64!, 'base64').toString()).toBe(SECRET);
  }, 30_000);

  it('still waits for a reply in flight (the request, not the connection, keeps it alive)', async () => {
    // The get is started and nothing else holds the event loop: its reply must still arrive.
    const script = b.file(
      'fire.mjs',
      `import { connect } from ${JSON.stringify(SDK_URL)};
const c = await connect();
c.get('${SVC}', 'me').then((v) => console.log(JSON.stringify({ ok: true, value_b64: v.toString('base64') })));
`,
    );
    b.register({ exe: NODE, script, grant: `${SVC}/me`, ops: 'read', name: 'fire' });
    const r = await b.node(script, [], { timeoutMs: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(Buffer.from(r.result.value_b64!, 'base64').toString()).toBe(SECRET);
  }, 30_000);
});
