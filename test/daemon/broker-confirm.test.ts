// Confirm-on-use: a grant written with --confirm is served only after the user says yes through the
// agent's askpass program (ssh-agent -c style). Real daemon, real client process, a real askpass script.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Broker,
  b64,
  type ClientResult,
  canary,
  inheritedFds,
  PY_LIB,
  PYTHON,
  startBroker,
  stateText,
  waitFor,
} from '../support/broker.js';
import { CLI } from '../support/cli.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

const SVC = 'confirm.example';
const SECRET = canary('confirm');
const CLIENT_PY = `${PY_LIB}
emit(get(connect_hello(SOCK), sys.argv[1], sys.argv[2]))
`;
// Several gets by one process: argv service, account, then "get", "wait:SECONDS", "mark:PATH" (makes PATH)
// or "gate:PATH" (waits for PATH) steps.
const STEPS_PY = `${PY_LIB}
s = connect_hello(SOCK)
out = []
for step in sys.argv[3:]:
    if step.startswith("wait:"):
        time.sleep(float(step[5:]))
    elif step.startswith("mark:"):
        open(step[5:], "w").close()
    elif step.startswith("gate:"):
        while not os.path.exists(step[5:]):
            time.sleep(0.02)
    else:
        out.append(get(s, sys.argv[1], sys.argv[2]))
emit({"results": out})
`;
// Asks once, shuts down its writing side, then says so in the file argv[3]; reads the reply after that.
const HALF_CLOSING_PY = `${PY_LIB}
s = connect_hello(SOCK)
s.sendall(frame({"id": 1, "op": "get", "service": sys.argv[1], "account": sys.argv[2]}))
s.shutdown(socket.SHUT_WR)
open(sys.argv[3], "w").close()
try:
    emit(result(*recv_frame(s)))
except ConnectionError as e:
    emit({"ok": False, "code": "closed", "message": str(e)})
`;

// The askpass records what it was asked (and how), then answers with the exit status in ANSWER; an
// ANSWER of `revoke:NAME` has the user revoke client NAME while the question is open, then say yes;
// `wait:PATH` has the user say yes once PATH exists.
const here = mkdtempSync(join(tmpdir(), 'entraclaw-askpass-'));
const ASKED = join(here, 'asked.log');
const ANSWER = join(here, 'answer');
const ASKPASS = join(here, 'askpass.sh');
// What the askpass was handed besides stdio, as a child of it sees it (a shell passes on every fd it got).
const FDS = join(here, 'fds.json');
const LIST_FDS = `import json, os
fds = {}
for fd in os.listdir('/proc/self/fd'):
    try:
        fds[fd] = os.readlink('/proc/self/fd/' + fd)
    except OSError:
        pass
print(json.dumps(fds))`;
writeFileSync(
  ASKPASS,
  `#!/bin/sh
'${PYTHON}' -c "${LIST_FDS}" > '${FDS}'
printf '%s|%s\\n' "$SSH_ASKPASS_PROMPT" "$1" >> '${ASKED}'
answer="$(cat '${ANSWER}')"
case "$answer" in
  revoke:*) '${process.execPath}' '${CLI}' revoke "\${answer#revoke:}" >/dev/null 2>&1 || exit 3; exit 0 ;;
  wait:*) while [ ! -e "\${answer#wait:}" ]; do sleep 0.05; done; exit 0 ;;
esac
exit "$answer"
`,
);
chmodSync(ASKPASS, 0o755);
const asked = () => (existsSync(ASKED) ? readFileSync(ASKED, 'utf8').trim().split('\n') : []);

