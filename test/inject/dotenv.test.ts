import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDotenvFiles, parseDotenv } from '../../src/inject/dotenv.js';
import { usageError } from '../support/errors.js';

describe('parseDotenv', () => {
  it('returns pairs in file order with dotenv value semantics', () => {
    const text = [
      '# comment',
      '',
      'PLAIN=value',
      'export EXPORTED=1',
      '  SPACED = padded   ',
      'COMMENTED=abc # trailing comment',
      'HASH_IN_QUOTES="a#b"',
      "SINGLE='raw \\n stays'",
      'DOUBLE="line\\nbreak"',
      'BACKTICK=`tick`',
      'EMPTY=',
      'YAMLISH: colon',
      'REF=entraclaw://github/me',
    ].join('\n');
    expect(parseDotenv(text, '.env')).toEqual([
      ['PLAIN', 'value'],
      ['EXPORTED', '1'],
      ['SPACED', 'padded'],
      ['COMMENTED', 'abc'],
      ['HASH_IN_QUOTES', 'a#b'],
      ['SINGLE', 'raw \\n stays'],
      ['DOUBLE', 'line\nbreak'],
      ['BACKTICK', 'tick'],
      ['EMPTY', ''],
      ['YAMLISH', 'colon'],
      ['REF', 'entraclaw://github/me'],
    ]);
  });

  it('reads multi-line quoted values and keeps counting lines after them', () => {
    const text = 'KEY="-----BEGIN-----\nabc\n-----END-----"\nNEXT=1\nbad line';
    expect(() => parseDotenv(text, 'f.env')).toThrow('f.env:5: not a NAME=value line');
    expect(parseDotenv(text.replace('\nbad line', ''), 'f.env')).toEqual([
      ['KEY', '-----BEGIN-----\nabc\n-----END-----'],
      ['NEXT', '1'],
    ]);
  });

  it('honours an escaped quote inside a quoted value', () => {
    expect(parseDotenv('A="say \\"hi\\"\nthere"\nB=2', 'f')).toEqual([
      ['A', 'say \\"hi\\"\nthere'],
      ['B', '2'],
    ]);
  });

  it('keeps duplicates in order (the later one wins when applied)', () => {
    expect(parseDotenv('A=1\nA=2', 'f')).toEqual([
      ['A', '1'],
      ['A', '2'],
    ]);
  });

  it('handles CRLF line endings and a byte-order mark', () => {
    expect(parseDotenv('\uFEFFA=1\r\nB=2\r\n', 'f')).toEqual([
      ['A', '1'],
      ['B', '2'],
    ]);
  });

  it.each([
    ['A.B=1', '"A.B"'],
    ['1ABC=1', '"1ABC"'],
    ['a-b=1', '"a-b"'],
    ['$X=1', '"$X"'],
  ])('rejects the invalid name in %s with file:line', (line, shown) => {
    const err = usageError(() => parseDotenv(`OK=1\n${line}`, 'app/.env'));
    expect(err.message).toBe(`app/.env:2: ${shown} is not a valid variable name`);
  });

  it.each([['export ONLY'], ['just some text'], ['A : spaced colon'], ['A:nospace']])(
    'rejects %j instead of skipping it like dotenv, without echoing it',
    (line) => {
      const err = usageError(() => parseDotenv(`# c\n${line}`, '.env'));
      expect(err.message).toBe('.env:2: not a NAME=value line');
    },
  );

  it.each([['PASS=ab#cd'], ['URL=https://x/#/route'], ['A=#x'], ['REF=entraclaw://svc/me#frag']])(
    'rejects %j: dotenv would cut the value at the "#", a shell or docker compose would keep it',
    (line) => {
      const err = usageError(() => parseDotenv(`OK=1\n${line}`, '.env'));
      const name = line.slice(0, line.indexOf('='));
      expect(err.message).toBe(
        `.env:2: the value of ${name} has a "#" with no space before it, which dotenv reads as the start of a comment (the rest of the value would be dropped) and a shell or docker compose as part of the value`,
      );
      expect(err.hint).toContain(`${name}="...#..."`);
    },
  );

  it('keeps a "#" after white space a comment, and one inside quotes part of the value', () => {
    expect(parseDotenv('A=ab #c\nB= #c\nC="a#b"\nD=\'a#b\' # c\nE=`#`', 'f')).toEqual([
      ['A', 'ab'],
      ['B', ''],
      ['C', 'a#b'],
      ['D', 'a#b'],
      ['E', '#'],
    ]);
  });

  it('rejects bytes that are not UTF-8', () => {
    expect(() => parseDotenv(Buffer.from([0x41, 0x3d, 0xff]), 'bin.env')).toThrow('bin.env: not UTF-8 text');
  });
});

describe('loadDotenvFiles', () => {
  const dir = mkdtempSync(join(tmpdir(), 'entraclaw-dotenv-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('concatenates files in order', async () => {
    writeFileSync(join(dir, 'a.env'), 'A=1\nB=1\n');
    writeFileSync(join(dir, 'b.env'), 'B=2\n');
    expect(await loadDotenvFiles([join(dir, 'a.env'), join(dir, 'b.env')])).toEqual([
      ['A', '1'],
      ['B', '1'],
      ['B', '2'],
    ]);
  });

  it('names the file in errors', async () => {
    writeFileSync(join(dir, 'bad.env'), 'A=1\nnot valid\n');
    await expect(loadDotenvFiles([join(dir, 'bad.env')])).rejects.toThrow(`${join(dir, 'bad.env')}:2:`);
    await expect(loadDotenvFiles([join(dir, 'missing.env')])).rejects.toThrow(
      /cannot read \.env file .*\(ENOENT\)/,
    );
  });
});
