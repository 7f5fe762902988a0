import { once } from 'node:events';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PER_PROGRAM } from '../../src/audit/throttle.js';
import { type Broker, canary, startBroker } from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

const SECRET = canary('throttle');
const ASKS = 300;

// An unapproved program asking in a loop, each time for another long item name: what a program that
// means to rotate the audit history away would do.
const FLOOD_MJS = `import { connect } from ${JSON.stringify(new URL('../../dist/client/index.js', import.meta.url).href)};
const c = await connect({ socket: process.env.ENTRACLAW_SOCKET, timeoutMs: 20000 });
const codes = {};
for (let i = 0; i < ${ASKS}; i++) {
  try { await c.get('flood-' + i + '-' + 'x'.repeat(200), 'acct'); codes.served = (codes.served ?? 0) + 1; }
  catch (e) { codes[e.code] = (codes[e.code] ?? 0) + 1; }
}
try { await c.get('bank', 'acct'); } catch (e) { codes.last = e.code; }
c.close();
process.stdout.write(JSON.stringify(codes) + '\\n');
`;

interface Line {
  op: string;
  decision: string;
  requestId: string;
  exe?: string;
  script?: string;
  service?: string;
  reason?: string;
}

describeIfProvided('the audit log under a program refused in a loop', brokerClientsMissing, () => {
  let b: Broker;
  let flood: string;
  let lines: Line[];
  let result: Record<string, number | string>;
  beforeAll(async () => {
    b = await startBroker('entraclaw-throttle', [['bank', 'acct', SECRET]]);
    flood = b.file('flood.mjs', FLOOD_MJS);
    const r = await b.node(flood, []);
    expect(r.status, r.stderr).toBe(0);
    result = JSON.parse(r.stdout.trim());
    // Held-back refusals are summed when the window ends, or when the daemon stops: stop it now.
    const exited = once(b.process, 'exit');
    b.process.kill('SIGTERM');
    await exited;
    const audit = b.cli(['audit', '--json', '--tail', '1000000']);
    expect(audit.status, audit.stderr).toBe(0);
    lines = JSON.parse(audit.stdout.toString());
  }, 120_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('every request is still refused as pending; the throttle changes what is written, not what is decided', () => {
    expect(result).toEqual({ pending: ASKS, last: 'pending' });
  });

  it(`writes the program's first ${PER_PROGRAM} refusals one by one and the rest as one line saying how many`, () => {
    const mine = lines.filter((l) => l.script === flood);
    const single = mine.filter((l) => l.requestId !== '-');
    expect(single).toHaveLength(PER_PROGRAM);
    expect(single.every((l) => l.decision === 'pending')).toBe(true);
    const summaries = mine.filter((l) => l.requestId === '-');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]!.reason).toMatch(
      new RegExp(
        `^throttled: ${ASKS + 1 - PER_PROGRAM} more refused requests from this program \\(${ASKS + 1 - PER_PROGRAM} pending\\)`,
      ),
    );
    // No item name of a held-back request rides on the summary.
    expect(summaries[0]!.service).toBeUndefined();
  });

  it('the chain is intact across the summary, and holds no secret', () => {
    const verify = b.cli(['audit', 'verify']);
    expect(verify.status, verify.stderr).toBe(0);
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });
});
