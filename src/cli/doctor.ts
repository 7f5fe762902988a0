import { autoOrder, probeAll, systemdCredsPresent } from '../store/select.js';
import type { StoreProbe } from '../store/types.js';
import { storeContext } from './context.js';
import { printJson, printTable } from './output.js';

const PERSISTENCE: Record<StoreProbe['persistence'], string> = {
  'until-delete': 'persistent (until deleted)',
  'until-reboot': 'RAM only, gone at reboot',
  'process-only': 'for the life of the service',
};

/** `entraclaw doctor`: every store, whether it is usable and why, how long it keeps data, its boundary, and which is selected. */
export async function doctor(opts: { store?: string; json?: boolean }): Promise<void> {
  const { ctx, requested } = await storeContext(opts);
  const probes = await probeAll(ctx);
  const selected =
    requested !== 'auto'
      ? requested
      : autoOrder(process.platform).find((n) => probes.find((p) => p.name === n)?.available);
  const readFirst = requested === 'auto' && systemdCredsPresent(ctx.env) ? 'systemd-creds' : undefined;
  const rows = probes.map((p) => ({
    ...p,
    persistenceText: PERSISTENCE[p.persistence],
    selected: p.name === selected,
    readFirst: p.name === readFirst,
  }));
  if (opts.json) return printJson({ requested, selected: selected ?? null, stores: rows });
  printTable([
    ['STORE', 'AVAILABLE', 'SELECTED', 'PERSISTENCE', 'REASON'],
    ...rows.map((r) => [
      r.name,
      r.available ? 'yes' : 'no',
      r.selected ? 'yes' : r.readFirst ? 'reads first' : '',
      r.persistenceText,
      r.reason,
    ]),
  ]);
  process.stdout.write('\nBoundaries:\n');
  for (const r of rows) process.stdout.write(`  ${r.name}: ${r.boundary}\n`);
  process.stdout.write(`\nSelected: ${selected ?? 'none usable'} (config/flag: ${requested})\n`);
}
