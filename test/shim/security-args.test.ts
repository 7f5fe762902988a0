import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { ShimUsageError } from '../../src/shim/output.js';
import {
  entraclawQuery,
  parseSecurityArgs,
  parseSecurityCommand,
  type SecurityAdd,
  type SecurityFind,
  splitSecurityScript,
  tokenizeSecurityLine,
} from '../../src/shim/security-args.js';

// Expectations follow Apple's SecurityTool source (security.c, keychain_find.c, keychain_add.c); see
// the comments in src/shim/security-args.ts.

function refusal(fn: () => unknown): ShimUsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ShimUsageError);
    expect(err).toBeInstanceOf(UsageError);
    return err as ShimUsageError;
  }
  throw new Error('expected a ShimUsageError');
}

const command = (...argv: string[]) => {
  const parsed = parseSecurityArgs(argv);
  if (parsed.mode !== 'command') throw new Error('expected a command');
  return parsed.command;
};

describe('find-generic-password / find-internet-password', () => {
  it('maps -s/-a/-l and records everything else', () => {
    expect(
      command(
        'find-generic-password',
        '-a',
        'me',
        '-s',
        'github',
        '-l',
        'GitHub',
        '-c',
        'aapl',
        '-C',
        'note',
        '-D',
        'kind',
        '-G',
        'gen',
        '-j',
        'comment',
      ),
    ).toEqual({
      op: 'find',
      itemClass: 'generic',
      attributes: {
        account: 'me',
        service: 'github',
        label: 'GitHub',
        creator: 'aapl',
        type: 'note',
        kind: 'kind',
        generic: 'gen',
        comment: 'comment',
      },
      output: 'attributes',
      keychains: [],
    });
  });

  it('-g shows the password on stderr, -w only the password; -w wins over -g in any order', () => {
    expect((command('find-generic-password', '-s', 's', '-g') as SecurityFind).output).toBe('password');
    expect((command('find-generic-password', '-s', 's', '-w') as SecurityFind).output).toBe('password-only');
    expect((command('find-generic-password', '-gw', '-s', 's') as SecurityFind).output).toBe('password-only');
    expect((command('find-generic-password', '-w', '-g', '-s', 's') as SecurityFind).output).toBe(
      'password-only',
    );
  });

  it('keeps operands as the keychain search list, and stops options at the first one', () => {
    const find = command('find-generic-password', '-s', 's', 'login.keychain', '-w') as SecurityFind;
    expect(find.keychains).toEqual(['login.keychain', '-w']);
    expect(find.output).toBe('attributes');
  });

  it('parses internet attributes: server, domain, path, port (atoi, 16 bits), protocol, auth type', () => {
    expect(
      command(
        'find-internet-password',
        '-s',
        'example.com',
        '-a',
        'me',
        '-d',
        'dom',
        '-p',
        '/x',
        '-P',
        '443abc',
        '-r',
        'htps',
        '-t',
        'dflt',
        '-w',
      ),
    ).toEqual({
      op: 'find',
      itemClass: 'internet',
      attributes: {
        service: 'example.com',
        account: 'me',
        securityDomain: 'dom',
        path: '/x',
        port: 443,
        protocol: 'htps',
        authType: 'dflt',
      },
      output: 'password-only',
      keychains: [],
    });
    expect((command('find-internet-password', '-P', '70000') as SecurityFind).attributes.port).toBe(
      70000 & 0xffff,
    );
    expect((command('find-internet-password', '-P', 'x') as SecurityFind).attributes.port).toBe(0);
  });

  it('is found by any unambiguous-to-the-real-tool prefix', () => {
    expect(command('find', '-s', 's').op).toBe('find');
    expect((command('find-i', '-s', 's') as SecurityFind).itemClass).toBe('internet');
  });

  it("prints getopt's diagnostic and the usage for an unknown option, status 2", () => {
    const err = refusal(() => command('find-generic-password', '-z'));
    expect(err.output.status).toBe(2);
    expect(err.output.stderr.toString()).toMatch(
      /^security: illegal option -- z\nUsage: find-generic-password \[-a account\]/,
    );
    expect(err.output.stdout.length).toBe(0);
  });

  it('treats -h (in the option string, without a case) as usage, with no diagnostic', () => {
    const err = refusal(() => command('find-generic-password', '-h'));
    expect(err.output.stderr.toString()).toMatch(/^Usage: find-generic-password /);
  });

  it('reports a missing option argument', () => {
    const err = refusal(() => command('find-generic-password', '-s'));
    expect(err.output.stderr.toString()).toMatch(/^security: option requires an argument -- s\nUsage: /);
  });

  it.each([
    ['abc', '(Try "abc " instead of "abc")\n'],
    ['ab', ''],
    ['abcde', ''],
  ])('refuses four-char code %j with status 1 and no usage', (code, tip) => {
    const err = refusal(() => command('find-generic-password', '-c', code));
    expect(err.output.status).toBe(1);
    expect(err.output.stderr.toString()).toBe(
      `Error: four-character types must be exactly 4 characters long.\n${tip}`,
    );
  });

  it('rejects -G for internet passwords and -d for generic ones', () => {
    expect(refusal(() => command('find-internet-password', '-G', 'x')).output.status).toBe(2);
    expect(refusal(() => command('find-generic-password', '-d', 'x')).output.status).toBe(2);
  });
});

