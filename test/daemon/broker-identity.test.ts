import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import {
  type Broker,
  b64,
  canary,
  expectNoSecret,
  fileSha256,
  NODE,
  nodeClientSource,
  OTHER_UID_PY,
  PY_LIB,
  PYTHON,
  PYTHON_REAL,
  REPO,
  type RunResult,
  run,
  secretFreePlaces,
  startBroker,
  waitFor,
} from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided, requireOrSkip, rootOnly } from '../support/context.js';

// Who is asking, as the kernel says: modified binaries, injected interpreters, other uids, and
// connections that change hands (SCM_RIGHTS, fork + exec, PID reuse). Real processes on a real daemon.

const SVC = 'vault.example';
const SECRET = canary('identity');

// An approved python program: plain reads, plus the roles that hand its connection to someone else.
const APPROVED_PY = `${PY_LIB}
mode, SVC, ACCT = sys.argv[1], sys.argv[2], sys.argv[3]
HOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "holder.py")

if mode == "get":
    emit(get(connect_hello(SOCK), SVC, ACCT))
elif mode == "whoami":
    reply, _ = call(connect_hello(SOCK), {"id": 1, "op": "whoami"})
    emit({"ok": bool(reply.get("ok")), "reply": reply})
elif mode == "idle":
    # Proves that an approved program now runs at this pid, then lingers there.
    s = connect_hello(SOCK)
    emit({"role": "approved", "pid": os.getpid(), "control": get(s, SVC, ACCT)["ok"]}, sys.argv[5] if len(sys.argv) > 5 else None)
    s.close()
    time.sleep(float(sys.argv[4]))
elif mode == "pass-fd":
    # Hands its authenticated connection to an unapproved process over SCM_RIGHTS.
    s = connect_hello(SOCK)
    control = get(s, SVC, ACCT, 1)
    a, b = socket.socketpair()
    p = subprocess.Popen([sys.executable, HOLDER, "recv-fd", str(b.fileno()), SVC, ACCT], pass_fds=[b.fileno()], stdout=subprocess.PIPE)
    b.close()
    socket.send_fds(a, [b"x"], [s.fileno()])
    out = p.communicate(timeout=20)[0].decode().strip().splitlines()
    emit({"control": control, "holder": json.loads(out[-1]) if out else {"ok": False, "code": "no output"}})
elif mode == "exec-unapproved":
    # Approved, connected and served; then it execs an unapproved program that keeps the connection.
    s = connect_hello(SOCK)
    control = get(s, SVC, ACCT, 1)
    os.set_inheritable(s.fileno(), True)
    emit({"role": "approved", "control": control["ok"]})
    os.execv(sys.executable, [sys.executable, HOLDER, "use-fd", str(s.fileno()), SVC, ACCT])
elif mode == "unshared-get":
    # Enters a user namespace of its own, as a sandbox or a rootless container does, then asks.
    import ctypes
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    emit(get(connect_hello(SOCK), SVC, ACCT))
elif mode == "unshare-between":
    # Served on a watched connection, then it enters a user namespace of its own and asks again.
    import ctypes
    s = connect_hello(SOCK)
    first = get(s, SVC, ACCT, 1)
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
    emit({"first": first["ok"], "second": get(s, SVC, ACCT, 2)})
elif mode == "first-reply":
    # Hello answered, then one get: a watched sender is served without a challenge.
    s = connect_hello(SOCK)
    s.sendall(frame({"id": 5, "op": "get", "service": SVC, "account": ACCT}))
    reply, att = recv_frame(s)
    emit({"challenged": "challenge" in reply, "result": result(reply, att) if "challenge" not in reply else None})
elif mode == "pipelined":
    # Hello and get in one write: the get was in flight when the hello was handled, so it is challenged.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(frame({"v": 1, "op": "hello", "id": 0}) + frame({"id": 5, "op": "get", "service": SVC, "account": ACCT}))
    recv_frame(s)
    reply, att = recv_frame(s)
    challenged = "challenge" in reply
    while "challenge" in reply:
        confirm(s, reply)
        reply, att = recv_frame(s)
    emit({"challenged": challenged, "result": result(reply, att)})
elif mode == "bad-confirm":
    # A challenged get, a malformed confirm for it, then the right one, then a whoami: every reply in order.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(frame({"v": 1, "op": "hello", "id": 0}) + frame({"id": 5, "op": "get", "service": SVC, "account": ACCT}))
    recv_frame(s)
    challenge, _ = recv_frame(s)
    s.sendall(frame({"id": 5, "op": "confirm", "nonce": challenge["challenge"], "x": 1}))
    s.sendall(frame({"id": 5, "op": "confirm", "nonce": challenge["challenge"]}))
    s.sendall(frame({"id": 6, "op": "whoami"}))
    replies = []
    while not replies or replies[-1].get("id") != 6:
        reply, att = recv_frame(s)
        replies.append({"id": reply.get("id"), "ok": reply.get("ok"), "code": (reply.get("error") or {}).get("code"), "message": (reply.get("error") or {}).get("message"), "value": len(att) > 0})
    emit({"challenged": "challenge" in challenge, "replies": replies})
elif mode == "attached":
    # A hello with an attachment is refused; so is a confirm with one, which ends the request it names.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(frame({"v": 1, "op": "hello", "id": 0}, b"junk"))
    hello, _ = recv_frame(s)
    hung_up = s.recv(1) == b""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(frame({"v": 1, "op": "hello", "id": 0}) + frame({"id": 5, "op": "get", "service": SVC, "account": ACCT}))
    recv_frame(s)
    challenge, _ = recv_frame(s)
    s.sendall(frame({"id": 5, "op": "confirm", "nonce": challenge["challenge"]}, b"junk"))
    s.sendall(frame({"id": 5, "op": "confirm", "nonce": challenge["challenge"]}))
    replies = []
    for _ in range(2):
        reply, att = recv_frame(s)
        replies.append({"id": reply.get("id"), "code": (reply.get("error") or {}).get("code"), "message": (reply.get("error") or {}).get("message"), "value": len(att) > 0})
    emit({"hello": hello.get("error"), "hungUp": hung_up, "challenged": "challenge" in challenge, "replies": replies})
elif mode == "id-types":
    # Ids 1 and "1" are two requests; a second request with id 7 while 7 awaits confirmation is refused.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    get_ = lambda i: frame({"id": i, "op": "get", "service": SVC, "account": ACCT})
    s.sendall(frame({"v": 1, "op": "hello", "id": 0}) + get_(1) + get_("1") + get_(7) + get_(7))
    recv_frame(s)
    replies = []
    finals = 0
    while finals < 4:
        reply, att = recv_frame(s)
        if "challenge" in reply:
            confirm(s, reply)
            continue
        finals += 1
        error = {"message": reply["error"]["message"]} if reply.get("error") else {}
        replies.append({"id": reply.get("id"), "ok": reply.get("ok"), "value": len(att) > 0, **error})
    emit({"replies": replies})
elif mode == "id-reused":
    # While get 7 awaits confirmation: a whoami, a refused get and a malformed request, each with id 7.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(frame({"v": 1, "op": "hello", "id": 0}) + frame({"id": 7, "op": "get", "service": SVC, "account": ACCT}))
    recv_frame(s)
    challenge, _ = recv_frame(s)
    s.sendall(frame({"id": 7, "op": "whoami"}) + frame({"id": 7, "op": "get", "service": SVC, "account": "other"}) + frame({"id": 7, "op": "get"}))
    replies = []
    for _ in range(3):
        reply, att = recv_frame(s)
        replies.append({"id": reply.get("id"), "ok": reply.get("ok"), "value": len(att) > 0, **({"message": reply["error"]["message"]} if reply.get("error") else {})})
    confirm(s, challenge)
    reply, att = recv_frame(s)
    replies.append({"id": reply.get("id"), "ok": reply.get("ok"), "value": len(att) > 0})
    emit({"challenged": "challenge" in challenge, "replies": replies})
elif mode == "edit-between":
    # Served, then its own script changes on disk: the next request on the same connection is refused.
    s = connect_hello(SOCK)
    first = get(s, SVC, ACCT, 1)
    me = os.path.abspath(__file__)
    original = open(me).read()
    with open(me, "a") as f:
        f.write("\\n# edited\\n")
    try:
        second = get(s, SVC, ACCT, 2)
    finally:
        with open(me, "w") as f:
            f.write(original)
    emit({"first": first["ok"], "second": second})
elif mode == "traced-between":
    # Served, then a debugger attaches (PTRACE_SEIZE, no stop): the next request is refused.
    import ctypes
    s = connect_hello(SOCK)
    first = get(s, SVC, ACCT, 1)
    me = os.getpid()
    r, w = os.pipe()
    tracer = os.fork()
    if tracer == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.ptrace(0x4206, me, None, None) == 0
        os.write(w, b"1" if ok else b"0")
        time.sleep(30)
        os._exit(0)
    seized = os.read(r, 1) == b"1"
    second = get(s, SVC, ACCT, 2)
    os.kill(tracer, 9)
    os.waitpid(tracer, 0)
    emit({"first": first["ok"], "seized": seized, "second": second})
elif mode == "split":
    # Two processes write the bytes of one frame: the sender is ambiguous.
    s = connect_hello(SOCK)
    f = frame({"id": 3, "op": "get", "service": SVC, "account": ACCT})
    s.sendall(f[:10])
    time.sleep(0.2)
    pid = os.fork()
    if pid == 0:
        s.sendall(f[10:])
        os._exit(0)
    os.waitpid(pid, 0)
    try:
        emit(result(*recv_frame(s)))
    except (ConnectionError, OSError) as e:
        emit({"ok": False, "code": "closed", "message": str(e)})
`;

