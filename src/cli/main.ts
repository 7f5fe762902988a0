#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { reportError } from './output.js';

// Command modules are imported inside their actions so that `entraclaw secret get` loads only what it
// uses: start-up time is part of the product when a tool calls us on every request.

const program = new Command('entraclaw')
  .description('Per-user credential broker for agents and command-line tools')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

function storeOptions(cmd: Command): Command {
  return cmd
    .option('--store <name>', 'store to use: auto, secret-service, kernel-keyring, systemd-creds, encrypted-file, macos-keychain')
    .option('--passphrase-file <path>', 'file holding the vault passphrase (encrypted-file store)');
}

const secret = program.command('secret').description("the user's own hand on the stores: set, get, rm, ls");

storeOptions(secret.command('set <service> <account>'))
  .description('store a secret read from stdin (or --from-file, or a hidden prompt on a terminal)')
  .option('--kind <kind>', 'password | token | key')
  .option('--expires-at <iso>', 'expiry (tokens): reads after this time fail with exit 6')
  .option('--scope <scope>', 'scope metadata (tokens)')
  .option('--label <label>', 'human-readable label')
  .option('--from-file <path>', 'read the value from this file instead of stdin')
  .option('--json', 'print the stored metadata as JSON')
  .action(async (service: string, account: string, o) => (await import('./secret-set.js')).secretSet(service, account, o));

storeOptions(secret.command('get <service> <account>'))
  .description('print the raw value (no newline added); --json gives metadata and base64')
  .option('--allow-expired', 'return a token even if it is past expires_at')
  .option('--json', 'print metadata and the value as base64 JSON')
  .action(async (service: string, account: string, o) => (await import('./secret-get.js')).secretGet(service, account, o));

storeOptions(secret.command('rm <service> <account>'))
  .description('delete a secret')
  .option('--json', 'print the result as JSON')
  .action(async (service: string, account: string, o) => (await import('./secret-rm.js')).secretRm(service, account, o));

storeOptions(secret.command('ls'))
  .description('list items (metadata only, never values)')
  .option('--service <service>', 'only this service')
  .option('--json', 'print as JSON')
  .action(async (o) => (await import('./secret-ls.js')).secretLs(o));

program
  .command('doctor')
  .description('every store: available or not and why, persistence, boundary, and which is selected')
  .option('--store <name>', 'show what this choice would select')
  .option('--json', 'print as JSON')
  .action(async (o) => (await import('./doctor.js')).doctor(o));

const json = process.argv.includes('--json');
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    process.exitCode = reportError(err, json);
  }
}
