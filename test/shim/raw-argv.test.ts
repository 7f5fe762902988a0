import { describe, expect, it } from 'vitest';
import { decodeUtf8 } from '../../src/shim/raw-argv.js';

// Lossy arguments end to end (raw bytes through the installed shims) are in shim-e2e.test.ts.

describe('decodeUtf8', () => {
  it('returns the text of valid UTF-8, a leading BOM and a real U+FFFD included', () => {
    expect(decodeUtf8(Buffer.from('\uFEFFpw\uFFFD'))).toBe('\uFEFFpw\uFFFD');
    expect(decodeUtf8(Buffer.alloc(0))).toBe('');
  });

  it('returns undefined for bytes that are not UTF-8, wherever they are', () => {
    for (const bytes of [[0xff], [0x61, 0xfe], [0xe2, 0x82], [0xc0, 0x80], [0xed, 0xa0, 0x80]]) {
      expect(decodeUtf8(Uint8Array.from(bytes)), JSON.stringify(bytes)).toBeUndefined();
    }
  });
});
