import { closeSync, constants, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, LockedError, PromptCancelledError, UsageError } from '../errors.js';
import type { StoreContext } from '../store/types.js';
import { isEncryptedCredential } from './systemd-credential.js';

// Where the vault passphrase comes from, first found wins. Files only: a passphrase in an environment
// variable would be readable in /proc/PID/environ and inherited by every child.
const ENV_FILE = 'ENTRACLAW_PASSPHRASE_FILE';
const SYSTEMD_CREDENTIAL = 'entraclaw.passphrase';
const MAX_PASSPHRASE_BYTES = 4096;
/** How long a passphrase pipe may stay silent: its writer may be asking the user to unlock something. */
const PIPE_WAIT_MS = 120_000;
// Passphrases read from pipes, by path, for this process's later reads of the same path.
const fromPipes = new Map<string, Buffer>();
// Something to Atomics.wait on: a synchronous pause between polls of a pipe opened non-blocking.
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
/** The pause between polls of a silent pipe. */
const PIPE_POLL_MS = 20;
/** The shortest passphrase a new vault accepts. */
export const MIN_NEW_PASSPHRASE_BYTES = 8;

/** Where a passphrase will be read from: a file (and how it was named) or a terminal prompt. */
export type PassphraseSource = { kind: 'file'; path: string; via: string } | { kind: 'prompt' };

/** The hint that goes with "no passphrase available": every way to supply one. */
export const PASSPHRASE_HINT = `give --passphrase-file FILE, set ${ENV_FILE}=FILE, pass the systemd credential ${SYSTEMD_CREDENTIAL} (LoadCredentialEncrypted=), or run in a terminal to be prompted`;

/** The first configured passphrase source, without reading it; undefined when there is none. */
export function passphraseSource(ctx: StoreContext): PassphraseSource | undefined {
  if (ctx.passphraseFile) return { kind: 'file', path: ctx.passphraseFile, via: '--passphrase-file' };
  const fromEnv = ctx.env[ENV_FILE];
  if (fromEnv) return { kind: 'file', path: fromEnv, via: ENV_FILE };
  const creds = ctx.env.CREDENTIALS_DIRECTORY;
  // Unlike the two above, this one is not named by the user, so its absence just moves on to the next.
  if (creds && existsSync(join(creds, SYSTEMD_CREDENTIAL))) {
    return { kind: 'file', path: join(creds, SYSTEMD_CREDENTIAL), via: 'systemd credential' };
  }
  if (ctx.interactive) return { kind: 'prompt' };
  return undefined;
}

/** Terminal streams for the prompt; a seam so tests can type without a TTY. */
export interface PromptIo {
  input: NodeJS.ReadStream | NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
}

/**
 * Obtains the passphrase for the vault at `vaultPath`. When `creating`, a prompt asks twice. The caller owns
 * the returned Buffer and should zero it when done.
 */
export async function readPassphrase(
  ctx: StoreContext,
  vaultPath: string,
  creating: boolean,
  io: PromptIo = { input: process.stdin, output: process.stderr },
  signal?: AbortSignal,
): Promise<Buffer> {
  const source = passphraseSource(ctx);
  if (!source) {
    // A vault not made yet is not locked: it needs a passphrase to be created with.
    throw new LockedError(
      creating
        ? `vault ${vaultPath} does not exist yet, and no passphrase was given to create it with`
        : `vault ${vaultPath} is locked: no passphrase available`,
      PASSPHRASE_HINT,
    );
  }
  const pass =
    source.kind === 'file'
      ? await readPassphraseFileAsync(source.path, source.via, signal)
      : await promptTwiceIf(
          creating,
          // A new vault's prompt says so: the user is choosing a passphrase, not recalling one, and it
          // says the minimum before both entries are typed rather than after.
          creating
            ? `Passphrase for the new vault ${vaultPath} (at least ${MIN_NEW_PASSPHRASE_BYTES} bytes): `
            : `Passphrase for vault ${vaultPath}: `,
          io,
          undefined,
          signal,
        );
  if (pass.length === 0) {
    throw new UsageError(
      `refusing an empty passphrase for vault ${vaultPath}`,
      source.kind === 'file' ? `put the passphrase in ${source.path}` : undefined,
    );
  }
  // The .cred file `systemd-creds encrypt` made (or a LoadCredential= of it) is not the passphrase: taken
  // as one, it would seal a new vault under bytes anyone who can read that file has.
  if (source.kind === 'file' && isEncryptedCredential(pass)) {
    pass.fill(0);
    throw new UsageError(
      `${source.path} (from ${source.via}) is an encrypted systemd credential, not the passphrase of vault ${vaultPath}; nothing was done`,
      'systemd decrypts it only for the unit that loads it with LoadCredentialEncrypted=; outside the service, give a file holding the passphrase itself',
    );
  }
  // Existing vaults still open with whatever they were made with.
  if (creating) {
    assertLongEnough(
      pass,
      'a passphrase for a new vault',
      'the vault was not created',
      source.kind === 'file' ? source.path : undefined,
    );
  }
  return pass;
}

