import { basename } from 'node:path';
import { interpreterName } from '../identity/interpreter.js';
import { addClient, freeName } from '../policy/edit.js';
import type { GrantOptions } from './approve.js';
import { note, printJson } from './output.js';
import { defaultName, editPolicy, grantsFrom, pinFile, policyFiles } from './policy-files.js';

/** `entraclaw register PATH [--script F] --grant ...`: pre-approves a program (and script) by hash. */
export async function register(path: string, opts: GrantOptions & { script?: string }): Promise<void> {
  const files = policyFiles();
  const grants = grantsFrom(opts);
  const exe = pinFile(path, 'program');
  const script = opts.script ? pinFile(opts.script, 'script') : undefined;
  const client = editPolicy(files.policy, (p) => {
    const client = {
      name: opts.name ?? freeName(p, defaultName(exe.path, script?.path)),
      exe: exe.path,
      sha256: exe.sha256,
      ...(script ? { script: script.path, scriptSha256: script.sha256 } : {}),
      added: new Date().toISOString(),
      grants,
    };
    return { policy: addClient(p, client), result: client };
  });
  const interpreter = script ? undefined : interpreterName(basename(exe.path));
  if (interpreter) {
    note(
      `warning: ${exe.path} is the ${interpreter} interpreter, registered without --script: "${client.name}" is every script it runs`,
    );
  }
  if (opts.json) printJson(client);
  else
    note(
      `registered ${client.name}: ${exe.path} sha256:${exe.sha256.slice(0, 16)}…${script ? ` + ${script.path}` : ''}`,
    );
}
