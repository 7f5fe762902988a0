// The `secret-tool` shim: libsecret's secret-tool command lines (store, lookup, clear, search) answered
// by the Entraclaw daemon. It talks only to the daemon, through the SDK; the daemon recognises this file
// by path and hash and decides every request for the program that ran `secret-tool`, not for this node
// process. Output and exit codes follow the real tool (secret-tool-format.ts, checked against it); what
// differs is in docs/shims.md.
import '../lib/inspector-signal.js';
import { isatty } from 'node:tty';
import { getSystemErrorMap } from 'node:util';
import { BrokerError, type Client } from '../client/index.js';
import { itemName } from '../lib/percent.js';
import type { Item, ItemMeta } from '../store/types.js';
import { type ShimOutput, shimOutput } from './output.js';
import { shimArguments } from './raw-argv.js';
import {
  brokerProblem,
  emit,
  isOutput,
  MAX_STDIN_SECRET,
  main,
  parsed,
  Session,
  Stdin,
  type Step,
} from './runtime.js';
import { parseSecretToolArgs, type SecretToolQuery, type SecretToolSearch } from './secret-tool-args.js';
import {
  formatLookup,
  formatNothing,
  formatSearch,
  formatSecretToolError,
  formatSecretToolHelp,
  SECRET_TOOL_PROMPT,
  SECRET_TOOL_STATUS,
  secretToolItem,
} from './secret-tool-format.js';

const session = new Session();

/**
 * secret-tool's failure for a daemon error: not_found is the real tool's "nothing matched" (status 1,
 * no output); anything else is reported the way it reports a D-Bus error, status 1.
 */
function failure(err: unknown, what: string, q: SecretToolQuery, ops: string): ShimOutput {
  if (err instanceof BrokerError && err.code === 'not_found') return formatNothing();
  const problem = brokerProblem(err, what, q, session.socket, ops);
  return shimOutput(
    SECRET_TOOL_STATUS.failure,
    '',
    `secret-tool: ${problem.message}\nsecret-tool: ${problem.hint}\n`,
  );
}

// The operations a command on `q` needs: a query missing the service or the account lists first.
function needs(q: SecretToolQuery, op: string): string {
  return q.service !== undefined && q.account !== undefined ? op : `list,${op}`;
}

function describe(q: SecretToolQuery): string {
  if (q.service !== undefined && q.account !== undefined) return `"${q.service}/${q.account}"`;
  return q.service !== undefined
    ? `the items of service "${q.service}"`
    : `the items of account "${q.account}"`;
}

/**
 * Every (service, account) the query matches, each once. A full pair is one item and needs no listing.
 * Another tool may have stored several keyring items under one pair (differing in other attributes): the
 * daemon addresses them all as that pair and reads its preferred one, so the pair is listed once.
 */
async function matching(
  client: Client,
  q: SecretToolQuery,
  step: Step,
): Promise<Array<Pick<ItemMeta, 'service' | 'account'>>> {
  // No item has an empty name (every store refuses one): nothing matches, as with the real tool.
  if (q.service === '' || q.account === '') return [];
  if (q.service !== undefined && q.account !== undefined) return [{ service: q.service, account: q.account }];
  const seen = new Set<string>();
  step.what = `list of ${describe(q)}`;
  return (await client.list(q.service)).filter((i) => {
    const key = JSON.stringify([i.service, i.account]);
    if (seen.has(key)) return false;
    seen.add(key);
    return (
      (q.service === undefined || i.service === q.service) &&
      (q.account === undefined || i.account === q.account)
    );
  });
}

/** Reads an item; undefined when it does not exist. */
async function read(client: Client, service: string, account: string, step: Step): Promise<Item | undefined> {
  step.what = `read of "${itemName(service, account)}"`;
  try {
    return await client.getItem(service, account);
  } catch (err) {
    if (err instanceof BrokerError && err.code === 'not_found') return undefined;
    throw err;
  }
}

async function lookup(q: SecretToolQuery): Promise<ShimOutput> {
  const step = { what: `read of ${describe(q)}` };
  try {
    const client = await session.client();
    for (const m of await matching(client, q, step)) {
      const item = await read(client, m.service, m.account, step);
      if (!item) continue;
      try {
        return formatLookup(item.value, isatty(1));
      } finally {
        item.value.fill(0);
      }
    }
    return formatNothing();
  } catch (err) {
    return failure(err, step.what, q, needs(q, 'read'));
  }
}

