import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** The file `command` names, as execvp() would find it (PATH for a bare name); undefined when none runs. */
export function findCommand(command: string, path: string | undefined, cwd: string): string | undefined {
  return candidates(command, path, cwd).find(runnable);
}

/** Every runnable file `command` names along PATH, in PATH order (execvp() runs the first). */
export function findCommands(command: string, path: string | undefined, cwd: string): string[] {
  return candidates(command, path, cwd).filter(runnable);
}

/**
 * Why execvp() would fail for a `command` findCommand() found nothing runnable for: EACCES when some
 * candidate exists (not executable, a directory) or sits under a directory that may not be searched, as
 * execvp() reports after trying them all; else ENOENT.
 */
export function whyNotRunnable(command: string, path: string | undefined, cwd: string): 'EACCES' | 'ENOENT' {
  for (const file of candidates(command, path, cwd)) {
    try {
      statSync(file);
      return 'EACCES';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') return 'EACCES';
    }
  }
  return 'ENOENT';
}

function candidates(command: string, path: string | undefined, cwd: string): string[] {
  if (command.includes('/')) return [isAbsolute(command) ? command : resolve(cwd, command)];
  return (path ?? '/usr/local/bin:/usr/bin:/bin')
    .split(delimiter)
    .map((dir) => join(resolve(cwd, dir || '.'), command));
}

function runnable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}
