import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { LockedError, UsageError } from '../../src/errors.js';
import {
  type PromptIo,
  passphraseSource,
  readPassphrase,
  readPassphraseFile,
  readPassphraseFileAsync,
} from '../../src/lib/passphrase.js';
import type { StoreContext } from '../../src/store/types.js';
import { linuxOnly, requireOrSkip, tempContext } from '../support/context.js';
import { usageError } from '../support/errors.js';

const VAULT = '/data/vault.ecv';
const temps: { cleanup(): void }[] = [];

function context(): { ctx: StoreContext; dir: string } {
  const t = tempContext({});
  temps.push(t);
  return { ctx: { ...t.ctx, passphraseFile: undefined }, dir: t.dir };
}

function file(dir: string, name: string, content: string | Buffer, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode });
  return path;
}

/** A fake terminal: what the user types goes in `input`, prompts come out of `output`. */
function terminal(): PromptIo & { typed: PassThrough; shown: () => string } {
  const input = new PassThrough();
  const output = new PassThrough();
  let shown = '';
  output.on('data', (d) => {
    shown += d;
  });
  return { input, output, typed: input, shown: () => shown };
}

afterEach(() => {
  for (const t of temps.splice(0)) t.cleanup();
});

describe('passphrase sources', () => {
  it('first found wins: --passphrase-file, then ENTRACLAW_PASSPHRASE_FILE, then the systemd credential, then a prompt', () => {
    const { ctx, dir } = context();
    const creds = join(dir, 'creds');
    mkdirSync(creds);
    const all: StoreContext = {
      ...ctx,
      passphraseFile: '/flag',
      env: { ENTRACLAW_PASSPHRASE_FILE: '/env', CREDENTIALS_DIRECTORY: creds },
      interactive: true,
    };
    expect(passphraseSource(all)).toEqual({ kind: 'file', path: '/flag', via: '--passphrase-file' });
    expect(passphraseSource({ ...all, passphraseFile: undefined })).toMatchObject({ path: '/env' });
    const noEnv = { ...all, passphraseFile: undefined, env: { CREDENTIALS_DIRECTORY: creds } };
    // The systemd credential is only a source when systemd actually provided it.
    expect(passphraseSource(noEnv)).toEqual({ kind: 'prompt' });
    file(creds, 'entraclaw.passphrase', 'x', 0o400);
    expect(passphraseSource(noEnv)).toMatchObject({
      path: join(creds, 'entraclaw.passphrase'),
      via: 'systemd credential',
    });
    expect(passphraseSource({ ...ctx, interactive: false })).toBeUndefined();
  });

  it('none available is a LockedError that lists every option', async () => {
    const { ctx } = context();
    const err = await readPassphrase({ ...ctx, interactive: false }, VAULT, false).catch((e) => e);
    expect(err).toBeInstanceOf(LockedError);
    expect(err.message).toBe(`vault ${VAULT} is locked: no passphrase available`);
    const creating = await readPassphrase({ ...ctx, interactive: false }, VAULT, true).catch((e) => e);
    expect(creating).toBeInstanceOf(LockedError);
    expect(creating.message).toBe(
      `vault ${VAULT} does not exist yet, and no passphrase was given to create it with`,
    );
    expect(err.hint).toContain('--passphrase-file');
    expect(err.hint).toContain('ENTRACLAW_PASSPHRASE_FILE');
    expect(err.hint).toContain('entraclaw.passphrase');
  });

  it('strips exactly one trailing newline and keeps every other byte', () => {
    const { dir } = context();
    expect(readPassphraseFile(file(dir, 'a', 'pass\n')).toString()).toBe('pass');
    expect(readPassphraseFile(file(dir, 'b', 'pass\r\n')).toString()).toBe('pass');
    expect(readPassphraseFile(file(dir, 'c', 'pass\n\n')).toString()).toBe('pass\n');
    expect(readPassphraseFile(file(dir, 'd', ' pass ')).toString()).toBe(' pass ');
    const bytes = Buffer.from([0xff, 0x00, 0x41]);
    expect(readPassphraseFile(file(dir, 'e', bytes)).equals(bytes)).toBe(true);
  });

  it('refuses an empty passphrase, a loose file (with the chmod to run), a missing named file, an oversized one', async () => {
    const { ctx, dir } = context();
    const empty = file(dir, 'empty', '\n');
    await expect(readPassphrase({ ...ctx, passphraseFile: empty }, VAULT, false)).rejects.toThrow(
      `refusing an empty passphrase for vault ${VAULT}`,
    );
    const loose = file(dir, 'loose', 'secret-passphrase\n', 0o640);
    const err = await readPassphrase({ ...ctx, passphraseFile: loose }, VAULT, false).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.hint).toBe(`run: chmod 600 ${loose}`);
    expect(`${err.message}${err.hint}`).not.toContain('secret-passphrase');
    await expect(
      readPassphrase({ ...ctx, env: { ENTRACLAW_PASSPHRASE_FILE: join(dir, 'nope') } }, VAULT, false),
    ).rejects.toThrow(/cannot open passphrase file .*nope \(from ENTRACLAW_PASSPHRASE_FILE\): ENOENT/);
    expect(() => readPassphraseFile(file(dir, 'huge', Buffer.alloc(5000, 'a')))).toThrow(
      /larger than 4096 bytes/,
    );
  });

  it('a directory is refused with a hint; a FIFO nobody writes to is refused at once, never waited on', () => {
    const { dir } = context();
    const err = usageError(() => readPassphraseFile(dir, '--passphrase-file'));
    expect(err.message).toBe(
      `passphrase file ${dir} (from --passphrase-file) is not a regular file or a pipe`,
    );
    expect(err.hint).toContain('mode 600');
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', ['-m', '600', fifo]).status).toBe(0);
    const empty = usageError(() => readPassphraseFile(fifo, '--passphrase-file'));
    expect(empty.message).toBe(
      `the passphrase pipe ${fifo} (from --passphrase-file) gave nothing: no program had it open for writing, or it wrote nothing`,
    );
    expect(empty.hint).toContain('start the program that writes the passphrase first');
  });

  it('a file that fails to read (EIO, as from a file system gone away) is a usage error naming it, not an internal error', (ctx) => {
    requireOrSkip(ctx, linuxOnly('/proc/self/mem'));
    // /proc/self/mem is a private regular file whose read at offset 0 (nothing mapped there) is EIO.
    const err = usageError(() => readPassphraseFile('/proc/self/mem', '--passphrase-file'));
    expect(err.message).toBe('cannot read passphrase file /proc/self/mem (from --passphrase-file): EIO');
    expect(err.hint).toBe('check the file and the file system it is on');
  });
});

