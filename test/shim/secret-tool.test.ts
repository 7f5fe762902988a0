import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ShimOutput, ShimUsageError } from '../../src/shim/output.js';
import { parseSecretToolArgs } from '../../src/shim/secret-tool-args.js';
import {
  formatLookup,
  formatNothing,
  formatSearch,
  formatSecretToolHelp,
  type SecretToolItem,
  secretToolItem,
} from '../../src/shim/secret-tool-format.js';
import type { Item } from '../../src/store/types.js';
import { inTestSession, randomName } from '../support/context.js';

// Every secret-tool format and status the shim produces, compared with the REAL secret-tool in the
// throwaway gnome-keyring session of scripts/with-keyring.sh. Outside that session these tests are
// skipped (there is no keyring to compare with); `make test` always runs them.

interface Run {
  stdout: Buffer;
  stderr: Buffer;
  status: number;
}

// The real tool runs in a UTF-8 locale, the one the shim writes for (GOption's "[OPTION…]"): in the C
// locale, where a machine without LANG runs, it prints "[OPTION?]" (docs/shims.md, Differences).
const UTF8 = { ...process.env, LC_ALL: 'C.UTF-8' };

function run(command: string, args: string[], input: string | Buffer = ''): Run {
  const r = spawnSync(command, args, { input, timeout: 15_000, env: UTF8 });
  if (r.error) throw r.error;
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

const realTool = (args: string[], input: string | Buffer = '') => run('secret-tool', args, input);
const text = (o: Run | ShimOutput) => ({
  stdout: o.stdout.toString(),
  stderr: o.stderr.toString(),
  status: o.status,
});

/** What the shim prints for argv when it refuses or shows help (the cases needing no keyring data). */
function shim(argv: string[]): ShimOutput {
  try {
    const command = parseSecretToolArgs(argv);
    if (command.op === 'help') return formatSecretToolHelp(command.subcommand);
  } catch (err) {
    if (err instanceof ShimUsageError) return err.output;
    throw err;
  }
  throw new Error(`the shim accepted ${JSON.stringify(argv)}`);
}

/** An item's D-Bus path and properties, read with gdbus: the fields secret-tool formats. */
function dbusItems(attributes: Record<string, string>): SecretToolItem[] {
  const dict = Object.entries(attributes)
    .map(([k, v]) => `'${k}': '${v}'`)
    .join(', ');
  const found = run('gdbus', [
    'call',
    '--session',
    '--dest',
    'org.freedesktop.secrets',
    '--object-path',
    '/org/freedesktop/secrets',
    '--method',
    'org.freedesktop.Secret.Service.SearchItems',
    `{${dict}}`,
  ]);
  expect(found.status, found.stderr.toString()).toBe(0);
  const unlocked = found.stdout.toString().split('], ')[0] as string;
  return [...unlocked.matchAll(/'(\/org\/freedesktop\/secrets\/[^']+)'/g)].map(([, path]) => {
    const props = run('gdbus', [
      'call',
      '--session',
      '--dest',
      'org.freedesktop.secrets',
      '--object-path',
      path as string,
      '--method',
      'org.freedesktop.DBus.Properties.GetAll',
      'org.freedesktop.Secret.Item',
    ]).stdout.toString();
    const attrs = /'Attributes': <\{([^}]*)\}>/.exec(props)?.[1] ?? '';
    return {
      objectPath: path as string,
      label: /'Label': <'([^']*)'>/.exec(props)?.[1] ?? '',
      secret: Buffer.alloc(0),
      created: Number(/'Created': <uint64 (\d+)>/.exec(props)?.[1]),
      modified: Number(/'Modified': <uint64 (\d+)>/.exec(props)?.[1]),
      attributes: Object.fromEntries([...attrs.matchAll(/'([^']*)': '([^']*)'/g)].map(([, k, v]) => [k, v])),
    };
  });
}

const sortedLines = (s: string) => s.split('\n').filter(Boolean).sort();