let b: Broker;
let clientPy: string;
let stepsPy: string;
beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker(
    'entraclaw-confirm',
    [
      [SVC, 'asked', SECRET],
      [SVC, 'plain', SECRET],
      [SVC, 'polled', SECRET],
      [SVC, 'brief', SECRET],
    ],
    {
      ENTRACLAW_ASKPASS: ASKPASS,
    },
  );
  const ok = (args: string[]) => {
    const r = b.cli(args);
    expect(r.status, `entraclaw ${args.join(' ')}: ${r.stderr}`).toBe(0);
  };
  clientPy = b.file('client.py', CLIENT_PY);
  ok(['register', PYTHON, '--script', clientPy, '--grant', `${SVC}/asked`, '--confirm', '--name', 'careful']);
  ok(['grant', 'careful', '--grant', `${SVC}/plain`]);
  stepsPy = b.file('steps.py', STEPS_PY);
  ok([
    'register',
    PYTHON,
    '--script',
    stepsPy,
    '--grant',
    `${SVC}/polled`,
    '--confirm-for',
    '10m',
    '--name',
    'poller',
  ]);
  ok(['grant', 'poller', '--grant', `${SVC}/brief`, '--confirm-for', '2s']);
}, 60_000);
afterAll(async () => {
  await b?.stop();
  rmSync(here, { recursive: true, force: true });
});

describeIfProvided('confirm on use', brokerClientsMissing, () => {
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

  it('the askpass program gets only stdio from the daemon: no socket, lock, vault, audit log or /proc fd', async () => {
    writeFileSync(ANSWER, '0');
    rmSync(FDS, { force: true });
    const r = await b.python(clientPy, [SVC, 'asked']);
    expect(r.result, r.stderr).toMatchObject({ ok: true });
    const fds = JSON.parse(readFileSync(FDS, 'utf8')) as Record<string, string>;
    // fd 1 is the listing's own output file; whatever else is open came from the daemon through the shell.
    expect(fds['1']).toBe(FDS);
    const ours = inheritedFds();
    const passed = Object.entries(fds).filter(
      ([fd, target]) => Number(fd) > 2 && target !== ASKPASS && ours.get(Number(fd)) !== target,
    );
    expect(passed, JSON.stringify(fds)).toEqual([]);
  }, 30_000);

  it('is denied when the user says no', async () => {
    writeFileSync(ANSWER, '1');
    const r = await b.python(clientPy, [SVC, 'asked']);
    expect(r.result).toMatchObject({ ok: false, code: 'denied' });
    expect(r.result.message).toMatch(/not confirmed: the user declined/);
    expect(r.result.value_b64).toBeUndefined();
  }, 30_000);

  it('is denied when the client is revoked while the user is being asked, even if the answer is yes', async () => {
    const fickle = b.file('fickle.py', `${CLIENT_PY}# fickle\n`);
    const r0 = b.cli([
      'register',
      PYTHON,
      '--script',
      fickle,
      '--grant',
      `${SVC}/asked`,
      '--confirm',
      '--name',
      'fickle',
    ]);
    expect(r0.status, r0.stderr).toBe(0);
    writeFileSync(ANSWER, 'revoke:fickle');
    const r = await b.python(fickle, [SVC, 'asked']);
    expect(r.result).toMatchObject({ ok: false, code: 'denied' });
    expect(r.result.message).toMatch(/lost this grant while the user was asked/);
    expect(r.result.value_b64).toBeUndefined();
    expect(JSON.parse(b.cli(['clients', '--json']).stdout.toString())).not.toContainEqual(
      expect.objectContaining({ name: 'fickle' }),
    );
  }, 30_000);

  it('is answered to a client that shut down its writing side while the user was being asked', async () => {
    const half = b.file('half-closing.py', HALF_CLOSING_PY);
    const r0 = b.cli([
      'register',
      PYTHON,
      '--script',
      half,
      '--grant',
      `${SVC}/asked`,
      '--confirm',
      '--name',
      'half',
    ]);
    expect(r0.status, r0.stderr).toBe(0);
    const shut = join(here, 'shut-down');
    writeFileSync(ANSWER, `wait:${shut}`);
    const r = await b.python(half, [SVC, 'asked', shut]);
    expect(r.result, r.stderr).toMatchObject({ ok: true, value_b64: b64(SECRET) });
  }, 30_000);

  it('is not asked for a grant without confirm', async () => {
    writeFileSync(ANSWER, '1');
    const before = asked().length;
    const r = await b.python(clientPy, [SVC, 'plain']);
    expect(r.result, r.stderr).toMatchObject({ ok: true, value_b64: b64(SECRET) });
    expect(asked()).toHaveLength(before);
  }, 30_000);
});

