import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Broker,
  b64,
  canary,
  expectNoSecret,
  fileSha256,
  NODE,
  nodeClientSource,
  PY_LIB,
  PYTHON,
  PYTHON_REAL,
  type RunResult,
  run,
  secretFreePlaces,
  startBroker,
  waitFor,
} from '../support/broker.js';
import { CLI, isolatedEnv } from '../support/cli.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

// Edges of the daemon seen from outside: python injection into a pinned script, a vault the daemon was
// given the wrong passphrase for, the socket's mode under a careless umask, and a hello that claims to be
// an approved client. Real daemon, real client processes, the real socket.

const SVC = 'edges.example';
const SECRET = canary('edges');

// The approved python client: one get, then its result and pid on stdout. No __file__, so the very same
// text also runs as `python3 -c`.
const APPROVED_PY = `${PY_LIB}
emit(get(connect_hello(SOCK), sys.argv[1], sys.argv[2]) | {"pid": os.getpid()})
`;

// An unapproved program that names an approved client in its hello, then asks as that client would.
const CLAIMING_PY = `${PY_LIB}
claimed, SVC, ACCT = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(SOCK)
hello, _ = call(s, {"v": 1, "op": "hello", "id": 0, "client": claimed})
r = get(s, SVC, ACCT)
who, _ = call(s, {"id": 9, "op": "whoami"})
emit(r | {"pid": os.getpid(), "hello": bool(hello.get("ok")), "whoami": who})
`;

// An approved client that shuts down its writing side after its requests (as `socat` or `nc -N` do):
// a get of a 1 MiB value, a whoami and the first bytes of a third request, then the end. It reads every
// reply until the daemon hangs up; only sizes and hashes of the values are printed.
const HALF_CLOSING_PY = `${PY_LIB}
import hashlib
s = connect_hello(SOCK)
get_ = frame({"id": 1, "op": "get", "service": sys.argv[1], "account": sys.argv[2]})
s.sendall(get_ + frame({"id": 2, "op": "whoami"}) + frame({"id": 3, "op": "whoami"})[:10])
s.shutdown(socket.SHUT_WR)
replies = []
while True:
    try:
        reply, att = recv_frame(s)
    except ConnectionError:
        break
    replies.append({"id": reply.get("id"), "ok": reply.get("ok"), "bytes": len(att), "sha256": hashlib.sha256(att).hexdigest()})
emit({"replies": replies})
`;
// An unapproved program whose request id and item name carry terminal escapes and a bidi override.
const ESCAPING_PY = `${PY_LIB}
s = connect_hello(SOCK)
r1, _ = call(s, {"id": "\\x1b[2J", "op": "get", "service": "esc\\x1b]0;title\\x07", "account": "a\\u202eb\\u009b"})
r2, _ = call(s, {"id": "\\x1b[31m", "op": "whoami"})
emit({"codes": [(r.get("error") or {}).get("code", "ok") for r in (r1, r2)]})
`;
const BIG = canary('half-closed').padEnd(1024 * 1024, 'v');

