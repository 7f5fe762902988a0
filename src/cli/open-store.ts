import { type Selection, selectStore } from '../store/select.js';
import { type StoreOptions, storeContext } from './context.js';
import { note } from './output.js';

/** Opens the store a command should use and tells the user on stderr when `auto` passed one over. */
export async function openStore(opts: StoreOptions): Promise<Selection> {
  const { ctx, requested } = await storeContext(opts);
  const sel = await selectStore(ctx, requested);
  for (const s of sel.skipped) note(`${s.name} not used (${s.reason}); using ${sel.store.name}`);
  return sel;
}

/** Closes every store of a selection. */
export async function closeSelection(sel: Selection): Promise<void> {
  await Promise.all([sel.store.close(), ...sel.readFirst.map((s) => s.close())]);
}
