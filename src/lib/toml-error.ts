import { UsageError } from '../errors.js';

/**
 * The error for a file that is not valid TOML: `WHAT PATH:LINE: reason`, one line (smol-toml's message
 * also draws the file with a caret, which would reach the terminal as escaped newlines), and a hint.
 */
export function tomlSyntaxError(what: string, path: string, err: unknown): UsageError {
  const e = err as { message?: string; line?: unknown };
  const line = typeof e.line === 'number' ? e.line : undefined;
  const reason = (e.message ?? String(err)).split('\n')[0]!.replace(/^Invalid TOML document: /, '');
  return new UsageError(
    `${what}${path}${line !== undefined ? `:${line}` : ''} is not valid TOML: ${reason}`,
    line !== undefined ? `fix the syntax at line ${line} of ${path}` : `fix the syntax of ${path}`,
    { cause: err },
  );
}
