import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, MAX_QUEUED_FRAMES } from '../../src/daemon/frame.js';
import { MAX_UNCONFIRMED } from '../../src/daemon/handlers.js';
import { MAX_FRAME, parseHello, parseRequest, wireError } from '../../src/daemon/protocol.js';
import { type Broker, PYTHON, run, startBroker } from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

// docs/protocol.md promises a client can be written from it alone: check its hex dump and run its
// Python client against a server made of the real framing and parsing code.
const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const python = spawnSync('python3', ['--version']).status === 0;
// The doc's Python client, without its example main.
const docClient = () =>
  /```python\n([\s\S]*?)```/.exec(doc)![1]!.replace(/if __name__ == "__main__":[\s\S]*$/, '');

describe('docs/protocol.md', () => {
  it('shows the bytes encodeFrame produces for its hello', () => {
    const hex = encodeFrame({ v: 1, op: 'hello', id: 0 }).toString('hex');
    expect(doc).toContain(`\`${hex}\``);
    const dumped = [...doc.matchAll(/^000000[0-9a-f]0 {2}((?:[0-9a-f]{2} {1,2})+)/gm)]
      .map((m) => m[1]!.replace(/\s/g, ''))
      .join('');
    expect(dumped).toBe(hex);
  });

  it('states the frame limit the code uses', () => {
    expect(doc).toContain(`MAX_FRAME = ${MAX_FRAME.toLocaleString('en-US')}`);
  });

  it('states the per-connection caps the code uses', () => {
    // Prose wraps anywhere: compare with every run of whitespace as one space.
    const flat = doc.replace(/\s+/g, ' ');
    expect(flat).toContain(`keep at most ${MAX_QUEUED_FRAMES} frames unanswered on a connection`);
    expect(flat).toContain(
      `${MAX_QUEUED_FRAMES + 1} written in one go to an idle connection are already too many`,
    );
    expect(flat).toContain(`At most ${MAX_UNCONFIRMED} requests may await confirmation per connection`);
  });

  describeIfProvided('its Python client', python ? undefined : 'python3 is not installed', () => {
    let dir = '';
    let server: Server;
    const store = new Map<string, Buffer>();

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'entraclaw-doc-'));
      server = createServer((sock) => {
        const decoder = new FrameDecoder();
        let greeted = false;
        sock.on('data', (chunk) => {
          for (const f of decoder.push(chunk)) {
            const reply = (json: object, attachment?: Buffer) => sock.write(encodeFrame(json, attachment));
            if (!greeted) {
              parseHello(f.json);
              greeted = true;
              reply({ id: f.json.id, ok: true, v: 1, server: 'entraclaw/test', maxFrame: MAX_FRAME });
              continue;
            }
            try {
              const r = parseRequest(f.json, f.attachment);
              const meta = (service: string, account: string) => ({
                service,
                account,
                kind: 'password',
                createdAt: 't',
                updatedAt: 't',
              });
              if (r.op === 'set') {
                store.set(`${r.service}\0${r.account}`, Buffer.from(r.value));
                reply({ id: r.id, ok: true, item: meta(r.service, r.account), created: true });
              } else if (r.op === 'get') {
                const v = store.get(`${r.service}\0${r.account}`);
                if (v) reply({ id: r.id, ok: true, item: meta(r.service, r.account) }, v);
                else
                  reply({
                    id: r.id,
                    ok: false,
                    error: {
                      code: 'pending',
                      message: 'not approved',
                      hint: 'approve it',
                      pendingId: 'p-00c0ffee',
                    },
                  });
              } else if (r.op === 'list') {
                reply({
                  id: r.id,
                  ok: true,
                  items: [...store.keys()].map((k) => meta(...(k.split('\0') as [string, string]))),
                });
              } else if (r.op === 'whoami') {
                reply({
                  id: r.id,
                  ok: true,
                  pid: 1,
                  exe: '/usr/bin/python3',
                  sha256: '0'.repeat(64),
                  client: null,
                  grants: [],
                });
              } else {
                reply({ id: r.id, ok: true });
              }
            } catch (err) {
              reply({ id: f.json.id ?? null, ok: false, error: wireError(err) });
            }
          }
        });
      });
      await new Promise<void>((resolve) => server.listen(join(dir, 'agent.sock'), resolve));
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    });

    it('talks to the server: hello, set, get of binary data, list, whoami, errors', async () => {
      const script = `${docClient()}
c = Client()
assert c.hello[0]["maxFrame"] == MAX_FRAME, c.hello
value = bytes(range(256)) * 3
c.set("github.com", "me", value, kind="password")
assert c.get("github.com", "me") == value
assert [i["account"] for i in c.list()] == ["me"]
assert c.whoami()["client"] is None
try:
    c.get("npm", "me")
    raise SystemExit("expected an error")
except EntraclawError as e:
    assert (e.code, e.pending_id, e.hint) == ("pending", "p-00c0ffee", "approve it"), vars(e)
try:
    c._call({"id": c._id(), "op": "get", "service": "s", "account": "a", "exe": "/usr/bin/ssh"})
    raise SystemExit("expected bad_request")
except EntraclawError as e:
    assert e.code == "bad_request", e.code
print("ok")
`;
      const file = join(dir, 'client.py');
      writeFileSync(file, script);
      // Asynchronously: the server answering it runs in this process.
      const out = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn('python3', [file], {
          env: { ...process.env, ENTRACLAW_SOCKET: join(dir, 'agent.sock') },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      expect(out.stderr).toBe('');
      expect(out.stdout.trim()).toBe('ok');
      expect(out.status).toBe(0);
    });
  });
});

// The same client, unchanged, against a real daemon: what an outsider writing from this page gets.
describeIfProvided('its Python client against a real daemon', brokerClientsMissing, () => {
  let b: Broker;
  beforeAll(async () => {
    b = await startBroker('entraclaw-doc-client');
  }, 60_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('approved: set and get of binary data with metadata, list, whoami, delete; an unapproved copy is pending', async () => {
    const approved = b.file(
      'doc_client.py',
      `${docClient()}
c = Client()
assert c.hello[0]["maxFrame"] == MAX_FRAME, c.hello
value = bytes(range(256)) * 4
item = c.set("doc.example", "bin", value, kind="key", label="L", expiresAt="2099-01-01")
assert (item["kind"], item["label"], item["expiresAt"]) == ("key", "L", "2099-01-01T00:00:00.000Z"), item
assert c.get("doc.example", "bin") == value
assert [i["account"] for i in c.list("doc.example")] == ["bin"]
assert c.whoami()["client"] == "doc-client"
c.delete("doc.example", "bin")
try:
    c.get("doc.example", "bin")
    raise SystemExit("expected not_found")
except EntraclawError as e:
    assert e.code == "not_found", e.code
print("ok")
`,
    );
    b.register({
      exe: PYTHON,
      script: approved,
      grant: 'doc.example',
      ops: 'read,list,write,delete',
      name: 'doc-client',
    });
    const r = await run(PYTHON, [approved], { env: b.clientEnv });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
    const copy = b.file(
      'doc_client_copy.py',
      `${docClient()}
try:
    Client().get("doc.example", "bin")
except EntraclawError as e:
    print(e.code, e.pending_id, e.hint)
`,
    );
    const q = await run(PYTHON, [copy], { env: b.clientEnv });
    expect(q.stderr).toBe('');
    expect(q.stdout.trim()).toMatch(
      /^pending p-[0-9a-f]{8} ask the user to run: entraclaw approve p-[0-9a-f]{8} /,
    );
  }, 30_000);
});
