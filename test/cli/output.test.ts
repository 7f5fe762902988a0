import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { internalMessage } from '../../src/cli/output.js';

// The value a Node argument check trips on, as spawn() reports a NUL in an environment value.
function nodeArgError(value: string): unknown {
  try {
    spawnSync('true', [], { env: { A: value } });
  } catch (err) {
    return err;
  }
  throw new Error('spawnSync accepted a NUL in the environment');
}

describe('internalMessage', () => {
  it("drops the value Node's argument checks quote, keeping what failed", () => {
    const secret = 'ghp_CANARY_internal';
    const err = nodeArgError(`${secret}\0tail`);
    expect((err as Error).message).toContain(secret);
    const shown = internalMessage(err);
    expect(shown).not.toContain(secret);
    expect(shown).toContain("options.env['A']");
    expect(shown).toContain('ERR_INVALID_ARG_VALUE; the value is not shown');
  });

  it('keeps other messages as they are', () => {
    expect(internalMessage(new Error('boom'))).toBe('boom');
    expect(internalMessage('plain')).toBe('plain');
  });
});
