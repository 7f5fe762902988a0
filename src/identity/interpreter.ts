// Deciding what code a process runs from its executable name, argv and initial environment. For an
// interpreter the executable alone says nothing: `node` may run an approved script, inline code or
// a preloaded module. So we find the script argument exactly as the interpreter would, and refuse
// anything that runs code from elsewhere (inline code, preloads, loaders, debuggers, stdin, injection
// through the environment). Options are allowlisted: an option we do not know might take a value or
// load code, and guessing wrong would name the wrong script, so an unknown option is a refusal.
//
// This is pure: argv and environ come from /proc, which the process itself can rewrite, so the
// checks stop accidents and naive injection, not a same-user attacker (out of scope, see peer.ts).

/** What the process runs: a plain binary, an interpreter running a script file, or something we refuse. */
export type CommandAnalysis =
  | { kind: 'binary' }
  | { kind: 'script'; scriptArg: string }
  | { kind: 'refused'; reason: string };

/** How one interpreter family parses options before the script argument. */
interface OptionTable {
  /** Options that run code from somewhere other than the script file, with the reason. */
  refused: Readonly<Record<string, string>>;
  /** Families of refused long options, matched by prefix (`--inspect-brk`, `--debug-port`). */
  refusedPrefixes?: readonly (readonly [prefix: string, reason: string])[];
  /** Options without a value. */
  flags: ReadonlySet<string>;
  /** Options with a value, attached (`--x=v`, `-Xv`) or as the next argument. */
  valued: ReadonlySet<string>;
  /** Long options whose value must be attached with `=` (node's V8 options). */
  equalsOnly?: ReadonlySet<string>;
  /** Short options with an optional attached value (`perl -l0`, `ruby -W2`): the pattern is what they consume. */
  attached?: ReadonlyMap<string, RegExp>;
  /** Families of harmless long options, matched by prefix; a value must be attached with `=`. */
  flagPrefixes?: readonly string[];
  /** Values of a valued short option that load code from elsewhere (`python3 -X pycache_prefix=DIR`). */
  refusedValues?: ReadonlyMap<string, readonly (readonly [value: RegExp, reason: string])[]>;
  /** Short options may be grouped (`python3 -uB`); otherwise each argument is one option. */
  grouped: boolean;
  /**
   * Shell rules: `+x` options exist, a lone `-` ends the options like `--`, and a valued short option
   * always takes the next argument while the rest of its group stays options (`bash -eo pipefail`).
   */
  shell?: boolean;
  /** Long option names treat `_` as `-` (node: `--inspect_brk` is `--inspect-brk`). */
  underscores?: boolean;
}

/** An interpreter family: which executables, which variables inject code, how to find the script. */
interface Interpreter {
  name: string;
  match: RegExp;
  env: readonly string[];
  envPrefixes?: readonly string[];
  /** A shell: an argv[0] starting with `-` makes it a login shell (the profile scripts run first). */
  loginByArgv0?: boolean;
  findScript(args: readonly string[]): CommandAnalysis;
}

// The dynamic loader honours these for every program, binaries included.
const LOADER_ENV = ['LD_PRELOAD', 'LD_AUDIT', 'LD_LIBRARY_PATH'];
const LOADER_ENV_PREFIXES = ['DYLD_'];
// Libraries nearly every program links load code named by these: OpenSSL's config can load a provider
// or engine (node honours it although --openssl-config is refused), glibc's iconv loads GCONV_PATH modules.
const LIBRARY_ENV = ['OPENSSL_CONF', 'OPENSSL_MODULES', 'OPENSSL_ENGINES', 'GCONV_PATH'];

const INLINE = 'runs inline code, not a script file; put the code in a script and approve that';
const PRELOAD = 'loads extra code before the script; run the script without it';
const STDIN = 'reads its program from stdin, which cannot be verified; run a script file';
const DEBUGGER = 'opens a debugger that can run any code; run without it';
const LOGIN = 'is a login shell, which runs the profile scripts first; run the script directly';
const INTERACTIVE = 'starts an interactive prompt; run a script file';
const NOT_A_RUN = 'does not run a script file';

const refused = (reason: string): CommandAnalysis => ({ kind: 'refused', reason });

