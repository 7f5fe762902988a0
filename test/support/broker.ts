import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'vitest';
import { resolvePaths } from '../../src/lib/paths.js';
import { CLI, type CliResult, isolatedEnv, runCli } from './cli.js';

// The real broker for end-to-end security tests: `entraclaw agent` in its own process on its own socket,
// clients as separate node and python3 processes, approvals through the CLI. Nothing is mocked.

/** Repository root. */
export const REPO = join(import.meta.dirname, '..', '..');
/** The node binary as the daemon sees it in /proc/PID/exe. */
export const NODE = realpathSync(process.execPath);
/** The system python used for raw-protocol clients (fork, exec, SCM_RIGHTS). */
export const PYTHON = '/usr/bin/python3';
/** Its canonical path, as the daemon pins it. */
export const PYTHON_REAL = realpathSync(PYTHON);
/** URL of the built TS SDK, for client fixtures. */
export const SDK_URL = pathToFileURL(join(REPO, 'dist', 'client', 'index.js')).href;

/** What every client fixture prints as its last stdout line. */
export interface ClientResult {
  ok: boolean;
  code?: string;
  message?: string;
  hint?: string;
  pendingId?: string;
  value_b64?: string;
  items?: string[];
  [key: string]: unknown;
}

/** One finished client process. */
export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Every stdout line that parses as JSON, in order. */
  lines: ClientResult[];
  /** The last JSON line (throws if there is none). */
  result: ClientResult;
}

/** Options of `run`. */
export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  cwd?: string;
  timeoutMs?: number;
  input?: string;
}

/** Runs a process to completion and collects its output; never throws for a non-zero exit. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? {},
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      const lines: ClientResult[] = [];
      for (const l of stdout.split('\n')) {
        try {
          const v = JSON.parse(l) as unknown;
          if (v && typeof v === 'object') lines.push(v as ClientResult);
        } catch {}
      }
      resolve({
        status,
        signal,
        stdout,
        stderr,
        lines,
        get result(): ClientResult {
          const last = lines.at(-1);
          if (!last) throw new Error(`no JSON result from ${cmd} ${args.join(' ')}: ${stdout}\n${stderr}`);
          return last;
        },
      });
    });
  });
}

/**
 * A node client on the TS SDK: `node client.mjs OP SERVICE ACCOUNT [VALUE_B64]` with OP get, set, delete,
 * list or whoami. It prints one JSON line: {ok, code?, message?, hint?, value_b64?, items?}.
 */
export function nodeClientSource(): string {
  return `import { connect } from ${JSON.stringify(SDK_URL)};
const [op, service, account, valueB64] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
try {
  const c = await connect({ socket: process.env.ENTRACLAW_SOCKET, timeoutMs: 20000 });
  try {
    if (op === 'get') out({ ok: true, value_b64: (await c.get(service, account)).toString('base64') });
    else if (op === 'set') { await c.set(service, account, Buffer.from(valueB64, 'base64')); out({ ok: true }); }
    else if (op === 'delete') { await c.delete(service, account); out({ ok: true }); }
    else if (op === 'list') out({ ok: true, items: (await c.list(service || undefined)).map((i) => i.service + '/' + i.account) });
    else if (op === 'whoami') out({ ok: true, ...(await c.whoami()) });
    else throw new Error('unknown op ' + op);
  } finally {
    c.close();
  }
} catch (e) {
  out({ ok: false, code: e.code ?? 'client_error', message: e.message, hint: e.hint, pendingId: e.pendingId });
}
`;
}

/** Raw-protocol helpers shared by every python fixture (inlined, so each fixture is one pinned file). */
export const PY_LIB = `import base64, json, os, socket, struct, subprocess, sys, time

def frame(msg, att=b""):
    body = json.dumps(msg, separators=(",", ":")).encode()
    return struct.pack(">II", 4 + len(body) + len(att), len(body)) + body + att

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise ConnectionError("daemon closed the connection")
        buf += c
    return buf

def recv_frame(s):
    (length,) = struct.unpack(">I", recv_exact(s, 4))
    f = recv_exact(s, length)
    (j,) = struct.unpack(">I", f[:4])
    return json.loads(f[4:4 + j]), f[4 + j:]

def confirm(s, reply):
    s.sendall(frame({"id": reply["id"], "op": "confirm", "nonce": reply["challenge"]}))

def call(s, msg, att=b""):
    # A granted request is answered with a challenge the sender must confirm (docs/protocol.md).
    s.sendall(frame(msg, att))
    reply, att = recv_frame(s)
    while "challenge" in reply:
        confirm(s, reply)
        reply, att = recv_frame(s)
    return reply, att

def result(reply, att):
    if reply.get("ok"):
        return {"ok": True, "value_b64": base64.b64encode(att).decode()}
    e = reply.get("error") or {}
    return {"ok": False, "code": e.get("code"), "message": e.get("message"), **({"hint": e["hint"]} if "hint" in e else {})}

def get(s, service, account, rid=7):
    try:
        return result(*call(s, {"id": rid, "op": "get", "service": service, "account": account}))
    except (ConnectionError, OSError) as e:
        return {"ok": False, "code": "closed", "message": str(e)}

def connect_hello(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    reply, _ = call(s, {"v": 1, "op": "hello", "id": 0})
    assert reply.get("ok"), reply
    return s

def emit(obj, path=None):
    line = json.dumps(obj) + "\\n"
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(line)
        os.rename(path + ".tmp", path)
    else:
        sys.stdout.write(line)
        sys.stdout.flush()

SOCK = os.environ["ENTRACLAW_SOCKET"]
`;

