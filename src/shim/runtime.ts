// What both shim entry scripts share at run time: the daemon connection (through the SDK only), the
// translation of its errors, synchronous stdin/stdout/stderr, and the no-echo prompt. Everything here is
// imported on every shim call, so it stays small and loads nothing heavy (no zod, commander or TOML).
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { BrokerError, type Client, connect } from '../client/index.js';
import { socketPath } from '../daemon/socket-path.js';
import { resolvePaths } from '../lib/paths.js';
import { grantSpecFor } from '../lib/percent.js';
import { refreshCommandIn, secretSetCommand } from '../store/item-rules.js';
import { exitCodeOf, type ShimOutput, ShimUsageError, shimOutput } from './output.js';

/**
 * The request a shim command is asking the daemon now, in words. A command may ask several (`security add`
 * reads before it creates; a query on part of a pair lists first), and a refusal must name the one
 * refused, as the daemon's reason does.
 */
export interface Step {
  what: string;
}

/** Largest secret read from stdin (the daemon's own limit, store/types.ts MAX_VALUE_BYTES). */
export const MAX_STDIN_SECRET = 1024 * 1024;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const pause = () => Atomics.wait(sleeper, 0, 0, 10);

/** Writes all of `data` to `fd`, waiting out EAGAIN (a non-blocking pipe inherited from the parent). */
export function writeAll(fd: number, data: Buffer | string): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  for (let off = 0; off < buf.length; ) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      pause();
    }
  }
}

/**
 * Writes a result's two streams (stdout first, as the real tools flush them) and returns its exit code.
 * The buffers are wiped once written: stdout may hold a secret (lookup, find -w).
 */
export function emit(out: ShimOutput): number {
  if (out.stdout.length > 0) writeAll(1, out.stdout);
  if (out.stderr.length > 0) writeAll(2, out.stderr);
  out.stdout.fill(0);
  out.stderr.fill(0);
  return exitCodeOf(out.status);
}

/** Reads n bytes at most from fd 0: a Buffer (empty at end of input). Waits out EAGAIN. */
function readChunk(max: number): Buffer {
  const buf = Buffer.alloc(max);
  for (;;) {
    try {
      return buf.subarray(0, readSync(0, buf, 0, max, null));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EOF') return buf.subarray(0, 0);
      if (code !== 'EAGAIN') throw err;
      pause();
    }
  }
}

/**
 * Synchronous reads of stdin: whole input, one line at a time (`security -i`), or a secret line that a
 * terminal does not echo. Blocking is fine here: the shim has nothing else to do while it waits.
 * Bytes read past a line stay buffered for the next read.
 */
export class Stdin {
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;
  readonly isTTY = isatty(0);

  /** All remaining input, or undefined when it exceeds `limit` bytes (what was read is wiped). */
  readAll(limit: number): Buffer | undefined {
    const parts: Buffer[] = [this.pending];
    let size = this.pending.length;
    this.pending = Buffer.alloc(0);
    while (!this.ended && size <= limit) {
      const chunk = readChunk(64 * 1024);
      if (chunk.length === 0) this.ended = true;
      parts.push(chunk);
      size += chunk.length;
    }
    const all = Buffer.concat(parts);
    for (const p of parts) p.fill(0);
    if (size > limit) {
      all.fill(0);
      return undefined;
    }
    return all;
  }

  /**
   * The next line without its newline, or `{ eof: rest }` at end of input, where `rest` is a last line
   * that had no newline (empty if none).
   */
  readLine(): Buffer | { eof: Buffer } {
    for (;;) {
      const nl = this.pending.indexOf(0x0a);
      if (nl !== -1) {
        const line = Buffer.from(this.pending.subarray(0, nl));
        this.pending.fill(0, 0, nl + 1);
        this.pending = this.pending.subarray(nl + 1);
        return line;
      }
      if (this.ended) {
        const rest = Buffer.from(this.pending);
        this.pending.fill(0);
        this.pending = Buffer.alloc(0);
        return { eof: rest };
      }
      const chunk = readChunk(4096);
      if (chunk.length === 0) this.ended = true;
      else this.pending = Buffer.concat([this.pending, chunk]);
    }
  }

