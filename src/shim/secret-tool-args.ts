// Argument parsing of libsecret's `secret-tool` (tool/secret-tool.c), including GOption's rules as the
// real binary applies them (checked in test/shim/secret-tool.test.ts): options may appear anywhere
// among the attribute words until "--"; `--label=x`, `--label x` and `-l x` all work and the value may
// start with '-'; `-lx` is an unknown option; in a cluster only one option may take the next word
// ("Error parsing option -c"); -h, --help, --help-all and -? print help and succeed (`--help=x` is an
// unknown option); a repeated attribute keeps its last value.
//
// Mapping to Entraclaw, chosen for what scripts actually pass: the attribute `service` is the item's
// service, `account` its account, and `username` is accepted for `account` (Python keyring and
// keyring-rs name it so). `xdg:schema` is accepted and ignored (libraries add it as a type tag), except by
// clear, which refuses it: ignoring it there would delete items the real tool keeps. Any
// other attribute (host, user, protocol, ...) is refused with status 1 and a message naming it:
// Entraclaw items carry no other attributes, and silently ignoring one could return the wrong secret.
// `store` needs both service and account; lookup/clear/search need at least one, and then behave as
// the real tool does with a partial match (lookup: first match; clear: every match). --collection is
// recorded and has no effect: there is one Entraclaw store.
import { ShimUsageError } from './output.js';
import { formatSecretToolError, formatSecretToolUsage, INVALID_BYTE_SEQUENCE } from './secret-tool-format.js';

/** The subcommands secret-tool has. */
export type SecretToolSubcommand = 'store' | 'lookup' | 'clear' | 'search' | 'lock';

/** The Entraclaw item(s) an attribute set selects. */
export interface SecretToolQuery {
  service?: string;
  account?: string;
}

/**
 * `store --label=L [--collection=C] attr value ...`. The secret is all of stdin, byte for byte (a
 * trailing newline is kept, as the real tool keeps it), or — when stdin is a TTY — one line read without
 * echo after SECRET_TOOL_PROMPT. Storing over an existing (service, account) replaces it, as the real
 * tool does. Unlike libsecret 0.20 we do not cut stdin at 8192 bytes.
 */
export interface SecretToolStore {
  op: 'store';
  label: string;
  collection?: string;
  attributes: Record<string, string>;
  service: string;
  account: string;
}

/** `lookup attr value ...`. */
export interface SecretToolLookup {
  op: 'lookup';
  attributes: Record<string, string>;
  query: SecretToolQuery;
}

/** `clear attr value ...`: deletes every matching item. */
export interface SecretToolClear {
  op: 'clear';
  attributes: Record<string, string>;
  query: SecretToolQuery;
}

/** `search [--all] [--unlock] attr value ...`. */
export interface SecretToolSearch {
  op: 'search';
  all: boolean;
  unlock: boolean;
  attributes: Record<string, string>;
  query: SecretToolQuery;
}

/** `lock [--collection=C]`: nothing to lock in Entraclaw's terms, but accepted. */
export interface SecretToolLock {
  op: 'lock';
  collection?: string;
}

/** `<subcommand> --help`: print formatSecretToolHelp(subcommand). */
export interface SecretToolHelp {
  op: 'help';
  subcommand: SecretToolSubcommand;
}

/** One parsed secret-tool invocation. */
export type SecretToolCommand =
  | SecretToolStore
  | SecretToolLookup
  | SecretToolClear
  | SecretToolSearch
  | SecretToolLock
  | SecretToolHelp;

interface OptionSpec {
  long: string;
  short?: string;
  takesValue: boolean;
}

const OPTIONS: Record<SecretToolSubcommand, OptionSpec[]> = {
  store: [
    { long: 'label', short: 'l', takesValue: true },
    { long: 'collection', short: 'c', takesValue: true },
  ],
  lookup: [],
  clear: [],
  // The C source gives --unlock the short name 'a' too; GOption keeps it for --all only.
  search: [
    { long: 'all', short: 'a', takesValue: false },
    { long: 'unlock', takesValue: false },
  ],
  lock: [{ long: 'collection', short: 'c', takesValue: true }],
};

const SUBCOMMANDS = Object.keys(OPTIONS) as SecretToolSubcommand[];
const ENTRACLAW_ATTRIBUTES = ['service', 'account', 'username', 'xdg:schema'];

/**
 * Parses secret-tool's argv (without the program name); throws ShimUsageError with the real output.
 * `invalid` holds the positions in argv of words that are not valid UTF-8 (raw-argv.ts): GOption
 * fails on the first one it reaches, so one after --help still shows the help.
 */
