#!/usr/bin/env node
import { fastSecretGet } from './fast-get.js';
import { reportError } from './output.js';

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
