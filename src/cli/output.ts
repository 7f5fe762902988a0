import { EntraclawError, InterruptedError } from '../errors.js';
import { dieOfSigint } from '../lib/die-of-sigint.js';
import { terminalJson, visible } from '../lib/visible.js';
import { exitCodeFor } from './exit-codes.js';

/** Writes a value as pretty JSON on stdout (names from unapproved programs cannot act on the terminal). */
export function printJson(value: unknown): void {
  process.stdout.write(`${terminalJson(value, 2)}\n`);
}

/** A note for the user on stderr (never data). */
export function note(message: string): void {
  process.stderr.write(`entraclaw: ${visible(message)}\n`);
}

/**
 * The message of an unexpected error, minus the value Node's argument checks quote after "Received": an
 * internal error is a bug, and the value it tripped on may be a secret.
 */
export function internalMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_')) {
    const at = message.search(/\.?\s*Received\b/);
    if (at >= 0) return `${message.slice(0, at)} (${code}; the value is not shown)`;
  }
  return message;
}

/** Reports an error on stderr (JSON when asked) and returns the exit status it maps to. */
export function reportError(err: unknown, json: boolean): number {
  const e =
    err instanceof EntraclawError
      ? err
      : new EntraclawError(
          'internal',
          `internal error: ${internalMessage(err)}`,
          'please report this with `entraclaw doctor --json` output',
        );
  if (json) {
    process.stderr.write(`${terminalJson({ error: { code: e.code, message: e.message, hint: e.hint } })}\n`);
  } else {
    process.stderr.write(`entraclaw: ${visible(e.message)}\n${e.hint ? `  hint: ${visible(e.hint)}\n` : ''}`);
  }
  if (e.code === 'internal' && process.env.ENTRACLAW_DEBUG && err instanceof Error)
    process.stderr.write(`${err.stack}\n`);
  return exitCodeFor(e.code);
}

/**
 * Ends the command with `err`: reported, and its exit status set; after Ctrl-C at a prompt the process dies
 * of SIGINT, as the key does elsewhere (a shell shows 130 and a script running it stops).
 */
export async function failWith(err: unknown, json: boolean): Promise<void> {
  process.exitCode = reportError(err, json);
  if (err instanceof InterruptedError) {
    process.exitCode = 130;
    await dieOfSigint();
  }
}
