// The `security` shim: macOS `security` command lines (find/add/delete of generic and internet
// passwords, -i) answered by the Entraclaw daemon. It talks only to the daemon, through the SDK; the
// daemon recognises this file by path and hash and decides every request for the program that ran
// `security`, not for this node process. Output and exit codes follow the real tool (security-format.ts);
// what differs is in docs/shims.md.
import '../lib/inspector-signal.js';
import { homedir } from 'node:os';
import { BrokerError, type Client } from '../client/index.js';
import { itemName } from '../lib/percent.js';
import type { ItemMeta } from '../store/types.js';
import { exitCodeOf, type ShimOutput, ShimUsageError, shimOutput } from './output.js';
import { decodeUtf8, shimArguments } from './raw-argv.js';
import {
  brokerProblem,
  emit,
  isOutput,
  main,
  parsed,
  Session,
  Stdin,
  type Step,
  writeAll,
} from './runtime.js';
import {
  entraclawQuery,
  parseSecurityArgs,
  parseSecurityCommand,
  type SecurityAdd,
  type SecurityAttributes,
  type SecurityCommand,
  type SecurityDelete,
  type SecurityFind,
  tokenizeSecurityLine,
} from './security-args.js';
import {
  ADD_PASSWORD_PROMPTS,
  defaultKeychainPath,
  formatArgumentNotUtf8,
  formatDeleted,
  formatDuplicate,
  formatFind,
  formatHelp,
  formatInteractiveResult,
  formatLineNotUtf8,
  formatNotFound,
  formatShowKeychainInfo,
  SECURITY_CODES,
  type SecurityItem,
} from './security-format.js';

const session = new Session();
const stdin = new Stdin();
const keychain = defaultKeychainPath(process.env.HOME || homedir());

// Options that select or describe keychain attributes Entraclaw items do not have. Matching while
// ignoring one could return the wrong item, and storing without it would drop data: refused.
const UNSUPPORTED: Record<Exclude<keyof SecurityAttributes, 'service' | 'account' | 'label'>, string> = {
  creator: '-c (creator)',
  type: '-C (type)',
  kind: '-D (kind)',
  comment: '-j (comment)',
  generic: '-G (generic attribute)',
  securityDomain: '-d (security domain)',
  path: '-p (path)',
  port: '-P (port)',
  protocol: '-r (protocol)',
  authType: '-t (authentication type)',
};

function refuseUnsupported(name: string, attributes: SecurityAttributes): ShimOutput | undefined {
  for (const [key, option] of Object.entries(UNSUPPORTED)) {
    const value = attributes[key as keyof SecurityAttributes];
    if (value === undefined || (key === 'port' && value === 0)) continue;
    return shimOutput(
      1,
      '',
      `security: ${name}: ${option} is not supported by the Entraclaw shim: Entraclaw items have only a service (-s), an account (-a) and a label (-l)\n`,
    );
  }
  return undefined;
}

/** security's failure output for a daemon error; not_found is the real tool's errSecItemNotFound. */
function failure(
  err: unknown,
  what: string,
  q: { service?: string; account?: string },
  ops: string,
): ShimOutput {
  if (err instanceof BrokerError && err.code === 'not_found') return formatNotFound();
  const problem = brokerProblem(err, what, q, session.socket, ops);
  // A refusal is the keychain's "access denied" (errSecAuthFailed, exit 51); a request waiting for the
  // user, or a locked store, is "user interaction is not allowed" (exit 36), as over ssh on a Mac.
  // Neither is 44, so `find || add` scripts never mistake a refusal for a missing item.
  const status =
    problem.code === 'denied'
      ? SECURITY_CODES.authFailed.status
      : problem.code === 'pending' || problem.code === 'locked'
        ? SECURITY_CODES.interactionNotAllowed.status
        : SECURITY_CODES.failure.status;
  return shimOutput(status, '', `security: ${problem.message}\nsecurity: ${problem.hint}\n`);
}

/** "SERVICE/ACCOUNT" when the query names one item. */
const itemOf = (q: { service?: string; account?: string }) =>
  q.service !== undefined && q.account !== undefined ? `${q.service}/${q.account}` : undefined;

function describe(q: { service?: string; account?: string; label?: string }): string {
  const item = itemOf(q);
  if (item !== undefined) return `"${item}"`;
  const parts = Object.entries(q).map(([k, v]) => `${k} "${v}"`);
  return parts.length > 0 ? `items with ${parts.join(' and ')}` : 'all items';
}