/** A client to pre-approve: program, optional script, one grant, and the register options used with it. */
export interface RegisterClient {
  exe: string;
  script?: string;
  grant: string;
  ops?: string;
  name?: string;
  ttl?: string;
}

/** A running daemon in its own temp dir, with everything a test needs to talk to it and to audit it. */
export interface Broker {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** env plus ENTRACLAW_SOCKET, for clients. */
  clientEnv: NodeJS.ProcessEnv;
  socket: string;
  pid: number;
  stateDir: string;
  process: ChildProcess;
  /** The daemon's stderr so far. */
  stderr(): string;
  /** Output of clients and CLI commands collected for the canary checks. */
  transcripts: string[];
  /** Runs the CLI against this broker's files; its stdout and stderr join the transcripts. */
  cli(args: string[], input?: string | Buffer): CliResult;
  /** Stores an item with the CLI (encrypted-file store). */
  seed(service: string, account: string, value: string): void;
  /** Pre-approves a client with `entraclaw register` and expects it to succeed. */
  register(client: RegisterClient): void;
  /** Writes a file into the temp dir (world-readable, so a test may run it as another uid). */
  file(name: string, text: string): string;
  /** Runs a node client fixture; output joins the transcripts. */
  node(
    script: string,
    args: string[],
    opts?: RunOptions & { nodeArgs?: string[]; exe?: string },
  ): Promise<RunResult>;
  /** Runs a python fixture; output joins the transcripts. */
  python(script: string, args: string[], opts?: RunOptions & { pyArgs?: string[] }): Promise<RunResult>;
  /** VmRSS of the daemon in KiB. */
  rssKiB(): number;
  /** SIGTERM, wait for exit, remove the temp dir. */
  stop(): Promise<void>;
}

// Whether a fixture's output reports a value it was served (at any depth, e.g. a control read).
function holdsServedValue(v: unknown): boolean {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  if (o.ok === true && typeof o.value_b64 === 'string') return true;
  return Object.values(o).some(holdsServedValue);
}

/** Waits until `check` is true, polling; throws with `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Node's arguments for `entraclaw agent --store encrypted-file --socket SOCKET ...rest`, the daemon the tests run. */
export function agentArgs(socket: string, ...rest: string[]): string[] {
  return [CLI, 'agent', '--store', 'encrypted-file', '--socket', socket, ...rest];
}

