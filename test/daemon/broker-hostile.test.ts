import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Broker, b64, canary, PY_LIB, PYTHON, startBroker } from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

// A hostile program of the user's own against the real daemon, over the real socket: attacks on what
// the daemon holds per connection, beyond the frame and byte limits broker-robustness covers.

const SVC = 'hostile.example';
const SECRET = canary('hostile');
/** Chunks dripped into one frame: well past what the daemon's open-file limit below leaves free. */
const DRIP = 400;

// An approved reader: one get on a fresh connection.
const PROBE_PY = `${PY_LIB}
emit(get(connect_hello(SOCK), sys.argv[1], sys.argv[2]))
`;

// What both attacks below share. send_alone: each write alone in the socket until the daemon has read
// it (SIOCOUTQ back to 0), so it is a recvmsg of its own with an SCM_PIDFD of its own. take_turns: "one"
// runs every step here; "two" has a forked child, which shares the connections, run every other step, the
// two in turn (an even number of steps). probe: runs the probe (an approved client on a connection of its
// own) and reports what it got.
const TURNS_PY = `${PY_LIB}
import fcntl, termios

def unread(s):
    return struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\\0\\0\\0\\0"))[0]

def send_alone(s, data):
    s.send(data)
    deadline = time.time() + 5
    while unread(s) and time.time() < deadline:
        time.sleep(0.0002)

def take_turns(mode, steps):
    if mode == "one":
        for step in steps:
            step()
        return
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    child = os.fork()
    if child == 0:
        for step in steps[1::2]:
            os.read(to_child, 1)
            step()
            os.write(from_child, b"g")
        os._exit(0)
    for step in steps[0::2]:
        step()
        os.write(from_parent, b"g")
        os.read(to_parent, 1)
    os.waitpid(child, 0)

def probe(argv):
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=30)
    lines = out.stdout.strip().splitlines()
    emit({"probe": json.loads(lines[-1]) if lines else {"ok": False, "code": "no output", "stderr": out.stderr}})
`;

// Starts one frame and sends its body a byte at a time, then, with the frame still unfinished, probes.
const HOARD_PY = `${TURNS_PY}
mode, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = connect_hello(SOCK)
s.sendall(struct.pack(">II", 4 + 20 + 10 * n, 20))
take_turns(mode, [lambda: send_alone(s, b"x")] * n)
probe(argv)
s.close()
`;

// Opens CONNS connections and on each pipelines N gets of a large item and never reads a reply: the first
// reply fills the socket, so the daemon holds the rest queued, each with the pidfd of its sender. Then
// probes.
const STALL_PY = `${TURNS_PY}
mode, conns, n, service, account, argv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:]

def ask(s, i):
    try:
        send_alone(s, frame({"id": 100 + i, "op": "get", "service": service, "account": account}))
    except OSError:
        pass

socks = [connect_hello(SOCK) for _ in range(conns)]
take_turns(mode, [lambda s=s, i=i: ask(s, i) for s in socks for i in range(n)])
probe(argv)
`;
/** A value whose first reply fills the socket, so that later requests on the connection wait queued. */
const BIG = 'b'.repeat(512 * 1024);

let b: Broker;
let probe: string;
let hoard: string;
let stall: string;
beforeAll(async () => {
  if (brokerClientsMissing) return;
  // 200 fds: room for (200 - 128) / 7 = 10 connections, each allowed its socket, its reader, a pidfd
  // for each of two senders in flight and a watch's three.
  b = await startBroker(
    'entraclaw-hostile',
    [
      [SVC, 'acct', SECRET],
      [SVC, 'big', BIG],
    ],
    {},
    ['prlimit', '--nofile=200:200'],
  );
  probe = b.file('probe.py', PROBE_PY);
  hoard = b.file('hoard.py', HOARD_PY);
  stall = b.file('stall.py', STALL_PY);
  b.register({ exe: PYTHON, script: probe, grant: `${SVC}/acct`, ops: 'read', name: 'probe' });
  b.register({ exe: PYTHON, script: stall, grant: `${SVC}/big`, ops: 'read', name: 'stall' });
}, 60_000);
afterAll(async () => {
  await b?.stop();
});

describeIfProvided('one frame in many chunks', brokerClientsMissing, () => {
  for (const mode of ['one', 'two'] as const) {
    it(`costs the daemon one pidfd, not one per chunk: ${DRIP} chunks from ${mode === 'one' ? 'one process' : 'two processes taking turns'} leave others served`, async () => {
      const r = await b.python(hoard, [mode, String(DRIP), probe, SVC, 'acct'], { timeoutMs: 60_000 });
      expect(r.result, r.stderr).toEqual({ probe: { ok: true, value_b64: b64(SECRET) } });
      expect(b.stderr()).not.toMatch(/EMFILE/);
    }, 60_000);
  }
});

describeIfProvided('requests queued behind replies the client does not read', brokerClientsMissing, () => {
  // 8 connections x 30 queued requests: 240 pidfds if each request kept its own, past the 200 allowed.
  for (const mode of ['one', 'two'] as const) {
    it(`cost the daemon a pidfd per sender, not per request: ${mode === 'one' ? 'one process pipelining' : 'two processes taking turns (the connection is closed)'} leaves others served`, async () => {
      const r = await b.python(stall, [mode, '8', '30', SVC, 'big', probe, SVC, 'acct'], {
        timeoutMs: 60_000,
      });
      expect(r.result, r.stderr).toEqual({ probe: { ok: true, value_b64: b64(SECRET) } });
      expect(b.stderr()).not.toMatch(/EMFILE/);
      if (mode === 'two') expect(b.stderr()).toMatch(/too many senders in flight/);
    }, 60_000);
  }
});
