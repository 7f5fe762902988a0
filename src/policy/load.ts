import { join } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import type * as z from 'zod';
import { UsageError } from '../errors.js';
import type { Paths } from '../lib/paths.js';
import { readPrivateFile } from '../lib/private-file.js';
import { ANY } from './grant.js';
import { fromFile, type Policy, policyFileSchema } from './schema.js';
import {
  escapedStarLines,
  impossibleDates,
  issueMessage,
  lineOf,
  tomlKeyLines,
  tomlRawStrings,
  typedStarStrings,
} from './toml-lines.js';

/** Where the policy lives: `<config>/policy.toml`. */
export function policyPath(paths: Paths): string {
  return join(paths.config, 'policy.toml');
}

// Enough problems to fix in one go without burying the first one.
const MAX_REPORTED = 5;

/**
 * Reads and validates the policy file; a missing file is an empty policy. Anything else wrong, including a
 * file another user could have written, throws UsageError naming the line, since the daemon must not
 * act on a policy it cannot fully trust or understand.
 */
export function loadPolicy(path: string, uid = process.getuid?.()): Policy {
  return loadPolicyWithWarnings(path, uid).policy;
}

/** loadPolicy, and the policyWarnings of the file it loaded. */
export function loadPolicyWithWarnings(
  path: string,
  uid = process.getuid?.(),
): { policy: Policy; warnings: string[]; plainStars: Set<string>; source: string } {
  const hint = `the policy must be a file of yours, mode 600: check with ls -l ${path}`;
  const bytes = readPrivateFile(
    path,
    { named: path, readHint: hint, notFileHint: hint, role: 'the policy' },
    uid,
  );
  if (!bytes) return { policy: { clients: [] }, warnings: [], plainStars: new Set(), source: '' };
  const source = utf8Text(bytes, path);
  const policy = parsePolicy(source, path);
  // One scan of the text serves both: the warnings, and the names an edit must keep writing as typed.
  const plain = plainStarEntries(source, policy);
  return {
    policy,
    warnings: starWarnings(plain, path),
    plainStars: new Set(plain.map((e) => e.name)),
    source,
  };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

// TOML is UTF-8. Read leniently, a byte that is not (a Latin-1 é) would become U+FFFD inside a name: a
// grant for a name other than the one the file's editor shows. Refused, naming the first such line.
function utf8Text(bytes: Buffer, path: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    let start = 0;
    for (let line = 1; ; line++) {
      const end = bytes.indexOf(0x0a, start);
      try {
        UTF8.decode(bytes.subarray(start, end < 0 ? bytes.length : end));
      } catch {
        throw new UsageError(
          `${path}:${line}: not UTF-8 text (TOML is UTF-8)`,
          `save ${path} as UTF-8 (every request is denied until it loads)`,
        );
      }
      if (end < 0) throw new UsageError(`${path}: not UTF-8 text (TOML is UTF-8)`, `save ${path} as UTF-8`);
      start = end + 1;
    }
  }
}

/**
 * Entries of a valid policy that likely do not say what was meant, as `FILE:LINE: what`. In the file a
 * `*` is special only as a whole `services` or `accounts` entry; anywhere else it is a literal character
 * (a name may hold one), so `services = ["pre*"]` grants the one service named `pre*`. Not an error: such
 * a name is legal. A `*` written as the escape `\u002A` says it is meant as a character (`approve` & co
 * write it so for a `%2A` in a grant spec), so only one typed as is is warned about.
 */
export function policyWarnings(source: string, policy: Policy, path = 'policy.toml'): string[] {
  return starWarnings(plainStarEntries(source, policy), path);
}

type StarKey = 'services' | 'service_prefixes' | 'accounts';

/** A `*` typed into a grant name where it is only a character: the entry, and its line when known. */
interface StarEntry {
  key: StarKey;
  name: string;
  line: number | undefined;
}

// What each such entry likely meant, as `FILE:LINE: what` (policyWarnings).
function starWarnings(entries: readonly StarEntry[], path: string): string[] {
  const stem = (name: string) => JSON.stringify(name.replace(/\*+$/, ''));
  // Only stars ("**"): the stem is empty, which no prefix may be; every service is services = ["*"].
  const allStars = (name: string) => /^\*+$/.test(name);
  const advice: Record<StarKey, (name: string) => string> = {
    services: (name) =>
      allStars(name)
        ? 'matches only the service of that exact name: * is special only as a whole entry; for every service, write services = ["*"]'
        : name.endsWith('*')
          ? `matches only the service of that exact name: * is special only as a whole entry; for every service starting with ${stem(name)}, write service_prefixes = [${stem(name)}]`
          : 'matches only the service of that exact name: * is special only as a whole entry',
    service_prefixes: (name) =>
      allStars(name)
        ? 'matches services starting with that * itself: * in a prefix is a literal character; for every service, write services = ["*"]'
        : name.endsWith('*')
          ? `matches services starting with that * itself: a prefix needs no *, write ${stem(name)}`
          : 'matches services starting with that * itself: * in a prefix is a literal character',
    accounts: () =>
      'matches only the account of that exact name: * is special only as a whole entry ("*", every account); accounts have no prefixes',
  };
  return entries.map(
    ({ key, name, line }) =>
      `${path}${line ? `:${line}` : ''}: ${key} entry ${JSON.stringify(name)} ${advice[key](name)} (write the * as \\u002a if you mean the character)`,
  );
}