async function clear(q: SecretToolQuery): Promise<ShimOutput> {
  const step = { what: `delete of ${describe(q)}` };
  try {
    const client = await session.client();
    let deleted = 0;
    for (const m of await matching(client, q, step)) {
      step.what = `delete of "${itemName(m.service, m.account)}"`;
      try {
        await client.delete(m.service, m.account);
        deleted++;
      } catch (err) {
        if (!(err instanceof BrokerError && err.code === 'not_found')) throw err;
      }
    }
    return deleted > 0 ? shimOutput(SECRET_TOOL_STATUS.ok) : formatNothing();
  } catch (err) {
    return failure(err, step.what, q, needs(q, 'delete'));
  }
}

async function search(cmd: SecretToolSearch): Promise<ShimOutput> {
  const items: Item[] = [];
  const step = { what: `search of ${describe(cmd.query)}` };
  try {
    const client = await session.client();
    for (const m of await matching(client, cmd.query, step)) {
      const item = await read(client, m.service, m.account, step);
      if (item) items.push(item);
      if (items.length > 0 && !cmd.all) break;
    }
    return formatSearch(
      cmd,
      items.map((i) => secretToolItem(i)),
    );
  } catch (err) {
    return failure(err, step.what, cmd.query, needs(cmd.query, 'read'));
  } finally {
    for (const i of items) i.value.fill(0);
  }
}

const emptySecret = (why: string) =>
  formatSecretToolError(`Entraclaw does not store an empty secret (${why}); nothing was stored`);

/**
 * The secret for `store`: one line typed without echo on a terminal, else all of stdin, byte for byte.
 * An empty one is refused here, where it is known whether it was typed or piped.
 */
function secretFromStdin(): Buffer | ShimOutput {
  const stdin = new Stdin();
  if (stdin.isTTY) {
    const line = stdin.readSecretLine(SECRET_TOOL_PROMPT, { onTerminal: true });
    if (Buffer.isBuffer(line)) return line.length > 0 ? line : emptySecret('the secret typed was empty');
    return formatSecretToolError(
      line === 'canceled' ? 'canceled; nothing was stored' : 'no secret entered; nothing was stored',
    );
  }
  const all = stdin.readAll(MAX_STDIN_SECRET);
  if (all) return all.length > 0 ? all : emptySecret('stdin was empty');
  return formatSecretToolError(
    `the secret on stdin is larger than ${MAX_STDIN_SECRET} bytes; nothing was stored`,
  );
}

async function store(service: string, account: string, label: string): Promise<ShimOutput> {
  const secret = secretFromStdin();
  if (isOutput(secret)) return secret;
  try {
    await (await session.client()).set(service, account, secret, { label });
    return shimOutput(SECRET_TOOL_STATUS.ok);
  } catch (err) {
    return failure(err, `write of "${itemName(service, account)}"`, { service, account }, 'write');
  } finally {
    secret.fill(0);
  }
}

// glibc's strerror wording for the errors a write to stdout meets; others as libuv words them.
const STRERROR: Record<string, string> = { EIO: 'Input/output error' };

/**
 * emit for output holding a secret: a failed write to stdout (a full disk, a closed pipe) is the real
 * tool's `couldn't write password: <strerror>`, status 1, not a shim internal error.
 */
function emitSecret(out: ShimOutput): number {
  try {
    return emit(out);
  } catch (err) {
    const { errno, code, syscall } = err as NodeJS.ErrnoException;
    if (syscall !== 'write' || errno === undefined || code === undefined) throw err;
    out.stdout.fill(0);
    const words = STRERROR[code] ?? getSystemErrorMap().get(errno)?.[1] ?? code;
    const message = `couldn't write password: ${words.charAt(0).toUpperCase()}${words.slice(1)}`;
    return emit(formatSecretToolError(message));
  }
}

void main('secret-tool', async () => {
  try {
    const { args, invalid } = shimArguments();
    const cmd = parsed(() => parseSecretToolArgs(args, invalid));
    if (isOutput(cmd)) return emit(cmd);
    switch (cmd.op) {
      case 'help':
        return emit(formatSecretToolHelp(cmd.subcommand));
      case 'lock':
        // Saying "locked" while nothing was locked would be a silent security failure.
        return emit(
          formatSecretToolError(
            'lock is not supported by the Entraclaw shim: Entraclaw has no collections to lock (stop the daemon, or revoke the client, instead)',
          ),
        );
      case 'store':
        return emit(await store(cmd.service, cmd.account, cmd.label));
      case 'lookup':
        return emitSecret(await lookup(cmd.query));
      case 'clear':
        return emit(await clear(cmd.query));
      case 'search':
        return emitSecret(await search(cmd));
    }
  } finally {
    await session.close();
  }
});
