import { expect } from 'vitest';
import { UsageError } from '../../src/errors.js';

/** Runs fn, expects it to throw a UsageError, and returns that error for further assertions. */
export function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error('expected a UsageError');
}
