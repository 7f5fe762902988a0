// The command lines the macos-keychain store feeds `security -i`, checked on every platform: `security`
// reads each line into a 4096-byte buffer and runs what does not fit as further commands, so a line it
// would cut must be refused before it is sent (a cut -X value would be stored, over the item -U replaces).
import { describe, expect, it } from 'vitest';
import { TooLargeError } from '../../src/errors.js';
import { commandLine, MAX_COMMAND_LINE } from '../../src/store/macos/security-output.js';
import { addCommand, KEYCHAIN_MAX_VALUE_BYTES } from '../../src/store/macos-keychain.js';
import { MAX_VALUE_BYTES } from '../../src/store/types.js';

const bytes = (s: string) => Buffer.byteLength(s);

describe('security -i command lines', () => {
  it('refuses a line longer than security reads as one command', () => {
    const ok = commandLine(['find-generic-password', '-s', 'x'.repeat(MAX_COMMAND_LINE - 25)]);
    expect(bytes(ok)).toBe(MAX_COMMAND_LINE);
    expect(() => commandLine(['find-generic-password', '-s', 'x'.repeat(MAX_COMMAND_LINE - 24)])).toThrow(
      TooLargeError,
    );
  });

  it('refuses a value of the size other stores take, saying what fits', () => {
    const value = Buffer.alloc(MAX_VALUE_BYTES, 0x41);
    let err: unknown;
    try {
      addCommand({ service: 'svc', account: 'acct', value, kind: 'token' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TooLargeError);
    expect((err as TooLargeError).code).toBe('too_large');
    expect((err as TooLargeError).message).toMatch(/svc\/acct is 1048576 bytes; .* at most \d+/);
    expect((err as TooLargeError).hint).toMatch(/encrypted-file/);
  });

  it('takes KEYCHAIN_MAX_VALUE_BYTES beside the shortest names, and not a byte more', () => {
    expect(KEYCHAIN_MAX_VALUE_BYTES).toBeGreaterThan(1900);
    const line = addCommand({
      service: 's',
      account: 'a',
      value: Buffer.alloc(KEYCHAIN_MAX_VALUE_BYTES, 0xff),
    });
    expect(bytes(line)).toBeLessThanOrEqual(MAX_COMMAND_LINE);
    expect(line).toMatch(new RegExp(`-X (ff){${KEYCHAIN_MAX_VALUE_BYTES}}$`));
    expect(() =>
      addCommand({ service: 's', account: 'a', value: Buffer.alloc(KEYCHAIN_MAX_VALUE_BYTES + 1, 0xff) }),
    ).toThrow(TooLargeError);
  });

  it('counts the label and metadata: a small value beside a long label and scope is refused', () => {
    const input = {
      service: 'svc',
      account: 'acct',
      value: Buffer.from('tok'),
      label: '"'.repeat(1024),
      scope: '"'.repeat(1024),
    };
    expect(() => addCommand(input)).toThrow(/at most 0 \(/);
  });
});
