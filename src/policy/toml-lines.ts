import { parse } from 'smol-toml';

/**
 * Where each key and table of a TOML document starts, by path (`client.1.grant.0.operations`), so errors
 * about a parsed document can name a line: smol-toml reports lines for syntax errors only. It runs on
 * documents that already parsed, so it only has to follow valid TOML: headers, dotted and quoted keys,
 * arrays of tables, and values that span lines (arrays, inline tables, multi-line strings).
 */
export function tomlKeyLines(source: string): Map<string, number> {
  const lines = new Map<string, number>();
  walk(source, (path, lineNo) => lines.set(path, lineNo));
  return lines;
}

/**
 * The strings of each key's value as written, quotes and escapes included, by path (as tomlKeyLines):
 * parsing loses whether a `*` in a name was typed as is or as the escape `\u002A`, which says "literal".
 */
export function tomlRawStrings(source: string): Map<string, string[]> {
  const strings = new Map<string, string[]>();
  walk(source, (path, _lineNo, value) => strings.set(path, rawStrings(value)));
  return strings;
}

/** Told each path found, with its line and its value as written ('' for a table header). */
type Visit = (path: string, lineNo: number, value: string) => void;

// Calls `visit` for each table header (with no value) and key/value pair of a valid TOML document, and
// for what an inline value holds (walkInline).
function walk(source: string, visit: Visit): void {
  const arrayCounts = new Map<string, number>();
  const lastIndex = new Map<string, number>();
  const seen = new Set<string>();
  let table: string[] = [];
  const text = source.split(/\r?\n/);

  // Array-of-tables segments resolve to the element most recently opened, as TOML does.
  const resolve = (keys: string[]): string[] => {
    const out: string[] = [];
    for (const k of keys) {
      out.push(k);
      const index = lastIndex.get(out.join('.'));
      if (index !== undefined) out.push(String(index));
    }
    return out;
  };

  for (let i = 0; i < text.length; i++) {
    const line = text[i]!.trim();
    const lineNo = i + 1;
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(\[?)\s*(.*?)\s*\]?\]\s*(#.*)?$/.exec(line);
    if (header && line.startsWith('[')) {
      const keys = splitKey(header[2]!);
      if (header[1] === '[') {
        const parent = resolve(keys.slice(0, -1));
        const base = [...parent, keys[keys.length - 1]!].join('.');
        const index = arrayCounts.get(base) ?? 0;
        arrayCounts.set(base, index + 1);
        lastIndex.set(base, index);
        // The array itself is placed at its first element, for errors about the whole array.
        if (!seen.has(base)) {
          seen.add(base);
          visit(base, lineNo, '');
        }
        table = [...parent, keys[keys.length - 1]!, String(index)];
      } else {
        table = resolve(keys);
      }
      visit(table.join('.'), lineNo, '');
      continue;
    }
    const eq = keyEnd(line);
    if (eq < 0) continue;
    const keys = [...table, ...splitKey(line.slice(0, eq))];
    // A dotted key (`client.name = ...`) defines its tables where it is first written.
    for (let n = table.length + 1; n < keys.length; n++) {
      const parent = keys.slice(0, n).join('.');
      if (!seen.has(parent)) {
        seen.add(parent);
        visit(parent, lineNo, '');
      }
    }
    const path = keys.join('.');
    // Take in the continuation lines of a value that spans lines, so their contents are never read as keys.
    const value = [line.slice(eq + 1)];
    let state = scanValue(value[0]!, { depth: 0, multiline: undefined });
    while ((state.depth > 0 || state.multiline) && i + 1 < text.length) {
      i++;
      value.push(text[i]!);
      state = scanValue(text[i]!, state);
    }
    visit(path, lineNo, value.join('\n'));
    walkInline(value.join('\n'), lineNo, keys, visit);
  }
}

