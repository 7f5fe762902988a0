import { Command, CommanderError } from 'commander';
import { UsageError } from '../errors.js';
import { failWith, reportError } from './output.js';

// The full command line (main.ts answers the plain forms of `secret get` without loading commander).
// Command modules are imported inside their actions so that each command loads only what it uses:
// start-up time is part of the product when a tool calls us on every request.

// Commands that start a CMD and print no JSON of their own: a `--json` on their command line is CMD's
// (`entraclaw run -- jq --json`, or `run jq --json`, which commander passes through to CMD).
const STARTS_CMD = new Set(['run', 'sandbox', 'agent']);

/**
 * Whether errors are said as JSON before commander has parsed the command line: `--json` among
 * entraclaw's own arguments, not after `--` (CMD's, or a positional). Once an action runs, its parsed
 * options decide instead (the preAction hook below): `--service --json` is a service name.
 */
function wantsJson(args: readonly string[]): boolean {
  if (STARTS_CMD.has(args[0] ?? '')) return false;
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

let json = wantsJson(process.argv.slice(2));

const program = new Command('entraclaw')
  .description('Per-user credential broker for agents and command-line tools')
  .version('0.1.0')
  // Commander's own complaints (unknown option, missing argument) in the same shape as every other error.
  .configureOutput({
    outputError: (text) => reportError(new UsageError(commanderMessage(text), commanderHint(text)), json),
  })
  .enablePositionalOptions()
  .exitOverride()
  .hook('preAction', (_program, action) => {
    json = action.opts().json === true;
  });

/**
 * Commander's complaint as one line. `--value=TOKEN` or `-wTOKEN` is a likely slip (secrets never go in
 * argv here): the value is left out of the message, so it does not travel on into a terminal log or CI
 * output.
 */
function commanderMessage(text: string): string {
  return (
    text
      .replace(/^error: /, '')
      .replace(/(unknown option '[^'=]*)=[^']*'/, "$1=…' (its value is not shown)")
      // `-wVALUE`: a short option with its value attached (no option of ours is a cluster of letters).
      .replace(/unknown option '(-[^-'])[^']+'/, "unknown option '$1…' (the rest is not shown)")
      .trim()
      .split('\n')
      .join(' ')
  );
}

// What to do instead, for the argument mistakes a newcomer is likely to make: the value of `secret set`
// (which must never be in argv), SERVICE/ACCOUNT as one word, and the template of `inject` (it takes -i).
function commanderHint(text: string): string {
  if (/too many arguments for 'set'/.test(text) && splitExpiry(process.argv.slice(2))) {
    return 'a time in --expires-at joins its date with T, not a space (2026-12-31T23:59:00Z): unquoted, the time became an extra argument';
  }
  if (/too many arguments for 'set'/.test(text)) {
    return 'the value is never an argument (every process of yours can read argv): pipe it on stdin (printf %s "$VALUE" | entraclaw secret set SERVICE ACCOUNT), use --from-file FILE, or type it at the prompt';
  }
  // `secret get github.com/me`: references and grant specs write the item as one word, these commands not.
  if (/missing required argument 'account'/.test(text)) {
    return 'give the service and the account as two arguments: github.com me, not github.com/me';
  }
  // `--grant svc/*` unquoted: the shell expands it to file names where such a directory exists, and the
  // names after the first land as arguments.
  if (/too many arguments for '(approve|register|grant)'/.test(text)) {
    return "give each grant its own --grant, and quote one that ends in * (--grant 'svc/*'): the shell expands it to the file names it matches";
  }
  if (/too many arguments for 'inject'/.test(text)) {
    return 'give the template with -i FILE (or on stdin) and the output with -o FILE (or stdout)';
  }
  // `secret get -name acct`: a name that starts with "-" reads as an option unless `--` comes first.
  if (/unknown option '-/.test(text) && namesItem(process.argv.slice(2))) {
    return 'a SERVICE or ACCOUNT that starts with "-" goes after --, e.g. entraclaw secret get -- -name ACCOUNT; otherwise run the command with --help for its usage';
  }
  return 'run the command with --help for its usage';
}

/** Whether argv has `--expires-at DATE TIME`: a date alone, then a word that reads as a time of day. */
function splitExpiry(argv: string[]): boolean {
  const end = argv.indexOf('--');
  const args = end < 0 ? argv : argv.slice(0, end);
  return args.some((a, i) => {
    const date = a === '--expires-at' ? args[i + 1] : a.startsWith('--expires-at=') ? a.slice(13) : undefined;
    const next = a === '--expires-at' ? args[i + 2] : args[i + 1];
    return /^\d{4}-\d{2}-\d{2}$/.test(date ?? '') && /^\d{1,2}:\d{2}/.test(next ?? '');
  });
}

