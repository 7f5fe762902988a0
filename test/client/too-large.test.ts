// A set whose value cannot fit in one frame (over 1 MiB plus the JSON part) is refused by the SDK before
// anything is sent. It must fail like every SDK failure, as a BrokerError with a code, and leave nothing
// waiting behind: the connection stays usable and the script, which never calls close(), exits.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Broker, SDK_URL, startBroker } from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

let b: Broker;
beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker('entraclaw-too-large');
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

describeIfProvided('an SDK set of a value too large for a frame', brokerClientsMissing, () => {
  it('is a BrokerError too_large, and the client goes on', async () => {
    const script = b.file(
      'too-large.mjs',
      `import { BrokerError, connect } from ${JSON.stringify(SDK_URL)};
const c = await connect();
const err = await c.set('too-large.example', 'me', Buffer.alloc(2 * 1024 * 1024, 1)).catch((e) => e);
const who = await c.whoami();
console.log(JSON.stringify({ broker: err instanceof BrokerError, code: err.code, message: err.message, hint: err.hint, whoamiPid: who.pid }));
`,
    );
    const r = await b.node(script, [], { timeoutMs: 20_000 });
    expect(r.signal, 'killed by the watchdog: something still waited for a reply').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.result).toMatchObject({
      broker: true,
      code: 'too_large',
      message: expect.stringMatching(/^cannot send this set request: frame of \d+ bytes exceeds the limit/),
      hint: 'a secret value may be at most 1048576 bytes (1 MiB)',
      whoamiPid: expect.any(Number),
    });
  }, 30_000);

  it('a value or option of the wrong type from JavaScript is a BrokerError bad_request, not a TypeError or a guess', async () => {
    const script = b.file(
      'wrong-types.mjs',
      `import { BrokerError, connect } from ${JSON.stringify(SDK_URL)};
const c = await connect();
const out = [];
for (const attempt of [() => c.set('s.example', 'me', 42), () => c.set('s.example', 'me', null), () => c.get('s.example', 'me', { allowExpired: 'yes' })]) {
  const err = await attempt().then(() => undefined, (e) => e);
  out.push({ broker: err instanceof BrokerError, code: err?.code, message: err?.message });
}
console.log(JSON.stringify(out));
`,
    );
    const r = await b.node(script, [], { timeoutMs: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual([
      {
        broker: true,
        code: 'bad_request',
        message: 'set(): the value must be a Buffer or a string, not number',
      },
      {
        broker: true,
        code: 'bad_request',
        message: 'set(): the value must be a Buffer or a string, not null',
      },
      { broker: true, code: 'bad_request', message: 'get(): allowExpired must be true or false, not string' },
    ]);
  }, 30_000);
});
