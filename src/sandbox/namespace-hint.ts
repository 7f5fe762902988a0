import { readFileSync } from 'node:fs';

// bubblewrap needs a new user namespace for an ordinary user, and a distribution may forbid those (Ubuntu
// 23.10+ through AppArmor, older Debian kernels through a sysctl, containers through a limit of 0). Its own
// message says only that it failed: this names the setting that stopped it and the command that changes it.

/** The kernel settings that decide whether an ordinary user may create user namespaces. */
export interface NamespaceSettings {
  /** kernel.apparmor_restrict_unprivileged_userns (Ubuntu 23.10+). */
  apparmorRestricts?: string;
  /** kernel.unprivileged_userns_clone (Debian kernels before bookworm). */
  unprivilegedClone?: string;
  /** user.max_user_namespaces: 0 forbids them (some containers and hardening guides). */
  maxUserNamespaces?: string;
}

/** What to do when bubblewrap could not build the sandbox, given the kernel's settings. */
export function namespaceHint(s: NamespaceSettings): string {
  if (s.maxUserNamespaces === '0') {
    return 'user namespaces are switched off here (user.max_user_namespaces is 0): `sudo sysctl user.max_user_namespaces=15000`, or, in a container, allow them in its runtime';
  }
  if (s.unprivilegedClone === '0') {
    return 'this kernel forbids user namespaces to ordinary users: `sudo sysctl kernel.unprivileged_userns_clone=1`';
  }
  if (s.apparmorRestricts === '1') {
    return 'AppArmor restricts user namespaces to programs with a profile (kernel.apparmor_restrict_unprivileged_userns is 1): give bwrap a profile with `userns,` (see /usr/share/doc/bubblewrap), or `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`';
  }
  return 'bubblewrap needs user namespaces (or a setuid bwrap): see its message above; in a container, run entraclaw sandbox on the host instead';
}

function sysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The settings of this machine (those it does not have are left out). */
export function readNamespaceSettings(): NamespaceSettings {
  const s: NamespaceSettings = {};
  const apparmor = sysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  const clone = sysctl('/proc/sys/kernel/unprivileged_userns_clone');
  const max = sysctl('/proc/sys/user/max_user_namespaces');
  if (apparmor !== undefined) s.apparmorRestricts = apparmor;
  if (clone !== undefined) s.unprivilegedClone = clone;
  if (max !== undefined) s.maxUserNamespaces = max;
  return s;
}
