#!/usr/bin/env -S node --
// The `--` matters: Node 20 reads `--env-file FILE` from anywhere in argv, even after the script, and
// would apply that file's NODE_OPTIONS to this very process before `entraclaw run --env-file` could refuse
// it. Nothing after `--` is taken as a Node option.
import { EXIT_STDOUT_CLOSED } from './exit-codes.js';
import { fastSecretGet } from './fast-get.js';
import { reportError } from './output.js';

// A reader that stops early (`entraclaw secret ls | head -1`) closes the pipe: end quietly with the
// status a tool killed by SIGPIPE has, instead of a stack trace about EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(EXIT_STDOUT_CLOSED);
});

// `entraclaw secret get SERVICE ACCOUNT` is what tools run on every request, so its plain forms skip
// commander (a third of what this command adds to node's start-up); other command lines go to program.ts.
const fast = fastSecretGet(process.argv.slice(2));
if (fast) {
  try {
    await (await import('./secret-get.js')).secretGet(fast.service, fast.account, fast.options);
  } catch (err) {
    process.exitCode = reportError(err, fast.options.json === true);
  }
} else {
  await import('./program.js');
}
