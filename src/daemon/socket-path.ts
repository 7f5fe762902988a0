import { lstatSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DeniedError, UsageError } from '../errors.js';
import type { Paths } from '../lib/paths.js';

/** The socket in the runtime dir: where the daemon listens unless told otherwise. */
export function defaultSocket(paths: Paths): string {
  return join(paths.runtime, 'agent.sock');
}

/**
 * The daemon socket path: --socket, then $ENTRACLAW_SOCKET, then the runtime dir. A relative one is made
 * absolute here, since the daemon hands it to programs that may run from another directory.
 */
export function socketPath(paths: Paths, explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const given = explicit || env.ENTRACLAW_SOCKET;
  return given ? resolve(given) : defaultSocket(paths);
}

/** The file a running daemon holds an flock on for its whole life: one daemon per socket. */
export function socketLock(socket: string): string {
  return `${socket}.lock`;
}

// A Unix socket path is limited to 108 bytes (sun_path); a longer one fails with an opaque EINVAL.
/** The longest socket path bind(2) takes (sun_path's 108 bytes, less the NUL). */
export const MAX_SOCKET_PATH = 107;

/**
 * Creates (or checks) the private directory that holds the socket: a real directory, owned by us, 0700.
 * A symlink, a directory owned by someone else, or one that group or others can enter is refused (they
 * could swap the socket under us); its mode is never changed for the user, since a `--socket` may point
 * into a directory that is not ours to tighten (/tmp, a project). Missing parents are created only for
 * the default location (`createParents`); for any other path only the last directory is.
 */
export function preparePrivateDir(
  socket: string,
  opts: { uid?: number; createParents?: boolean } = {},
): void {
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new UsageError(
      `socket path is too long (${Buffer.byteLength(socket)} bytes, max ${MAX_SOCKET_PATH}): ${socket}`,
      'choose a shorter --socket path',
    );
  }
  const dir = dirname(socket);
  try {
    mkdirSync(dir, { recursive: opts.createParents === true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new UsageError(
        `the directory for the socket ${socket} cannot be created: ${dirname(dir)} does not exist`,
        'create it first, or choose another --socket path',
      );
    }
    if (code !== 'EEXIST') throw err;
  }
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
  if ((st.mode & 0o077) !== 0) {
    throw new DeniedError(
      `socket directory ${dir} is open to group or others (mode ${(st.mode & 0o777).toString(8)})`,
      `keep the socket in a private directory: chmod 700 ${dir}, or --socket DIR/agent.sock in a new one`,
    );
  }
}

/**
 * Refuses a socket path that holds something other than a socket: the daemon replaces a stale socket
 * there, and must never delete a user's file (a mistyped --socket).
 */
export function assertSocketOrAbsent(socket: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(socket);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new UsageError(
      `${socket} exists and is not a socket; refusing to replace it`,
      'choose another --socket path (the daemon creates the socket itself)',
    );
  }
}
