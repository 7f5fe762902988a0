import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder } from '../../src/daemon/frame.js';
import { MAX_FRAME } from '../../src/daemon/protocol.js';

// A raw frame from its parts, so malformed frames can be built that encodeFrame would never produce.
function raw(
  json: Buffer,
  attachment = Buffer.alloc(0),
  length = 4 + json.length + attachment.length,
): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(length, 0);
  head.writeUInt32BE(json.length, 4);
  return Buffer.concat([head, json, attachment]);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('encodeFrame', () => {
  it('lays out L, J, JSON and attachment big-endian', () => {
    const frame = encodeFrame({ id: 1 }, Buffer.from([0xde, 0xad]));
    const json = Buffer.from('{"id":1}');
    expect(frame.readUInt32BE(0)).toBe(4 + json.length + 2);
    expect(frame.readUInt32BE(4)).toBe(json.length);
    expect(frame.subarray(8, 8 + json.length).toString()).toBe('{"id":1}');
    expect([...frame.subarray(8 + json.length)]).toEqual([0xde, 0xad]);
  });

  it('produces the documented hello bytes', () => {
    const hex = encodeFrame({ v: 1, op: 'hello', id: 0 }).toString('hex');
    // The dump in docs/protocol.md: L = 31, J = 27, then the JSON.
    expect(hex).toBe('0000001f0000001b7b2276223a312c226f70223a2268656c6c6f222c226964223a307d');
  });

  it('refuses a frame over MAX_FRAME with too_large', () => {
    expect(codeOf(() => encodeFrame({ id: 1 }, Buffer.alloc(MAX_FRAME)))).toBe('too_large');
    expect(() => encodeFrame({}, Buffer.alloc(MAX_FRAME - 4 - 2))).not.toThrow();
  });
});

describe('FrameDecoder', () => {
  it('decodes a frame pushed in one chunk', () => {
    const d = new FrameDecoder();
    const frames = d.push(encodeFrame({ id: 7, op: 'get' }, Buffer.from('secret')));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.json).toEqual({ id: 7, op: 'get' });
    expect(frames[0]!.attachment.toString()).toBe('secret');
    expect(d.buffered).toBe(0);
  });

  it('decodes frames split at every byte boundary', () => {
    const whole = Buffer.concat([encodeFrame({ id: 1 }, Buffer.from([0, 1, 2])), encodeFrame({ id: 2 })]);
    for (let cut = 1; cut < whole.length; cut++) {
      const d = new FrameDecoder();
      const first = d.push(Buffer.from(whole.subarray(0, cut)));
      const second = d.push(Buffer.from(whole.subarray(cut)));
      expect([...first, ...second].map((f) => f.json.id)).toEqual([1, 2]);
      expect(d.buffered).toBe(0);
    }
  });

  it('decodes one byte at a time and reports what is buffered', () => {
    const frame = encodeFrame({ id: 'abc' }, Buffer.from('xyz'));
    const d = new FrameDecoder();
    for (let i = 0; i < frame.length - 1; i++) {
      expect(d.push(Buffer.from([frame[i]!]))).toEqual([]);
      expect(d.buffered).toBe(i + 1);
    }
    const out = d.push(Buffer.from([frame[frame.length - 1]!]));
    expect(out[0]!.json).toEqual({ id: 'abc' });
    expect(out[0]!.attachment.toString()).toBe('xyz');
  });

  it('returns several frames from one chunk and keeps the rest', () => {
    const a = encodeFrame({ id: 1 });
    const b = encodeFrame({ id: 2 });
    const c = encodeFrame({ id: 3 });
    const d = new FrameDecoder();
    const out = d.push(Buffer.concat([a, b, c.subarray(0, 5)]));
    expect(out.map((f) => f.json.id)).toEqual([1, 2]);
    expect(d.buffered).toBe(5);
    expect(d.push(Buffer.from(c.subarray(5))).map((f) => f.json.id)).toEqual([3]);
  });

  it('accepts a frame of exactly MAX_FRAME', () => {
    const d = new FrameDecoder();
    const frame = encodeFrame({}, Buffer.alloc(MAX_FRAME - 4 - 2, 0x61));
    expect(frame.readUInt32BE(0)).toBe(MAX_FRAME);
    expect(d.push(frame)[0]!.attachment.length).toBe(MAX_FRAME - 6);
  });

  it('refuses an oversize length as soon as the 4 length bytes arrive, before buffering the body', () => {
    const d = new FrameDecoder();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(MAX_FRAME + 1, 0);
    expect(d.push(head.subarray(0, 3))).toEqual([]);
    expect(codeOf(() => d.push(head.subarray(3)))).toBe('too_large');
    expect(d.buffered).toBe(0);
  });

  it('refuses 0xffffffff without allocating it', () => {
    expect(codeOf(() => new FrameDecoder().push(Buffer.from([0xff, 0xff, 0xff, 0xff])))).toBe('too_large');
  });

  it('stays failed after an error: the stream is out of step', () => {
    const d = new FrameDecoder();
    expect(codeOf(() => d.push(Buffer.from([0xff, 0xff, 0xff, 0xff])))).toBe('too_large');
    expect(codeOf(() => d.push(encodeFrame({ id: 1 })))).toBe('too_large');
  });

  it.each([
    ['a length too short to hold J and {}', raw(Buffer.from('{}'), Buffer.alloc(0), 5)],
    [
      'J larger than the frame',
      (() => {
        const f = raw(Buffer.from('{}'));
        f.writeUInt32BE(99, 4);
        return f;
      })(),
    ],
    ['JSON that does not parse', raw(Buffer.from('{"id":'))],
    ['invalid UTF-8', raw(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))],
    ['a JSON array', raw(Buffer.from('[1,2]'))],
    ['JSON null', raw(Buffer.from('null'))],
    ['a JSON string', raw(Buffer.from('"hi"'))],
  ])('refuses %s with bad_request', (_name, frame) => {
    expect(codeOf(() => new FrameDecoder().push(frame))).toBe('bad_request');
  });

  it('zeroes the consumed bytes of pushed chunks (they may hold a secret)', () => {
    const chunk = encodeFrame({ id: 1, op: 'set' }, Buffer.from('hunter2'));
    const d = new FrameDecoder();
    const [frame] = d.push(chunk);
    expect(frame!.attachment.toString()).toBe('hunter2');
    expect(chunk.every((b) => b === 0)).toBe(true);
  });

  it('zeroes the unread rest of a chunk when it fails', () => {
    const chunk = Buffer.concat([
      raw(Buffer.from('{"id":')),
      encodeFrame({ id: 2, op: 'set' }, Buffer.from('secret')),
    ]);
    const d = new FrameDecoder();
    expect(codeOf(() => d.push(chunk))).toBe('bad_request');
    expect(chunk.every((b) => b === 0)).toBe(true);
    expect(d.buffered).toBe(0);
  });
});