/** Walks the options before the script and returns the script argument, or why there is none we trust. */
function scan(name: string, args: readonly string[], t: OptionTable): CommandAnalysis {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--' || (t.shell && arg === '-')) return script(name, args[i + 1]);
    if (arg === '-') return refused(`${name} - ${STDIN}`);
    const optionish = arg.startsWith('-') || (t.shell === true && arg.startsWith('+'));
    if (!optionish) return script(name, arg);
    if (arg.startsWith('--') || !t.grouped) {
      const step = longOption(name, arg, args[i + 1], t);
      if (typeof step !== 'number') return step;
      i += step;
      continue;
    }
    const step = shortCluster(name, args, i, t);
    if (typeof step !== 'number') return step;
    i += step;
  }
  return refused(`${name} was given no script file; ${STDIN}`);
}

function script(name: string, arg: string | undefined): CommandAnalysis {
  if (arg === undefined) return refused(`${name} was given no script file; ${STDIN}`);
  if (arg === '-') return refused(`${name} - ${STDIN}`);
  // libuv and setproctitle overwrite argv with the title and NUL padding, leaving empty arguments.
  if (arg === '') {
    return refused(
      `${name} has an empty script argument: the process rewrote its command line (process.title?), so its script is unknown; run it without changing its title`,
    );
  }
  return { kind: 'script', scriptArg: arg };
}

/** One `--opt[=v]` (or, for non-grouping parsers, `-o[=v]`); returns how many extra arguments it used. */
function longOption(
  name: string,
  arg: string,
  next: string | undefined,
  t: OptionTable,
): number | CommandAnalysis {
  const eq = arg.indexOf('=');
  let opt = eq < 0 ? arg : arg.slice(0, eq);
  if (t.underscores && opt.startsWith('--')) opt = `--${opt.slice(2).replaceAll('_', '-')}`;
  const bad = t.refused[opt] ?? t.refusedPrefixes?.find(([p]) => opt.startsWith(p))?.[1];
  if (bad) return refused(`${name} ${opt} ${bad}`);
  if (t.flags.has(opt) && eq < 0) return 0;
  if (t.equalsOnly?.has(opt))
    return eq < 0 ? refused(`${name} ${opt} takes its value only as ${opt}=VALUE; pass it that way`) : 0;
  if (t.valued.has(opt)) {
    if (eq >= 0) return 0;
    return next === undefined
      ? refused(`${name} ${opt} is missing its value; pass one or drop the option`)
      : 1;
  }
  if (t.flagPrefixes?.some((p) => arg.startsWith(p))) return 0;
  return unknown(name, opt);
}

/** One group of short options (`-uBW ignore`); returns how many extra arguments it used. */
function shortCluster(
  name: string,
  args: readonly string[],
  i: number,
  t: OptionTable,
): number | CommandAnalysis {
  const arg = args[i]!;
  const sign = arg[0]!;
  let used = 0;
  for (let j = 1; j < arg.length; j++) {
    const opt = `${sign}${arg[j]}`;
    const key = `-${arg[j]}`;
    const bad = t.refused[key];
    if (bad) return refused(`${name} ${opt} ${bad}`);
    if (t.flags.has(key)) continue;
    const attached = t.attached?.get(key);
    if (attached) {
      j += attached.exec(arg.slice(j + 1))![0].length;
      continue;
    }
    if (!t.valued.has(key)) return unknown(name, opt);
    if (t.shell) {
      used++;
      if (i + used >= args.length)
        return refused(`${name} ${opt} is missing its value; pass one or drop the option`);
      continue;
    }
    const value = j + 1 < arg.length ? arg.slice(j + 1) : args[i + 1];
    if (value === undefined)
      return refused(`${name} ${opt} is missing its value; pass one or drop the option`);
    const badValue = t.refusedValues?.get(key)?.find(([re]) => re.test(value));
    if (badValue) return refused(`${name} ${opt} ${value} ${badValue[1]}`);
    return j + 1 < arg.length ? used : 1;
  }
  return used;
}

function unknown(name: string, opt: string): CommandAnalysis {
  return refused(
    `${name} option ${opt} before the script is not recognised, so which code runs is ambiguous; run without it`,
  );
}

const set = (...items: string[]): ReadonlySet<string> => new Set(items);

