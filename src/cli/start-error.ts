import { UsageError } from '../errors.js';
import { findCommand, missingInterpreter } from '../lib/which.js';

/**
 * Refuses an empty command name (`-- ''`, or `-- "$CMD"` with CMD unset) before anything starts: spawn()
 * throws on it at once, which came out as an internal error (and left `agent -- ''` serving, its daemon
 * started and nothing to stop it), or for `sandbox` as "permission denied" naming nothing.
 */
export function assertCommandNamed(command: readonly string[], usage: string): void {
  if (command.length === 0) throw new UsageError('no command given', usage);
  if (command[0] === '')
    throw new UsageError(
      'the command name is empty (an empty argument after --, such as an unset "$CMD")',
      usage,
    );
}

/**
 * The error for a command that did not start, from the errno execvp() gave (or, for `sandbox`, would
 * give). EACCES means the name was found, so "check the command name and PATH" would send the user the
 * wrong way: it says what the kernel refused instead. `detail` is said for any other
 * errno; `where` adds to the hint. ENOENT for a script that exists names its missing interpreter (`cwd` is
 * where a relative command is looked for).
 */
export function cannotStart(
  command: string,
  code: string | undefined,
  detail = code ?? 'unknown error',
  where = '',
  cwd = process.cwd(),
): UsageError {
  if (code === 'ENOENT') {
    // The file is there: what execve() did not find is the interpreter its #! line names.
    const file = findCommand(command, process.env.PATH, cwd);
    const interpreter = file === undefined ? undefined : missingInterpreter(file);
    if (interpreter !== undefined) {
      return new UsageError(
        `cannot start ${command}: the interpreter its #! line names, ${interpreter}, does not exist (ENOENT)`,
        `fix the first line of ${file}, or install ${interpreter}`,
      );
    }
    return new UsageError(
      `cannot start ${command}: not found${command.includes('/') ? '' : ' in PATH'} (ENOENT)`,
      `check the command name and PATH${where}`,
    );
  }
  if (code === 'EACCES') {
    return new UsageError(
      `cannot start ${command}: permission denied (EACCES)`,
      `${command} is not executable: chmod +x it, or run it through its interpreter (sh ${command}); if it is, a directory on the way to it is not searchable by you (chmod +x that directory), or it is a directory`,
    );
  }
  return new UsageError(`cannot start ${command}: ${detail}`, `check the command name and PATH${where}`);
}