describe('add-generic-password / add-internet-password', () => {
  it('takes the password from -w, and a password starting with "-" works', () => {
    const add = command(
      'add-generic-password',
      '-a',
      'me',
      '-s',
      'svc',
      '-w',
      '-secret-',
      '-U',
    ) as SecurityAdd;
    expect(add.password).toEqual(Buffer.from('-secret-'));
    expect(add.update).toBe(true);
    expect(add.attributes).toEqual({ account: 'me', service: 'svc', label: 'svc' });
  });

  it('prompts when -w is the last word, but not when a value follows', () => {
    expect((command('add-generic-password', '-a', 'me', '-s', 'svc', '-w') as SecurityAdd).password).toBe(
      'prompt',
    );
    expect((command('add-generic-password', '-a', 'me', '-s', 'svc', '-Uw') as SecurityAdd).password).toBe(
      'prompt',
    );
    // `-w -a` takes "-a" as the password; "me" is then an operand, so -s is never seen: usage.
    expect(refusal(() => command('add-generic-password', '-w', '-a', 'me', '-s', 'svc')).output.status).toBe(
      2,
    );
  });

  it('takes -w followed by what looks like an option as the password (getopt does)', () => {
    const add = command('add-generic-password', '-s', 'svc', '-a', 'me', '-w', '-U') as SecurityAdd;
    expect(add.password).toEqual(Buffer.from('-U'));
    expect(add.update).toBe(false);
  });

  it('accepts the legacy -p as the password for generic items only', () => {
    expect(
      (command('add-generic-password', '-a', 'a', '-s', 's', '-p', 'pw') as SecurityAdd).password,
    ).toEqual(Buffer.from('pw'));
    const inet = command(
      'add-internet-password',
      '-a',
      'a',
      '-s',
      's',
      '-p',
      '/path',
      '-w',
      'pw',
    ) as SecurityAdd;
    expect(inet.attributes.path).toBe('/path');
    expect(inet.password).toEqual(Buffer.from('pw'));
  });

  it('prompts for a trailing -p even in add-internet-password, as the real tool does', () => {
    expect((command('add-internet-password', '-a', 'a', '-s', 's', '-p') as SecurityAdd).password).toBe(
      'prompt',
    );
  });

  it('an empty password when neither -w nor -X is given', () => {
    expect((command('add-generic-password', '-a', 'a', '-s', 's') as SecurityAdd).password).toEqual(
      Buffer.alloc(0),
    );
  });

  it('-X gives the password as hex (odd digits zero-padded, NUL bytes kept); the last of -w/-X wins', () => {
    expect(
      (command('add-generic-password', '-a', 'a', '-s', 's', '-X', '00fF0a') as SecurityAdd).password,
    ).toEqual(Buffer.from([0, 0xff, 0x0a]));
    expect(
      (command('add-generic-password', '-a', 'a', '-s', 's', '-X', 'FFF') as SecurityAdd).password,
    ).toEqual(Buffer.from([0x0f, 0xff]));
    expect(
      (command('add-generic-password', '-a', 'a', '-s', 's', '-X', '41', '-w', 'b') as SecurityAdd).password,
    ).toEqual(Buffer.from('b'));
  });

  it('refuses invalid -X hex with the real message and usage, without echoing it', () => {
    const err = refusal(() => command('add-generic-password', '-a', 'a', '-s', 's', '-X', '0xzz-secret'));
    expect(err.output.status).toBe(2);
    expect(err.output.stderr.toString()).toMatch(
      /^security: Unable to convert password data \(-X must specify valid hex digits\)\nUsage: add-generic-password /,
    );
    expect(err.message).not.toContain('zz-secret');
  });

  it('records -T and -A (no-ops for Entraclaw), -l, and one keychain operand', () => {
    const add = command(
      'add-generic-password',
      '-a',
      'a',
      '-s',
      's',
      '-l',
      'Label',
      '-T',
      '/usr/bin/git',
      '-T',
      '',
      '-A',
      '-w',
      'x',
      'login.keychain',
    ) as SecurityAdd;
    expect(add).toMatchObject({
      trustedApps: ['/usr/bin/git', ''],
      allowAnyApp: true,
      keychain: 'login.keychain',
    });
    expect(add.attributes.label).toBe('Label');
  });

  it.each([
    [['-s', 's', '-w', 'x']],
    [['-a', 'a', '-w', 'x']],
    [['-a', 'a', '-s', 's', 'kc1', 'kc2']],
    [['-a', 'a', '-s', 's', '']],
    [['-a', 'a', '-s', 's', '-z']],
    [['-a', 'a', '-s', 's', '-h']],
    [['-a']],
  ])('is a usage error (status 2, no getopt diagnostic): %j', (args) => {
    const err = refusal(() => command('add-generic-password', ...args));
    expect(err.output.status).toBe(2);
    expect(err.output.stderr.toString()).toMatch(/^Usage: add-generic-password \[-a account\]/);
  });
});

