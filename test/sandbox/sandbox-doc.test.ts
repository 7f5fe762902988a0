import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseProfile } from '../../src/sandbox/profile.js';

// Every TOML profile in docs/sandbox.md must load, with the grants the text describes.
const doc = readFileSync(new URL('../../docs/sandbox.md', import.meta.url), 'utf8');
const tomlBlocks = [...doc.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('docs/sandbox.md', () => {
  it('every profile in it parses', async () => {
    expect(tomlBlocks.length).toBeGreaterThanOrEqual(3);
    for (const block of tomlBlocks) await parseProfile(block, 'docs/sandbox.md');
  });

  it('the OAuth agent example grants read, write and delete on one item, nothing more', async () => {
    const example = tomlBlocks.find((b) => b.includes('accounts = ["me"]'))!;
    const p = await parseProfile(example, 'docs/sandbox.md');
    expect(p.grants).toEqual([
      {
        services: ['example-agent-credentials'],
        servicePrefixes: [],
        accounts: ['me'],
        operations: ['read', 'create', 'update', 'delete'],
        source: 'profile',
      },
    ]);
    expect(p.allowPaths).toEqual(['/home/me/.cache/example-agent']);
  });

  it('the nono side by side converts to the same grant', async () => {
    const json = /```json\n([\s\S]*?)```/.exec(doc)![1]!;
    const nono = JSON.parse(`{${json}}`).credential_access[0];
    const toml = tomlBlocks.find((b) => b.startsWith('[[credential_access]]'))!;
    const [grant] = (await parseProfile(toml, 'docs/sandbox.md')).grants;
    expect(grant).toMatchObject({
      services: nono.services,
      servicePrefixes: nono.service_prefixes,
      accounts: nono.accounts,
    });
  });
});
