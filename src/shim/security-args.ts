// Argument parsing of the macOS `security` subset the shim implements, following Apple's SecurityTool
// source (security.c main/execute_command/split_line, keychain_find.c, keychain_add.c,
// keychain_show_info.c): the same getopt strings, the same order of checks, the same statuses.
//
// Mapping to Entraclaw: -s (service, or server for internet passwords) -> service, -a -> account,
// -l -> label. Entraclaw keeps one item per (service, account), so generic and internet passwords
// address the same items, and -c -C -D -G -j -d -p -P -r -t are parsed, validated and recorded but not
// stored or matched. -T/-A (which apps may read the item without a prompt) are recorded and are a
// no-op: Entraclaw's own policy decides who may read an item. A keychain operand is recorded and
// ignored: there is one Entraclaw store.
//
// Deliberate differences, all louder than the original: `-v` does not echo the command line (it may
// hold a password); `-i` lines over 4095 bytes or with more than 32 words are refused instead of being
// split or truncated; commands the shim does not implement are refused, never approximated.
import { getopt } from './getopt.js';
import { ShimUsageError, shimOutput } from './output.js';
import { resolveSecurityCommand } from './security-commands.js';
import { formatCommandUsage, formatGlobalUsage } from './security-format.js';

/** Generic (genp) or internet (inet) password. */
export type SecurityItemClass = 'generic' | 'internet';

/** What find-*-password prints: the attributes; plus the password on stderr (-g); or only the password (-w). */
export type SecurityFindOutput = 'attributes' | 'password' | 'password-only';

/** Item attributes given on the command line; only those given are set. Four-char codes stay strings. */
export interface SecurityAttributes {
  account?: string;
  service?: string;
  label?: string;
  creator?: string;
  type?: string;
  kind?: string;
  comment?: string;
  generic?: string;
  securityDomain?: string;
  path?: string;
  port?: number;
  protocol?: string;
  authType?: string;
}

/** find-generic-password / find-internet-password. */
export interface SecurityFind {
  op: 'find';
  itemClass: SecurityItemClass;
  attributes: SecurityAttributes;
  output: SecurityFindOutput;
  keychains: string[];
}

/** delete-generic-password / delete-internet-password. */
export interface SecurityDelete {
  op: 'delete';
  itemClass: SecurityItemClass;
  attributes: SecurityAttributes;
  keychains: string[];
}

/** add-generic-password / add-internet-password; `label` defaults to the service, as in the real tool. */
export interface SecurityAdd {
  op: 'add';
  itemClass: SecurityItemClass;
  attributes: SecurityAttributes & { service: string; account: string; label: string };
  /** The password bytes, or 'prompt' when -w (or -p) ended the command line without a value. */
  password: Buffer | 'prompt';
  /** -U: update the item if it exists instead of failing with errSecDuplicateItem. */
  update: boolean;
  /** -T paths as given (recorded only; see the module comment). */
  trustedApps: string[];
  /** -A (recorded only). */
  allowAnyApp: boolean;
  keychain?: string;
}

/** show-keychain-info [keychain]. */
export interface SecurityShowKeychainInfo {
  op: 'show-keychain-info';
  keychain?: string;
}

/** help [command...], or `security -h [command...]`. */
export interface SecurityHelp {
  op: 'help';
  topics: string[];
}

/** One parsed `security` command. */
export type SecurityCommand =
  | SecurityFind
  | SecurityDelete
  | SecurityAdd
  | SecurityShowKeychainInfo
  | SecurityHelp;

/**
 * A whole `security` invocation: one command, or interactive mode, which reads commands one per line
 * (tokenizeSecurityLine, parseSecurityCommand), shows `prompt` on stderr only when stdin is a TTY,
 * reports each failure with formatInteractiveResult unless `quiet`, and exits with the last status.
 */
