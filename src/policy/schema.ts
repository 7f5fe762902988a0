import { TomlDate } from 'smol-toml';
import * as z from 'zod';
import { readTimestamp, withinFourDigitYears } from '../store/item-rules.js';
import { DURATION_FORMAT, parseDuration } from './duration.js';
import { ANY, GRANT_OPERATIONS, GRANT_SOURCES, type Grant } from './grant.js';

/** An approved program: an executable by hash, optionally pinned to one script when it is an interpreter. */
export interface Client {
  name: string;
  exe: string;
  sha256: string;
  script?: string;
  scriptSha256?: string;
  added?: string;
  grants: Grant[];
}

/** The whole policy file. */
export interface Policy {
  clients: Client[];
}

/** The longest a confirmation may be remembered: a yes must not outlive a working day unasked. */
const MAX_CONFIRM_FOR_MS = 24 * 3600e3;

/** Whether `text` is a confirm_for window: a duration of at most 24 hours. */
export function isConfirmWindow(text: string): boolean {
  return (parseDuration(text) ?? Infinity) <= MAX_CONFIRM_FOR_MS;
}

const MAX_NAME_BYTES = 256;
const SHA256 = /^[0-9a-fA-F]{64}$/;
/** What a client name may be: short, and safe to print and to pass on a command line. */
export const CLIENT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}$/;

/** Why `value` is not a usable service/account name (same rules as the stores), or undefined when it is. */
export function nameProblem(value: string): string | undefined {
  if (value.length === 0) return 'must not be empty';
  if (Buffer.byteLength(value) > MAX_NAME_BYTES) return `must be at most ${MAX_NAME_BYTES} bytes`;
  if (/[\0\n\r]/.test(value)) return 'must not contain NUL or newline characters';
  return undefined;
}

// The message does not quote the name: one too long or with a newline is more likely a token or key
// pasted into the wrong place, and this message goes to the daemon's log, into the audit chain and to
// every refused request (the daemon's own request checks never quote one either). Line and field say which.
const itemName = z.string().superRefine((s, ctx) => {
  const problem = nameProblem(s);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const hash = z
  .string()
  .regex(SHA256, 'must be 64 hex digits (a SHA-256)')
  .transform((s) => s.toLowerCase());

const absolutePath = z
  .string()
  .refine((s) => s.startsWith('/') && !s.includes('\0'), 'must be an absolute path');

// TOML has a native datetime type as well as strings; accept both, but a native one only with a timezone,
// since a local time would mean a different instant to the daemon than to whoever wrote it. Strings follow
// the CLI's --expires-at rules.
const time = z.unknown().transform((v, ctx) => {
  let iso: string | undefined;
  if (v instanceof TomlDate) {
    if (v.isDateTime() && !v.isLocal()) iso = new Date(v.getTime()).toISOString();
  } else if (typeof v === 'string') {
    try {
      iso = readTimestamp(v, 'time');
    } catch {
      // Reported below, with the field's path.
    }
  }
  // Past the year 9999 in UTC is a time no policy.toml can hold: the CLI, writing it back, would refuse
  // its own file.
  if (iso !== undefined && withinFourDigitYears(iso)) return iso;
  ctx.addIssue({
    code: 'custom',
    message:
      iso === undefined
        ? 'must be a date and time with a timezone, e.g. "2026-12-01T00:00:00Z"'
        : 'must fall within the years 0000 to 9999 in UTC',
  });
  return z.NEVER;
});

const grantSchema = z
  .strictObject({
    services: z.array(itemName).optional(),
    service_prefixes: z.array(itemName).optional(),
    accounts: z.array(itemName).min(1, 'must name at least one account (write "*" for any)'),
    operations: z
      .array(z.enum(GRANT_OPERATIONS, { message: `must be one of ${GRANT_OPERATIONS.join(', ')}` }))
      .min(1, 'must name at least one operation'),
    expires_at: time.optional(),
    source: z.enum(GRANT_SOURCES, { message: `must be one of ${GRANT_SOURCES.join(', ')}` }).optional(),
    confirm: z.boolean({ message: 'must be true or false' }).optional(),
    confirm_for: z
      .string({ message: 'must be a duration string such as "10m"' })
      .refine(isConfirmWindow, {
        message: `must be ${DURATION_FORMAT}, at most 24h`,
      })
      .optional(),
  })
  .superRefine((g, ctx) => {
    if (g.confirm === false && g.confirm_for !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['confirm_for'],
        message: 'contradicts confirm = false (confirm_for means: confirm, and remember a yes that long)',
      });
    }
    if (!g.services?.length && !g.service_prefixes?.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['services'],
        message: 'a grant must name services or service_prefixes',
      });
    }
    if (g.service_prefixes?.includes(ANY)) {
      ctx.addIssue({
        code: 'custom',
        path: ['service_prefixes'],
        message: 'write services = ["*"] for every service',
      });
    }
  });

const clientSchema = z
  .strictObject({
    name: z
      .string()
      .regex(CLIENT_NAME, 'must be 1-64 ASCII letters, digits or _.@+- and not start with . @ + or -'),
    exe: absolutePath,
    sha256: hash,
    script: absolutePath.optional(),
    script_sha256: hash.optional(),
    added: time.optional(),
    grant: z.array(grantSchema).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.script !== undefined && c.script_sha256 === undefined) {
      ctx.addIssue({ code: 'custom', path: ['script'], message: 'script needs script_sha256' });
    }
    if (c.script === undefined && c.script_sha256 !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['script_sha256'], message: 'script_sha256 needs script' });
    }
  });

/** Schema of the TOML document as written (snake_case keys, `[[client]]` and `[[client.grant]]`). */
export const policyFileSchema = z
  .strictObject({ client: z.array(clientSchema).optional() })
  .superRefine((file, ctx) => {
    const names = new Map<string, number>();
    const identities = new Map<string, number>();
    (file.client ?? []).forEach((c, i) => {
      const first = names.get(c.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['client', i, 'name'],
          message: `"${c.name}" is already client #${first + 1}`,
        });
      }
      names.set(c.name, i);
      // Two entries for one identity would make the decision depend on their order in the file.
      const key = [c.sha256, c.script ?? '', c.script_sha256 ?? ''].join('\0');
      const same = identities.get(key);
      if (same !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['client', i, 'sha256'],
          message: `same program as client #${same + 1}; merge their grants`,
        });
      }
      identities.set(key, i);
    });
  });

/** The TOML document after validation, before conversion to a Policy. */
export type PolicyFile = z.output<typeof policyFileSchema>;

/** Converts the validated TOML document into the policy the daemon works with. */
export function fromFile(file: PolicyFile): Policy {
  return {
    clients: (file.client ?? []).map((c) => ({
      name: c.name,
      exe: c.exe,
      sha256: c.sha256,
      ...(c.script !== undefined ? { script: c.script, scriptSha256: c.script_sha256! } : {}),
      ...(c.added !== undefined ? { added: c.added } : {}),
      grants: (c.grant ?? []).map((g) => ({
        services: g.services ?? [],
        servicePrefixes: g.service_prefixes ?? [],
        accounts: g.accounts,
        operations: g.operations,
        ...(g.expires_at !== undefined ? { expiresAt: g.expires_at } : {}),
        ...(g.source !== undefined ? { source: g.source } : {}),
        ...(g.confirm || g.confirm_for !== undefined ? { confirm: true } : {}),
        ...(g.confirm_for !== undefined ? { confirmFor: g.confirm_for } : {}),
      })),
    })),
  };
}
