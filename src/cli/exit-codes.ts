import type { ErrorCode } from '../errors.js';

/** The one table from error code to process exit status (documented in docs/exit-codes.md). */
export const EXIT_CODES: Record<ErrorCode, number> = {
  internal: 1,
  usage: 2,
  bad_request: 2,
  too_large: 2,
  conflict: 2,
  not_found: 3,
  denied: 4,
  pending: 4,
  unavailable: 5,
  locked: 5,
  corrupt: 5,
  expired: 6,
};

/** Exit status for an error code. */
export function exitCodeFor(code: ErrorCode): number {
  return EXIT_CODES[code];
}

/** Exit status when the reader of stdout went away (`| head`): what a tool killed by SIGPIPE reports. */
export const EXIT_STDOUT_CLOSED = 141;

/** Exit status when stdout cannot be written (a full disk, an I/O error): not the command's fault, but it failed. */
export const EXIT_OUTPUT_FAILED = 1;