/**
 * The item a find/delete selects, with its value when `withValue`. With -s and -a it is read directly
 * (read access), and a -l in the query that names another label means no match; any other search lists
 * first (list access) and takes the first match, as the real tool takes the first item its search returns.
 */
async function select(
  client: Client,
  q: { service?: string; account?: string; label?: string },
  withValue: boolean,
  step: Step,
): Promise<SecurityItem | undefined> {
  const read = async (service: string, account: string): Promise<SecurityItem> => {
    step.what = `read of "${itemName(service, account)}"`;
    const item = await client.getItem(service, account, withValue ? {} : { allowExpired: true });
    if (withValue) return item;
    item.value.fill(0);
    const { value: _value, ...meta } = item;
    return meta;
  };
  const labelled = (i: ItemMeta) => q.label === undefined || (i.label ?? i.service) === q.label;
  if (q.service !== undefined && q.account !== undefined) {
    const item = await read(q.service, q.account);
    if (labelled(item)) return item;
    item.value?.fill(0);
    return undefined;
  }
  step.what = `list of ${describe(q)}`;
  const hit = (await client.list(q.service)).find(
    (i: ItemMeta) =>
      (q.service === undefined || i.service === q.service) &&
      (q.account === undefined || i.account === q.account) &&
      labelled(i),
  );
  if (!hit) return undefined;
  return withValue ? read(hit.service, hit.account) : hit;
}

async function find(cmd: SecurityFind, name: string): Promise<ShimOutput> {
  const refused = refuseUnsupported(name, cmd.attributes);
  if (refused) return refused;
  const q = entraclawQuery(cmd);
  const withValue = cmd.output !== 'attributes';
  let item: SecurityItem | undefined;
  const step = { what: `${itemOf(q) ? 'read' : 'search'} of ${describe(q)}` };
  try {
    item = await select(await session.client(), q, withValue, step);
  } catch (err) {
    return failure(err, step.what, q, itemOf(q) ? 'read' : 'list,read');
  }
  if (!item) return formatNotFound();
  try {
    return formatFind(cmd.output, cmd.itemClass, item, { keychain });
  } finally {
    item.value?.fill(0);
  }
}

async function remove(cmd: SecurityDelete, name: string): Promise<ShimOutput> {
  const refused = refuseUnsupported(name, cmd.attributes);
  if (refused) return refused;
  const q = entraclawQuery(cmd);
  const step = { what: `delete of ${describe(q)}` };
  try {
    const client = await session.client();
    const item = await select(client, q, false, step);
    if (!item) return formatNotFound();
    step.what = `delete of "${itemName(item.service, item.account)}"`;
    await client.delete(item.service, item.account);
    return formatDeleted(cmd.itemClass, item, { keychain });
  } catch (err) {
    return failure(err, step.what, q, itemOf(q) ? 'read,delete' : 'list,delete');
  }
}

/**
 * `-w` as the last option: keychain_add.c promptForPasswordData. The prompt and its retype go to stderr;
 * on a terminal the typing is not echoed, otherwise each is one line of stdin (as getpass(3) falls back
 * to when there is no terminal). Three mismatches, or the end of input, store nothing.
 */
function promptPassword(name: string): Buffer | ShimOutput {
  for (let tries = 0; tries < ADD_PASSWORD_PROMPTS.tries; tries++) {
    const first = stdin.readSecretLine(ADD_PASSWORD_PROMPTS.first);
    if (!Buffer.isBuffer(first)) return promptEnded(name, first);
    const again = stdin.readSecretLine(ADD_PASSWORD_PROMPTS.retype);
    if (!Buffer.isBuffer(again)) {
      first.fill(0);
      return promptEnded(name, again);
    }
    const same = first.equals(again);
    again.fill(0);
    if (same) return first;
    first.fill(0);
    writeAll(2, ADD_PASSWORD_PROMPTS.mismatch);
  }
  return shimOutput(
    SECURITY_CODES.failure.status,
    '',
    `security: ${name}: passwords did not match; nothing was stored\n`,
  );
}

function promptEnded(name: string, why: 'eof' | 'canceled'): ShimOutput {
  if (why === 'canceled') {
    const { status, message } = SECURITY_CODES.userCanceled;
    return shimOutput(status, '', `security: ${name}: ${message}\n`);
  }
  return shimOutput(
    SECURITY_CODES.failure.status,
    '',
    `security: ${name}: input ended before the password was entered twice; nothing was stored\n`,
  );
}

