import type { SecretGetOptions } from './secret-get.js';

/** A `secret get` command line, as commander would hand it to the action. */
export interface FastSecretGet {
  service: string;
  account: string;
  options: SecretGetOptions;
}

/**
 * Recognises the plain forms of `entraclaw secret get SERVICE ACCOUNT` without commander: tools run this
 * command on every request, and loading commander is about a third of what the command adds to node's own
 * start-up (bench/stores.mjs). Only command lines that commander parses to exactly this call are
 * accepted: two positionals not starting with '-', and at most once each --store and --passphrase-file
 * (`--opt VALUE` or `--opt=VALUE`, the value non-empty and not starting with '-'), --json and
 * --allow-expired. Anything else — help, `--`, unknown, repeated or malformed options, a wrong number of
 * arguments — gives undefined, and the full parser handles it, usage errors included.
 */
export function fastSecretGet(args: readonly string[]): FastSecretGet | undefined {
  if (args[0] !== 'secret' || args[1] !== 'get') return undefined;
  const positionals: string[] = [];
  const options: SecretGetOptions = {};
  for (let i = 2; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) {
      positionals.push(arg);
      continue;
    }
    if (arg === '--json' || arg === '--allow-expired') {
      const key = arg === '--json' ? 'json' : 'allowExpired';
      if (options[key] !== undefined) return undefined;
      options[key] = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    if (name !== '--store' && name !== '--passphrase-file') return undefined;
    const key = name === '--store' ? 'store' : 'passphraseFile';
    const value = eq < 0 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '' || value.startsWith('-') || options[key] !== undefined) {
      return undefined;
    }
    options[key] = value;
  }
  if (positionals.length !== 2) return undefined;
  return { service: positionals[0]!, account: positionals[1]!, options };
}
