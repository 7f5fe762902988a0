import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOGIN_COLLECTION, SecretServiceApi } from '../../src/store/secret-service/api.js';
import { Bus } from '../../src/store/secret-service/bus.js';
import { linuxOnly } from './context.js';
import { lockCollectionOn, unlockWithPassword } from './keyring-control.js';

// A D-Bus session bus and a gnome-keyring of one test's own, which it may lock, stop and start again at
// will: unlike scripts/with-keyring.sh's session, whose keyring other tests use at the same time. The bus
// has no service directories, so nothing is ever activated on it behind the test's back.

const PASSWORD = 'entraclaw-private-keyring';

/** Why a private keyring cannot be had here, or undefined when it can. */
export const privateKeyringMissing =
  linuxOnly('a D-Bus session bus and gnome-keyring of their own') ??
  (['dbus-daemon', 'gnome-keyring-daemon'].every(
    (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0,
  )
    ? undefined
    : 'dbus-daemon and gnome-keyring-daemon are needed (Debian: dbus, gnome-keyring)');

/** A private session bus and keyring under `dir`. */
export interface PrivateKeyring {
  /** DBUS_SESSION_BUS_ADDRESS of the bus: the same path across stopBus/startBus. */
  address: string;
  startBus(): Promise<void>;
  stopBus(): Promise<void>;
  /** Starts gnome-keyring on the bus with the login keyring unlocked (made the first time). */
  startKeyring(): Promise<void>;
  stopKeyring(): Promise<void>;
  lock(): Promise<void>;
  unlock(): Promise<void>;
  /** Stops both and removes `dir`. */
  stop(): Promise<void>;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function ended(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exit;
}

/**
 * A session bus config listening on `address`, with no service directories: nothing can be activated on
 * it, unlike a stock `dbus-daemon --session`, which would start gnome-keyring on demand.
 */
export function bareBusConfig(address: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>${address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/></policy>
</busconfig>
`;
}

/** Starts a private bus and keyring in `dir` (created). */
export async function startPrivateKeyring(dir: string): Promise<PrivateKeyring> {
  const socket = join(dir, 'bus');
  const address = `unix:path=${socket}`;
  const config = join(dir, 'bus.conf');
  for (const d of ['data', 'home']) mkdirSync(join(dir, d), { recursive: true });
  mkdirSync(join(dir, 'run'), { recursive: true, mode: 0o700 });
  writeFileSync(config, bareBusConfig(address));
  let bus: ChildProcess | undefined;
  let keyring: ChildProcess | undefined;
  const call = async <T>(fn: (b: Bus, api: SecretServiceApi) => Promise<T>): Promise<T> => {
    const b = Bus.connect(address, 3000);
    try {
      return await fn(b, new SecretServiceApi(b));
    } finally {
      b.close();
    }
  };
  const locked = () => call((_b, api) => api.collectionLocked(LOGIN_COLLECTION));
  const self: PrivateKeyring = {
    address,
    async startBus() {
      rmSync(socket, { force: true });
      bus = spawn('dbus-daemon', ['--config-file', config, '--nofork'], { stdio: 'ignore' });
      await until(() => call((b) => b.call({ ...dbusDaemon, member: 'GetId' }).then(() => true)), 'the bus');
    },
    async stopBus() {
      await ended(bus);
    },
    async startKeyring() {
      keyring = spawn('gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], {
        env: {
          PATH: process.env.PATH,
          HOME: join(dir, 'home'),
          XDG_DATA_HOME: join(dir, 'data'),
          XDG_RUNTIME_DIR: join(dir, 'run'),
          DBUS_SESSION_BUS_ADDRESS: address,
        },
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      keyring.stdin!.end(PASSWORD);
      await until(async () => (await locked()) === false, 'an unlocked login keyring');
    },
    async stopKeyring() {
      await ended(keyring);
    },
    async lock() {
      await call((b) => lockCollectionOn(b, LOGIN_COLLECTION));
      await until(async () => (await locked()) === true, 'the login keyring to lock');
    },
    async unlock() {
      await call((b, api) => unlockWithPassword(b, api, LOGIN_COLLECTION, PASSWORD));
      await until(async () => (await locked()) === false, 'the login keyring to unlock');
    },
    async stop() {
      await ended(keyring);
      await ended(bus);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await self.startBus();
  await self.startKeyring();
  return self;
}

const dbusDaemon = {
  destination: 'org.freedesktop.DBus',
  path: '/org/freedesktop/DBus',
  interface: 'org.freedesktop.DBus',
};
