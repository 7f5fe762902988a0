import { basename } from 'node:path';
import { UsageError } from '../errors.js';
import { interpreterName } from '../identity/interpreter.js';
import { shellQuote } from '../lib/shell.js';
import { repinClient, upgradeClient } from '../policy/edit.js';
import { dropPending } from '../policy/pending.js';
import { note, printJson } from './output.js';
import { editPolicy, pinFile, policyFiles } from './policy-files.js';

/** Options of `upgrade`. */
export interface UpgradeOptions {
  json?: boolean;
  /** The client to re-pin to PATH (a program that moved). */
  client?: string;
  /** The script PATH runs: re-pins the client of that script (or --client) to PATH and this script. */
  script?: string;
}

/**
 * `entraclaw upgrade PATH`: re-pins a program or script after an update, keeping its grants. With
 * --client or --script, re-pins one client to PATH at another path (a program that moved, an interpreter
 * replaced by one elsewhere).
 */
export async function upgrade(path: string, opts: UpgradeOptions): Promise<void> {
  if (opts.client !== undefined || opts.script !== undefined) return repin(path, opts);
  const files = policyFiles();
  const pinned = pinFile(path, 'program');
  const { upgraded, changed } = await editPolicy(files.policy, (p) => {
    const r = upgradeClient(p, pinned.path, pinned.sha256);
    const before = new Map(p.clients.map((c) => [c.name, `${c.sha256} ${c.scriptSha256}`]));
    const changed = r.upgraded.some((c) => before.get(c.name) !== `${c.sha256} ${c.scriptSha256}`);
    return { policy: r.policy, result: { upgraded: r.upgraded, changed } };
  });
  const names = upgraded.map((c) => c.name).join(', ');
  const short = `sha256:${pinned.sha256.slice(0, 16)}…`;
  if (opts.json)
    printJson({ path: pinned.path, sha256: pinned.sha256, clients: upgraded.map((c) => c.name), changed });
  else if (changed) note(`re-pinned ${names} to ${short}`);
  else note(`${names} already pinned ${pinned.path} at ${short}; nothing changed`);
}

// `upgrade PROGRAM [--script FILE] --client NAME`, or `upgrade PROGRAM --script FILE`: one client, moved.
async function repin(path: string, opts: UpgradeOptions): Promise<void> {
  const files = policyFiles();
  const exe = pinFile(path, 'program');
  if (opts.script !== undefined && !interpreterName(basename(exe.path))) {
    throw new UsageError(
      `${path} is not an interpreter entraclaw knows (node, python, ruby, perl, bash, sh, zsh, deno, bun): with --script, PATH is the interpreter that runs the script`,
      `give the interpreter: entraclaw upgrade "$(command -v node)" --script ${shellQuote(opts.script)}${opts.client ? ` --client ${opts.client}` : ''}`,
    );
  }
  const script = opts.script !== undefined ? pinFile(opts.script, 'script') : undefined;
  const { before, client } = await editPolicy(files.policy, (p) => {
    const r = repinClient(p, {
      ...(opts.client !== undefined ? { name: opts.client } : {}),
      exe,
      ...(script ? { script } : {}),
    });
    return { policy: r.policy, result: r };
  });
  // What asked from the new place before this re-pin is this client now, no longer pending.
  await dropPending(
    files.pending,
    (e) =>
      e.exe === client.exe &&
      e.sha256 === client.sha256 &&
      e.script === client.script &&
      e.scriptSha256 === client.scriptSha256,
  );
  const changed =
    before.exe !== client.exe ||
    before.sha256 !== client.sha256 ||
    before.script !== client.script ||
    before.scriptSha256 !== client.scriptSha256;
  const what = `${client.exe} sha256:${client.sha256.slice(0, 16)}…${client.script ? ` + ${client.script}` : ''}`;
  if (opts.json)
    printJson({
      client: client.name,
      exe: client.exe,
      sha256: client.sha256,
      ...(client.script ? { script: client.script, scriptSha256: client.scriptSha256 } : {}),
      changed,
    });
  else if (changed)
    note(
      `re-pinned ${client.name} to ${what} (was ${before.exe}${before.script ? ` + ${before.script}` : ''})`,
    );
  else note(`${client.name} already pinned ${what}; nothing changed`);
}