describe('passphrase pipe, read without blocking (the daemon)', () => {
  /** A FIFO whose writer holds it open and writes `pass` only when told to (on its stdin). */
  async function silentPipe(dir: string, pass: string) {
    const fifo = join(dir, 'pipe');
    const writer = spawn(
      'sh',
      [
        '-c',
        'mkfifo -m 600 "$F" && exec 3<>"$F" && echo ready && read go && printf "$P" >&3 && exec 3>&-; read end',
      ],
      { env: { F: fifo, P: pass, PATH: process.env.PATH }, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    await new Promise((resolve) => writer.stdout.once('data', resolve));
    return { fifo, writer };
  }

  it('the event loop runs while the pipe is silent, and the passphrase is read once it comes', async () => {
    const { dir } = context();
    const { fifo, writer } = await silentPipe(dir, 'piped-pass\\n');
    try {
      let done = false;
      const { ctx } = context();
      const reading = readPassphrase({ ...ctx, passphraseFile: fifo }, VAULT, false).finally(() => {
        done = true;
      });
      // The writer is told to write from this event loop, so a read that blocked it would never end.
      await new Promise((resolve) => setImmediate(resolve));
      expect(done).toBe(false);
      writer.stdin.write('go\n');
      expect((await reading).toString()).toBe('piped-pass');
    } finally {
      writer.kill();
    }
  });

  it('an aborted wait ends at once with a LockedError, and the pipe is closed', async () => {
    const { dir } = context();
    const { fifo, writer } = await silentPipe(dir, 'never-read\\n');
    try {
      const stop = new AbortController();
      const reading = readPassphraseFileAsync(fifo, '--passphrase-file', stop.signal);
      stop.abort();
      const err = await reading.catch((e) => e);
      expect(err).toBeInstanceOf(LockedError);
      expect(err.message).toBe(
        `stopped waiting for the passphrase pipe ${fifo} (from --passphrase-file): the store was closed`,
      );
      // No fd of ours is left on the pipe.
      const ours = readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === fifo;
        } catch {
          return false;
        }
      });
      expect(ours).toEqual([]);
    } finally {
      writer.kill();
    }
  });
});

