import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INJECTION_NAMES, INJECTION_PREFIXES } from '../../src/inject/env.js';
import { MASK_TEXT, MIN_MASKED_BYTES } from '../../src/inject/mask.js';
import { DRAIN_LIMIT_MS, QUIET_MS } from '../../src/inject/masked-pipe.js';
import { parseReference } from '../../src/inject/reference.js';

// docs/injection.md states the masking rule and the blocked variables: keep it equal to the code.
const doc = readFileSync(new URL('../../docs/injection.md', import.meta.url), 'utf8');

describe('docs/injection.md', () => {
  it('names every loader/injection variable the code refuses', () => {
    for (const name of INJECTION_NAMES) expect(doc).toContain(`\`${name}\``);
    for (const prefix of INJECTION_PREFIXES) expect(doc).toContain(`\`${prefix}*\``);
  });

  it('states the marker and the shortest masked secret', () => {
    expect(doc).toContain(`\`${MASK_TEXT}\``);
    expect(doc).toContain(`shorter than ${MIN_MASKED_BYTES} bytes are not masked`);
  });

  it('states how long run reads a pipe that outlives the command', () => {
    expect(doc).toContain(`silent for ${QUIET_MS} ms, at most ${DRAIN_LIMIT_MS / 1000} s`);
  });

  it('its reference examples parse as described', () => {
    expect(parseReference('entraclaw://my%2Fsvc/me')).toEqual({ service: 'my/svc', account: 'me' });
    expect(parseReference('entraclaw://my%2fsvc/%6De')).toEqual({ service: 'my/svc', account: 'me' });
    expect(parseReference('entraclaw://db/pass%20word')).toEqual({ service: 'db', account: 'pass word' });
  });
});
