// THE one place that builds a child process's environment. Every path that starts a user's command
// with secrets (`entraclaw run`, the shims) goes through buildChildEnv; nothing else may hand-roll env.
//
// Threat model. The child is the user's own command and is trusted with the secrets it is given. What
// we defend against:
//  1. Untrusted *inputs* to the environment. A .env file usually comes with a repository (someone
//     else's text), and a secret's value may have been written by another process (an agent with write
//     access). If either could set LD_PRELOAD, NODE_OPTIONS, BASH_ENV, ... it would run its own code
//     inside a process that now holds every injected secret. So loader and code-injection variables are
//     taken ONLY from the user's own environment (`base`): there they are the user's choice for their
//     own command and pass through untouched. A .env file or --env flag that sets one, or a reference
//     that would fill one with a secret, is a UsageError naming the variable — never silently dropped,
//     because dropping it would run the command differently from what the user asked for.
//  2. Leaking Entraclaw's own control variables. ENTRACLAW_* (the passphrase file's location, the
//     daemon socket, ...) are removed so a child cannot find or drive the broker by accident; a caller
//     keeps one (e.g. ENTRACLAW_SOCKET for a nested `entraclaw`) only by naming it. A .env file may
//     never set one.
//  3. Secrets that cannot live in an environment. Values must be UTF-8 text without NUL; anything else
//     is a UsageError pointing at `entraclaw inject`, which writes bytes to a file instead.
// Out of scope: other processes of the same user reading /proc/<pid>/environ (same uid, same trust),
// and what the child does with its secrets.
//
// Only a variable whose WHOLE value is a reference is replaced (like `op run`); a reference embedded
// in a longer value is left as text — interpolation belongs to `inject` templates.
import { EntraclawError, UsageError } from '../errors.js';
import {
  formatReference,
  MISTYPED_SCHEME,
  parseReference,
  REFERENCE_SCHEME,
  type Reference,
} from './reference.js';

/** Prefix of Entraclaw's own variables, which children do not inherit by default. */
export const ENTRACLAW_PREFIX = 'ENTRACLAW_';

/**
 * Prefixes of loader/injection variables: dynamic linkers, exported bash functions, git's config from
 * the environment (GIT_CONFIG_KEY_0=core.sshCommand ...), Lua's start-up code and module paths (also
 * their _5_4-style versions), npm's config (npm_config_script_shell) and pip's (PIP_INDEX_URL).
 */
export const INJECTION_PREFIXES: readonly string[] = [
  'LD_',
  'DYLD_',
  'BASH_FUNC_',
  'GIT_CONFIG',
  'LUA_INIT',
  'LUA_PATH',
  'LUA_CPATH',
  'NPM_CONFIG_',
  'PIP_',
];

/**
 * Exact names (upper case) of variables that make an interpreter, shell, libc or common tool load and
 * run code of the value's choosing, pick which program is run (PATH, editors, pagers, askpass, git's
 * ssh, compilers), redirect where code or config is loaded from (HOME, XDG_CONFIG_HOME, GIT_DIR,
 * KUBECONFIG, ...), or who may read the secrets in transit (TLS trust, key logs, proxies).
 */
