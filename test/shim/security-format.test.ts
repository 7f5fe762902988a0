import { describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../src/shim/output.js';
import {
  ADD_PASSWORD_PROMPTS,
  defaultKeychainPath,
  formatCommandUsage,
  formatDeleted,
  formatDuplicate,
  formatFind,
  formatGlobalUsage,
  formatHelp,
  formatInteractiveResult,
  formatNotFound,
  formatShowKeychainInfo,
  printBuffer,
  SECURITY_CODES,
  type SecurityItem,
} from '../../src/shim/security-format.js';

// `security` cannot run on Linux, so expectations come from real output published by its users and
// from Apple's SecurityTool source; each case names its source.

const keychain = defaultKeychainPath('/Users/nicolas');

// fastlane-community/security#2: `security find-internet-password -s example.com -g` on OS X 10.10.
const inetItem: SecurityItem = {
  service: 'example.com',
  account: 'nicolas',
  kind: 'password',
  createdAt: '2015-09-17T15:34:15.000Z',
  updatedAt: '2015-09-17T15:34:15Z',
  value: Buffer.from('[EXPURGÉ]'),
};
const inetBlock = [
  'keychain: "/Users/nicolas/Library/Keychains/login.keychain-db"',
  'version: 512',
  'class: "inet"',
  'attributes:',
  '    0x00000007 <blob>="example.com"',
  '    0x00000008 <blob>=<NULL>',
  '    "acct"<blob>="nicolas"',
  '    "atyp"<blob>="dflt"',
  '    "cdat"<timedate>=0x32303135303931373135333431355A00  "20150917153415Z\\000"',
  '    "crtr"<uint32>=<NULL>',
  '    "cusi"<sint32>=<NULL>',
  '    "desc"<blob>=<NULL>',
  '    "icmt"<blob>=<NULL>',
  '    "invi"<sint32>=<NULL>',
  '    "mdat"<timedate>=0x32303135303931373135333431355A00  "20150917153415Z\\000"',
  '    "nega"<sint32>=<NULL>',
  '    "path"<blob>=<NULL>',
  '    "port"<uint32>=0x00000000 ',
  '    "prot"<blob>=<NULL>',
  // The real item had protocol "htps"; Entraclaw does not store it, so it prints as unset (zero).
  '    "ptcl"<uint32>=0x00000000 ',
  '    "scrp"<sint32>=<NULL>',
  '    "sdmn"<blob>=<NULL>',
  '    "srvr"<blob>="example.com"',
  '    "type"<uint32>=<NULL>',
  '',
].join('\n');

// Stack Overflow 22370552: `security find-generic-password -C note -s "Testing Note"` (a secure note;
// its desc/type attributes are not stored by Entraclaw and print as unset).
const genpItem: SecurityItem = {
  service: 'Testing Note',
  account: 'me',
  kind: 'password',
  label: 'Testing Note',
  createdAt: '2014-12-12T17:31:09Z',
  updatedAt: '2014-12-12T17:31:09Z',
};
const genpBlock = [
  'keychain: "/Users/nicolas/Library/Keychains/login.keychain-db"',
  'version: 512',
  'class: "genp"',
  'attributes:',
  '    0x00000007 <blob>="Testing Note"',
  '    0x00000008 <blob>=<NULL>',
  '    "acct"<blob>="me"',
  '    "cdat"<timedate>=0x32303134313231323137333130395A00  "20141212173109Z\\000"',
  '    "crtr"<uint32>=<NULL>',
  '    "cusi"<sint32>=<NULL>',
  '    "desc"<blob>=<NULL>',
  '    "gena"<blob>=<NULL>',
  '    "icmt"<blob>=<NULL>',
  '    "invi"<sint32>=<NULL>',
  '    "mdat"<timedate>=0x32303134313231323137333130395A00  "20141212173109Z\\000"',
  '    "nega"<sint32>=<NULL>',
  '    "prot"<blob>=<NULL>',
  '    "scrp"<sint32>=<NULL>',
  '    "svce"<blob>="Testing Note"',
  '    "type"<uint32>=<NULL>',
  '',
].join('\n');

describe('printBuffer (keychain_utilities.c print_buffer)', () => {
  it.each([
    ['printable text is quoted', Buffer.from('s3cret value'), '"s3cret value"'],
    ['a quote inside stays raw', Buffer.from('say "hi"'), '"say "hi""'],
    // fastlane-community/security#2
    ['UTF-8 gets hex and octal', Buffer.from('[EXPURGÉ]'), '0x5B455850555247C3895D  "[EXPURG\\303\\211]"'],
    // drudge/node-keychain#6
    ['a backslash forces the hex form', Buffer.from('passWith\\'), '0x70617373576974685C  "passWith\\134"'],
    ['nothing printable: hex and one trailing space', Buffer.from('∆˚'), '0xE28886CB9A '],
    ['a tag number', Buffer.from([0, 0, 0, 7]), '0x00000007 '],
    ['empty prints nothing', Buffer.alloc(0), ''],
    ['control characters', Buffer.from('a\nb\x7f'), '0x610A627F  "a\\012b\\177"'],
  ])('%s', (_why, bytes, expected) => {
    expect(printBuffer(bytes)).toBe(expected);
  });
});

describe('formatFind', () => {
  it('prints the internet-password attribute block, and -g adds the password line on stderr', () => {
    const out = formatFind('password', 'internet', inetItem, { keychain });
    expect(out.stdout.toString()).toBe(inetBlock);
    expect(out.stderr.toString()).toBe('password: 0x5B455850555247C3895D  "[EXPURG\\303\\211]"\n');
    expect(out.status).toBe(0);
  });

  it('prints the generic-password attribute block (label defaults to the service) and nothing on stderr', () => {
    const out = formatFind('attributes', 'generic', { ...genpItem, label: undefined }, { keychain });
    expect(out.stdout.toString()).toBe(genpBlock);
    expect(out.stderr.length).toBe(0);
  });

  it('does not need the value unless the password is shown', () => {
    expect(() => formatFind('password-only', 'generic', genpItem, { keychain })).toThrow(/value is needed/);
  });

  it('-w prints the raw password and a newline', () => {
    const out = formatFind(
      'password-only',
      'generic',
      { ...genpItem, value: Buffer.from('-secret- with "quotes" \\') },
      { keychain },
    );
    expect(out.stdout.toString()).toBe('-secret- with "quotes" \\\n');
    expect(out.stderr.length).toBe(0);
  });

  it('-w prints lowercase hex when any byte is not printable ASCII (Nanako0129/TokenBar#226)', () => {
    const value = Buffer.from('{"claudeAiOauth":{"accessToken":"café"}}');
    const out = formatFind('password-only', 'generic', { ...genpItem, value }, { keychain });
    expect(out.stdout.toString()).toBe(
      '7b22636c6175646541694f61757468223a7b22616363657373546f6b656e223a22636166c3a9227d7d\n',
    );
  });

  it('-w turns a multi-line or tab-containing value into hex too', () => {
    const out = formatFind(
      'password-only',
      'generic',
      { ...genpItem, value: Buffer.from('a\nb') },
      { keychain },
    );
    expect(out.stdout.toString()).toBe('610a62\n');
  });

  it('-w with an empty password prints just the newline; -g prints "password: "', () => {
    const empty = { ...genpItem, value: Buffer.alloc(0) };
    expect(formatFind('password-only', 'generic', empty, { keychain }).stdout.toString()).toBe('\n');
    expect(formatFind('password', 'generic', empty, { keychain }).stderr.toString()).toBe('password: \n');
  });
});

describe('statuses and messages', () => {
  it('not found: the real message on stderr and exit 44', () => {
    const out = formatNotFound();
    expect(out.stderr.toString()).toBe(
      'security: SecKeychainSearchCopyNext: The specified item could not be found in the keychain.\n',
    );
    expect(out.status).toBe(-25300);
    expect(exitCodeOf(out.status)).toBe(44);
    expect(out.stdout.length).toBe(0);
  });

  it('duplicate on add: the real message per item class and exit 45', () => {
    expect(formatDuplicate('generic').stderr.toString()).toBe(
      'security: SecKeychainItemCreateFromContent (<default>): The specified item already exists in the keychain.\n',
    );
    expect(formatDuplicate('generic', 'login.keychain').stderr.toString()).toMatch(/\(login\.keychain\): /);
    expect(formatDuplicate('internet').stderr.toString()).toBe(
      'security: SecKeychainAddInternetPassword <NULL>: The specified item already exists in the keychain.\n',
    );
    expect(exitCodeOf(formatDuplicate('internet').status)).toBe(45);
  });

  it('every code in the table exits with the low byte of its status', () => {
    for (const { status, exit } of Object.values(SECURITY_CODES)) expect(exitCodeOf(status)).toBe(exit);
  });

  it('delete prints the attributes and "password has been deleted."', () => {
    const out = formatDeleted('generic', genpItem, { keychain });
    expect(out.stdout.toString()).toBe(genpBlock);
    expect(out.stderr.toString()).toBe('password has been deleted.\n');
    expect(out.status).toBe(0);
  });

  it('show-keychain-info reports no timeout on stderr', () => {
    expect(formatShowKeychainInfo().stderr.toString()).toBe('Keychain "<NULL>" no-timeout\n');
    expect(formatShowKeychainInfo('login.keychain').stderr.toString()).toBe(
      'Keychain "login.keychain" no-timeout\n',
    );
  });

  it('interactive mode reports a failed command with its raw status', () => {
    expect(formatInteractiveResult('find-generic-password', -25300)).toBe(
      'find-generic-password: returned -25300\n',
    );
  });

  it('add prompts with the real getpass prompts', () => {
    expect(ADD_PASSWORD_PROMPTS.first).toBe('password data for new item: ');
    expect(ADD_PASSWORD_PROMPTS.retype).toBe('retype password for new item: ');
  });
});

describe('usage and help', () => {
  it('command usage goes to stderr with the help line, status 2', () => {
    const out = formatCommandUsage('find-generic-password', 'security: illegal option -- z\n');
    const text = out.stderr.toString();
    expect(
      text.startsWith(
        'security: illegal option -- z\nUsage: find-generic-password [-a account] [-s service] [options...] [-g] [keychain...]\n',
      ),
    ).toBe(true);
    expect(text).toContain('    -w  Display only the password on stdout\n');
    expect(
      text.endsWith(
        'If no keychains are specified to search, the default search list is used.\n        Find a generic password item.\n',
      ),
    ).toBe(true);
    expect(out.status).toBe(2);
  });

  it('global usage goes to stdout, status 2, listing the shim commands', () => {
    const out = formatGlobalUsage();
    const text = out.stdout.toString();
    expect(
      text.startsWith('Usage: security [-h] [-i] [-l] [-p prompt] [-q] [-v] [command] [opt ...]\n'),
    ).toBe(true);
    expect(text).toContain(`    ${'find-generic-password'.padEnd(36)} Find a generic password item.\n`);
    expect(out.status).toBe(2);
  });

  it('help prints usages for abbreviated names and refuses unsupported or unknown ones', () => {
    expect(formatHelp(['find-g']).stdout.toString()).toMatch(/^Usage: find-generic-password \[-a account\]/);
    expect(formatHelp([]).stdout.toString()).toContain('add-internet-password');
    const unsupported = formatHelp(['find-generic-password', 'dump-keychain']);
    expect(unsupported.status).toBe(1);
    expect(unsupported.stdout.toString()).toMatch(/^Usage: find-generic-password/);
    expect(unsupported.stderr.toString()).toBe(
      'security: help: dump-keychain is not supported by the Entraclaw shim\n',
    );
    expect(formatHelp(['nope']).stderr.toString()).toBe('security: help: no such command: nope\n');
  });
});