/** Waits until the session's gnome-keyring answers with its default collection unlocked. */
async function keyringReady(): Promise<void> {
  for (let tries = 0; tries < 50; tries++) {
    const locked = run('gdbus', [
      'call',
      '--session',
      '--dest',
      'org.freedesktop.secrets',
      '--object-path',
      '/org/freedesktop/secrets/aliases/default',
      '--method',
      'org.freedesktop.DBus.Properties.Get',
      'org.freedesktop.Secret.Collection',
      'Locked',
    ]);
    if (locked.status === 0 && locked.stdout.toString().includes('false')) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the test session has no unlocked gnome-keyring (run under scripts/with-keyring.sh)');
}

describe.skipIf(!inTestSession)('secret-tool shim against the real secret-tool', () => {
  const service = randomName('st-shim');
  beforeAll(keyringReady, 15_000);
  afterAll(() => {
    realTool(['clear', 'service', service]);
  });

  it.each([
    [[]],
    [['bogus']],
    [['--help']],
    [['lookup']],
    [['lookup', 'service']],
    [['lookup', 'a', 'b', 'c']],
    [['clear']],
    [['search']],
    [['search', '--all']],
    [['search', '--unlock', '-a']],
    [['store']],
    [['store', 'service', 's', 'account', 'a']],
    [['store', '--label']],
    [['store', '-l']],
    [['store', '--label=x', '--label']],
    [['store', '-lX', 'a', 'b']],
    [['store', '-l=Y', 'a', 'b']],
    [['store', '-cl', 'x', 'a', 'b']],
    [['store', '-lc', 'x', 'a', 'b']],
    [['store', '--lab=x', 'a', 'b']],
    [['store', '--label=x', '--collection', 'a', 'b']],
    [['search', '-ax', 'service', 's']],
    [['lookup', '--bogus', 'a', 'b']],
    [['lookup', '--bogus', '--help']],
    [['lookup', '---x', 'a', 'b']],
    [['lookup', '--all', 'a', 'b']],
    [['lookup', '--', 'a']],
    [['lookup', 'service', '-x']],
    [['search', '--help=x', 'service', 's']],
    [['store', '--help=', 'service', 's', 'account', 'a']],
  ])('refuses %j exactly as the real tool does', (argv) => {
    expect(text(shim(argv))).toEqual(text(realTool(argv)));
  });

  it.each([
    [['store', '--help']],
    [['store', '-h']],
    [['lookup', '--help']],
    [['lookup', '-?']],
    [['lookup', '--help', '--bogus']],
    [['clear', '--help']],
    [['search', '--help']],
    [['search', '-ah']],
    [['lock', '--help']],
    [['lookup', '--help-all']],
    [['search', '--help-all', '--bogus']],
    [['store', '-h=x']],
  ])('prints the same help for %j', (argv) => {
    expect(text(shim(argv))).toEqual(text(realTool(argv)));
  });

  it.each([
    [['--label=eq'], 'eq'],
    [['--label', 'spaced'], 'spaced'],
    [['-l', 'short'], 'short'],
    [['--label', '-dash'], '-dash'],
    [['--label=one', '--label=two'], 'two'],
    [['--label='], ''],
  ])('reads the label from %j as the real tool stores it', (labelArgs, label) => {
    const account = randomName('label');
    const argv = ['store', 'service', service, 'account', account, ...labelArgs];
    expect(realTool(argv, 'pw').status).toBe(0);
    expect(dbusItems({ service, account })[0]?.label).toBe(label);
    expect(parseSecretToolArgs(argv)).toMatchObject({ op: 'store', label });
  });

  it('formats search output exactly like the real tool (stdout), with the same attribute lines (stderr)', () => {
    const svc = randomName('st-search');
    const secrets = [Buffer.from('p1'), Buffer.from([0x61, 0xff, 0xfe, 0x62]), Buffer.from('with schema')];
    expect(realTool(['store', '--label=first', 'service', svc, 'account', 'a1'], secrets[0]).status).toBe(0);
    expect(realTool(['store', '--label=binary', 'service', svc, 'account', 'a2'], secrets[1]).status).toBe(0);
    expect(
      realTool(
        ['store', '--label=schema', 'xdg:schema', 'org.example.Test', 'service', svc, 'account', 'a3'],
        secrets[2],
      ).status,
    ).toBe(0);
    try {
      const items = dbusItems({ service: svc }).map((item) => {
        const index = Number(item.attributes.account?.slice(1)) - 1;
        return { ...item, secret: secrets[index] as Buffer };
      });
      expect(items).toHaveLength(3);
      for (const all of [true, false]) {
        const real = realTool(['search', ...(all ? ['--all'] : []), 'service', svc]);
        const ours = formatSearch({ all }, items);
        expect(ours.stdout.toString('latin1')).toBe(real.stdout.toString('latin1'));
        expect(sortedLines(ours.stderr.toString())).toEqual(sortedLines(real.stderr.toString()));
        expect(ours.status).toBe(real.status);
      }
    } finally {
      realTool(['clear', 'service', svc]);
    }
  });

  it('formats an Entraclaw item the way the real tool shows the same item', () => {
    const account = randomName('mapped');
    // The attributes Entraclaw's secret-service store gives an item, as the real tool would store them.
    const argv = [
      'store',
      '--label=Mapped',
      'xdg:schema',
      'io.entraclaw.Secret',
      'entraclaw.kind',
      'password',
      'service',
      service,
      'account',
      account,
      'username',
      account,
    ];
    expect(realTool(argv, 'v4lue').status).toBe(0);
    const [real] = dbusItems({ service, account });
    if (!real) throw new Error('item not found');
    const item: Item = {
      service,
      account,
      kind: 'password',
      label: 'Mapped',
      createdAt: new Date(real.created * 1000).toISOString(),
      updatedAt: new Date(real.modified * 1000).toISOString(),
      value: Buffer.from('v4lue'),
    };
    const ours = formatSearch({ all: true }, [secretToolItem(item, real.objectPath)]);
    const theirs = realTool(['search', '--all', 'service', service, 'account', account]);
    expect(ours.stdout.toString()).toBe(theirs.stdout.toString());
    expect(sortedLines(ours.stderr.toString())).toEqual(sortedLines(theirs.stderr.toString()));
  });

  it('search with no match: status 0 and no output', () => {
    expect(text(formatSearch({ all: true }, []))).toEqual(
      text(realTool(['search', '--all', 'service', randomName('none')])),
    );
  });

  it('lookup prints the raw secret with no newline when stdout is not a terminal, even binary', () => {
    const account = randomName('lookup');
    const value = Buffer.from([0x61, 0x00, 0xff, 0x0a, 0x62]);
    expect(realTool(['store', '--label=l', 'service', service, 'account', account], value).status).toBe(0);
    const real = realTool(['lookup', 'service', service, 'account', account]);
    expect(real.stdout).toEqual(value);
    expect(text(formatLookup(value, false))).toEqual(text(real));
  });

  it('lookup adds a newline when stdout is a terminal', () => {
    const account = randomName('tty');
    expect(
      realTool(['store', '--label=l', 'service', service, 'account', account], 'tty-secret').status,
    ).toBe(0);
    const real = run('script', [
      '-qec',
      `secret-tool lookup service ${service} account ${account}`,
      '/dev/null',
    ]);
    expect(real.status).toBe(0);
    // The terminal turns each "\n" into "\r\n".
    expect(real.stdout.toString()).toBe(
      formatLookup(Buffer.from('tty-secret'), true).stdout.toString().replace(/\n/g, '\r\n'),
    );
  });

  it('lookup and clear of a missing item: status 1 and no output', () => {
    const missing = ['service', service, 'account', randomName('missing')];
    expect(text(formatNothing())).toEqual(text(realTool(['lookup', ...missing])));
    expect(text(formatNothing())).toEqual(text(realTool(['clear', ...missing])));
  });
});