  /**
   * A secret typed after `prompt`, shown on stderr, or with `onTerminal` on the controlling terminal
   * when there is one (as glibc getpass(3) does, so `2>file` neither hides the prompt nor captures it).
   * On a terminal: raw mode, no echo, backspace, ^W and ^U edit (eraseChar, eraseWord), ^C cancels
   * ('canceled'), ^D on an empty line is end of input. Otherwise: the next line of stdin. Returns 'eof'
   * when input ends before a line is complete.
   */
  readSecretLine(prompt: string, { onTerminal = false } = {}): Buffer | 'eof' | 'canceled' {
    if (!this.isTTY) {
      writeAll(2, prompt);
      const line = this.readLine();
      if (Buffer.isBuffer(line)) return line;
      line.eof.fill(0);
      return 'eof';
    }
    const promptFd = onTerminal ? controllingTerminal() : 2;
    const tty = process.stdin as NodeJS.ReadStream & { setRawMode(raw: boolean): void };
    const typed: number[] = [];
    // Echo goes off before the prompt shows, so nothing typed after it can be echoed.
    tty.setRawMode(true);
    try {
      writeAll(promptFd, prompt);
      for (;;) {
        if (this.pending.length === 0) this.pending = readChunk(256);
        if (this.pending.length === 0) return 'eof';
        const byte = this.pending[0] as number;
        this.pending[0] = 0;
        this.pending = this.pending.subarray(1);
        if (byte === 0x0d || byte === 0x0a) break;
        if (byte === 0x03) return 'canceled';
        if (byte === 0x04 && typed.length === 0) return 'eof';
        if (byte === 0x7f || byte === 0x08) eraseChar(typed);
        else if (byte === 0x17) eraseWord(typed);
        else if (byte === 0x15) typed.length = 0;
        else if (byte !== 0x04) typed.push(byte);
      }
      const out = Buffer.from(typed);
      typed.fill(0);
      return out;
    } finally {
      tty.setRawMode(false);
      writeAll(promptFd, '\n');
      if (promptFd !== 2) closeSync(promptFd);
    }
  }
}

/** The controlling terminal opened for writing, or stderr (2) when the process has none. */
function controllingTerminal(): number {
  try {
    return openSync('/dev/tty', 'w');
  } catch {
    return 2;
  }
}

// Raw mode turns the terminal's line editing off, so the prompt does it as Linux's n_tty does for a
// UTF-8 terminal (IUTF8, set by terminal emulators and sshd in a UTF-8 locale): an erase removes one
// whole character, not a byte of it, and ^W removes a word. Storing the control byte or half a
// character instead would silently save another secret than the one the user sees typed.
const isContinuation = (b: number) => (b & 0xc0) === 0x80;

/** Removes the last UTF-8 character typed (^? or ^H). */
function eraseChar(typed: number[]): void {
  while (typed.length > 0 && isContinuation(typed.pop() as number)) {}
}

// The kernel's isalnum (lib/ctype.c): ASCII letters and digits, and the Latin-1 letters 0xC0-0xFF
// except × and ÷; n_tty applies it to the byte a character starts with.
const wordByte = (b: number) =>
  (b >= 0x30 && b <= 0x39) ||
  (b >= 0x41 && b <= 0x5a) ||
  (b >= 0x61 && b <= 0x7a) ||
  b === 0x5f ||
  (b >= 0xc0 && b !== 0xd7 && b !== 0xf7);

/** ^W as n_tty's WERASE (BSD ALTWERASE): what precedes the last word, then the word itself. */
function eraseWord(typed: number[]): void {
  let seenWord = false;
  while (typed.length > 0) {
    let start = typed.length - 1;
    while (start > 0 && isContinuation(typed[start] as number)) start--;
    const inWord = wordByte(typed[start] as number);
    if (seenWord && !inWord) return;
    seenWord ||= inWord;
    typed.length = start;
  }
}

/** The daemon's socket, as the SDK resolves it: $ENTRACLAW_SOCKET, then the runtime dir. */
export function daemonSocket(): string {
  return socketPath(resolvePaths());
}

/** One connection to the daemon, opened on first use (help and usage errors never connect). */
export class Session {
  private pending: Promise<Client> | undefined;
  readonly socket = daemonSocket();

  client(): Promise<Client> {
    this.pending ??= connect({ socket: this.socket });
    return this.pending;
  }

  async close(): Promise<void> {
    if (!this.pending) return;
    try {
      (await this.pending).close();
    } catch {
      // Never connected: nothing to close.
    }
  }
}

/** What went wrong talking to the daemon, in words for the tool's stderr. */
export interface BrokerProblem {
  code: string;
  /** First line: what happened. */
  message: string;
  /** Second line: what to do about it. */
  hint: string;
}

// The `--grant SPEC --ops OP` of the daemon's grant hint (policy/match.ts grantHint).
const GRANT_OPTIONS = /( --grant )(\S+)( --ops )\S+/;

