import { UsageError } from '../errors.js';
import { STORE_NAMES, type StoreBackend, type StoreName } from './types.js';

// Backends are imported lazily: `secret get` on one store must not pay for loading D-Bus or crypto code
// of the others.
const loaders: Record<StoreName, () => Promise<StoreBackend>> = {
  'secret-service': async () => (await import('./secret-service.js')).backend,
  'kernel-keyring': async () => (await import('./kernel-keyring.js')).backend,
  'systemd-creds': async () => (await import('./systemd-creds.js')).backend,
  'encrypted-file': async () => (await import('./encrypted-file.js')).backend,
  'macos-keychain': async () => (await import('./macos-keychain.js')).backend,
};

/** The hint for a store name that is not one: every name a user may give. */
export const VALID_STORES = `valid stores: auto, ${STORE_NAMES.join(', ')}`;

/** Whether `name` is one of the known store names. */
export function isStoreName(name: string): name is StoreName {
  return (STORE_NAMES as readonly string[]).includes(name);
}

/** `name` as a store request, `auto` or a store; an unknown one is a UsageError saying where it came from. */
export function storeRequest(name: string, from: string): 'auto' | StoreName {
  if (name === 'auto' || isStoreName(name)) return name;
  throw new UsageError(`unknown store "${name}" (from ${from})`, VALID_STORES);
}

/** Loads the backend called `name`; an unknown name is a UsageError listing the valid ones. */
export async function backendFor(name: string): Promise<StoreBackend> {
  if (!isStoreName(name)) throw new UsageError(`unknown store "${name}"`, VALID_STORES);
  return loaders[name]();
}
