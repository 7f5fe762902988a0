import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { resolveReference } from '../inject/resolve.js';
import { renderTemplate } from '../inject/template.js';
import { writeFileAtomic } from '../lib/atomic-write.js';
import type { Selection } from '../store/select.js';
import type { StoreOptions } from './context.js';
import { closeSelection, openStore } from './open-store.js';
import { readBounded } from './read-input.js';

const MAX_TEMPLATE_BYTES = 4 * 1024 * 1024;

/** `entraclaw inject -i TEMPLATE [-o FILE]`: renders `{{ entraclaw://SERVICE/ACCOUNT }}` tags; FILE is written 0600, atomically. */
export async function inject(opts: StoreOptions & { in?: string; out?: string }): Promise<void> {
  const source = opts.in ?? '-';
  let text: Buffer;
  try {
    text = source === '-' ? readBounded(0, MAX_TEMPLATE_BYTES, 'the template') : readFileSync(source);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) {
      throw new UsageError(
        `cannot read template ${source}: ${(err as NodeJS.ErrnoException).code}`,
        'give -i an existing file (or - for stdin)',
      );
    }
    throw err;
  }
  const name = source === '-' ? 'stdin' : source;
  // The store is opened on the first reference only: a template without one needs no store (or passphrase).
  let sel: Promise<Selection> | undefined;
  let out: Buffer;
  try {
    // Rendered from the bytes, so text around the tags is copied exactly even when it is not UTF-8.
    out = await renderTemplate(
      text,
      async (service, account) => {
        sel ??= openStore(opts);
        return resolveReference(await sel, { service, account }, name);
      },
      name,
    );
  } finally {
    // A store that failed to open has nothing to close, and its error is already on its way.
    if (sel) await sel.then(closeSelection, () => undefined);
  }
  // Nothing is written unless every reference resolved: a half-rendered file would be worse than none.
  if (opts.out) writeFileAtomic(opts.out, out, 0o600);
  else
    await new Promise<void>((resolve, reject) =>
      process.stdout.write(out, (e) => (e ? reject(e) : resolve())),
    );
  out.fill(0);
}
