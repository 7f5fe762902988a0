// `secret set` with a stdin pipe someone else made non-blocking (node does so to the pipes it reads, and a
// child given that pipe shares the flag): reads say EAGAIN until the writer writes. The CLI must sleep
// between tries, not spin a CPU for as long as the writer takes. strace shows which it does.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';
import { linuxOnly, randomName, requireOrSkip } from '../support/context.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-nbstdin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = isolatedEnv(dir);

// Starts argv under strace with a non-blocking pipe as stdin, writes the value once strace has logged
// three EAGAIN reads of fd 0 (so the waiting is seen), then closes the pipe.
const DRIVER = `
import fcntl, json, os, subprocess, sys, time
log, value, argv = sys.argv[1], sys.argv[2].encode(), json.loads(sys.argv[3])
r, w = os.pipe()
fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_NONBLOCK)
p = subprocess.Popen(['strace', '-f', '-qq', '-e', 'trace=read,futex', '-o', log, '--'] + argv,
                     stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
os.close(r)
deadline = time.time() + 20
while time.time() < deadline:
    try:
        with open(log, errors='replace') as f:
            if sum(1 for l in f if 'read(0,' in l and 'EAGAIN' in l) >= 3:
                break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
os.write(w, value)
os.close(w)
out, err = p.communicate()
print(json.dumps({'status': p.returncode, 'stderr': err.decode(errors='replace')}))
`;

describe('secret set from a non-blocking stdin', () => {
  it('waits for the writer asleep (no back-to-back EAGAIN reads), then stores the value', (ctx) => {
    requireOrSkip(ctx, linuxOnly('strace and the kernel keyring'));
    const strace = spawnSync('strace', ['-qq', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' });
    requireOrSkip(
      ctx,
      strace.status === 0 ? undefined : `strace cannot run here (${(strace.stderr || '').trim()})`,
    );
    const service = randomName('nb-stdin');
    const log = join(dir, 'strace.log');
    const value = `v-${randomName('value')}`;
    const argv = [process.execPath, '--', CLI, 'secret', 'set', service, 'me', '--store', 'kernel-keyring'];
    const r = spawnSync('python3', ['-c', DRIVER, log, value, JSON.stringify(argv)], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    try {
      expect(r.status, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout) as { status: number; stderr: string };
      expect(res.status, res.stderr).toBe(0);
      // Per thread: the EAGAIN reads of stdin, and whether a futex wait (the sleep) came before the next.
      const lines = spawnSync('cat', [log], { encoding: 'utf8' }).stdout.split('\n');
      const byPid = new Map<string, string[]>();
      for (const l of lines) {
        const m = /^(\d+)\s+(\w+)\((.*)$/.exec(l);
        if (!m) continue;
        const [, pid, call, rest] = m;
        const kind = call === 'read' && rest!.startsWith('0,') && /EAGAIN/.test(rest!) ? 'again' : call!;
        byPid.set(pid!, [...(byPid.get(pid!) ?? []), kind]);
      }
      const reader = [...byPid.values()].find((calls) => calls.includes('again'));
      expect(reader, 'strace saw no EAGAIN read of stdin').toBeDefined();
      const spins = reader!.filter((c, i) => c === 'again' && reader![i + 1] === 'again').length;
      expect(spins, 'back-to-back EAGAIN reads: the CLI spun on stdin').toBe(0);
      const got = runCli(['secret', 'get', service, 'me', '--store', 'kernel-keyring'], env);
      expect(got.stdout.toString()).toBe(value);
    } finally {
      runCli(['secret', 'rm', service, 'me', '--store', 'kernel-keyring'], env);
    }
  }, 90_000);
});
