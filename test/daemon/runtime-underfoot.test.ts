import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  agentArgs,
  type Broker,
  b64,
  canary,
  NODE,
  nodeClientSource,
  OTHER_UID_PY,
  PYTHON,
  run,
  startBroker,
  waitFor,
} from '../support/broker.js';
import { runCli } from '../support/cli.js';
import { brokerClientsMissing, describeIfProvided, rootOnly } from '../support/context.js';

// The runtime and state directories changing under a running agent, as a user who keeps it up for weeks sees it: its
// socket deleted by systemd-tmpfiles or a careless rm, the whole directory emptied at a logout. Real
// daemon, real clients over the real socket; the full disk is a real (64 KiB) tmpfs.

const SVC = 'runtime.example';

describeIfProvided('an agent whose socket is deleted under it', brokerClientsMissing, () => {
  const SECRET = canary('runtime-socket');
  let b: Broker;
  let client: string;
  const get = async () => (await b.node(client, ['get', SVC, 'acct'])).result;
  const served = () => ({ ok: true, value_b64: b64(SECRET) });
  beforeAll(async () => {
    b = await startBroker('entraclaw-runtime', [[SVC, 'acct', SECRET]]);
    client = b.file('client.mjs', nodeClientSource());
    b.register({ exe: NODE, script: client, grant: SVC, ops: 'read', name: 'client' });
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('binds it again, so clients find it, and says so in its log', async () => {
    expect(await get()).toEqual(served());
    unlinkSync(b.socket);
    await waitFor(() => existsSync(b.socket), 'the socket bound again');
    expect(lstatSync(b.socket).mode & 0o777).toBe(0o600);
    expect(await get()).toEqual(served());
    expect(b.stderr()).toContain('the socket was deleted; listening there again');
  }, 60_000);

  it('its whole directory removed: made again, lock file too, so a second agent is still refused', async () => {
    rmSync(dirname(b.socket), { recursive: true });
    await waitFor(() => existsSync(b.socket), 'the socket bound again');
    expect(lstatSync(dirname(b.socket)).mode & 0o777).toBe(0o700);
    expect(await get()).toEqual(served());
    const second = await run(process.execPath, agentArgs(b.socket), { env: b.env, timeoutMs: 15_000 });
    expect(second.status, second.stderr).toBe(2);
    expect(second.stderr).toContain(
      `another entraclaw agent is already running on this socket (pid ${b.pid})`,
    );
    expect(await get()).toEqual(served());
  }, 60_000);

  it('its directory replaced by a symlink: refused, said once, and the agent stays up to bind again once it is a directory', async () => {
    const dir = dirname(b.socket);
    const elsewhere = join(b.dir, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    renameSync(dir, join(b.dir, 'moved-away'));
    symlinkSync(elsewhere, dir);
    await waitFor(
      () => b.stderr().includes('is a symlink or not a directory'),
      'the agent to refuse the symlinked directory',
    );
    // The agent had no listener and no connection then: nothing kept it running but its retry.
    unlinkSync(dir);
    await waitFor(() => existsSync(b.socket) || b.process.exitCode !== null, 'the socket bound again');
    expect(b.process.exitCode).toBeNull();
    expect(lstatSync(dir).isDirectory()).toBe(true);
    expect(await get()).toEqual(served());
    expect(b.stderr().split('is a symlink or not a directory').length - 1).toBe(1);
  }, 60_000);

  it('a SIGTERM after that still removes the socket it bound last and exits 0', async () => {
    const exit = new Promise<number | null>((r) => b.process.once('exit', (code) => r(code)));
    b.process.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(existsSync(b.socket)).toBe(false);
  }, 60_000);
});

describeIfProvided('an agent whose socket another put a socket in place of', brokerClientsMissing, () => {
  it('leaves that socket alone, serving on, and at its own stop too', async () => {
    const b = await startBroker('entraclaw-runtime-replaced');
    const other = createServer();
    try {
      const aside = `${b.socket}.other`;
      await new Promise<void>((r) => other.listen(aside, r));
      renameSync(aside, b.socket);
      const theirs = lstatSync(b.socket).ino;
      await waitFor(() => b.stderr().includes('the socket was replaced by another'), 'the warning');
      const exit = new Promise<number | null>((r) => b.process.once('exit', (code) => r(code)));
      b.process.kill('SIGTERM');
      expect(await exit).toBe(0);
      expect(lstatSync(b.socket).ino).toBe(theirs);
    } finally {
      other.close();
      await b.stop();
    }
  }, 60_000);
});

describeIfProvided('an agent whose state directory is deleted under it', brokerClientsMissing, () => {
  const SECRET = canary('state-deleted');
  let b: Broker;
  let client: string;
  const get = async () => (await b.node(client, ['get', SVC, 'acct'])).result;
  const otherSocket = () => join(b.dir, 'run', 'other', 'agent.sock');
  beforeAll(async () => {
    b = await startBroker('entraclaw-state-deleted', [[SVC, 'acct', SECRET]]);
    client = b.file('client.mjs', nodeClientSource());
    b.register({ exe: NODE, script: client, grant: SVC, ops: 'read', name: 'client' });
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('made again: its next line takes the audit lock again, so a second agent on that state is still refused', async () => {
    expect(await get()).toEqual({ ok: true, value_b64: b64(SECRET) });
    rmSync(b.stateDir, { recursive: true });
    mkdirSync(b.stateDir, { mode: 0o700 });
    expect(await get()).toEqual({ ok: true, value_b64: b64(SECRET) });
    expect(b.stderr()).toContain("the audit log's lock file was deleted; holding it again");
    const second = await run(process.execPath, agentArgs(otherSocket()), { env: b.env, timeoutMs: 15_000 });
    expect(second.status, second.stderr).toBe(2);
    expect(second.stderr).toContain(`another entraclaw agent (pid ${b.pid}) already writes the audit log`);
    // The deleted history is missing from the chain, not passed over.
    const verify = runCli(['audit', 'verify'], b.env);
    expect(verify.status).toBe(5);
    expect(verify.stderr).toContain('the log starts at seq');
  }, 60_000);

  it('gone and not made again by hand: the next request makes it (0700), with the lock and a log going on', async () => {
    rmSync(b.stateDir, { recursive: true });
    expect(await get()).toEqual({ ok: true, value_b64: b64(SECRET) });
    expect(statSync(b.stateDir).mode & 0o777).toBe(0o700);
    expect(existsSync(join(b.stateDir, 'audit.jsonl.lock'))).toBe(true);
    expect(readFileSync(join(b.stateDir, 'audit.jsonl'), 'utf8')).toContain('"decision":"granted"');
  }, 60_000);

  it('taken by a second agent meanwhile: this one serves nothing more, naming it, instead of interleaving two chains', async () => {
    rmSync(b.stateDir, { recursive: true });
    const second = spawn(process.execPath, agentArgs(otherSocket()), {
      env: b.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let said = '';
    second.stderr.on('data', (d: Buffer) => {
      said += d.toString();
    });
    try {
      await waitFor(() => said.includes('listening'), 'the second agent to start');
      const r = await get();
      expect(r).toMatchObject({ ok: false, code: 'unavailable' });
      expect(r.message).toContain(`another entraclaw agent (pid ${second.pid}) already writes the audit log`);
      expect(r.message).toContain("the audit log's lock file was deleted under this agent");
    } finally {
      const exit = new Promise((r) => second.once('exit', r));
      second.kill('SIGTERM');
      await exit;
    }
  }, 60_000);
});

// A 64 KiB tmpfs for XDG_STATE_HOME (needs root), or why there is none.
const SMALL = mkdtempSync(join(tmpdir(), 'entraclaw-full-state-'));
const mounted = brokerClientsMissing
  ? undefined
  : spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', SMALL], { encoding: 'utf8' });
const smallMissing =
  brokerClientsMissing ??
  (mounted?.status === 0
    ? undefined
    : (rootOnly('mounting a 64k tmpfs to fill') ??
      `cannot mount a 64k tmpfs here: ${(mounted?.stderr || mounted?.error?.message || '').trim()}`));
// At the file's end, after the suite's own afterAll has stopped its agent: also when a filter skipped it.
afterAll(() => {
  if (mounted?.status === 0) spawnSync('umount', [SMALL]);
  rmSync(SMALL, { recursive: true, force: true });
});

describeIfProvided('an agent whose audit log fills the disk', smallMissing, () => {
  const SECRET = canary('full-disk');
  const LATER = canary('full-disk-later');
  let b: Broker;
  let client: string;
  const filler = join(SMALL, 'filler');
  const get = async () => (await b.node(client, ['get', SVC, 'acct'])).result;
  const verify = () => runCli(['audit', 'verify'], { ...b.env, XDG_STATE_HOME: SMALL });
  beforeAll(async () => {
    mkdirSync(join(SMALL, 'entraclaw'), { mode: 0o700 });
    b = await startBroker('entraclaw-full-state', [[SVC, 'acct', SECRET]], { XDG_STATE_HOME: SMALL });
    client = b.file('client.mjs', nodeClientSource());
    b.register({ exe: NODE, script: client, grant: SVC, ops: 'read,write', name: 'client' });
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('fails each request as unavailable, saying why and that a write was done; the chain stays whole', async () => {
    expect(await get()).toEqual({ ok: true, value_b64: b64(SECRET) });
    // Every free page taken: the audit file's last page is all the room left, and the line that crosses
    // its end is written only in part before the error (a short write).
    try {
      for (;;) appendFileSync(filler, Buffer.alloc(4096));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    const refused = {
      ok: false,
      code: 'unavailable',
      message: expect.stringMatching(/^nothing was served: cannot write the audit log .*ENOSPC/),
      hint: expect.stringContaining('free space on the file system of'),
    };
    let served = 0;
    for (let r = await get(); r.ok; r = await get()) {
      expect(r).toEqual({ ok: true, value_b64: b64(SECRET) });
      expect(++served).toBeLessThan(20);
    }
    expect(await get()).toMatchObject(refused);
    const set = await b.node(client, ['set', SVC, 'acct', b64(LATER)]);
    expect(set.result).toMatchObject({
      ok: false,
      code: 'unavailable',
      message: expect.stringMatching(/^this set was carried out, but cannot write the audit log/),
    });
    // Said once, however many requests failed.
    expect(b.stderr().split('cannot write the audit log: requests fail').length).toBe(2);

    // Another user connecting is refused and audited outside any request: the failed audit line is
    // logged, and the daemon is still there to serve once there is room.
    const other = await otherUidConnects(b);
    expect(other.result, other.stderr).toMatchObject({ connected: true, reply_bytes: 0 });
    await waitFor(
      () => b.stderr().includes('cannot write the audit log op=connect'),
      'the refused connection logged as unaudited',
    );

    rmSync(filler);
    expect(await get()).toEqual({ ok: true, value_b64: b64(LATER) });
    expect(b.stderr()).toContain('the audit log is written again');
    // No torn line was left behind for verify to distrust everything after.
    expect(b.stderr()).not.toContain('audit log damaged');
    const v = verify();
    expect(v.status, v.stderr).toBe(0);
  }, 60_000);
});

// A hello from uid 65534 (nobody), through directories opened just for it (as a 0666 socket would be).
async function otherUidConnects(b: Broker): Promise<Awaited<ReturnType<typeof run>>> {
  const dirs = [b.dir, dirname(dirname(b.socket)), dirname(b.socket)];
  for (const d of dirs) chmodSync(d, 0o755);
  chmodSync(b.socket, 0o666);
  try {
    return await run(PYTHON, [b.file('other-uid.py', OTHER_UID_PY), b.socket], {
      uid: 65534,
      gid: 65534,
      cwd: '/',
      env: { PATH: '/usr/bin:/bin' },
    });
  } finally {
    chmodSync(b.socket, 0o600);
    for (const d of dirs.reverse()) chmodSync(d, 0o700);
  }
}
