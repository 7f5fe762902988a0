import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { lineOf, tomlKeyLines } from '../../src/policy/toml-lines.js';

const DOC = `# comment = not a key
title = "x"   # trailing = comment
[[client]]
name = "a"
  [[client.grant]]   # first grant
  services = ["a=b", 'c]']
  [[client.grant]]
  accounts = [
    "x", # = inside a comment
    "y",
  ]
  note = '''
not = a key
'''
  after = 1
[[client]]
name = "b"
inline = { k = 1, j = [1,
  2] }
  [[client.grant]]
  "quoted.key" = 1
  dotted.key = 2
[server]
port = 1
[server.tls]
cert = "c"
`;

describe('tomlKeyLines', () => {
  const lines = tomlKeyLines(DOC);
  it('parses as TOML (the scanner only sees valid documents)', () => {
    expect(() => parse(DOC)).not.toThrow();
  });

  it.each([
    ['title', 2],
    ['client', 3],
    ['client.0', 3],
    ['client.0.name', 4],
    ['client.0.grant.0', 5],
    ['client.0.grant.0.services', 6],
    ['client.0.grant.1', 7],
    ['client.0.grant.1.accounts', 8],
    ['client.0.grant.1.note', 12],
    ['client.0.grant.1.after', 15],
    ['client.1', 16],
    ['client.1.name', 17],
    ['client.1.inline', 18],
    ['client.1.grant.0', 20],
    ['client.1.grant.0.quoted.key', 21],
    ['client.1.grant.0.dotted.key', 22],
    ['server', 23],
    ['server.port', 24],
    ['server.tls.cert', 26],
  ])('places %s at line %i', (path, line) => {
    expect(lines.get(path)).toBe(line);
  });

  it('never records text inside values as keys', () => {
    expect([...lines.keys()].some((k) => k.endsWith('not') || k.includes('comment'))).toBe(false);
  });

  it('falls back to the nearest recorded ancestor', () => {
    expect(lineOf(lines, ['client', 0, 'grant', 1, 'accounts', 5])).toBe(8);
    expect(lineOf(lines, ['client', 1, 'grant', 0, 'missing'])).toBe(20);
    expect(lineOf(lines, ['nowhere'])).toBeUndefined();
  });

  it('places the tables a dotted key defines where it is first written', () => {
    const dotted = tomlKeyLines('# top\nclient.name = "x"\nclient.exe = "y"\n');
    expect(dotted.get('client')).toBe(2);
    expect(dotted.get('client.exe')).toBe(3);
    expect(lines.get('client.1.grant.0.dotted')).toBe(22);
  });

  it('places each element of a value written over several lines, and each key of its inline tables', () => {
    const src = `grant = [
  { services = ["a"] }, # one
  # between
  {
    services = [
      "b",
      """c
d""",
      'e',
    ], "k\\u00e9" = 1 },
]
after = { t = 2026-01-01 00:00:00Z, n = [1, [2,
 3]] }
`;
    expect(() => parse(src)).not.toThrow();
    expect(Object.fromEntries(tomlKeyLines(src))).toMatchObject({
      grant: 1,
      'grant.0': 2,
      'grant.0.services': 2,
      'grant.0.services.0': 2,
      'grant.1': 4,
      'grant.1.services': 5,
      'grant.1.services.0': 6,
      'grant.1.services.1': 7,
      'grant.1.services.2': 9,
      'grant.1.ké': 10,
      after: 12,
      'after.t': 12,
      'after.n.1.1': 13,
    });
    expect(lines.get('client.0.grant.1.accounts.1')).toBe(10);
  });

  it('finds a quoted key written with escapes by the name it parses to', () => {
    const src = '[["cli\\u0065nt"]]\n"na\\u006De" = 1\n"\\U0001F600" = 2\n"\\x41\\e" = 3\n';
    expect(Object.keys(parse(src))).toEqual(['client']);
    const at = tomlKeyLines(src);
    expect(at.get('client.0.name')).toBe(2);
    expect(at.get('client.0.\u{1F600}')).toBe(3);
    expect(at.get('client.0.A\x1b')).toBe(4);
  });

  it('handles CRLF line ends', () => {
    expect(tomlKeyLines('a = 1\r\n[[t]]\r\nb = 2\r\n').get('t.0.b')).toBe(3);
  });
});