describeIfProvided('confirm on use, with a yes remembered (confirm_for)', brokerClientsMissing, () => {
  const results = (r: ClientResult) => r.results as ClientResult[];
  const okAll = (r: ClientResult, n: number) =>
    expect(results(r)).toEqual(Array(n).fill({ ok: true, value_b64: b64(SECRET) }));

  it('the policy records the window and `clients` shows it', () => {
    const policy = readFileSync(join(b.dir, 'config', 'entraclaw', 'policy.toml'), 'utf8');
    expect(policy).toMatch(/confirm = true\n\s*confirm_for = "10m"/);
    expect(b.cli(['clients']).stdout.toString()).toContain(
      'confirm.example/polled read (confirm, a yes lasts 10m per process)',
    );
  });

  it('asks once for several reads by one process, and asks a new process again', async () => {
    writeFileSync(ANSWER, '0');
    const before = asked().length;
    const first = await b.python(stepsPy, [SVC, 'polled', 'get', 'get', 'get']);
    okAll(first.result, 3);
    expect(asked().slice(before)).toEqual([
      expect.stringMatching(/to read confirm\.example\/polled\? \(a yes holds for this process for 10m\)$/),
    ]);
    const second = await b.python(stepsPy, [SVC, 'polled', 'get', 'get']);
    okAll(second.result, 2);
    expect(asked().slice(before)).toHaveLength(2);
    expect(stateText(b)).toMatch(/confirmed by the user within 10m/);
  }, 30_000);

  it('remembers no "no": a declined read is asked again, and a later yes is served', async () => {
    writeFileSync(ANSWER, '1');
    const before = asked().length;
    // The process asks, is refused, then (after the answer changes) asks again.
    const [asked1, go] = [join(here, 'no-asked'), join(here, 'no-go')];
    const run = b.python(stepsPy, [SVC, 'polled', 'get', `mark:${asked1}`, `gate:${go}`, 'get']);
    await waitFor(() => existsSync(asked1), 'the first answer');
    writeFileSync(ANSWER, '0');
    writeFileSync(go, '');
    const r = await run;
    expect(results(r.result)[0]).toMatchObject({ ok: false, code: 'denied' });
    expect(results(r.result)[1]).toEqual({ ok: true, value_b64: b64(SECRET) });
    expect(asked().slice(before)).toHaveLength(2);
  }, 30_000);

  it('a yes covers only the item it was given for', async () => {
    writeFileSync(ANSWER, '0');
    const polled = await b.python(stepsPy, [SVC, 'polled', 'get']);
    okAll(polled.result, 1);
    const before = asked().length;
    // Same client, same kind of grant, other item: its own question.
    const r = await b.python(stepsPy, [SVC, 'brief', 'get', 'get']);
    okAll(r.result, 2);
    expect(asked().slice(before)).toEqual([expect.stringContaining('confirm.example/brief')]);
  }, 30_000);

  it('asks again once the window has passed', async () => {
    writeFileSync(ANSWER, '0');
    const before = asked().length;
    const r = await b.python(stepsPy, [SVC, 'brief', 'get', 'get', 'wait:2.2', 'get']);
    okAll(r.result, 3);
    expect(asked().slice(before)).toHaveLength(2);
  }, 30_000);

  it('a shortened window in policy.toml applies to yeses already given', async () => {
    writeFileSync(ANSWER, '0');
    const path = join(b.dir, 'config', 'entraclaw', 'policy.toml');
    const original = readFileSync(path, 'utf8');
    const before = asked().length;
    try {
      const [asked1, go] = [join(here, 'shortened-asked'), join(here, 'shortened-go')];
      // The second get comes over a second after the yes, and after the window was cut to one second.
      const r = b.python(stepsPy, [SVC, 'polled', 'get', `mark:${asked1}`, `gate:${go}`, 'wait:1.5', 'get']);
      await waitFor(() => existsSync(asked1), 'the first answer');
      writeFileSync(path, original.replace('confirm_for = "10m"', 'confirm_for = "1s"'));
      writeFileSync(go, '');
      okAll((await r).result, 2);
      expect(asked().slice(before)).toHaveLength(2);
    } finally {
      writeFileSync(path, original);
    }
  }, 30_000);
});

