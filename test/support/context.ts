import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoreContext } from '../../src/store/types.js';

/** A throwaway store context: private config/data/state dirs and a vault passphrase file. */
export function tempContext(env: NodeJS.ProcessEnv = process.env): {
  ctx: StoreContext;
  dir: string;
  cleanup(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'entraclaw-test-'));
  const passphraseFile = join(dir, 'passphrase');
  writeFileSync(passphraseFile, 'correct horse battery staple\n', { mode: 0o600 });
  const ctx: StoreContext = {
    env: { ...env },
    paths: {
      config: join(dir, 'config'),
      data: join(dir, 'data'),
      state: join(dir, 'state'),
      runtime: join(dir, 'run'),
    },
    passphraseFile,
    interactive: false,
    timeoutMs: 3000,
  };
  return { ctx, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A random item name so runs never collide in a real, shared keyring. */
export function randomName(prefix = 'entraclaw-test'): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** True when running under scripts/with-keyring.sh (as `make test` does), where every Linux store must be present. */
export const inTestSession = Boolean(process.env.ENTRACLAW_IN_TEST_SESSION);
