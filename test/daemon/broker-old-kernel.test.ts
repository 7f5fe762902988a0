// Fails closed on a kernel too old for the safe path: before Linux 6.5 there is no SO_PASSPIDFD (so no
// SCM_PIDFD per message) and no SO_PEERPIDFD, and the kernel answers ENOPROTOOPT. Without a pidfd the
// daemon cannot show that the /proc it read still described the sender (a pid can be reused meanwhile),
// so it must serve nothing rather than trust the pid. A real daemon, on this kernel, with an LD_PRELOAD
// library that gives exactly those two options the old kernel's answer; everything else is real.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type Broker,
  canary,
  expectNoSecret,
  PY_LIB,
  PYTHON,
  secretFreePlaces,
  startBroker,
} from '../support/broker.js';
import { brokerClientsMissing, describeIfProvided } from '../support/context.js';

const SVC = 'old-kernel.example';
const SECRET = canary('old-kernel');
const CLIENT_PY = `${PY_LIB}
emit(get(connect_hello(SOCK), sys.argv[1], sys.argv[2]))
`;

// Option numbers are the kernel ABI (include/uapi/asm-generic/socket.h), newer than some libc headers.
// Each refusal appends a letter to MARK (given at compile time), the proof that the daemon asked and got
// the old kernel's answer (its /proc/PID/maps, non-dumpable, is readable by root only).
const PRE_65_C = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#define SO_PASSPIDFD_ 76
#define SO_PEERPIDFD_ 77
static void mark(char c) {
  int fd = open(MARK, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd >= 0) { (void)!write(fd, &c, 1); close(fd); }
}
int setsockopt(int fd, int level, int name, const void *value, socklen_t len) {
  static int (*real)(int, int, int, const void *, socklen_t);
  if (level == SOL_SOCKET && name == SO_PASSPIDFD_) { mark('S'); errno = ENOPROTOOPT; return -1; }
  if (!real) real = dlsym(RTLD_NEXT, "setsockopt");
  return real(fd, level, name, value, len);
}
int getsockopt(int fd, int level, int name, void *value, socklen_t *len) {
  static int (*real)(int, int, int, void *, socklen_t *);
  if (level == SOL_SOCKET && name == SO_PEERPIDFD_) { mark('G'); errno = ENOPROTOOPT; return -1; }
  if (!real) real = dlsym(RTLD_NEXT, "getsockopt");
  return real(fd, level, name, value, len);
}
`;

let b: Broker;
let preload: string;
let marker: string;
const dir = mkdtempSync(join(tmpdir(), 'entraclaw-pre-6.5-'));
beforeAll(async () => {
  if (brokerClientsMissing) return;
  const source = join(dir, 'pre-6.5-kernel.c');
  preload = join(dir, 'pre-6.5-kernel.so');
  marker = join(dir, 'refused');
  writeFileSync(source, PRE_65_C);
  // The addon's build needs a C compiler already (make build), so one is there.
  const cc = spawnSync('cc', ['-shared', '-fPIC', `-DMARK="${marker}"`, '-o', preload, source, '-ldl'], {
    encoding: 'utf8',
  });
  if (cc.status !== 0) throw new Error(`cannot build the preload library: ${cc.stderr || cc.error?.message}`);
  b = await startBroker('entraclaw-old-kernel', [[SVC, 'acct', SECRET]], { LD_PRELOAD: preload });
}, 60_000);
afterAll(async () => {
  await b?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describeIfProvided('a kernel without per-message pidfds (before Linux 6.5)', brokerClientsMissing, () => {
  it('an approved client is refused, saying why, and gets no secret', async () => {
    const client = b.file('client.py', CLIENT_PY);
    b.register({ exe: PYTHON, script: client, grant: `${SVC}/acct`, ops: 'read', name: 'approved' });
    const r = await b.python(client, [SVC, 'acct']);
    expect(r.result.ok, r.stdout + r.stderr).toBe(false);
    expect(r.result.value_b64).toBeUndefined();
    expect(r.result).toMatchObject({ code: 'denied', message: expect.stringMatching(/no pidfd.*6\.5/) });
    // The daemon really got the old kernel's answers for this connection.
    expect(readFileSync(marker, 'utf8')).toMatch(/[SG]/);
    const audit = JSON.parse(b.cli(['audit', '--json', '--tail', '100']).stdout.toString()) as Array<
      Record<string, unknown>
    >;
    expect(audit).toContainEqual(
      expect.objectContaining({ op: 'get', decision: 'denied', reason: expect.stringMatching(/no pidfd/) }),
    );
    expectNoSecret(secretFreePlaces(b), [SECRET]);
  }, 30_000);
});
