import { dirname } from 'node:path';
import { UsageError } from '../errors.js';

// Pure construction of the bubblewrap command line. What the sandbox hides, and why:
// - $HOME is replaced by an empty tmpfs: the user's keyrings (~/.local/share/keyrings), the vault and
//   Entraclaw's config and state, SSH keys and every other secret lying in the home directory;
// - $XDG_RUNTIME_DIR, /run and /tmp are replaced: the D-Bus session bus socket, gnome-keyring's control
//   socket and Entraclaw's own daemon socket live there, so Secret Service and the daemon cannot be reached;
// - Entraclaw's own files and the keyring files are hidden WHEREVER they are (`hideDirs`, `hideFiles`):
//   XDG_DATA_HOME or XDG_CONFIG_HOME may point outside $HOME, and a project or allowed path that contains
//   one (say `--project ~`) would otherwise bind it straight back in. These masks go last, over every bind;
// - the kernel keyring: a new user namespace gives the sandbox its own user keyring, and a seccomp filter
//   (seccomp.ts) stops keyctl altogether, because the inherited session keyring may link the real one;
//   /proc/keys, which lists the names (service/account) of the keys the user can view, is masked;
// - only the broker socket, the shims, the project directory and the profile's paths are bound back in.

/** Inputs of buildBwrapArgs, all absolute, canonical paths. */
export interface SandboxLayout {
  home: string;
  runtimeDir?: string;
  project: string;
  /** The broker socket outside; it appears inside at SANDBOX_SOCKET. */
  socket: string;
  /** Directory with the `security` and `secret-tool` shims; it appears inside at SANDBOX_BIN. */
  shimDir: string;
  /** Entraclaw's own install (read-only), needed by the shims when it lives under a hidden directory. */
  installRoot: string;
  allowPaths: string[];
  readPaths: string[];
  network: boolean;
  /** Existing directories that must never be visible (Entraclaw's config/data/state/runtime, keyrings). */
  hideDirs?: string[];
  /** Existing files that must never be visible (the vault passphrase file, a D-Bus socket). */
  hideFiles?: string[];
  /** Files of the sandbox's own /proc to mask: /proc/keys names every kernel key the user can view. */
  procMasks?: string[];
  /** File descriptor (in bwrap) from which bwrap reads the seccomp program. */
  seccompFd?: number;
  /** File descriptor (in bwrap) on which bwrap writes `{"child-pid": N}`: the sandbox's init, for signals. */
  infoFd?: number;
  /** File descriptor (in bwrap) the command waits on: it starts once the broker serves its namespace. */
  blockFd?: number;
  /**
   * Open fds (in bwrap) of the project, allowed and read paths, by canonical path: bound by fd, so what is
   * bound is what was checked, even if a concurrent run swaps a path for a symlink in between.
   */
  pathFds?: ReadonlyMap<string, number>;
  /**
   * Fds (in bwrap) carrying each shim's bytes, by command name: copied into the sandbox (--ro-bind-data),
   * so another run that can write this run's scratch directory still cannot change what runs here.
   */
  shimFds?: ReadonlyMap<string, number>;
}

/** Where the broker socket appears inside the sandbox. */
export const SANDBOX_SOCKET = '/run/entraclaw/agent.sock';
/** Where the shims appear inside the sandbox (prepended to PATH). */
export const SANDBOX_BIN = '/run/entraclaw/bin';

/** The bwrap arguments (without the command) for a layout. Throws a UsageError for an unsafe layout. */
export function buildBwrapArgs(given: SandboxLayout): string[] {
  // A path named twice (an allowed path that is the project, a read path also allowed) is bound once, the
  // most open way: bwrap takes each bound fd once, and a second bind would add nothing.
  const allowPaths = [...new Set(given.allowPaths)].filter((p) => p !== given.project);
  const readPaths = [...new Set(given.readPaths)].filter(
    (p) => p !== given.project && !allowPaths.includes(p),
  );
  const layout = { ...given, allowPaths, readPaths };
  const hideDirs = layout.hideDirs ?? [];
  const hideFiles = layout.hideFiles ?? [];
  checkLayout(layout, [...hideDirs, ...hideFiles]);
  const args = [
    '--die-with-parent',
    '--new-session',
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    // Run by root, bwrap would leave the command every capability in its namespaces: enough to unmount
    // the tmpfs masks (or the $HOME tmpfs) and see the keyrings, the vault and the host's socket below.
    '--cap-drop',
    'ALL',
  ];
  if (!layout.network) args.push('--unshare-net');
  args.push('--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--tmpfs', '/run');
  for (const f of layout.procMasks ?? []) args.push('--ro-bind', '/dev/null', f);
  const hiddenRoots = ['/tmp', '/run', layout.home];
  args.push('--tmpfs', layout.home);
  if (layout.runtimeDir && !isUnderAny(layout.runtimeDir, hiddenRoots)) {
    args.push('--tmpfs', layout.runtimeDir);
  }
  if (layout.runtimeDir) hiddenRoots.push(layout.runtimeDir);
  if (isUnderAny(layout.installRoot, hiddenRoots)) {
    args.push('--ro-bind', layout.installRoot, layout.installRoot);
  }
  const bind = (how: '--bind' | '--ro-bind', p: string) => {
    const fd = layout.pathFds?.get(p);
    args.push(...(fd === undefined ? [how, p, p] : [`${how}-fd`, String(fd), p]));
  };
  for (const p of layout.readPaths) bind('--ro-bind', p);
  bind('--bind', layout.project);
  for (const p of layout.allowPaths) bind('--bind', p);
  if (layout.shimFds?.size) {
    for (const [name, fd] of layout.shimFds) {
      args.push('--perms', '0555', '--ro-bind-data', String(fd), `${SANDBOX_BIN}/${name}`);
    }
  } else {
    args.push('--ro-bind', layout.shimDir, SANDBOX_BIN);
  }
  args.push('--bind', layout.socket, SANDBOX_SOCKET);
  // Masks last, so no bind above can re-expose them; only where needed, so an empty $HOME stays empty.
  const rebound = [layout.installRoot, ...layout.readPaths, layout.project, ...layout.allowPaths];
  const needed = (p: string) => !isUnderAny(p, hiddenRoots) || isUnderAny(p, rebound);
  const masks = { dirs: hideDirs.filter(needed), files: hideFiles.filter(needed) };
  // A mask is a mount on its path, and a mount moves with a parent directory that is renamed: a command
  // that may write an ancestor of a hidden directory (`--project ~` holds ~/.local/share/entraclaw) could
  // `mv ~/.local ~/x`, and the real directory would sit unmasked at ~/x/share/entraclaw for the next run.
  // Each directory between a writable root and a mask becomes a mount point of its own (a bind onto
  // itself, as writable as before), which rename(2) refuses with EBUSY.
  for (const a of ancestorsToPin([...masks.dirs, ...masks.files], [layout.project, ...layout.allowPaths])) {
    args.push('--bind', a, a);
  }
  for (const d of masks.dirs) args.push('--tmpfs', d);
  for (const f of masks.files) args.push('--ro-bind', '/dev/null', f);
  if (layout.seccompFd !== undefined) args.push('--seccomp', String(layout.seccompFd));
  if (layout.infoFd !== undefined) args.push('--info-fd', String(layout.infoFd));
  if (layout.blockFd !== undefined) args.push('--block-fd', String(layout.blockFd));
  args.push('--chdir', layout.project);
  return args;
}

