/**
 * Text as a terminal or dialog should show it: control characters (ESC, CR, ...) and other invisible code
 * points (bidi overrides among them) escaped, so a name chosen by an unapproved program cannot redraw the
 * table or the question the user decides from.
 */
export function visible(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}
