// The plain types and names of a grant, without zod: the SDK's declarations (whoami's grants) name them,
// and an application compiling against the SDK should not have to type-check zod for that.

/** What a request asks to do to an item; `set` becomes create or update (see setOperation). */
export const OPERATIONS = ['read', 'list', 'create', 'update', 'delete'] as const;
/** One operation a request needs. */
export type Operation = (typeof OPERATIONS)[number];
/** What a grant may list in `operations`: an operation, or `write` for create + update. */
export const GRANT_OPERATIONS = [...OPERATIONS, 'write'] as const;
/** One entry of a grant's `operations`. */
export type GrantOperation = (typeof GRANT_OPERATIONS)[number];
/** Where a grant came from (as in nono's profiles): hand-written, a shipped profile, or the CLI. */
export const GRANT_SOURCES = ['user', 'profile', 'cli'] as const;
/** One grant source. */
export type GrantSource = (typeof GRANT_SOURCES)[number];
/** Written explicitly in `accounts` (or `services`) to mean any name. */
export const ANY = '*';

/** Permission for one client to do `operations` on the items the grant names. Times are ISO-8601 UTC. */
export interface Grant {
  /** Exact service names, or `*` for every service. */
  services: string[];
  /** Service name prefixes, e.g. `aws/`. */
  servicePrefixes: string[];
  /** Exact account names, or `*` for every account; never empty. */
  accounts: string[];
  operations: GrantOperation[];
  expiresAt?: string;
  source?: GrantSource;
  /** Each use must be confirmed by the user through the agent's askpass program (ssh-agent -c style). */
  confirm?: boolean;
  /**
   * With confirm: how long a yes lasts (e.g. `10m`) for the same process and the same item and operation;
   * none means every use is asked.
   */
  confirmFor?: string;
}
