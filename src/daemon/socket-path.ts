import { lstatSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DeniedError, UsageError } from '../errors.js';
import type { Paths } from '../lib/paths.js';

/** The socket in the runtime dir: where the daemon listens unless told otherwise. */
export function defaultSocket(paths: Paths): string {
  return join(paths.runtime, 'agent.sock');
}

/**
 * The daemon socket path: `explicit` (the agent's --socket, else agent.toml's [agent] socket), then
 * $ENTRACLAW_SOCKET in `env`, then the runtime dir. A relative one is made absolute here, since the
 * daemon hands it to programs that may run from another directory.
 */
export function socketPath(paths: Paths, explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const given = explicit || env.ENTRACLAW_SOCKET;
  return given ? resolve(given) : defaultSocket(paths);
}

/** The file a running daemon holds an flock on for its whole life: one daemon per socket. */
export function socketLock(socket: string): string {
  return `${socket}.lock`;
}

// A Unix socket path is limited by sun_path: 108 bytes on Linux, 104 on macOS (and the BSDs). A longer one
// fails with an opaque EINVAL, or is cut short by the library that copies it.
/** The longest socket path bind(2) takes on `platform` (sun_path's size, less the NUL). */
export function maxSocketPath(platform: NodeJS.Platform = process.platform): number {
  return platform === 'linux' ? 107 : 103;
}

/** The longest socket path bind(2) takes here. */
export const MAX_SOCKET_PATH = maxSocketPath();

/**
 * Checks the socket's length and makes its private directory (makePrivateDir). A directory that group or
 * others can enter is refused, never tightened: a `--socket` may point into a directory that is not ours
 * to change (/tmp, a project). Missing parents are created only for the default location.
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
  makePrivateDir(dirname(socket), uid, opts.createParents === true);
}

/**
 * Creates (or checks) a private directory: a real directory, owned by uid, 0700. With `createParents`
 * (Entraclaw's own runtime directory) missing parents are made too, and the parent must be one no other
 * user can change: when XDG_RUNTIME_DIR is unset it is /tmp/entraclaw-UID, which anyone could have made
 * first to rename our directory away and put their own socket in its place.
 */
export function makePrivateDir(dir: string, uid: number, createParents: boolean): void {
  try {
    // The parent is checked before anything is made in it.
    if (createParents) {
      mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
      assertUnshared(dirname(dir), uid);
    }
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new UsageError(
        `the directory for the socket ${dir} cannot be created: ${dirname(dir)} does not exist`,
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

// The runtime base (XDG_RUNTIME_DIR, or the /tmp fallback) must be ours and writable by us alone.
function assertUnshared(dir: string, uid: number): void {
  const st = lstatSync(dir);
  const hint =
    'point XDG_RUNTIME_DIR at a directory only you own (mode 700), or --socket / ENTRACLAW_SOCKET at a socket in one';
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new DeniedError(`the runtime directory ${dir} is a symlink or not a directory`, hint);
  }
  if (st.uid !== uid) {
    throw new DeniedError(
      `the runtime directory ${dir} is owned by uid ${st.uid}, not ${uid}: its owner could put their own socket where clients look for the daemon`,
      hint,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new DeniedError(
      `the runtime directory ${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`,
      `chmod 700 ${dir}, or ${hint}`,
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