// An unapproved python program that ends up holding someone else's connection.
const HOLDER_PY = `${PY_LIB}
mode = sys.argv[1]
if mode == "recv-fd":
    sp = socket.socket(fileno=int(sys.argv[2]))
    SVC, ACCT = sys.argv[3], sys.argv[4]
    _, fds, _, _ = socket.recv_fds(sp, 16, 4)
    emit(get(socket.socket(fileno=fds[0]), SVC, ACCT, 2))
elif mode == "use-fd":
    emit(get(socket.socket(fileno=int(sys.argv[2])), sys.argv[3], sys.argv[4], 2) | {"role": "exec"})
elif mode == "send-then-exec":
    # M forks a reader M'' that keeps the fd, pipelines N gets, and at once execs the approved program.
    SVC, ACCT, APPROVED, N = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    s = connect_hello(SOCK)
    if os.fork() == 0:
        served, codes, finals = 0, {}, 0
        try:
            while finals < N:
                reply, att = recv_frame(s)
                if "challenge" in reply:
                    # The attacker answers the challenge in the approved program's place.
                    confirm(s, reply)
                    continue
                finals += 1
                r = result(reply, att)
                if r["ok"]:
                    served += 1
                else:
                    codes[r["code"]] = codes.get(r["code"], 0) + 1
        except (ConnectionError, OSError):
            codes["closed"] = codes.get("closed", 0) + 1
        emit({"role": "reader", "served": served, "codes": codes})
        os._exit(0)
    s.sendall(b"".join(frame({"id": i + 1, "op": "get", "service": SVC, "account": ACCT}) for i in range(N)))
    os.execv(sys.executable, [sys.executable, APPROVED, "idle", SVC, ACCT, "1"])
elif mode == "fork-exit":
    # Connects, forks a child that keeps the fd, and exits: the child asks once told its parent's pid
    # has been taken by an approved program.
    SVC, ACCT, GO, OUT = sys.argv[2:6]
    s = connect_hello(SOCK)
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        deadline = time.time() + 20
        while not os.path.exists(GO) and time.time() < deadline:
            time.sleep(0.02)
        emit(get(s, SVC, ACCT) | {"pid": os.getpid()}, OUT)
        os._exit(0)
    emit({"pid": os.getpid(), "child": pid})
    os._exit(0)
elif mode == "exec-after-connect":
    # M connects, forks M' (which keeps the fd), then execs the approved program at the same pid.
    SVC, ACCT, APPROVED = sys.argv[2:5]
    s = connect_hello(SOCK)
    r, w = os.pipe()  # both close-on-exec (PEP 446)
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)  # EOF: the parent has exec'd
        time.sleep(0.4)  # let the approved program come up and be served first
        emit(get(s, SVC, ACCT) | {"role": "forked", "parent": me})
        os._exit(0)
    os.close(r)
    os.execv(sys.executable, [sys.executable, APPROVED, "idle", SVC, ACCT, "1"])
elif mode == "claim":
    # Claims another identity in the request itself.
    SVC, ACCT, EXE, PID = sys.argv[2:6]
    s = connect_hello(SOCK)
    emit(result(*call(s, {"id": 1, "op": "get", "service": SVC, "account": ACCT, "exe": EXE, "pid": int(PID), "uid": 0})))
`;

