import { EntraclawError, TooLargeError, UsageError } from '../errors.js';
import { native } from '../lib/native.js';
import { promptHidden } from '../lib/passphrase.js';
import { itemName } from '../lib/percent.js';
import { visible } from '../lib/visible.js';
import { assertItemName, assertItemText, parseKind, parseTimestamp } from '../store/item-rules.js';
import { MAX_VALUE_BYTES } from '../store/types.js';
import type { StoreOptions } from './context.js';
import { closeSelection, noteShadowed, openStore } from './open-store.js';
import { note, printJson } from './output.js';
import { readBounded, readValueFile } from './read-input.js';

/** Options of `entraclaw secret set`. */
export interface SecretSetOptions extends StoreOptions {
  kind?: string;
  expiresAt?: string;
  scope?: string;
  label?: string;
  fromFile?: string;
  json?: boolean;
}

// Enough for a pasted token, key or certificate; anything larger belongs in a file (--from-file).
const MAX_TYPED_BYTES = 64 * 1024;

/** `entraclaw secret set SERVICE ACCOUNT`: stores the value read from stdin, a file, or a hidden prompt. */
export async function secretSet(service: string, account: string, opts: SecretSetOptions): Promise<void> {
  // A value is about to be in memory: a crash must not write it to a core file (the daemon's own rule).
  native().noCoreDump();
  assertItemName(service, 'service');
  assertItemName(account, 'account');
  // Node reads argv as UTF-8 and turns bytes that are not into U+FFFD, so `a\xff` and `a\xfe` would both
  // become one item: refuse to create a name whose bytes were lost.
  for (const [what, name] of [
    ['service', service],
    ['account', account],
  ] as const) {
    if (name.includes('\uFFFD')) {
      throw new UsageError(
        `the ${what} name contains U+FFFD, the mark of bytes that are not UTF-8: its bytes were lost on the command line`,
        'use a UTF-8 name',
      );
    }
  }
  assertItemText(opts.label, 'label');
  assertItemText(opts.scope, 'scope');
  const kind = parseKind(opts.kind);
  const expiresAt = parseTimestamp(opts.expiresAt, '--expires-at');
  const what = `the value for ${itemName(service, account)}`;
  // `-` is stdin, as for `inject -i -`.
  const fromFile = opts.fromFile === '-' ? undefined : opts.fromFile;
  const typed = fromFile === undefined && process.stdin.isTTY === true;
  const value =
    fromFile !== undefined
      ? readValueFile(fromFile, MAX_VALUE_BYTES, what)
      : typed
        ? await promptHidden(
            `Secret for ${itemName(service, account)}: `,
            { input: process.stdin, output: process.stderr },
            MAX_TYPED_BYTES,
          )
        : readStdin(what);
  const endsInNewline = !typed && value.at(-1) === 0x0a;
  if (value.length === 0) {
    throw new UsageError(
      `refusing to store an empty value for ${itemName(service, account)}${fromFile !== undefined ? `: ${fromFile} is empty` : ''}`,
      fromFile !== undefined
        ? 'put the value in the file, or pipe it on stdin'
        : 'pipe the value on stdin or use --from-file',
    );
  }
  const sel = await openStore(opts);
  try {
    const store = sel.store;
    if (value.length > store.maxValueBytes) {
      throw new TooLargeError(
        `the value for ${itemName(service, account)} is ${value.length} bytes; ${store.name} holds at most ${store.maxValueBytes}`,
        'use --store encrypted-file or --store secret-service for large values',
      );
    }
    // Metadata is what this command says, not carried over: say so when that drops any the item had.
    // (`--kind token` alone on a rotation drops the old expiry and scope too, so look unless all are given.)
    const before =
      kind && expiresAt && opts.scope && opts.label ? undefined : await store.get(service, account);
    before?.value.fill(0);
    const meta = await store.set({
      service,
      account,
      value,
      ...(kind ? { kind } : {}),
      ...(expiresAt ? { expiresAt } : {}),
      ...(opts.scope ? { scope: opts.scope } : {}),
      ...(opts.label ? { label: opts.label } : {}),
    });
    value.fill(0);
    if (opts.json) printJson({ ...meta, store: store.name });
    else {
      note(`stored ${itemName(service, account)} in ${store.name}`);
      if (expiresAt !== undefined && Date.parse(expiresAt) <= Date.now()) {
        note(
          `warning: --expires-at ${expiresAt} has passed: the item is stored already expired (reads exit 6)`,
        );
      }
      // `echo TOKEN |` and files saved by editors end in a newline that is rarely part of the secret, and
      // in an environment variable or an HTTP header it breaks the secret. Values are bytes, kept as given.
      if (endsInNewline) {
        note(
          'note: the value ends with a newline (as `echo` and most editors add) and was stored with it; if the newline is not part of the secret, store it again with `printf %s "$VALUE" |` or a file without one',
        );
      }
      const dropped = [
        ...(before && !kind && before.kind !== 'password' ? [`kind ${before.kind}`] : []),
        ...(before?.expiresAt && !expiresAt ? [`expiry ${before.expiresAt}`] : []),
        ...(before?.scope && !opts.scope ? [`scope ${before.scope}`] : []),
        ...(before?.label && !opts.label && before.label !== meta.label
          ? [`label "${visible(before.label)}"`]
          : []),
      ];
      if (dropped.length > 0) {
        note(
          `note: the value it replaced had ${dropped.join(', ')}; this one has none of them${kind ? '' : ' and is a password'} (give --kind, --expires-at, --scope, --label to set them)`,
        );
      }
      // A rotation written to the fallback while the usual store is away: `auto` reads that store again
      // once it is back, and an older copy there would win.
      for (const s of sel.skipped) {
        note(
          `note: auto reads ${s.name} instead of ${sel.store.name} whenever ${s.name} is usable again: this copy is then read only with --store ${sel.store.name}, and an older copy in ${s.name} wins; store it there too once it is back`,
        );
      }
    }
    await noteShadowed(sel, service, account);
  } finally {
    await closeSelection(sel);
  }
}

// A read error on stdin (a closed or broken pipe, EIO from a hung-up terminal) is the input's, not ours.
function readStdin(what: string): Buffer {
  try {
    return readBounded(0, MAX_VALUE_BYTES, what);
  } catch (err) {
    if (err instanceof EntraclawError) throw err;
    throw new UsageError(
      `cannot read ${what} from stdin: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      'pipe the value on stdin or use --from-file',
    );
  }
}
