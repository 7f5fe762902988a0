import { EntraclawError, NotFoundError } from '../errors.js';
import { assertFresh, secretSetCommand } from '../store/item-rules.js';
import { elsewhereHint, forgetfulStoreNote, type Selection } from '../store/select.js';
import type { Item } from '../store/types.js';
import { formatReference, type Reference } from './reference.js';

/**
 * Resolves references from the user's stores (systemd credentials first when present, then the selected
 * store). Every error — not found, expired, locked, unavailable — names the reference and, via `where`,
 * the variable or template line that used it.
 */
export async function resolveReference(sel: Selection, ref: Reference, where?: string): Promise<Buffer> {
  const at = where ? `${where}: ` : '';
  for (const store of [...sel.readFirst, sel.store]) {
    let item: Item | undefined;
    try {
      item = await store.get(ref.service, ref.account);
      if (!item) continue;
      assertFresh(item, store.name, false);
    } catch (err) {
      if (!(err instanceof EntraclawError)) throw err;
      // run and inject have no --allow-expired: an expired token handed to a tool only turns into a 401.
      const hint =
        err.code === 'expired' && item
          ? `refresh it with: ${secretSetCommand(ref.service, ref.account, item)}`
          : err.hint;
      throw new EntraclawError(err.code, `${at}${formatReference(ref)}: ${err.message}`, hint, {
        cause: err,
      });
    }
    return item.value;
  }
  const forgotten = forgetfulStoreNote(sel.store.name);
  throw new NotFoundError(
    `${at}${formatReference(ref)} not found in ${sel.store.name}`,
    (await elsewhereHint(sel, ref.service, ref.account)) ??
      `store it with: ${secretSetCommand(ref.service, ref.account)}${forgotten ? ` (${forgotten})` : ''}`,
  );
}