let b: Broker;
let approvedPy: string;
let holderPy: string;
beforeAll(async () => {
  if (brokerClientsMissing) return;
  b = await startBroker('entraclaw-identity', [
    [SVC, 'acct', SECRET],
    [SVC, 'copy', SECRET],
    [SVC, 'moved', SECRET],
    [SVC, 'renamed', SECRET],
    [SVC, 'parser', SECRET],
    [SVC, 'distperl', SECRET],
    [SVC, 'shimparent', SECRET],
  ]);
  approvedPy = b.file('approved.py', APPROVED_PY);
  holderPy = b.file('holder.py', HOLDER_PY);
  b.register({ exe: PYTHON, script: approvedPy, grant: `${SVC}/acct`, ops: 'read', name: 'approved-py' });
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

function noSecret(r: { ok: boolean; value_b64?: string; code?: string }, what: string): void {
  expect(r.ok, `${what}: ${JSON.stringify(r)}`).toBe(false);
  expect(r.value_b64, what).toBeUndefined();
}
const served = (r: RunResult) => {
  expect(r.result, r.stderr).toMatchObject({ ok: true, value_b64: b64(SECRET) });
};

describeIfProvided('the approved python client', brokerClientsMissing, () => {
  it('is served, and the daemon sees it as the kernel does', async () => {
    served(await b.python(approvedPy, ['get', SVC, 'acct']));
    // The daemon runs with -v: each decision is a log line too (the canary test below checks them all).
    const line = new RegExp(
      `entraclaw-agent debug: granted .*script=${approvedPy} op=get service=vault\\.example account=acct `,
    );
    await waitFor(() => line.test(b.stderr()), 'the decision in the daemon log');
    const who = (await b.python(approvedPy, ['whoami', SVC, 'acct'])).result.reply as Record<string, unknown>;
    expect(who).toMatchObject({
      ok: true,
      exe: PYTHON_REAL,
      sha256: fileSha256(PYTHON_REAL),
      script: approvedPy,
      client: 'approved-py',
    });
  }, 30_000);

  it('identity fields claimed in a request are refused, not believed', async () => {
    const r = await b.python(holderPy, ['claim', SVC, 'acct', PYTHON_REAL, String(b.pid)]);
    expect(r.result).toMatchObject({ ok: false, code: 'bad_request' });
    expect(r.result.message).toMatch(/unknown field/);
  }, 30_000);
});

describeIfProvided('modified binary', brokerClientsMissing, () => {
  it('a changed approved binary is refused until `entraclaw upgrade` re-pins it', async () => {
    mkdirSync(join(b.dir, 'bin'));
    // Named node, so the daemon knows it as an interpreter and pins the script too.
    const copy = join(b.dir, 'bin', 'node');
    copyFileSync(NODE, copy);
    chmodSync(copy, 0o755);
    const client = b.file('copy-client.mjs', nodeClientSource());
    b.register({ exe: copy, script: client, grant: `${SVC}/copy`, ops: 'read', name: 'copied' });
    served(await b.node(client, ['get', SVC, 'copy'], { exe: copy }));

    appendFileSync(copy, Buffer.from([0]));
    const changed = await b.node(client, ['get', SVC, 'copy'], { exe: copy });
    noSecret(changed.result, 'modified binary');
    expect(changed.result).toMatchObject({ code: 'denied' });
    expect(changed.result.message).toMatch(/^interpreter changed since approval/);

    const up = b.cli(['upgrade', copy]);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stderr.toString()).toMatch(/^entraclaw: re-pinned copied to sha256:/);
    served(await b.node(client, ['get', SVC, 'copy'], { exe: copy }));
    // Nothing changed since: upgrade says so rather than claiming a re-pin.
    const again = b.cli(['upgrade', copy, '--json']);
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.toString())).toMatchObject({ clients: ['copied'], changed: false });
    expect(b.cli(['upgrade', copy]).stderr.toString()).toContain(`copied already pinned ${copy} at sha256:`);
  }, 60_000);

  it('an interpreter replaced by one at another path (python3.11 -> 3.12, nvm): upgrade NEW --script re-pins it, grants kept', async () => {
    mkdirSync(join(b.dir, 'v1'));
    mkdirSync(join(b.dir, 'v2'));
    const old = join(b.dir, 'v1', 'node');
    const next = join(b.dir, 'v2', 'node');
    copyFileSync(NODE, old);
    copyFileSync(NODE, next);
    appendFileSync(next, Buffer.from([1]));
    chmodSync(old, 0o755);
    chmodSync(next, 0o755);
    const client = b.file('moved-interpreter.mjs', nodeClientSource());
    b.register({ exe: old, script: client, grant: `${SVC}/moved`, ops: 'read', name: 'moved' });
    served(await b.node(client, ['get', SVC, 'moved'], { exe: old }));
    // Another path and other bytes: the daemon cannot know it is the same program, so it is queued.
    const asked = await b.node(client, ['get', SVC, 'moved'], { exe: next });
    noSecret(asked.result, 'new interpreter');
    expect(asked.result).toMatchObject({ code: 'pending' });

    // A plain upgrade of the new path says what to run instead.
    const plain = b.cli(['upgrade', next]);
    expect(plain.status).toBe(EXIT_CODES.not_found);
    // Every node script client is named (others of this file's broker too), with the interpreter each runs.
    expect(plain.stderr).toMatch(/"moved" runs? node scripts with .*v1\/node/);
    expect(plain.stderr).toContain(`entraclaw upgrade ${next} --script ${client}`);

    const up = b.cli(['upgrade', next, '--script', client]);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stderr).toContain(`re-pinned moved to ${next} sha256:`);
    served(await b.node(client, ['get', SVC, 'moved'], { exe: next }));
    // The old interpreter is no longer this client, and the entry queued before the re-pin is gone.
    expect(b.cli(['pending', '--json']).stdout.toString()).not.toContain(next);
    const listed = JSON.parse(b.cli(['clients', '--json']).stdout.toString()) as Array<
      Record<string, unknown>
    >;
    expect(listed.find((c) => c.name === 'moved')).toMatchObject({ exe: next, script: client });
  }, 60_000);
});

