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

/** Whether `name` is one of the known store names. */
export function isStoreName(name: string): name is StoreName {
  return (STORE_NAMES as readonly string[]).includes(name);
}

/** Loads the backend called `name`; an unknown name is a UsageError listing the valid ones. */
export async function backendFor(name: string): Promise<StoreBackend> {
  if (!isStoreName(name)) {
    throw new UsageError(`unknown store "${name}"`, `valid stores: auto, ${STORE_NAMES.join(', ')}`);
  }
  return loaders[name]();
}
