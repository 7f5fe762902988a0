// The command line as a newcomer types it: `help` for any command, slips in subcommand names, and
// `--json` meant for the command that `run` starts. Real CLI, real processes.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = isolatedEnv(dir);

describe('entraclaw help CMD [SUB]', () => {
  it.each([
    [['help', 'secret', 'get'], 'Usage: entraclaw secret get [options] <service> <account>\n'],
    [['help', 'audit', 'verify'], 'Usage: entraclaw audit verify [options]\n'],
    [['help', 'service', 'install'], 'Usage: entraclaw service install [options]\n'],
    [['help', 'doctor'], 'Usage: entraclaw doctor [options]\n'],
    [['audit', 'help'], 'Usage: entraclaw audit [options] [command]\n'],
    [['audit', 'help', 'verify'], 'Usage: entraclaw audit verify [options]\n'],
  ])('%j prints the help of that very command on stdout, exit 0', (args, usage) => {
    const r = runCli(args, env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString().startsWith(usage), r.stdout.toString()).toBe(true);
    expect(r.stderr).toBe('');
  });

  it.each([
    [['help', 'nosuch'], "unknown command 'nosuch'"],
    [['help', 'secrt'], "unknown command 'secrt' (Did you mean secret?)"],
    [['help', 'secret', 'gt'], "unknown command 'gt' (Did you mean get?)"],
    [['help', 'audit', 'verfy'], "unknown command 'verfy' (the subcommand of audit: verify)"],
  ])('%j names the command that does not exist: exit 2, nothing on stdout', (args, message) => {
    const r = runCli(args, env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr).toBe(`entraclaw: ${message}\n  hint: run the command with --help for its usage\n`);
  });
});

