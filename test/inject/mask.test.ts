import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createMaskStream, isMaskable, MASK_TEXT, MIN_MASKED_BYTES } from '../../src/inject/mask.js';

async function maskChunks(secrets: Buffer[], chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const stream = Readable.from(chunks, { objectMode: false }).pipe(createMaskStream(secrets));
  for await (const chunk of stream) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

/** Reference implementation: mask the union of all occurrence ranges, one marker per merged range. */
function maskAll(secrets: Buffer[], data: Buffer): Buffer {
  const ranges: Array<[number, number]> = [];
  for (const s of secrets.filter(isMaskable)) {
    for (let at = data.indexOf(s); at !== -1; at = data.indexOf(s, at + 1)) ranges.push([at, at + s.length]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [s, e] of ranges) {
    const last = merged.at(-1);
    if (last && s < last[1]) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  const out: Buffer[] = [];
  let pos = 0;
  for (const [s, e] of merged) {
    out.push(data.subarray(pos, s), Buffer.from(MASK_TEXT));
    pos = e;
  }
  out.push(data.subarray(pos));
  return Buffer.concat(out);
}

const CANARY = Buffer.from('ENTRACLAW-CANARY-7f3a9c');

describe('createMaskStream', () => {
  it('masks a canary split at every possible boundary, and with each byte in its own chunk', async () => {
    const data = Buffer.concat([
      Buffer.from('before '),
      CANARY,
      Buffer.from(' middle '),
      CANARY,
      Buffer.from(' after'),
    ]);
    const expected = `before ${MASK_TEXT} middle ${MASK_TEXT} after`;
    for (let cut = 0; cut <= data.length; cut++) {
      const out = await maskChunks([CANARY], [data.subarray(0, cut), data.subarray(cut)]);
      expect(out.toString(), `split at ${cut}`).toBe(expected);
    }
    for (let a = 1; a < data.length; a++) {
      for (let b = a + 1; b < data.length; b += 3) {
        const out = await maskChunks([CANARY], [data.subarray(0, a), data.subarray(a, b), data.subarray(b)]);
        expect(out.toString(), `split at ${a},${b}`).toBe(expected);
      }
    }
    const bytes = [...data].map((byte) => Buffer.from([byte]));
    expect((await maskChunks([CANARY], bytes)).toString()).toBe(expected);
  });

  it('masks a secret at the very start and the very end of the stream', async () => {
    expect((await maskChunks([CANARY], [CANARY])).toString()).toBe(MASK_TEXT);
    expect((await maskChunks([CANARY], [Buffer.from('x'), CANARY])).toString()).toBe(`x${MASK_TEXT}`);
  });

  it('flushes a held-back tail that turned out not to be a secret', async () => {
    const partial = CANARY.subarray(0, CANARY.length - 1);
    expect((await maskChunks([CANARY], [Buffer.from('end: '), partial])).toString()).toBe(`end: ${partial}`);
  });

  it('cut() drops a trailing start of a secret that end() would have shown, and keeps everything else', async () => {
    const cutAfter = async (secrets: Buffer[], chunks: string[]) => {
      const stream = createMaskStream(secrets);
      const out: Buffer[] = [];
      stream.on('data', (c: Buffer) => out.push(c));
      const ended = new Promise((r) => stream.on('end', r));
      for (const chunk of chunks) stream.write(Buffer.from(chunk));
      stream.cut();
      await ended;
      return Buffer.concat(out).toString();
    };
    const start = CANARY.subarray(0, 9).toString();
    expect(await cutAfter([CANARY], [`x ${CANARY} y `, start])).toBe(`x ${MASK_TEXT} y `);
    expect(await cutAfter([CANARY], ['end: ', start, 'no'])).toBe(`end: ${start}no`);
    // "efgh" may begin the second secret; "ef" is already inside the first one's marker.
    const two = [Buffer.from('abcdef'), Buffer.from('efghij')];
    expect(await cutAfter(two, ['>abcdef', 'gh'])).toBe(`>${MASK_TEXT}`);
  });

  it('matches the longest secret first: a shorter secret inside a longer one does not split it', async () => {
    const out = await maskChunks(
      [Buffer.from('pass'), Buffer.from('password123')],
      [Buffer.from('x password123 pass y')],
    );
    expect(out.toString()).toBe(`x ${MASK_TEXT} ${MASK_TEXT} y`);
  });

  it('merges overlapping occurrences of different secrets so no byte of either leaks', async () => {
    const out = await maskChunks(
      [Buffer.from('abcdef'), Buffer.from('efghij')],
      [Buffer.from('>abcdefghij<')],
    );
    expect(out.toString()).toBe(`>${MASK_TEXT}<`);
  });

  it('merges an overlap that straddles a chunk boundary into the marker already sent', async () => {
    const out = await maskChunks(
      [Buffer.from('abcdef'), Buffer.from('efghij')],
      [Buffer.from('>abcdef'), Buffer.from('ghij<')],
    );
    expect(out.toString()).toBe(`>${MASK_TEXT}<`);
  });

  it('remembers the marker already sent across an empty write', async () => {
    const stream = createMaskStream([Buffer.from('abcdef'), Buffer.from('efghij')]);
    const out: Buffer[] = [];
    stream.on('data', (c: Buffer) => out.push(c));
    const ended = new Promise((r) => stream.on('end', r));
    for (const part of ['>abcdef', '', 'ghij<']) stream.write(Buffer.from(part));
    stream.end();
    await ended;
    expect(Buffer.concat(out).toString()).toBe(`>${MASK_TEXT}<`);
  });

  it('keeps back-to-back occurrences as separate markers', async () => {
    const out = await maskChunks([Buffer.from('s3cr')], [Buffer.from('s3crs3cr')]);
    expect(out.toString()).toBe(MASK_TEXT + MASK_TEXT);
  });

  it(`does not mask secrets shorter than ${MIN_MASKED_BYTES} bytes`, async () => {
    expect(isMaskable(Buffer.from('abc'))).toBe(false);
    expect(isMaskable(Buffer.from('abcd'))).toBe(true);
    const out = await maskChunks([Buffer.from('abc'), Buffer.from('')], [Buffer.from('abc abcd')]);
    expect(out.toString()).toBe('abc abcd');
  });

  it('masks binary secrets in binary output', async () => {
    const key = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x00]);
    const out = await maskChunks([key], [Buffer.from([1, 0x00, 0xff]), Buffer.from([0x10, 0x80, 0x00, 2])]);
    expect(out).toEqual(Buffer.concat([Buffer.from([1]), Buffer.from(MASK_TEXT), Buffer.from([2])]));
  });

  it('passes output through untouched when there is nothing to mask', async () => {
    const chunks = [Buffer.from('hello '), Buffer.from('world')];
    expect((await maskChunks([], chunks)).toString()).toBe('hello world');
  });

  it('holds back only an end that could begin a secret, never more than the longest secret minus one byte', async () => {
    const stream = createMaskStream([CANARY, Buffer.from('ENTRY-POINT')]);
    const seen: Buffer[] = [];
    stream.on('data', (c: Buffer) => seen.push(c));
    const shown = async (chunk: string) => {
      stream.write(Buffer.from(chunk));
      await new Promise((r) => setImmediate(r));
      return Buffer.concat(seen.splice(0)).toString();
    };
    expect(await shown('listening on :8080\n')).toBe('listening on :8080\n');
    expect(await shown('a'.repeat(1000))).toBe('a'.repeat(1000));
    expect(await shown('ready. ENTR')).toBe('ready. ');
    expect(await shown('ACLAW-CANARY-7f3a9')).toBe('');
    expect(await shown('!')).toBe('ENTRACLAW-CANARY-7f3a9!');
    expect(await shown(`x${CANARY.subarray(0, -1)}`)).toBe('x');
    expect(await shown('c')).toBe(MASK_TEXT);
  });

  it('holds back the start of a secret that follows a failed partial match of it', async () => {
    // "ababa" ends in "aba", the start of "abaabx", though matching from its first "a" fails at the 4th byte.
    const out = await maskChunks([Buffer.from('abaabx')], [Buffer.from('ababa'), Buffer.from('abx!')]);
    expect(out.toString()).toBe(`ab${MASK_TEXT}!`);
  });

  it('agrees with a whole-buffer reference on random data and random chunking', async () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = Buffer.from('abcx');
    for (let round = 0; round < 600; round++) {
      // Half the rounds use longer secrets of two letters: many ends of a chunk then begin one.
      const [letters, longest] = round % 2 ? [2, 12] : [3, 6];
      const secrets = Array.from({ length: 1 + rand(3) }, () =>
        Buffer.from(Array.from({ length: 2 + rand(longest) }, () => alphabet[rand(letters)] as number)),
      );
      const data = Buffer.from(
        Array.from({ length: rand(60 * letters) }, () => alphabet[rand(letters + 1)] as number),
      );
      const chunks: Buffer[] = [];
      for (let at = 0; at < data.length; ) {
        const size = 1 + rand(9);
        chunks.push(data.subarray(at, at + size));
        at += size;
      }
      const got = await maskChunks(secrets, chunks);
      expect(got.toString(), `secrets=${secrets.join(',')} data=${data}`).toBe(
        maskAll(secrets, data).toString(),
      );
    }
  });
});
