import { accessSync, constants } from 'node:fs';
import { basename } from 'node:path';
import { UsageError } from '../errors.js';
import { interpreterName } from '../identity/interpreter.js';
import { interpreterTwin, twinWarning } from '../identity/interpreter-twin.js';
import { shellQuote } from '../lib/shell.js';
import { fileHead } from '../lib/which.js';
import { addClient, freeName } from '../policy/edit.js';
import { dropServed, type GrantOptions } from './approve.js';
import { note, printJson } from './output.js';
import {
  defaultName,
  editPolicy,
  grantsFrom,
  noteAskpassNeeded,
  pinFile,
  policyFiles,
} from './policy-files.js';

/** `entraclaw register PATH [--script F] --grant ...`: pre-approves a program (and script) by hash. */
export async function register(path: string, opts: GrantOptions & { script?: string }): Promise<void> {
  const files = policyFiles();
  const grants = grantsFrom(opts);
  await noteAskpassNeeded(opts);
  const exe = pinFile(path, 'program');
  const head = fileHead(exe.path);
  refuseScriptAsProgram(path, exe.path, head);
  refuseUnrunnable(path, exe.path);
  // Not a script, and no binary format the kernel runs natively: unless binfmt_misc runs it, nothing
  // connecting to the daemon will ever be this program.
  if (!NATIVE_MAGIC.some((m) => head.subarray(0, m.length).equals(m))) {
    note(
      `warning: ${path} is neither a #! script nor an executable binary (ELF, Mach-O): unless a binfmt_misc handler runs it, no program will ever match this client`,
    );
  }
  if (opts.script !== undefined && !interpreterName(basename(exe.path))) {
    throw new UsageError(
      `${path} is not an interpreter entraclaw knows (node, python, ruby, perl, bash, sh, zsh, deno, bun): the daemon never looks for a script behind it, so --script would never match`,
      `register the program without --script, or the interpreter that runs the script: entraclaw register "$(command -v node)" --script ${shellQuote(opts.script)} --grant ...`,
    );
  }
  const script = opts.script !== undefined ? pinFile(opts.script, 'script') : undefined;
  const client = await editPolicy(files.policy, (p) => {
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
  // What was waiting for approval and is now this client is no longer pending.
  await dropServed(files.pending, client);
  const interpreter = script ? undefined : interpreterName(basename(exe.path));
  if (interpreter) {
    note(
      `warning: ${exe.path} is the ${interpreter} interpreter, registered without --script: "${client.name}" is every script it runs`,
    );
  }
  const twin = script ? undefined : interpreterTwin(exe.path, exe.sha256);
  if (twin) note(twinWarning(exe.path, twin));
  if (opts.json) printJson(client);
  else
    note(
      `registered ${client.name}: ${exe.path} sha256:${exe.sha256.slice(0, 16)}…${script ? ` + ${script.path}` : ''}`,
    );
}

// ELF, and Mach-O in its thin (32/64-bit, either byte order) and universal forms.
const NATIVE_MAGIC = ['7f454c46', 'feedface', 'feedfacf', 'cefaedfe', 'cffaedfe', 'cafebabe'].map((h) =>
  Buffer.from(h, 'hex'),
);

// A file nobody may execute is never the program on the other end of the socket: pinning it would
// grant nothing, silently.
function refuseUnrunnable(given: string, real: string): void {
  try {
    accessSync(real, constants.X_OK);
  } catch {
    throw new UsageError(
      `${given} is not executable: no program connecting to the daemon can be it`,
      'give the path of the program that asks for secrets (`command -v NAME` finds it)',
    );
  }
}

// A `#!` script never runs as itself: the kernel runs its interpreter, so the caller the daemon sees is
// that interpreter with this script, and a client pinned to the script's bytes as a program never matches.
function refuseScriptAsProgram(given: string, real: string, head: Buffer): void {
  const line = head.toString('latin1').split('\n')[0] ?? '';
  if (!line.startsWith('#!')) return;
  const [interp = '', arg] = line.slice(2).trim().split(/\s+/);
  const program = basename(interp) === 'env' && arg ? `"$(command -v ${arg})"` : shellQuote(interp);
  throw new UsageError(
    `${given} is a script (${line.slice(0, 80)}): it runs as its interpreter, which is what the daemon sees`,
    `register the interpreter with the script pinned: entraclaw register ${program} --script ${shellQuote(real)} --grant ...`,
  );
}