export const INJECTION_NAMES: readonly string[] = [
  'PATH',
  'HOME',
  'XDG_CONFIG_HOME',
  'NODE_OPTIONS',
  'NODE_PATH',
  'NODE_REPL_EXTERNAL_MODULE',
  'PYTHONSTARTUP',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONUSERBASE',
  'PYTHONPYCACHEPREFIX',
  'PYTHONINSPECT',
  'PYTHONWARNINGS',
  'PYTHONBREAKPOINT',
  'PERL5OPT',
  'PERL5LIB',
  'PERLLIB',
  'PERL5DB',
  'RUBYOPT',
  'RUBYLIB',
  'RUBYGEMS_GEMDEPS',
  'GEM_HOME',
  'GEM_PATH',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'JDK_JAVA_OPTIONS',
  'CLASSPATH',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_EXEC_PATH',
  'GIT_EXTERNAL_DIFF',
  'GIT_PROXY_COMMAND',
  'GIT_TEMPLATE_DIR',
  'GIT_ASKPASS',
  'GIT_EDITOR',
  'GIT_PAGER',
  'GIT_SSL_NO_VERIFY',
  'GIT_SSL_CAINFO',
  'SSH_ASKPASS',
  'SUDO_ASKPASS',
  'EDITOR',
  'VISUAL',
  'PAGER',
  'MANPAGER',
  'BROWSER',
  'ZDOTDIR',
  'GIO_MODULE_DIR',
  'GIO_EXTRA_MODULES',
  'GTK_PATH',
  'GTK_MODULES',
  'GTK_EXE_PREFIX',
  'QT_PLUGIN_PATH',
  'QT_QPA_PLATFORM_PLUGIN_PATH',
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_COMMON_DIR',
  'GIT_SSL_CAPATH',
  'MAKEFILES',
  'MAKEFLAGS',
  'MFLAGS',
  'KUBECONFIG',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_CA_BUNDLE',
  'LESSOPEN',
  'LESSCLOSE',
  'WGETRC',
  'CURL_HOME',
  'CC',
  'CXX',
  'RUSTC',
  'RUSTC_WRAPPER',
  'CARGO_HOME',
  'GOFLAGS',
  'DOTNET_STARTUP_HOOKS',
  'CORECLR_ENABLE_PROFILING',
  'CORECLR_PROFILER',
  'CORECLR_PROFILER_PATH',
  'PHPRC',
  'PHP_INI_SCAN_DIR',
  'GRADLE_OPTS',
  'GRADLE_USER_HOME',
  'MAVEN_OPTS',
  'OPENSSL_CONF',
  'OPENSSL_MODULES',
  'OPENSSL_ENGINES',
  'SSLKEYLOGFILE',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'ALL_PROXY',
  'NODE_TLS_REJECT_UNAUTHORIZED',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
  'BASH_ENV',
  'ENV',
  'PROMPT_COMMAND',
  'PS4',
  'SHELLOPTS',
  'BASHOPTS',
  'GCONV_PATH',
  'GLIBC_TUNABLES',
  'LOCPATH',
  'NLSPATH',
];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// ignoreBOM keeps a leading U+FEFF: it is part of the secret, not an encoding marker.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Options for buildChildEnv. */
export interface ChildEnvOptions {
  /** Secret bytes for every reference in `base` and `overlay`, keyed by formatReference(ref). */
  resolved: ReadonlyMap<string, Buffer>;
  /** Variables from .env files and --env flags, in order; later entries win. Applied over `base`. */
  overlay?: ReadonlyArray<readonly [string, string]>;
  /** Remove ENTRACLAW_* variables (default true). */
  dropEntraclaw?: boolean;
  /** ENTRACLAW_* variables to keep anyway, e.g. ['ENTRACLAW_SOCKET']. */
  keep?: readonly string[];
}

type MergeOptions = Pick<ChildEnvOptions, 'overlay' | 'dropEntraclaw' | 'keep'>;

/** Whether `name` is a loader or code-injection variable (see INJECTION_PREFIXES and INJECTION_NAMES). */
export function isInjectionVariable(name: string): boolean {
  // Matched whatever the case: npm reads Npm_Config_*, curl reads https_proxy, and Windows-born tools
  // fold case; refusing a harmless lower-case twin costs nothing.
  const upper = name.toUpperCase();
  return INJECTION_NAMES.includes(upper) || INJECTION_PREFIXES.some((p) => upper.startsWith(p));
}

/** The distinct references a child environment needs resolved, in first-seen order. */
export function envReferences(base: NodeJS.ProcessEnv, options: MergeOptions = {}): Reference[] {
  const seen = new Map<string, Reference>();
  for (const [name, value] of mergedEntries(base, options)) {
    if (!isReference(name, value)) continue;
    const ref = parseReference(value, name);
    seen.set(formatReference(ref), ref);
  }
  return [...seen.values()];
}

/**
 * Variables whose value holds a reference inside a longer text (`URL=https://x/?t=entraclaw://...`): passed
 * on as written, since only a whole value is replaced, so a caller can say so rather than stay silent.
 */
export function embeddedReferences(base: NodeJS.ProcessEnv, options: MergeOptions = {}): string[] {
  const names: string[] = [];
  for (const [name, value] of mergedEntries(base, options)) {
    if (!value.startsWith(REFERENCE_SCHEME) && value.toLowerCase().includes(REFERENCE_SCHEME))
      names.push(name);
  }
  return names;
}

