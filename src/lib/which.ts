import { accessSync, closeSync, constants, openSync, readSync, statSync } from 'node:fs';
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

/**
 * The interpreter a `#!` script names when that file does not exist: what makes execve() fail with
 * ENOENT for a script that is there. Undefined for anything else (not a script, unreadable, the
 * interpreter present).
 */
export function missingInterpreter(file: string): string | undefined {
  let head: Buffer;
  try {
    head = fileHead(file);
  } catch {
    return undefined;
  }
  // The kernel reads the interpreter as the first word after `#!` (blanks before it allowed).
  const interpreter = /^#![ \t]*([^ \t\n\0]+)/.exec(head.toString('latin1'))?.[1];
  if (interpreter === undefined) return undefined;
  try {
    statSync(interpreter);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? interpreter : undefined;
  }
}

/** The first 256 bytes of a file: enough for a #! line or a binary's magic number. */
export function fileHead(path: string): Buffer {
  const head = Buffer.alloc(256);
  const fd = openSync(path, 'r');
  try {
    return head.subarray(0, readSync(fd, head, 0, head.length, 0));
  } finally {
    closeSync(fd);
  }
}