const NODE: OptionTable = {
  grouped: false,
  underscores: true,
  refused: {
    '-e': INLINE,
    '--eval': INLINE,
    '-p': INLINE,
    '--print': INLINE,
    '-pe': INLINE,
    '-i': INTERACTIVE,
    '--interactive': INTERACTIVE,
    '-r': PRELOAD,
    '--require': PRELOAD,
    '--import': PRELOAD,
    '--loader': 'installs a module loader that can replace any code; run without it',
    '--experimental-loader': 'installs a module loader that can replace any code; run without it',
    '--env-file': 'loads variables (NODE_OPTIONS too) from a file we cannot see; export them instead',
    '--env-file-if-exists':
      'loads variables (NODE_OPTIONS too) from a file we cannot see; export them instead',
    '--snapshot-blob': 'starts from a heap snapshot rather than the script; run without it',
    '--openssl-config': 'loads an OpenSSL config, which can load native code; run without it',
    '-c': NOT_A_RUN,
    '--check': NOT_A_RUN,
    '--test': NOT_A_RUN,
    '--run': 'runs a package.json script, not a script file',
  },
  refusedPrefixes: [
    ['--inspect', DEBUGGER],
    ['--debug', DEBUGGER],
  ],
  flags: set(
    '--no-warnings',
    '--no-deprecation',
    '--trace-warnings',
    '--trace-deprecation',
    '--throw-deprecation',
    '--pending-deprecation',
    '--trace-uncaught',
    '--trace-exit',
    '--trace-sigint',
    '--enable-source-maps',
    '--preserve-symlinks',
    '--preserve-symlinks-main',
    '--abort-on-uncaught-exception',
    '--expose-gc',
    '--zero-fill-buffers',
    '--jitless',
    '--no-addons',
    '--frozen-intrinsics',
    '--experimental-vm-modules',
    '--experimental-wasm-modules',
    '--experimental-json-modules',
    '--experimental-import-meta-resolve',
    '--experimental-detect-module',
    '--experimental-permission',
    '--permission',
    '--allow-child-process',
    '--allow-worker',
    '--allow-addons',
    '--allow-wasi',
    '--force-fips',
    '--enable-fips',
    '--report-on-fatalerror',
    '--report-uncaught-exception',
    '--report-on-signal',
    '--report-compact',
    '--cpu-prof',
    '--heap-prof',
    '--use-strict',
    '--no-global-search-paths',
    '--watch',
    '--watch-preserve-output',
    '--tls-min-v1.0',
    '--tls-min-v1.1',
    '--tls-min-v1.2',
    '--tls-min-v1.3',
    '--tls-max-v1.2',
    '--tls-max-v1.3',
  ),
  valued: set(
    '--title',
    '--unhandled-rejections',
    '--dns-result-order',
    '--diagnostic-dir',
    '--heapsnapshot-signal',
    '--heapsnapshot-near-heap-limit',
    '-C',
    '--conditions',
    '--secure-heap',
    '--secure-heap-min',
    '--v8-pool-size',
    '--max-http-header-size',
    '--experimental-default-type',
    '--disable-proto',
    '--input-type',
    '--report-dir',
    '--report-directory',
    '--report-filename',
    '--report-signal',
    '--cpu-prof-dir',
    '--cpu-prof-name',
    '--cpu-prof-interval',
    '--heap-prof-dir',
    '--heap-prof-name',
    '--heap-prof-interval',
    '--tls-cipher-list',
    '--tls-keylog',
    '--icu-data-dir',
    '--redirect-warnings',
    '--trace-event-categories',
    '--trace-event-file-pattern',
    '--watch-path',
    '--allow-fs-read',
    '--allow-fs-write',
  ),
  // V8's own options: node hands them to V8, which takes a value only as `--opt=value`.
  equalsOnly: set('--max-old-space-size', '--max-semi-space-size', '--stack-size', '--stack-trace-limit'),
};

const PYTHON: OptionTable = {
  grouped: true,
  refused: {
    '-c': INLINE,
    '-m': 'runs a module, not a script file; approve the script path instead',
    '-i': INTERACTIVE,
    '-h': NOT_A_RUN,
    '-V': NOT_A_RUN,
  },
  flags: set('-b', '-B', '-d', '-E', '-I', '-O', '-P', '-q', '-s', '-S', '-u', '-v', '-x'),
  valued: set('-W', '-X', '--check-hash-based-pycs'),
  refusedValues: new Map([
    [
      '-X',
      [
        [
          /^pycache_prefix(=|$)/,
          'reads compiled modules (the standard library too) from another directory; run without it',
        ],
      ],
    ],
  ]),
};