describeIfProvided('a copy of an interpreter under another name', brokerClientsMissing, () => {
  it('approved as a plain program, it does not approve the real interpreter for every script', async () => {
    mkdirSync(join(b.dir, 'tools'), { recursive: true });
    const copy = join(b.dir, 'tools', 'mytool');
    copyFileSync(NODE, copy);
    chmodSync(copy, 0o755);
    const reg = b.cli(['register', copy, '--grant', `${SVC}/renamed`, '--ops', 'read', '--name', 'mytool']);
    expect(reg.status, reg.stderr).toBe(0);
    // The user is told what they approved: an interpreter under another name, and every script it runs.
    expect(reg.stderr.toString()).toContain(
      `warning: ${copy} has the same bytes as ${NODE} (the node interpreter)`,
    );
    const script = b.file('any-script.mjs', nodeClientSource());
    // The same bytes, run as node with a script: not the client that was approved.
    const real = await b.node(script, ['get', SVC, 'renamed']);
    noSecret(real.result, 'node running any script');
    expect(real.result).toMatchObject({ code: 'pending' });
    // The approved program itself, at its own path, is the client.
    served(await b.node(script, ['get', SVC, 'renamed'], { exe: copy }));
  }, 60_000);
});

describeIfProvided('a copy of an interpreter named after another interpreter', brokerClientsMissing, () => {
  it('does not get a script pin: its argv is parsed by rules that are not the ones its bytes follow', async () => {
    const pinned = b.file('parser-pinned.mjs', nodeClientSource());
    b.register({ exe: NODE, script: pinned, grant: `${SVC}/parser`, ops: 'read', name: 'parser-pinned' });
    // The attacker's own code: it announces itself, then asks as the SDK client would.
    const evil = b.file('parser-evil.mjs', `console.error('evil ran');\n${nodeClientSource()}`);
    mkdirSync(join(b.dir, 'parsers'), { recursive: true });
    const copy = (name: string) => {
      const p = join(b.dir, 'parsers', name);
      copyFileSync(NODE, p);
      chmodSync(p, 0o755);
      return p;
    };
    // perl and the shells read `-C` as a flag (perl: with an attached value) and take pinned.mjs as the
    // script; node reads `-C pinned.mjs` as --conditions and runs evil.mjs, or the inline code after it.
    const attempts: Array<[string, Promise<RunResult>]> = [
      [
        'node as perl, -C pinned evil',
        run(copy('perl'), ['-C', pinned, evil, 'get', SVC, 'parser'], { env: b.clientEnv }),
      ],
      [
        'node as bash, -C pinned evil',
        run(copy('bash'), ['-C', pinned, evil, 'get', SVC, 'parser'], { env: b.clientEnv }),
      ],
      [
        'node as sh, -C pinned -e',
        run(
          copy('sh'),
          ['-C', pinned, '--input-type=module', '-e', readFileSync(evil, 'utf8'), 'x', 'get', SVC, 'parser'],
          {
            env: b.clientEnv,
          },
        ),
      ],
    ];
    for (const [name, p] of attempts) {
      const r = await p;
      b.transcripts.push(r.stderr);
      // The attack is real: node ran the attacker's code, not the pinned script.
      expect(r.stderr, name).toContain('evil ran');
      noSecret(r.result, name);
      expect(r.result.code, `${name}: ${JSON.stringify(r.result)}`).toBe('pending');
    }
    // The same bytes under the interpreter's own name elsewhere still run the pinned script as before.
    served(await b.node(pinned, ['get', SVC, 'parser'], { exe: copy('node') }));
  }, 60_000);
});

