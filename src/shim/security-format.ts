// What macOS `security` prints, reproduced from Apple's SecurityTool source (apple-oss-distributions
// Security, SecurityTool/macOS: security.c, keychain_find.c, keychain_add.c, keychain_utilities.c,
// keychain_show_info.c) — `security` itself cannot run here, so every format below cites the function
// it copies. Status values are the OSStatus codes of <Security/SecBase.h>; `security` returns them
// from main(), so the process exits with the low byte (-25300 -> 44).
import { EntraclawError } from '../errors.js';
import type { ItemMeta } from '../store/types.js';
import { type ShimOutput, shimOutput } from './output.js';
import type { SecurityFindOutput, SecurityItemClass } from './security-args.js';
import { resolveSecurityCommand, SECURITY_USAGE } from './security-commands.js';

/** Statuses the shim produces: OSStatus value, resulting exit code, and SecBase.h message. */
export const SECURITY_CODES = {
  success: { status: 0, exit: 0, message: '' },
  failure: { status: 1, exit: 1, message: '' },
  usage: { status: 2, exit: 2, message: '' },
  userCanceled: { status: -128, exit: 128, message: 'User canceled the operation.' },
  authFailed: {
    status: -25293,
    exit: 51,
    message: 'The user name or passphrase you entered is not correct.',
  },
  duplicateItem: { status: -25299, exit: 45, message: 'The specified item already exists in the keychain.' },
  itemNotFound: {
    status: -25300,
    exit: 44,
    message: 'The specified item could not be found in the keychain.',
  },
  interactionNotAllowed: { status: -25308, exit: 36, message: 'User interaction is not allowed.' },
} as const;

/** Prompts and complaint of add-*-password's `-w` with no value (keychain_add.c promptForPasswordData, via getpass(3)). */
export const ADD_PASSWORD_PROMPTS = {
  first: 'password data for new item: ',
  retype: 'retype password for new item: ',
  mismatch: "passwords don't match\n",
  tries: 3,
} as const;

/** Format version the real tool prints for a modern login.keychain-db. */
const KEYCHAIN_VERSION = 512;

/** Options shared by the attribute-block formatters. */
export interface SecurityFormatOptions {
  /** Keychain path shown on the `keychain:` line, e.g. defaultKeychainPath(home). */
  keychain: string;
}

/** The path the real tool shows for the login keychain of a user whose home is `home`. */
export function defaultKeychainPath(home: string): string {
  return `${home}/Library/Keychains/login.keychain-db`;
}

/**
 * keychain_utilities.c print_buffer: `"text"` when every byte is printable ASCII other than '\',
 * `0xHEX` (uppercase) plus a space when none is, otherwise both, `0xHEX  "te\134xt"`, with unprintable
 * bytes and '\' as 3-digit octal escapes. The space after the hex is unconditional in the C source, hence
 * one trailing space in the hex-only form (e.g. `"port"<uint32>=0x00000000 `).
 */
