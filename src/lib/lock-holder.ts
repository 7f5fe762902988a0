import { fstatSync, readFileSync } from 'node:fs';

/** A file as /proc/locks names it: device major and minor, and inode number. */
export interface LockedFile {
  major: number;
  minor: number;
  ino: bigint;
}

/**
 * The pid holding an flock() on `file`, from the text of /proc/locks; undefined when none is listed.
 * Waiters (lines marked `->`) are not holders; a pid of 0 or below (a holder in another pid namespace) is
 * not one we can name.
 */
export function flockHolder(procLocks: string, file: LockedFile): number | undefined {
  const id = `${hex2(file.major)}:${hex2(file.minor)}:${file.ino}`;
  for (const line of procLocks.split('\n')) {
    // "1: FLOCK  ADVISORY  WRITE 29239 fe:00:2483869 0 EOF"
    const f = line.trim().split(/\s+/);
    if (f[1] !== 'FLOCK' || f[5] !== id) continue;
    const pid = Number(f[4]);
    if (Number.isInteger(pid) && pid > 0) return pid;
  }
  return undefined;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Linux's dev_t split into major and minor numbers (glibc's gnu_dev_major / gnu_dev_minor). */
export function devNumbers(dev: bigint): { major: number; minor: number } {
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n)),
  };
}

/**
 * Who holds the flock() on the file open at `fd`: its pid and command name, or undefined where that
 * cannot be told (not Linux, no /proc, a holder in another pid namespace).
 */
export function lockHolderOf(fd: number): { pid: number; command?: string } | undefined {
  if (process.platform !== 'linux') return undefined;
  let pid: number | undefined;
  try {
    const st = fstatSync(fd, { bigint: true });
    pid = flockHolder(readFileSync('/proc/locks', 'utf8'), { ...devNumbers(st.dev), ino: st.ino });
  } catch {
    return undefined;
  }
  if (pid === undefined) return undefined;
  try {
    // comm, not cmdline: a short name the process chose, never its arguments.
    const command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    return command ? { pid, command } : { pid };
  } catch {
    return { pid };
  }
}
