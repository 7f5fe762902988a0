import { NotFoundError } from '../errors.js';
import { itemName } from '../lib/percent.js';
import { shellQuote } from '../lib/shell.js';
import { assertItemName } from '../store/item-rules.js';
import { elsewhereHint, passedOver, type Selection } from '../store/select.js';
import type { StoreOptions } from './context.js';
import { closeSelection, noteShadowed, openStore } from './open-store.js';
import { note, printJson } from './output.js';

/** `entraclaw secret rm SERVICE ACCOUNT`: deletes the item; a missing item is exit 3. */
export async function secretRm(
  service: string,
  account: string,
  opts: StoreOptions & { json?: boolean },
): Promise<void> {
  assertItemName(service, 'service');
  assertItemName(account, 'account');
  const sel = await openStore(opts);
  try {
    if (!(await sel.store.delete(service, account))) {
      // A script that takes exit 3 for "already gone" must hear when auto did not look where it may be.
      const elsewhere = await elsewhereHint(sel, service, account);
      throw new NotFoundError(
        `${itemName(service, account)} not found in ${sel.store.name}`,
        `nothing was deleted; ${elsewhere ?? 'list items with `entraclaw secret ls`'}`,
      );
    }
    if (opts.json) printJson({ service, account, store: sel.store.name, deleted: true });
    else {
      note(`deleted ${itemName(service, account)} from ${sel.store.name}`);
      noteNotSearched(sel, service, account);
    }
    await noteShadowed(sel, service, account);
  } finally {
    await closeSelection(sel);
  }
}

// A copy left in a store auto did not open is served again by auto whenever that store is the one it
// uses (the keyring locked, the bus gone): the delete is not done until it is gone there too.
function noteNotSearched(sel: Selection, service: string, account: string): void {
  const item = itemName(service, account);
  const rm = (store: string) =>
    `entraclaw secret rm --store ${store} ${shellQuote(service)} ${shellQuote(account)}`;
  for (const p of passedOver(sel)) {
    note(
      `note: ${p.said} and may still hold ${item}, which auto reads ${p.readWhen}: delete it there too (\`${rm(p.name)}\`)`,
    );
  }
}
