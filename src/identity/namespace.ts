// A sandbox (bubblewrap, flatpak, a rootless container) puts its processes in a user namespace of their
// own. The user's daemon serves the user's session, not such a process: a sandbox that could reach the
// daemon's socket (one placed outside the directories `entraclaw sandbox` hides, say) would otherwise get
// every grant its approved programs have in policy.toml, not only its profile's. The converse holds by
// itself: the kernel lets a process read another's /proc/PID/exe only from the same user namespace (or
// with CAP_SYS_PTRACE over the other's), so a daemon in a namespace of its own could identify no caller
// of the session at all — which is why the service unit keeps it in the session's (service-unit.ts).
import { readlinkSync } from 'node:fs';
import { native } from '../lib/native.js';

/** The user namespace of `pid` as /proc names it (`user:[4026531837]`), or undefined when unreadable. */
export function userNamespaceOf(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/user`);
  } catch {
    return undefined;
  }
}

/** Deepest nesting looked through: bwrap adds one level; more is no sandbox of ours. */
const MAX_NESTING = 8;

/**
 * Whether `userns` (the namespace of `pid`, as read before its identification) is `root` or nested in it.
 * A sandbox's broker serves both: unprivileged bwrap runs the command one namespace below the one it
 * reports when it had to map root to mount /dev/pts (`--dev`).
 */
export function withinNamespace(pid: number, userns: string | undefined, root: string): boolean {
  if (userns === undefined) return false;
  if (userns === root) return true;
  const own = inodeOf(userns);
  const top = inodeOf(root);
  if (own === undefined || top === undefined) return false;
  let chain: number[];
  try {
    chain = native().userNamespaceChain(pid, MAX_NESTING);
  } catch {
    return false;
  }
  // The chain must start at the namespace read before: then it is that one's, whatever pid runs now.
  return chain[0] === own && chain.includes(top);
}

// The inode number in a namespace link's text (`user:[4026531837]`).
function inodeOf(link: string): number | undefined {
  const m = /^user:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}
