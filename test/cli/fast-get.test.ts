import { describe, expect, it } from 'vitest';
import { fastSecretGet } from '../../src/cli/fast-get.js';

// main.ts answers these command lines without commander, so each accepted form must mean exactly what
// commander would make of it, and everything else must be left to commander (undefined).
describe('the `secret get` fast path', () => {
  it('accepts the plain forms, with options before, between or after the names', () => {
    expect(fastSecretGet(['secret', 'get', 's', 'a'])).toEqual({ service: 's', account: 'a', options: {} });
    expect(fastSecretGet(['secret', 'get', '--store', 'kernel-keyring', 's', 'a'])).toEqual({
      service: 's',
      account: 'a',
      options: { store: 'kernel-keyring' },
    });
    expect(
      fastSecretGet([
        'secret',
        'get',
        's',
        '--json',
        'a',
        '--store=x',
        '--passphrase-file',
        '/p',
        '--allow-expired',
      ]),
    ).toEqual({
      service: 's',
      account: 'a',
      options: { json: true, store: 'x', passphraseFile: '/p', allowExpired: true },
    });
    expect(fastSecretGet(['secret', 'get', '', 'a b'])).toEqual({ service: '', account: 'a b', options: {} });
  });

  it('leaves every other command line to commander', () => {
    for (const args of [
      [],
      ['secret'],
      ['secret', 'set', 's', 'a'],
      ['secret', 'get'],
      ['secret', 'get', 's'],
      ['secret', 'get', 's', 'a', 'extra'],
      ['secret', 'get', 's', 'a', '--help'],
      ['secret', 'get', 's', 'a', '-h'],
      ['secret', 'get', '--', 's', 'a'],
      ['secret', 'get', '-x', 'a'],
      ['secret', 'get', 's', 'a', '--store'],
      ['secret', 'get', 's', 'a', '--store='],
      ['secret', 'get', 's', 'a', '--store', ''],
      ['secret', 'get', 's', 'a', '--store', '-x'],
      ['secret', 'get', 's', 'a', '--store', 'x', '--store', 'y'],
      ['secret', 'get', 's', 'a', '--json', '--json'],
      ['secret', 'get', 's', 'a', '--json=1'],
      ['secret', 'get', 's', 'a', '--unknown'],
      ['secret', 'get', 's', 'a', '-V'],
      ['--version'],
      ['get', 'secret', 's', 'a'],
    ]) {
      expect(fastSecretGet(args), args.join(' ')).toBeUndefined();
    }
  });
});
