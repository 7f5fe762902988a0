// Reading one process's facts from /proc (Linux). Every reader takes the pid and throws on failure;
// peer.ts decides what a failure means. Files are read with one shared scratch buffer because
// identify() runs for every request and readFileSync costs extra syscalls on size-0 /proc files.
import { closeSync, constants, fstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { fileKey } from '../lib/file-key.js';
import { statFields } from '../lib/proc-stat.js';
import { hashStatted } from './hash.js';

/** Largest argv or environment we read (the kernel's ARG_MAX for a default 8 MiB stack is 2 MiB). */
const MAX_PROC_BYTES = 4 * 1024 * 1024;

let scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * The whole content of a /proc file, as a view into the scratch buffer (valid until the next read).
 * The files read here (status, cmdline, environ, fdinfo) fill the buffer in one read() when they
 * can, so a short read is the end: skipping the read that would return 0 saves a costly syscall.
 */
function readProc(path: string, held?: number): Buffer {
  const fd = held ?? openSync(path, 'r');
  try {
    let length = 0;
    for (;;) {
      const room = scratch.length - length;
      // A held fd is read from the start each time; one opened here reads on from where it is.
      const n = readSync(fd, scratch, length, room, held === undefined ? null : length);
      length += n;
      if (n < room) return scratch.subarray(0, length);
      if (length >= MAX_PROC_BYTES) throw new Error(`${path} is larger than ${MAX_PROC_BYTES} bytes`);
      const bigger = Buffer.allocUnsafe(scratch.length * 2);
      scratch.copy(bigger);
      scratch = bigger;
    }
  } finally {
    if (held === undefined) closeSync(fd);
  }
}

/** NUL-separated strings; the kernel ends each one with a NUL, so a trailing empty piece is dropped. */
function splitNul(buf: Buffer): string[] {
  if (buf.length === 0) return [];
  const parts = buf.toString('utf8').split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** The fields of /proc/<pid>/status that identity depends on. */
export interface ProcStatus {
  /** One-letter state: Z (zombie) and X (dead) mean the process has exited. */
  state: string;
  ppid: number;
  tracerPid: number;
  /** Real, effective, saved and filesystem uids. */
  uids: number[];
}

/** Parses /proc/<pid>/status (read through `held`, an open fd of that file, when given). */
export function readStatus(pid: number, held?: number): ProcStatus {
  const text = readProc(`/proc/${pid}/status`, held).toString('latin1');
  const field = (name: string): string => {
    const m = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name} line`);
    return m[1]!;
  };
  return {
    state: field('State').charAt(0),
    ppid: Number(field('PPid')),
    tracerPid: Number(field('TracerPid')),
    uids: field('Uid').split(/\s+/).map(Number),
  };
}

/**
 * When the process started, in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, it names
 * one process for as long as the machine runs, where a pid alone is reused.
 */
export function readStartTime(pid: number, held?: number): string {
  const start = statFields(readProc(`/proc/${pid}/stat`, held).toString('latin1'))[22 - 3];
  if (!start || !/^\d+$/.test(start)) throw new Error(`/proc/${pid}/stat has no start time`);
  return start;
}

/** argv from /proc/<pid>/cmdline (the process can rewrite this memory; see peer.ts). */
export function readArgv(pid: number): string[] {
  return splitNul(readProc(`/proc/${pid}/cmdline`));
}

/**
 * The initial environment from /proc/<pid>/environ, in a null-prototype object. A name given twice
 * keeps every value joined by NUL: libc's getenv takes the first copy but ld.so honours the last,
 * so a harmless first copy must not hide an injected second one.
 */
export function readEnviron(pid: number): Record<string, string> {
  const env: Record<string, string> = Object.create(null);
  for (const entry of splitNul(readProc(`/proc/${pid}/environ`))) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    env[name] = name in env ? `${env[name]}\0${value}` : value;
  }
  return env;
}

/** The pid a pidfd refers to (-1 once it has been reaped), from /proc/self/fdinfo. */
export function pidfdPid(pidfd: number): number {
  const m = /^Pid:\s*(-?\d+)/m.exec(readProc(`/proc/self/fdinfo/${pidfd}`).toString('latin1'));
  if (!m) throw new Error(`fd ${pidfd} is not a pidfd`);
  return Number(m[1]);
}

/** A file opened and hashed: the canonical path of the very inode hashed, and whether it is unlinked. */
export interface HashedFile {
  path: string;
  sha256: string;
  /** No name links to it any more (deleted, or replaced by rename): `path` is the old name. */
  deleted: boolean;
  /** What was hashed, as fileKey() says it: a later stat with the same key is the same content. */
  key: string;
}

// O_NONBLOCK so that a FIFO named as a script cannot stall the daemon in open(); O_NOCTTY for ttys.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;
const DELETED = ' (deleted)';

/**
 * Opens `path` (e.g. /proc/<pid>/exe, or a script under /proc/<pid>/cwd) and hashes what it opened.
 * The path comes from /proc/self/fd, so it names the inode that was hashed even if the file was
 * renamed or the process exec'd meanwhile.
 */
export function hashOpened(path: string): HashedFile {
  const fd = openSync(path, OPEN_FLAGS);
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'ENOTREG' });
    const sha256 = hashStatted(fd, st);
    const deleted = st.nlink === 0n;
    let real = readlinkSync(`/proc/self/fd/${fd}`);
    if (deleted && real.endsWith(DELETED)) real = real.slice(0, -DELETED.length);
    return { path: real, sha256, deleted, key: fileKey(st) };
  } finally {
    closeSync(fd);
  }
}