/** Builds a child's environment: references resolved, ENTRACLAW_* removed, injection variables policed. */
export function buildChildEnv(base: NodeJS.ProcessEnv, options: ChildEnvOptions): Record<string, string> {
  const env: Record<string, string> = Object.create(null);
  for (const [name, value] of mergedEntries(base, options)) {
    if (!isReference(name, value)) {
      env[name] = value;
      continue;
    }
    // A user's own LD_PRELOAD is theirs to set, but never to a secret someone else may have written.
    if (isInjectionVariable(name)) throw injectionError(name);
    env[name] = secretText(name, parseReference(value, name), options.resolved);
  }
  return env;
}

// A reference in another case (ENTRACLAW://...), after white space (`--env 'T= entraclaw://...'`) or after
// a quote (`--env 'T="entraclaw://..."'`, or a .env line whose closing quote is missing, which dotenv keeps
// as text), or with a slash too few or no colon (`entraclaw:/svc/acct`), is a typo that would hand the child the literal text: refused, naming the variable but not
// echoing the value.
function isReference(name: string, value: string): boolean {
  if (value.startsWith(REFERENCE_SCHEME)) return true;
  const start = value.replace(/^[\s"'`]+/, '');
  if (MISTYPED_SCHEME.test(start.replace(/["'`]+$/, ''))) {
    throw new UsageError(
      `${name}: a reference starts with ${REFERENCE_SCHEME} (a colon and two slashes); passed on as written, the command would get the text`,
      `write ${REFERENCE_SCHEME}SERVICE/ACCOUNT as the whole value`,
    );
  }
  if (start.slice(0, REFERENCE_SCHEME.length).toLowerCase() !== REFERENCE_SCHEME) return false;
  const before = value.slice(0, value.length - start.length);
  const quoted = /["'`]/.test(before);
  throw new UsageError(
    before === ''
      ? `${name}: a reference's scheme is written in lower case`
      : quoted
        ? `${name}: a quote before a reference is part of the value (only a whole value is a reference)`
        : `${name}: white space before a reference (only a whole value is a reference)`,
    `write ${REFERENCE_SCHEME}SERVICE/ACCOUNT as the whole value${quoted ? ', with no quotes of its own (in a .env file, close a quote you open)' : ''}`,
  );
}

/** Base then overlay, ENTRACLAW_* filtered; the overlay is checked here so no caller can skip it. */
function mergedEntries(
  base: NodeJS.ProcessEnv,
  { overlay = [], dropEntraclaw = true, keep = [] }: MergeOptions,
): Map<string, string> {
  const merged = new Map<string, string>();
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined) continue;
    if (dropEntraclaw && name.startsWith(ENTRACLAW_PREFIX) && !keep.includes(name)) continue;
    merged.set(name, value);
  }
  for (const [name, value] of overlay) {
    if (!NAME.test(name)) {
      throw new UsageError(`"${name}" is not a valid environment variable name`, 'use letters, digits and _');
    }
    if (name.startsWith(ENTRACLAW_PREFIX)) {
      throw new UsageError(
        `${name} cannot be set from a .env file or --env`,
        'Entraclaw variables come only from your own environment',
      );
    }
    if (isInjectionVariable(name)) throw injectionError(name);
    merged.set(name, value);
  }
  return merged;
}

function secretText(name: string, ref: Reference, resolved: ReadonlyMap<string, Buffer>): string {
  const key = formatReference(ref);
  const bytes = resolved.get(key);
  if (bytes === undefined) {
    throw new EntraclawError('internal', `${name}: ${key} was not resolved before building the environment`);
  }
  const text = decodeText(bytes);
  if (text === undefined) {
    throw new UsageError(
      `${name}: the secret ${key} is not UTF-8 text without NUL bytes, so it cannot be an environment variable`,
      'use `entraclaw inject` to write it to a file instead',
    );
  }
  return text;
}

/** The bytes as a string, or undefined when they are not UTF-8 or contain NUL (execve cannot pass NUL). */
function decodeText(bytes: Buffer): string | undefined {
  try {
    const text = utf8.decode(bytes);
    return text.includes('\0') ? undefined : text;
  } catch {
    return undefined;
  }
}

function injectionError(name: string): UsageError {
  return new UsageError(
    `${name} can change which code the command runs, so it may come only from your own environment, not from a .env file, --env or a secret`,
    `export ${name} yourself before running the command if you mean it`,
  );
}
