import { EntraclawError, UnavailableError } from '../errors.js';
import { backendFor } from './registry.js';
import { STORE_NAMES, type Store, type StoreContext, type StoreName, type StoreProbe } from './types.js';

/** The store a command will use, why it was chosen, and any stores `auto` passed over (with reasons). */
export interface Selection {
  store: Store;
  /** Read-only stores consulted before `store` on reads (systemd-creds when running as a service). */
  readFirst: Store[];
  reason: string;
  skipped: { name: StoreName; reason: string }[];
}

/** The `auto` order for the primary (writable) store: Secret Service when usable, else the sealed vault. */
export function autoOrder(platform: NodeJS.Platform): StoreName[] {
  return platform === 'darwin' ? ['macos-keychain', 'encrypted-file'] : ['secret-service', 'encrypted-file'];
}

/** Whether auto mode should read from systemd credentials first (only when running as a systemd service). */
export function systemdCredsPresent(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.CREDENTIALS_DIRECTORY);
}

/** Probes every known store (in parallel, each bounded by its own timeout). */
export async function probeAll(ctx: StoreContext): Promise<StoreProbe[]> {
  return Promise.all(
    STORE_NAMES.map(async (name) => {
      try {
        return await (await backendFor(name)).probe(ctx);
      } catch (err) {
        return {
          name,
          available: false,
          reason: `probe failed: ${(err as Error).message}`,
          persistence: 'until-delete',
          readOnly: false,
          boundary: '',
        } satisfies StoreProbe;
      }
    }),
  );
}

/**
 * Opens the store for `requested`. A named store that cannot open is an error naming why; `auto` walks
 * `autoOrder` and records every store it passed over, so the caller can say so — never a silent fallback.
 */
export async function selectStore(ctx: StoreContext, requested: 'auto' | StoreName): Promise<Selection> {
  if (requested !== 'auto') {
    try {
      const store = await (await backendFor(requested)).open(ctx);
      return { store, readFirst: [], reason: `store "${requested}" chosen explicitly`, skipped: [] };
    } catch (err) {
      if (!(err instanceof EntraclawError) || (err.code !== 'unavailable' && err.code !== 'locked'))
        throw err;
      // Name the store the user picked, whatever the backend said, and always say what to do next.
      const message = err.message.includes(requested) ? err.message : `store ${requested}: ${err.message}`;
      const hint =
        err.hint ??
        'run `entraclaw doctor` to see what each store needs, or choose another with --store (or store = "auto")';
      throw new EntraclawError(err.code, message, hint, { cause: err });
    }
  }
  const skipped: Selection['skipped'] = [];
  const readFirst: Store[] = [];
  if (systemdCredsPresent(ctx.env)) {
    readFirst.push(await (await backendFor('systemd-creds')).open(ctx));
  }
  for (const name of autoOrder(process.platform)) {
    try {
      const store = await (await backendFor(name)).open(ctx);
      const reason =
        skipped.length === 0 ? `auto: ${name} is the first usable store` : `auto: fell back to ${name}`;
      return { store, readFirst, reason, skipped };
    } catch (err) {
      if (!(err instanceof EntraclawError) || (err.code !== 'unavailable' && err.code !== 'locked'))
        throw err;
      skipped.push({ name, reason: err.message });
    }
  }
  // A service that only has its LoadCredential= items (no keyring, no vault passphrase) can still read
  // them: the credentials become the store, read-only, and a write says so.
  const [creds] = readFirst;
  if (creds) {
    return { store: creds, readFirst: [], reason: `auto: only ${creds.name} is usable (read-only)`, skipped };
  }
  throw new UnavailableError(
    `no usable store: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`,
    'run `entraclaw doctor` to see what each store needs',
  );
}