describe('a slip in the subcommand of audit', () => {
  it('is an unknown command naming the subcommand of audit, not "too many arguments"', () => {
    const r = runCli(['audit', 'verfy'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr).toBe(
      "entraclaw: unknown command 'verfy' (the subcommand of audit: verify)\n  hint: run the command with --help for its usage\n",
    );
    const far = runCli(['audit', 'zzz', '--json'], env);
    expect(far.status).toBe(EXIT_CODES.usage);
    expect(JSON.parse(far.stderr)).toEqual({
      error: {
        code: 'usage',
        message: "unknown command 'zzz' (the subcommand of audit: verify)",
        hint: 'run the command with --help for its usage',
      },
    });
  });
});

describe('--json on the command line of CMD', () => {
  it("is CMD's: entraclaw's own error stays text (run -- CMD ... --json)", () => {
    const r = runCli(['run', '--', 'entraclaw-qa4-no-such-command', '--json'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^entraclaw: cannot start entraclaw-qa4-no-such-command: not found in PATH/);
    const passed = runCli(['run', 'entraclaw-qa4-no-such-command', '--json'], env);
    expect(passed.status).toBe(EXIT_CODES.usage);
    expect(passed.stderr).toMatch(/^entraclaw: cannot start /);
  });

  it('after -- is a positional of any command, not a --json of entraclaw', () => {
    const r = runCli(['secret', 'get', '--store', 'bogus', '--', 'svc', '--json'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^entraclaw: unknown store "bogus"/);
  });

  it('an option value that happens to read --json does not turn errors into JSON', () => {
    const r = runCli(['secret', 'ls', '--service', '--json', '--store', 'bogus'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^entraclaw: unknown store "bogus"/);
  });
});

describe('a --grant PREFIX* the shell expanded to file names', () => {
  it.each([
    ['grant', 'bot'],
    ['approve', 'p-1a2b3c4d'],
    ['register', '/bin/true'],
  ])('%s: the extra names are said to be a glob to quote', (...cmd) => {
    const r = runCli([...cmd, '--grant', 'bot/a.js', 'bot/b.js'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr).toBe(
      `entraclaw: too many arguments for '${cmd[0]}'. Expected 1 argument but got 2.\n` +
        "  hint: give each grant its own --grant, and quote one that ends in * (--grant 'svc/*'): the shell expands it to the file names it matches\n",
    );
  });
});

describe('an option of audit written before verify', () => {
  it('--json is taken (the report is JSON), not dropped for a text report', () => {
    const r = runCli(['audit', '--json', 'verify'], env);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ ok: true });
  });

  it('--tail is refused, not ignored', () => {
    const r = runCli(['audit', '--tail', '3', 'verify'], env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr).toBe(
      'entraclaw: --tail is an option of `entraclaw audit`, not of `audit verify`\n  hint: audit verify checks every kept line: drop --tail\n',
    );
  });
});

describe('an empty path given to an option (a variable that was unset)', () => {
  it.each([
    [['agent', '--socket', ''], '--socket'],
    [['service', 'status', '--socket', ''], '--socket'],
    [['service', 'install', '--dry-run', '--socket', ''], '--socket'],
    [['sandbox', '--profile', '', '--', 'true'], '--profile'],
    [['sandbox', '--allow-path', '', '--', 'true'], '--allow-path'],
    [['run', '--env-file', '', '--', 'true'], '--env-file'],
    [['inject', '-i', ''], '-i'],
    [['register', '/bin/true', '--script', '', '--grant', 'a/b'], '--script'],
    [['upgrade', '/bin/true', '--script', ''], '--script'],
  ])('%j is refused, naming the option: exit 2, nothing run or written', (args, flag) => {
    const r = runCli(args, env);
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr).toBe(
      `entraclaw: ${flag} is empty\n  hint: give ${flag} a path, or leave the option out\n`,
    );
  });

  it('sandbox --project "" from the home directory is refused, not the whole home made writable', () => {
    const home = env.HOME!;
    mkdirSync(home, { recursive: true });
    const marker = join(home, '.written-by-sandbox');
    const r = spawnSync(process.execPath, ['--', CLI, 'sandbox', '--project', '', '--', 'touch', marker], {
      cwd: home,
      env,
    });
    expect(r.status, r.stderr.toString()).toBe(EXIT_CODES.usage);
    expect(r.stderr.toString()).toBe(
      'entraclaw: --project is empty\n  hint: give --project a path, or leave the option out\n',
    );
    expect(existsSync(marker)).toBe(false);
  });

  it('shim install "" writes nothing into the current directory', () => {
    const cwd = mkdtempSync(join(dir, 'cwd-'));
    const r = spawnSync(process.execPath, ['--', CLI, 'shim', 'install', ''], { cwd, env });
    expect(r.status).toBe(EXIT_CODES.usage);
    expect(r.stderr.toString()).toBe(
      'entraclaw: DIR is empty\n  hint: name the directory for the shims, e.g. ~/.entraclaw/bin\n',
    );
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe('an empty command name after -- (`-- "$CMD"` with CMD unset)', () => {
  // A real vault, so `agent` gets as far as starting its daemon: an empty name used to throw there, after
  // the daemon was up, and left it serving with no command to wait for.
  const pass = join(dir, 'empty-cmd-pass');
  writeFileSync(pass, 'empty command passphrase\n', { mode: 0o600 });
  const storeEnv = { ...env, ENTRACLAW_STORE: 'encrypted-file', ENTRACLAW_PASSPHRASE_FILE: pass };
  const project = mkdtempSync(join(dir, 'empty-cmd-project-'));

  it.each([
    [['run', '--env', 'A=b', '--', '', 'x'], 'entraclaw run [--env-file F] [--env NAME=REF] -- CMD ARGS'],
    [['agent', '--socket', join(dir, 'empty-cmd.sock'), '--', ''], 'entraclaw agent [-- CMD ARGS]'],
    [['sandbox', '--project', project, '--', ''], 'entraclaw sandbox [--profile P] -- CMD ARGS'],
  ])(
    '%j is a usage error saying the name is empty (not an internal error, not a daemon left running)',
    (args, usage) => {
      // The timeout only ends a hang (the bug) so that the test can report it.
      const r = spawnSync(process.execPath, ['--', CLI, ...args], { env: storeEnv, timeout: 20_000 });
      expect(r.signal).toBe(null);
      expect(r.stderr.toString()).toBe(
        `entraclaw: the command name is empty (an empty argument after --, such as an unset "$CMD")\n  hint: usage: ${usage}\n`,
      );
      expect(r.status).toBe(EXIT_CODES.usage);
    },
  );
});

describe('upgrade INTERPRETER --script NEW without --client, for a script that moved unchanged', () => {
  it('names the client pinned to those bytes and the command that re-pins it; that command works', () => {
    const scripts = realpathSync(mkdtempSync(join(dir, 'scripts-')));
    const old = join(scripts, 'run.mjs');
    writeFileSync(old, 'console.log(1)\n');
    const reg = runCli(
      ['register', process.execPath, '--script', old, '--grant', 'q/w', '--name', 'mover'],
      env,
    );
    expect(reg.status, reg.stderr).toBe(0);
    mkdirSync(join(scripts, 'moved'));
    const moved = join(scripts, 'moved', 'run.mjs');
    renameSync(old, moved);
    const r = runCli(['upgrade', process.execPath, '--script', moved], env);
    expect(r.status).toBe(EXIT_CODES.not_found);
    const exe = realpathSync(process.execPath);
    expect(r.stderr).toBe(
      `entraclaw: no client runs the script ${moved}; client "mover" is pinned to these bytes at ${old} (the script moved?)\n` +
        `  hint: to record its new path, keeping its grants: entraclaw upgrade ${exe} --script ${moved} --client mover\n`,
    );
    const fixed = runCli(['upgrade', exe, '--script', moved, '--client', 'mover'], env);
    expect(fixed.status, fixed.stderr).toBe(0);
  });
});
