import { constants } from 'node:os';

/** A child's end as a shell reports it: its exit code, or 128 + the number of the signal that killed it. */
export function shellStatus(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? ((constants.signals as Record<string, number>)[signal] ?? 0) : 0);
}
