import { closeSync, existsSync, lstatSync, openSync } from 'node:fs';
import { socketLock, socketPath } from '../daemon/socket-path.js';
import { EntraclawError, UnavailableError } from '../errors.js';
import { native } from '../lib/native.js';
import { passphraseSource } from '../lib/passphrase.js';
import { visible } from '../lib/visible.js';
import { loadPolicy, policyPath } from '../policy/load.js';
import { backendFor } from '../store/registry.js';
import { autoOrder, probeAll, systemdCredsPresent } from '../store/select.js';
import type { StoreContext, StoreProbe } from '../store/types.js';
import { storeContext } from './context.js';
import { printJson } from './output.js';
import { printTable } from './table.js';

const PERSISTENCE: Record<StoreProbe['persistence'], string> = {
  'until-delete': 'persistent (until deleted)',
  'until-reboot': 'RAM only, gone at reboot',
  'process-only': 'for the life of the service',
};

// The probe every command runs checks the vault's file, not its passphrase (that costs the KDF, ~0.4 s).
// doctor pays it once, when the passphrase comes from a file: a vault it does not open is not usable.
async function vaultOpens(ctx: StoreContext, probe: StoreProbe): Promise<StoreProbe> {
  if (probe.name !== 'encrypted-file' || !probe.available || passphraseSource(ctx)?.kind !== 'file')
    return probe;
  const store = await (await backendFor('encrypted-file')).open(ctx);
  try {
    await store.list();
    return probe;
  } catch (err) {
    if (!(err instanceof EntraclawError)) throw err;
    return { ...probe, available: false, reason: err.message };
  } finally {
    await store.close();
  }
}

/** `entraclaw doctor`: every store, whether it is usable and why, how long it keeps data, its boundary, and which is selected. */
export async function doctor(opts: {
  store?: string;
  passphraseFile?: string;
  json?: boolean;
}): Promise<void> {
  const { ctx, requested, requestedBy, config, configError } = await storeContext(opts, true);
  const probes = await Promise.all((await probeAll(ctx)).map((p) => vaultOpens(ctx, p)));
  const selected =
    requested !== 'auto'
      ? requested
      : autoOrder(process.platform).find((n) => probes.find((p) => p.name === n)?.available);
  const readFirst = requested === 'auto' && systemdCredsPresent(ctx.env) ? 'systemd-creds' : undefined;
  const rows = probes.map((p) => ({
    ...p,
    persistenceText: PERSISTENCE[p.persistence],
    selected: p.name === selected,
    readFirst: p.name === readFirst,
  }));
  const askpass = ctx.env.ENTRACLAW_ASKPASS || config.agent.askpass;
  const policy = policyReport(ctx.paths);
  const daemon = {
    ...daemonBoundary(selected, socketPath(ctx.paths, config.agent.socket)),
    askpass: askpass ?? null,
  };
  if (opts.json) {
    printJson({
      requested,
      selected: selected ?? null,
      stores: rows,
      daemon,
      config: { error: configError?.message ?? null },
      policy: { path: policy.path, clients: policy.clients ?? null, error: policy.error?.message ?? null },
    });
    // The report stands; the exit status and the error still say that every other command refuses to run.
    if (configError) throw configError;
    if (policy.error) throw policy.error;
    throwUnlessUsable(rows, selected, requested);
    return;
  }
  // Paths and error messages come from the environment, agent.toml and policy.toml (which any program of
  // yours outside a sandbox can write): escaped as in tables, so none can act on the terminal.
  if (configError) {
    process.stdout.write(
      `Config: INVALID, so every other command refuses to run until it is fixed; this report uses the defaults\n  ${visible(configError.message)}\n\n`,
    );
  }
  printTable([
    ['STORE', 'AVAILABLE', 'SELECTED', 'PERSISTENCE', 'REASON'],
    ...rows.map((r) => [
      r.name,
      r.available ? 'yes' : 'no',
      r.selected ? 'yes' : r.readFirst ? 'reads first' : '',
      r.persistenceText,
      r.reason,
    ]),
  ]);
  process.stdout.write('\nBoundaries:\n');
  for (const r of rows) process.stdout.write(`  ${r.name}: ${r.boundary}\n`);
  // A store named by config or flag is selected whether or not it works: say so, every command will fail.
  const unusable = rows.find((r) => r.selected && !r.available);
  process.stdout.write(
    `\nSelected: ${selected ?? 'none usable'} (asked for: ${requested}, by ${requestedBy === 'agent.toml' ? 'agent.toml [credentials] store, or its default' : requestedBy})${unusable ? ` — NOT USABLE: ${visible(unusable.reason)}` : ''}\n`,
  );
  process.stdout.write(
    `\nDaemon: ${
      daemon.socketOwner !== undefined && daemon.socketOwner !== process.getuid?.()
        ? `NOT YOURS: the socket is owned by uid ${daemon.socketOwner}, another user; clients refuse it (set XDG_RUNTIME_DIR or ENTRACLAW_SOCKET to a private place)`
        : daemon.running
          ? 'running'
          : daemon.socketPresent
            ? 'not running (a stale socket is left; `entraclaw agent` replaces it)'
            : 'not running'
    } at ${visible(daemon.socket)}\n`,
  );
  process.stdout.write(`Boundary that holds for programs: ${daemon.boundary}\n`);
  process.stdout.write(
    askpass
      ? `Confirm on use (for an agent started from this environment): grants with confirm = true ask you through ${visible(askpass)}${existsSync(askpass) ? '' : ' (NOT FOUND: such grants are denied until it exists)'}\n`
      : 'Confirm on use (for an agent started from this environment): no askpass program configured, so grants with confirm = true are denied ([agent] askpass in agent.toml)\n',
  );
  process.stdout.write(
    policy.error
      ? `Policy: INVALID, so the daemon denies every request until it is fixed: ${visible(policy.path)}\n  ${visible(policy.error.message)}\n`
      : `Policy: ${policy.clients} approved program(s) in ${visible(policy.path)}\n`,
  );
  if (configError) throw configError;
  if (policy.error) throw policy.error;
  throwUnlessUsable(rows, selected, requested);
}