describeIfProvided('confirm on use without an askpass program', brokerClientsMissing, () => {
  it('is denied, saying how to configure one', async () => {
    const bare = await startBroker('entraclaw-confirm-bare', [[SVC, 'asked', SECRET]]);
    try {
      const script = bare.file('client.py', CLIENT_PY);
      const reg = bare.cli(['register', PYTHON, '--script', script, '--grant', `${SVC}/asked`, '--confirm']);
      expect(reg.status, reg.stderr).toBe(0);
      const r = await bare.python(script, [SVC, 'asked']);
      expect(r.result).toMatchObject({ ok: false, code: 'denied' });
      expect(r.result.message).toMatch(
        /needs confirmation on every use, and no askpass program is configured/,
      );
      // A confirm_for grant asks once per window: its refusal says so, not "every use".
      const window = bare.cli(['grant', 'client.py', '--grant', `${SVC}/polled`, '--confirm-for', '10m']);
      expect(window.status, window.stderr).toBe(0);
      const polled = await bare.python(script, [SVC, 'polled']);
      expect(polled.result).toMatchObject({ ok: false, code: 'denied' });
      expect(polled.result.message).toMatch(
        /needs your confirmation \(a yes lasts 10m per process\), and no askpass program is configured/,
      );
    } finally {
      await bare.stop();
    }
  }, 60_000);
});

describeIfProvided('a question still open when the daemon stops', brokerClientsMissing, () => {
  it('its askpass dialog is taken down with the daemon, not left on screen', async () => {
    const pidFile = join(here, 'slow-askpass.pid');
    const slow = join(here, 'slow-askpass.sh');
    // A wrapper, as around zenity: the dialog is the wrapper's child, and it is the one to take down.
    writeFileSync(slow, `#!/bin/sh\nsleep 30 &\necho $! > '${pidFile}'\nwait\n`);
    chmodSync(slow, 0o755);
    const d = await startBroker('entraclaw-confirm-stop', [[SVC, 'asked', SECRET]], {
      ENTRACLAW_ASKPASS: slow,
    });
    const script = d.file('client.py', CLIENT_PY);
    const reg = d.cli(['register', PYTHON, '--script', script, '--grant', `${SVC}/asked`, '--confirm']);
    expect(reg.status, reg.stderr).toBe(0);
    const client = d.python(script, [SVC, 'asked']);
    await waitFor(
      () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '',
      'the askpass dialog',
    );
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const alive = () => {
      try {
        process.kill(pid, 0);
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true);
    await d.stop();
    await waitFor(() => !alive(), 'the askpass dialog to be gone', 5_000);
    const r = await client;
    expect(r.result.ok).not.toBe(true);
  }, 60_000);

  it('an askpass that ignores SIGTERM is killed with its dialog once the grace period is over, not left behind', async () => {
    const pids = join(here, 'stubborn-askpass.pids');
    const stubborn = join(here, 'stubborn-askpass.sh');
    // A terminal askpass guarding its prompt; the ignored signal is inherited by the dialog it runs.
    writeFileSync(stubborn, `#!/bin/sh\ntrap '' TERM\nsleep 60 &\necho $$ $! > '${pids}'\nwait\nwait\n`);
    chmodSync(stubborn, 0o755);
    const d = await startBroker('entraclaw-confirm-stubborn', [[SVC, 'asked', SECRET]], {
      ENTRACLAW_ASKPASS: stubborn,
    });
    const script = d.file('client.py', CLIENT_PY);
    const reg = d.cli(['register', PYTHON, '--script', script, '--grant', `${SVC}/asked`, '--confirm']);
    expect(reg.status, reg.stderr).toBe(0);
    const client = d.python(script, [SVC, 'asked']);
    await waitFor(() => existsSync(pids) && readFileSync(pids, 'utf8').includes('\n'), 'the askpass dialog');
    const both = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
    const alive = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
      } catch {
        return false;
      }
    };
    try {
      expect(both.map(alive)).toEqual([true, true]);
      await d.stop();
      await waitFor(() => !both.some(alive), 'the askpass and its dialog to be gone', 10_000);
      const r = await client;
      expect(r.result.ok).not.toBe(true);
    } finally {
      for (const pid of both.filter(alive)) process.kill(pid, 'SIGKILL');
    }
  }, 60_000);
});