describe('passphrase prompt', () => {
  it('reads one hidden line for an existing vault, honouring backspace', async () => {
    const { ctx } = context();
    const tty = terminal();
    const got = readPassphrase({ ...ctx, interactive: true }, VAULT, false, tty);
    tty.typed.write('hunter3\x7f2\r');
    expect((await got).toString()).toBe('hunter2');
    expect(tty.shown()).toBe(`Passphrase for vault ${VAULT}: \n`);
  });

  it('turns echo off before each question shows, so keys typed the moment it shows are never echoed', async () => {
    const { ctx } = context();
    const tty = terminal();
    // What the terminal sees, in order: raw mode on and off, and each write of the prompt.
    const seen: string[] = [];
    Object.assign(tty.input, { isTTY: true, setRawMode: (on: boolean) => seen.push(on ? 'raw' : 'cooked') });
    const write = tty.output.write.bind(tty.output);
    tty.output.write = ((chunk: string) => {
      seen.push(chunk);
      return write(chunk);
    }) as typeof tty.output.write;
    const got = readPassphrase({ ...ctx, interactive: true }, VAULT, true, tty);
    tty.typed.write('same pass\rsame pass\r');
    expect((await got).toString()).toBe('same pass');
    expect(seen).toEqual([
      'raw',
      `Passphrase for the new vault ${VAULT} (at least 8 bytes): `,
      'cooked',
      '\n',
      'raw',
      'Repeat it to confirm: ',
      'cooked',
      '\n',
    ]);
  });

  it('asks twice when creating a vault, and refuses a mismatch', async () => {
    const { ctx } = context();
    const tty = terminal();
    const got = readPassphrase({ ...ctx, interactive: true }, VAULT, true, tty);
    tty.typed.write('same pass\rsame pass\r'); // pasted at once: the second line must reach the second prompt
    expect((await got).toString()).toBe('same pass');
    expect(tty.shown()).toContain('Repeat it to confirm: ');

    const tty2 = terminal();
    const bad = readPassphrase({ ...ctx, interactive: true }, VAULT, true, tty2);
    tty2.typed.write('one\r');
    setTimeout(() => tty2.typed.write('two\r'), 10);
    await expect(bad).rejects.toThrow('the passphrases did not match; the vault was not created');
  });

  it('a new vault needs a passphrase of 8 bytes or more, typed or in a file; an existing one opens with any', async () => {
    const { ctx, dir } = context();
    const tty = terminal();
    const typed = readPassphrase({ ...ctx, interactive: true }, VAULT, true, tty);
    tty.typed.write('short\rshort\r');
    await expect(typed).rejects.toThrow(
      'a passphrase for a new vault needs at least 8 bytes; the vault was not created',
    );
    const short = file(dir, 'short', 'seven77\n');
    const err = await readPassphrase({ ...ctx, passphraseFile: short }, VAULT, true).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.hint).toContain(`put a longer passphrase in ${short}`);
    expect((await readPassphrase({ ...ctx, passphraseFile: short }, VAULT, false)).toString()).toBe(
      'seven77',
    );
    const eight = file(dir, 'eight', 'eight888\n');
    expect((await readPassphrase({ ...ctx, passphraseFile: eight }, VAULT, true)).toString()).toBe(
      'eight888',
    );
  });

  it('Ctrl-C cancels, and an empty entry is refused', async () => {
    const { ctx } = context();
    const tty = terminal();
    const cancelled = readPassphrase({ ...ctx, interactive: true }, VAULT, false, tty);
    tty.typed.write('abc\x03');
    await expect(cancelled).rejects.toThrow('cancelled at the prompt; nothing was done');
    const tty2 = terminal();
    const empty = readPassphrase({ ...ctx, interactive: true }, VAULT, false, tty2);
    tty2.typed.write('\r');
    await expect(empty).rejects.toThrow('refusing an empty passphrase');
  });
});
