import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadPolicy, parsePolicy, policyPath, policyWarnings } from '../../src/policy/load.js';
import { usageError } from '../support/errors.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

const EXAMPLE = `
[[client]]
name = "deploy-bot"
exe = "/usr/bin/node"
sha256 = "${A}"
script = "/home/me/bot/index.js"      # optional: interpreters are pinned to a script
script_sha256 = "${B}"
added = "2026-11-24T10:00:00Z"
  [[client.grant]]
  services = ["github.com"]
  service_prefixes = ["aws/"]
  accounts = ["*"]
  operations = ["read", "list"]
  expires_at = "2026-12-01T00:00:00Z"
  source = "user"

  [[client.grant]]
  services = ["npm"]
  accounts = ["me"]
  operations = ["write"]

[[client]]
name = "ssh"
exe = "/usr/bin/ssh"
sha256 = "${B.toUpperCase()}"
`;

describe('parsePolicy', () => {
  it('reads the documented example into clients and grants', () => {
    expect(parsePolicy(EXAMPLE)).toEqual({
      clients: [
        {
          name: 'deploy-bot',
          exe: '/usr/bin/node',
          sha256: A,
          script: '/home/me/bot/index.js',
          scriptSha256: B,
          added: '2026-11-24T10:00:00.000Z',
          grants: [
            {
              services: ['github.com'],
              servicePrefixes: ['aws/'],
              accounts: ['*'],
              operations: ['read', 'list'],
              expiresAt: '2026-12-01T00:00:00.000Z',
              source: 'user',
            },
            { services: ['npm'], servicePrefixes: [], accounts: ['me'], operations: ['write'] },
          ],
        },
        // Hashes are compared in lowercase.
        { name: 'ssh', exe: '/usr/bin/ssh', sha256: B, grants: [] },
      ],
    });
  });

  it('reads an empty document as an empty policy', () => {
    expect(parsePolicy('')).toEqual({ clients: [] });
    expect(parsePolicy('# nothing approved yet\n')).toEqual({ clients: [] });
  });

  it('accepts native TOML datetimes with an offset', () => {
    const p = parsePolicy(
      `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\nadded = 2026-11-24T12:00:00+02:00\n`,
    );
    expect(p.clients[0]!.added).toBe('2026-11-24T10:00:00.000Z');
  });

  it('names the line of a client table written with dotted keys instead of [[client]]', () => {
    expect(usageError(() => parsePolicy('# mine\nclient.name = "bot"\n', 'p.toml')).message).toBe(
      'invalid policy: p.toml:2: client: Invalid input: expected array, received object',
    );
  });

  it('refuses a TOML date on a day its month does not have, by line, instead of the next month', () => {
    const feb30 = EXAMPLE.replace(
      'expires_at = "2026-12-01T00:00:00Z"',
      'expires_at = 2027-02-30T00:00:00+01:00',
    );
    expect(usageError(() => parsePolicy(feb30, 'p.toml')).message).toBe(
      'invalid policy: p.toml:14: 2027-02-30 is not a date (its month has no such day)',
    );
    for (const ok of ['2028-02-29T00:00:00Z', '2027-04-30 12:00:00Z', '2027-12-31t00:00:00z']) {
      const text = EXAMPLE.replace('expires_at = "2026-12-01T00:00:00Z"', `expires_at = ${ok}`);
      expect(parsePolicy(text).clients[0]!.grants[0]!.expiresAt, ok).toBeDefined();
    }
    // In a string or a comment it is no TOML date (a string expires_at has its own check).
    expect(parsePolicy(`${EXAMPLE}# until 2027-02-30\n`).clients).toHaveLength(2);
    expect(usageError(() => parsePolicy(EXAMPLE.replace('2026-12-01T', '2026-02-30T'))).message).toMatch(
      /expires_at: must be a date and time/,
    );
  });

  it('refuses a time an offset carries past the year 9999 in UTC, which no policy.toml can hold', () => {
    for (const late of ['9999-12-31T23:59:59-23:59', '"9999-12-31T23:00:00-02:00"']) {
      const text = EXAMPLE.replace('expires_at = "2026-12-01T00:00:00Z"', `expires_at = ${late}`);
      expect(usageError(() => parsePolicy(text, 'p.toml')).message, late).toBe(
        'invalid policy: p.toml:14: expires_at: must fall within the years 0000 to 9999 in UTC',
      );
    }
  });

  it('reports a TOML syntax error with its line', () => {
    const e = usageError(() => parsePolicy('[[client]]\nname = "x"\nexe = \n', 'p.toml'));
    expect(e.message).toMatch(/^p\.toml:3: /);
  });

  describe('unknown keys are refused with their line', () => {
    it.each([
      [
        'a misspelt grant key',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n  [[client.grant]]\n  services = ["s"]\n  acounts = ["*"]\n  accounts = ["*"]\n  operations = ["read"]\n`,
        7,
        'acounts',
        'client.grant',
      ],
      [
        'a misspelt client key',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\nscript_hash = "y"\n`,
        5,
        'script_hash',
        'client',
      ],
      [
        'a key of the second client',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n\n[[client]]\nname = "y"\nexe = "/y"\nsha256 = "${B}"\nvalue = "hunter2"\n`,
        10,
        'value',
        'client',
      ],
      [
        'a top-level key',
        `version = 2\n[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n`,
        1,
        'version',
        '',
      ],
      ['a top-level table', `[[clients]]\nname = "x"\n`, 1, 'clients', ''],
      [
        'a quoted key',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n"na me" = 1\n`,
        5,
        'na me',
        'client',
      ],
      [
        'a key after a multi-line array',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n[[client.grant]]\nservices = [\n  "a",\n  "b",\n]\naccounts = ["*"]\noperations = ["read"]\nextra = true\n`,
        12,
        'extra',
        'client.grant',
      ],
      [
        'a key in the third grant of the second client',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n[[client.grant]]\nservices = ["a"]\naccounts = ["*"]\noperations = ["read"]\n[[client]]\nname = "y"\nexe = "/y"\nsha256 = "${B}"\n[[client.grant]]\nservices = ["a"]\naccounts = ["*"]\noperations = ["read"]\n[[client.grant]]\nservices = ["a"]\naccounts = ["*"]\noperations = ["read"]\n[[client.grant]]\nservices = ["a"]\naccounts = ["*"]\noperations = ["read"]\nprovider = "keychain"\n`,
        25,
        'provider',
        'client.grant',
      ],
      [
        'a key of the second grant in an inline array, one grant per line',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\ngrant = [\n  { services = ["a"], accounts = ["*"], operations = ["read"] },\n  # the second\n  { services = ["b"], accounts = ["*"], operations = ["read"], bogus = 1 },\n]\n`,
        8,
        'bogus',
        'client.grant',
      ],
      [
        'a key of the second client in an inline array',
        `client = [\n  { name = "x", exe = "/x", sha256 = "${A}" },\n  { name = "y", exe = "/y", sha256 = "${B}",\n    extra = 1 },\n]\n`,
        4,
        'extra',
        'client',
      ],
      [
        'a quoted key written with a \\u escape',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n\n"sh\\u0061256x" = 1\n`,
        6,
        'sha256x',
        'client',
      ],
    ])('%s', (_name, source, line, key, table) => {
      const e = usageError(() => parsePolicy(source, 'policy.toml'));
      expect(e.message).toContain(
        `policy.toml:${line}: unknown key "${key}"${table ? ` in [[${table}]]` : ''}`,
      );
      expect(e.hint).toMatch(/fix policy\.toml/);
    });

    it('is not fooled by key-like text inside a multi-line string', () => {
      const src = `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\nlabel = """\nbogus = 1\n"""\n`;
      expect(usageError(() => parsePolicy(src)).message).toContain('policy.toml:5: unknown key "label"');
    });
  });

  describe('invalid values are refused naming the field and line', () => {
    const client = (extra: string, grant = '') =>
      `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n${extra}${grant ? `[[client.grant]]\n${grant}` : ''}`;
    it.each([
      [
        'a short sha256',
        `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "abc"\n`,
        4,
        /sha256: must be 64 hex digits/,
      ],
      [
        'a relative exe',
        `[[client]]\nname = "x"\nexe = "node"\nsha256 = "${A}"\n`,
        3,
        /exe: must be an absolute path/,
      ],
      [
        'a client name with a space',
        `[[client]]\nname = "my bot"\nexe = "/x"\nsha256 = "${A}"\n`,
        2,
        /name: must be/,
      ],
      [
        'a client name like a flag',
        `[[client]]\nname = "-rf"\nexe = "/x"\nsha256 = "${A}"\n`,
        2,
        /name: must be/,
      ],
      [
        'a client name over 64 characters',
        `[[client]]\nname = "${'n'.repeat(65)}"\nexe = "/x"\nsha256 = "${A}"\n`,
        2,
        /name: must be/,
      ],
      ['a missing name', `[[client]]\nexe = "/x"\nsha256 = "${A}"\n`, 1, /name: missing \(a required key\)/],
      ['script without its hash', client('script = "/s.js"\n'), 5, /script: script needs script_sha256/],
      [
        'a script hash without script',
        client(`script_sha256 = "${B}"\n`),
        5,
        /script_sha256: script_sha256 needs script/,
      ],
      [
        'an unknown operation',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = ["read", "reed"]\n'),
        8,
        /operations\[1\]: must be one of read, list, create, update, delete, write/,
      ],
      [
        'no accounts',
        client('', 'services = ["s"]\noperations = ["read"]\n'),
        5,
        /accounts: missing \(a required key\)/,
      ],
      [
        'empty accounts',
        client('', 'services = ["s"]\naccounts = []\noperations = ["read"]\n'),
        7,
        /accounts: must name at least one account \(write "\*" for any\)/,
      ],
      [
        'no services at all',
        client('', 'accounts = ["*"]\noperations = ["read"]\n'),
        5,
        /services: a grant must name services or service_prefixes/,
      ],
      [
        'an empty service name',
        client('', 'services = [""]\naccounts = ["*"]\noperations = ["read"]\n'),
        6,
        /services\[0\]: must not be empty/,
      ],
      [
        'a "*" prefix',
        client('', 'service_prefixes = ["*"]\naccounts = ["*"]\noperations = ["read"]\n'),
        6,
        /service_prefixes: write services = \["\*"\]/,
      ],
      [
        'an expiry without timezone',
        client(
          '',
          'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nexpires_at = 2026-12-01T00:00:00\n',
        ),
        9,
        /expires_at: must be a date and time with a timezone/,
      ],
      [
        'an expiry that is not a time',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nexpires_at = "soon"\n'),
        9,
        /expires_at: must be a date/,
      ],
      [
        'an unknown source',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nsource = "magic"\n'),
        9,
        /source: must be one of user, profile, cli/,
      ],
      [
        'services as a string',
        client('', 'services = "s"\naccounts = ["*"]\noperations = ["read"]\n'),
        6,
        /services: /,
      ],
      [
        'confirm as a string',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nconfirm = "yes"\n'),
        9,
        /confirm: must be true or false/,
      ],
      [
        'a confirmation window that is not a duration',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nconfirm_for = "a while"\n'),
        9,
        /confirm_for: must be a positive number and a unit/,
      ],
      [
        'a confirmation window over 24 hours',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nconfirm_for = "2d"\n'),
        9,
        /confirm_for: .*at most 24h/,
      ],
      [
        'a confirmation window as a number',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nconfirm_for = 600\n'),
        9,
        /confirm_for: must be a duration string/,
      ],
      [
        'a service name over 256 bytes, without repeating it (a pasted token, likely)',
        client('', `services = ["tok-${'x'.repeat(300)}"]\naccounts = ["*"]\noperations = ["read"]\n`),
        6,
        /^invalid policy: policy\.toml:6: services\[0\]: must be at most 256 bytes$/,
      ],
      [
        'an account with a newline, without repeating it (a pasted key, likely)',
        client('', 'services = ["s"]\naccounts = ["-----BEGIN\\nMIIE"]\noperations = ["read"]\n'),
        7,
        /^invalid policy: policy\.toml:7: accounts\[0\]: must not contain NUL or newline characters$/,
      ],
      [
        'an unknown operation in a multi-line array, at its own line',
        client('', 'services = ["s"]\naccounts = ["*"]\noperations = [\n  "read",\n  "reed",\n]\n'),
        10,
        /operations\[1\]: must be one of/,
      ],
      [
        'a relative exe of the second client in an inline array',
        `client = [\n  { name = "x", exe = "/x", sha256 = "${A}" },\n  { name = "y", exe = "y", sha256 = "${B}" },\n]\n`,
        3,
        /exe: must be an absolute path/,
      ],
      [
        'a confirmation window beside confirm = false',
        client(
          '',
          'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nconfirm = false\nconfirm_for = "5m"\n',
        ),
        10,
        /confirm_for: contradicts confirm = false/,
      ],
    ])('%s', (_name, source, line, message) => {
      const e = usageError(() => parsePolicy(source));
      expect(e.message).toContain(`policy.toml:${line}: `);
      expect(e.message).toMatch(message);
    });

    it('confirm_for implies confirm and keeps the window as written', () => {
      const source = client(
        '',
        'services = ["s"]\naccounts = ["*"]\noperations = ["read"]\nconfirm_for = "24h"\n',
      );
      expect(parsePolicy(source).clients[0]!.grants[0]).toMatchObject({ confirm: true, confirmFor: '24h' });
    });

    it('accepts the names the CLI derives from file names', () => {
      for (const name of ['my_bot.js', 'deploy-bot', '_x', 'a@b+c', 'n'.repeat(64)]) {
        expect(
          parsePolicy(`[[client]]\nname = "${name}"\nexe = "/x"\nsha256 = "${A}"\n`).clients[0]!.name,
        ).toBe(name);
      }
    });

    it('refuses two clients with one name, and two entries for one program', () => {
      const two = `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n[[client]]\nname = "x"\nexe = "/y"\nsha256 = "${B}"\n`;
      expect(usageError(() => parsePolicy(two)).message).toMatch(
        /policy\.toml:6: name: "x" is already client #1/,
      );
      const same = `[[client]]\nname = "x"\nexe = "/x"\nsha256 = "${A}"\n[[client]]\nname = "y"\nexe = "/y"\nsha256 = "${A}"\n`;
      expect(usageError(() => parsePolicy(same)).message).toMatch(
        /policy\.toml:8: sha256: same program as client #1/,
      );
    });

    it('allows one binary under several script pins', () => {
      const src = `[[client]]\nname = "x"\nexe = "/n"\nsha256 = "${A}"\nscript = "/a.js"\nscript_sha256 = "${B}"\n[[client]]\nname = "y"\nexe = "/n"\nsha256 = "${A}"\nscript = "/b.js"\nscript_sha256 = "${B}"\n`;
      expect(parsePolicy(src).clients).toHaveLength(2);
    });

    it('lists several problems in line order and caps the list', () => {
      const src = Array.from(
        { length: 7 },
        (_, i) => `[[client]]\nname = "c${i}"\nexe = "/x"\nsha256 = "${A}"\nbad${i} = 1\n`,
      ).join('');
      const e = usageError(() => parsePolicy(src));
      expect(e.message.indexOf('bad0')).toBeLessThan(e.message.indexOf('bad1'));
      expect(e.message).toMatch(/and \d+ more$/);
    });
  });
});

describe('loadPolicy', () => {
  // Every directory a test made (one test makes two), all removed after it.
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const setup = () => {
    const dir = mkdtempSync(join(tmpdir(), 'entraclaw-policy-'));
    dirs.push(dir);
    return join(dir, 'policy.toml');
  };

  it('treats a missing file as an empty policy', () => {
    expect(loadPolicy(join(setup(), 'nope'))).toEqual({ clients: [] });
    expect(loadPolicy(setup())).toEqual({ clients: [] });
  });

  it('reads a file and names it in errors', () => {
    const path = setup();
    writeFileSync(path, EXAMPLE, { mode: 0o600 });
    expect(loadPolicy(path).clients.map((c) => c.name)).toEqual(['deploy-bot', 'ssh']);
    writeFileSync(path, '[[client]]\nnme = "x"\n');
    expect(usageError(() => loadPolicy(path)).message).toContain(`${path}:2: unknown key "nme"`);
  });

  it('refuses a file that is not UTF-8, naming the line, rather than reading a byte as U+FFFD in a name', () => {
    const path = setup();
    const latin1 = Buffer.from(EXAMPLE.replace('accounts = ["me"]', 'accounts = ["caf\u00e9"]'), 'latin1');
    writeFileSync(path, latin1, { mode: 0o600 });
    const e = usageError(() => loadPolicy(path));
    const line = EXAMPLE.split('\n').findIndex((l) => l.includes('accounts = ["me"]')) + 1;
    expect(e.message).toBe(`${path}:${line}: not UTF-8 text (TOML is UTF-8)`);
    expect(e.hint).toContain('save');
    // The same text as UTF-8, with a byte order mark, is the name as written.
    writeFileSync(path, `\ufeff${EXAMPLE.replace('accounts = ["me"]', 'accounts = ["caf\u00e9"]')}`, {
      mode: 0o600,
    });
    expect(loadPolicy(path).clients[0]!.grants[1]!.accounts).toEqual(['caf\u00e9']);
  });

  it('refuses a file other users can write or another user owns', () => {
    const path = setup();
    writeFileSync(path, EXAMPLE);
    chmodSync(path, 0o666);
    expect(usageError(() => loadPolicy(path)).hint).toBe(`chmod 600 ${path}`);
    chmodSync(path, 0o620);
    expect(usageError(() => loadPolicy(path)).message).toMatch(/writable by other users/);
    chmodSync(path, 0o644);
    expect(() => loadPolicy(path)).not.toThrow();
    expect(usageError(() => loadPolicy(path, (process.getuid?.() ?? 0) + 1)).message).toMatch(
      /is owned by uid/,
    );
  });

  it('refuses a FIFO at the policy path instead of waiting on it or taking what comes through it', () => {
    const path = setup();
    const source = `${path}.src`;
    writeFileSync(source, EXAMPLE, { mode: 0o600 });
    expect(spawnSync('mkfifo', ['-m', '600', path]).status).toBe(0);
    // A writer ready to hand over a valid policy: the read must not take it.
    const writer = spawn('sh', ['-c', 'cat "$S" > "$F"'], {
      env: { S: source, F: path, PATH: process.env.PATH },
    });
    try {
      const err = usageError(() => loadPolicy(path));
      expect(err.message).toBe(`${path} is not a regular file`);
    } finally {
      writer.kill();
    }
  });

  it('refuses a policy in a directory other users can write (they could swap the file), but not a sticky one', () => {
    const path = setup();
    writeFileSync(path, EXAMPLE, { mode: 0o600 });
    const dir = dirname(path);
    chmodSync(dir, 0o777);
    const err = usageError(() => loadPolicy(path));
    expect(err.message).toMatch(/which holds .*policy\.toml, is writable by other users \(mode 777\)/);
    expect(err.hint).toBe(`chmod 700 ${dir}`);
    chmodSync(dir, 0o1777);
    expect(loadPolicy(path).clients).toHaveLength(2);
    // A symlinked policy (dotfiles) is judged by the directory it really lives in, too.
    chmodSync(dir, 0o700);
    const shared = mkdtempSync(join(tmpdir(), 'entraclaw-policy-shared-'));
    dirs.push(shared);
    chmodSync(shared, 0o777);
    const real = join(shared, 'policy.toml');
    writeFileSync(real, EXAMPLE, { mode: 0o600 });
    rmSync(path);
    symlinkSync(real, path);
    expect(usageError(() => loadPolicy(path)).message).toContain(`${shared}, which holds ${path}`);
    chmodSync(shared, 0o700);
    expect(loadPolicy(path).clients).toHaveLength(2);
    // A symlink on the way, in a directory others can write: they could point it at another file of ours.
    const hops = mkdtempSync(join(tmpdir(), 'entraclaw-policy-hops-'));
    dirs.push(hops);
    symlinkSync(real, join(hops, 'current'));
    rmSync(path);
    symlinkSync(join(hops, 'current'), path);
    expect(loadPolicy(path).clients).toHaveLength(2);
    chmodSync(hops, 0o777);
    expect(usageError(() => loadPolicy(path)).message).toContain(`${hops}, which holds ${path}`);
  });

  it('lives in the config directory', () => {
    expect(policyPath({ config: '/c', data: '/d', state: '/s', runtime: '/r' })).toBe('/c/policy.toml');
  });
});

describe('policyWarnings', () => {
  const LITERAL = `
[[client]]
name = "bot"
exe = "/usr/bin/tool"
sha256 = "${A}"
  [[client.grant]]
  services = ["github.com", "pre*"]
  accounts = ["*"]
  operations = ["read"]

  [[client.grant]]
  services = ["*"]
  service_prefixes = ["aws/*"]
  accounts = ["ops", "me*"]
  operations = ["read"]
`;

  it('names, by line, each * that is only a literal character, and what was likely meant', () => {
    expect(policyWarnings(LITERAL, parsePolicy(LITERAL), 'p.toml')).toEqual([
      'p.toml:7: services entry "pre*" matches only the service of that exact name: * is special only as a whole entry; for every service starting with "pre", write service_prefixes = ["pre"] (write the * as \\u002a if you mean the character)',
      'p.toml:13: service_prefixes entry "aws/*" matches services starting with that * itself: a prefix needs no *, write "aws/" (write the * as \\u002a if you mean the character)',
      'p.toml:14: accounts entry "me*" matches only the account of that exact name: * is special only as a whole entry ("*", every account); accounts have no prefixes (write the * as \\u002a if you mean the character)',
    ]);
  });

  it('for an entry of only stars, points at services = ["*"], never at an empty prefix', () => {
    const STARS = `
[[client]]
name = "bot"
exe = "/usr/bin/tool"
sha256 = "${A}"
  [[client.grant]]
  services = ["**"]
  service_prefixes = ["**"]
  accounts = ["*"]
  operations = ["read"]
`;
    const warnings = policyWarnings(STARS, parsePolicy(STARS), 'p.toml');
    expect(warnings).toEqual([
      'p.toml:7: services entry "**" matches only the service of that exact name: * is special only as a whole entry; for every service, write services = ["*"] (write the * as \\u002a if you mean the character)',
      'p.toml:8: service_prefixes entry "**" matches services starting with that * itself: * in a prefix is a literal character; for every service, write services = ["*"] (write the * as \\u002a if you mean the character)',
    ]);
    for (const w of warnings) expect(w).not.toContain('""');
  });

  it('has nothing to say about a * written as the escape \\u002a: a character on purpose', () => {
    const ESCAPED = LITERAL.replace('"pre*"', '"pre\\u002a"')
      .replace('"me*"', '"me\\u002A"')
      .replace('"aws/*"', `'aws/*'`);
    expect(parsePolicy(ESCAPED)).toEqual(parsePolicy(LITERAL));
    expect(policyWarnings(ESCAPED, parsePolicy(ESCAPED), 'p.toml')).toEqual([
      `p.toml:13: service_prefixes entry "aws/*" matches services starting with that * itself: a prefix needs no *, write "aws/" (write the * as \\u002a if you mean the character)`,
    ]);
  });

  it('refuses a name that is only a * written as an escape, by line, in every string form and inline tables', () => {
    // The escape says "the character *", but the parsed "*" would be every account or service.
    const accounts = LITERAL.replace('["ops", "me*"]', '["ops", "\\u002a"]');
    expect(usageError(() => parsePolicy(accounts, 'p.toml')).message).toMatch(
      /^invalid policy: p\.toml:14: a \* written as an escape means the character/,
    );
    const forms = ['"\\u002A"', '"\\U0000002a"', '"""\\u002a"""', '"""\\\n  *"""'];
    for (const form of forms) {
      const inline = `client = [{ name = "bot", exe = "/usr/bin/tool", sha256 = "${A}",
  grant = [{ services = ["svc"], accounts = [${form}], operations = ["read"] }] }]
`;
      expect(usageError(() => parsePolicy(inline, 'p.toml')).message, form).toMatch(
        /^invalid policy: p\.toml:2: /,
      );
    }
    // Typed as is, in any string form, it is every account; an escape elsewhere in a name is a character.
    for (const form of [`'*'`, '"""*"""', `'''*'''`, '"""\n*"""']) {
      const typed = LITERAL.replace('["ops", "me*"]', `["ops", ${form}]`);
      expect(parsePolicy(typed).clients[0]!.grants[1]!.accounts, form).toEqual(['ops', '*']);
    }
    expect(parsePolicy(LITERAL.replace('"me*"', '"\\u002a\\u002a"')).clients[0]!.grants[1]!.accounts).toEqual(
      ['ops', '**'],
    );
  });

  it('has nothing to say about * as a whole entry', () => {
    expect(policyWarnings(EXAMPLE, parsePolicy(EXAMPLE))).toEqual([]);
  });
});
