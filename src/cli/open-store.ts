import { itemName } from '../lib/percent.js';
import { type Selection, selectStore } from '../store/select.js';
import { type StoreOptions, storeContext } from './context.js';
import { note } from './output.js';

/**
 * Opens the store a command should use and tells the user on stderr when `auto` passed one over; with
 * --json stderr carries only the JSON error, if any, so the note is left out there.
 */
export async function openStore(opts: StoreOptions & { json?: boolean }): Promise<Selection> {
  const { ctx, requested } = await storeContext(opts);
  const sel = await selectStore(ctx, requested);
  if (!opts.json)
    for (const s of sel.skipped) note(`${s.name} not used (${s.reason}); using ${sel.store.name}`);
  return sel;
}

/** Closes every store of a selection. */
export async function closeSelection(sel: Selection): Promise<void> {
  await Promise.all([sel.store.close(), ...sel.readFirst.map((s) => s.close())]);
}

/**
 * After a write or delete in `sel.store`: says when a store read first (systemd-creds under
 * $CREDENTIALS_DIRECTORY) holds the same item, since reads keep returning that one.
 */
export async function noteShadowed(sel: Selection, service: string, account: string): Promise<void> {
  for (const first of sel.readFirst) {
    const item = await first.get(service, account).catch(() => undefined);
    if (!item) continue;
    item.value.fill(0);
    note(
      `note: ${first.name} also has ${itemName(service, account)} and is read first while $CREDENTIALS_DIRECTORY is set: reads return its value, not ${sel.store.name}'s`,
    );
  }
}
