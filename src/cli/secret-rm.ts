import { NotFoundError } from '../errors.js';
import { itemName } from '../lib/percent.js';
import { assertItemName } from '../store/item-rules.js';
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
      throw new NotFoundError(
        `${itemName(service, account)} not found in ${sel.store.name}`,
        'nothing was deleted; list items with `entraclaw secret ls`',
      );
    }
    if (opts.json) printJson({ service, account, store: sel.store.name, deleted: true });
    else note(`deleted ${itemName(service, account)} from ${sel.store.name}`);
    await noteShadowed(sel, service, account);
  } finally {
    await closeSelection(sel);
  }
}
