// POSIX getopt(3) as macOS (FreeBSD libc) implements it, because `security` parses every command with
// it and scripts depend on its quirks: options stop at the first operand (no permutation), "--" ends
// them, flags cluster (`-gw`), an option's argument is the rest of the word (`-afoo`) or the WHOLE next
// word even when it starts with '-' (`-w -secret-` sets the password "-secret-"), a lone "-" is an
// operand. A leading ':' in the option string silences diagnostics and reports a missing argument
// separately; otherwise the diagnostics below are what libc prints to stderr.

/** One step of getopt: an option (with its argument), an unknown option, a missing argument, or the end. */
export type GetoptEvent =
  | { kind: 'option'; opt: string; arg: string | undefined }
  | { kind: 'illegal'; opt: string; diagnostic: string }
  | { kind: 'missing'; opt: string; diagnostic: string }
  | { kind: 'end'; operands: string[] };

/** Walks `args` like getopt(argc, argv, optstring); `progname` prefixes libc's diagnostics. */
export function* getopt(
  args: readonly string[],
  optstring: string,
  progname: string,
): Generator<GetoptEvent> {
  const silent = optstring.startsWith(':');
  let index = 0;
  for (; index < args.length; index++) {
    const word = args[index] as string;
    if (word === '--') {
      index++;
      break;
    }
    if (!word.startsWith('-') || word === '-') break;
    for (let at = 1; at < word.length; at++) {
      const opt = word[at] as string;
      const spec = opt === ':' ? -1 : optstring.indexOf(opt);
      if (spec === -1) {
        yield { kind: 'illegal', opt, diagnostic: silent ? '' : `${progname}: illegal option -- ${opt}\n` };
        continue;
      }
      if (optstring[spec + 1] !== ':') {
        yield { kind: 'option', opt, arg: undefined };
        continue;
      }
      if (at + 1 < word.length) {
        yield { kind: 'option', opt, arg: word.slice(at + 1) };
      } else if (index + 1 < args.length) {
        index++;
        yield { kind: 'option', opt, arg: args[index] };
      } else {
        yield {
          kind: 'missing',
          opt,
          diagnostic: silent ? '' : `${progname}: option requires an argument -- ${opt}\n`,
        };
      }
      break;
    }
  }
  yield { kind: 'end', operands: args.slice(index) };
}
