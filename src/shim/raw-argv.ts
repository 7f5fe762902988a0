// Node decodes its arguments as UTF-8 and silently turns bytes that are not UTF-8 into U+FFFD, so
// `-s 'qa1\xff'` and `-s 'qa1\xfe'` would name one item and `-w $'\xff\xfe'` would store EF BF BD EF BF BD.
// The shims must never act on such a lossy argument. On Linux the bytes as passed are still in
// /proc/self/cmdline; it is read only when some argument holds U+FFFD, so the usual call pays nothing.
import { readFileSync } from 'node:fs';

// ignoreBOM keeps a leading U+FEFF: it is part of the text, not a marker to strip.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `bytes` as text, or undefined when they are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The last `count` words of this process's command line as passed (NUL-separated), if readable. */
function rawArguments(count: number): Buffer[] | undefined {
  let cmdline: Buffer;
  try {
    cmdline = readFileSync('/proc/self/cmdline');
  } catch {
    return undefined;
  }
  const words: Buffer[] = [];
  for (let at = 0; at < cmdline.length; ) {
    const end = cmdline.indexOf(0, at);
    const stop = end === -1 ? cmdline.length : end;
    words.push(cmdline.subarray(at, stop));
    at = stop + 1;
  }
  return words.length >= count ? words.slice(words.length - count) : undefined;
}

/**
 * The shim's arguments (those after the script) and the 0-based positions of the ones that are not valid
 * UTF-8. Without /proc (macOS) an argument holding U+FFFD cannot be told from a lossy one and counts
 * as invalid.
 */
export function shimArguments(): { args: string[]; invalid: number[] } {
  const args = process.argv.slice(2);
  if (!args.some((a) => a.includes('\uFFFD'))) return { args, invalid: [] };
  const raw = rawArguments(args.length);
  const invalid = args.flatMap((arg, i) => {
    if (!arg.includes('\uFFFD')) return [];
    const bytes = raw?.[i];
    // Decoding exactly to what node gave us also proves the word is this argument, not a neighbour's.
    return bytes !== undefined && decodeUtf8(bytes) === arg ? [] : [i];
  });
  return { args, invalid };
}