/** Starts `entraclaw agent --store STORE --socket <dir>/run/entraclaw/agent.sock -v` (the vault by default). */
export async function startBroker(
  prefix: string,
  seed: Array<[string, string, string]> = [],
  daemonEnv: NodeJS.ProcessEnv = {},
  /** A command the daemon is started under, e.g. ['prlimit', '--nofile=200:200']. */
  wrap: string[] = [],
  store = 'encrypted-file',
): Promise<Broker> {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, 'broker security test passphrase\n', { mode: 0o600 });
  const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass });
  const socket = join(dir, 'run', 'entraclaw', 'agent.sock');
  const clientEnv = { ...env, ENTRACLAW_SOCKET: socket };
  const transcripts: string[] = [];
  const cli = (args: string[], input?: string | Buffer): CliResult => {
    const r = runCli(args, env, input);
    transcripts.push(r.stdout.toString(), r.stderr);
    return r;
  };
  const seedOne = (service: string, account: string, value: string) => {
    // Not transcribed: this is the user's own write, and its input is the secret itself.
    const r = runCli(['secret', 'set', service, account, '--store', 'encrypted-file'], env, value);
    if (r.status !== 0) throw new Error(`seeding ${service}/${account} failed: ${r.stderr}`);
  };
  for (const [s, a, v] of seed) seedOne(s, a, v);

  const daemonArgs = agentArgs(socket, '-v').map((a, i, all) => (all[i - 1] === '--store' ? store : a));
  const [command, ...args] = [...wrap, process.execPath, ...daemonArgs];
  const child = spawn(command!, args, {
    env: { ...env, ...daemonEnv },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  let exited: number | null | undefined;
  child.on('exit', (code) => {
    exited = code;
  });
  // Its "listening" line, not only its socket: what it logs at start (a store locked, a low fd limit) comes
  // before that line, so a test reads it from stderr() at once; and the socket shows before it is ready.
  await waitFor(() => /listening socket=/.test(stderr) || exited !== undefined, 'the daemon');
  if (exited !== undefined) throw new Error(`daemon exited with ${exited}: ${stderr}`);

  const collect = (r: RunResult) => {
    transcripts.push(r.stderr);
    // A successful read prints the value (base64) on purpose; everything else must be free of it.
    if (!r.lines.some(holdsServedValue)) transcripts.push(r.stdout);
    return r;
  };
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o644 });
    chmodSync(p, 0o644);
    return realpathSync(p);
  };
  return {
    dir,
    env,
    clientEnv,
    socket,
    pid: child.pid!,
    // Where the daemon keeps it: on macOS ~/Library/Application Support/entraclaw, whatever XDG says.
    stateDir: resolvePaths(env).state,
    process: child,
    stderr: () => stderr,
    transcripts,
    cli,
    seed: seedOne,
    register: ({ exe, script, grant, ops, name, ttl }) => {
      const r = cli([
        'register',
        exe,
        ...(script ? ['--script', script] : []),
        '--grant',
        grant,
        ...(ops ? ['--ops', ops] : []),
        ...(name ? ['--name', name] : []),
        ...(ttl ? ['--ttl', ttl] : []),
      ]);
      expect(r.status, r.stderr).toBe(0);
    },
    file,
    node: async (script, args, opts = {}) =>
      collect(
        await run(opts.exe ?? NODE, [...(opts.nodeArgs ?? []), script, ...args], { env: clientEnv, ...opts }),
      ),
    python: async (script, args, opts = {}) =>
      collect(await run(PYTHON, [...(opts.pyArgs ?? []), script, ...args], { env: clientEnv, ...opts })),
    rssKiB: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return Number(m?.[1]);
    },
    stop: async () => {
      if (exited === undefined) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
        if (exited === undefined) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every file the broker and the CLI keep (audit log and rotations, pending queue, policy) as one string. */
export function stateText(b: Broker): string {
  const dirs = [b.stateDir, join(b.dir, 'config', 'entraclaw')];
  return dirs
    .filter((d) => existsSync(d))
    .flatMap((d) => readdirSync(d).map((f) => join(d, f)))
    .filter((p) => statSync(p).isFile())
    .map((p) => readFileSync(p, 'latin1'))
    .join('\n');
}

/** A secret that must never show up outside a granted read. */
export function canary(tag: string): string {
  return `CANARY-${tag}-${Math.random().toString(36).slice(2, 12)}`;
}

/** Where a broker's secrets must never be: its state and config files, its stderr, every transcript. */
export function secretFreePlaces(b: Broker): Record<string, string> {
  return {
    'state and config files': stateText(b),
    'daemon stderr': b.stderr(),
    'client and CLI output': b.transcripts.join('\n'),
  };
}

/** Expects none of `secrets`, raw, in base64 or in hex, in any of `places`. */
export function expectNoSecret(places: Record<string, string>, secrets: readonly string[]): void {
  for (const secret of secrets) {
    for (const form of [secret, b64(secret), Buffer.from(secret).toString('hex')]) {
      for (const [where, text] of Object.entries(places))
        expect(text.includes(form), `${where} holds a secret`).toBe(false);
    }
  }
}

/** Base64 of a string, as the fixtures print values. */
export const b64 = (s: string) => Buffer.from(s).toString('base64');

/**
 * fds this test process holds without close-on-exec (e.g. from whatever started vitest): every child
 * inherits them, the daemon included, so they are not the daemon's to answer for.
 */
export function inheritedFds(): Map<number, string> {
  const out = new Map<number, string>();
  for (const fd of readdirSync('/proc/self/fdinfo').map(Number)) {
    if (fd <= 2) continue;
    try {
      const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!;
      if ((Number.parseInt(flags, 8) & 0o2000000) === 0) out.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {}
  }
  return out;
}

/** A file's SHA-256 (hex): what a client's pin, and the audit, hold for it. */
export function fileSha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** A Python client that connects and sends a hello, printing how many reply bytes came (run it as another uid). */
export const OTHER_UID_PY = `import json, socket, struct, sys
body = b'{"v":1,"op":"hello","id":0}'
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connected": False, "error": repr(e)}))
    sys.exit(0)
data, err = b"", None
try:
    s.sendall(struct.pack(">II", 4 + len(body), len(body)) + body)
    s.settimeout(5)
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
except OSError as e:
    err = repr(e)
print(json.dumps({"connected": True, "reply_bytes": len(data), "error": err}))
`;
