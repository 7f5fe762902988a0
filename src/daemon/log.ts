import { visible } from '../lib/visible.js';

/** Severity of a daemon log line. */
export type Level = 'error' | 'warn' | 'info' | 'debug';

// journald reads `<N>` syslog priority prefixes from a service's stderr (sd-daemon(3)); on a terminal
// they would be noise, so they are used only when systemd tells us stderr is the journal.
const PRIORITY: Record<Level, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** A one-line-per-event logger on stderr. Callers pass fingerprints and names, never secret values. */
export type Logger = (level: Level, message: string, fields?: Record<string, unknown>) => void;

/**
 * Creates the daemon logger. Unless verbose, `debug` lines are dropped, and with `quiet` `info` lines too
 * (a broker that shares its stderr with a command, as in the sandbox). Field values are shown with their
 * control and invisible characters escaped: a request id or item name is whatever a client sent, and
 * `agent -v` on a terminal must not let it move the cursor, retitle the window or reorder the line.
 */
export function createLogger(opts: { verbose?: boolean; journal?: boolean; quiet?: boolean } = {}): Logger {
  const journal = opts.journal ?? Boolean(process.env.JOURNAL_STREAM);
  return (level, message, fields) => {
    if (!opts.verbose && (level === 'debug' || (level === 'info' && opts.quiet))) return;
    const kv = fields
      ? Object.entries(fields)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => ` ${k}=${visible(typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v))}`)
          .join('')
      : '';
    const prefix = journal ? `<${PRIORITY[level]}>` : `entraclaw-agent ${level}: `;
    process.stderr.write(`${prefix}${message}${kv}\n`);
  };
}
