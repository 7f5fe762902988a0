import { spawn } from 'node:child_process';
import { EntraclawError, LockedError, NotFoundError, TooLargeError, UnavailableError } from '../errors.js';
import { itemName } from '../lib/percent.js';
import {
  commandLine,
  keychainDateToIso,
  MAX_COMMAND_LINE,
  parsePasswordLine,
  parseRecords,
} from './macos/security-output.js';
import type { Item, ItemInput, ItemKind, ItemMeta, Store, StoreBackend, StoreContext } from './types.js';

// Generic-password items through Apple's own `security` tool. Values and attributes go in on stdin
// (`security -i`, value as -X hex) so nothing secret ever appears in argv. Our metadata rides in the
// item's comment (`icmt`) as JSON tagged with a marker, so items made by other tools stay readable.
const SECURITY = '/usr/bin/security';
const MARKER = 'entraclaw:v1:';
const ERR_NOT_FOUND = 44;
const BOUNDARY =
  'macOS Keychain: encrypted by the login keychain; the item ACL admits the `security` tool, so any process of this user that can run it may read these items once unlocked';

interface Comment {
  kind?: ItemKind;
  expiresAt?: string;
  scope?: string;
}

/** Encodes our metadata for the keychain comment attribute. */
export function encodeComment(meta: Comment): string {
  return MARKER + JSON.stringify(meta);
}

/** Decodes our metadata from a keychain comment; foreign comments give {}. */
export function decodeComment(icmt: string | undefined): Comment {
  if (!icmt?.startsWith(MARKER)) return {};
  try {
    return JSON.parse(icmt.slice(MARKER.length)) as Comment;
  } catch {
    return {};
  }
}

/** Builds item metadata from a parsed keychain record. */
export function recordToMeta(attributes: Record<string, string>): ItemMeta {
  const c = decodeComment(attributes.icmt);
  const created = keychainDateToIso(attributes.cdat) ?? new Date(0).toISOString();
  return {
    service: attributes.svce ?? '',
    account: attributes.acct ?? '',
    kind: c.kind ?? 'password',
    ...(attributes['0x00000007'] ? { label: attributes['0x00000007'] } : {}),
    createdAt: created,
    updatedAt: keychainDateToIso(attributes.mdat) ?? created,
    ...(c.expiresAt ? { expiresAt: c.expiresAt } : {}),
    ...(c.scope ? { scope: c.scope } : {}),
  };
}

// add-generic-password's arguments before the value: -U replaces an item of the same service and account.
function addArgs(input: ItemInput): string[] {
  const comment = encodeComment({ kind: input.kind, expiresAt: input.expiresAt, scope: input.scope });
  const label = input.label ?? `entraclaw: ${input.service}/${input.account}`;
  return ['add-generic-password', '-U', '-s', input.service, '-a', input.account, '-l', label, '-j', comment];
}

/**
 * The `security -i` line that stores `input` (value as -X hex, so never in argv). Throws TooLargeError,
 * naming what would fit, when the line is longer than `security` reads as one command.
 */
export function addCommand(input: ItemInput): string {
  const args = addArgs(input);
  try {
    return commandLine([...args, '-X', input.value.toString('hex')]);
  } catch (err) {
    if (!(err instanceof TooLargeError)) throw err;
    throw new TooLargeError(
      `the value for ${itemName(input.service, input.account)} is ${input.value.length} bytes; with its names, label and metadata macos-keychain takes at most ${valueRoom(args)} (security -i reads command lines of at most ${MAX_COMMAND_LINE} bytes, the value in hex)`,
      'use --store encrypted-file for large values',
    );
  }
}

// How many value bytes fit, in hex after " -X ", on the line that `args` begin.
function valueRoom(args: string[]): number {
  let head: number;
  try {
    head = Buffer.byteLength(commandLine(args)) + ' -X '.length;
  } catch {
    return 0;
  }
  return Math.max(0, Math.floor((MAX_COMMAND_LINE - head) / 2));
}

/** The largest value macos-keychain can take: what fits beside the shortest names and metadata. */
export const KEYCHAIN_MAX_VALUE_BYTES = valueRoom(
  addArgs({ service: 's', account: 'a', value: Buffer.alloc(0) }),
);

