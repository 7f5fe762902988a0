import { Transform, type TransformCallback } from 'node:stream';

// Masks secrets in a child's output stream. Every occurrence of every secret is replaced by MASK_TEXT,
// even when it arrives split across chunks: the last maxLen-1 bytes are held back until the next chunk
// (or the end) shows whether they start an occurrence. Occurrences that overlap — one secret inside or
// straddling another — merge into a single marker, so no byte of any occurrence leaks; in particular
// a longer secret is never split by a shorter one inside it ("longest first").
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

/** A Transform that replaces every occurrence of any maskable secret with MASK_TEXT. */
export function createMaskStream(secrets: readonly Buffer[]): Transform {
  const unique = new Map<string, Buffer>();
  for (const s of secrets) if (isMaskable(s)) unique.set(s.toString('hex'), Buffer.from(s));
  const needles = [...unique.values()];
  const hold = needles.reduce((max, s) => Math.max(max, s.length), 0) - 1;
  let tail = Buffer.alloc(0);
  let covered = 0; // bytes at the start of `tail` already represented by an emitted marker

  // Emits everything no future byte can change: all but the last `hold` bytes (all of them at the end).
  const emit = (data: Buffer, final: boolean): Buffer => {
    const cut = final ? data.length : Math.max(0, data.length - hold);
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

  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      if (needles.length === 0) return done(null, chunk);
      done(null, emit(Buffer.concat([tail, chunk]), false));
    },
    flush(done: TransformCallback) {
      done(null, needles.length === 0 ? undefined : emit(tail, true));
    },
  });
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
