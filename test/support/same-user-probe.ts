import { spawnSync } from 'node:child_process';
import { yamaPtraceScope } from './context.js';

// PTRACE_SEIZE (0x4206): the permission check of PTRACE_ATTACH, but a success does not stop the target,
// so a regression that lets it through fails the test instead of leaving the target stopped for the next.
const PROBE_PY = `import ctypes,sys
libc=ctypes.CDLL(None,use_errno=True)
r=libc.ptrace(0x4206,int(sys.argv[1]),None,None)
print(0 if r==0 else ctypes.get_errno())
try:
 open("/proc/%s/environ"%sys.argv[1],"rb").read(1); print("read")
except OSError: print("refused")`;

/**
 * The attacks of another program of the same user (run as `as`) on pid: a ptrace seize ("0" when it
 * worked, else the errno) and a read of /proc/PID/environ ("read" or "refused").
 */
export function sameUserProbe(pid: number, as: { uid?: number; gid?: number } = {}): [string, string] {
  const r = spawnSync('python3', ['-c', PROBE_PY, String(pid)], { encoding: 'utf8', ...as });
  const out = r.stdout.trim().split('\n');
  // No answer (python3 missing, a crash) must not read as either outcome.
  if (out.length !== 2 || !/^\d+$/.test(out[0]!)) {
    throw new Error(`the ptrace probe failed: ${r.error?.message ?? r.stderr}`);
  }
  return [out[0]!, out[1]!];
}

/**
 * What sameUserProbe finds on a plain process of that user, the control that shows the probe can fail:
 * both work, except the seize where Yama (ptrace_scope >= 1) forbids it to every sibling (EPERM).
 */
export const PLAIN_PROCESS_PROBE = [yamaPtraceScope === 0 ? '0' : '1', 'read'];
