// Pure helpers for driving macOS `/usr/bin/security`. Kept apart from the process I/O so they are
// tested on every platform; the process side is checked by hand on macOS.
import { TooLargeError } from '../../errors.js';

/** The attributes and password that `security find-generic-password -g` printed. */
export interface KeychainRecord {
  attributes: Record<string, string>;
  password?: Buffer;
}

const ATTR_LINE = /^\s+(?:"(\w{4})"|(0x[0-9A-Fa-f]{8}))\s*<(\w+)>=(.*)$/;

/** Decodes one attribute value as printed by `security`: `"text"`, `0xHEX  "text"`, or `<NULL>`. */
export function decodeAttributeValue(raw: string): string | undefined {
  const v = raw.trim();
  if (v === '<NULL>') return undefined;
  const hex = /^0x([0-9A-Fa-f]+)(?:\s+".*")?$/.exec(v);
  if (hex) return Buffer.from(hex[1]!, 'hex').toString('utf8').replace(/\0+$/, '');
  if (v.startsWith('"') && v.endsWith('"')) return unescapeQuoted(v.slice(1, -1));
  return v;
}

// `security` prints non-printable bytes inside quotes as \ooo octal escapes and doubles backslashes.
function unescapeQuoted(s: string): string {
  return s.replace(/\\([0-7]{3}|\\|")/g, (_, e: string) =>
    e === '\\' || e === '"' ? e : String.fromCharCode(Number.parseInt(e, 8)),
  );
}

/** Parses the `password: ...` line printed on stderr by `-g` into bytes (binary-safe via the hex form). */
export function parsePasswordLine(line: string): Buffer | undefined {
  const m = /^password:\s*(.*)$/.exec(line.trim());
  if (!m) return undefined;
  const v = m[1]!;
  if (v === '') return Buffer.alloc(0);
  const hex = /^0x([0-9A-Fa-f]*)(?:\s+".*")?$/.exec(v);
  if (hex) return Buffer.from(hex[1]!, 'hex');
  if (v.startsWith('"') && v.endsWith('"')) return Buffer.from(unescapeQuoted(v.slice(1, -1)), 'latin1');
  return undefined;
}

/** Parses the attribute block(s) of `find-generic-password` or `dump-keychain` output. */
export function parseRecords(stdout: string): KeychainRecord[] {
  const records: KeychainRecord[] = [];
  let current: KeychainRecord | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('keychain:')) {
      current = { attributes: {} };
      records.push(current);
      continue;
    }
    if (line.startsWith('class:') && current)
      current.attributes.class = decodeAttributeValue(line.slice(6)) ?? '';
    const m = ATTR_LINE.exec(line);
    if (m && current) {
      const value = decodeAttributeValue(m[4]!);
      if (value !== undefined) current.attributes[m[1] ?? m[2]!] = value;
    }
  }
  return records;
}

/** Converts a keychain timestamp (`20261124120000Z`) to ISO-8601. */
export function keychainDateToIso(s: string | undefined): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z/.exec(s ?? '');
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.000Z` : undefined;
}

/** Quotes one argument for `security -i`, whose command reader splits on blanks and honours double quotes. */
export function quoteArg(arg: string): string {
  if (/[\n\r\0]/.test(arg)) throw new TypeError('keychain attributes cannot contain newlines or NUL');
  return `"${arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The longest command line `security -i` runs as given. It reads each line into a 4096-byte buffer
 * (SecurityTool's MAX_LINE_LEN) and runs whatever did not fit as further commands: a longer
 * `add-generic-password ... -X HEX` would store a cut value, with -U over the item it replaces. A line of
 * exactly 4095 bytes leaves its newline behind as an empty command, whose status 0 replaces the real one.
 */
export const MAX_COMMAND_LINE = 4094;

/**
 * One `security -i` command line (without the newline). Throws TooLargeError when it is longer than
 * MAX_COMMAND_LINE bytes, which `security` would cut into several commands.
 */
export function commandLine(args: string[]): string {
  const line = args.map((a) => (/^-[A-Za-z]$/.test(a) || /^[\w-]+$/.test(a) ? a : quoteArg(a))).join(' ');
  const bytes = Buffer.byteLength(line);
  if (bytes > MAX_COMMAND_LINE) {
    throw new TooLargeError(
      `the ${args[0] ?? 'security'} command is ${bytes} bytes; security -i reads at most ${MAX_COMMAND_LINE} per command`,
    );
  }
  return line;
}
