import { NotFoundError } from '../errors.js';
import { native } from '../lib/native.js';
import { itemName } from '../lib/percent.js';
import { assertFresh, assertItemName } from '../store/item-rules.js';
import { elsewhereHint, forgetfulStoreNote } from '../store/select.js';
import type { Item, Store } from '../store/types.js';
import type { StoreOptions } from './context.js';
import { closeSelection, openStore } from './open-store.js';
import { printJson } from './output.js';

/** Options of `entraclaw secret get`. */
export interface SecretGetOptions extends StoreOptions {
  json?: boolean;
  allowExpired?: boolean;
}

/** `entraclaw secret get SERVICE ACCOUNT`: the raw value on stdout (no newline added), or metadata + base64 with --json. */
export async function secretGet(service: string, account: string, opts: SecretGetOptions): Promise<void> {
  // A value is about to be in memory: a crash must not write it to a core file (the daemon's own rule).
  native().noCoreDump();
  assertItemName(service, 'service');
  assertItemName(account, 'account');
  const sel = await openStore(opts);
  try {
    let found: { item: Item; store: Store } | undefined;
    for (const store of [...sel.readFirst, sel.store]) {
      const item = await store.get(service, account);
      if (item) {
        found = { item, store };
        break;
      }
    }
    if (!found) {
      const elsewhere = await elsewhereHint(sel, service, account);
      const forgotten = forgetfulStoreNote(sel.store.name);
      throw new NotFoundError(
        `${itemName(service, account)} not found in ${sel.store.name}`,
        // Node turns argv bytes that are not UTF-8 into U+FFFD: the name asked for is not the one typed.
        `${service}${account}`.includes('\uFFFD')
          ? 'the name contains U+FFFD, the mark of bytes that are not UTF-8, lost on the command line: items are named in UTF-8'
          : sel.store.readOnly
            ? `check the names with \`entraclaw secret ls\`; ${sel.store.name} is read-only: a credential named SERVICE@ACCOUNT (each part percent-encoded) in $CREDENTIALS_DIRECTORY is item SERVICE/ACCOUNT`
            : (elsewhere ??
              `check the names with \`entraclaw secret ls\`, or store it with \`entraclaw secret set\`${forgotten ? ` (${forgotten})` : ''}`),
      );
    }
    const { item, store } = found;
    assertFresh(item, store.name, Boolean(opts.allowExpired));
    if (opts.json) {
      const { value, ...meta } = item;
      printJson({ ...meta, store: store.name, value_base64: value.toString('base64') });
    } else {
      await new Promise<void>((resolve, reject) =>
        process.stdout.write(item.value, (e) => (e ? reject(e) : resolve())),
      );
    }
    item.value.fill(0);
  } finally {
    await closeSelection(sel);
  }
}