export type SecurityInvocation =
  | { mode: 'command'; command: SecurityCommand }
  | { mode: 'interactive'; prompt: string; quiet: boolean };

const PROG = 'security';
const MAX_LINE_BYTES = 4095;
const MAX_WORDS = 32;

/** Parses `security`'s argv (without the program name); throws ShimUsageError with the real output. */
export function parseSecurityArgs(argv: readonly string[]): SecurityInvocation {
  let help = false;
  let interactive = false;
  let quiet = false;
  let prompt = 'security> ';
  let operands: string[] = [];
  for (const event of getopt(argv, 'hilp:qvR', PROG)) {
    if (event.kind === 'illegal' || event.kind === 'missing') {
      throw new ShimUsageError(formatGlobalUsage(event.diagnostic));
    }
    if (event.kind === 'end') operands = event.operands;
    else if (event.opt === 'h') help = true;
    else if (event.opt === 'i') interactive = true;
    else if (event.opt === 'p') {
      interactive = true;
      prompt = event.arg ?? '';
    } else if (event.opt === 'q') quiet = true;
    // -l (run leaks), -v (echo the command) and -R (recovery mode) do not apply here.
  }
  if (help) return { mode: 'command', command: { op: 'help', topics: operands } };
  if (operands.length > 0) return { mode: 'command', command: parseSecurityCommand(operands) };
  if (interactive) return { mode: 'interactive', prompt, quiet };
  throw new ShimUsageError(formatGlobalUsage());
}

/**
 * Parses one command, `words[0]` being its (possibly abbreviated) name; `words` must not be empty (the
 * real tool does nothing for an empty line). Throws ShimUsageError carrying the real tool's output.
 */
export function parseSecurityCommand(words: readonly string[]): SecurityCommand {
  const [word = '', ...args] = words;
  const name = resolveSecurityCommand(word);
  switch (name) {
    case undefined:
      throw new ShimUsageError(shimOutput(1, '', `${PROG}: unknown command "${word}"\n`));
    case 'help':
      return { op: 'help', topics: args };
    case 'show-keychain-info':
      if (args.length > 1 || args[0] === '') throw new ShimUsageError(formatCommandUsage(name));
      return args[0] === undefined ? { op: name } : { op: name, keychain: args[0] };
    case 'find-generic-password':
    case 'find-internet-password':
      return parseFind(name, args);
    case 'delete-generic-password':
    case 'delete-internet-password':
      return parseDelete(name, args);
    case 'add-generic-password':
    case 'add-internet-password':
      return parseAdd(name, args);
    default:
      throw new ShimUsageError(shimOutput(1, '', `${PROG}: ${name}: not supported by the Entraclaw shim\n`));
  }
}

/** security.c split_line: whitespace-separated words, '…' or "…" quoting at a word's start, \ escapes. */
export function tokenizeSecurityLine(line: string): string[] {
  if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
    throw new ShimUsageError(
      shimOutput(1, '', `${PROG}: line longer than ${MAX_LINE_BYTES} bytes refused\n`),
    );
  }
  const words: string[] = [];
  let word: string | undefined;
  let quote = '';
  let escaped = false;
  for (const ch of line) {
    if (escaped) {
      word += ch;
      escaped = false;
    } else if (word === undefined) {
      if (/[ \t\n\v\f\r]/.test(ch)) continue;
      word = '';
      if (ch === '"' || ch === "'") quote = ch;
      else if (ch === '\\') escaped = true;
      else word = ch;
    } else if (ch === '\\') {
      escaped = true;
    } else if (quote ? ch === quote : /[ \t\n\v\f\r]/.test(ch)) {
      words.push(word);
      word = undefined;
      quote = '';
    } else {
      word += ch;
    }
  }
  if (word !== undefined) words.push(word);
  if (words.length > MAX_WORDS) {
    throw new ShimUsageError(
      shimOutput(1, '', `${PROG}: more than ${MAX_WORDS} words on one line refused\n`),
    );
  }
  return words;
}