type AuditLine = Record<string, unknown>;
function auditLines(b: Broker): AuditLine[] {
  const r = b.cli(['audit', '--json', '--tail', '1000']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.toString()) as AuditLine[];
}
/** The one audit line for the get that process `pid` sent. */
async function auditOfGet(b: Broker, pid: number): Promise<AuditLine> {
  let lines: AuditLine[] = [];
  await waitFor(() => {
    lines = auditLines(b).filter((l) => l.op === 'get' && l.pid === pid);
    return lines.length > 0;
  }, `the audit line of pid ${pid}`);
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

function refusedResult(r: RunResult, what: string): void {
  b.transcripts.push(r.stderr);
  expect(r.result.ok, `${what}: ${r.stdout}\n${r.stderr}`).toBe(false);
  expect(r.result.value_b64, what).toBeUndefined();
  expect(r.stdout, what).not.toContain(b64(SECRET));
}

let b: Broker;
let approvedPy: string;
beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker('entraclaw-edges', [
    [SVC, 'acct', SECRET],
    [SVC, 'claimed', SECRET],
    [SVC, 'big', BIG],
  ]);
  approvedPy = b.file('approved.py', APPROVED_PY);
  b.register({ exe: PYTHON, script: approvedPy, grant: `${SVC}/acct`, ops: 'read', name: 'approved-py' });
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

describeIfProvided('python code injected into the approved, pinned script', brokerClientsMissing, () => {
  let sitePath: string;
  let startup: string;
  beforeAll(() => {
    // A directory on PYTHONPATH holding sitecustomize.py: site imports it before the script runs.
    sitePath = join(b.dir, 'pythonpath');
    mkdirSync(sitePath);
    writeFileSync(join(sitePath, 'sitecustomize.py'), 'import sys\nsys.stderr.write("injected\\n")\n');
    startup = b.file('startup.py', 'import sys\nsys.stderr.write("injected by PYTHONSTARTUP\\n")\n');
  });

  it('the pinned script itself is served (the control)', async () => {
    const r = await b.python(approvedPy, [SVC, 'acct']);
    expect(r.result, r.stderr).toMatchObject({ ok: true, value_b64: b64(SECRET) });
  }, 30_000);

  it('(a) PYTHONPATH with a sitecustomize.py: the code runs, the request is denied and audited with why', async () => {
    const r = await b.python(approvedPy, [SVC, 'acct'], { env: { ...b.clientEnv, PYTHONPATH: sitePath } });
    // The attack was live: the attacker's module ran inside the pinned interpreter before the script.
    expect(r.stderr).toContain('injected');
    refusedResult(r, 'PYTHONPATH');
    expect(r.result).toMatchObject({ code: 'denied', message: expect.stringMatching(/PYTHONPATH is set/) });
    const line = await auditOfGet(b, r.result.pid as number);
    expect(line).toMatchObject({ decision: 'denied', exe: PYTHON_REAL });
    expect(line.reason).toMatch(/^caller refused: PYTHONPATH is set, which makes python load other code/);
  }, 30_000);

  it('(b) -i, with PYTHONSTARTUP or without: the prompt runs what stdin holds; denied and audited with why', async () => {
    // python skips PYTHONSTARTUP when it is given a script; what -i opens after the script is a prompt that
    // runs whatever its stdin holds, in the process that was to be served.
    const attack = 'import sys; sys.stderr.write("injected\\n")\n';
    for (const [name, env, reason] of [
      ['PYTHONSTARTUP and -i', { ...b.clientEnv, PYTHONSTARTUP: startup }, /PYTHONSTARTUP is set/],
      ['-i', b.clientEnv, /-i starts an interactive prompt/],
    ] as const) {
      const r = await b.python(approvedPy, [SVC, 'acct'], { env, pyArgs: ['-i'], input: attack });
      expect(r.stderr, name).toMatch(/^(>>> )?injected$/m);
      refusedResult(r, name);
      expect(r.result, name).toMatchObject({ code: 'denied', message: expect.stringMatching(reason) });
      const line = await auditOfGet(b, r.lines.find((l) => 'pid' in l)!.pid as number);
      expect(line, name).toMatchObject({ decision: 'denied', exe: PYTHON_REAL });
      expect(line.reason, name).toMatch(new RegExp(`^caller refused: .*${reason.source}`));
    }
  }, 30_000);

  it("(c) python3 -c with the approved script's own text: denied as inline code and audited with why", async () => {
    const r = await run(PYTHON, ['-c', readFileSync(approvedPy, 'utf8'), SVC, 'acct'], { env: b.clientEnv });
    // The code did run and reach the daemon: the daemon's refusal is what it prints.
    refusedResult(r, 'python3 -c');
    expect(r.result).toMatchObject({ code: 'denied', message: expect.stringMatching(/-c runs inline code/) });
    const line = await auditOfGet(b, r.result.pid as number);
    expect(line).toMatchObject({ decision: 'denied', exe: PYTHON_REAL });
    expect(line.reason).toMatch(/^caller refused: .*-c runs inline code/);
  }, 30_000);
});

describeIfProvided('a client that names an approved client in its hello', brokerClientsMissing, () => {
  it('is judged as itself: pending, and the audit names its own program, not the claimed one', async () => {
    const claiming = b.file('claiming.py', CLAIMING_PY);
    const r = await b.python(claiming, ['approved-py', SVC, 'acct']);
    expect(r.result.hello, r.stderr).toBe(true);
    refusedResult(r, 'claimed client name');
    expect(r.result).toMatchObject({ code: 'pending' });
    expect(r.result.message).toContain(`${PYTHON_REAL} ${claiming} is not approved yet`);
    expect(r.result.whoami).toMatchObject({ ok: true, client: null, grants: [], script: claiming });
    const line = await auditOfGet(b, r.result.pid as number);
    expect(line).toMatchObject({
      decision: 'pending',
      exe: PYTHON_REAL,
      sha256: fileSha256(PYTHON_REAL),
      script: claiming,
      reason: expect.stringMatching(/^unknown client, queued as p-/),
    });
    expect(JSON.stringify(line)).not.toContain('approved-py');
    expect(JSON.stringify(line)).not.toContain(approvedPy);
  }, 30_000);
});

describeIfProvided(
  'a client that shuts down its writing side after its requests',
  brokerClientsMissing,
  () => {
    it('gets every reply in full (a 1 MiB value too), then the hang-up; a request the end cut short is dropped', async () => {
      const half = b.file('half-closing.py', HALF_CLOSING_PY);
      b.register({ exe: PYTHON, script: half, grant: `${SVC}/big`, ops: 'read', name: 'half-closing' });
      const r = await b.python(half, [SVC, 'big']);
      const sha = (v: string | Buffer) => createHash('sha256').update(v).digest('hex');
      expect(r.result.replies, r.stderr).toEqual([
        { id: 1, ok: true, bytes: BIG.length, sha256: sha(BIG) },
        { id: 2, ok: true, bytes: 0, sha256: sha('') },
      ]);
      // Logged once the daemon has seen the client go, which may be after the client has exited.
      await waitFor(
        () => b.stderr().includes('connection closed reason="peer closed"'),
        'the hang-up log line',
      );
    }, 30_000);
  },
);

describeIfProvided("a client's request id and item name in `agent -v`", brokerClientsMissing, () => {
  it('are logged with their control and invisible characters escaped, never raw', async () => {
    const r = await b.python(b.file('escaping.py', ESCAPING_PY), []);
    expect(r.result, r.stderr).toEqual({ codes: ['pending', 'ok'] });
    await waitFor(() => b.stderr().includes('requestId=\\u{1b}[31m'), 'the whoami log line');
    const log = b.stderr();
    expect(log).toContain('requestId=\\u{1b}[2J');
    expect(log).toContain('service=esc\\u{1b}]0;title\\u{7} account=a\\u{202e}b\\u{9b}');
    for (const raw of ['\x1b', '\x07', '\u202e', '\x9b']) expect(log).not.toContain(raw);
  }, 30_000);

  it('reach `pending --json` and `audit --json` as \\u escapes only: the same strings, nothing raw', async () => {
    // JSON.stringify escapes U+0000-U+001F but writes a bidi override or the C1 CSI (U+009B) as is.
    const r = await b.python(b.file('escaping-json.py', ESCAPING_PY), []);
    expect(r.result, r.stderr).toEqual({ codes: ['pending', 'ok'] });
    for (const args of [
      ['pending', '--json'],
      ['audit', '--json', '--tail', '1000'],
    ]) {
      const out = b.cli(args);
      expect(out.status, out.stderr.toString()).toBe(0);
      const text = out.stdout.toString();
      for (const raw of ['\x1b', '\x07', '\u202e', '\x9b']) expect(text, args.join(' ')).not.toContain(raw);
      expect(text).toContain('a\\u202eb\\u009b');
      const named = (
        JSON.parse(text) as { service?: string; account?: string; requests?: object[] }[]
      ).flatMap((e) => [e, ...(e.requests ?? [])]);
      expect(named).toContainEqual(
        expect.objectContaining({ service: 'esc\x1b]0;title\x07', account: 'a\u202eb\u009b' }),
      );
    }
  }, 30_000);
});

describeIfProvided(
  'a program whose path reads as "interpreter script" in the approval queue',
  brokerClientsMissing,
  () => {
    it('is shown quoted, as one path, never like the interpreter running that script', async () => {
      // A python of the user's own (as pyenv installs one), running the bot the user means to approve.
      const bin = join(b.dir, 'opt', 'bin');
      const python = join(bin, 'python3');
      const bot = join(b.dir, 'bot', 'main.py');
      mkdirSync(dirname(bot), { recursive: true });
      mkdirSync(bin, { recursive: true });
      copyFileSync(PYTHON_REAL, python);
      writeFileSync(bot, `${PY_LIB}\nemit(get(connect_hello(SOCK), "github.com", "bot"))\n`);
      // Impostors: a python binary at "<that python> <that script>", in a directory named `python3 ` (or
      // with a no-break space), running a script of their own. Their names are not interpreters', so each
      // is pinned as a compiled program: a grant would serve whatever it runs.
      const evil = b.file('evil.py', `${PY_LIB}\nemit(get(connect_hello(SOCK), "github.com", "bot"))\n`);
      const impostors = [`${python} ${bot}`, `${python}\u00a0${bot}`];
      for (const exe of impostors) {
        mkdirSync(dirname(exe), { recursive: true });
        copyFileSync(PYTHON_REAL, exe);
      }
      const asked = [
        await run(python, [bot], { env: b.clientEnv }),
        ...(await Promise.all(impostors.map((exe) => run(exe, [evil], { env: b.clientEnv })))),
      ];
      for (const r of asked) expect(r.result.code, r.stderr).toBe('pending');
      const pending = b.cli(['pending']);
      expect(pending.status, pending.stderr).toBe(0);
      const rows = pending.stdout.toString().split('\n');
      const program = (text: string) => rows.filter((l) => l.includes(text));
      expect(program(`  ${python} ${bot}  `)).toHaveLength(1);
      expect(program(`  '${python} ${bot}'  `)).toHaveLength(1);
      expect(program(`  '${python}\u00a0${bot}'  `)).toHaveLength(1);
      const audit = b.cli(['audit', '--tail', '3']).stdout.toString();
      expect(audit).toContain(`  '${python} ${bot}'  `);
      expect(audit).toContain(`  ${python} ${bot}  `);
    }, 30_000);
  },
);

describeIfProvided('a vault the daemon has the wrong passphrase for', brokerClientsMissing, () => {
  const RIGHT = 'broker security test passphrase';
  const WRONG = canary('wrong-passphrase');
  let w: Broker;
  let wrongFile: string;
  let client: string;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'entraclaw-wrong-pass-'));
    wrongFile = join(dir, 'passphrase');
    writeFileSync(wrongFile, `${WRONG}\n`, { mode: 0o600 });
    // The vault is sealed with the right passphrase (startBroker's); the daemon is pointed at the wrong one.
    w = await startBroker('entraclaw-wrong-pass', [[SVC, 'acct', SECRET]], {
      ENTRACLAW_PASSPHRASE_FILE: wrongFile,
    });
    client = w.file('client.mjs', nodeClientSource());
    w.register({ exe: NODE, script: client, grant: `${SVC}/acct`, ops: 'read', name: 'client' });
    return () => rmSync(dir, { recursive: true, force: true });
  }, 60_000);
  afterAll(async () => {
    await w?.stop();
  });

  it('starts (the passphrase is read at the first request), answers locked naming the vault, and stays up', async () => {
    const vault = join(w.dir, 'data', 'entraclaw', 'vault.ecv');
    for (let i = 0; i < 2; i++) {
      const r = await w.node(client, ['get', SVC, 'acct']);
      expect(r.result, r.stderr).toMatchObject({
        ok: false,
        code: 'locked',
        message: `wrong passphrase for vault ${vault}`,
        hint: expect.stringContaining(
          `the passphrase was read from ${wrongFile} (ENTRACLAW_PASSPHRASE_FILE): check it`,
        ),
      });
      expect(r.result.value_b64).toBeUndefined();
    }
    // Still up and answering what needs no vault.
    expect(w.process.exitCode).toBeNull();
    const who = await w.node(client, ['whoami']);
    expect(who.result).toMatchObject({ ok: true, client: 'client' });
    const failed = auditLines(w).filter((l) => l.op === 'get');
    expect(failed).toHaveLength(2);
    for (const l of failed)
      expect(l).toMatchObject({ decision: 'error', reason: `wrong passphrase for vault ${vault}` });
    // Neither passphrase, nor the secret, anywhere: audit, state, daemon stderr, client output.
    expectNoSecret(secretFreePlaces(w), [SECRET, WRONG, RIGHT]);
  }, 30_000);

  it('once the passphrase file is corrected, the next request is served without a restart', async () => {
    writeFileSync(wrongFile, `${RIGHT}\n`);
    const r = await w.node(client, ['get', SVC, 'acct']);
    expect(r.result, r.stderr).toEqual({ ok: true, value_b64: b64(SECRET) });
    expectNoSecret(secretFreePlaces(w), [SECRET, WRONG, RIGHT]);
  }, 30_000);
});