/** The environment inside: no bus address, no Entraclaw secrets config, the shims first on PATH. */
export function sandboxEnv(base: NodeJS.ProcessEnv, home: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (
      v === undefined ||
      k.startsWith('ENTRACLAW_') ||
      k.startsWith('DBUS_') ||
      k === 'GNOME_KEYRING_CONTROL' ||
      k === 'SSH_AUTH_SOCK'
    ) {
      continue;
    }
    env[k] = v;
  }
  env.HOME = home;
  env.PATH = `${SANDBOX_BIN}:${base.PATH ?? '/usr/bin:/bin'}`;
  env.ENTRACLAW_SOCKET = SANDBOX_SOCKET;
  return env;
}

/**
 * The socket paths of a D-Bus address (`unix:path=...`, `;`-separated alternatives), and whether it also
 * names a bus that only a network namespace can cut off (an abstract socket or TCP).
 */
export function dbusAddressSockets(address: string | undefined): { paths: string[]; needsNetns: boolean } {
  const paths: string[] = [];
  let needsNetns = false;
  for (const entry of (address ?? '').split(';')) {
    const colon = entry.indexOf(':');
    if (colon < 0) continue;
    const transport = entry.slice(0, colon);
    const keys = new Map(
      entry
        .slice(colon + 1)
        .split(',')
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
    );
    if (transport === 'unix' && keys.has('path')) paths.push(unescapeDbus(keys.get('path')!));
    if ((transport === 'unix' && keys.has('abstract')) || transport === 'tcp' || transport === 'nonce-tcp') {
      needsNetns = true;
    }
  }
  return { paths, needsNetns };
}

// D-Bus addresses %-escape bytes outside [-0-9A-Za-z_/.\*].
function unescapeDbus(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function checkLayout(layout: SandboxLayout, hidden: string[]): void {
  const writable = [
    ['--project', layout.project],
    ...layout.allowPaths.map((p) => ['an allowed path', p]),
    ...layout.readPaths.map((p) => ['a read path', p]),
  ] as const;
  for (const [what, p] of writable) {
    if (p === '/') throw new UsageError(`${what} cannot be /`, 'give the sandbox a project directory');
    // The sandbox has a /proc of its own; the host's would show every process (argv, environment names)
    // and /proc/keys over the masks.
    if (isUnder(p, '/proc')) {
      throw new UsageError(`${what} ${p} is the host's /proc`, 'the sandbox has its own /proc; remove it');
    }
    const inside = hidden.find((h) => isUnder(p, h));
    if (inside) {
      throw new UsageError(
        `${what} ${p} is inside ${inside}, which the sandbox must hide`,
        'choose a directory that does not hold Entraclaw or keyring files',
      );
    }
  }
}

/**
 * The directories strictly between a writable root and a path under it, for every such pair, parents
 * first: the ones a command could rename to carry a mask away.
 */
export function ancestorsToPin(paths: readonly string[], writableRoots: readonly string[]): string[] {
  const found = new Set<string>();
  for (const p of paths) {
    for (const root of writableRoots) {
      if (p === root || !isUnder(p, root)) continue;
      for (let a = dirname(p); a !== root && isUnder(a, root); a = dirname(a)) found.add(a);
    }
  }
  return [...found].sort((x, y) => x.split('/').length - y.split('/').length || x.localeCompare(y));
}

/** Whether `path` is one of `dirs` or inside one of them (plain path comparison, no resolving). */
export function isUnderAny(path: string, dirs: readonly string[]): boolean {
  return dirs.some((d) => isUnder(path, d));
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir.replace(/\/$/, '')}/`);
}
