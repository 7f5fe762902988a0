import { describe, expect, it } from 'vitest';
import { type GetoptEvent, getopt } from '../../src/shim/getopt.js';

const run = (args: string[], optstring: string): GetoptEvent[] => [...getopt(args, optstring, 'prog')];

describe('getopt (BSD libc semantics)', () => {
  it('reads flags, clustered flags, and arguments attached or in the next word', () => {
    expect(run(['-g', '-wq', '-afoo', '-s', 'svc', 'kc'], 'a:s:gwq')).toEqual([
      { kind: 'option', opt: 'g', arg: undefined },
      { kind: 'option', opt: 'w', arg: undefined },
      { kind: 'option', opt: 'q', arg: undefined },
      { kind: 'option', opt: 'a', arg: 'foo' },
      { kind: 'option', opt: 's', arg: 'svc' },
      { kind: 'end', operands: ['kc'] },
    ]);
  });

  it('takes the whole next word as the argument even when it starts with "-"', () => {
    expect(run(['-w', '-secret-', '-U'], ':w:U')).toEqual([
      { kind: 'option', opt: 'w', arg: '-secret-' },
      { kind: 'option', opt: 'U', arg: undefined },
      { kind: 'end', operands: [] },
    ]);
  });

  it('takes the rest of a cluster as the argument', () => {
    expect(run(['-gafoo'], 'a:g')).toEqual([
      { kind: 'option', opt: 'g', arg: undefined },
      { kind: 'option', opt: 'a', arg: 'foo' },
      { kind: 'end', operands: [] },
    ]);
  });

  it('stops at the first operand (no permutation), at "--" (consumed) and leaves a lone "-"', () => {
    expect(run(['kc', '-g'], 'g').at(-1)).toEqual({ kind: 'end', operands: ['kc', '-g'] });
    expect(run(['-g', '--', '-w'], 'gw').at(-1)).toEqual({ kind: 'end', operands: ['-w'] });
    expect(run(['-', '-g'], 'g')).toEqual([{ kind: 'end', operands: ['-', '-g'] }]);
  });

  it('prints libc diagnostics for an unknown option or a missing argument', () => {
    expect(run(['-z'], 'a:')[0]).toEqual({
      kind: 'illegal',
      opt: 'z',
      diagnostic: 'prog: illegal option -- z\n',
    });
    expect(run(['-a'], 'a:')[0]).toEqual({
      kind: 'missing',
      opt: 'a',
      diagnostic: 'prog: option requires an argument -- a\n',
    });
    expect(run(['--long'], 'a:')[0]).toEqual({
      kind: 'illegal',
      opt: '-',
      diagnostic: 'prog: illegal option -- -\n',
    });
  });

  it('is silent with a leading ":" and never treats ":" as an option', () => {
    expect(run(['-z', '-w'], ':w:')).toEqual([
      { kind: 'illegal', opt: 'z', diagnostic: '' },
      { kind: 'missing', opt: 'w', diagnostic: '' },
      { kind: 'end', operands: [] },
    ]);
    expect(run(['-:'], ':a:')[0]).toEqual({ kind: 'illegal', opt: ':', diagnostic: '' });
  });
});
