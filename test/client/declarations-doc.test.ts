// What a user's editor shows from the installed package's declarations: each code a BrokerError can
// carry, with what it means, and its hint and pendingId, without docs/protocol.md at hand.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WIRE_ERROR_CODES } from '../../src/daemon/frame.js';
import { REPO } from '../support/broker.js';

const dts = readFileSync(join(REPO, 'dist', 'client', 'index.d.ts'), 'utf8');
// The doc comment right above a declaration in the built d.ts.
const docOf = (declaration: string): string => {
  const at = dts.indexOf(declaration);
  expect(at, declaration).toBeGreaterThan(-1);
  const before = dts.slice(0, at).trimEnd();
  expect(before.endsWith('*/'), `a doc comment above ${declaration}`).toBe(true);
  return before.slice(before.lastIndexOf('/**'));
};

describe("the SDK's declarations (dist/client/index.d.ts)", () => {
  it('say what each BrokerErrorCode means', () => {
    const doc = docOf('export type BrokerErrorCode');
    for (const code of WIRE_ERROR_CODES) expect(doc).toMatch(new RegExp(`\\* - \`${code}\`: \\w`));
  });

  it("say what a BrokerError's code, hint and pendingId are", () => {
    expect(docOf('readonly code: BrokerErrorCode;')).toContain('BrokerErrorCode');
    expect(docOf('readonly hint?: string')).toContain('what to do');
    expect(docOf('readonly pendingId?: string')).toContain('pending');
  });
});
