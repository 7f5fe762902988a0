import { Transform, type TransformCallback } from 'node:stream';

// Masks secrets in a child's output stream. Every occurrence of every secret is replaced by MASK_TEXT,
// even when it arrives split across chunks: the end of a chunk that could begin a secret (at most
// maxLen-1 bytes) is held back until the next chunk (or the end) shows whether it does. Nothing else is
// held, so a line such as a server's "listening on :8080" shows at once, not only when more output
// follows. Occurrences that overlap — one secret inside or straddling another — merge into a single
// marker, so no byte of any occurrence leaks; in particular a longer secret is never split by a shorter
// one inside it ("longest first").
//
// Secrets shorter than MIN_MASKED_BYTES are not masked: a 1-3 byte secret ("0", "yes", a PIN) occurs
// by chance all over ordinary output, and masking it would mangle the output while revealing, by
// the pattern of markers, exactly where the secret is. Such a secret gets no protection from masking.

/** What each occurrence (or run of overlapping occurrences) is replaced with. */
export const MASK_TEXT = '<concealed by entraclaw>';

/** Secrets shorter than this many bytes are not masked (see the module comment). */
export const MIN_MASKED_BYTES = 4;

const MARKER = Buffer.from(MASK_TEXT);

/** Whether a secret is long enough to be masked. */
export function isMaskable(secret: Buffer): boolean {
  return secret.length >= MIN_MASKED_BYTES;
}

/** A mask stream: a Transform that can also be ended before its input is known to be complete. */
export interface MaskStream extends Transform {
  /**
   * Ends the stream without waiting for more input: the held-back tail is written, except for a
   * trailing part that could begin a secret, which is dropped.
   */
  cut(): void;
}

/** A Transform that replaces every occurrence of any maskable secret with MASK_TEXT. */
export function createMaskStream(secrets: readonly Buffer[]): MaskStream {
  const unique = new Map<string, Buffer>();
  for (const s of secrets) if (isMaskable(s)) unique.set(s.toString('hex'), Buffer.from(s));
  const needles = [...unique.values()];
  const prefixes = needles.map(prefixTable);
  let tail = Buffer.alloc(0);
  let covered = 0; // bytes at the start of `tail` already represented by an emitted marker
  let cutting = false;

  // Emits everything no future byte can change: all but a trailing start of a secret, which more input
  // may complete; at the end all of it; on a cut all but that trailing start too, because what would
  // have completed it will never be seen.
  const emit = (data: Buffer, until: 'more' | 'end' | 'cut'): Buffer => {
    const cut = data.length - (until === 'end' ? 0 : longestSecretStart(data, needles, prefixes));
    const out: Buffer[] = [];
    let pos = 0;
    for (const [start, end] of mergedOccurrences(data, needles, covered)) {
      if (start >= cut) break;
      out.push(data.subarray(pos, start));
      // A range holding the already-masked prefix continues that marker instead of adding one.
      if (covered === 0 || start > 0) out.push(MARKER);
      pos = end;
    }
    if (pos < cut) {
      out.push(data.subarray(pos, cut));
      pos = cut;
    }
    tail = Buffer.from(data.subarray(cut));
    covered = Math.max(pos, covered) - cut;
    return Buffer.concat(out);
  };

  const stream = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      if (needles.length === 0) return done(null, chunk);
      done(null, emit(Buffer.concat([tail, chunk]), 'more'));
    },
    flush(done: TransformCallback) {
      done(null, needles.length === 0 ? undefined : emit(tail, cutting ? 'cut' : 'end'));
    },
  });
  return Object.assign(stream, {
    cut() {
      cutting = true;
      stream.end();
    },
  });
}

// The length of the longest end of `data` that is the start of a needle (shorter than the needle: a
// whole one is an occurrence, masked anyway). Knuth-Morris-Pratt over the last needle.length - 1 bytes,
// so each write costs the secrets' length, however the output repeats their first bytes.
function longestSecretStart(
  data: Buffer,
  needles: readonly Buffer[],
  prefixes: readonly Int32Array[],
): number {
  let longest = 0;
  needles.forEach((needle, i) => {
    const next = prefixes[i] as Int32Array;
    let k = 0; // bytes of the needle matched so far; the tail is shorter than it, so never all
    for (let at = Math.max(0, data.length - (needle.length - 1)); at < data.length; at++) {
      while (k > 0 && data[at] !== needle[k]) k = next[k - 1] as number;
      if (data[at] === needle[k]) k++;
    }
    longest = Math.max(longest, k);
  });
  return longest;
}

// KMP's prefix function: entry i is the length of the longest proper prefix of needle[0..i] that also
// ends it.
function prefixTable(needle: Buffer): Int32Array {
  const table = new Int32Array(needle.length);
  for (let i = 1, k = 0; i < needle.length; i++) {
    while (k > 0 && needle[i] !== needle[k]) k = table[k - 1] as number;
    if (needle[i] === needle[k]) k++;
    table[i] = k;
  }
  return table;
}

/**
 * Sorted, merged [start, end) ranges of every occurrence of every needle in `data`, plus the range
 * [0, covered) already masked in an earlier chunk (merged with anything overlapping it).
 */
function mergedOccurrences(
  data: Buffer,
  needles: readonly Buffer[],
  covered: number,
): Array<[number, number]> {
  const ranges: Array<[number, number]> = covered > 0 ? [[0, covered]] : [];
  for (const needle of needles) {
    for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
      ranges.push([at, at + needle.length]);
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [start, end] of ranges) {
    const last = merged.at(-1);
    if (last && start < last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged;
}
