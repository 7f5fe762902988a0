import {
  chmodSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Broker,
  canary,
  fileSha256,
  NODE,
  nodeClientSource,
  type RunResult,
  startBroker,
} from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

// policy.toml written by hand, in TOML forms docs/policy.md does not show, against the real daemon: each
// edit means exactly what it reads as, or the file is refused with its line and every request denied.

const BOB = canary('hand-bob');
const ALICE = canary('hand-alice');
const NODE_SHA256 = fileSha256(NODE);

let b: Broker;
let policy: string;
let client: string;
beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker('entraclaw-hand-edits', [
    ['svc', 'bob', BOB],
    ['svc', 'alice', ALICE],
  ]);
  policy = join(b.dir, 'config', 'entraclaw', 'policy.toml');
  mkdirSync(join(b.dir, 'config', 'entraclaw'), { recursive: true, mode: 0o700 });
  client = b.file('hand.mjs', nodeClientSource());
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

// One client, the hand.mjs script, with the grant lines given, in the docs' form.
const withGrant = (grant: string) => `[[client]]
name = "hand"
exe = "${NODE}"
sha256 = "${NODE_SHA256}"
script = "${client}"
script_sha256 = "${fileSha256(client)}"
  [[client.grant]]
${grant}
`;
const served = (r: RunResult) => {
  expect(r.result, r.stderr).toMatchObject({ ok: true });
  return Buffer.from(r.result.value_b64 ?? '', 'base64').toString();
};
const refused = (r: RunResult, code: string, message?: RegExp) => {
  expect(r.result, r.stderr).toMatchObject({ ok: false, code });
  expect(r.result.value_b64).toBeUndefined();
  if (message) expect(r.result.message).toMatch(message);
};