describe('delete-generic-password / delete-internet-password', () => {
  it('parses match attributes and keychains', () => {
    expect(command('delete-generic-password', '-s', 'svc', '-a', 'me', 'kc')).toEqual({
      op: 'delete',
      itemClass: 'generic',
      attributes: { service: 'svc', account: 'me' },
      keychains: ['kc'],
    });
  });

  it('refuses to delete with no attributes at all, and rejects -g', () => {
    expect(refusal(() => command('delete-generic-password')).output.status).toBe(2);
    expect(refusal(() => command('delete-internet-password', '-P', '0')).output.status).toBe(2);
    expect(
      refusal(() => command('delete-generic-password', '-s', 's', '-g')).output.stderr.toString(),
    ).toMatch(/^Usage: delete-generic-password/);
  });

  it('accepts an empty-string attribute as given', () => {
    expect(command('delete-generic-password', '-s', '')).toMatchObject({ attributes: { service: '' } });
  });
});

describe('other commands', () => {
  it('show-keychain-info takes at most one non-empty keychain', () => {
    expect(command('show-keychain-info')).toEqual({ op: 'show-keychain-info' });
    expect(command('show-keychain-info', '-x')).toEqual({ op: 'show-keychain-info', keychain: '-x' });
    expect(refusal(() => command('show-keychain-info', 'a', 'b')).output.status).toBe(2);
    expect(refusal(() => command('show-keychain-info', '')).output.status).toBe(2);
  });

  it('help takes topics; an empty command name selects help, as the prefix rule does', () => {
    expect(command('help', 'find')).toEqual({ op: 'help', topics: ['find'] });
    expect(command('')).toEqual({ op: 'help', topics: [] });
  });

  it('an unknown command is status 1 with the real message', () => {
    const err = refusal(() => command('frobnicate'));
    expect(err.output.status).toBe(1);
    expect(err.output.stderr.toString()).toBe('security: unknown command "frobnicate"\n');
  });

  it('refuses real commands it does not implement, including what an abbreviation really selects', () => {
    expect(refusal(() => command('dump-keychain')).output.stderr.toString()).toBe(
      'security: dump-keychain: not supported by the Entraclaw shim\n',
    );
    // The real tool resolves "delete" to delete-keychain, not delete-generic-password.
    expect(refusal(() => command('delete', '-s', 's')).output.stderr.toString()).toMatch(
      /^security: delete-keychain:/,
    );
  });
});

