import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { isolatedEnv, runCli } from '../support/cli.js';
import { entry } from './fixtures.js';

// `entraclaw audit` and `audit verify` as the user reads them: a log whose oldest file rotation has
// dropped, and one with a damaged line.
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-verify-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = isolatedEnv(dir);
// Where the CLI reads it: XDG_STATE_HOME on Linux, ~/Library/Application Support on macOS.
const path = join(resolvePaths(env).state, 'audit.jsonl');

describe('entraclaw audit verify', () => {
  it('says where the kept chain starts once rotation has dropped the oldest lines', () => {
    const log = AuditLog.open(path, { maxBytes: 600, keep: 1 });
    for (let i = 0; i < 12; i++) log.append(entry(i));
    log.close();
    const r = runCli(['audit', 'verify'], env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toMatch(/^audit log intact: \d+ lines in 2 file\(s\)\n$/);
    expect(r.stderr).toMatch(
      /the kept chain starts at seq [1-9]\d*: the \d+ line\(s\) before it are in none of the kept files \(rotated away/,
    );
  });
});

describe('entraclaw audit --file LOG', () => {
  it("reads and verifies a log other than the daemon's; a missing one is a usage error, not an empty log", () => {
    const other = join(dir, 'elsewhere', 'run.jsonl');
    mkdirSync(join(dir, 'elsewhere'));
    const log = AuditLog.open(other);
    for (let i = 0; i < 3; i++) log.append(entry(i));
    log.close();
    const shown = runCli(['audit', '--file', other, '--json'], env);
    expect(shown.status, shown.stderr).toBe(0);
    expect((JSON.parse(shown.stdout.toString()) as unknown[]).length).toBe(3);
    const verified = runCli(['audit', '--file', other, 'verify'], env);
    expect(verified.status, verified.stderr).toBe(0);
    expect(verified.stdout.toString()).toBe('audit log intact: 3 lines in 1 file(s)\n');
    expect(verified.stderr).toContain('no running daemon writes this log (a finished sandbox run, say)');
    const lines = readFileSync(other, 'utf8').split('\n');
    writeFileSync(
      other,
      [lines[0], lines[1]!.replace('"granted"', '"denied"'), ...lines.slice(2)].join('\n'),
    );
    const broken = runCli(['audit', '--file', other, 'verify'], env);
    expect(broken.status).toBe(5);
    expect(broken.stderr).toContain(`audit log broken at ${other}:2`);
    const missing = runCli(['audit', '--file', join(dir, 'elsewhere', 'nope.jsonl'), 'verify'], env);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(`no audit log at ${join(dir, 'elsewhere', 'nope.jsonl')}`);
    expect(missing.stderr).toContain('sandbox-audit');
    const empty = runCli(['audit', '--file', ''], env);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toContain('--file is empty');
  });
});

describe('entraclaw audit --tail N', () => {
  it('takes N in decimal digits only; anything else is a usage error naming it', () => {
    for (const bad of ['0', '-1', '1e3', '0x10', '1.5', ' 5', '', 'ten', '99999999999999999999']) {
      const r = runCli(['audit', '--tail', bad], env);
      expect(r.status, bad).toBe(2);
      expect(r.stderr, bad).toContain(`entraclaw: --tail "${bad}" is not a positive integer`);
    }
    expect(runCli(['audit', '--tail', '007'], env).status).toBe(0);
  });
});

describe('entraclaw audit before any decision', () => {
  it('says there are no entries yet and where they will be, instead of a bare header', () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    const r = runCli(['audit'], env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr).toBe(`entraclaw: no audit entries yet in ${path}; the daemon writes one per decision\n`);
    expect(JSON.parse(runCli(['audit', '--json'], env).stdout.toString())).toEqual([]);
  });
});

describe('entraclaw audit --tail over a hand-edited line', () => {
  it('shows it as DAMAGED with what it says, and exits 5 pointing at audit verify', () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    const log = AuditLog.open(path);
    for (let i = 0; i < 3; i++) log.append(entry(i));
    log.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[1] = lines[1]!.replace('"decision":"granted"', '"decision":"denied"');
    writeFileSync(path, lines.join('\n'));
    const r = runCli(['audit', '--tail', '5'], env);
    expect(r.status).toBe(5);
    const rows = r.stdout.toString().trim().split('\n');
    expect(rows).toHaveLength(4);
    expect(rows[2]).toMatch(/ DAMAGED .*the next line does not chain to it.*\(entraclaw audit verify\)/);
    expect(r.stderr).toContain(`the hash chain is broken at line 2 of ${path}: the next line does not chain`);
  });

  it('names the line by its number in the file, wherever it is among the lines shown', () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    const log = AuditLog.open(path);
    for (let i = 0; i < 21; i++) log.append(entry(i));
    log.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('"seq":2', '"seq":2 ');
    writeFileSync(path, lines.join('\n'));
    const r = runCli(['audit'], env);
    expect(r.status).toBe(5);
    expect(r.stderr).toContain(`entraclaw: the hash chain is broken at line 3 of ${path}: the next line`);
    expect(r.stderr).not.toContain('near the end');
  });
});

describe('entraclaw audit --tail over a damaged line', () => {
  it('shows the lines around it, marks it, and exits 5 pointing at audit verify', () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    const log = AuditLog.open(path);
    log.append(entry(0));
    appendFileSync(path, '{"cut": \n');
    log.append(entry(2));
    log.close();
    const r = runCli(['audit', '--tail', '5'], env);
    expect(r.status).toBe(5);
    const rows = r.stdout.toString().trim().split('\n');
    expect(rows).toHaveLength(4);
    expect(rows[2]).toMatch(/DAMAGED .*entraclaw audit verify/);
    expect(r.stderr).toMatch(/line 2 of .* is not an audit record[\s\S]*entraclaw audit verify/);
    const json = runCli(['audit', '--tail', '5', '--json'], env);
    expect(json.status).toBe(5);
    expect(JSON.parse(json.stdout.toString())).toEqual([
      expect.objectContaining({ seq: 0 }),
      { damaged: true, file: path, line: 2, reason: 'not an audit record' },
      expect.objectContaining({ seq: 2 }),
    ]);
  });
});

describe('entraclaw audit and audit verify over a log they cannot read', () => {
  it('a directory where the log or its directory belongs is a usage error naming it, not an internal error', () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    // The log's path is a directory, then its state directory is a file: both the user's to fix.
    mkdirSync(path, { recursive: true });
    const tail = runCli(['audit'], env);
    const verify = runCli(['audit', 'verify', '--json'], env);
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(dir, 'state', 'entraclaw'), '');
    const notDir = runCli(['audit', 'verify'], env);
    for (const r of [tail, verify, notDir]) {
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).not.toContain('internal error');
      expect(r.stderr).toContain(path);
    }
    expect(tail.stderr).toContain('EISDIR');
    expect(JSON.parse(verify.stderr).error).toMatchObject({
      code: 'usage',
      hint: expect.stringContaining('ls -ld'),
    });
    expect(notDir.stderr).toContain('ENOTDIR');
  });
});
