// An application in strict TypeScript compiles against the SDK as npm installs it (a link to the built
// package; its d.ts, checked too: skipLibCheck off), under the module settings applications use: an ES
// module project on nodenext, node16 or bundler, and a CommonJS one on TypeScript's default resolution for
// `module: commonjs` (node10, which ignores `exports`: package.json's typesVersions and types point it at
// the types). The SDK's
// declarations must not pull in zod's, which do not compile without esModuleInterop.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/broker.js';

const dir = mkdtempSync(join(tmpdir(), 'entraclaw-consumer-types-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const app = (
  specifier: string,
) => `import { BrokerError, connect, type Grant, type ItemMeta } from '${specifier}';

export async function main(): Promise<string> {
  const c = await connect({ timeoutMs: 5000 });
  try {
    const token: Buffer = await c.get('github.com', 'me');
    const grants: Grant[] = (await c.whoami()).grants;
    const items: ItemMeta[] = await c.list();
    return token.toString('base64') + grants.map((g) => g.operations.join()).join() + items.length;
  } catch (err) {
    if (!(err instanceof BrokerError)) throw err;
    switch (err.code) {
      case 'pending':
        return err.pendingId ?? '';
      // @ts-expect-error: a misspelt code is not one of BrokerErrorCode
      case 'not-found':
        return '';
      default:
        return err.hint ?? err.code;
    }
  } finally {
    c.close();
  }
}
`;

function compile(
  name: string,
  pkg: object,
  compilerOptions: object,
  specifier: string,
): ReturnType<typeof spawnSync> {
  const project = join(dir, name);
  mkdirSync(join(project, 'node_modules'), { recursive: true });
  symlinkSync(REPO, join(project, 'node_modules', 'entraclaw'));
  symlinkSync(join(REPO, 'node_modules', '@types'), join(project, 'node_modules', '@types'));
  writeFileSync(join(project, 'package.json'), JSON.stringify(pkg));
  writeFileSync(join(project, 'app.ts'), app(specifier));
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        target: 'es2022',
        ...compilerOptions,
      },
      files: ['app.ts'],
    }),
  );
  return spawnSync(join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', project], { timeout: 120_000 });
}

describe('an application compiling against the SDK', () => {
  // The package root is the SDK too (package.json "." and "types"): what a user tries first must resolve
  // under every resolution, the same module as entraclaw/client.
  it.each([
    ['an ES module on nodenext', { type: 'module' }, { module: 'nodenext', moduleResolution: 'nodenext' }],
    ['an ES module on node16', { type: 'module' }, { module: 'node16', moduleResolution: 'node16' }],
    ['a bundler project', { type: 'module' }, { module: 'esnext', moduleResolution: 'bundler' }],
    ['CommonJS on the default resolution (node10)', {}, { module: 'commonjs' }],
  ])(
    '%s: the types resolve and type-check, from entraclaw/client and from entraclaw',
    (name, pkg, options) => {
      for (const specifier of ['entraclaw/client', 'entraclaw']) {
        const r = compile(`${name}-${specifier}`.replace(/\W+/g, '-'), pkg, options, specifier);
        expect(r.status, `${specifier}: ${r.stdout}${r.stderr}`).toBe(0);
      }
    },
    150_000,
  );
});