export function printBuffer(bytes: Uint8Array): string {
  const plain = (b: number) => b >= 0x20 && b <= 0x7e && b !== 0x5c;
  const ascii = bytes.some(plain);
  const hex = bytes.some((b) => !plain(b));
  let out = '';
  if (hex) out += `0x${Buffer.from(bytes).toString('hex').toUpperCase()}${ascii ? '  ' : ' '}`;
  if (ascii) {
    const text = [...bytes].map((b) =>
      plain(b) ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`,
    );
    out += `"${text.join('')}"`;
  }
  return out;
}

/** A shim item to describe: an Entraclaw item's metadata, plus its value when the password is shown. */
export type SecurityItem = ItemMeta & { value?: Buffer };

/** Output of find-*-password for an item that was found (keychain_find.c do_password_item_printing). */
export function formatFind(
  output: SecurityFindOutput,
  itemClass: SecurityItemClass,
  item: SecurityItem,
  options: SecurityFormatOptions,
): ShimOutput {
  if (output === 'attributes') return shimOutput(0, attributeBlock(itemClass, item, options));
  const value = item.value;
  if (!value) {
    throw new EntraclawError('internal', 'formatFind: the item value is needed to show the password');
  }
  if (output === 'password') {
    return shimOutput(0, attributeBlock(itemClass, item, options), `password: ${printBuffer(value)}\n`);
  }
  // -w: raw bytes, or lowercase hex when any byte fails isprint() in the C locale; then a newline.
  const printable = value.every((b) => b >= 0x20 && b <= 0x7e);
  return shimOutput(
    0,
    Buffer.concat([printable ? value : Buffer.from(value.toString('hex')), Buffer.from('\n')]),
  );
}

/** Output of delete-*-password after deleting `item` (keychain_find.c do_keychain_delete_*_password). */
export function formatDeleted(
  itemClass: SecurityItemClass,
  item: ItemMeta,
  options: SecurityFormatOptions,
): ShimOutput {
  return shimOutput(0, attributeBlock(itemClass, item, options), 'password has been deleted.\n');
}

/** find/delete when nothing matches: sec_perror("SecKeychainSearchCopyNext", errSecItemNotFound). */
export function formatNotFound(): ShimOutput {
  const { status, message } = SECURITY_CODES.itemNotFound;
  return shimOutput(status, '', `security: SecKeychainSearchCopyNext: ${message}\n`);
}

/** add without -U when the item exists (keychain_add.c do_add_generic_password / do_add_internet_password). */
export function formatDuplicate(itemClass: SecurityItemClass, keychain?: string): ShimOutput {
  const { status, message } = SECURITY_CODES.duplicateItem;
  const where =
    itemClass === 'generic'
      ? `SecKeychainItemCreateFromContent (${keychain ?? '<default>'})`
      : `SecKeychainAddInternetPassword ${keychain ?? '<NULL>'}`;
  return shimOutput(status, '', `security: ${where}: ${message}\n`);
}

/** show-keychain-info: Entraclaw has no lock interval, which the real tool words as no-timeout. */
export function formatShowKeychainInfo(keychain?: string): ShimOutput {
  return shimOutput(0, '', `Keychain "${keychain ?? '<NULL>'}" no-timeout\n`);
}

/** The line `security -i` prints after a command that failed, unless -q (security.c main). */
export function formatInteractiveResult(word: string, status: number): string {
  return `${word}: returned ${status}\n`;
}

// Refused rather than passed on lossily (raw-argv.ts). The messages name a position, never the bytes:
// the word may be a password.
const UTF8_ONLY = 'Entraclaw takes names and passwords as UTF-8 text; for a binary password use -X HEX';

/** An argument (1-based) that is not valid UTF-8: a usage error, and nothing was done. */
export function formatArgumentNotUtf8(position: number): ShimOutput {
  return shimOutput(
    SECURITY_CODES.usage.status,
    '',
    `security: argument ${position} is not valid UTF-8; nothing was done (${UTF8_ONLY})\n`,
  );
}

/** A `-i` input line (1-based) that is not valid UTF-8: a usage error for that line, which is not run. */
export function formatLineNotUtf8(line: number): ShimOutput {
  return shimOutput(
    SECURITY_CODES.usage.status,
    '',
    `security: input line ${line} is not valid UTF-8 and was not run (${UTF8_ONLY})\n`,
  );
}

/** A command's usage on stderr, status 2: what security.c execute_command prints when a command returns 2. */
export function formatCommandUsage(name: string, diagnostic = ''): ShimOutput {
  const entry = SECURITY_USAGE[name];
  if (!entry) throw new EntraclawError('internal', `formatCommandUsage: no usage for ${name}`);
  return shimOutput(2, '', `${diagnostic}Usage: ${name} ${entry.usage}\n        ${entry.help}\n`);
}

/** `security` with no command: security.c usage() on stdout, status 2 (listing only the commands the shim has). */
export function formatGlobalUsage(diagnostic = ''): ShimOutput {
  const text =
    'Usage: security [-h] [-i] [-l] [-p prompt] [-q] [-v] [command] [opt ...]\n' +
    '    -i    Run in interactive mode.\n' +
    '    -l    Run /usr/bin/leaks -nocontext before exiting.\n' +
    '    -p    Set the prompt to "prompt" (implies -i).\n' +
    '    -q    Be less verbose.\n' +
    "    -v    Be more verbose about what's going on.\n" +
    'security commands are:\n' +
    commandList();
  return shimOutput(2, text, diagnostic);
}

/** `security help [command...]` / `security -h`: security.c help(). */
export function formatHelp(topics: readonly string[]): ShimOutput {
  if (topics.length === 0) return shimOutput(0, commandList());
  let stdout = '';
  for (const topic of topics) {
    const name = resolveSecurityCommand(topic);
    const entry = name ? SECURITY_USAGE[name] : undefined;
    if (!entry) {
      const why = name ? `${name} is not supported by the Entraclaw shim` : `no such command: ${topic}`;
      return shimOutput(1, stdout, `security: help: ${why}\n`);
    }
    stdout += `Usage: ${name} ${entry.usage}\n`;
  }
  return shimOutput(0, stdout);
}

function commandList(): string {
  return Object.entries(SECURITY_USAGE)
    .map(([name, { help }]) => `    ${name.padEnd(36)} ${help}\n`)
    .join('');
}

type Format = 'blob' | 'timedate' | 'uint32' | 'sint32';
type Attribute = [tag: string | number, format: Format, value: Buffer | undefined];

/**
 * keychain_utilities.c print_keychain_item_attributes, for the attributes an Entraclaw item has; the
 * rest print as the real tool prints unset ones. Attribute order and formats are those of real output
 * (e.g. the genp/inet dumps quoted in fastlane-community/security#2 and Stack Overflow 22370552).
 */
function attributeBlock(
  itemClass: SecurityItemClass,
  item: ItemMeta,
  { keychain }: SecurityFormatOptions,
): Buffer {
  const text = (s: string) => Buffer.from(s);
  const zero = Buffer.alloc(4);
  const shared: Attribute[] = [
    [7, 'blob', text(item.label ?? item.service)],
    [8, 'blob', undefined],
    ['acct', 'blob', text(item.account)],
  ];
  const cdat: Attribute = ['cdat', 'timedate', timedate(item.createdAt)];
  const mdat: Attribute = ['mdat', 'timedate', timedate(item.updatedAt)];
  const attributes: Attribute[] =
    itemClass === 'generic'
      ? [
          ...shared,
          cdat,
          ['crtr', 'uint32', undefined],
          ['cusi', 'sint32', undefined],
          ['desc', 'blob', undefined],
          ['gena', 'blob', undefined],
          ['icmt', 'blob', undefined],
          ['invi', 'sint32', undefined],
          mdat,
          ['nega', 'sint32', undefined],
          ['prot', 'blob', undefined],
          ['scrp', 'sint32', undefined],
          ['svce', 'blob', text(item.service)],
          ['type', 'uint32', undefined],
        ]
      : [
          ...shared,
          ['atyp', 'blob', text('dflt')],
          cdat,
          ['crtr', 'uint32', undefined],
          ['cusi', 'sint32', undefined],
          ['desc', 'blob', undefined],
          ['icmt', 'blob', undefined],
          ['invi', 'sint32', undefined],
          mdat,
          ['nega', 'sint32', undefined],
          ['path', 'blob', undefined],
          ['port', 'uint32', zero],
          ['prot', 'blob', undefined],
          ['ptcl', 'uint32', zero],
          ['scrp', 'sint32', undefined],
          ['sdmn', 'blob', undefined],
          ['srvr', 'blob', text(item.service)],
          ['type', 'uint32', undefined],
        ];
  const lines = [
    `keychain: ${printBuffer(text(keychain))}`,
    `version: ${KEYCHAIN_VERSION}`,
    `class: ${printBuffer(text(itemClass === 'generic' ? 'genp' : 'inet'))}`,
    'attributes:',
    ...attributes.map(([tag, format, value]) => {
      const name = typeof tag === 'number' ? uint32(tag) : text(tag);
      return `    ${printBuffer(name)}<${format}>=${value === undefined ? '<NULL>' : printBuffer(value)}`;
    }),
  ];
  return text(`${lines.join('\n')}\n`);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A CSSM timedate attribute: "YYYYMMDDhhmmssZ" and a NUL, in UTC. */
function timedate(iso: string): Buffer {
  const stamp = new Date(iso).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return Buffer.from(`${stamp}Z\0`);
}
