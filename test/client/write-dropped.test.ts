// A set or delete whose connection drops before its reply (here: the daemon stops while the user is being
// asked to confirm it) is not sent again, since it may have been done. The SDK must say that it may have
// been done and how to find out, not only that the connection closed. Real daemon, askpass and client.
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { type Broker, canary, NODE, SDK_URL, startBroker, waitFor } from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

const SVC = 'write-dropped.example';
const here = mkdtempSync(join(tmpdir(), 'entraclaw-write-dropped-askpass-'));
const asked = join(here, 'asked');
// The askpass notes that the question is on screen and never answers it.
const askpass = join(here, 'askpass.sh');
writeFileSync(askpass, `#!/bin/sh\n: > '${asked}'\nexec sleep 30\n`);
chmodSync(askpass, 0o755);
const brokers: Broker[] = [];
afterAll(async () => {
  for (const b of brokers) await b.stop();
  rmSync(here, { recursive: true, force: true });
});

describeIfProvided('a write in flight when the daemon stops', brokerClientsMissing, () => {
  it.each([
    [
      'set',
      `c.set('${SVC}', 'me', 'new value')`,
      /get the item to see which value it holds, or set it again/,
    ],
    [
      'delete',
      `c.delete('${SVC}', 'me')`,
      /get the item to see whether it is still there, or delete it again/,
    ],
  ])(
    'a %s fails with unavailable, saying it may have been done and how to check',
    async (op, call, hint) => {
      rmSync(asked, { force: true });
      const b = await startBroker('entraclaw-write-dropped', [[SVC, 'me', canary('write-dropped')]], {
        ENTRACLAW_ASKPASS: askpass,
      });
      brokers.push(b);
      const script = b.file(
        `${op}.mjs`,
        `import { connect } from ${JSON.stringify(SDK_URL)};
const c = await connect();
const err = await ${call}.then(() => undefined, (e) => e);
console.log(JSON.stringify({ ok: !err, code: err?.code, message: err?.message, hint: err?.hint }));
`,
      );
      const reg = b.cli([
        'register',
        NODE,
        '--script',
        script,
        '--grant',
        `${SVC}/me`,
        '--ops',
        'write,delete',
        '--confirm',
      ]);
      expect(reg.status, reg.stderr).toBe(0);
      const client = b.node(script, []);
      await waitFor(() => existsSync(asked), 'the confirmation question');
      // The daemon goes (as on a restart) with the write unanswered.
      b.process.kill('SIGTERM');
      await waitFor(() => b.process.exitCode !== null || b.process.signalCode !== null, 'the daemon to stop');
      const r = await client;
      expect(r.status, r.stderr).toBe(0);
      expect(r.result).toMatchObject({
        ok: false,
        code: 'unavailable',
        message: `connection to the entraclaw daemon closed before it answered this ${op}: it may or may not have been done`,
        hint: expect.stringMatching(hint),
      });
    },
    30_000,
  );
});