const RUBY: OptionTable = {
  grouped: true,
  refused: {
    '-e': INLINE,
    '-r': PRELOAD,
    '-I': 'adds a library path ahead of the standard one; run without it',
    '-C': 'changes directory before finding the script; run it by its own path',
    '-S': 'looks the script up in PATH; run it by its own path',
    '-x': 'starts the program part-way into the file; run the script directly',
  },
  flags: set('-w', '-v', '-d', '-s', '-U', '--verbose', '--debug', '--disable-gems', '--jit', '--yjit'),
  valued: set('-E', '--encoding', '--external-encoding', '--internal-encoding'),
  attached: new Map([['-W', /^(:.*|\d?)/]]),
  flagPrefixes: ['--disable=', '--enable=', '--disable-', '--enable-', '--yjit-', '--jit-'],
};

const PERL: OptionTable = {
  grouped: true,
  refused: {
    '-e': INLINE,
    '-E': INLINE,
    '-M': PRELOAD,
    '-m': PRELOAD,
    '-I': 'adds a library path ahead of the standard one; run without it',
    '-d': DEBUGGER,
    '-S': 'looks the script up in PATH; run it by its own path',
    '-x': 'starts the program part-way into the file; run the script directly',
  },
  flags: set('-w', '-W', '-X', '-T', '-t', '-s'),
  valued: set(),
  // -l takes octal digits and the group goes on (-lw); -C takes the rest of the group.
  attached: new Map([
    ['-l', /^[0-7]*/],
    ['-C', /^.*/],
  ]),
};

const SHELL: OptionTable = {
  grouped: true,
  shell: true,
  refused: {
    '-c': INLINE,
    '-i': INTERACTIVE,
    '-s': STDIN,
    '-l': LOGIN,
    '--login': LOGIN,
    '--rcfile': 'runs a startup file first; run without it',
    '--init-file': 'runs a startup file first; run without it',
    '--debugger': DEBUGGER,
  },
  flags: set(
    '-a',
    '-b',
    '-B',
    '-C',
    '-e',
    '-E',
    '-f',
    '-h',
    '-H',
    '-k',
    '-m',
    '-n',
    '-p',
    '-P',
    '-r',
    '-t',
    '-T',
    '-u',
    '-v',
    '-x',
    '--norc',
    '--noprofile',
    '--posix',
    '--noediting',
    '--restricted',
    '--verbose',
  ),
  valued: set('-o', '-O'),
};

const ZSH: OptionTable = {
  grouped: true,
  shell: true,
  refused: {
    '-c': INLINE,
    '-i': INTERACTIVE,
    '-s': STDIN,
    '-l': LOGIN,
    '--login': LOGIN,
  },
  flags: set('-e', '-f', '-n', '-u', '-v', '-x'),
  valued: set('-o'),
};

const DENO_RUN: OptionTable = {
  grouped: false,
  refused: {
    '--eval': INLINE,
    '--env': 'loads variables from a file we cannot see; export them instead',
    '--env-file': 'loads variables from a file we cannot see; export them instead',
    '--preload': PRELOAD,
    '--import': PRELOAD,
  },
  refusedPrefixes: [['--inspect', DEBUGGER]],
  flags: set(
    '-A',
    '--allow-all',
    '-q',
    '--quiet',
    '--no-check',
    '--check',
    '-r',
    '--reload',
    '--unstable',
    '--no-remote',
    '--no-npm',
    '--cached-only',
    '--no-lock',
    '--lock',
    '--frozen',
    '--no-config',
    '--no-prompt',
    '--watch',
  ),
  valued: set(
    '-c',
    '--config',
    '--import-map',
    '--cert',
    '--location',
    '--seed',
    '--ext',
    '--node-modules-dir',
  ),
  flagPrefixes: ['--allow-', '--deny-', '--unstable-', '--check=', '--reload=', '--lock=', '--frozen='],
};

const BUN_RUN: OptionTable = {
  grouped: false,
  refused: {
    '-e': INLINE,
    '--eval': INLINE,
    '-p': INLINE,
    '--print': INLINE,
    '-r': PRELOAD,
    '--preload': PRELOAD,
    '--env-file': 'loads variables from a file we cannot see; export them instead',
    '-c': 'reads a bunfig that can preload code; run without it',
    '--config': 'reads a bunfig that can preload code; run without it',
    '--cwd': 'changes directory before finding the script; run it by its own path',
    '-d': 'rewrites identifiers in the code (--define); run without it',
    '--define': 'rewrites identifiers in the code (--define); run without it',
    '--tsconfig-override': 'changes how the code is compiled; run without it',
  },
  refusedPrefixes: [['--inspect', DEBUGGER]],
  flags: set('--smol', '--bun', '-b', '--silent', '--watch', '--hot', '--no-install', '--no-clear-screen'),
  valued: set('--conditions'),
};

