import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHECKOUT = join(import.meta.dirname, '..', '..');
const ADDON = join('build', 'Release', 'entraclaw_native.node');

/** A copy of the build that every user can read and run (see readableBuild). */
export interface ReadableBuild {
  /** The copy's dist/cli/main.cjs. */
  cli: string;
  /** The copy's native addon. */
  addon: string;
  cleanup(): void;
}

/**
 * A copy of the built CLI and native addon (dist/, the addon, package.json and the packages in
 * package.json's dependencies) in a fresh directory every user can read, for a test that runs them as
 * another uid (nobody, when the suite runs as root). The checkout itself may be out of that uid's reach:
 * a fresh CI machine clones into root's home, which is 0700 on Debian.
 */
export function readableBuild(): ReadableBuild {
  const dir = mkdtempSync(join(tmpdir(), 'entraclaw-build-'));
  const { dependencies } = JSON.parse(readFileSync(join(CHECKOUT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const parts = [
    'package.json',
    'dist',
    ADDON,
    ...Object.keys(dependencies).map((d) => join('node_modules', d)),
  ];
  for (const part of parts) cpSync(join(CHECKOUT, part), join(dir, part), { recursive: true });
  // cpSync keeps each mode, and mkdtemp makes 0700: open it all to every user, whatever umask built it.
  const chmod = spawnSync('chmod', ['-R', 'a+rX', dir], { encoding: 'utf8' });
  if (chmod.status !== 0) throw new Error(`chmod -R a+rX ${dir} failed: ${chmod.stderr}`);
  return {
    cli: join(dir, 'dist', 'cli', 'main.cjs'),
    addon: join(dir, ADDON),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
