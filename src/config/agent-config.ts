import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { readPrivateFile } from '../lib/private-file.js';
import { tomlSyntaxError } from '../lib/toml-error.js';
import { VALID_STORES } from '../store/registry.js';
import { STORE_NAMES, type StoreName } from '../store/types.js';

/** The parsed `agent.toml`. */
export interface AgentConfig {
  credentials: { store: 'auto' | StoreName; timeout_ms: number };
  agent: { socket?: string; askpass?: string };
}

const DEFAULTS: AgentConfig = { credentials: { store: 'auto', timeout_ms: 3000 }, agent: {} };

// zod and the TOML parser are loaded only when a config file exists: most `secret get` calls have none,
// and their start-up time matters.
async function schema() {
  const { z } = await import('zod');
  return z.strictObject({
    credentials: z
      .strictObject({
        store: z.enum(['auto', ...STORE_NAMES]).default('auto'),
        timeout_ms: z.number().int().min(100).max(60_000).default(3000),
      })
      .default({ store: 'auto', timeout_ms: 3000 }),
    agent: z
      .strictObject({
        // Read by the agent wherever it starts: a relative path would move with its working directory. A
        // NUL (TOML's \u0000) is in no path the system can open.
        socket: absolutePath(z).optional(),
        askpass: absolutePath(z).optional(),
      })
      .default({}),
  });
}

// A path agent.toml names: absolute, without NUL.
function absolutePath(z: typeof import('zod').z) {
  return z
    .string()
    .startsWith('/', 'must be an absolute path')
    .refine((p) => !p.includes('\0'), 'must not contain a NUL character');
}

/** The configuration that applies when there is no agent.toml. */
export function defaultAgentConfig(): AgentConfig {
  return structuredClone(DEFAULTS);
}

/** Loads `<configDir>/agent.toml`; a missing file gives the defaults, an invalid one a UsageError naming the problem. */
export async function loadAgentConfig(configDir: string, uid = process.getuid?.()): Promise<AgentConfig> {
  const path = join(configDir, 'agent.toml');
  // Whoever can write agent.toml picks the askpass program: the agent runs it as you, and its exit status
  // answers every confirmation. So it is checked as policy.toml is.
  const bytes = readPrivateFile(
    path,
    {
      named: `config ${path}`,
      readHint: 'check the file permissions',
      notFileHint: 'agent.toml must be a file of yours, mode 600',
      role: 'the agent configuration and the askpass program it names',
    },
    uid,
  );
  if (!bytes) return defaultAgentConfig();
  const text = bytes.toString('utf8');
  const { parse } = await import('smol-toml');
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw tomlSyntaxError('config ', path, err);
  }
  const result = (await schema()).safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const { issueAt } = await import('../policy/toml-lines.js');
    throw new UsageError(
      `config ${issueAt(path, text, issue)}`,
      issue.path[0] === 'credentials' && issue.path[1] === 'store'
        ? `${VALID_STORES}; see docs/configuration.md`
        : 'see docs/configuration.md for the keys and their values',
    );
  }
  return result.data as AgentConfig;
}
