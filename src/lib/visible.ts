/**
 * Text as a terminal or dialog should show it: control characters (ESC, CR, ...) and other invisible code
 * points (bidi overrides among them) escaped, so a name chosen by an unapproved program cannot redraw the
 * table or the question the user decides from.
 */
export function visible(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/**
 * `value` as JSON text in which no string carries a character a terminal acts on or hides: JSON.stringify
 * escapes only U+0000-U+001F, so DEL, the C1 controls (U+009B is a CSI to xterm) and invisible format
 * characters (a bidi override reorders the line) are written as `\uXXXX` too. The same JSON value: a
 * parser reads back exactly the strings given.
 */
export function terminalJson(value: unknown, indent?: number): string {
  // Outside strings JSON.stringify writes only ASCII punctuation, spaces and newlines, none matched here.
  return JSON.stringify(value, null, indent).replace(/[\u007f-\u009f\p{Cf}\u2028\u2029]/gu, (c) =>
    // One escape per UTF-16 unit: an astral character (a tag, U+E0001) is written as its surrogate pair.
    c
      .split('')
      .map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`)
      .join(''),
  );
}

/**
 * A program as tables, notes and questions name it: its executable and, for an interpreter, the script,
 * separated by a space. A path that holds a space of any kind (or a quote, or a backslash) is single-quoted
 * as a shell would, so an executable at `/home/me/.pyenv/bin/python3 /home/me/bot/main.py` (a directory
 * named `python3 `, which any program of yours can make) cannot pass for that python running that script.
 */
export function programLabel(exe: string, script?: string): string {
  return script === undefined ? quotedPath(exe) : `${quotedPath(exe)} ${quotedPath(script)}`;
}

function quotedPath(path: string): string {
  return path !== '' && !/[\s\p{Z}'"\\]/u.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}