// Subcommands that exist but do not run a script file: a file of the same name would lose to them.
const DENO_COMMANDS = new Set(
  'add bench cache check clean compile completions coverage doc eval fmt info init install jupyter lint lsp outdated publish remove repl serve task test types uninstall upgrade vendor'.split(
    ' ',
  ),
);
const BUN_COMMANDS = new Set(
  'add audit build create exec info init install link outdated patch pm publish remove repl test unlink update upgrade why x'.split(
    ' ',
  ),
);

// A specifier with a scheme (https:, npm:, jsr:, data:) is fetched or resolved, not read from a file.
const REMOTE = /^[a-z][a-z0-9+.-]+:/i;

function localScript(name: string, result: CommandAnalysis): CommandAnalysis {
  if (result.kind === 'script' && REMOTE.test(result.scriptArg)) {
    return refused(
      `${name} runs the remote module ${result.scriptArg}, which cannot be pinned; run a local file`,
    );
  }
  return result;
}

/** `deno run [opts] script`, or deno 2's bare `deno [opts] script`. */
function denoScript(args: readonly string[]): CommandAnalysis {
  const first = args[0];
  if (first === 'run') return localScript('deno run', scan('deno run', args.slice(1), DENO_RUN));
  if (first === 'eval') return refused(`deno eval ${INLINE}`);
  if (first !== undefined && DENO_COMMANDS.has(first)) return refused(`deno ${first} ${NOT_A_RUN}`);
  return localScript('deno', scan('deno', args, DENO_RUN));
}

/** `bun run [opts] script`, or the bare `bun [opts] script`. */
function bunScript(args: readonly string[]): CommandAnalysis {
  const first = args[0];
  if (first === 'run') return localScript('bun run', scan('bun run', args.slice(1), BUN_RUN));
  if (first !== undefined && BUN_COMMANDS.has(first)) return refused(`bun ${first} ${NOT_A_RUN}`);
  return localScript('bun', scan('bun', args, BUN_RUN));
}

/**
 * `node [opts] script [args]`. Node 20 also acts on `--env-file F` (and `--env-file-if-exists`) found
 * anywhere before the first `--`, the script's own arguments included (nodejs/node#54232): it loads F into
 * its environment before running anything, and a NODE_OPTIONS there (`--require evil.cjs`) runs code we
 * never see, since /proc/PID/environ keeps the environment the process started with.
 */
function nodeScript(args: readonly string[]): CommandAnalysis {
  const found = scan('node', args, NODE);
  if (found.kind !== 'script') return found;
  const end = args.indexOf('--');
  const envFile = (end < 0 ? args : args.slice(0, end)).find((a) => /^--env-file(-if-exists)?(=|$)/.test(a));
  if (envFile === undefined) return found;
  return refused(
    `node ${envFile} is read by node even after the script, and loads variables (NODE_OPTIONS too) from a file we cannot see; export them instead, or put -- before the script's arguments`,
  );
}

