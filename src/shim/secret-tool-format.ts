// What libsecret's `secret-tool` prints (tool/secret-tool.c, libsecret 0.20.x). Every format and exit
// status here is checked against the real secret-tool in test/shim/secret-tool.test.ts, running in a
// throwaway gnome-keyring session; the few choices we cannot reproduce are noted where they are made.
import { itemAttributes } from '../store/secret-service/attributes.js';
import type { Item } from '../store/types.js';
import { type ShimOutput, shimOutput } from './output.js';
import type { SecretToolSearch, SecretToolSubcommand } from './secret-tool-args.js';

/** secret-tool's exit statuses: success, failure (also "not found", with no output), bad usage. */
export const SECRET_TOOL_STATUS = { ok: 0, failure: 1, usage: 2 } as const;

/** The prompt secret-tool store shows (getpass(3) on the terminal) when stdin is a TTY. */
export const SECRET_TOOL_PROMPT = 'Password: ';

/**
 * GLib's message (G_CONVERT_ERROR_ILLEGAL_SEQUENCE) when GOption meets an argument that is not UTF-8;
 * secret-tool prints it before the usage, status 2.
 */
export const INVALID_BYTE_SEQUENCE = 'Invalid byte sequence in conversion input';

/** secret-tool.c usage(), printed to stderr after every usage error. */
export const SECRET_TOOL_USAGE =
  "usage: secret-tool store --label='label' attribute value ...\n" +
  '       secret-tool lookup attribute value ...\n' +
  '       secret-tool clear attribute value ...\n' +
  '       secret-tool search [--all] [--unlock] attribute value ...\n' +
  "       secret-tool lock --collection='collection'\n";

// GOption's --help output for each subcommand, as printed in a UTF-8 locale (C.UTF-8 here).
const HELP_OPTIONS = 'Help Options:\n  -h, --help       Show help options\n\n';
const WIDE_HELP_OPTIONS = 'Help Options:\n  -h, --help           Show help options\n\n';
const HELP: Record<SecretToolSubcommand, string> = {
  store:
    'Usage:\n  secret-tool [OPTION…] attribute value ...\n\n' +
    WIDE_HELP_OPTIONS +
    'Application Options:\n' +
    '  -l, --label          the label for the new stored item\n' +
    '  -c, --collection     the collection in which to place the stored item\n\n',
  lookup: `Usage:\n  secret-tool [OPTION…] attribute value ...\n\n${HELP_OPTIONS}`,
  clear: `Usage:\n  secret-tool [OPTION…] attribute value ...\n\n${HELP_OPTIONS}`,
  search:
    'Usage:\n  secret-tool [OPTION…] attribute value ...\n\n' +
    HELP_OPTIONS +
    'Application Options:\n' +
    '  -a, --all        return all results, instead of just first one\n' +
    '  --unlock         unlock item results if necessary\n\n',
  lock:
    'Usage:\n  secret-tool [OPTION…] collections\n\n' +
    WIDE_HELP_OPTIONS +
    'Application Options:\n' +
    '  -c, --collection     collection in which to lock\n\n',
};

/** One item as `secret-tool search` shows it. */
export interface SecretToolItem {
  /** D-Bus object path; only its last element is shown. Omitted: "[no path]", as the real tool prints. */
  objectPath?: string;
  label: string;
  secret: Buffer;
  /** Unix seconds; 0 prints an empty date, as the real tool does. */
  created: number;
  modified: number;
  attributes: Readonly<Record<string, string>>;
}

/** A usage error: the message (if any), then the usage text, on stderr; status 2. */
export function formatSecretToolUsage(message?: string): ShimOutput {
  return shimOutput(SECRET_TOOL_STATUS.usage, '', `${message ? `${message}\n` : ''}${SECRET_TOOL_USAGE}`);
}

/** A failure reported the way secret-tool reports D-Bus errors: `secret-tool: <message>`, status 1. */
export function formatSecretToolError(message: string): ShimOutput {
  return shimOutput(SECRET_TOOL_STATUS.failure, '', `secret-tool: ${message}\n`);
}

/** `--help` / `-h` / `-?` of a subcommand: GOption help on stdout, status 0. */
export function formatSecretToolHelp(subcommand: SecretToolSubcommand): ShimOutput {
  return shimOutput(SECRET_TOOL_STATUS.ok, HELP[subcommand]);
}

/** `lookup` that found a value: the raw bytes, plus a newline only when stdout is a terminal. */
export function formatLookup(value: Buffer, stdoutIsTTY: boolean): ShimOutput {
  return shimOutput(SECRET_TOOL_STATUS.ok, stdoutIsTTY ? Buffer.concat([value, Buffer.from('\n')]) : value);
}

/** `lookup` that found nothing, and `clear` that deleted nothing: status 1 and no output at all. */
export function formatNothing(): ShimOutput {
  return shimOutput(SECRET_TOOL_STATUS.failure);
}

/**
 * `search`: each item's fields on stdout and its attributes (all but xdg:schema) on stderr. Without
 * --all only the first item is shown. The real tool prints attributes in GHashTable order, which is
 * not stable; we print them sorted by name.
 */
export function formatSearch(
  command: Pick<SecretToolSearch, 'all'>,
  items: readonly SecretToolItem[],
): ShimOutput {
  const stdout: Buffer[] = [];
  let stderr = '';
  for (const item of command.all ? items : items.slice(0, 1)) {
    const path =
      item.objectPath === undefined ? 'no path' : item.objectPath.slice(item.objectPath.lastIndexOf('/'));
    stdout.push(Buffer.from(`[${path}]\nlabel = ${item.label}\nsecret = `), item.secret);
    let fields = `\ncreated = ${when(item.created)}\nmodified = ${when(item.modified)}\n`;
    const schema = item.attributes['xdg:schema'];
    if (schema !== undefined) fields += `schema = ${schema}\n`;
    stdout.push(Buffer.from(fields));
    for (const name of Object.keys(item.attributes).sort()) {
      if (name !== 'xdg:schema') stderr += `attribute.${name} = ${item.attributes[name]}\n`;
    }
  }
  return shimOutput(SECRET_TOOL_STATUS.ok, Buffer.concat(stdout), stderr);
}

/**
 * An Entraclaw item as secret-tool sees it: the attributes Entraclaw's secret-service store gives the
 * item (service, account, xdg:schema io.entraclaw.Secret, entraclaw.kind, and entraclaw.expires_at /
 * entraclaw.scope when set), so that for an item written through Entraclaw into gnome-keyring the shim
 * and the real tool print the same lines. Attributes another tool added to an item are not known to the
 * daemon and are not shown.
 */
export function secretToolItem(item: Item, objectPath?: string): SecretToolItem {
  return {
    ...(objectPath !== undefined && { objectPath }),
    label: item.label ?? '',
    secret: item.value,
    created: Math.floor(Date.parse(item.createdAt) / 1000),
    modified: Math.floor(Date.parse(item.updatedAt) / 1000),
    attributes: itemAttributes(item),
  };
}

/** secret-tool.c print_item_when: UTC "%Y-%m-%d %H:%M:%S", or nothing for 0. */
function when(seconds: number): string {
  return seconds === 0 ? '' : new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ');
}
