import { EntraclawError } from '../errors.js';
import type { Store } from '../store/types.js';
import type { Logger } from './log.js';

// Codes that say the store itself is in trouble, not that one request asked for something it cannot have
// (not_found, expired, too_large, denied): the user has to act (unlock, restore, fix a passphrase).
const TROUBLE = new Set(['locked', 'unavailable', 'corrupt', 'internal']);

/**
 * The daemon's store, wrapped so that its log says when the store stops serving and what to do (the
 * error's message and hint), once per distinct trouble rather than once per request, and when it serves
 * again. A daemon that runs for weeks otherwise says nothing while its vault is locked or its keyring gone:
 * only the clients and the audit log see the errors.
 */
export function watchStore(store: Store, log: Logger): Store {
  // What was last logged as wrong (code and what to do), until a call succeeds again.
  let trouble: string | undefined;
  const watch = async <T>(call: () => Promise<T>): Promise<T> => {
    let result: T;
    try {
      result = await call();
    } catch (err) {
      if (err instanceof EntraclawError && TROUBLE.has(err.code)) {
        const key = `${err.code}\0${err.hint ?? err.message}`;
        if (key !== trouble) {
          trouble = key;
          log('warn', 'the store cannot serve requests', {
            store: store.name,
            code: err.code,
            error: err.message,
            hint: err.hint,
          });
        }
      }
      throw err;
    }
    if (trouble !== undefined) {
      trouble = undefined;
      log('info', 'the store serves requests again', { store: store.name });
    }
    return result;
  };
  return {
    name: store.name,
    persistence: store.persistence,
    readOnly: store.readOnly,
    maxValueBytes: store.maxValueBytes,
    get: (service, account) => watch(() => store.get(service, account)),
    set: (input) => watch(() => store.set(input)),
    delete: (service, account) => watch(() => store.delete(service, account)),
    list: (filter) => watch(() => store.list(filter)),
    close: () => store.close(),
  };
}
