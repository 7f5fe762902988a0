import type { SecretServiceApi } from '../../src/store/secret-service/api.js';
import type { Bus } from '../../src/store/secret-service/bus.js';
import { encryptSecret } from '../../src/store/secret-service/dh-session.js';

// What tests do to a real gnome-keyring behind the store's back: lock a collection, unlock the login one.

/** The Secret Service's well-known name and object path, for raw calls. */
export const SECRETS = { destination: 'org.freedesktop.secrets', path: '/org/freedesktop/secrets' };

/** Locks `collection` (Secret.Service.Lock: no prompt needed). */
export async function lockCollectionOn(bus: Bus, collection: string): Promise<void> {
  await bus.call({
    ...SECRETS,
    interface: 'org.freedesktop.Secret.Service',
    member: 'Lock',
    signature: 'ao',
    body: [[collection]],
  });
}

/** gnome-keyring's own no-prompt unlock (what its PAM module uses); the password travels DH-encrypted. */
export async function unlockWithPassword(
  bus: Bus,
  api: SecretServiceApi,
  collection: string,
  password: string,
): Promise<void> {
  const session = await api.openSession();
  const { iv, ciphertext } = encryptSecret(session.key, Buffer.from(password));
  await bus.call({
    ...SECRETS,
    interface: 'org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface',
    member: 'UnlockWithMasterPassword',
    signature: 'o(oayays)',
    body: [collection, [session.path, iv, ciphertext, 'text/plain']],
  });
}