// scrypt slows each guess down; it cannot make a four-letter word hard to guess. A passphrase a vault is
// sealed with from now on (a new vault's, a rekey's) is at least MIN_NEW_PASSPHRASE_BYTES; a shorter one
// is zeroed and refused, saying where to put a longer one (`file`) or to type one.
function assertLongEnough(pass: Buffer, what: string, nothingDone: string, file: string | undefined): void {
  if (pass.length >= MIN_NEW_PASSPHRASE_BYTES) return;
  pass.fill(0);
  throw new UsageError(
    `${what} needs at least ${MIN_NEW_PASSPHRASE_BYTES} bytes; ${nothingDone}`,
    file
      ? `put a longer passphrase in ${file} (a few words, or \`head -c 32 /dev/urandom | base64\`)`
      : 'choose a longer passphrase (a few words)',
  );
}

/** Whether `path` is a pipe this process has read its passphrase from already: reading it again gives that one. */
export function passphraseFromPipe(path: string): boolean {
  return fromPipes.has(path);
}

/** Reads a passphrase file: private (no group/other bits), bounded, one trailing newline stripped. */
export function readPassphraseFile(path: string, via = 'passphrase file'): Buffer {
  const steps = passphraseReader(path, via);
  for (let step = steps.next(); ; step = steps.next()) {
    if (step.done) return step.value;
    Atomics.wait(PAUSE, 0, 0, PIPE_POLL_MS);
  }
}

/**
 * readPassphraseFile() that waits for a silent pipe without blocking the event loop (the daemon's case);
 * `signal` gives up the wait (the store is closing).
 */
export async function readPassphraseFileAsync(
  path: string,
  via = 'passphrase file',
  signal?: AbortSignal,
): Promise<Buffer> {
  const steps = passphraseReader(path, via);
  try {
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) return step.value;
      await sleep(PIPE_POLL_MS, undefined, signal ? { signal } : {}).catch(() => {
        throw new LockedError(
          `stopped waiting for the passphrase pipe ${path} (from ${via}): the store was closed`,
        );
      });
    }
  } finally {
    // Closes the pipe when the wait was given up (a finished reader has closed it already).
    steps.return(Buffer.alloc(0));
  }
}