describe('parseSecurityArgs (global options)', () => {
  it('-i or -p PROMPT with no command is interactive mode; -q is recorded', () => {
    expect(parseSecurityArgs(['-i'])).toEqual({ mode: 'interactive', prompt: 'security> ', quiet: false });
    expect(parseSecurityArgs(['-q', '-p', 'kc> '])).toEqual({
      mode: 'interactive',
      prompt: 'kc> ',
      quiet: true,
    });
  });

  it('runs the command when one follows -i', () => {
    expect(parseSecurityArgs(['-i', 'show-keychain-info'])).toEqual({
      mode: 'command',
      command: { op: 'show-keychain-info' },
    });
  });

  it('-h is help for the operands', () => {
    expect(parseSecurityArgs(['-h', 'find-generic-password'])).toEqual({
      mode: 'command',
      command: { op: 'help', topics: ['find-generic-password'] },
    });
  });

  it('accepts -l, -v and -R as no-ops', () => {
    expect(parseSecurityArgs(['-lvR', 'show-keychain-info']).mode).toBe('command');
  });

  it('with nothing to do prints the global usage on stdout, status 2', () => {
    const err = refusal(() => parseSecurityArgs([]));
    expect(err.output.status).toBe(2);
    expect(err.output.stdout.toString()).toMatch(/^Usage: security \[-h\] \[-i\]/);
    expect(err.output.stderr.length).toBe(0);
  });

  it('an unknown global option: diagnostic on stderr, usage on stdout', () => {
    const err = refusal(() => parseSecurityArgs(['-x', 'find-generic-password']));
    expect(err.output.stderr.toString()).toBe('security: illegal option -- x\n');
    expect(err.output.stdout.toString()).toMatch(/^Usage: security /);
  });
});

describe('interactive mode input', () => {
  it.each([
    ['find-generic-password -s svc -a me -w', ['find-generic-password', '-s', 'svc', '-a', 'me', '-w']],
    ['  spaced\t\twords  ', ['spaced', 'words']],
    ['-l "My Label" -w \'a b\'', ['-l', 'My Label', '-w', 'a b']],
    ['"a\\"b" \'c\\\'d\'', ['a"b', "c'd"]],
    ['back\\ slash \\"x', ['back slash', '"x']],
    ['mid"quote\'s', ['mid"quote\'s']],
    ['"ab"cd', ['ab', 'cd']],
    ['"" x', ['', 'x']],
    ['"unterminated value', ['unterminated value']],
    ['trailing\\', ['trailing']],
    ['', []],
    ['   ', []],
  ])('tokenizes %j like split_line', (line, words) => {
    expect(tokenizeSecurityLine(line)).toEqual(words);
  });

  it('refuses lines the real tool would split or truncate', () => {
    expect(refusal(() => tokenizeSecurityLine('x'.repeat(4096))).output.status).toBe(1);
    expect(tokenizeSecurityLine('x'.repeat(4095))).toHaveLength(1);
    expect(refusal(() => tokenizeSecurityLine(Array(33).fill('w').join(' '))).output.status).toBe(1);
    expect(tokenizeSecurityLine(Array(32).fill('w').join(' '))).toHaveLength(32);
  });

  it('a tokenized line parses as a command', () => {
    const add = parseSecurityCommand(
      tokenizeSecurityLine('add-generic-password -U -a me -s "My Service" -w "p w"'),
    ) as SecurityAdd;
    expect(add.attributes.service).toBe('My Service');
    expect(add.password).toEqual(Buffer.from('p w'));
  });

  it('does not run a last line without a newline, but reports it', () => {
    expect(splitSecurityScript('a\nb\nc')).toEqual({ lines: ['a', 'b'], unterminated: 'c' });
    expect(splitSecurityScript('a\n')).toEqual({ lines: ['a'], unterminated: '' });
    expect(splitSecurityScript('')).toEqual({ lines: [], unterminated: '' });
  });
});

describe('entraclawQuery', () => {
  const find = (...args: string[]) => command('find-generic-password', ...args) as SecurityFind;

  it('uses service and account alone when both are given (the real primary key)', () => {
    expect(entraclawQuery(find('-s', 's', '-a', 'a', '-l', 'ignored'))).toEqual({
      service: 's',
      account: 'a',
    });
  });

  it('an internet password has no primary key the shim can name: -l always narrows', () => {
    const internet = command('find-internet-password', '-s', 's', '-a', 'a', '-l', 'L') as SecurityFind;
    expect(entraclawQuery(internet)).toEqual({ service: 's', account: 'a', label: 'L' });
  });

  it('narrows by label otherwise', () => {
    expect(entraclawQuery(find('-l', 'BeaconStore'))).toEqual({ label: 'BeaconStore' });
    expect(entraclawQuery(find('-s', 's', '-l', 'L'))).toEqual({ service: 's', label: 'L' });
    expect(entraclawQuery(find())).toEqual({});
  });
});