// Calls `visit` for each element of an array and each key of an inline table in a value (as written
// after its `=`, continuation lines included), at the line where it starts: in `grant = [` followed by
// one `{ ... }` per line, an error in the second grant names the second grant's line, not the `grant =`.
function walkInline(text: string, firstLine: number, path: readonly string[], visit: Visit): void {
  let i = 0;
  let line = firstLine;
  // Past spaces, newlines and comments.
  const blank = () => {
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\n') line++;
      else if (c === '#') {
        while (i + 1 < text.length && text[i + 1] !== '\n') i++;
      } else if (c !== ' ' && c !== '\t') return;
    }
  };
  // Past the value at i, visiting what it holds.
  const value = (at: readonly string[]): void => {
    const open = text[i];
    if (open === '"' || open === "'") {
      const end = stringEnd(text, i);
      line += text.slice(i, end).split('\n').length - 1;
      i = end;
      return;
    }
    if (open !== '[' && open !== '{') {
      // A number, boolean or date: up to what ends it.
      while (i < text.length && !/[,\]}\n#]/.test(text[i]!)) i++;
      return;
    }
    i++;
    for (let n = 0; ; ) {
      blank();
      if (i >= text.length) return;
      if (text[i] === (open === '[' ? ']' : '}')) {
        i++;
        return;
      }
      if (text[i] === ',') {
        i++;
        continue;
      }
      const start = line;
      let keys: string[];
      if (open === '[') keys = [...at, String(n++)];
      else {
        const eq = keyEnd(text.slice(i));
        if (eq < 0) return;
        keys = [...at, ...splitKey(text.slice(i, i + eq))];
        i += eq + 1;
        blank();
      }
      const from = i;
      value(keys);
      visit(keys.join('.'), start, text.slice(from, i));
    }
  };
  blank();
  value(path);
}

// The string tokens of a value, as written, in order; comments skipped.
function rawStrings(value: string): string[] {
  return stringTokens(value).map((t) => t.raw);
}

/**
 * The lines of the strings that are only a `*` written with an escape (`"\u002a"`), anywhere in a valid
 * TOML document, inline tables included. Parsed, such a string is `"*"`, which policy.toml reads as every
 * service or account, while the escape says the character was meant: neither reading may be guessed.
 */
export function escapedStarLines(source: string): number[] {
  const lines: number[] = [];
  if (!source.includes('\\')) return lines;
  for (const { raw, offset } of stringTokens(source)) {
    if (!raw.startsWith('"') || !raw.includes('\\')) continue;
    let value: unknown;
    try {
      value = parse(`v = ${raw}`).v;
    } catch {
      continue;
    }
    if (value === '*') lines.push(source.slice(0, offset).split('\n').length);
  }
  return lines;
}

/**
 * The values of the strings written with a `*` typed as is, anywhere in a valid TOML document: where
 * tomlRawStrings cannot place a value (an inline table), whether a name's `*` was typed or escaped.
 */
export function typedStarStrings(source: string): Set<string> {
  const names = new Set<string>();
  for (const { raw } of stringTokens(source)) {
    if (!raw.includes('*')) continue;
    try {
      const value: unknown = parse(`v = ${raw}`).v;
      if (typeof value === 'string') names.add(value);
    } catch {
      // Not a value (a quoted key can hold a *): no name of a grant.
    }
  }
  return names;
}

/**
 * The dates in a valid TOML document, with their lines, that name a day the month does not have
 * (`2026-02-30T00:00:00Z`): smol-toml takes them, and the Date they become rolls over into the next month
 * (March 2), a later instant than anything written. Strings and comments are not looked in.
 */
export function impossibleDates(source: string): { line: number; date: string }[] {
  let code = '';
  let from = 0;
  for (const span of spans(source)) {
    code += source.slice(from, span.offset) + source.slice(span.offset, span.end).replace(/[^\n]/g, ' ');
    from = span.end;
  }
  code += source.slice(from);
  const found: { line: number; date: string }[] = [];
  for (const m of code.matchAll(/(?<![\w.-])(\d{4})-(\d{2})-(\d{2})(?![\w.-]*\s*=)/g)) {
    const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
    // Day 0 of the next month is the last day of this one.
    const last = month >= 1 && month <= 12 ? new Date(Date.UTC(year, month, 0)).getUTCDate() : 0;
    if (day < 1 || day > last) found.push({ line: code.slice(0, m.index).split('\n').length, date: m[0] });
  }
  return found;
}

/** The comments of a valid TOML document, `#` included, in order. */
export function tomlComments(source: string): string[] {
  return spans(source)
    .filter((s) => !s.string)
    .map((s) => source.slice(s.offset, s.end).trimEnd());
}

// The string tokens of TOML text (a whole valid document, or one value), as written, with their offsets;
// comments skipped.
function stringTokens(text: string): { raw: string; offset: number }[] {
  return spans(text)
    .filter((s) => s.string)
    .map((s) => ({ raw: text.slice(s.offset, s.end), offset: s.offset }));
}

// The strings and comments of TOML text, in order. Bare keys and other values hold neither quotes nor `#`,
// so this needs no grammar.
function spans(text: string): { offset: number; end: number; string: boolean }[] {
  const out: { offset: number; end: number; string: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '#') {
      const eol = text.indexOf('\n', i);
      out.push({ offset: i, end: eol < 0 ? text.length : eol, string: false });
      if (eol < 0) break;
      i = eol;
    } else if (c === '"' || c === "'") {
      const end = stringEnd(text, i);
      out.push({ offset: i, end, string: true });
      i = end - 1;
    }
  }
  return out;
}

