import { type AgentConfig, loadAgentConfig } from '../config/agent-config.js';
import { resolvePaths } from '../lib/paths.js';
import { storeRequest } from '../store/registry.js';
import type { StoreContext, StoreName } from '../store/types.js';

/** Options every store-touching command accepts. */
export interface StoreOptions {
  store?: string;
  passphraseFile?: string;
}

/** Builds the store context and the requested store name from flags, config and environment; returns the config read. */
export async function storeContext(
  opts: StoreOptions,
): Promise<{ ctx: StoreContext; requested: 'auto' | StoreName; config: AgentConfig }> {
  const env = process.env;
  const paths = resolvePaths(env);
  const config = await loadAgentConfig(paths.config);
  // `--store=` (empty) is a mistake to report, not a request for auto; an empty ENTRACLAW_STORE= means
  // unset, as for most variables.
  const requested =
    opts.store !== undefined
      ? storeRequest(opts.store, '--store')
      : env.ENTRACLAW_STORE
        ? storeRequest(env.ENTRACLAW_STORE, 'ENTRACLAW_STORE')
        : storeRequest(config.credentials.store, 'agent.toml [credentials] store');
  const ctx: StoreContext = {
    env,
    paths,
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    timeoutMs: config.credentials.timeout_ms,
    ...(opts.passphraseFile ? { passphraseFile: opts.passphraseFile } : {}),
  };
  return { ctx, requested, config };
}
