import { assertItemName, isExpired } from '../store/item-rules.js';
import type { StoreOptions } from './context.js';
import { closeSelection, openStore } from './open-store.js';
import { note, printJson } from './output.js';
import { printTable } from './table.js';

/** `entraclaw secret ls [--service S]`: item metadata only, never values. */
export async function secretLs(opts: StoreOptions & { service?: string; json?: boolean }): Promise<void> {
  // Before the store: a bad filter is said without first asking for the vault passphrase.
  if (opts.service !== undefined) assertItemName(opts.service, 'service');
  const sel = await openStore(opts);
  try {
    const filter = opts.service !== undefined ? { service: opts.service } : undefined;
    const rows = [];
    for (const store of [...sel.readFirst, sel.store]) {
      for (const meta of await store.list(filter))
        rows.push({ ...meta, store: store.name, expired: isExpired(meta) });
    }
    if (opts.json) return printJson(rows);
    printTable([
      ['SERVICE', 'ACCOUNT', 'KIND', 'EXPIRES', 'UPDATED', 'STORE'],
      ...rows.map((r) => [
        r.service,
        r.account,
        r.kind,
        r.expiresAt ? `${r.expiresAt}${r.expired ? ' (expired)' : ''}` : '-',
        r.updatedAt,
        r.store,
      ]),
    ]);
    for (const u of sel.unsearched)
      note(
        `note: ${u.name} (${u.where}) also has items; auto does not read it while ${sel.store.name} is usable: entraclaw secret ls --store ${u.name}`,
      );
  } finally {
    await closeSelection(sel);
  }
}