describeIfProvided('node bytes under another name running a shim script', brokerClientsMissing, () => {
  it('are not the shim: the request is decided for them, not for the approved parent', async () => {
    const shim = realpathSync(join(REPO, 'dist', 'shim', 'secret-tool-main.cjs'));
    // The parent: approved, with a grant the child must not borrow by passing for the shim.
    const parent = b.file(
      'shim-parent.py',
      'import subprocess, sys\nsys.exit(subprocess.run(sys.argv[1:]).returncode)\n',
    );
    b.register({
      exe: PYTHON_REAL,
      script: parent,
      grant: `${SVC}/shimparent`,
      ops: 'read',
      name: 'shim-parent',
    });
    const evil = b.file('shim-evil.mjs', `console.error('evil ran');\n${nodeClientSource()}`);
    mkdirSync(join(b.dir, 'shim-twins'), { recursive: true });
    const bash = join(b.dir, 'shim-twins', 'bash');
    copyFileSync(NODE, bash);
    chmodSync(bash, 0o755);
    // bash's rules take `-C` as a flag and the shim as the script; node takes `-C SHIM` as --conditions
    // and runs evil.mjs.
    const r = await b.python(parent, [bash, '-C', shim, evil, 'get', SVC, 'shimparent']);
    expect(r.stderr).toContain('evil ran');
    noSecret(r.result, 'node as bash, -C shim evil');
    expect(r.result.code, JSON.stringify(r.result)).toBe('pending');
  }, 60_000);
});

describeIfProvided("an interpreter under its distribution's versioned name", brokerClientsMissing, () => {
  // Debian ships perl a second time as /usr/bin/perl5.36-x86_64-linux-gnu. Known to the daemon only by a
  // name that is not "perl", it was a binary: approving that program (as `entraclaw pending` shows it,
  // with no script) approved whatever perl code it was given, inline code included.
  const distPerl = readdirSync('/usr/bin')
    .filter((n) => /^perl[\d.]+-[a-z0-9_]+-linux-gnu$/.test(n))
    .map((n) => join('/usr/bin', n))[0];
  it.skipIf(distPerl === undefined)(
    'is still that interpreter: its inline code is refused',
    async () => {
      const shims = join(b.dir, 'dist-perl-shims');
      const installed = b.cli(['shim', 'install', shims]);
      expect(installed.status, installed.stderr).toBe(0);
      b.register({ exe: distPerl!, grant: `${SVC}/distperl`, ops: 'read', name: 'dist-perl' });
      // The request goes through the secret-tool shim, so it is decided for its parent: this perl process.
      const r = await run(
        distPerl!,
        [
          '-e',
          `system("secret-tool", "lookup", "service", "${SVC}", "account", "distperl"); print "\n", $? >> 8, "\n";`,
        ],
        { env: { ...b.clientEnv, PATH: `${shims}:${process.env.PATH}` } },
      );
      b.transcripts.push(r.stderr);
      expect(r.stdout).not.toContain(SECRET);
      expect(r.stdout.trim().split('\n').at(-1), r.stderr).toBe('1');
      expect(r.stderr).toMatch(/runs inline code/);
    },
    30_000,
  );
});

