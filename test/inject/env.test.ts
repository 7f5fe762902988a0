import { describe, expect, it } from 'vitest';
import { EntraclawError, UsageError } from '../../src/errors.js';
import {
  buildChildEnv,
  embeddedReferences,
  envReferences,
  INJECTION_NAMES,
  isInjectionVariable,
} from '../../src/inject/env.js';
import { formatReference } from '../../src/inject/reference.js';
import { usageError } from '../support/errors.js';

/** envReferences' refusal of TOKEN=value, once buildChildEnv is seen to refuse it too, naming TOKEN. */
function refusedToken(value: string): UsageError {
  expect(usageError(() => buildChildEnv({ TOKEN: value }, { resolved: new Map() })).message).toMatch(
    /^TOKEN: /,
  );
  return usageError(() => envReferences({ TOKEN: value }));
}

const secret = (service: string, account: string, value: string | Buffer) =>
  [formatReference({ service, account }), Buffer.isBuffer(value) ? value : Buffer.from(value)] as const;

describe('buildChildEnv', () => {
  it('replaces whole-value references with the secret and keeps everything else', () => {
    const env = buildChildEnv(
      { PATH: '/usr/bin', TOKEN: 'entraclaw://github/me', NOTE: 'see entraclaw://x/y', EMPTY: '' },
      { resolved: new Map([secret('github', 'me', 'ghp_123')]) },
    );
    expect({ ...env }).toEqual({
      PATH: '/usr/bin',
      TOKEN: 'ghp_123',
      NOTE: 'see entraclaw://x/y',
      EMPTY: '',
    });
  });

  it('finds the same item however the reference is spelled', () => {
    const env = buildChildEnv(
      { A: 'entraclaw://%67ithub/me', B: 'entraclaw://github/m%65' },
      { resolved: new Map([secret('github', 'me', 's3cret')]) },
    );
    expect([env.A, env.B]).toEqual(['s3cret', 's3cret']);
  });

  it('returns a null-prototype object and skips undefined values', () => {
    const env = buildChildEnv({ A: '1', B: undefined }, { resolved: new Map() });
    expect(Object.getPrototypeOf(env)).toBeNull();
    expect(Object.keys(env)).toEqual(['A']);
  });

  it('applies the overlay over base, later entries winning, and resolves references in it', () => {
    const env = buildChildEnv(
      { A: 'base', B: 'base' },
      {
        overlay: [
          ['A', 'first'],
          ['A', 'second'],
          ['C', 'entraclaw://svc/acct'],
        ],
        resolved: new Map([secret('svc', 'acct', 'value')]),
      },
    );
    expect({ ...env }).toEqual({ A: 'second', B: 'base', C: 'value' });
  });

  it('removes every ENTRACLAW_* variable by default, including the passphrase file and socket', () => {
    const env = buildChildEnv(
      { ENTRACLAW_PASSPHRASE_FILE: '/p', ENTRACLAW_SOCKET: '/s', ENTRACLAW_STORE: 'x', HOME: '/h' },
      { resolved: new Map() },
    );
    expect({ ...env }).toEqual({ HOME: '/h' });
  });

  it('keeps a named ENTRACLAW_* variable, or all of them when dropEntraclaw is false', () => {
    const base = { ENTRACLAW_PASSPHRASE_FILE: '/p', ENTRACLAW_SOCKET: '/s' };
    expect({ ...buildChildEnv(base, { resolved: new Map(), keep: ['ENTRACLAW_SOCKET'] }) }).toEqual({
      ENTRACLAW_SOCKET: '/s',
    });
    expect({ ...buildChildEnv(base, { resolved: new Map(), dropEntraclaw: false }) }).toEqual(base);
  });

  it('never lets the overlay set an ENTRACLAW_* variable', () => {
    const err = usageError(() =>
      buildChildEnv({}, { resolved: new Map(), overlay: [['ENTRACLAW_SOCKET', '/tmp/evil']] }),
    );
    expect(err.message).toMatch(/^ENTRACLAW_SOCKET cannot be set from a \.env file/);
  });

  it.each([
    ['LD_PRELOAD'],
    ['LD_LIBRARY_PATH'],
    ['DYLD_INSERT_LIBRARIES'],
    ['NODE_OPTIONS'],
    ['PYTHONSTARTUP'],
    ['BASH_ENV'],
    ['BASH_FUNC_ls%%'],
  ])('passes %s through from the user environment', (name) => {
    const env = buildChildEnv({ [name]: '/opt/lib.so' }, { resolved: new Map() });
    expect(env[name]).toBe('/opt/lib.so');
  });

  it.each([
    ['LD_PRELOAD'],
    ['DYLD_LIBRARY_PATH'],
    ['NODE_OPTIONS'],
    ['PYTHONSTARTUP'],
    ['PERL5OPT'],
    ['JAVA_TOOL_OPTIONS'],
  ])('refuses %s from a .env file or --env, naming it', (name) => {
    const err = usageError(() => buildChildEnv({}, { resolved: new Map(), overlay: [[name, '/tmp/x.so']] }));
    expect(err.message.startsWith(`${name} can change which code the command runs`)).toBe(true);
    expect(err.hint).toContain(name);
  });

  it('refuses an injection variable from .env even when the user also set it', () => {
    expect(() =>
      buildChildEnv(
        { NODE_OPTIONS: '--max-old-space-size=4096' },
        { resolved: new Map(), overlay: [['NODE_OPTIONS', '-r x']] },
      ),
    ).toThrow(UsageError);
  });

  it('refuses to fill an injection variable from a secret, even in the user environment', () => {
    const err = usageError(() =>
      buildChildEnv(
        { LD_PRELOAD: 'entraclaw://lib/evil' },
        { resolved: new Map([secret('lib', 'evil', '/x.so')]) },
      ),
    );
    expect(err.message).toMatch(/^LD_PRELOAD can change/);
  });

  it('refuses an overlay name that is not a valid variable name', () => {
    expect(
      usageError(() => buildChildEnv({}, { resolved: new Map(), overlay: [['1BAD', 'x']] })).message,
    ).toBe('"1BAD" is not a valid environment variable name');
  });

  it.each([
    ['invalid UTF-8', Buffer.from([0x61, 0xff, 0x62])],
    ['a NUL byte', Buffer.from('a\0b')],
  ])('sends a secret with %s to `inject`, without printing it', (_what, bytes) => {
    const err = usageError(() =>
      buildChildEnv({ KEY: 'entraclaw://svc/bin' }, { resolved: new Map([secret('svc', 'bin', bytes)]) }),
    );
    expect(err.message).toMatch(/^KEY: the secret entraclaw:\/\/svc\/bin is not UTF-8 text/);
    expect(err.hint).toContain('entraclaw inject');
    expect(err.message).not.toContain(bytes.toString('latin1'));
  });

  it('keeps a leading byte-order mark that is part of the secret', () => {
    const env = buildChildEnv({ K: 'entraclaw://s/a' }, { resolved: new Map([secret('s', 'a', '\uFEFFx')]) });
    expect(env.K).toBe('\uFEFFx');
  });

  it('reports an unresolved reference as an internal error', () => {
    expect(() => buildChildEnv({ K: 'entraclaw://s/a' }, { resolved: new Map() })).toThrow(EntraclawError);
    try {
      buildChildEnv({ K: 'entraclaw://s/a' }, { resolved: new Map() });
    } catch (err) {
      expect((err as EntraclawError).code).toBe('internal');
    }
  });

  it('is loud about a malformed reference, naming the variable', () => {
    expect(
      usageError(() => buildChildEnv({ TOKEN: 'entraclaw://only-one' }, { resolved: new Map() })).message,
    ).toMatch(/^TOKEN: /);
  });

  it('refuses a reference whose scheme is not lower case, naming the variable, never the value', () => {
    for (const value of ['ENTRACLAW://svc/acct', 'Entraclaw://svc/acct']) {
      const err = refusedToken(value);
      expect(err.message).toBe("TOKEN: a reference's scheme is written in lower case");
      expect(err.hint).toBe('write entraclaw://SERVICE/ACCOUNT as the whole value');
    }
    expect(envReferences({ A: 'ENTRACLAW:/', B: 'see entraclaw://x/y', C: 'https://x' })).toEqual([]);
  });

  it('refuses a reference a slash short of its scheme (or without its colon), never echoing the value', () => {
    for (const value of [
      'entraclaw:/svc/acct',
      'entraclaw:svc/acct',
      'entraclaw//svc/acct',
      'Entraclaw:/svc/acct',
      '"entraclaw:/svc/acct"',
    ]) {
      const err = refusedToken(value);
      expect(err.message).toBe(
        'TOKEN: a reference starts with entraclaw:// (a colon and two slashes); passed on as written, the command would get the text',
      );
      expect(err.message).not.toContain('svc');
    }
    // Nothing naming an item after it: text, not a reference.
    expect(
      envReferences({ A: 'entraclaw:/', B: 'entraclaw: ready', C: 'entraclaw:x', D: 'entraclaw:/a/b/c' }),
    ).toEqual([]);
  });

  it('refuses white space before a reference, as it refuses white space after one', () => {
    for (const value of [' entraclaw://svc/acct', '\tentraclaw://svc/acct', '  ENTRACLAW://svc/acct']) {
      const err = refusedToken(value);
      expect(err.message).toBe('TOKEN: white space before a reference (only a whole value is a reference)');
    }
    expect(usageError(() => envReferences({ TOKEN: 'entraclaw://svc/acct ' })).message).toMatch(/^TOKEN: /);
  });

  it('refuses a quote before a reference (quoted twice, or a .env quote never closed), as it refuses white space', () => {
    for (const value of [
      '"entraclaw://svc/acct"',
      "'entraclaw://svc/acct",
      '`entraclaw://svc/acct`',
      ' "ENTRACLAW://s/a',
    ]) {
      const err = refusedToken(value);
      expect(err.message).toBe(
        'TOKEN: a quote before a reference is part of the value (only a whole value is a reference)',
      );
      expect(err.hint).toContain('with no quotes of its own');
    }
    expect(envReferences({ A: '"quoted text"', B: 'say "entraclaw://x/y"' })).toEqual([]);
  });

  it('gives a name the stores refuse (a NUL) a hint, like every other error', () => {
    const err = usageError(() => envReferences({ T: 'entraclaw://%00/x' }));
    expect(err.message).toMatch(/^T: in the reference, service must not contain NUL/);
    expect(err.hint).toBeTruthy();
  });
});

