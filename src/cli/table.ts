import stringWidth from 'string-width';
import { visible } from '../lib/visible.js';

// Apart from output.ts, which `secret get` loads on every call: only the commands that print tables load
// string-width.

/** Prints aligned columns (first row is the header); every cell goes through visible(). */
export function printTable(table: string[][]): void {
  const rows = table.map((r) => r.map(visible));
  // Padded by the columns a terminal draws (CJK and emoji take two, a combining accent none), not .length.
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => stringWidth(r[i] ?? ''))));
  const pad = (c: string, i: number) => c + ' '.repeat(widths[i]! - stringWidth(c));
  for (const r of rows) {
    process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : pad(c, i))).join('  ')}\n`);
  }
}
