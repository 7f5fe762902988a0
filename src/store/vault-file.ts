import { join } from 'node:path';

/** The sealed vault's file in the data directory; here so that knowing where it is costs no crypto import. */
export function vaultFile(dataDir: string): string {
  return join(dataDir, 'vault.ecv');
}
