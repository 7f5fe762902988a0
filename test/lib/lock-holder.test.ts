import { describe, expect, it } from 'vitest';
import { devNumbers, flockHolder } from '../../src/lib/lock-holder.js';

const FILE = { major: 0xfe, minor: 0, ino: 2483869n };

describe('flockHolder (the text of /proc/locks)', () => {
  it('finds the holder of an flock on the file', () => {
    const text =
      '1: POSIX  ADVISORY  WRITE 77 fe:00:2483869 0 EOF\n2: FLOCK  ADVISORY  WRITE 29239 fe:00:2483869 0 EOF\n';
    expect(flockHolder(text, FILE)).toBe(29239);
  });

  it('skips waiters, other files and other devices', () => {
    const text = [
      '1: FLOCK  ADVISORY  WRITE 10 fe:01:2483869 0 EOF',
      '2: FLOCK  ADVISORY  WRITE 11 fe:00:24838690 0 EOF',
      '3: -> FLOCK  ADVISORY  WRITE 12 fe:00:2483869 0 EOF',
    ].join('\n');
    expect(flockHolder(text, FILE)).toBeUndefined();
  });

  it('does not name a holder in another pid namespace (pid 0 or -1)', () => {
    expect(flockHolder('1: FLOCK  ADVISORY  WRITE 0 fe:00:2483869 0 EOF', FILE)).toBeUndefined();
    expect(flockHolder('1: FLOCK  ADVISORY  WRITE -1 fe:00:2483869 0 EOF', FILE)).toBeUndefined();
  });

  it('prints major and minor as at least two hex digits', () => {
    const text = '1: FLOCK  ADVISORY  READ 5 103:0a:42 0 EOF';
    expect(flockHolder(text, { major: 0x103, minor: 10, ino: 42n })).toBe(5);
  });
});

describe('devNumbers', () => {
  it("splits a dev_t as glibc's major()/minor() do", () => {
    expect(devNumbers(0xfe00n)).toEqual({ major: 0xfe, minor: 0 });
    expect(devNumbers(0x803n)).toEqual({ major: 8, minor: 3 });
    // Numbers past 12 bits (major) and 8 bits (minor) spill into the high bits, as makedev() puts them.
    const makedev = (major: bigint, minor: bigint) =>
      ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
    expect(devNumbers(makedev(0x1234n, 0x10042n))).toEqual({ major: 0x1234, minor: 0x10042 });
  });
});
