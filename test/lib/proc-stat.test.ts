import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { statFields } from '../../src/lib/proc-stat.js';

describe('statFields', () => {
  it('counts from field 3 even when the command name holds ") " and spaces', () => {
    const line = '4242 (evil) 1 2 (x) S 1 4242 4242 0 -1 4194560';
    const f = statFields(line);
    expect(f[3 - 3]).toBe('S');
    expect(f[5 - 3]).toBe('4242');
  });

  it.skipIf(process.platform !== 'linux')('reads this process: its state and its parent (field 4)', () => {
    const f = statFields(readFileSync('/proc/self/stat', 'latin1'));
    expect(f[0]).toMatch(/^[RSDTtZXIP]$/);
    expect(Number(f[4 - 3])).toBe(process.ppid);
  });
});