/** Whether argv runs a command whose arguments are a SERVICE and an ACCOUNT (secret set/get/rm). */
function namesItem(argv: string[]): boolean {
  const words = argv.filter((a) => !a.startsWith('-'));
  return words[0] === 'secret' && ['set', 'get', 'rm'].includes(words[1] ?? '');
}

/** The parser of every --passphrase-file (vault commands, rekey, doctor). */
const passphraseFileArg = pathArg(
  '--passphrase-file',
  'give --passphrase-file the path of the file holding the passphrase',
);

function storeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--store <name>',
      'store to use: auto, secret-service, kernel-keyring, systemd-creds, encrypted-file, macos-keychain',
    )
    .option(
      '--passphrase-file <path>',
      'file holding the vault passphrase (encrypted-file store)',
      passphraseFileArg,
    );
}

const secret = program.command('secret').description("the user's own hand on the stores: set, get, rm, ls");

storeOptions(secret.command('set <service> <account>'))
  .description('store a secret read from stdin (or --from-file, or a hidden prompt on a terminal)')
  .option('--kind <kind>', 'password | token | key')
  .option(
    '--expires-at <iso>',
    'expiry, ISO 8601 (a time needs Z or an offset; a date alone is 00:00 UTC), honoured for any kind: reads after it exit 6',
  )
  .option('--scope <scope>', 'scope metadata (tokens)')
  .option('--label <label>', 'human-readable label')
  .option('--from-file <path>', 'read the value from this file instead of stdin')
  .option('--json', 'print the stored metadata as JSON')
  .action(async (service: string, account: string, o) =>
    (await import('./secret-set.js')).secretSet(service, account, o),
  );

storeOptions(secret.command('get <service> <account>'))
  .description('print the raw value (no newline added); --json gives metadata and base64')
  .option('--allow-expired', 'return a token even if it is past expires_at')
  .option('--json', 'print metadata and the value as base64 JSON')
  .action(async (service: string, account: string, o) =>
    (await import('./secret-get.js')).secretGet(service, account, o),
  );

storeOptions(secret.command('rm <service> <account>'))
  .description('delete a secret')
  .option('--json', 'print the result as JSON')
  .action(async (service: string, account: string, o) =>
    (await import('./secret-rm.js')).secretRm(service, account, o),
  );

storeOptions(secret.command('ls'))
  .description('list items (metadata only, never values)')
  .option('--service <service>', 'only this service')
  .option('--json', 'print as JSON')
  .action(async (o) => (await import('./secret-ls.js')).secretLs(o));

program
  .command('vault')
  .description('the encrypted-file store itself')
  .command('rekey')
  .description('re-encrypt the vault under a new passphrase (opened with the current one)')
  .option('--passphrase-file <path>', 'file holding the current passphrase', passphraseFileArg)
  .option(
    '--new-passphrase-file <path>',
    'file holding the new passphrase (else asked twice on a terminal)',
    pathArg(
      '--new-passphrase-file',
      'give --new-passphrase-file the path of the file holding the passphrase',
    ),
  )
  .option('--json', 'print the result as JSON')
  .action(async (o) => (await import('./vault-rekey.js')).vaultRekey(o));

program
  .command('doctor')
  .description('every store: available or not and why, persistence, boundary, and which is selected')
  .option('--store <name>', 'show what this choice would select')
  .option(
    '--passphrase-file <path>',
    'file holding the vault passphrase: doctor then checks that it opens the vault',
    passphraseFileArg,
  )
  .option('--json', 'print as JSON')
  .action(async (o) => (await import('./doctor.js')).doctor(o));

storeOptions(program.command('agent'))
  .description(
    'run the broker daemon in the foreground (with `-- CMD`, run CMD under it and stop when it exits)',
  )
  .option(
    '--socket <path>',
    "socket path (default: agent.toml's [agent] socket, else $ENTRACLAW_SOCKET, else $XDG_RUNTIME_DIR/entraclaw/agent.sock)",
    pathArg('--socket'),
  )
  .option('-v, --verbose', 'log every connection and every decision (what the audit log records)')
  .argument('[command...]', 'command to run with ENTRACLAW_SOCKET set')
  .passThroughOptions()
  .action(async (command: string[], o) => (await import('./agent.js')).agent(o, command));

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * The parser of a path option or argument: an empty value is refused. resolve('') is the current
 * directory, so `--project "$DIR"` with DIR unset made the whole home writable past the guard against
 * that, `shim install ''` wrote into the current directory, `--profile ''` ran with no profile, and
 * `--socket ''` or `--passphrase-file ''` took the default: each without a word.
 */
function pathArg(flag: string, hint = `give ${flag} a path, or leave the option out`): (v: string) => string {
  return (v) => {
    if (v === '') throw new UsageError(`${flag} is empty`, hint);
    return v;
  };
}

