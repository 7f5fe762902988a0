import { describe, expect, it } from 'vitest';
import { analyzeCommand } from '../../src/identity/interpreter.js';

/** Expected outcome: a binary, the script argument, or a refusal whose reason matches. */
type Want = 'binary' | { script: string } | { refused: RegExp };
type Case = [exe: string, argv: string[], want: Want, env?: Record<string, string>];

const INLINE = /inline code/;
const PRELOAD = /loads extra code/;
const STDIN = /stdin/;
const DEBUG = /debugger/;
const UNKNOWN = /not recognised/;

const cases: Case[] = [
  // Plain binaries: argv is not interpreted.
  ['sleep', ['sleep', '30'], 'binary'],
  ['git', ['git', '-c', 'core.x=1', 'status'], 'binary'],
  ['nodejs-helper', ['nodejs-helper', '-e', 'x'], 'binary'],
  ['pythonista', ['pythonista', '-c', 'x'], 'binary'],
  // Debian's perl under its versioned multiarch name is perl, not a binary that runs anything.
  ['perl5.36-x86_64-linux-gnu', ['perl5.36-x86_64-linux-gnu', '-e', '1'], { refused: INLINE }],
  ['perl5.40-aarch64-linux-gnu', ['perl5.40-aarch64-linux-gnu', 'x.pl'], { script: 'x.pl' }],
  ['perl-cleaner', ['perl-cleaner', '-e', 'x'], 'binary'],
  ['sleep', ['sleep', '1'], { refused: /LD_PRELOAD/ }, { LD_PRELOAD: '/tmp/evil.so' }],
  ['sleep', ['sleep', '1'], { refused: /LD_AUDIT/ }, { LD_AUDIT: '/tmp/audit.so' }],
  ['sleep', ['sleep', '1'], { refused: /LD_LIBRARY_PATH/ }, { LD_LIBRARY_PATH: '/tmp' }],
  ['sleep', ['sleep', '1'], { refused: /DYLD_INSERT_LIBRARIES/ }, { DYLD_INSERT_LIBRARIES: '/x.dylib' }],
  ['sleep', ['sleep', '1'], { refused: /DYLD_LIBRARY_PATH/ }, { DYLD_LIBRARY_PATH: '/x' }],
  ['sleep', ['sleep', '1'], { refused: /DYLD_FRAMEWORK_PATH/ }, { DYLD_FRAMEWORK_PATH: '/x' }],
  // A library every program links loads code from these: OpenSSL's config (a provider), iconv modules.
  [
    'curl',
    ['curl', 'x'],
    { refused: /OPENSSL_CONF is set, which lets a library load code/ },
    { OPENSSL_CONF: '/tmp/o.cnf' },
  ],
  ['node', ['node', 'bot.mjs'], { refused: /OPENSSL_CONF/ }, { OPENSSL_CONF: '/tmp/o.cnf' }],
  ['node', ['node', 'bot.mjs'], { refused: /OPENSSL_MODULES/ }, { OPENSSL_MODULES: '/tmp' }],
  ['sleep', ['sleep', '1'], { refused: /GCONV_PATH/ }, { GCONV_PATH: '/tmp' }],
  ['sleep', ['sleep', '1'], 'binary', { LD_PRELOAD: '' }],
  ['sleep', ['sleep', '1'], 'binary', { NODE_OPTIONS: '--require x', PYTHONPATH: '/x' }],

  // node: the script, and the options before it.
  ['node', ['node', 'script.js'], { script: 'script.js' }],
  [
    'node',
    ['node', '/abs/app.mjs', '-e', 'args after the script are the script’s'],
    { script: '/abs/app.mjs' },
  ],
  ['nodejs', ['nodejs', 'app.js'], { script: 'app.js' }],
  ['node20', ['node20', 'app.js'], { script: 'app.js' }],
  ['node', ['node', '--max-old-space-size=100', 'script.js'], { script: 'script.js' }],
  ['node', ['node', '--max_old_space_size=100', 'script.js'], { script: 'script.js' }],
  ['node', ['node', '--max-old-space-size', '100', 'script.js'], { refused: /--max-old-space-size=VALUE/ }],
  ['node', ['node', '--title', 'x', 'script.js'], { script: 'script.js' }],
  ['node', ['node', '--title=x', '--no-warnings', 'script.js'], { script: 'script.js' }],
  ['node', ['node', '-C', 'development', 'script.js'], { script: 'script.js' }],
  ['node', ['node', '--enable-source-maps', '--', 'script.js'], { script: 'script.js' }],
  ['node', ['node', '--', '-weird-name.js'], { script: '-weird-name.js' }],
  // Node 20 loads --env-file even from the script's arguments, up to the first `--` (nodejs/node#54232).
  ['node', ['node', 'bot.mjs', 'get', '--env-file=e.env'], { refused: /--env-file=e\.env is read by node/ }],
  ['node', ['node', 'bot.mjs', '--env-file', 'e.env'], { refused: /--env-file is read by node/ }],
  ['node', ['node', 'bot.mjs', '--env-file-if-exists=e.env'], { refused: /--env-file-if-exists/ }],
  ['node', ['node', 'bot.mjs', '--', '--env-file=e.env'], { script: 'bot.mjs' }],
  ['node', ['node', '--', 'bot.mjs', '--env-file=e.env'], { script: 'bot.mjs' }],
  ['node', ['node', 'bot.mjs', '--env-filex=e.env', '--env_file=e.env'], { script: 'bot.mjs' }],
  ['node', ['node', '-e', 'console.log(1)'], { refused: INLINE }],
  ['node', ['node', '--eval=1'], { refused: INLINE }],
  ['node', ['node', '-p', '1'], { refused: INLINE }],
  ['node', ['node', '--print', '1'], { refused: INLINE }],
  ['node', ['node', '-pe', '1'], { refused: INLINE }],
  ['node', ['node', '-r', './hook.js', 'script.js'], { refused: PRELOAD }],
  ['node', ['node', '--require=./hook.js', 'script.js'], { refused: PRELOAD }],
  ['node', ['node', '--import', './hook.mjs', 'script.js'], { refused: PRELOAD }],
  ['node', ['node', '--loader', './l.mjs', 'script.js'], { refused: /module loader/ }],
  ['node', ['node', '--experimental-loader=./l.mjs', 'script.js'], { refused: /module loader/ }],
  ['node', ['node', '--inspect', 'script.js'], { refused: DEBUG }],
  ['node', ['node', '--inspect-brk=0', 'script.js'], { refused: DEBUG }],
  ['node', ['node', '--inspect_brk', 'script.js'], { refused: DEBUG }],
  ['node', ['node', '--debug-port=9', 'script.js'], { refused: DEBUG }],
  ['node', ['node', '-i'], { refused: /interactive/ }],
  ['node', ['node', '--interactive', 'script.js'], { refused: /interactive/ }],
  ['node', ['node', '--env-file=.env', 'script.js'], { refused: /from a file/ }],
  ['node', ['node'], { refused: STDIN }],
  ['node', ['node', '-'], { refused: STDIN }],
  ['node', ['node', '--no-warnings'], { refused: STDIN }],
  ['node', ['node', '--frobnicate', 'script.js'], { refused: UNKNOWN }],
  ['node', ['node', '-v'], { refused: UNKNOWN }],
  ['node', ['node', '--title'], { refused: /missing its value/ }],
  ['node', ['npm', '', '', ''], { refused: /rewrote its command line/ }],
  ['node', ['node', 'script.js'], { refused: /NODE_OPTIONS/ }, { NODE_OPTIONS: '--require ./x.js' }],
  ['node', ['node', 'script.js'], { script: 'script.js' }, { NODE_OPTIONS: '' }],
  ['node', ['node', 'script.js'], { refused: /NODE_PATH/ }, { NODE_PATH: '/tmp/mods' }],
  ['node', ['node', 'script.js'], { refused: /LD_PRELOAD/ }, { LD_PRELOAD: '/x.so' }],
  ['node', ['node', 'script.js'], { refused: /DYLD_INSERT_LIBRARIES/ }, { DYLD_INSERT_LIBRARIES: '/x' }],

  // python: grouped short options, -W/-X take a value.
  ['python3', ['python3', 'script.py'], { script: 'script.py' }],
  ['python3.11', ['python3.11', 'script.py', '-c', 'x'], { script: 'script.py' }],
  ['python', ['python', '-u', 'script.py'], { script: 'script.py' }],
  ['python3', ['python3', '-W', 'ignore', 'script.py'], { script: 'script.py' }],
  ['python3', ['python3', '-Wignore', 'script.py'], { script: 'script.py' }],
  ['python3', ['python3', '-uBW', 'ignore', 'script.py'], { script: 'script.py' }],
  ['python3', ['python3', '-X', 'dev', '-OO', 'script.py'], { script: 'script.py' }],
  ['python3', ['python3', '-I', '-s', '--', 'script.py'], { script: 'script.py' }],
  ['python3', ['python3', '--check-hash-based-pycs', 'never', 'script.py'], { script: 'script.py' }],
  ['python3', ['python3', '-c', 'print(1)'], { refused: INLINE }],
  ['python3', ['python3', '-uc', 'print(1)'], { refused: INLINE }],
  ['python3', ['python3', '-m', 'http.server'], { refused: /runs a module/ }],
  ['python3', ['python3', '-i', 'script.py'], { refused: /interactive/ }],
  ['python3', ['python3', '-'], { refused: STDIN }],
  ['python3', ['python3'], { refused: STDIN }],
  ['python3', ['python3', '-Q', 'script.py'], { refused: UNKNOWN }],
  ['python3', ['python3', '--version'], { refused: UNKNOWN }],
  ['python3', ['python3', '-W'], { refused: /missing its value/ }],
  ['python3', ['python3', 'script.py'], { refused: /PYTHONPATH/ }, { PYTHONPATH: '/tmp' }],
  ['python3', ['python3', 'script.py'], { refused: /PYTHONSTARTUP/ }, { PYTHONSTARTUP: '/tmp/s.py' }],
  ['python3', ['python3', 'script.py'], { refused: /PYTHONINSPECT/ }, { PYTHONINSPECT: '1' }],
  ['python3', ['python3', 'script.py'], { refused: /PYTHONHOME/ }, { PYTHONHOME: '/tmp' }],
  ['python3', ['python3', 'script.py'], { refused: /LD_LIBRARY_PATH/ }, { LD_LIBRARY_PATH: '/x' }],

  // ruby
  ['ruby', ['ruby', 'script.rb'], { script: 'script.rb' }],
  ['ruby3.1', ['ruby3.1', '-w', '-W2', 'script.rb'], { script: 'script.rb' }],
  ['ruby', ['ruby', '-W:no-deprecated', '-E', 'UTF-8', 'script.rb'], { script: 'script.rb' }],
  ['ruby', ['ruby', '--disable=gems', '--yjit', 'script.rb'], { script: 'script.rb' }],
  ['ruby', ['ruby', '-e', 'puts 1'], { refused: INLINE }],
  ['ruby', ['ruby', '-we', 'puts 1'], { refused: INLINE }],
  ['ruby', ['ruby', '-W2e', 'puts 1'], { refused: INLINE }],
  ['ruby', ['ruby', '-rjson', 'script.rb'], { refused: PRELOAD }],
  ['ruby', ['ruby', '-I', 'lib', 'script.rb'], { refused: /library path/ }],
  ['ruby', ['ruby', '-C', '/tmp', 'script.rb'], { refused: /changes directory/ }],
  ['ruby', ['ruby', '-n', 'script.rb'], { refused: UNKNOWN }],
  ['ruby', ['ruby', 'script.rb'], { refused: /RUBYOPT/ }, { RUBYOPT: '-rx' }],
  ['ruby', ['ruby', 'script.rb'], { refused: /RUBYLIB/ }, { RUBYLIB: '/x' }],
  ['ruby', ['ruby', 'script.rb'], { refused: /RUBYGEMS_GEMDEPS/ }, { RUBYGEMS_GEMDEPS: '/tmp/Gemfile' }],
  ['ruby', ['ruby', 'script.rb'], { refused: /GEM_HOME/ }, { GEM_HOME: '/tmp/gems' }],
  ['ruby', ['ruby', 'script.rb'], { refused: /GEM_PATH/ }, { GEM_PATH: '/tmp/gems' }],

  // perl
  ['perl', ['perl', 'script.pl'], { script: 'script.pl' }],
  ['perl', ['perl', '-w', '-T', 'script.pl'], { script: 'script.pl' }],
  ['perl', ['perl', '-l0w', 'script.pl'], { script: 'script.pl' }],
  ['perl', ['perl', '-CSD', 'script.pl'], { script: 'script.pl' }],
  ['perl5.36.0', ['perl5.36.0', 'script.pl'], { script: 'script.pl' }],
  ['perl', ['perl', '-e', 'print 1'], { refused: INLINE }],
  ['perl', ['perl', '-E', 'say 1'], { refused: INLINE }],
  ['perl', ['perl', '-le', 'print 1'], { refused: INLINE }],
  ['perl', ['perl', '-MData::Dumper', 'script.pl'], { refused: PRELOAD }],
  ['perl', ['perl', '-Ilib', 'script.pl'], { refused: /library path/ }],
  ['perl', ['perl', '-d', 'script.pl'], { refused: DEBUG }],
  ['perl', ['perl', '-S', 'script.pl'], { refused: /PATH/ }],
  ['perl', ['perl', '-n', 'script.pl'], { refused: UNKNOWN }],
  ['perl', ['perl', 'script.pl'], { refused: /PERL5OPT/ }, { PERL5OPT: '-Mx' }],
  ['perl', ['perl', 'script.pl'], { refused: /PERL5LIB/ }, { PERL5LIB: '/x' }],

  // bash / sh / dash / zsh: grouped options, -o takes the next argument, `-` ends options.
  ['bash', ['bash', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '-e', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '-eux', 'script.sh', '-c', 'x'], { script: 'script.sh' }],
  ['bash', ['bash', '-eo', 'pipefail', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '-oe', 'pipefail', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '+o', 'pipefail', '-O', 'extglob', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '--norc', '--noprofile', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '-', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '-c', 'echo hi'], { refused: INLINE }],
  ['bash', ['bash', '-ec', 'echo hi'], { refused: INLINE }],
  ['bash', ['bash', '-oc', 'pipefail', 'echo hi'], { refused: INLINE }],
  ['bash', ['bash', '-i'], { refused: /interactive/ }],
  ['bash', ['bash', '-s', 'arg'], { refused: STDIN }],
  ['bash', ['bash'], { refused: STDIN }],
  ['bash', ['bash', '-'], { refused: STDIN }],
  ['bash', ['bash', '--rcfile', 'x', 'script.sh'], { refused: /startup file/ }],
  ['bash', ['bash', '--init-file', 'x', 'script.sh'], { refused: /startup file/ }],
  ['bash', ['bash', '-l', 'script.sh'], { refused: /login shell/ }],
  // A leading `-` in argv[0] (`exec -a -bash bash script.sh`, as login(1) does) is the same as -l.
  ['bash', ['-bash', 'script.sh'], { refused: /started as -bash is a login shell/ }],
  ['dash', ['-sh', 'script.sh'], { refused: /login shell/ }],
  ['zsh', ['-zsh', '-f', 'script.zsh'], { refused: /login shell/ }],
  ['bash', ['/bin/bash-x', 'script.sh'], { script: 'script.sh' }],
  ['bash', ['bash', '-o'], { refused: /missing its value/ }],
  ['bash', ['bash', '--frob', 'script.sh'], { refused: UNKNOWN }],
  ['bash', ['bash', 'script.sh'], { refused: /BASH_ENV/ }, { BASH_ENV: '/tmp/evil' }],
  ['bash', ['bash', 'script.sh'], { refused: /BASH_FUNC_ls%%/ }, { 'BASH_FUNC_ls%%': '() { evil; }' }],
  ['bash', ['bash', 'script.sh'], { refused: /SHELLOPTS/ }, { SHELLOPTS: 'xtrace' }],
  ['bash', ['bash', '-x', 'script.sh'], { refused: /PS4/ }, { PS4: '$(evil)' }],
  ['dash', ['sh', '-x', 'script.sh'], { refused: /PS4/ }, { PS4: '$(evil)' }],
  ['dash', ['sh', 'script.sh'], { script: 'script.sh' }],
  ['dash', ['/bin/sh', '-e', './script.sh'], { script: './script.sh' }],
  ['dash', ['sh', '-c', 'echo hi'], { refused: INLINE }],
  ['sh', ['sh', '-s'], { refused: STDIN }],
  ['sh', ['sh', 'script.sh'], { refused: /\bENV\b/ }, { ENV: '/tmp/evil' }],
  ['zsh', ['zsh', '-f', 'script.zsh'], { script: 'script.zsh' }],
  ['zsh', ['zsh', '-c', 'echo hi'], { refused: INLINE }],
  ['zsh', ['zsh', 'script.zsh'], { refused: /ZDOTDIR/ }, { ZDOTDIR: '/tmp' }],

  ['node', ['node', 'bot.mjs'], { refused: /NODE_COMPILE_CACHE/ }, { NODE_COMPILE_CACHE: '/tmp/evil' }],
  // python: compiled modules from a directory of the caller's choosing run instead of the standard library.
  ['python3', ['python3', '-X', 'pycache_prefix=/tmp/evil', 's.py'], { refused: /pycache_prefix/ }],
  ['python3', ['python3', '-Xpycache_prefix=/tmp/evil', 's.py'], { refused: /pycache_prefix/ }],
  ['python3', ['python3', '-uX', 'pycache_prefix', 's.py'], { refused: /pycache_prefix/ }],
  ['python3', ['python3', '-X', 'dev', 's.py'], { script: 's.py' }],
  ['python3', ['python3', '-Xutf8', 's.py'], { script: 's.py' }],
  ['python3', ['python3', 's.py'], { refused: /PYTHONPYCACHEPREFIX/ }, { PYTHONPYCACHEPREFIX: '/tmp/evil' }],
  ['python3', ['python3', 's.py'], { refused: /PYTHONPLATLIBDIR/ }, { PYTHONPLATLIBDIR: '../../tmp/evil' }],

  // deno and bun: subcommands first.
  ['deno', ['deno', 'run', 'script.ts'], { script: 'script.ts' }],
  ['deno', ['deno', 'run', '--allow-net', 'script.ts'], { script: 'script.ts' }],
  [
    'deno',
    ['deno', 'run', '--allow-read=/tmp', '-A', '--config', 'deno.json', 'script.ts'],
    { script: 'script.ts' },
  ],
  ['deno', ['deno', 'script.ts'], { script: 'script.ts' }],
  ['deno', ['deno', 'eval', 'console.log(1)'], { refused: INLINE }],
  ['deno', ['deno', 'repl'], { refused: /does not run a script/ }],
  ['deno', ['deno', 'run', '--inspect-brk', 'script.ts'], { refused: DEBUG }],
  ['deno', ['deno', 'run', 'https://example.com/x.ts'], { refused: /remote module/ }],
  ['deno', ['deno', 'run', 'npm:cowsay'], { refused: /remote module/ }],
  ['deno', ['deno', 'run', '-'], { refused: STDIN }],
  ['bun', ['bun', 'run', 'script.ts'], { script: 'script.ts' }],
  ['bun', ['bun', '--smol', 'script.ts'], { script: 'script.ts' }],
  ['bun', ['bun', '-e', '1'], { refused: INLINE }],
  ['bun', ['bun', 'run', '--preload', './p.ts', 'script.ts'], { refused: PRELOAD }],
  ['bun', ['bun', 'x', 'cowsay'], { refused: /does not run a script/ }],
  ['bun', ['bun', 'script.ts'], { refused: /BUN_OPTIONS/ }, { BUN_OPTIONS: '--preload x' }],
];

describe('analyzeCommand', () => {
  it('has the exhaustive table', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  it.each(cases)('%s %j -> %o', (exe, argv, want, env = {}) => {
    const got = analyzeCommand(exe, argv, env);
    if (want === 'binary') expect(got).toEqual({ kind: 'binary' });
    else if ('script' in want) expect(got).toEqual({ kind: 'script', scriptArg: want.script });
    else {
      expect(got.kind).toBe('refused');
      expect(got.kind === 'refused' && got.reason).toMatch(want.refused);
    }
  });

  it('is not fooled by environment names that shadow Object.prototype', () => {
    const env: Record<string, string> = Object.assign(Object.create(null), {
      constructor: 'x',
      toString: 'y',
    });
    expect(analyzeCommand('node', ['node', 's.js'], env)).toEqual({ kind: 'script', scriptArg: 's.js' });
  });

  it('names what to change in every refusal', () => {
    for (const [exe, argv, want, env = {}] of cases) {
      if (typeof want !== 'object' || !('refused' in want)) continue;
      const got = analyzeCommand(exe, argv, env);
      expect(got.kind === 'refused' && got.reason).toMatch(/run|unset|put|approve|export|pass/);
    }
  });
});
