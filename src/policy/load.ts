import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import type * as z from 'zod';
import { UsageError } from '../errors.js';
import type { Paths } from '../lib/paths.js';
import { fromFile, type Policy, policyFileSchema } from './schema.js';
import { lineOf, tomlKeyLines } from './toml-lines.js';

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
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { clients: [] };
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`, undefined, { cause: err });
  }
  assertPrivate(path, uid);
  return parsePolicy(source, path);
}

// Whoever can write the policy decides who gets secrets, so it must be ours and not group/world-writable.
function assertPrivate(path: string, uid: number | undefined): void {
  const st = statSync(path);
  if (uid !== undefined && st.uid !== uid) {
    throw new UsageError(
      `${path} is owned by uid ${st.uid}, not ${uid}`,
      `chown it to yourself: chown $(id -u) ${path}`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new UsageError(`${path} is writable by other users`, `chmod 600 ${path}`);
  }
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
      text: `${field ? `${field}: ` : ''}${issue.message}`,
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