describeIfProvided('script approvals', brokerClientsMissing, () => {
  let pinned: string;
  let inject: { cjs: string; mjs: string; lib: string };
  beforeAll(() => {
    pinned = b.file('pinned.mjs', nodeClientSource());
    b.register({ exe: NODE, script: pinned, grant: `${SVC}/acct`, ops: 'read', name: 'pinned' });
    // Code an attacker would load into the approved interpreter: it could read the value on the way out.
    inject = {
      cjs: b.file('inject.cjs', 'globalThis.injected = true;\n'),
      mjs: b.file('inject.mjs', 'globalThis.injected = true;\n'),
      lib: ['/lib/x86_64-linux-gnu/libm.so.6', '/lib/aarch64-linux-gnu/libm.so.6', '/usr/lib/libm.so.6'].find(
        existsSync,
      )!,
    };
  });

  it('the pinned script itself is served', async () => {
    served(await b.node(pinned, ['get', SVC, 'acct']));
  }, 30_000);

  it('node -e, --require, NODE_OPTIONS, --import, --loader, --inspect, LD_PRELOAD and a tracer are refused', async () => {
    const src = readFileSync(pinned, 'utf8');
    const args = ['get', SVC, 'acct'];
    const variants: Array<[string, Promise<RunResult>]> = [
      // (-e puts its extra arguments from argv[1] on, so the first one is a placeholder.)
      [
        'node -e (same code)',
        run(NODE, ['--input-type=module', '-e', src, 'inline', ...args], { env: b.clientEnv }),
      ],
      // The pinned script's path on the command line must not make inline code look like it.
      [
        'node -e ... pinned.mjs',
        run(NODE, ['--input-type=module', '-e', src, pinned, ...args], { env: b.clientEnv }),
      ],
      ['node --require', b.node(pinned, args, { nodeArgs: ['--require', inject.cjs] })],
      ['node -r', b.node(pinned, args, { nodeArgs: ['-r', inject.cjs] })],
      [
        'NODE_OPTIONS=--require',
        b.node(pinned, args, { env: { ...b.clientEnv, NODE_OPTIONS: `--require=${inject.cjs}` } }),
      ],
      ['node --import', b.node(pinned, args, { nodeArgs: ['--import', inject.mjs] })],
      ['node --loader', b.node(pinned, args, { nodeArgs: ['--no-warnings', '--loader', inject.mjs] })],
      ['node --inspect', b.node(pinned, args, { nodeArgs: ['--inspect=127.0.0.1:0'] })],
      ['LD_PRELOAD', b.node(pinned, args, { env: { ...b.clientEnv, LD_PRELOAD: inject.lib } })],
      [
        'under strace (TracerPid)',
        run('/usr/bin/strace', ['-f', '-qq', '-o', '/dev/null', NODE, pinned, ...args], { env: b.clientEnv }),
      ],
    ];
    if (!existsSync('/usr/bin/strace')) variants.pop();
    const results = await Promise.all(variants.map(async ([name, p]) => [name, await p] as const));
    for (const [name, r] of results) {
      b.transcripts.push(r.stderr);
      noSecret(r.result, name);
      // Refused by the daemon, not failed in the client: the request did reach it.
      expect(['pending', 'denied'], `${name}: ${JSON.stringify(r.result)}`).toContain(r.result.code);
    }
  }, 60_000);

  it("node reading --env-file from the script's own arguments (Node 20) is refused", async () => {
    // Node 20 loads the file before running anything; its NODE_OPTIONS then preloads our code, which
    // /proc/PID/environ (the environment the process started with) never shows.
    const marker = b.file('env-inject.cjs', "process.stderr.write('preloaded through --env-file\\n');\n");
    const envFile = b.file('inject.env', `NODE_OPTIONS="--require ${marker}"\n`);
    for (const after of [[`--env-file=${envFile}`], ['--env-file-if-exists', envFile]]) {
      const r = await b.node(pinned, ['get', SVC, 'acct', ...after]);
      if (process.versions.node.startsWith('20.')) expect(r.stderr).toContain('preloaded through --env-file');
      noSecret(r.result, `node pinned.mjs ... ${after.join(' ')}`);
      expect(r.result.message).toMatch(/is read by node even after the script/);
    }
    // After `--` node leaves it to the script, and the pinned script is served.
    served(await b.node(pinned, ['get', SVC, 'acct', '--', `--env-file=${envFile}`]));
  }, 30_000);

  it('an approved script edited after approval is refused; upgrade re-pins it', async () => {
    appendFileSync(pinned, '// edited after approval\n');
    const r = await b.node(pinned, ['get', SVC, 'acct']);
    noSecret(r.result, 'edited script');
    expect(r.result).toMatchObject({ code: 'denied' });
    expect(r.result.message).toMatch(/script changed since approval/);
    // whoami: no client and no grants for the program as it is now.
    const who = await b.node(pinned, ['whoami']);
    expect(who.result).toMatchObject({ ok: true, client: null, grants: [] });
    expect(b.cli(['upgrade', pinned]).status).toBe(0);
    served(await b.node(pinned, ['get', SVC, 'acct']));
  }, 30_000);
});

describeIfProvided(
  'another uid',
  brokerClientsMissing ?? rootOnly('connecting as another uid (nobody)'),
  () => {
    it('is closed before a byte is read, even with a 0666 socket in a 0755 dir, and audited', async () => {
      const runtime = join(b.dir, 'run');
      const sockDir = join(runtime, 'entraclaw');
      for (const d of [b.dir, runtime, sockDir]) chmodSync(d, 0o755);
      chmodSync(b.socket, 0o666);
      const script = b.file('other-uid.py', OTHER_UID_PY);
      try {
        const r = await run(PYTHON, [script, b.socket], {
          uid: 65534,
          gid: 65534,
          cwd: '/',
          env: { PATH: '/usr/bin:/bin' },
        });
        expect(r.result, r.stderr).toMatchObject({ connected: true, reply_bytes: 0 });
      } finally {
        chmodSync(b.socket, 0o600);
        for (const d of [sockDir, runtime, b.dir]) chmodSync(d, 0o700);
      }
      const audit = JSON.parse(b.cli(['audit', '--json', '--tail', '1000']).stdout.toString()) as Array<
        Record<string, unknown>
      >;
      expect(audit).toContainEqual(
        expect.objectContaining({ op: 'connect', decision: 'denied', uid: 65534 }),
      );
    }, 30_000);
  },
);

describeIfProvided('another user namespace', brokerClientsMissing, () => {
  it('an approved program that entered a user namespace of its own (a sandbox, a container) is refused', async () => {
    served(await b.python(approvedPy, ['get', SVC, 'acct']));
    const r = await b.python(approvedPy, ['unshared-get', SVC, 'acct']);
    noSecret(r.result, 'in another user namespace');
    expect(r.result, r.stderr).toMatchObject({ code: 'denied', message: /another user namespace/ });
    expect(r.result.hint).toContain('entraclaw sandbox');
  }, 30_000);

  it('a watched client that enters a user namespace of its own is refused from then on', async () => {
    const r = await b.python(approvedPy, ['unshare-between', SVC, 'acct']);
    expect(r.result.first, r.stderr).toBe(true);
    const second = r.result.second as { ok: boolean; code?: string; message?: string };
    noSecret(second, 'after unshare');
    expect(second).toMatchObject({
      code: 'denied',
      message: expect.stringMatching(/another user namespace/),
    });
  }, 30_000);

  it('a daemon in a user namespace of its own can identify no caller of the session, and serves none', async () => {
    // What systemd's PrivateUsers= (or ProtectSystem= in a user manager) would do to the service: the
    // kernel lets a process read /proc/PID/exe only within one user namespace. The unit avoids it
    // (service-unit.test.ts); a daemon started that way anyway fails closed.
    const own = await startBroker('entraclaw-userns', [[SVC, 'acct', SECRET]], {}, [
      'unshare',
      '--user',
      '--map-root-user',
    ]);
    try {
      const script = own.file('approved.py', APPROVED_PY);
      own.register({ exe: PYTHON, script, grant: `${SVC}/acct`, ops: 'read' });
      expect(readlinkSync(`/proc/${own.pid}/ns/user`)).not.toBe(readlinkSync('/proc/self/ns/user'));
      const r = await own.python(script, ['get', SVC, 'acct']);
      noSecret(r.result, 'a caller the daemon cannot see');
      expect(r.result).toMatchObject({ code: 'denied', message: /another user namespace/ });
    } finally {
      await own.stop();
    }
  }, 60_000);
});

