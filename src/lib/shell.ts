// Words that go into a command the user is told to run (hints, dry runs, shim wrappers).

/** `s` as one POSIX shell word: as it is when the shell would neither split nor expand it, else single-quoted. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