// The reading itself, for both: it yields whenever a pipe has nothing yet, and its driver pauses.
function* passphraseReader(path: string, via: string): Generator<void, Buffer, void> {
  // A pipe gives its bytes once: the probe that checks it (doctor) and the open that uses it share them.
  const piped = fromPipes.get(path);
  if (piped) return Buffer.from(piped);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO nobody writes to would otherwise wait forever.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot open passphrase file ${path} (from ${via}): ${code}`,
      'check the path and its owner',
    );
  }
  try {
    const st = fstatSync(fd);
    // A pipe is how a password manager hands it over: --passphrase-file <(pass show vault).
    if (!st.isFile() && !st.isFIFO()) {
      throw new UsageError(
        `passphrase file ${path} (from ${via}) is not a regular file or a pipe`,
        'give a file (mode 600) or a pipe holding the passphrase; one trailing newline is ignored',
      );
    }
    if (st.mode & 0o077) {
      throw new UsageError(
        `passphrase file ${path} is accessible to group or others (mode ${(st.mode & 0o777).toString(8)})`,
        `run: chmod 600 ${path}`,
      );
    }
    const buf = Buffer.alloc(MAX_PASSPHRASE_BYTES + 1);
    let len = 0;
    const deadline = Date.now() + PIPE_WAIT_MS;
    while (len < buf.length) {
      let n: number;
      try {
        n = readSync(fd, buf, len, buf.length - len, null);
      } catch (err) {
        // The pipe's writer (a password manager waiting on its own unlock) has not written yet.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN') {
          // EIO from a file system gone away (sshfs, a FUSE mount): the file's trouble, not a bug of ours.
          buf.fill(0);
          throw new UsageError(
            `cannot read passphrase file ${path} (from ${via}): ${code ?? (err as Error).message}`,
            'check the file and the file system it is on',
          );
        }
        if (Date.now() > deadline) {
          buf.fill(0);
          throw new UsageError(
            `nothing came through the passphrase pipe ${path} within ${PIPE_WAIT_MS / 1000} s`,
            'check the command that writes the passphrase',
          );
        }
        yield;
        continue;
      }
      if (n === 0) break;
      len += n;
    }
    if (len > MAX_PASSPHRASE_BYTES) {
      buf.fill(0);
      throw new UsageError(`passphrase file ${path} is larger than ${MAX_PASSPHRASE_BYTES} bytes`);
    }
    if (len === 0 && st.isFIFO()) {
      throw new UsageError(
        `the passphrase pipe ${path} (from ${via}) gave nothing: no program had it open for writing, or it wrote nothing`,
        'start the program that writes the passphrase first (or use <(command)), or give a regular file',
      );
    }
    if (buf[len - 1] === 0x0a) len -= buf[len - 2] === 0x0d ? 2 : 1;
    const pass = Buffer.from(buf.subarray(0, len));
    buf.fill(0);
    if (st.isFIFO()) fromPipes.set(path, Buffer.from(pass));
    return pass;
  } finally {
    closeSync(fd);
  }
}

/**
 * A new passphrase for the vault at `vaultPath` (re-encryption): from `path` when given, else asked twice on
 * the terminal; at least MIN_NEW_PASSPHRASE_BYTES long. The caller zeroes it.
 */
export async function readNewPassphrase(
  ctx: StoreContext,
  vaultPath: string,
  path: string | undefined,
  io: PromptIo = { input: process.stdin, output: process.stderr },
): Promise<Buffer> {
  if (!path && !ctx.interactive) {
    throw new UsageError(
      'no new passphrase given, and there is no terminal to ask for one',
      'pass --new-passphrase-file FILE (mode 600), or run in a terminal',
    );
  }
  const pass = path
    ? await readPassphraseFileAsync(path, '--new-passphrase-file')
    : await promptTwiceIf(true, `New passphrase for vault ${vaultPath}: `, io, 'the vault was not changed');
  assertLongEnough(pass, 'the new passphrase', 'the vault was not changed', path);
  return pass;
}

async function promptTwiceIf(
  twice: boolean,
  question: string,
  io: PromptIo,
  nothingDone = 'the vault was not created',
  signal?: AbortSignal,
): Promise<Buffer> {
  const first = await promptHidden(question, io, MAX_PASSPHRASE_BYTES, signal);
  if (!twice) return first;
  const second = await promptHidden('Repeat it to confirm: ', io, MAX_PASSPHRASE_BYTES, signal);
  const same = first.equals(second);
  second.fill(0);
  if (!same) {
    first.fill(0);
    throw new UsageError(
      `the passphrases did not match; ${nothingDone}`,
      'run the command again and type the same passphrase twice',
    );
  }
  return first;
}

const ENTER = [0x0d, 0x0a];
const CTRL_C = 0x03;
const CANCEL = [CTRL_C, 0x04];
const ERASE = [0x7f, 0x08];
const KILL_LINE = 0x15; // Ctrl-U

/** Where the last character of `buf[0..len)` starts: an erase takes a whole UTF-8 character, as the tty's would (iutf8). */
function lastCharStart(buf: Buffer, len: number): number {
  let at = Math.max(0, len - 1);
  while (at > 0 && ((buf[at] as number) & 0xc0) === 0x80) at--;
  return at;
}

/**
 * Reads one line from the terminal without echo (raw mode) into a Buffer; bytes after Enter stay unread.
 * Backspace erases a character, Ctrl-U the line; Ctrl-C (InterruptedError) or Ctrl-D cancels, and so does
 * `signal`; a line longer than `max` bytes is refused, never cut short.
 */
export async function promptHidden(
  question: string,
  io: PromptIo,
  max: number = MAX_PASSPHRASE_BYTES,
  signal?: AbortSignal,
): Promise<Buffer> {
  const input = io.input as NodeJS.ReadStream;
  const raw = typeof input.setRawMode === 'function' && input.isTTY;
  const buf = Buffer.alloc(max);
  let len = 0;
  let over = false;
  // Echo goes off before the question shows: keys typed the moment it shows are never echoed.
  if (raw) input.setRawMode(true);
  io.output.write(question);
  try {
    await new Promise<void>((resolve, reject) => {
      // Listeners go as soon as the line ends, synchronously: 'readable' can fire again (nextTick) before an
      // awaiting caller resumes, and it must not swallow the next line.
      const finish = (err?: Error) => {
        input.removeListener('readable', onReadable);
        input.removeListener('end', onEnd);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      // The daemon stopping (SIGTERM) while it asks: nobody is left to answer, and the terminal gets its
      // echo back now, not whenever someone next presses Enter.
      const onAbort = () =>
        finish(new LockedError('stopped asking for the passphrase at the terminal: the store was closed'));
      // Paused-mode reads, so whatever follows Enter (a pasted confirmation) can be unshifted for the next prompt.
      const onReadable = () => {
        for (;;) {
          const chunk = input.read() as Buffer | null;
          if (chunk === null) return;
          for (let i = 0; i < chunk.length; i++) {
            const b = chunk[i] as number;
            if (ENTER.includes(b) || CANCEL.includes(b)) {
              if (i + 1 < chunk.length) input.unshift(chunk.subarray(i + 1));
              chunk.fill(0, 0, i + 1);
              const cancelled = 'cancelled at the prompt; nothing was done';
              return finish(
                ENTER.includes(b)
                  ? undefined
                  : b === CTRL_C
                    ? new InterruptedError(cancelled)
                    : new PromptCancelledError(cancelled, 'run the command again'),
              );
            }
            // Raw mode leaves line editing to us: Backspace and Ctrl-U do what they do at a shell prompt,
            // instead of becoming part of a passphrase the user believes they have retyped.
            if (ERASE.includes(b)) len = lastCharStart(buf, len);
            else if (b === KILL_LINE) len = 0;
            else if (len < buf.length) buf[len++] = b;
            else over = true;
          }
          chunk.fill(0);
        }
      };
      const onEnd = () => finish();
      if (signal?.aborted) return onAbort();
      input.on('readable', onReadable);
      input.once('end', onEnd);
      signal?.addEventListener('abort', onAbort);
    });
  } finally {
    if (raw) input.setRawMode(false);
    input.pause();
    io.output.write('\n');
  }
  const pass = Buffer.from(buf.subarray(0, len));
  buf.fill(0);
  if (over) {
    pass.fill(0);
    throw new UsageError(
      `what was typed is longer than ${max} bytes`,
      'put a value that long in a file and pass it with --from-file (or pipe it on stdin)',
    );
  }
  return pass;
}
