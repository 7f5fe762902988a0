import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// docs/security-tests.md tells a reviewer which test tries to break each security case, as
// `FILE -t "NAME"`. A renamed or removed test must not leave the doc pointing at nothing.
const root = new URL('../../', import.meta.url);
const doc = readFileSync(new URL('docs/security-tests.md', root), 'utf8');
const refs = [...doc.matchAll(/`(test\/[\w/.-]+\.test\.ts)`(?: -t "([^"]+)")?/g)].map((m) => ({
  file: m[1]!,
  name: m[2],
}));

describe('docs/security-tests.md', () => {
  it('names a test for each of the 20 cases', () => {
    for (let n = 1; n <= 20; n++) expect(doc).toMatch(new RegExp(`^\\| ${n} \\| .*\`test/`, 'm'));
  });

  it('points only at test files that exist, and at titles those files hold', () => {
    expect(refs.length).toBeGreaterThan(40);
    for (const { file, name } of refs) {
      const path = new URL(file, root);
      expect(existsSync(path), file).toBe(true);
      // The title's text as written in the file (some titles are template literals around it).
      if (name !== undefined) expect(readFileSync(path, 'utf8'), `${file} -t "${name}"`).toContain(name);
    }
  });
});
