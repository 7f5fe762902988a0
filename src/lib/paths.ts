import { realpathSync } from 'node:fs';
import { userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

/** Per-user directories (XDG on Linux, ~/Library on macOS), resolved from the given environment. */
export interface Paths {
  config: string;
  data: string;
  state: string;
  runtime: string;
}

/** Resolves Entraclaw's config, data, state and runtime directories for the given environment. */
export function resolvePaths(env: NodeJS.ProcessEnv = process.env, platform = process.platform): Paths {
  // Looked up only when an XDG variable does not say: with all of them set, no home is needed at all.
  let known: string | undefined;
  const home = () => (known ??= homeDir(env));
  const xdg = (name: string) => xdgDir(env[name]);
  if (platform === 'darwin') {
    const support = join(home(), 'Library', 'Application Support', 'entraclaw');
    return {
      config: join(xdg('XDG_CONFIG_HOME') ?? join(home(), '.config'), 'entraclaw'),
      data: support,
      state: support,
      runtime: support,
    };
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return {
    config: join(xdg('XDG_CONFIG_HOME') ?? join(home(), '.config'), 'entraclaw'),
    data: join(xdg('XDG_DATA_HOME') ?? join(home(), '.local', 'share'), 'entraclaw'),
    state: join(xdg('XDG_STATE_HOME') ?? join(home(), '.local', 'state'), 'entraclaw'),
    runtime: join(xdg('XDG_RUNTIME_DIR') ?? join('/tmp', `entraclaw-${uid}`), 'entraclaw'),
  };
}

/**
 * The user's home: $HOME when it is absolute, else the account's home from the user database. A relative
 * $HOME (as a relative XDG variable) would put the vault and config wherever a command happens to run, and
 * os.homedir() returns $HOME as given. Neither (`env -i` under a uid the container's /etc/passwd lacks) is
 * a UsageError saying what to set.
 */
export function homeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HOME && isAbsolute(env.HOME)) return env.HOME;
  let home: string | undefined;
  try {
    home = userInfo().homedir;
  } catch {
    // No entry for this uid: said below, as an empty or relative one is.
  }
  if (home && isAbsolute(home)) return home;
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  throw new UsageError(
    `cannot tell your home directory: $HOME is ${env.HOME ? `relative ("${env.HOME}")` : 'not set'} and uid ${uid} has no home in the user database`,
    'set HOME to your home directory (an absolute path), or set XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_STATE_HOME',
  );
}

/**
 * An XDG base directory variable's value, or undefined when unset or relative: the spec says a relative
 * path is invalid and ignored (taken as given, it would put a vault wherever a command happens to run).
 */
export function xdgDir(value: string | undefined): string | undefined {
  return value && isAbsolute(value) ? value : undefined;
}

/** The canonical form of `path` when it exists (symlinks resolved), else just the absolute path. */
export function canonicalIfExists(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}
