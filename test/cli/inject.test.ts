import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  type Stats,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';
import { randomName } from '../support/context.js';

// `entraclaw inject` with the built CLI and a real encrypted-file vault: what lands on disk (mode, bytes,
// leftovers) and what never does.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-inject-'));
const pass = join(dir, 'pass');
writeFileSync(pass, 'inject test passphrase\n', { mode: 0o600 });
const env = isolatedEnv(dir, { ENTRACLAW_PASSPHRASE_FILE: pass });
const STORE = ['--store', 'encrypted-file'];
const CANARY = `CANARY-${randomName('inject')}`;
const BINARY = Buffer.from([0x00, 0xff, 0x0a, 0x0d, 0x80, 0x7b, 0x7b, 0x00]);
let n = 0;

/** A fresh empty directory, so "nothing else was written" is a readdir away. */
function freshDir(): string {
  const d = join(dir, `out-${n++}`);
  mkdirSync(d);
  return d;
}

const inject = (args: string[], input?: string | Buffer, extra: NodeJS.ProcessEnv = {}) =>
  runCli(['inject', ...STORE, ...args], { ...env, ...extra }, input);

beforeAll(() => {
  for (const [account, value] of [
    ['token', Buffer.from(CANARY)],
    ['bin', BINARY],
  ] as const) {
    const f = join(dir, `value-${account}`);
    writeFileSync(f, value, { mode: 0o600 });
    const r = runCli(['secret', 'set', 'inj', account, '--from-file', f, ...STORE], env);
    expect(r.status, r.stderr).toBe(0);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('entraclaw inject -i TEMPLATE -o FILE', () => {
  it('renders the template into a 0600 file, even under umask 022, leaving no temp file', () => {
    const out = freshDir();
    const tpl = join(dir, 'app.conf.tmpl');
    writeFileSync(tpl, 'user = "me"\ntoken = "{{ entraclaw://inj/token }}"\n');
    // Through sh so the CLI really starts with umask 022.
    const r = spawnSync(
      'sh',
      [
        '-c',
        `umask 022; exec "$0" "$@"`,
        process.execPath,
        CLI,
        'inject',
        ...STORE,
        '-i',
        tpl,
        '-o',
        join(out, 'app.conf'),
      ],
      {
        env,
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(out, 'app.conf'), 'utf8')).toBe(`user = "me"\ntoken = "${CANARY}"\n`);
    expect(statSync(join(out, 'app.conf')).mode & 0o777).toBe(0o600);
    expect(readdirSync(out)).toEqual(['app.conf']);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toContain(CANARY);
  });

  it('replaces an existing world-readable file with a 0600 one', () => {
    const out = freshDir();
    const file = join(out, 'app.conf');
    writeFileSync(file, 'old contents\n', { mode: 0o644 });
    const tpl = join(dir, 'replace.tmpl');
    writeFileSync(tpl, '{{entraclaw://inj/token}}');
    const r = inject(['-i', tpl, '-o', file]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(CANARY);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(out)).toEqual(['app.conf']);
  });

  it('-o naming a FIFO, or a link to /dev/null or to a descriptor (/dev/stdout), is refused and left as it was', () => {
    const out = freshDir();
    const tpl = join(dir, 'special.tmpl');
    writeFileSync(tpl, 'T={{ entraclaw://inj/token }}\n');
    const fifo = join(out, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const toNull = join(out, 'null');
    symlinkSync('/dev/null', toNull);
    const toFd = join(out, 'stdout');
    // What /dev/stdout links to: on macOS, which has no /proc, /dev/fd/1.
    symlinkSync(process.platform === 'linux' ? '/proc/self/fd/1' : '/dev/fd/1', toFd);
    for (const [target, isKind] of [
      [fifo, (s: Stats) => s.isFIFO()],
      [toNull, (s: Stats) => s.isSymbolicLink()],
      [toFd, (s: Stats) => s.isSymbolicLink()],
    ] as const) {
      const r = inject(['-i', tpl, '-o', target]);
      expect(r.status, `${target}: ${r.stderr}`).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain(`-o ${target} is `);
      expect(r.stderr).toContain('-o -');
      expect(r.stderr).not.toContain(CANARY);
      expect(isKind(lstatSync(target)), target).toBe(true);
    }
    expect(readdirSync(out).sort()).toEqual(['fifo', 'null', 'stdout']);
  });

  it('an unresolvable reference writes nothing and names the reference and its line', () => {
    const out = freshDir();
    const tpl = join(dir, 'broken.tmpl');
    writeFileSync(tpl, 'a = {{ entraclaw://inj/token }}\n\nb = {{ entraclaw://inj/nobody }}\n');
    const r = inject(['-i', tpl, '-o', join(out, 'app.conf')]);
    expect(r.status).toBe(EXIT_CODES.not_found);
    expect(readdirSync(out)).toEqual([]);
    expect(r.stdout.length).toBe(0);
    // The place and the reference, each named once.
    expect(r.stderr).toContain(`entraclaw: ${tpl}:3: entraclaw://inj/nobody not found in encrypted-file\n`);
    expect(r.stderr).not.toContain(CANARY);
  });

  it('-o - is stdout; an empty -o, or -o naming the template itself, is a usage error that writes nothing', () => {
    const tpl = join(dir, 'self.tmpl');
    const text = 'TOKEN={{ entraclaw://inj/token }}\n';
    writeFileSync(tpl, text);
    const dash = inject(['-i', tpl, '-o', '-']);
    expect(dash.status, dash.stderr).toBe(0);
    expect(dash.stdout.toString()).toBe(`TOKEN=${CANARY}\n`);
    expect(existsSync(join(process.cwd(), '-'))).toBe(false);
    const empty = inject(['-i', tpl, '-o', '']);
    expect(empty.status).toBe(EXIT_CODES.usage);
    expect(empty.stdout.length).toBe(0);
    const self = inject(['-i', tpl, '-o', tpl]);
    expect(self.status).toBe(EXIT_CODES.usage);
    expect(self.stderr).toContain('is the template itself');
    expect(readFileSync(tpl, 'utf8')).toBe(text);
  });

  it('a tag split over lines is resolved, not passed through as text', () => {
    const r = inject([], 'A={{\n  entraclaw://inj/token\n}}\n');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`A=${CANARY}\n`);
  });

  it('an unresolvable reference leaves an existing output file exactly as it was', () => {
    const out = freshDir();
    const file = join(out, 'app.conf');
    writeFileSync(file, 'previous\n', { mode: 0o640 });
    const tpl = join(dir, 'broken2.tmpl');
    writeFileSync(tpl, '{{ entraclaw://inj/token }} {{ entraclaw://inj/nobody }}');
    expect(inject(['-i', tpl, '-o', file]).status).toBe(EXIT_CODES.not_found);
    expect(readFileSync(file, 'utf8')).toBe('previous\n');
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(readdirSync(out)).toEqual(['app.conf']);
  });

  it('a malformed reference is a usage error naming the line, and writes nothing', () => {
    const out = freshDir();
    const tpl = join(dir, 'malformed.tmpl');
    writeFileSync(tpl, 'ok\n{{ entraclaw://only-one-part }}\n');
    const r = inject(['-i', tpl, '-o', join(out, 'x')]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`${tpl}:2`);
    expect(readdirSync(out)).toEqual([]);
  });

  it('a tag whose scheme is not lower case is a usage error naming the line, as `run` refuses it', () => {
    for (const tag of ['{{ ENTRACLAW://inj/token }}', '{{Entraclaw://inj/token}}']) {
      const out = freshDir();
      const tpl = join(dir, 'upper.tmpl');
      writeFileSync(tpl, `ok\ntoken = ${tag}\n`);
      const r = inject(['-i', tpl, '-o', join(out, 'x')]);
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain(`${tpl}:2: a reference's scheme is written in lower case`);
      expect(readdirSync(out)).toEqual([]);
      const viaRun = runCli(['run', ...STORE, '--env', `T=${tag.slice(2, -2).trim()}`, '--', 'true'], env);
      expect(viaRun.status).toBe(EXIT_CODES.usage);
    }
  });

  it('a tag a slash short of the scheme is a usage error naming the line, and `run` refuses such a value', () => {
    for (const tag of [
      '{{ entraclaw:/inj/token }}',
      '{{entraclaw:inj/token}}',
      '{{ ENTRACLAW:/inj/token }}',
    ]) {
      const out = freshDir();
      const tpl = join(dir, 'slash.tmpl');
      writeFileSync(tpl, `ok\ntoken = ${tag}\n`);
      const r = inject(['-i', tpl, '-o', join(out, 'x')]);
      expect(r.status, r.stderr).toBe(EXIT_CODES.usage);
      expect(r.stderr).toContain(`${tpl}:2: a reference starts with entraclaw:// (a colon and two slashes)`);
      expect(readdirSync(out)).toEqual([]);
      const viaRun = runCli(
        ['run', ...STORE, '--env', `T=${tag.slice(2, -2).trim()}`, '--', 'sh', '-c', 'printf %s "$T"'],
        env,
      );
      expect(viaRun.status, viaRun.stderr).toBe(EXIT_CODES.usage);
      expect(viaRun.stdout.toString()).toBe('');
    }
    // Another engine's `{{ entraclaw: ... }}` that names no item stays text.
    const tpl = join(dir, 'other.tmpl');
    writeFileSync(tpl, '{{ entraclaw: hello }}\n');
    const r = inject(['-i', tpl]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe('{{ entraclaw: hello }}\n');
  });

  it('a missing template is a usage error', () => {
    const r = inject(['-i', join(dir, 'no-such.tmpl'), '-o', join(freshDir(), 'x')]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain('no-such.tmpl');
  });

  it.each([
    ['a missing directory', (d: string) => join(d, 'no-such-dir', 'x')],
    ['a directory', (d: string) => d],
    ['a directory as DIR/. (rename says EBUSY, not EISDIR)', (d: string) => `${d}/.`],
  ])('-o naming %s is a usage error (exit 2) saying what -o needs, and writes nothing', (_what, target) => {
    const out = freshDir();
    const tmpl = join(dir, `t-${n++}.tmpl`);
    writeFileSync(tmpl, 'token={{ entraclaw://inj/token }}\n');
    const r = inject(['-i', tmpl, '-o', target(out)]);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`cannot write ${target(out)}`);
    expect(r.stderr).toContain('hint: -o names the file to write');
    expect(r.stderr).not.toContain(CANARY);
    expect(readdirSync(out)).toEqual([]);
  });

  it('a template over 4 MiB is too large (exit 2), with a hint about templates', () => {
    const r = inject(['-o', join(freshDir(), 'x')], Buffer.alloc(4 * 1024 * 1024 + 1, 0x61));
    expect(r.status).toBe(EXIT_CODES.too_large);
    expect(r.stderr).toContain('template on stdin is larger than 4194304 bytes');
    expect(r.stderr).toContain('hint: split it into smaller templates');
  });
});

describe('entraclaw inject: stdin and stdout', () => {
  it('reads the template from stdin and writes the result to stdout', () => {
    const r = inject([], 'export TOKEN={{ entraclaw://inj/token }}\n');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`export TOKEN=${CANARY}\n`);
    expect(inject(['-i', '-'], '{{entraclaw://inj/token}}').stdout.toString()).toBe(CANARY);
  });

  it('an unresolvable reference from stdin prints nothing on stdout', () => {
    const r = inject([], '{{ entraclaw://inj/token }}\n{{ entraclaw://inj/nobody }}\n');
    expect(r.status).toBe(EXIT_CODES.not_found);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toContain('entraclaw://inj/nobody');
    expect(r.stderr).toMatch(/:2\b/);
  });

  it('leaves {{ ... }} that is not a reference exactly as written', () => {
    const text =
      'a: {{ .Values.image }}\nb: {{name}}\nc: {{ https://example.com }}\nd: {{\ne: }}\nf: {{ entraclaw://inj/token }}\n';
    const r = inject([], text);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(text.replace('{{ entraclaw://inj/token }}', CANARY));
  });

  it('a reference outside {{ }} is copied as text, with a warning naming its line (as op inject would have resolved it)', () => {
    const text =
      'a: {{ entraclaw://inj/token }}\nb: entraclaw://inj/token\nc: {{- entraclaw://inj/token -}}\n';
    const r = inject([], text);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(text.replace('{{ entraclaw://inj/token }}', CANARY));
    expect(r.stderr).toBe(
      'entraclaw: warning: stdin:2, stdin:3: entraclaw:// outside {{ }} is copied as text, not replaced by the secret (write {{ entraclaw://SERVICE/ACCOUNT }} to insert it)\n',
    );
  });

  it('a template without any reference needs no store at all', () => {
    // A store that cannot even open (no session bus) is not touched when nothing refers to it.
    const text = 'plain {{ .Go }} text\n';
    const noBus = { ...env, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-bus')}` };
    const r = runCli(['inject', '--store', 'secret-service'], noBus, text);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(text);
    const withRef = runCli(['inject', '--store', 'secret-service'], noBus, '{{ entraclaw://inj/token }}');
    expect(withRef.status).toBe(EXIT_CODES.unavailable);
    expect(withRef.stdout.length).toBe(0);
    expect(withRef.stderr).toContain('stdin:1');
  });
});

describe('entraclaw inject: binary safety', () => {
  it('writes a binary secret byte for byte, to a file and to stdout', () => {
    const expected = Buffer.concat([Buffer.from('key='), BINARY, Buffer.from('\n')]);
    const out = freshDir();
    const tpl = join(dir, 'bin.tmpl');
    writeFileSync(tpl, 'key={{ entraclaw://inj/bin }}\n');
    expect(inject(['-i', tpl, '-o', join(out, 'key')]).status).toBe(0);
    expect(readFileSync(join(out, 'key')).equals(expected)).toBe(true);
    expect(inject(['-i', tpl]).stdout.equals(expected)).toBe(true);
  });

  it('keeps template bytes that are not UTF-8 (a Latin-1 config, CRLF, NUL) unchanged', () => {
    const before = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a, 0x00, 0xff, 0x3d]); // "caf\xe9\r\n\0\xff="
    const after = Buffer.from([0x0d, 0x0a, 0xc3, 0xa9, 0x80]);
    const tpl = Buffer.concat([before, Buffer.from('{{ entraclaw://inj/token }}'), after]);
    const r = inject([], tpl);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.equals(Buffer.concat([before, Buffer.from(CANARY), after]))).toBe(true);
    const out = freshDir();
    const file = join(dir, 'latin1.tmpl');
    writeFileSync(file, tpl);
    expect(inject(['-i', file, '-o', join(out, 'x')]).status).toBe(0);
    expect(readFileSync(join(out, 'x')).equals(Buffer.concat([before, Buffer.from(CANARY), after]))).toBe(
      true,
    );
    expect(existsSync(join(out, 'x'))).toBe(true);
  });
});