function run(
  args: string[],
  stdin: string,
  timeoutMs: number,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SECURITY, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.on('error', (e) => reject(new UnavailableError(`cannot run ${SECURITY}: ${e.message}`)));
    child.on('close', (code, signal) =>
      signal
        ? reject(new UnavailableError(`${SECURITY} timed out or was killed (${signal})`))
        : resolve({ code: code ?? 1, out, err }),
    );
    child.stdin.end(stdin);
  });
}

function decodeError(code: number, err: string, what: string): EntraclawError {
  if (code === ERR_NOT_FOUND) return new NotFoundError(`${what} not found in macos-keychain`);
  if (/interaction is not allowed|locked/i.test(err)) {
    return new LockedError(
      `macos-keychain is locked while accessing ${what}`,
      'unlock it: security unlock-keychain',
    );
  }
  return new EntraclawError('internal', `security failed (exit ${code}) for ${what}: ${err.split('\n')[0]}`);
}

class MacosKeychainStore implements Store {
  readonly name = 'macos-keychain' as const;
  readonly persistence = 'until-delete' as const;
  readonly readOnly = false;
  readonly maxValueBytes = KEYCHAIN_MAX_VALUE_BYTES;

  constructor(private readonly timeoutMs: number) {}

  async get(service: string, account: string): Promise<Item | undefined> {
    const r = await run(
      ['-i'],
      `${commandLine(['find-generic-password', '-s', service, '-a', account, '-g'])}\n`,
      this.timeoutMs,
    );
    if (r.code === ERR_NOT_FOUND || /could not be found/.test(r.err)) return undefined;
    if (r.code !== 0) throw decodeError(r.code, r.err, itemName(service, account));
    const rec = parseRecords(r.out)[0];
    const value = r.err
      .split('\n')
      .map(parsePasswordLine)
      .find((v) => v !== undefined);
    if (!rec || !value)
      throw new EntraclawError(
        'internal',
        `unexpected output from security for ${itemName(service, account)}`,
      );
    return { ...recordToMeta(rec.attributes), value };
  }

  async set(input: ItemInput): Promise<ItemMeta> {
    const r = await run(['-i'], `${addCommand(input)}\n`, this.timeoutMs);
    if (r.code !== 0) throw decodeError(r.code, r.err, `${input.service}/${input.account}`);
    const stored = await this.get(input.service, input.account);
    if (!stored)
      throw new EntraclawError('internal', `macos-keychain did not keep ${input.service}/${input.account}`);
    const { value: _value, ...meta } = stored;
    return meta;
  }

  async delete(service: string, account: string): Promise<boolean> {
    const r = await run(
      ['-i'],
      `${commandLine(['delete-generic-password', '-s', service, '-a', account])}\n`,
      this.timeoutMs,
    );
    if (r.code === ERR_NOT_FOUND || /could not be found/.test(r.err)) return false;
    if (r.code !== 0) throw decodeError(r.code, r.err, itemName(service, account));
    return true;
  }

  async list(filter?: { service?: string }): Promise<ItemMeta[]> {
    const r = await run(['dump-keychain'], '', this.timeoutMs);
    if (r.code !== 0) throw decodeError(r.code, r.err, 'the item list');
    return parseRecords(r.out)
      .filter((rec) => rec.attributes.class === 'genp' && rec.attributes.icmt?.startsWith(MARKER))
      .map((rec) => recordToMeta(rec.attributes))
      .filter((m) => filter?.service === undefined || m.service === filter.service);
  }

  async close(): Promise<void> {}
}

function availability(): { ok: boolean; reason: string } {
  if (process.platform !== 'darwin') return { ok: false, reason: 'only on macOS' };
  return { ok: true, reason: `generic-password items in the default keychain via ${SECURITY}` };
}

/** The macOS Keychain backend (generic-password items). */
export const backend: StoreBackend = {
  async probe() {
    const a = availability();
    return {
      name: 'macos-keychain',
      available: a.ok,
      reason: a.reason,
      persistence: 'until-delete',
      readOnly: false,
      boundary: BOUNDARY,
    };
  },
  async open(ctx: StoreContext) {
    const a = availability();
    if (!a.ok) throw new UnavailableError(`store "macos-keychain" is unavailable: ${a.reason}`);
    return new MacosKeychainStore(ctx.timeoutMs);
  },
};
