// Durations as people type them in the CLI and policy.toml: a whole number and one unit.

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** What a duration looks like, for error hints. */
export const DURATION_FORMAT = 'a positive number and a unit (s, m, h, d, w): 30s, 10m, 8h, 7d, 2w';

/** Milliseconds in `text` such as `30m`, `12h`, `7d`; undefined when it is not a positive duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)([smhdw])$/.exec(text.trim());
  const ms = m ? Number(m[1]) * UNITS[m[2]!]! : 0;
  return m && ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}
