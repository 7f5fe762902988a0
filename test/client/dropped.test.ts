import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerError, connect } from '../../src/client/index.js';

// The SDK against a real socket whose other end hangs up at once, as a daemon at its connection limit
// does: the caller gets a BrokerError it can handle, never a bare EPIPE/ECONNRESET.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-sdk-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('connect() to a daemon that drops the connection', () => {
  it('rejects with BrokerError "unavailable", every time', async () => {
    const path = join(dir, 'drop.sock');
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(path, r));
    try {
      for (let i = 0; i < 20; i++) {
        const err = await connect({ socket: path, timeoutMs: 5000 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(BrokerError);
        expect((err as BrokerError).code).toBe('unavailable');
      }
    } finally {
      server.close();
    }
  });
});