describeIfProvided('connections that change hands', brokerClientsMissing, () => {
  it('(a) an fd passed over SCM_RIGHTS to an unapproved process gets no secret', async () => {
    const r = await b.python(approvedPy, ['pass-fd', SVC, 'acct']);
    // The connection really was authenticated: its approved owner was served on it.
    expect(r.result.control, r.stderr).toMatchObject({ ok: true, value_b64: b64(SECRET) });
    noSecret(r.result.holder as { ok: boolean }, 'SCM_RIGHTS holder');
    expect((r.result.holder as { code: string }).code).toBe('pending');
  }, 30_000);

  it('(b) M connects, forks M′, execs an approved program; M′ gets no secret', async () => {
    const r = await b.python(holderPy, ['exec-after-connect', SVC, 'acct', approvedPy]);
    const approved = r.lines.find((l) => l.role === 'approved');
    const forked = r.lines.find((l) => l.role === 'forked');
    // The approved program did run at M's pid and was served there.
    expect(approved, r.stdout + r.stderr).toMatchObject({ control: true, pid: forked?.parent });
    noSecret(forked!, 'exec after connect');
    expect(forked!.code).toBe('pending');
  }, 30_000);

  it('(c) the connecting process exits, its pid goes to an approved program; the fd holder gets no secret', async (ctx) => {
    requireOrSkip(ctx, rootOnly('recycling a pid on purpose (writing /proc/sys/kernel/ns_last_pid)'));
    const go = join(b.dir, 'reuse.go');
    const out = join(b.dir, 'reuse.out');
    const first = await b.python(holderPy, ['fork-exit', SVC, 'acct', go, out]);
    const { pid, child } = first.result as unknown as { pid: number; child: number };
    expect(child).toBeGreaterThan(0);
    // Recycle the pid: as root, point the kernel's next pid just before it and start the approved program.
    let reused = false;
    const lingering: Array<Promise<RunResult>> = [];
    for (let attempt = 0; attempt < 20 && !reused; attempt++) {
      const mark = join(b.dir, `reuse.${attempt}`);
      writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
      lingering.push(b.python(approvedPy, ['idle', SVC, 'acct', '1.5', mark]));
      await waitFor(() => existsSync(mark), 'the approved program');
      const line = JSON.parse(readFileSync(mark, 'utf8')) as { pid: number; control: boolean };
      reused = line.pid === pid;
      // The approved program now at the old pid is served: a daemon trusting connect-time creds would be fooled.
      if (reused) expect(line.control).toBe(true);
    }
    expect(reused, 'the pid was recycled to an approved program').toBe(true);
    writeFileSync(go, '');
    await waitFor(() => existsSync(out), 'the fd holder');
    const held = JSON.parse(readFileSync(out, 'utf8')) as { ok: boolean; code?: string; pid: number };
    expect(held.pid).toBe(child);
    noSecret(held, 'fd holder after pid reuse');
    expect(held.code).toBe('pending');
    await Promise.all(lingering);
  }, 60_000);

  it('(d) an approved client that execs an unapproved program: the new program gets no secret', async () => {
    const r = await b.python(approvedPy, ['exec-unapproved', SVC, 'acct']);
    expect(
      r.lines.find((l) => l.role === 'approved'),
      r.stdout + r.stderr,
    ).toMatchObject({ control: true });
    const after = r.lines.find((l) => l.role === 'exec');
    noSecret(after!, 'after exec');
    expect(after!.code).toBe('pending');
  }, 30_000);

  // Exec after send: the kernel names the process that sent the bytes, and the daemon reads /proc when it
  // handles them, so a sender that execs an approved program in between looks like that program. The
  // daemon therefore serves a granted request only after a confirmation the sender can write only after
  // it was identified. Here M pipelines gets and at once execs the approved program; a forked reader M''
  // that kept the fd collects the challenges and answers them itself: it must get nothing.
  it('a sender that execs an approved program right after sending gets nothing, even confirming for it', async () => {
    const r = await b.python(holderPy, ['send-then-exec', SVC, 'acct', approvedPy, '30']);
    const reader = r.lines.find((l) => l.role === 'reader') as unknown as {
      served: number;
      codes: Record<string, number>;
    };
    expect(
      r.lines.find((l) => l.role === 'approved'),
      r.stdout + r.stderr,
    ).toMatchObject({ control: true });
    expect((reader.codes.pending ?? 0) + (reader.codes.denied ?? 0), JSON.stringify(reader)).toBe(30);
    expect(reader.served, `served to the unapproved reader: ${JSON.stringify(reader)}`).toBe(0);
  }, 30_000);

  it('a frame written by two processes is refused, even when both are approved', async () => {
    const r = await b.python(approvedPy, ['split', SVC, 'acct']);
    noSecret(r.result, 'split frame');
    expect(r.result).toMatchObject({ code: 'denied' });
    expect(r.result.message).toMatch(/more than one process/);
  }, 30_000);
});

