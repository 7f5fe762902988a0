// Confirm-on-use: a grant written with --confirm is served only after the user says yes through the
// agent's askpass program (ssh-agent -c style). Real daemon, real client process, a real askpass script.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, b64, canary, PY_LIB, PYTHON, startBroker, stateText } from '../support/broker.js';

const SVC = 'confirm.example';
const SECRET = canary('confirm');
const CLIENT_PY = `${PY_LIB}
emit(get(connect_hello(SOCK), sys.argv[1], sys.argv[2]))
`;

// The askpass records what it was asked (and how), then answers with the exit status in ANSWER.
const here = mkdtempSync(join(tmpdir(), 'entraclaw-askpass-'));
const ASKED = join(here, 'asked.log');
const ANSWER = join(here, 'answer');
const ASKPASS = join(here, 'askpass.sh');
writeFileSync(
  ASKPASS,
  `#!/bin/sh\nprintf '%s|%s\\n' "$SSH_ASKPASS_PROMPT" "$1" >> '${ASKED}'\nexit "$(cat '${ANSWER}')"\n`,
);
chmodSync(ASKPASS, 0o755);
const asked = () => (existsSync(ASKED) ? readFileSync(ASKED, 'utf8').trim().split('\n') : []);

let b: Broker;
let clientPy: string;
beforeAll(async () => {
  b = await startBroker(
    'entraclaw-confirm',
    [
      [SVC, 'asked', SECRET],
      [SVC, 'plain', SECRET],
    ],
    {
      ENTRACLAW_ASKPASS: ASKPASS,
    },
  );
  clientPy = b.file('client.py', CLIENT_PY);
  const register = b.cli([
    'register',
    PYTHON,
    '--script',
    clientPy,
    '--grant',
    `${SVC}/asked`,
    '--confirm',
    '--name',
    'careful',
  ]);
  expect(register.status, register.stderr).toBe(0);
  const plain = b.cli(['grant', 'careful', '--grant', `${SVC}/plain`]);
  expect(plain.status, plain.stderr).toBe(0);
}, 60_000);
afterAll(async () => {
  await b?.stop();
  rmSync(here, { recursive: true, force: true });
});

describe('confirm on use', () => {
  it('the policy records it and `clients` shows it', () => {
    expect(readFileSync(join(b.dir, 'config', 'entraclaw', 'policy.toml'), 'utf8')).toMatch(/confirm = true/);
    const clients = JSON.parse(b.cli(['clients', '--json']).stdout.toString());
    const grants = JSON.stringify(clients);
    expect(grants).toMatch(/"confirm":true/);
    expect(b.cli(['clients']).stdout.toString()).toContain('confirm.example/asked read (confirm each use)');
  });

  it('is served when the user says yes, and the question names the program and the item, never the value', async () => {
    writeFileSync(ANSWER, '0');
    const before = asked().length;
    const r = await b.python(clientPy, [SVC, 'asked']);
    expect(r.result, r.stderr).toMatchObject({ ok: true, value_b64: b64(SECRET) });
    const question = asked().slice(before);
    expect(question).toHaveLength(1);
    expect(question[0]).toMatch(
      /^confirm\|Entraclaw: allow "careful" \(.*client\.py, pid \d+\) to read confirm\.example\/asked\?$/,
    );
    expect(question[0]).not.toContain(SECRET);
    expect(stateText(b)).toMatch(/confirmed by the user/);
  }, 30_000);

  it('is denied when the user says no', async () => {
    writeFileSync(ANSWER, '1');
    const r = await b.python(clientPy, [SVC, 'asked']);
    expect(r.result).toMatchObject({ ok: false, code: 'denied' });
    expect(r.result.message).toMatch(/not confirmed: the user declined/);
    expect(r.result.value_b64).toBeUndefined();
  }, 30_000);

  it('is not asked for a grant without confirm', async () => {
    writeFileSync(ANSWER, '1');
    const before = asked().length;
    const r = await b.python(clientPy, [SVC, 'plain']);
    expect(r.result, r.stderr).toMatchObject({ ok: true, value_b64: b64(SECRET) });
    expect(asked()).toHaveLength(before);
  }, 30_000);
});

describe('confirm on use without an askpass program', () => {
  it('is denied, saying how to configure one', async () => {
    const bare = await startBroker('entraclaw-confirm-bare', [[SVC, 'asked', SECRET]]);
    try {
      const script = bare.file('client.py', CLIENT_PY);
      const reg = bare.cli(['register', PYTHON, '--script', script, '--grant', `${SVC}/asked`, '--confirm']);
      expect(reg.status, reg.stderr).toBe(0);
      const r = await bare.python(script, [SVC, 'asked']);
      expect(r.result).toMatchObject({ ok: false, code: 'denied' });
      expect(r.result.message).toMatch(/no askpass program is configured/);
    } finally {
      await bare.stop();
    }
  }, 60_000);
});