const INTERPRETERS: readonly Interpreter[] = [
  {
    name: 'node',
    match: /^(node|nodejs)\d*$/,
    // NODE_COMPILE_CACHE (node 22+): V8 code cache from a directory of the caller's choosing, checked
    // against the source by a checksum anyone can match, so it can hold other code than the script's.
    env: ['NODE_OPTIONS', 'NODE_PATH', 'NODE_COMPILE_CACHE'],
    findScript: nodeScript,
  },
  {
    name: 'python',
    match: /^python(\d+(\.\d+)*)?$/,
    // PYTHONPYCACHEPREFIX (like -X pycache_prefix) swaps in compiled modules, the standard library's too,
    // from a directory of its choosing; PYTHONPLATLIBDIR moves the standard library's native modules.
    env: [
      'PYTHONPATH',
      'PYTHONSTARTUP',
      'PYTHONINSPECT',
      'PYTHONHOME',
      'PYTHONUSERBASE',
      'PYTHONBREAKPOINT',
      'PYTHONPYCACHEPREFIX',
      'PYTHONPLATLIBDIR',
    ],
    findScript: (args) => scan('python', args, PYTHON),
  },
  {
    name: 'ruby',
    match: /^ruby(\d+(\.\d+)*)?$/,
    // RUBYGEMS_GEMDEPS: rubygems before 3.x evaluates the Gemfile it names as Ruby when it loads, before
    // the script runs. GEM_HOME / GEM_PATH: where `require` finds gems, so a directory the caller chose
    // supplies the code of any gem the script loads (as PYTHONPATH does for python).
    env: ['RUBYOPT', 'RUBYLIB', 'RUBYGEMS_GEMDEPS', 'GEM_HOME', 'GEM_PATH'],
    findScript: (args) => scan('ruby', args, RUBY),
  },
  {
    name: 'perl',
    // Debian also installs perl as perl5.36-x86_64-linux-gnu (version and multiarch triplet).
    match: /^perl(\d+(\.\d+)*)?(-[a-z0-9_]+-linux-gnu[a-z0-9_]*)?$/,
    env: ['PERL5OPT', 'PERL5LIB', 'PERLLIB', 'PERL5DB'],
    findScript: (args) => scan('perl', args, PERL),
  },
  {
    name: 'bash',
    match: /^r?bash$/,
    // Exported functions (BASH_FUNC_name%%) replace commands the script calls; PS4 is expanded (command
    // substitution included) before every traced command once xtrace is on.
    env: ['BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4'],
    envPrefixes: ['BASH_FUNC_'],
    loginByArgv0: true,
    findScript: (args) => scan('bash', args, SHELL),
  },
  {
    name: 'sh',
    match: /^(sh|dash|ash)$/,
    env: ['ENV', 'PS4'],
    loginByArgv0: true,
    findScript: (args) => scan('sh', args, SHELL),
  },
  {
    name: 'zsh',
    match: /^zsh[\d.]*$/,
    env: ['ZDOTDIR'],
    loginByArgv0: true,
    findScript: (args) => scan('zsh', args, ZSH),
  },
  { name: 'deno', match: /^deno$/, env: [], findScript: denoScript },
  { name: 'bun', match: /^bun$/, env: ['BUN_OPTIONS', 'NODE_OPTIONS'], findScript: bunScript },
];

/** The first variable of `names` (or with one of `prefixes`) set to a non-empty value, if any. */
function injected(
  env: Readonly<Record<string, string>>,
  names: readonly string[],
  prefixes: readonly string[] = [],
): string | undefined {
  for (const n of names) if (Object.hasOwn(env, n) && env[n] !== '') return n;
  if (prefixes.length === 0) return undefined;
  return Object.keys(env).find((k) => env[k] !== '' && prefixes.some((p) => k.startsWith(p)));
}

/** The name of the interpreter an executable's basename is (node, python...), or undefined for a binary. */
export function interpreterName(exeBasename: string): string | undefined {
  return INTERPRETERS.find((i) => i.match.test(exeBasename))?.name;
}

/**
 * Classifies a command from its real executable's basename, its argv (argv[0] included) and its
 * initial environment: a binary, an interpreter running `scriptArg` (unresolved, as written), or a
 * refusal with a reason the user can act on.
 */
export function analyzeCommand(
  exeBasename: string,
  argv: readonly string[],
  env: Readonly<Record<string, string>>,
): CommandAnalysis {
  const loader = injected(env, LOADER_ENV, LOADER_ENV_PREFIXES);
  if (loader)
    return refused(`${loader} is set, which makes the loader inject code into any program; unset it`);
  const library = injected(env, LIBRARY_ENV);
  if (library) return refused(`${library} is set, which lets a library load code into any program; unset it`);
  const interpreter = INTERPRETERS.find((i) => i.match.test(exeBasename));
  if (!interpreter) return { kind: 'binary' };
  const variable = injected(env, interpreter.env, interpreter.envPrefixes);
  if (variable) {
    return refused(`${variable} is set, which makes ${interpreter.name} load other code; unset it`);
  }
  // `exec -a -bash bash script.sh` is `bash -l script.sh`: /etc/profile and $HOME's profile run first.
  if (interpreter.loginByArgv0 && argv[0]?.startsWith('-')) {
    return refused(`${interpreter.name} started as ${argv[0]} ${LOGIN}`);
  }
  return interpreter.findScript(argv.slice(1));
}
