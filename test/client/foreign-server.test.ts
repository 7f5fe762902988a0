import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerError, connect } from '../../src/client/index.js';
import { isolatedEnv, runCli } from '../support/cli.js';
import { requireOrSkip, rootOnly } from '../support/context.js';

// Another user who can write where the SDK looks for the daemon (a /tmp fallback they made first, a shared
// --socket directory) can listen there. The SDK asks the kernel who serves the socket and sends nothing
// to anyone but its own user: not the hello, and never a set's value.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-sdk-foreign-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Listens as uid 65534 and prints, for each connection, how many bytes it received before the close.
const LISTENER = `
const net = require('node:net');
net.createServer((s) => {
  let bytes = 0;
  s.on('data', (d) => { bytes += d.length; });
  s.on('close', () => process.stdout.write('closed after ' + bytes + ' bytes\\n'));
}).listen(process.argv[1], () => process.stdout.write('listening\\n'));
`;

describe('connect() to a socket another user serves', () => {
  it('refuses it before sending a byte, naming the uid behind it', async (ctx) => {
    requireOrSkip(ctx, rootOnly('a server running as another uid'));
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(dir, 0o755);
    chmodSync(shared, 0o777);
    const path = join(shared, 'agent.sock');
    const server = spawn(process.execPath, ['-e', LISTENER, path], {
      uid: 65534,
      gid: 65534,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const saw = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => out.includes(text) && resolve();
        server.stdout.on('data', (d) => {
          out += d;
          check();
        });
        check();
      });
    try {
      await saw('listening');
      const err = await connect({ socket: path, timeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).code).toBe('denied');
      expect((err as BrokerError).message).toContain(`the socket ${path} is served by uid 65534, not by you`);
      await saw('closed after');
      expect(out).toContain('closed after 0 bytes');
      // doctor says whose socket it is, not "stale".
      const doctor = runCli(['doctor'], isolatedEnv(dir, { ENTRACLAW_SOCKET: path }));
      expect(doctor.stdout.toString()).toContain(
        `Daemon: NOT YOURS: the socket is owned by uid 65534, another user; clients refuse it`,
      );
    } finally {
      server.kill();
    }
  });

  it('talks to a socket its own user serves (the check does not refuse the daemon)', async () => {
    const path = join(dir, 'own.sock');
    let received = 0;
    const server = createServer((s) => {
      s.on('data', (d) => {
        received += d.length;
        s.destroy();
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const err = await connect({ socket: path, timeoutMs: 5000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // The hello went out (and the listener, being no daemon, hung up on it).
      expect((err as BrokerError).code).toBe('unavailable');
      expect(received).toBeGreaterThan(0);
    } finally {
      server.close();
    }
  });
});