// The offset just past the string (of any of TOML's four forms) whose opening quote is at `start`.
function stringEnd(text: string, start: number): number {
  const c = text[start]!;
  const quote = text.startsWith(c.repeat(3), start) ? c.repeat(3) : c;
  let j = start + quote.length;
  while (j < text.length && !text.startsWith(quote, j)) j += c === '"' && text[j] === '\\' ? 2 : 1;
  // A closing delimiter of three may be followed by up to two more quotes, which end the string's text.
  let end = j + quote.length;
  while (quote.length === 3 && end < j + 5 && text[end] === c) end++;
  return end;
}

/** The line of `path` or of its nearest recorded ancestor (the table, or the key whose value holds it). */
export function lineOf(lines: Map<string, number>, path: readonly (string | number)[]): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const line = lines.get(path.slice(0, n).join('.'));
    if (line !== undefined) return line;
  }
  return undefined;
}

// Index of the `=` that ends the key of a key/value line, or -1 when the line is not one.
function keyEnd(line: string): number {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '=') return i;
    else if (!/[A-Za-z0-9_.\s-]/.test(c)) return -1;
  }
  return -1;
}

function splitKey(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quote: string | undefined;
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') {
        const [char, used] = unescapeOne(key, i + 1);
        current += char;
        i += used;
      } else if (c === quote) quote = undefined;
      else current += c;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '.') {
      parts.push(current.trim());
      current = '';
    } else current += c;
  }
  parts.push(current.trim());
  return parts;
}

// The character the escape after a backslash at `at` stands for, and how many characters it takes:
// `\u00e9`, `\U0001F600` and `\xe9` too (TOML 1.1, as smol-toml reads it), so a key written with one is
// found by the name it parses to.
function unescapeOne(text: string, at: number): [string, number] {
  const c = text[at] ?? '';
  const digits = c === 'u' ? 4 : c === 'U' ? 8 : c === 'x' ? 2 : 0;
  const hex = text.slice(at + 1, at + 1 + digits);
  if (digits && /^[0-9a-fA-F]+$/.test(hex) && hex.length === digits) {
    return [String.fromCodePoint(Number.parseInt(hex, 16)), 1 + digits];
  }
  return [({ n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', e: '\x1b' } as Record<string, string>)[c] ?? c, 1];
}

interface ValueState {
  depth: number;
  multiline: '"""' | "'''" | undefined;
}

// Tracks bracket depth and open multi-line strings across the lines of one value.
function scanValue(text: string, start: ValueState): ValueState {
  let { depth, multiline } = start;
  for (let i = 0; i < text.length; i++) {
    if (multiline) {
      if (multiline === '"""' && text[i] === '\\') i++;
      else if (text.startsWith(multiline, i)) {
        multiline = undefined;
        i += 2;
      }
      continue;
    }
    const c = text[i]!;
    if (text.startsWith('"""', i) || text.startsWith("'''", i)) {
      multiline = text.slice(i, i + 3) as '"""' | "'''";
      i += 2;
    } else if (c === '"' || c === "'") {
      for (i++; i < text.length && text[i] !== c; i++) if (c === '"' && text[i] === '\\') i++;
    } else if (c === '#') break;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
  }
  return { depth, multiline };
}

/**
 * `FILE:LINE: what` for a schema issue about a parsed TOML document, naming the unknown key itself (or the
 * table it is missing from) so the user can go straight to the line.
 */
export function issueAt(
  file: string,
  source: string,
  issue: { code: string; path: readonly PropertyKey[]; message: string; keys?: readonly string[] },
): string {
  const path = issue.path.map(String);
  const table = path.filter((p) => !/^\d+$/.test(p)).join('.');
  const unknown = issue.code === 'unrecognized_keys' ? (issue.keys ?? []) : [];
  const line = lineOf(tomlKeyLines(source), unknown.length ? [...path, unknown[0]!] : path);
  const what = unknown.length
    ? `unknown key ${unknown.map((k) => `"${k}"`).join(', ')}${table ? ` in [${table}]` : ''}`
    : `${path.join('.') || '(top level)'}: ${issueMessage(issue)}`;
  return `${file}${line ? `:${line}` : ''}: ${what}`;
}

/**
 * A schema issue's message for a person editing the file: a required key that is not there is "missing",
 * not zod's "Invalid input: expected array, received undefined" (TOML has no undefined, so only an absent
 * key gives that).
 */
export function issueMessage(issue: { code: string; message: string }): string {
  return issue.code === 'invalid_type' && / received undefined$/.test(issue.message)
    ? 'missing (a required key)'
    : issue.message;
}