/**
 * Splits `security -i` input into the lines it runs. Like the real readline(), a last line without a
 * newline is NOT run; it is returned as `unterminated` so the caller can say so instead of staying silent.
 */
export function splitSecurityScript(input: string): { lines: string[]; unterminated: string } {
  const lines = input.split('\n');
  const unterminated = lines.pop() ?? '';
  return { lines, unterminated };
}

/**
 * The Entraclaw lookup a find/delete stands for, as keychain_find.c searches: a generic password's -s
 * and -a are its primary key, and with both the real tool searches on them alone (-l is ignored). An
 * internet password's primary key also needs -d -r -t -P -p, which the shim refuses, so there -l always
 * narrows the search.
 */
export function entraclawQuery(command: SecurityFind | SecurityDelete): {
  service?: string;
  account?: string;
  label?: string;
} {
  const { service, account, label } = command.attributes;
  if (command.itemClass === 'generic' && service !== undefined && account !== undefined) {
    return { service, account };
  }
  return {
    ...(service !== undefined && { service }),
    ...(account !== undefined && { account }),
    ...(label !== undefined && { label }),
  };
}

function itemClassOf(name: string): SecurityItemClass {
  return name.includes('internet') ? 'internet' : 'generic';
}

function parseFind(name: string, args: readonly string[]): SecurityFind {
  const itemClass = itemClassOf(name);
  const attributes: SecurityAttributes = {};
  let output: SecurityFindOutput = 'attributes';
  const optstring = itemClass === 'generic' ? 'ha:c:C:D:G:j:l:s:wg' : 'ha:c:C:d:D:hgj:l:p:P:r:s:wt:';
  const keychains = runGetopt(name, args, optstring, (opt, arg) => {
    if (opt === 'w') output = 'password-only';
    else if (opt === 'g') output = output === 'password-only' ? output : 'password';
    else return setAttribute(attributes, itemClass, opt, arg);
    return true;
  });
  return { op: 'find', itemClass, attributes, output, keychains };
}

function parseDelete(name: string, args: readonly string[]): SecurityDelete {
  const itemClass = itemClassOf(name);
  const attributes: SecurityAttributes = {};
  const optstring = itemClass === 'generic' ? 'ha:c:C:D:G:j:l:s:g' : 'ha:c:C:d:D:hgj:l:p:P:r:s:t:';
  const keychains = runGetopt(name, args, optstring, (opt, arg) =>
    setAttribute(attributes, itemClass, opt, arg),
  );
  // The real tool refuses to delete "the first item of any kind" (SHOW_USAGE_MESSAGE); a port of 0 is unset.
  const given = Object.entries(attributes).some(
    ([key, value]) => value !== undefined && !(key === 'port' && value === 0),
  );
  if (!given) throw new ShimUsageError(formatCommandUsage(name));
  return { op: 'delete', itemClass, attributes, keychains };
}

function parseAdd(name: string, args: readonly string[]): SecurityAdd {
  const itemClass = itemClassOf(name);
  const attributes: SecurityAttributes = {};
  let password: Buffer | 'prompt' = Buffer.alloc(0);
  let update = false;
  let allowAnyApp = false;
  const trustedApps: string[] = [];
  const optstring =
    itemClass === 'generic' ? ':a:c:C:D:G:j:l:s:p:w:X:UAT:h' : ':a:c:C:d:D:j:l:p:P:r:s:t:w:X:UAT:h';
  const operands = runGetopt(
    name,
    args,
    optstring,
    (opt, arg = '') => {
      if (opt === 'w' || (opt === 'p' && itemClass === 'generic')) password = Buffer.from(arg);
      else if (opt === 'X') password = passwordFromHex(name, arg);
      else if (opt === 'U') update = true;
      else if (opt === 'A') allowAnyApp = true;
      else if (opt === 'T') trustedApps.push(arg);
      else return setAttribute(attributes, itemClass, opt, arg);
      return true;
    },
    // `-w` (or `-p`) as the last word has no value: the real tool prompts. (It checks for 'p' even in
    // add-internet-password, where -p is the path; reproduced.)
    (opt) => {
      if (opt !== 'w' && opt !== 'p') return false;
      password = 'prompt';
      return true;
    },
  );
  const { service, account } = attributes;
  if (account === undefined || service === undefined || operands.length > 1 || operands[0] === '') {
    throw new ShimUsageError(formatCommandUsage(name));
  }
  return {
    op: 'add',
    itemClass,
    attributes: { ...attributes, service, account, label: attributes.label ?? service },
    password,
    update,
    trustedApps,
    allowAnyApp,
    ...(operands[0] !== undefined && { keychain: operands[0] }),
  };
}