/** `pathArg` for a repeatable option. */
function pathArgs(flag: string): (v: string, prev?: string[]) => string[] {
  return (v, prev) => collect(pathArg(flag)(v), prev);
}
function grantOptions(cmd: Command): Command {
  return cmd
    .option('--grant <spec>', 'SERVICE[/ACCOUNT] or PREFIX* (repeatable)', collect)
    .option('--ops <ops>', 'comma-separated: read,list,create,update,delete,write (default read)')
    .option('--ttl <ttl>', 'grant lifetime, e.g. 8h, 7d (default: no expiry)')
    .option('--confirm', "ask the user to confirm every use (the agent's askpass program)")
    .option(
      '--confirm-for <window>',
      'ask the user, and let a yes last this long (e.g. 10m, at most 24h) for the same process, item and operation',
    )
    .option('--json', 'print as JSON');
}

program
  .command('pending')
  .description('programs that asked for secrets before being approved (kept 24 h)')
  .option('--json', 'print as JSON')
  .action(async (o) => (await import('./pending.js')).pending(o));

grantOptions(program.command('approve <target>'))
  .description('approve a pending program (pending id or sha256:HEX) with grants')
  .option('--name <name>', 'client name (default: program or script file name)')
  .action(async (target: string, o) => (await import('./approve.js')).approve(target, o));

grantOptions(program.command('register <path>'))
  .description('pre-approve a program by hash (with --script for an interpreter)')
  .option('--script <file>', 'the script an interpreter runs (pinned by hash too)', pathArg('--script'))
  .option('--name <name>', 'client name (default: program or script file name)')
  .action(async (path: string, o) => (await import('./register.js')).register(path, o));

grantOptions(program.command('grant <name>'))
  .description('add grants to an approved client')
  .action(async (name: string, o) => (await import('./grant.js')).grant(name, o));

program
  .command('upgrade <path>')
  .description('re-pin a program or script after an update, keeping its grants')
  .option('--client <name>', 're-pin this client to PATH (a program that moved)')
  .option(
    '--script <file>',
    "with PATH an interpreter: re-pin the client of this script to PATH and the script's bytes",
    pathArg('--script'),
  )
  .option('--json', 'print as JSON')
  .action(async (path: string, o) => (await import('./upgrade.js')).upgrade(path, o));

program
  .command('clients')
  .description('approved programs and their grants')
  .option('--json', 'print as JSON')
  .action(async (o) => (await import('./clients.js')).clients(o));

program
  .command('revoke <client>')
  .description('remove an approved client by name or sha256')
  .option('--json', 'print as JSON')
  .action(async (target: string, o) => (await import('./revoke.js')).revoke(target, o));

program
  .command('deny <id>')
  .description('drop a pending request')
  .option('--json', 'print as JSON')
  .action(async (id: string, o) => (await import('./pending.js')).deny(id, o));

// audit is a command of its own and the parent of verify: commander would call `audit verfy` "too many
// arguments" and know no `audit help`, so the words after it come to the action.
const auditCmd = program
  .command('audit')
  .description('the tamper-evident log of every decision (never a value)')
  .option('--tail <n>', 'how many recent lines (default 20)')
  .option('--json', 'print as JSON')
  .option(
    '--file <log>',
    "read this audit log instead of the daemon's (e.g. a sandbox run's, docs/sandbox.md)",
    pathArg('--file', "give --file the path of an audit log (.jsonl), or leave it out for the daemon's"),
  )
  .allowExcessArguments()
  .action(async (o, cmd: Command) => {
    const words = cmd.args;
    if (words.length === 0) return (await import('./audit.js')).audit(o);
    if (words[0] === 'help') {
      const sub = auditCmd.commands.find((c) => c.name() === words[1]);
      if (words.length === 1 || (sub && words.length === 2)) return (sub ?? auditCmd).help();
      return unknownCommand(auditCmd, words[words.length - 1]!);
    }
    return unknownCommand(auditCmd, words[0]!);
  });
auditCmd
  .command('verify')
  .description('check the hash chain; points at the first broken line')
  .option('--json', 'print as JSON')
  .action(async (o) => {
    // `audit --json verify` and `audit --tail N verify` give the option to audit, not to verify: --json
    // means the same here, and --tail means nothing to a check of every kept line.
    const parent = auditCmd.opts();
    if (parent.tail !== undefined) {
      throw new UsageError(
        '--tail is an option of `entraclaw audit`, not of `audit verify`',
        'audit verify checks every kept line: drop --tail',
      );
    }
    json = o.json === true || parent.json === true;
    return (await import('./audit.js')).auditVerify({ ...o, json, file: parent.file });
  });

