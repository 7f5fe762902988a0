import { native } from '../lib/native.js';
import { readNewPassphrase } from '../lib/passphrase.js';
import { rekeyVault } from '../store/encrypted-file.js';
import { vaultFile } from '../store/vault-file.js';
import { storeContext } from './context.js';
import { note, printJson } from './output.js';

/** Options of `entraclaw vault rekey`. */
export interface VaultRekeyOptions {
  passphraseFile?: string;
  newPassphraseFile?: string;
  json?: boolean;
}

/**
 * `entraclaw vault rekey [--new-passphrase-file F]`: re-encrypts the vault under a new passphrase (and a
 * fresh salt), opened with the current one from the usual sources.
 */
export async function vaultRekey(opts: VaultRekeyOptions): Promise<void> {
  // A value is about to be in memory: a crash must not write it to a core file (the daemon's own rule).
  native().noCoreDump();
  const { ctx } = await storeContext({
    ...(opts.passphraseFile !== undefined ? { passphraseFile: opts.passphraseFile } : {}),
  });
  const { vault, items } = await rekeyVault(ctx, () =>
    readNewPassphrase(ctx, vaultFile(ctx.paths.data), opts.newPassphraseFile),
  );
  if (opts.json) printJson({ vault, items, rekeyed: true });
  else
    note(
      `re-encrypted ${vault} (${items} item${items === 1 ? '' : 's'}) under the new passphrase; point --passphrase-file, ENTRACLAW_PASSPHRASE_FILE or the systemd credential at it (a running agent reads it again when its next vault read fails with the old one; one that read it from a pipe must be restarted)`,
    );
}
