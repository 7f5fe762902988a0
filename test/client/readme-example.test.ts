// README's SDK example, copied as a user would: into a project of its own that imports 'entraclaw/client'
// through node_modules (the package's exports, not a path into src), run against a real daemon. Its first
// run is pending and prints the approve command; the user runs that command; the next run reads the item.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Broker, canary, REPO, startBroker } from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
const example = /```js\n(\/\/ agent\.mjs\n[\s\S]*?)```/.exec(readme)?.[1];
let b: Broker;
let agent = '';

beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker('entraclaw-readme-sdk', [['github.com', 'me', canary('readme-sdk')]]);
  const app = join(b.dir, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  // As `npm install /path/to/entraclaw` leaves it: a link to the (built) checkout.
  symlinkSync(REPO, join(app, 'node_modules', 'entraclaw'));
  agent = join(app, 'agent.mjs');
  if (example) writeFileSync(agent, example);
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

describeIfProvided("README's SDK example", brokerClientsMissing, () => {
  it('is in the README', () => {
    expect(example, 'a ```js block starting `// agent.mjs`').toBeDefined();
  });

  it('is pending at first and prints the command that approves it; after that command it reads', async () => {
    const first = await b.node(agent, []);
    expect(first.status, first.stderr).toBe(1);
    expect(first.stderr).toMatch(/^entraclaw pending: .* is not approved yet/);
    const approve = /entraclaw (approve p-[0-9a-f]+ --grant github\.com\/me --ops read)$/m.exec(first.stderr);
    expect(approve, first.stderr).not.toBeNull();
    const approved = b.cli(approve![1]!.split(' '));
    expect(approved.status, approved.stderr).toBe(0);

    const second = await b.node(agent, []);
    expect(second.stderr).toBe('');
    expect(second.status).toBe(0);
    expect(second.stdout).toMatch(/^got a token of \d+ bytes\n$/);
  }, 30_000);

  it('says unavailable, and how to start the daemon, when none is running', async () => {
    const r = await b.node(agent, [], {
      env: { ...b.clientEnv, ENTRACLAW_SOCKET: join(b.dir, 'no-daemon.sock') },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^entraclaw unavailable: cannot connect to the entraclaw daemon at /);
    expect(r.stderr).toContain(
      `start one there with \`entraclaw agent --socket ${join(b.dir, 'no-daemon.sock')}\``,
    );
  }, 30_000);
});