// Watched senders (docs/protocol.md): a caller identified when nothing else was in flight is watched for
// exec and served without the confirmation round trip; whatever the watch cannot vouch for goes the long way.
describeIfProvided('watched senders', brokerClientsMissing, () => {
  it('a client that waited for its hello reply is served without a challenge', async () => {
    const r = await b.python(approvedPy, ['first-reply', SVC, 'acct']);
    expect(r.result, r.stdout + r.stderr).toMatchObject({
      challenged: false,
      result: { ok: true, value_b64: b64(SECRET) },
    });
  }, 30_000);

  it('a get written together with the hello is challenged (it was in flight when the caller was identified)', async () => {
    const r = await b.python(approvedPy, ['pipelined', SVC, 'acct']);
    expect(r.result, r.stdout + r.stderr).toMatchObject({
      challenged: true,
      result: { ok: true, value_b64: b64(SECRET) },
    });
  }, 30_000);

  it('a malformed confirm ends the request it names: one reply per id, and a late confirm finds nothing', async () => {
    const r = await b.python(approvedPy, ['bad-confirm', SVC, 'acct']);
    expect(r.result, r.stdout + r.stderr).toMatchObject({ challenged: true });
    const replies = r.result.replies as {
      id: unknown;
      ok: boolean;
      code: string;
      message: string;
      value: boolean;
    }[];
    expect(replies.map((x) => [x.id, x.code ?? 'ok'])).toEqual([
      [5, 'bad_request'],
      [null, 'bad_request'],
      [6, 'ok'],
    ]);
    expect(replies[0]!.message).toContain('malformed confirm (fields: id,nonce,op,x)');
    expect(replies[1]!.message).toBe('no request with id 5 awaits confirmation');
    expect(replies.some((x) => x.value)).toBe(false);
  }, 30_000);

  it('a hello or a confirm with an attachment is refused: the hello with the hang-up, the confirm ending its request', async () => {
    const r = await b.python(approvedPy, ['attached', SVC, 'acct']);
    expect(r.result, r.stdout + r.stderr).toMatchObject({
      hello: { code: 'bad_request', message: 'a hello carries no attachment' },
      hungUp: true,
      challenged: true,
    });
    expect(r.result.replies).toEqual([
      {
        id: 5,
        code: 'bad_request',
        message:
          'malformed confirm (with an attachment); it needs exactly {id, op:"confirm", nonce} with the challenge\'s hex nonce and no attachment',
        value: false,
      },
      { id: null, code: 'bad_request', message: 'no request with id 5 awaits confirmation', value: false },
    ]);
  }, 30_000);

  it('ids 1 and "1" are two requests, each answered once; a reused id in flight is refused under id null', async () => {
    const r = await b.python(approvedPy, ['id-types', SVC, 'acct']);
    const replies = r.result.replies as { id: unknown; ok: boolean; value: boolean; message?: string }[];
    expect(replies, r.stdout + r.stderr).toHaveLength(4);
    const byId = (id: unknown) => replies.filter((x) => x.id === id);
    for (const id of [1, '1', 7])
      expect(byId(id), JSON.stringify(id)).toEqual([{ id, ok: true, value: true }]);
    expect(byId(null)).toEqual([
      {
        id: null,
        ok: false,
        value: false,
        message:
          'a request with id 7 already awaits confirmation on this connection; ids must be unique among requests in flight',
      },
    ]);
  }, 30_000);

  it('a request reusing the id of one awaiting confirmation is refused under id null, whatever its op (answered at once or not)', async () => {
    const r = await b.python(approvedPy, ['id-reused', SVC, 'acct']);
    expect(r.result, r.stdout + r.stderr).toMatchObject({ challenged: true });
    const reused = {
      id: null,
      ok: false,
      value: false,
      message:
        'a request with id 7 already awaits confirmation on this connection; ids must be unique among requests in flight',
    };
    // Only the confirmed get is answered under its id, once.
    expect(r.result.replies).toEqual([reused, reused, reused, { id: 7, ok: true, value: true }]);
  }, 30_000);

  it('an approved script edited on disk mid-connection is refused on its next request', async () => {
    const r = await b.python(approvedPy, ['edit-between', SVC, 'acct']);
    expect(r.result, r.stdout + r.stderr).toMatchObject({ first: true });
    noSecret(r.result.second as { ok: boolean }, 'after the edit');
  }, 30_000);

  it('a debugger attached mid-connection is refused on the next request', async () => {
    const r = await b.python(approvedPy, ['traced-between', SVC, 'acct']);
    expect(r.result, r.stdout + r.stderr).toMatchObject({ first: true, seized: true });
    noSecret(r.result.second as { ok: boolean }, 'while traced');
    expect((r.result.second as { message: string }).message).toMatch(/traced/);
  }, 30_000);
});

describeIfProvided('secrets never leak', brokerClientsMissing, () => {
  it('no canary in audit, pending, policy, daemon stderr or client errors', () => {
    for (const args of [
      ['pending'],
      ['pending', '--json'],
      ['clients'],
      ['audit', '--tail', '1000'],
      ['audit', '--json', '--tail', '1000'],
    ]) {
      expect(b.cli(args).status).toBe(0);
    }
    const places = secretFreePlaces(b);
    expect(places['daemon stderr']).toMatch(/listening/);
    expectNoSecret(places, [SECRET]);
  });
});