/**
 * The daemon's grant hint made to allow every op the command needs: the daemon names only the request it
 * refused, and an add without -U reads before it creates, so following the hint as printed would only
 * lead to the next denial. Hints of another kind (upgrade, the sandbox profile) are returned unchanged.
 */
function grantingAll(hint: string, q: { service?: string; account?: string }, ops: string): string {
  return hint.replace(
    GRANT_OPTIONS,
    (_all, grant: string, spec: string, opsFlag: string) =>
      `${grant}${grantSpecFor(q) ?? spec}${opsFlag}${ops}`,
  );
}

/**
 * Explains a daemon error for a human (and the tool calling us): `what` names the operation and item,
 * e.g. `read of "github.com/me"`, `q` holds the service and account asked for, if any. Throws anything that is
 * not a BrokerError (a shim bug).
 */
export function brokerProblem(
  err: unknown,
  what: string,
  q: { service?: string; account?: string },
  socket: string,
  ops?: string,
): BrokerProblem {
  if (!(err instanceof BrokerError)) throw err;
  switch (err.code) {
    case 'denied':
      // The daemon's hint says how to allow it (policy/match.ts grantHint), or where the profile grants it.
      return {
        code: err.code,
        message: `entraclaw denied ${what}: ${err.message}`,
        hint:
          (err.hint && ops ? grantingAll(err.hint, q, ops) : err.hint) ??
          'see `entraclaw audit` and `entraclaw clients` for the decision and the approved programs',
      };
    case 'pending':
      return {
        code: err.code,
        message: `${what} is waiting for the user's approval: ${err.message}`,
        // The daemon saw one request; the command needs all of `ops` (a lookup by one attribute lists,
        // then reads), so one approval covers the whole command.
        hint:
          (ops && err.pendingId
            ? `ask the user to run: entraclaw approve ${err.pendingId} --grant ${grantSpecFor(q) ?? 'SERVICE'} --ops ${ops}`
            : err.hint) ??
          `ask the user to run: entraclaw approve ${err.pendingId ?? '<id from `entraclaw pending`>'}`,
      };
    case 'unavailable':
      return {
        code: err.code,
        message: err.message.includes(socket) ? err.message : `${err.message} (socket ${socket})`,
        hint: 'is the entraclaw daemon running? start it with `entraclaw agent` (or `entraclaw service install`), or set ENTRACLAW_SOCKET',
      };
    case 'expired': {
      // The daemon's hint also offers allowExpired, which no shim command can ask for: only its command,
      // which names the item read (a search by service alone reads items the query does not name) and
      // keeps the token's kind and scope.
      const command =
        refreshCommandIn(err.hint) ??
        (q.service !== undefined && q.account !== undefined
          ? secretSetCommand(q.service, q.account)
          : undefined);
      return {
        code: err.code,
        message: `entraclaw could not complete ${what}: ${err.message}`,
        hint: command ? `refresh it with: ${command}` : 'refresh it with `entraclaw secret set`',
      };
    }
    case 'locked':
      return {
        code: err.code,
        message: `the entraclaw store is locked: ${err.message}`,
        hint: err.hint ?? 'unlock the store (see `entraclaw doctor`) and try again',
      };
    default:
      return {
        code: err.code,
        message: `entraclaw could not complete ${what}: ${err.message}`,
        hint: err.hint ?? `see \`entraclaw audit\` for the daemon's side (error code ${err.code})`,
      };
  }
}

/** A parse that may fail with the real tool's usage output. */
export function parsed<T>(parse: () => T): T | ShimOutput {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ShimUsageError) return err.output;
    throw err;
  }
}

/** True for a value that is a finished result rather than a parsed command. */
export function isOutput(v: unknown): v is ShimOutput {
  return typeof v === 'object' && v !== null && 'status' in v && 'stdout' in v && 'stderr' in v;
}

/**
 * Runs an entry script's main: exit code from its result; a bug prints `<tool>: internal error`, exit 1.
 * It never rejects, so the entry scripts call it without `await`: their bundles are CommonJS, which has no
 * top-level await (scripts/bundle.mjs).
 */
export async function main(tool: string, run: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await run();
  } catch (err) {
    const detail = process.env.ENTRACLAW_DEBUG ? `\n${(err as Error)?.stack}` : '';
    process.exitCode = emit(
      shimOutput(
        1,
        '',
        `${tool}: entraclaw shim internal error: ${(err as Error)?.message ?? String(err)}${detail}\n`,
      ),
    );
  }
}
