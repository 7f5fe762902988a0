import { readFile } from 'node:fs/promises';
import { parse } from 'dotenv';
import { UsageError } from '../errors.js';

// Values are parsed by dotenv itself, so quoting, escapes, comments and multi-line values mean exactly
// what they mean everywhere else dotenv is used. dotenv alone is not enough, though: it returns an
// object (no line numbers) and silently skips lines it cannot read and accepts names like `a.b` that
// no shell can export. So each entry is first located here — name, line, extent — and then handed to
// dotenv.parse on its own; anything that is not a NAME=value entry is an error naming file:line.

/** One variable from a .env file, in file order. */
export type EnvPair = readonly [name: string, value: string];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ASSIGNMENT = /^\s*(?:export\s+)?([^\s=]+?)\s*=(.*)$/;
const COLON_ASSIGNMENT = /^\s*(?:export\s+)?([\w.-]+):\s(.*)$/; // dotenv's YAML-ish `NAME: value`
const QUOTES = new Set(['"', "'", '`']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses .env text into ordered pairs (duplicates kept: a later one wins when applied). */
export function parseDotenv(text: string | Buffer, source: string): EnvPair[] {
  const lines = normalise(text, source).split('\n');
  const pairs: EnvPair[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const where = `${source}:${i + 1}`;
    const m = ASSIGNMENT.exec(line) ?? COLON_ASSIGNMENT.exec(line);
    // The line is not echoed: a stray line in a .env file is often a pasted secret.
    if (!m) {
      throw new UsageError(
        `${where}: not a NAME=value line`,
        'comment it out with # if it is not a variable',
      );
    }
    const name = m[1] as string;
    if (!NAME.test(name)) {
      throw new UsageError(
        `${where}: "${name}" is not a valid variable name`,
        'use letters, digits and _, not starting with a digit',
      );
    }
    refuseGluedComment(m[2] as string, where, name);
    const last = lastLineOfEntry(lines, i, m[2] as string);
    const value = parse(lines.slice(i, last + 1).join('\n'))[name];
    if (value === undefined) throw new UsageError(`${where}: cannot parse the value of ${name}`);
    // execve() cannot pass a NUL; left here, spawn would fail later and quote the value in its error.
    if (value.includes('\0')) {
      throw new UsageError(
        `${where}: the value of ${name} contains a NUL byte, which no environment variable can hold`,
        'remove it (a value pasted from a binary file?)',
      );
    }
    pairs.push([name, value]);
    i = last;
  }
  return pairs;
}

/** Reads and parses .env files in order; a variable in a later file overrides an earlier one. */
export async function loadDotenvFiles(paths: readonly string[]): Promise<EnvPair[]> {
  const pairs: EnvPair[] = [];
  for (const path of paths) {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new UsageError(
        `cannot read .env file ${path} (${code})`,
        code === 'ENOENT' ? 'check the path given to --env-file' : 'it must be a file you can read',
        { cause: err },
      );
    }
    pairs.push(...parseDotenv(bytes, path));
  }
  return pairs;
}

function normalise(text: string | Buffer, source: string): string {
  let s: string;
  try {
    s = typeof text === 'string' ? text : utf8.decode(text);
  } catch {
    throw new UsageError(`${source}: not UTF-8 text`, 'save it as UTF-8 (a .env file is text)');
  }
  // Same line-ending rule as dotenv, so our line numbers and its parse agree.
  return s.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

/**
 * dotenv ends an unquoted value at any `#` (`PASS=ab#cd` is `ab`), while a shell, docker compose and
 * direnv start a comment only at a `#` after white space (`ab#cd`). A `#` glued to the value, or right
 * after `=`, would silently give the command another value than the file seems to say: refused.
 */
function refuseGluedComment(afterEquals: string, where: string, name: string): void {
  if (QUOTES.has(afterEquals.trimStart()[0] ?? '')) return;
  const hash = afterEquals.indexOf('#');
  if (hash === -1 || (hash > 0 && /\s/.test(afterEquals[hash - 1] as string))) return;
  // The value is not echoed: it may be a secret pasted where a reference belongs.
  throw new UsageError(
    `${where}: the value of ${name} has a "#" with no space before it, which dotenv reads as the start of a comment (the rest of the value would be dropped) and a shell or docker compose as part of the value`,
    `quote the value if the "#" belongs to it (${name}="...#..."), or put a space before the comment`,
  );
}

/**
 * Index of the line where the entry starting at `first` ends. A quoted value spans lines when its
 * closing quote (not preceded by a backslash, as in dotenv) is followed only by blanks or a comment;
 * otherwise dotenv reads the line as an unquoted value, and so do we.
 */
function lastLineOfEntry(lines: readonly string[], first: number, afterEquals: string): number {
  const rest = afterEquals.trimStart();
  const quote = rest[0];
  if (quote === undefined || !QUOTES.has(quote)) return first;
  let text = rest.slice(1);
  for (let line = first; line < lines.length; line++) {
    for (let j = 0; j < text.length; j++) {
      if (text[j] === '\\' && text[j + 1] === quote) j++;
      else if (text[j] === quote) return /^\s*(#.*)?$/.test(text.slice(j + 1)) ? line : first;
    }
    text = lines[line + 1] ?? '';
  }
  return first;
}
