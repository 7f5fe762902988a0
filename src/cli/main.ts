#!/usr/bin/env -S node --
// The `--` matters: Node 20 reads `--env-file FILE` from anywhere in argv, even after the script, and
// would apply that file's NODE_OPTIONS to this very process before `entraclaw run --env-file` could refuse
// it. Nothing after `--` is taken as a Node option.
import '../lib/inspector-signal.js';
import { EXIT_OUTPUT_FAILED, EXIT_STDOUT_CLOSED } from './exit-codes.js';
import { fastSecretGet } from './fast-get.js';
import { failWith } from './output.js';

// A reader that stops early (`entraclaw secret ls | head -1`) closes the pipe: end quietly with the
// status a tool killed by SIGPIPE has, instead of a stack trace about EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT_STDOUT_CLOSED);
  // Anything else (a full disk, an I/O error): said once, without a stack trace.
  process.stderr.write(
    `entraclaw: cannot write the output: ${err.code ?? err.message}\n  hint: check where stdout goes (a full disk? a read-only file?)\n`,
  );
  process.exit(EXIT_OUTPUT_FAILED);
});
// Diagnostics that cannot be written are lost, but the command's own outcome (a value stored, say) and
// its exit status must not turn into a crash because of them.
process.stderr.on('error', () => undefined);

/**
 * Runs the command line. `entraclaw secret get SERVICE ACCOUNT` is what tools run on every request, so
 * its plain forms skip commander (a third of what this command adds to node's start-up); other command
 * lines go to program.js. A function, not top-level await: the bundled bin is CommonJS (scripts/bundle.mjs).
 */
async function run(): Promise<void> {
  const fast = fastSecretGet(process.argv.slice(2));
  if (!fast) {
    await import('./program.js');
    return;
  }
  try {
    await (await import('./secret-get.js')).secretGet(fast.service, fast.account, fast.options);
  } catch (err) {
    await failWith(err, fast.options.json === true);
  }
}

void run();
