// A sandbox (bubblewrap, flatpak, a rootless container) puts its processes in a user namespace of their
// own. The user's daemon serves the user's session, not such a process: a sandbox that could reach the
// daemon's socket (one placed outside the directories `entraclaw sandbox` hides, say) would otherwise get
// every grant its approved programs have in policy.toml, not only its profile's.
import { readlinkSync } from 'node:fs';

/** The user namespace of `pid` as /proc names it (`user:[4026531837]`), or undefined when unreadable. */
export function userNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/user`);
  } catch {
    return undefined;
  }
}

/**
 * The user namespaces of the daemon's own session: its own, and its parent's. systemd's PrivateUsers=
 * runs the service in a namespace of its own, below the session's that its manager (the parent) is in.
 */
export function sessionNamespaces(): Set<string> {
  const names = [userNamespaceOf('self'), userNamespaceOf(process.ppid)];
  return new Set(names.filter((n): n is string => n !== undefined));
}