describe('embeddedReferences', () => {
  it('names variables holding a reference among other text, in base and overlay, in any case', () => {
    expect(
      embeddedReferences(
        { A: 'entraclaw://s/a', B: 'see ENTRACLAW://x/y', ENTRACLAW_X: 'x entraclaw://s/a', C: 'plain' },
        { overlay: [['D', 'postgres://u:entraclaw://db/pw@h']] },
      ),
    ).toEqual(['B', 'D']);
  });
});

describe('envReferences', () => {
  it('lists distinct references from base and overlay, skipping dropped ENTRACLAW_* variables', () => {
    const refs = envReferences(
      { A: 'entraclaw://s/a', B: 'entraclaw://%73/a', ENTRACLAW_X: 'entraclaw://hidden/x', C: 'plain' },
      { overlay: [['D', 'entraclaw://s/d']] },
    );
    expect(refs).toEqual([
      { service: 's', account: 'a' },
      { service: 's', account: 'd' },
    ]);
  });
});

describe('isInjectionVariable', () => {
  it('covers every listed name and prefix, and nothing ordinary', () => {
    for (const name of INJECTION_NAMES) expect(isInjectionVariable(name)).toBe(true);
    for (const name of [
      'LD_AUDIT',
      'DYLD_FRAMEWORK_PATH',
      'PATH',
      'HOME',
      'PYTHONUSERBASE',
      'GIT_SSH_COMMAND',
      'GIT_CONFIG_KEY_0',
      'GIT_CONFIG_PARAMETERS',
      'LUA_INIT_5_4',
      'LUA_PATH',
      'npm_config_script_shell',
      'Npm_Config_Script_Shell',
      'NODE_EXTRA_CA_CERTS',
      'OPENSSL_CONF',
      'GIT_DIR',
      'MAKEFLAGS',
      'KUBECONFIG',
      'SSLKEYLOGFILE',
      'https_proxy',
      'ld_preload',
      'PIP_INDEX_URL',
    ]) {
      expect(isInjectionVariable(name), name).toBe(true);
    }
    for (const name of [
      'MANPATH',
      'OLD_PRELOAD',
      'DATABASE_URL',
      'GITHUB_TOKEN',
      'GIT_AUTHOR_NAME',
      'LANG',
    ]) {
      expect(isInjectionVariable(name), name).toBe(false);
    }
  });
});