storeOptions(program.command('run'))
  .description('run CMD with entraclaw://SERVICE/ACCOUNT references in its environment resolved')
  .option('--env-file <file>', '.env file with references (repeatable)', pathArgs('--env-file'))
  .option('--env <NAME=VALUE>', 'set a variable, e.g. TOKEN=entraclaw://github.com/me (repeatable)', collect)
  .option('--mask', "replace secret values in CMD's stdout/stderr with a marker")
  .argument('<command...>', 'command and arguments (after --)')
  .passThroughOptions()
  .action(async (command: string[], o) => (await import('./run.js')).run(command, o));

storeOptions(program.command('inject'))
  .description('render {{ entraclaw://SERVICE/ACCOUNT }} tags in a template')
  .option('-i, --in <file>', 'template file (default stdin)', pathArg('-i'))
  .option(
    '-o, --out <file>',
    'output file, written 0600 atomically (default stdout)',
    pathArg('-o', 'give -o a file to write, or - for stdout'),
  )
  .action(async (o) => (await import('./inject.js')).inject(o));

program
  .command('shim')
  .description('drop-in `security` and `secret-tool` commands that go through the daemon')
  .command('install')
  .description('write the shims into DIR (prepend DIR to PATH)')
  .argument(
    '<dir>',
    'the directory for the shims',
    pathArg('DIR', 'name the directory for the shims, e.g. ~/.entraclaw/bin'),
  )
  .option('--force', 'replace files named security / secret-tool in DIR that are not entraclaw shims')
  .option('--json', 'print as JSON')
  .action(async (dir: string, o) => (await import('./shim.js')).shimInstall(dir, o));

storeOptions(program.command('sandbox'))
  .description('run CMD under bubblewrap: stores hidden, only a broker granting the profile reachable')
  .option('--profile <file>', 'sandbox profile (TOML, nono-style [credential_access])', pathArg('--profile'))
  .option('--allow-path <dir>', 'extra writable path (repeatable)', pathArgs('--allow-path'))
  .option(
    '--project <dir>',
    'the writable project directory (default: current directory)',
    pathArg('--project'),
  )
  .option('-v, --verbose', 'log broker connections')
  .argument('<command...>', 'command and arguments (after --)')
  .passThroughOptions()
  .action(async (command: string[], o) => (await import('./sandbox.js')).sandbox(command, o));

const serviceCmd = program
  .command('service')
  .description('run the broker as a per-user service: systemd user unit (Linux) or LaunchAgent (macOS)');
serviceCmd
  .command('install')
  .description('write the unit (or plist), then enable and (re)start it')
  .option(
    '--store <name>',
    "store the service uses (default: $ENTRACLAW_STORE, else agent.toml's at the service's start, then auto)",
  )
  .option(
    '--socket <path>',
    'socket path other than $XDG_RUNTIME_DIR/entraclaw/agent.sock',
    pathArg('--socket'),
  )
  .option('--dry-run', 'print the file and the commands; write and run nothing')
  .option('--json', 'print the result as JSON')
  .action(async (o) => (await import('./service.js')).service('install', o));
serviceCmd
  .command('uninstall')
  .description('stop and disable the service, then remove its file')
  .option('--dry-run', 'print what would be removed and run; touch nothing')
  .option('--json', 'print the result as JSON')
  .action(async (o) => (await import('./service.js')).service('uninstall', o));
serviceCmd
  .command('status')
  .description('is the file there, is the service running, does the socket answer')
  .option('--socket <path>', 'socket path to probe', pathArg('--socket'))
  .option('--json', 'print as JSON')
  .action(async (o) => (await import('./service.js')).service('status', o));

/**
 * Refuses `name` as a subcommand of audit. Commander's own "unknown command" (with its did-you-mean) is
 * not reachable for a command that also has an action of its own; audit has one subcommand to name.
 */
function unknownCommand(cmd: Command, name: string): never {
  const subs = cmd.commands.map((c) => c.name());
  throw new UsageError(
    `unknown command '${name}' (the subcommand${subs.length === 1 ? ' of' : 's of'} ${cmd.name()}: ${subs.join(', ')})`,
    commanderHint(''),
  );
}

/**
 * `entraclaw help A B` as `entraclaw A B --help`: commander's help command takes one name, so `help audit
 * verify` showed audit's help, and `help nosuch` printed the top help with no word of what was wrong.
 * A name that is no command is handed on as typed, for the parser's "unknown command 'X' (Did you mean".
 */
function helpArgs(args: string[]): string[] {
  if (args[0] !== 'help' || args.length < 2 || args.some((a) => a.startsWith('-'))) return args;
  const path = args.slice(1);
  let cmd: Command = program;
  for (const [i, name] of path.entries()) {
    const sub = cmd.commands.find((c) => c.name() === name);
    if (!sub) return path.slice(0, i + 1);
    cmd = sub;
  }
  return [...path, '--help'];
}

try {
  await program.parseAsync(helpArgs(process.argv.slice(2)), { from: 'user' });
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    await failWith(err, json);
  }
}
