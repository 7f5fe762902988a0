import { isatty } from 'node:tty';
import { type AgentConfig, defaultAgentConfig, loadAgentConfig } from '../config/agent-config.js';
import { EntraclawError } from '../errors.js';
import { LOCK_TIMEOUT_MS } from '../lib/file-lock.js';
import { resolvePaths } from '../lib/paths.js';
import { storeRequest } from '../store/registry.js';
import type { StoreContext, StoreName } from '../store/types.js';
import { note } from './output.js';

/** Options every store-touching command accepts. */
export interface StoreOptions {
  store?: string;
  passphraseFile?: string;
}

/**
 * Builds the store context and the requested store name from flags, config and environment; returns the
 * config read. An invalid agent.toml throws, unless `tolerant` (doctor, which must still diagnose): then
 * the defaults stand in and the error comes back as `configError`.
 */
export async function storeContext(
  opts: StoreOptions,
  tolerant = false,
): Promise<{
  ctx: StoreContext;
  requested: 'auto' | StoreName;
  /** Where `requested` came from, for messages. */
  requestedBy: '--store' | 'ENTRACLAW_STORE' | 'agent.toml';
  config: AgentConfig;
  configError?: EntraclawError;
}> {
  const env = process.env;
  const paths = resolvePaths(env);
  let config: AgentConfig;
  let configError: EntraclawError | undefined;
  try {
    config = await loadAgentConfig(paths.config);
  } catch (err) {
    if (!tolerant || !(err instanceof EntraclawError)) throw err;
    configError = err;
    config = defaultAgentConfig();
  }
  // `--store=` (empty) is a mistake to report, not a request for auto; an empty ENTRACLAW_STORE= means
  // unset, as for most variables.
  const requestedBy =
    opts.store !== undefined ? '--store' : env.ENTRACLAW_STORE ? 'ENTRACLAW_STORE' : 'agent.toml';
  const requested =
    requestedBy === '--store'
      ? storeRequest(opts.store ?? '', '--store')
      : requestedBy === 'ENTRACLAW_STORE'
        ? storeRequest(env.ENTRACLAW_STORE ?? '', 'ENTRACLAW_STORE')
        : storeRequest(config.credentials.store, 'agent.toml [credentials] store');
  const ctx: StoreContext = {
    env,
    paths,
    // isatty(), not process.stdin.isTTY: creating the stdin stream costs `secret get` ~3 ms of start-up.
    interactive: isatty(0) && isatty(2),
    timeoutMs: config.credentials.timeout_ms,
    onLockWait: (lockPath, holder) =>
      note(`waiting for ${lockPath}, held by ${holder}; gives up after ${LOCK_TIMEOUT_MS / 1000} s`),
    ...(opts.passphraseFile ? { passphraseFile: opts.passphraseFile } : {}),
  };
  return { ctx, requested, requestedBy, config, ...(configError ? { configError } : {}) };
}
