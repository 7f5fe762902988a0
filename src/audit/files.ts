import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { basename, dirname } from 'node:path';

/** `audit.jsonl.N`: the N-th most recent rotated file of the log at `path`. */
export function rotatedFile(path: string, n: number): string {
  return `${path}.${n}`;
}

/** The files of the log at `path` that exist, oldest first: `.N` ... `.1`, then the live file. */
export function auditFiles(path: string): string[] {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const rotated = names
    .filter((n) => n.startsWith(prefix) && /^[1-9]\d*$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => b - a)
    .map((n) => rotatedFile(path, n));
  return names.includes(basename(path)) ? [...rotated, path] : rotated;
}

/** The last lines of a file (without their newlines) and whether the file ends with a newline. */
export interface FileTail {
  lines: Buffer[];
  /** The byte offset in the file where each of `lines` starts. */
  offsets: number[];
  terminated: boolean;
  size: number;
}

const CHUNK = 64 * 1024;

/** Reads up to `n` last lines of `file` from its end, without reading the whole file; undefined if absent. */
export function readLastLines(file: string, n: number): FileTail | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    let start = size;
    let data = Buffer.alloc(0);
    // Past the first (partial) line, the data holds as many lines as it has separating newlines.
    while (start > 0 && separators(data) < n) {
      const from = Math.max(0, start - CHUNK);
      const chunk = Buffer.alloc(start - from);
      readSync(fd, chunk, 0, chunk.length, from);
      data = Buffer.concat([chunk, data]);
      start = from;
    }
    const terminated = size > 0 && data[data.length - 1] === 0x0a;
    const parts = split(terminated ? data.subarray(0, -1) : data);
    // The first part is a line fragment unless the read reached the start of the file.
    const whole = start === 0 ? parts : parts.slice(1);
    const lines = size === 0 ? [] : whole.slice(-n);
    // The lines are contiguous and end where the file does (less its final newline): count back.
    const offsets: number[] = [];
    let end = terminated ? size - 1 : size;
    for (const line of [...lines].reverse()) {
      end -= line.length;
      offsets.unshift(end);
      end -= 1;
    }
    return { lines, offsets, terminated, size };
  } finally {
    closeSync(fd);
  }
}

/**
 * The 1-based number of the line starting at byte `offset` of `file`: reads everything before it, so it
 * is for the rare line that must be named, not for every line read.
 */
export function lineNumberAt(file: string, offset: number): number {
  const fd = openSync(file, 'r');
  try {
    let newlines = 0;
    const chunk = Buffer.alloc(CHUNK);
    for (let at = 0; at < offset; ) {
      const got = readSync(fd, chunk, 0, Math.min(CHUNK, offset - at), at);
      if (got === 0) break;
      for (let i = chunk.indexOf(0x0a); i >= 0 && i < got; i = chunk.indexOf(0x0a, i + 1)) newlines++;
      at += got;
    }
    return newlines + 1;
  } finally {
    closeSync(fd);
  }
}

/** Splits bytes on newlines; the last element is what follows the last newline. */
export function split(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, from)) {
    out.push(data.subarray(from, i));
    from = i + 1;
  }
  out.push(data.subarray(from));
  return out;
}

function separators(data: Buffer): number {
  let count = 0;
  for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, i + 1)) count++;
  // A final newline ends the last line rather than separating two.
  return data.length > 0 && data[data.length - 1] === 0x0a ? count - 1 : count;
}