async function add(cmd: SecurityAdd, name: string): Promise<ShimOutput> {
  const refused = refuseUnsupported(name, cmd.attributes);
  if (refused) return refused;
  const { service, account, label } = cmd.attributes;
  const password = cmd.password === 'prompt' ? promptPassword(name) : cmd.password;
  if (isOutput(password)) return password;
  if (password.length === 0) {
    return shimOutput(
      1,
      '',
      `security: ${name}: Entraclaw does not store an empty password; nothing was stored\n`,
    );
  }
  const item = `"${itemName(service, account)}"`;
  // With -U the daemon decides whether the set creates or updates: name neither.
  const step = { what: cmd.update ? `write of ${item}` : `create of ${item}` };
  try {
    const client = await session.client();
    if (!cmd.update) {
      // The real tool refuses to replace an item without -U (errSecDuplicateItem). Entraclaw's `set`
      // always replaces, so look first; this needs read access as well as create.
      step.what = `read of ${item} (${name} looks first: it never replaces an item without -U)`;
      try {
        (await client.getItem(service, account, { allowExpired: true })).value.fill(0);
        return formatDuplicate(cmd.itemClass, cmd.keychain);
      } catch (err) {
        if (!(err instanceof BrokerError && err.code === 'not_found')) throw err;
      }
      step.what = `create of ${item}`;
    }
    await client.set(service, account, password, { kind: 'password', label });
    return shimOutput(0);
  } catch (err) {
    // Without -U the item is looked up first (the real tool refuses to replace it): read, then create.
    return failure(err, step.what, { service, account }, cmd.update ? 'write' : 'read,create');
  } finally {
    password.fill(0);
  }
}

async function run(cmd: SecurityCommand, name: string): Promise<ShimOutput> {
  switch (cmd.op) {
    case 'help':
      return formatHelp(cmd.topics);
    case 'show-keychain-info':
      return formatShowKeychainInfo(cmd.keychain);
    case 'find':
      return find(cmd, name);
    case 'delete':
      return remove(cmd, name);
    case 'add':
      return add(cmd, name);
  }
}

/** The full name of a (possibly abbreviated) command, for messages. */
const commandName = (cmd: SecurityCommand) =>
  cmd.op === 'find' || cmd.op === 'delete' || cmd.op === 'add'
    ? `${cmd.op}-${cmd.itemClass}-password`
    : cmd.op;

/** security.c main's interactive loop: one command per line, "<word>: returned <status>" after a failure. */
async function interactive(prompt: string, quiet: boolean): Promise<number> {
  let status = 0;
  for (let number = 1; ; number++) {
    if (stdin.isTTY) writeAll(2, prompt);
    const line = stdin.readLine();
    if (!Buffer.isBuffer(line)) {
      if (line.eof.length > 0) {
        line.eof.fill(0);
        // The real readline() drops it without a word; saying so beats a silently skipped command.
        emit(shimOutput(1, '', 'security: the last input line has no newline and was not run\n'));
        status = 1;
      }
      return status;
    }
    // The real tool parses the line as a C string, which ends at the first NUL.
    const nul = line.indexOf(0);
    const text = decodeUtf8(nul === -1 ? line : line.subarray(0, nul));
    line.fill(0);
    if (text === undefined) {
      const out = formatLineNotUtf8(number);
      status = out.status;
      emit(out);
      continue;
    }
    const words = parsed(() => tokenizeSecurityLine(text));
    if (isOutput(words)) {
      status = words.status;
      emit(words);
      continue;
    }
    const [word] = words;
    if (word === undefined) {
      status = 0;
      continue;
    }
    const cmd = parsed(() => parseSecurityCommand(words));
    const out = isOutput(cmd) ? cmd : await run(cmd, commandName(cmd));
    emit(out);
    status = out.status;
    if (status !== 0 && !quiet) writeAll(2, formatInteractiveResult(word, status));
  }
}

void main('security', async () => {
  try {
    const { args, invalid } = shimArguments();
    if (invalid[0] !== undefined) return emit(formatArgumentNotUtf8(invalid[0] + 1));
    const invocation = parseSecurityArgs(args);
    if (invocation.mode === 'interactive') {
      return exitCodeOf(await interactive(invocation.prompt, invocation.quiet));
    }
    return emit(await run(invocation.command, commandName(invocation.command)));
  } catch (err) {
    if (err instanceof ShimUsageError) return emit(err.output);
    throw err;
  } finally {
    await session.close();
  }
});
