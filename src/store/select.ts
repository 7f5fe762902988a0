import { existsSync } from 'node:fs';
import { EntraclawError, UnavailableError } from '../errors.js';
import { backendFor } from './registry.js';
import {
  type OpenOptions,
  STORE_NAMES,
  type Store,
  type StoreContext,
  type StoreName,
  type StoreProbe,
} from './types.js';
import { vaultFile } from './vault-file.js';

/** The store a command will use, why it was chosen, and any stores `auto` passed over (with reasons). */
export interface Selection {
  store: Store;
  /** The context the stores were opened with, for opening another (see elsewhereHint). */
  ctx: StoreContext;
  /** Read-only stores consulted before `store` on reads (systemd-creds when running as a service). */
  readFirst: Store[];
  reason: string;
  skipped: { name: StoreName; reason: string }[];
  /**
   * Stores later in `auto`'s order that hold data but are not read while `store` is usable: the vault,
   * written while Secret Service was away, say. Empty for a store named explicitly.
   */
  unsearched: { name: StoreName; where: string }[];
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
export async function selectStore(
  ctx: StoreContext,
  requested: 'auto' | StoreName,
  /** For a store named explicitly (auto passes over a locked one instead). */
  opts: OpenOptions = {},
): Promise<Selection> {
  if (requested !== 'auto') {
    try {
      const store = await (await backendFor(requested)).open(ctx, opts);
      return {
        store,
        ctx,
        readFirst: [],
        reason: `store "${requested}" chosen explicitly`,
        skipped: [],
        unsearched: [],
      };
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
  // What to do about the last store passed over (the vault, auto's fallback): the advice for when none opens.
  let fallbackHint: string | undefined;
  const readFirst: Store[] = [];
  if (systemdCredsPresent(ctx.env)) {
    readFirst.push(await (await backendFor('systemd-creds')).open(ctx));
  }
  for (const name of autoOrder(process.platform)) {
    try {
      const store = await (await backendFor(name)).open(ctx);
      const reason =
        skipped.length === 0 ? `auto: ${name} is the first usable store` : `auto: fell back to ${name}`;
      return { store, ctx, readFirst, reason, skipped, unsearched: unsearchedAfter(ctx, name) };
    } catch (err) {
      if (!(err instanceof EntraclawError) || (err.code !== 'unavailable' && err.code !== 'locked'))
        throw err;
      skipped.push({ name, reason: err.message });
      fallbackHint = err.hint ? `for ${name}: ${err.hint}` : undefined;
    }
  }
  // A service that only has its LoadCredential= items (no keyring, no vault passphrase) can still read
  // them: the credentials become the store, read-only, and a write says so.
  const [creds] = readFirst;
  if (creds) {
    return {
      store: creds,
      ctx,
      readFirst: [],
      reason: `auto: only ${creds.name} is usable (read-only)`,
      skipped,
      unsearched: [],
    };
  }
  const doctor = 'run `entraclaw doctor` to see what each store needs';
  throw new UnavailableError(
    `no usable store: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`,
    fallbackHint ? `${fallbackHint}; or ${doctor}` : doctor,
  );
}

// The only later store whose having data is known without opening it: the vault, by its file.
function unsearchedAfter(ctx: StoreContext, chosen: StoreName): Selection['unsearched'] {
  if (chosen === 'encrypted-file') return [];
  const vault = vaultFile(ctx.paths.data);
  return existsSync(vault) ? [{ name: 'encrypted-file', where: vault }] : [];
}

/**
 * Where else an item not found in `sel.store` may be: stores `auto` passed over, stores it does not read
 * while this one is usable, and the kernel keyring when it holds the item (no command reads it unless
 * named). Undefined when there is nowhere else.
 */
export async function elsewhereHint(
  sel: Selection,
  service: string,
  account: string,
): Promise<string | undefined> {
  const kernel = (await kernelKeyringHolds(sel, service, account))
    ? 'kernel-keyring has an item of that name, and it is read only when named: add --store kernel-keyring'
    : undefined;
  const places = passedOver(sel).map((p) => p.said);
  // Both are said: a copy in the vault auto passed over is served again once auto uses the vault, so a
  // hint naming only the kernel keyring would hide where a rotation or a delete must also go.
  if (places.length === 0) return kernel;
  const only = sel.skipped.length === 0 && sel.unsearched.length === 1 ? ` ${sel.unsearched[0]!.name}` : '';
  const fix = sel.skipped.length > 0 ? 'fix that or name the store' : 'name the store';
  const passed = `${places.join('; ')}: it may be there${kernel ? ' too' : ''}; ${fix} with --store${only}`;
  return kernel ? `${kernel}; ${passed}` : passed;
}

/**
 * The stores `auto` did not look in for this selection: each with why (`said`, "NAME ... (why)") and when
 * auto would read it after all (`readWhen`).
 */
export function passedOver(sel: Selection): { name: string; said: string; readWhen: string }[] {
  return [
    ...sel.skipped.map((k) => ({
      name: k.name,
      said: `${k.name} was not searched (${k.reason})`,
      readWhen: `again once ${k.name} is usable`,
    })),
    ...sel.unsearched.map((u) => ({
      name: u.name,
      said: `${u.name} (${u.where}) is not read while auto uses ${sel.store.name}`,
      readWhen: `whenever ${sel.store.name} is not usable`,
    })),
  ];
}

/**
 * Why an item may be missing from a store that forgets items by itself (said with every not-found from
 * it, so a token stored there last week is not taken for a typo), or undefined for a store that does not.
 */
export function forgetfulStoreNote(store: StoreName): string | undefined {
  return store === 'kernel-keyring'
    ? 'the kernel keyring forgets every item at reboot, and an item with an expiry an hour after it expired'
    : undefined;
}

// Whether the user's kernel keyring holds service/account, when another store was searched: items put
// there (by explicit choice) are otherwise invisible to a command that did not name it. Any failure is "no".
async function kernelKeyringHolds(sel: Selection, service: string, account: string): Promise<boolean> {
  if (process.platform !== 'linux' || sel.store.name === 'kernel-keyring') return false;
  try {
    const store = await (await backendFor('kernel-keyring')).open(sel.ctx);
    try {
      const item = await store.get(service, account);
      item?.value.fill(0);
      return item !== undefined;
    } finally {
      await store.close();
    }
  } catch {
    return false;
  }
}
