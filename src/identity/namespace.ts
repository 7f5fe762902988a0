// A sandbox (bubblewrap, flatpak, a rootless container) puts its processes in a user namespace of their
// own. The user's daemon serves the user's session, not such a process: a sandbox that could reach the
// daemon's socket (one placed outside the directories `entraclaw sandbox` hides, say) would otherwise get
// every grant its approved programs have in policy.toml, not only its profile's. The converse holds by
// itself: the kernel lets a process read another's /proc/PID/exe only from the same user namespace (or
// with CAP_SYS_PTRACE over the other's), so a daemon in a namespace of its own could identify no caller
// of the session at all — which is why the service unit keeps it in the session's (service-unit.ts).
import { readlinkSync } from 'node:fs';

/** The user namespace of `pid` as /proc names it (`user:[4026531837]`), or undefined when unreadable. */
export function userNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/user`);
  } catch {
    return undefined;
  }
}
