import { describe, expect, it } from 'vitest';
import { ShimUsageError } from '../../src/shim/output.js';
import { parseSecretToolArgs } from '../../src/shim/secret-tool-args.js';
import { SECRET_TOOL_USAGE } from '../../src/shim/secret-tool-format.js';

// Parsing rules that the real secret-tool is checked against live in secret-tool.test.ts; these cases
// cover the Entraclaw mapping, which has no real counterpart.

function refusal(argv: string[]): ShimUsageError {
  try {
    parseSecretToolArgs(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ShimUsageError);
    return err as ShimUsageError;
  }
  throw new Error('expected a ShimUsageError');
}

describe('parseSecretToolArgs', () => {
  it('store: label, collection, attributes and the Entraclaw key', () => {
    expect(
      parseSecretToolArgs([
        'store',
        '--label=My Token',
        '--collection',
        'login',
        'service',
        'github',
        'account',
        'me',
      ]),
    ).toEqual({
      op: 'store',
      label: 'My Token',
      collection: 'login',
      attributes: { service: 'github', account: 'me' },
      service: 'github',
      account: 'me',
    });
  });

  it('store: options may follow the attributes, the last --label wins, a value may start with "-"', () => {
    const cmd = parseSecretToolArgs([
      'store',
      'service',
      's',
      '-l',
      'one',
      'account',
      'a',
      '--label',
      '-two',
    ]);
    expect(cmd).toMatchObject({ op: 'store', label: '-two', service: 's', account: 'a' });
  });

  it('lookup / clear: a query from service and/or account', () => {
    expect(parseSecretToolArgs(['lookup', 'service', 's', 'account', 'a'])).toEqual({
      op: 'lookup',
      attributes: { service: 's', account: 'a' },
      query: { service: 's', account: 'a' },
    });
    expect(parseSecretToolArgs(['clear', 'service', 's'])).toEqual({
      op: 'clear',
      attributes: { service: 's' },
      query: { service: 's' },
    });
  });

  it('search: --all / -a and --unlock', () => {
    expect(parseSecretToolArgs(['search', '-a', '--unlock', 'account', 'a'])).toEqual({
      op: 'search',
      all: true,
      unlock: true,
      attributes: { account: 'a' },
      query: { account: 'a' },
    });
    expect(parseSecretToolArgs(['search', 'service', 's'])).toMatchObject({ all: false, unlock: false });
  });

  it('a repeated attribute keeps its last value', () => {
    expect(parseSecretToolArgs(['lookup', 'service', 'x', 'service', 'y'])).toMatchObject({
      query: { service: 'y' },
    });
  });

  it('accepts username for account (Python keyring, keyring-rs) and ignores xdg:schema', () => {
    expect(
      parseSecretToolArgs(['lookup', 'service', 's', 'username', 'u', 'xdg:schema', 'org.x']),
    ).toMatchObject({
      query: { service: 's', account: 'u' },
    });
    expect(parseSecretToolArgs(['lookup', 'account', 'u', 'username', 'u'])).toMatchObject({
      query: { account: 'u' },
    });
  });

  it('refuses other attributes with status 1, naming the attribute', () => {
    const err = refusal(['lookup', 'host', 'example.com', 'user', 'me']);
    expect(err.output.status).toBe(1);
    expect(err.output.stderr.toString()).toBe(
      'secret-tool: attribute "host" is not supported: Entraclaw items are found by "service" and "account"\n',
    );
  });

  it('refuses account and username that disagree', () => {
    expect(refusal(['lookup', 'account', 'a', 'username', 'b']).output.stderr.toString()).toMatch(
      /differ\n$/,
    );
  });

  it('needs service or account to find, and both to store', () => {
    expect(refusal(['lookup', 'xdg:schema', 'org.x']).output.status).toBe(1);
    const store = refusal(['store', '--label=x', 'service', 's']);
    expect(store.output.status).toBe(1);
    expect(store.output.stderr.toString()).toMatch(/^secret-tool: storing in Entraclaw needs both/);
  });

  it('lock: accepted, collection recorded, option errors ignored as the real tool does', () => {
    expect(parseSecretToolArgs(['lock'])).toEqual({ op: 'lock' });
    expect(parseSecretToolArgs(['lock', '--collection=login', '--bogus'])).toEqual({
      op: 'lock',
      collection: 'login',
    });
  });

  it('help for each subcommand', () => {
    expect(parseSecretToolArgs(['search', '-ah'])).toEqual({ op: 'help', subcommand: 'search' });
    expect(parseSecretToolArgs(['store', '--help-all'])).toEqual({ op: 'help', subcommand: 'store' });
  });

  it('usage errors end with the usage text and status 2', () => {
    const err = refusal(['store', 'service', 's', 'account', 'a']);
    expect(err.output.status).toBe(2);
    expect(err.output.stderr.toString()).toBe(
      `secret-tool: must specify a label for the new item\n${SECRET_TOOL_USAGE}`,
    );
  });
});