export function parseSecretToolArgs(
  argv: readonly string[],
  invalid: readonly number[] = [],
): SecretToolCommand {
  const [word, ...args] = argv;
  const subcommand = SUBCOMMANDS.find((s) => s === word);
  if (!subcommand) throw new ShimUsageError(formatSecretToolUsage());
  const parsed = parseOptions(subcommand, args, new Set(invalid.map((i) => i - 1)));
  if (parsed === 'help') return { op: 'help', subcommand };
  const { values, positional } = parsed;
  if (subcommand === 'lock') {
    return { op: 'lock', ...(values.collection !== undefined && { collection: values.collection }) };
  }
  if (subcommand === 'store' && values.label === undefined) {
    throw new ShimUsageError(formatSecretToolUsage('secret-tool: must specify a label for the new item'));
  }
  const attributes = attributePairs(positional);
  const query = entraclawQuery(attributes);
  switch (subcommand) {
    case 'store': {
      const { service, account } = query;
      if (service === undefined || account === undefined) {
        throw new ShimUsageError(
          formatSecretToolError('storing in Entraclaw needs both a "service" and an "account" attribute'),
        );
      }
      const collection = values.collection;
      return {
        op: 'store',
        label: values.label ?? '',
        ...(collection !== undefined && { collection }),
        attributes,
        service,
        account,
      };
    }
    case 'search':
      return {
        op: 'search',
        all: values.all !== undefined,
        unlock: values.unlock !== undefined,
        attributes,
        query,
      };
    case 'clear':
      if (attributes['xdg:schema'] !== undefined) {
        throw new ShimUsageError(
          formatSecretToolError(
            'clear with an "xdg:schema" attribute is refused: Entraclaw items are not matched on their schema, so it could delete items the real secret-tool would keep; nothing was deleted (name the items by "service" and "account" only)',
          ),
        );
      }
      return { op: subcommand, attributes, query };
    default:
      return { op: subcommand, attributes, query };
  }
}

/** GOption over one subcommand's entries: option values by long name, and the remaining words. */
function parseOptions(
  subcommand: SecretToolSubcommand,
  args: readonly string[],
  invalid: ReadonlySet<number>,
): 'help' | { values: Record<string, string>; positional: string[] } {
  const specs = OPTIONS[subcommand];
  const values: Record<string, string> = {};
  const positional: string[] = [];
  // lock ignores GOption errors (secret-tool.c does not check the result of parsing).
  const fail = (message: string) => {
    if (subcommand !== 'lock') throw new ShimUsageError(formatSecretToolUsage(message));
  };
  // Even for lock: a lossy word is never used (the real lock crashes on one).
  const checkBytes = (from: number, to = from + 1) => {
    for (let i = from; i < to; i++) {
      if (invalid.has(i)) throw new ShimUsageError(formatSecretToolUsage(INVALID_BYTE_SEQUENCE));
    }
  };
  for (let i = 0; i < args.length; i++) {
    checkBytes(i);
    const arg = args[i] as string;
    if (arg === '--') {
      checkBytes(i + 1, args.length);
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      // GOption compares the whole word: `--help-all` is help too (no groups here), `--help=x` unknown.
      if (arg === '--help' || arg === '--help-all') return 'help';
      const name = arg.slice(2, eq === -1 ? undefined : eq);
      const spec = specs.find((s) => s.long === name);
      if (!spec) {
        fail(`Unknown option ${arg}`);
      } else if (!spec.takesValue) {
        values[spec.long] = '';
      } else if (eq !== -1) {
        values[spec.long] = arg.slice(eq + 1);
      } else if (i + 1 < args.length) {
        checkBytes(i + 1);
        values[spec.long] = args[++i] as string;
      } else {
        fail(`Missing argument for --${name}`);
      }
    } else if (arg.startsWith('-') && arg !== '-') {
      let tookNext = false;
      for (const ch of arg.slice(1)) {
        if (ch === 'h' || ch === '?') return 'help';
        const spec = specs.find((s) => s.short === ch);
        if (!spec) {
          fail(`Unknown option ${arg}`);
          break;
        }
        if (!spec.takesValue) values[spec.long] = '';
        else if (tookNext) fail(`Error parsing option -${ch}`);
        else if (i + 1 < args.length) {
          checkBytes(i + 1);
          values[spec.long] = args[i + 1] as string;
          tookNext = true;
        } else fail(`Missing argument for -${ch}`);
      }
      if (tookNext) i++;
    } else {
      positional.push(arg);
    }
  }
  return { values, positional };
}

/** secret-tool.c attributes_from_arguments: at least one pair, an even count, a later pair wins. */
function attributePairs(words: readonly string[]): Record<string, string> {
  if (words.length === 0) {
    throw new ShimUsageError(formatSecretToolUsage('secret-tool: must specify attribute and value pairs'));
  }
  if (words.length % 2 === 1) {
    throw new ShimUsageError(
      formatSecretToolUsage('secret-tool: must specify attributes and values in pairs'),
    );
  }
  const attributes: Record<string, string> = Object.create(null);
  for (let i = 0; i < words.length; i += 2) attributes[words[i] as string] = words[i + 1] as string;
  return attributes;
}

function entraclawQuery(attributes: Record<string, string>): SecretToolQuery {
  const unknown = Object.keys(attributes).find((name) => !ENTRACLAW_ATTRIBUTES.includes(name));
  if (unknown !== undefined) {
    throw new ShimUsageError(
      formatSecretToolError(
        `attribute "${unknown}" is not supported: Entraclaw items are found by "service" and "account"`,
      ),
    );
  }
  const { service, account, username } = attributes;
  if (account !== undefined && username !== undefined && account !== username) {
    throw new ShimUsageError(
      formatSecretToolError('"account" and "username" both name the account and differ'),
    );
  }
  const who = account ?? username;
  if (service === undefined && who === undefined) {
    throw new ShimUsageError(
      formatSecretToolError('give a "service" or an "account" attribute to find an Entraclaw item'),
    );
  }
  return { ...(service !== undefined && { service }), ...(who !== undefined && { account: who }) };
}