/**
 * Runs getopt over a command's arguments. `onOption` returns false for a letter the command's switch
 * has no case for (the real tool's `default:` -> usage). Returns the operands.
 */
function runGetopt(
  name: string,
  args: readonly string[],
  optstring: string,
  onOption: (opt: string, arg: string | undefined) => boolean,
  onMissing: (opt: string) => boolean = () => false,
): string[] {
  for (const event of getopt(args, optstring, PROG)) {
    if (event.kind === 'end') return event.operands;
    const ok =
      event.kind === 'option'
        ? onOption(event.opt, event.arg)
        : event.kind === 'missing' && onMissing(event.opt);
    if (!ok) {
      throw new ShimUsageError(formatCommandUsage(name, event.kind === 'option' ? '' : event.diagnostic));
    }
  }
  return [];
}

function setAttribute(
  attributes: SecurityAttributes,
  itemClass: SecurityItemClass,
  opt: string,
  arg = '',
): boolean {
  const internet = itemClass === 'internet';
  if (opt === 'a') attributes.account = arg;
  else if (opt === 's') attributes.service = arg;
  else if (opt === 'l') attributes.label = arg;
  else if (opt === 'D') attributes.kind = arg;
  else if (opt === 'j') attributes.comment = arg;
  else if (opt === 'c') attributes.creator = fourCharCode(arg);
  else if (opt === 'C') attributes.type = fourCharCode(arg);
  else if (opt === 'G' && !internet) attributes.generic = arg;
  else if (opt === 'd' && internet) attributes.securityDomain = arg;
  else if (opt === 'p' && internet) attributes.path = arg;
  else if (opt === 'P' && internet) attributes.port = atoi(arg) & 0xffff;
  else if (opt === 'r' && internet) attributes.protocol = fourCharCode(arg);
  else if (opt === 't' && internet) attributes.authType = fourCharCode(arg);
  else return false;
  return true;
}

/** keychain_utilities.c parse_fourcharcode: exactly 4 bytes, else status 1 (no usage message). */
function fourCharCode(arg: string): string {
  const length = Buffer.byteLength(arg);
  if (length === 4) return arg;
  const tip = length === 3 ? `(Try "${arg} " instead of "${arg}")\n` : '';
  throw new ShimUsageError(
    shimOutput(1, '', `Error: four-character types must be exactly 4 characters long.\n${tip}`),
  );
}

/** keychain_utilities.c convertHex: hex digits only, an odd count zero-padded on the left ('FFF' = 0x0FFF). */
function passwordFromHex(name: string, hex: string): Buffer {
  if (!/^[0-9A-Fa-f]*$/.test(hex)) {
    throw new ShimUsageError(
      formatCommandUsage(
        name,
        `${PROG}: Unable to convert password data (-X must specify valid hex digits)\n`,
      ),
    );
  }
  return Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex');
}

/** C atoi(3): optional blanks and sign, then digits; anything else ends the number (0 if none). */
function atoi(text: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(text);
  return m ? Number.parseInt(m[1] as string, 10) : 0;
}