describeIfProvided('the socket under a careless umask', brokerClientsMissing, () => {
  it('started under umask 000 in a fresh runtime dir: a 0600 socket of ours in 0700 directories', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'entraclaw-umask-'));
    let agent: ChildProcess | undefined;
    try {
      const pass = join(dir, 'passphrase');
      writeFileSync(pass, 'umask test passphrase\n', { mode: 0o600 });
      // XDG_RUNTIME_DIR does not exist yet: the agent makes it and its own directory in it.
      const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass });
      const runtime = env.XDG_RUNTIME_DIR!;
      const socket = join(runtime, 'entraclaw', 'agent.sock');
      expect(existsSync(runtime)).toBe(false);
      const cmd = `umask 000; exec '${process.execPath}' '${CLI}' agent --store encrypted-file`;
      agent = spawn('sh', ['-c', cmd], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      agent.stderr!.on('data', (d: Buffer) => {
        stderr += d;
      });
      // Its "listening" line, not only its socket: the socket shows while the agent binds it under a umask
      // of its own (0177), which it puts back only after.
      await waitFor(() => /listening /.test(stderr) || agent!.exitCode !== null, 'the daemon listening');
      expect(agent.exitCode, stderr).toBeNull();
      // Started under umask 000 indeed: its own umask as the kernel reports it.
      expect(readFileSync(`/proc/${agent.pid}/status`, 'utf8')).toMatch(/^Umask:\s+0000$/m);
      const uid = process.getuid!();
      const st = lstatSync(socket);
      expect(st.isSocket()).toBe(true);
      expect((st.mode & 0o7777).toString(8)).toBe('600');
      expect(st.uid).toBe(uid);
      for (const d of [dirname(socket), runtime]) {
        const ds = lstatSync(d);
        expect(ds.isDirectory(), d).toBe(true);
        expect((ds.mode & 0o7777).toString(8), d).toBe('700');
        expect(ds.uid, d).toBe(uid);
      }
    } finally {
      if (agent && agent.exitCode === null) {
        const done = new Promise((r) => agent!.once('exit', r));
        agent.kill('SIGTERM');
        await done;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describeIfProvided('secrets never leak', brokerClientsMissing, () => {
  it('no canary in audit, pending, policy, daemon stderr or client output', () => {
    for (const args of [
      ['pending', '--json'],
      ['audit', '--tail', '1000'],
    ])
      expect(b.cli(args).status).toBe(0);
    expectNoSecret(secretFreePlaces(b), [SECRET]);
  });
});