describeIfProvided('policy.toml edited by hand', brokerClientsMissing, () => {
  it('an account that is only a * written as an escape is refused with its line, never read as every account', async () => {
    // docs/policy.md: a * written as \u002a means the character. Parsed, "\u002a" is "*": every account.
    writeFileSync(
      policy,
      withGrant(
        '  services = ["svc"]\n  accounts = ["\\u002a"]  # the account named *\n  operations = ["read"]',
      ),
      { mode: 0o600 },
    );
    for (const account of ['bob', 'alice', '*']) {
      refused(
        await b.node(client, ['get', 'svc', account]),
        'denied',
        /^policy file is invalid \(invalid policy: .*policy\.toml:9: a \* written as an escape means the character, but a name that is only \* cannot be granted/,
      );
    }
    // The same grant with the name spelt out, in forms the docs do not show (BOM, CRLF, an inline table,
    // trailing commas, escapes, a TOML datetime): exactly what it reads as.
    const inline = `\ufeff# by hand\r
client = [ { name = 'hand', exe = "${NODE}", sha256 = "${NODE_SHA256}",\r
  script = '${client}', script_sha256 = "${fileSha256(client)}",\r
  grant = [ { services = ["\\u0073vc",], accounts = ['bob', "b\\u002a",], operations = ["read",], expires_at = 9999-01-01T00:00:00+01:00 } ] },\r
]\r
`;
    writeFileSync(policy, inline, { mode: 0o600 });
    expect(served(await b.node(client, ['get', 'svc', 'bob']))).toBe(BOB);
    refused(await b.node(client, ['get', 'svc', 'alice']), 'denied', /no grant of client "hand" allows read/);
  }, 30_000);

  it('a token pasted where a name goes (too long, or with a newline) is not repeated in the log, the audit or any refusal', async () => {
    // The line and field say which entry is wrong; the daemon's own request checks never quote such a
    // "name" either, since it is more likely a secret in the wrong place than a name.
    const jwt = `${canary('pasted-jwt')}.${'x'.repeat(300)}`;
    const pem = canary('pasted-pem');
    writeFileSync(
      policy,
      withGrant(
        `  services = ["svc"]\n  accounts = ["bob", "${jwt}", "${pem}\\nMIIE"]\n  operations = ["read"]`,
      ),
      { mode: 0o600 },
    );
    const r = await b.node(client, ['get', 'svc', 'bob']);
    refused(
      r,
      'denied',
      /policy\.toml:9: accounts\[1\]: must be at most 256 bytes; .*policy\.toml:9: accounts\[2\]: must not contain NUL or newline/,
    );
    const audit = readFileSync(join(b.stateDir, 'audit.jsonl'), 'utf8');
    for (const secret of [jwt.slice(0, 30), pem]) {
      for (const [where, text] of Object.entries({ audit, 'daemon stderr': b.stderr(), client: r.stdout }))
        expect(text.includes(secret), `${where} holds the pasted value`).toBe(false);
    }
  }, 30_000);

  it('an expires_at on a day its month does not have is refused with its line, not rolled into the next month', async () => {
    // 02-30 parsed as a date of March 2: a grant that outlives what was written.
    const year = new Date().getUTCFullYear() + 1;
    writeFileSync(
      policy,
      withGrant(
        `  services = ["svc"]\n  accounts = ["bob"]\n  operations = ["read"]\n  expires_at = ${year}-02-30T00:00:00Z`,
      ),
      { mode: 0o600 },
    );
    refused(
      await b.node(client, ['get', 'svc', 'bob']),
      'denied',
      new RegExp(
        `^policy file is invalid \\(invalid policy: .*policy\\.toml:11: ${year}-02-30 is not a date`,
      ),
    );
    writeFileSync(policy, readFileSync(policy, 'utf8').replace('-02-30T', '-02-28T'), { mode: 0o600 });
    expect(served(await b.node(client, ['get', 'svc', 'bob']))).toBe(BOB);
  }, 30_000);

  it('a policy refused for its open directory is served again once the directory is closed, as the hint says', async () => {
    writeFileSync(policy, withGrant('  services = ["svc"]\n  accounts = ["bob"]\n  operations = ["read"]'), {
      mode: 0o600,
    });
    expect(served(await b.node(client, ['get', 'svc', 'bob']))).toBe(BOB);
    const dir = join(b.dir, 'config', 'entraclaw');
    chmodSync(dir, 0o777);
    try {
      // Replaced while the directory is open (by anyone, as far as the daemon can tell): refused.
      writeFileSync(`${policy}.new`, readFileSync(policy), { mode: 0o600 });
      renameSync(`${policy}.new`, policy);
      const r = await b.node(client, ['get', 'svc', 'bob']);
      refused(r, 'denied', /which holds .*policy\.toml, is writable by other users \(mode 777\)/);
      expect(r.result.hint).toBe(`chmod 700 ${dir}`);
    } finally {
      chmodSync(dir, 0o700);
    }
    // The file itself is untouched by the fix: the daemon must look at the directory again.
    expect(served(await b.node(client, ['get', 'svc', 'bob']))).toBe(BOB);
    const invalid = b
      .stderr()
      .split('\n')
      .filter((l) => l.includes('policy invalid') && l.includes('mode 777'));
    expect(invalid).toHaveLength(1);
  }, 30_000);

  it('a grant taken away by any way of saving the file is gone by the next request', async () => {
    const granted = withGrant('  services = ["svc"]\n  accounts = ["bob"]\n  operations = ["read"]');
    // The same size, the same inode where the way of saving keeps it: only the contents say it changed.
    const taken = granted.replace('"bob"', '"xxx"');
    const dotfiles = join(b.dir, 'dotfiles');
    mkdirSync(dotfiles, { recursive: true, mode: 0o700 });
    const ways: Record<string, (text: string) => void> = {
      'rename over': (text) => {
        writeFileSync(`${policy}.new`, text, { mode: 0o600 });
        renameSync(`${policy}.new`, policy);
      },
      'truncate and write': (text) => writeFileSync(policy, text, { mode: 0o600 }),
      'deleted, then created again': (text) => {
        rmSync(policy, { force: true });
        writeFileSync(policy, text, { mode: 0o600 });
      },
      'a symlink to a file written in place': (text) => {
        const target = join(dotfiles, 'policy.toml');
        writeFileSync(target, text, { mode: 0o600 });
        rmSync(policy, { force: true });
        symlinkSync(target, policy);
      },
      'a symlink pointed elsewhere': (text) => {
        const target = join(dotfiles, `policy-${text === taken ? 'taken' : 'granted'}.toml`);
        writeFileSync(target, text, { mode: 0o600 });
        symlinkSync(target, `${policy}.link`);
        renameSync(`${policy}.link`, policy);
      },
    };
    for (const [way, save] of Object.entries(ways)) {
      save(granted);
      expect(served(await b.node(client, ['get', 'svc', 'bob'])), way).toBe(BOB);
      save(taken);
      refused(await b.node(client, ['get', 'svc', 'bob']), 'denied', /no grant of client "hand" allows read/);
    }
    unlinkSync(policy);
    refused(await b.node(client, ['get', 'svc', 'bob']), 'pending');
    expect(b.process.exitCode).toBeNull();
  }, 60_000);
});