// The grant names with a `*` that is not the whole entry and was typed as is, not as an escape; a name
// whose text cannot be placed (an inline table) counts as typed when it is typed so anywhere in the file.
function plainStarEntries(source: string, policy: Policy): StarEntry[] {
  const lines = tomlKeyLines(source);
  const raw = tomlRawStrings(source);
  let typed: Set<string> | undefined;
  const typedSomewhere = (name: string) => {
    typed ??= typedStarStrings(source);
    return typed.has(name);
  };
  const entries: StarEntry[] = [];
  policy.clients.forEach((client, i) => {
    client.grants.forEach((grant, j) => {
      const names: Record<StarKey, string[]> = {
        services: grant.services,
        service_prefixes: grant.servicePrefixes,
        accounts: grant.accounts,
      };
      for (const key of ['services', 'service_prefixes', 'accounts'] as const) {
        names[key].forEach((name, k) => {
          if (name === ANY || !name.includes('*')) return;
          const path = ['client', i, 'grant', j, key];
          const written = raw.get(path.join('.'))?.[k];
          if (written !== undefined && !written.includes('*')) return;
          if (written === undefined && !typedSomewhere(name)) return;
          entries.push({ key, name, line: lineOf(lines, [...path, k]) });
        });
      }
    });
  });
  return entries;
}

/** Parses and validates policy TOML; `path` only names the file in errors. */
export function parsePolicy(source: string, path = 'policy.toml'): Policy {
  let doc: unknown;
  try {
    doc = parse(source);
  } catch (err) {
    if (err instanceof TomlError) {
      throw new UsageError(
        `${path}:${err.line}: ${err.message.split('\n')[0]}`,
        `fix the TOML syntax at line ${err.line}`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
  // `"\u002a"` says "the character *", yet parses to "*", every service or account: a wider grant than
  // the file reads as. No name may be only a *, so this is refused rather than read either way.
  const stars = escapedStarLines(source);
  if (stars.length > 0) {
    throw new UsageError(
      `invalid policy: ${stars
        .map(
          (line) =>
            `${path}:${line}: a * written as an escape means the character, but a name that is only * cannot be granted (policy.toml reads "*" as every service or account)`,
        )
        .join('; ')}`,
      `write "*" for every service or account, or name the items; fix ${path} (every request is denied until it loads)`,
    );
  }
  // A day the month does not have parses as one of the next month: a grant lasting longer than written.
  const dates = impossibleDates(source);
  if (dates.length > 0) {
    throw new UsageError(
      `invalid policy: ${dates.map(({ line, date }) => `${path}:${line}: ${date} is not a date (its month has no such day)`).join('; ')}`,
      `write a date that exists; fix ${path} (every request is denied until it loads)`,
    );
  }
  const result = policyFileSchema.safeParse(doc);
  if (result.success) return fromFile(result.data);
  const lines = tomlKeyLines(source);
  const problems = result.error.issues
    .flatMap((issue) => describeIssue(issue, lines))
    .sort((a, b) => a.line - b.line)
    .map((p) => `${path}${p.line ? `:${p.line}` : ''}: ${p.text}`);
  const more = problems.length > MAX_REPORTED ? `; and ${problems.length - MAX_REPORTED} more` : '';
  throw new UsageError(
    `invalid policy: ${problems.slice(0, MAX_REPORTED).join('; ')}${more}`,
    `fix ${path} (every request is denied until it loads)`,
  );
}

function describeIssue(
  issue: z.core.$ZodIssue,
  lines: Map<string, number>,
): { line: number; text: string }[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      line: lineOf(lines, [...issue.path, key].map(String)) ?? 0,
      text: `unknown key "${key}"${where(issue.path)}`,
    }));
  }
  const field = fieldName(issue.path);
  return [
    {
      line: lineOf(lines, issue.path.map(String)) ?? 0,
      text: `${field ? `${field}: ` : ''}${issueMessage(issue)}`,
    },
  ];
}

// `client.1.grant.0.operations.2` -> `operations[2]`: the line already says which client and grant.
function fieldName(path: readonly PropertyKey[]): string {
  let last = -1;
  for (let i = path.length - 1; i >= 0; i--) {
    if (typeof path[i] === 'string') {
      last = i;
      break;
    }
  }
  if (last < 0) return '';
  return (
    String(path[last]) +
    path
      .slice(last + 1)
      .map((i) => `[${String(i)}]`)
      .join('')
  );
}

function where(path: readonly PropertyKey[]): string {
  const tables = path.filter((p) => typeof p === 'string');
  return tables.length ? ` in [[${tables.join('.')}]]` : '';
}