// After the report: when the store every secret command would use cannot be used, they all fail with
// exit 5, and so does doctor, so that `entraclaw doctor && ...` (a health check) does not pass on it.
function throwUnlessUsable(
  rows: (StoreProbe & { selected: boolean; readFirst: boolean })[],
  selected: string | undefined,
  requested: string,
): void {
  const hint =
    'the report says why each store is not usable and what it needs; or choose another with --store (or store = "auto" in agent.toml)';
  // auto reads the credentials before any store: a $CREDENTIALS_DIRECTORY that cannot be read fails every
  // command however usable the selected store is.
  const credentials = rows.find((r) => r.readFirst && !r.available);
  if (credentials) {
    throw new UnavailableError(
      `${credentials.name} is read first under auto and is not usable: ${credentials.reason}`,
      'point $CREDENTIALS_DIRECTORY at the directory systemd made for the unit, or unset it where entraclaw is not running as that service',
    );
  }
  if (selected === undefined) {
    // A service with only its credentials still reads them (auto makes them the store, read-only).
    if (rows.some((r) => r.readFirst && r.available)) return;
    const tried = rows.filter((r) => autoOrder(process.platform).includes(r.name));
    throw new UnavailableError(
      `no usable store: ${tried.map((r) => `${r.name} (${r.reason})`).join('; ')}`,
      hint,
    );
  }
  const unusable = rows.find((r) => r.selected && !r.available);
  if (unusable) {
    throw new UnavailableError(
      `store ${unusable.name} (asked for: ${requested}) is not usable: ${unusable.reason}`,
      hint,
    );
  }
}

/** policy.toml as the daemon would load it: an invalid one denies every request, so doctor says so. */
function policyReport(paths: StoreContext['paths']): {
  path: string;
  clients?: number;
  error?: EntraclawError;
} {
  const path = policyPath(paths);
  try {
    return { path, clients: loadPolicy(path).clients.length };
  } catch (err) {
    if (!(err instanceof EntraclawError)) throw err;
    return { path, error: err };
  }
}

/** What actually stands between a program of this user and the secrets, given the selected store. */
export function daemonBoundary(selected: string | undefined, socket: string) {
  const direct: Record<string, string> = {
    'secret-service':
      'policy and audit only: any program of yours can also read Secret Service items directly over D-Bus; run untrusted agents under `entraclaw sandbox`, or use --store encrypted-file so the daemon is the only door',
    'kernel-keyring':
      'policy and audit only: any program of yours possessing the user keyring can read keys with keyctl; run untrusted agents under `entraclaw sandbox`',
    'macos-keychain':
      'policy and audit only: programs of yours can ask the keychain through `security`; keychain ACL prompts are the only other guard',
    'systemd-creds': 'the credentials directory is private to the service; the daemon adds policy and audit',
    'encrypted-file':
      'the daemon is the only door to the vault, sealed with a passphrase programs do not have (unless they can read a passphrase file that holds it); but a program running as you outside `entraclaw sandbox` can approve itself by editing policy.toml as you can (each change the daemon loads is an audit line naming the client and its grants); same-user ptrace of an approved client remains out of scope',
  };
  const owner = lstatSync(socket, { throwIfNoEntry: false })?.uid;
  return {
    socket,
    socketPresent: owner !== undefined,
    // Another user's socket where ours belongs: they made the path first (clients/index.ts refuses it).
    ...(owner !== undefined ? { socketOwner: owner } : {}),
    running: daemonRunning(socket),
    boundary: (selected && direct[selected]) ?? 'no usable store',
  };
}

// If we can take the lock a running daemon holds, none runs.
function daemonRunning(socket: string): boolean {
  let fd: number;
  try {
    fd = openSync(socketLock(socket), 'r');
  } catch {
    return false;
  }
  try {
    const free = native().flock(fd, false, true);
    if (free) native().funlock(fd);
    return !free;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}
