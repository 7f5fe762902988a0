import { EntraclawError, NotFoundError } from '../errors.js';
import { assertFresh } from '../store/item-rules.js';
import type { Selection } from '../store/select.js';
import { formatReference, type Reference } from './reference.js';

/**
 * Resolves references from the user's stores (systemd credentials first when present, then the selected
 * store). Errors name the reference and, via `where`, the variable or template line that used it.
 */
export async function resolveReference(sel: Selection, ref: Reference, where: string): Promise<Buffer> {
  for (const store of [...sel.readFirst, sel.store]) {
    const item = await store.get(ref.service, ref.account);
    if (!item) continue;
    try {
      assertFresh(item, store.name, false);
    } catch (err) {
      throw new EntraclawError(
        (err as EntraclawError).code,
        `${where}: ${(err as Error).message}`,
        (err as EntraclawError).hint,
      );
    }
    return item.value;
  }
  throw new NotFoundError(
    `${where}: ${formatReference(ref)} not found in ${sel.store.name}`,
    `store it with: entraclaw secret set ${ref.service} ${ref.account}`,
  );
}
