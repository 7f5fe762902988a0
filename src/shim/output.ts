import { UsageError } from '../errors.js';

/** What one shim invocation prints and how it ends; the CLI writes both streams verbatim. */
export interface ShimOutput {
  stdout: Buffer;
  stderr: Buffer;
  /**
   * The tool's own result: an exit status for secret-tool, an OSStatus for `security` (e.g. -25300),
   * which `security -i` prints as is and the process exit truncates (see exitCodeOf).
   */
  status: number;
}

/** Builds a ShimOutput from strings or buffers; omitted streams are empty. */
export function shimOutput(
  status: number,
  stdout: string | Buffer = '',
  stderr: string | Buffer = '',
): ShimOutput {
  return { stdout: Buffer.from(stdout), stderr: Buffer.from(stderr), status };
}

/** The process exit code for a status, as exit(3) truncates it (-25300 becomes 44). */
export function exitCodeOf(status: number): number {
  return status & 0xff;
}

/**
 * A command line the real tool would refuse, carrying exactly what the real tool prints for it.
 * Its message is that text, and never contains a secret: the tools' usage errors only name options.
 */
export class ShimUsageError extends UsageError {
  override name = 'ShimUsageError';
  constructor(readonly output: ShimOutput) {
    super(Buffer.concat([output.stderr, output.stdout]).toString().trimEnd());
  }
}
