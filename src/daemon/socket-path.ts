import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DeniedError, UsageError } from '../errors.js';
import type { Paths } from '../lib/paths.js';

/** The daemon socket path: --socket, then $ENTRACLAW_SOCKET, then the runtime dir. */
export function socketPath(paths: Paths, explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit || env.ENTRACLAW_SOCKET || join(paths.runtime, 'agent.sock');
}

// A Unix socket path is limited to 108 bytes (sun_path); a longer one fails with an opaque EINVAL.
const MAX_SOCKET_PATH = 107;

/**
 * Creates (or checks) the private directory that holds the socket: a real directory, owned by us, 0700.
 * A symlink or a directory owned by someone else is refused: they could swap the socket under us.
 */
export function preparePrivateDir(socket: string, uid = process.getuid?.() ?? 0): string {
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new UsageError(
      `socket path is too long (${Buffer.byteLength(socket)} bytes, max ${MAX_SOCKET_PATH}): ${socket}`,
      'choose a shorter --socket path',
    );
  }
  const dir = dirname(socket);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new DeniedError(
      `socket directory ${dir} is a symlink or not a directory`,
      'remove it and let entraclaw create a private directory',
    );
  }
  if (st.uid !== uid) {
    throw new DeniedError(
      `socket directory ${dir} is owned by uid ${st.uid}, not ${uid}`,
      'use a directory you own (--socket)',
    );
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return dir;
}
