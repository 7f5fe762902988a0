import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import {
  ancestorsToPin,
  buildBwrapArgs,
  dbusAddressSockets,
  SANDBOX_BIN,
  SANDBOX_SOCKET,
  type SandboxLayout,
  sandboxEnv,
} from '../../src/sandbox/bwrap-args.js';
import { BLOCKED_SYSCALLS, keyringFilter, keyringFilterBytes } from '../../src/sandbox/seccomp.js';

// The bubblewrap command line, read back as mounts: for any path, the LAST mount whose destination
// contains it decides what the sandbox sees there (bwrap applies them in order).

const HOME = '/home/u';
const layout = (over: Partial<SandboxLayout> = {}): SandboxLayout => ({
  home: HOME,
  runtimeDir: '/run/user/1000',
  project: '/home/u/src/app',
  socket: '/tmp/entraclaw-sandbox-x/run/agent.sock',
  shimDir: '/tmp/entraclaw-sandbox-x/bin',
  installRoot: '/home/u/.npm/lib/node_modules/entraclaw',
  allowPaths: [],
  readPaths: [],
  network: true,
  ...over,
});

type Mount = { op: 'ro' | 'rw' | 'tmpfs' | 'dev' | 'proc'; src?: string; dest: string };

function mounts(args: string[]): Mount[] {
  const out: Mount[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--ro-bind') out.push({ op: 'ro', src: args[++i]!, dest: args[++i]! });
    else if (a === '--bind') out.push({ op: 'rw', src: args[++i]!, dest: args[++i]! });
    else if (a === '--tmpfs') out.push({ op: 'tmpfs', dest: args[++i]! });
    else if (a === '--dev') out.push({ op: 'dev', dest: args[++i]! });
    else if (a === '--proc') out.push({ op: 'proc', dest: args[++i]! });
  }
  return out;
}

const under = (path: string, dir: string) => dir === '/' || path === dir || path.startsWith(`${dir}/`);

/** What the sandbox shows at `path`: 'hidden' (an empty tmpfs), 'ro'/'rw' with the host path, or /dev/null. */
function seen(args: string[], path: string): string {
  const m = mounts(args)
    .filter((x) => under(path, x.dest))
    .at(-1);
  if (!m) return 'nothing';
  if (m.op === 'tmpfs') return 'hidden';
  if (m.op === 'dev' || m.op === 'proc') return m.op;
  if (m.src === '/dev/null') return 'null';
  const rest = path.slice(m.dest === '/' ? 0 : m.dest.length);
  return `${m.op}:${m.src === '/' ? '' : m.src}${rest}`;
}

describe('buildBwrapArgs: what is hidden', () => {
  const args = buildBwrapArgs(layout({ runtimeDir: '/var/run-user/1000' }));

  it('new user, pid, ipc and uts namespaces; dies with its parent; a new terminal session', () => {
    for (const flag of [
      '--unshare-user',
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--die-with-parent',
      '--new-session',
    ]) {
      expect(args).toContain(flag);
    }
    expect(args).not.toContain('--unshare-net');
    expect(args).not.toContain('--share-net');
  });

  it('$HOME, /tmp, /run and $XDG_RUNTIME_DIR are empty tmpfs', () => {
    for (const p of [
      HOME,
      `${HOME}/.local/share/keyrings/login.keyring`,
      `${HOME}/.local/share/entraclaw/vault.ecv`,
      `${HOME}/.config/entraclaw/policy.toml`,
      `${HOME}/.ssh/id_ed25519`,
      '/tmp/dbus-abc',
      '/run/user/1000/bus',
      '/run/dbus/system_bus_socket',
      '/var/run-user/1000/keyring/control',
    ]) {
      expect(seen(args, p), p).toBe('hidden');
    }
  });

  it("/proc/keys (the names of the user's kernel keys) is masked in the sandbox's own /proc", () => {
    const masked = buildBwrapArgs(layout({ procMasks: ['/proc/keys', '/proc/key-users'] }));
    expect(seen(masked, '/proc/keys')).toBe('null');
    expect(seen(masked, '/proc/key-users')).toBe('null');
    expect(seen(masked, '/proc/self/status')).toBe('proc');
  });

  it('the rest of the system is read-only', () => {
    expect(seen(args, '/usr/bin/secret-tool')).toBe('ro:/usr/bin/secret-tool');
    expect(seen(args, '/etc/passwd')).toBe('ro:/etc/passwd');
    expect(seen(args, '/dev/null')).toBe('dev');
    expect(seen(args, '/proc/self/status')).toBe('proc');
  });

  it('rebinds the project (writable), the broker socket, the shims and the install root', () => {
    expect(seen(args, '/home/u/src/app/README')).toBe('rw:/home/u/src/app/README');
    expect(seen(args, SANDBOX_SOCKET)).toBe('rw:/tmp/entraclaw-sandbox-x/run/agent.sock');
    expect(seen(args, `${SANDBOX_BIN}/security`)).toBe('ro:/tmp/entraclaw-sandbox-x/bin/security');
    expect(seen(args, '/home/u/.npm/lib/node_modules/entraclaw/dist/shim/security-main.cjs')).toBe(
      'ro:/home/u/.npm/lib/node_modules/entraclaw/dist/shim/security-main.cjs',
    );
    // The rest of the project's neighbours stay hidden.
    expect(seen(args, '/home/u/src/other')).toBe('hidden');
    expect(args.slice(-2)).toEqual(['--chdir', '/home/u/src/app']);
  });

  it('an install root outside the hidden directories needs no extra bind', () => {
    const a = buildBwrapArgs(layout({ installRoot: '/usr/lib/node_modules/entraclaw' }));
    expect(mounts(a).some((m) => m.dest === '/usr/lib/node_modules/entraclaw')).toBe(false);
    expect(seen(a, '/usr/lib/node_modules/entraclaw/dist/x.js')).toBe(
      'ro:/usr/lib/node_modules/entraclaw/dist/x.js',
    );
  });

  it('an install root under /tmp is bound back read-only', () => {
    const a = buildBwrapArgs(layout({ installRoot: '/tmp/checkout' }));
    expect(seen(a, '/tmp/checkout/dist/cli/main.cjs')).toBe('ro:/tmp/checkout/dist/cli/main.cjs');
  });

  it('allow_paths are writable, read_paths read-only', () => {
    const a = buildBwrapArgs(layout({ allowPaths: ['/home/u/.cache/agent'], readPaths: ['/home/u/.nvm'] }));
    expect(seen(a, '/home/u/.cache/agent/x')).toBe('rw:/home/u/.cache/agent/x');
    expect(seen(a, '/home/u/.nvm/bin/node')).toBe('ro:/home/u/.nvm/bin/node');
  });

  it('a runtime dir under /run gets no second tmpfs', () => {
    const a = buildBwrapArgs(layout());
    expect(mounts(a).filter((m) => m.dest === '/run/user/1000')).toEqual([]);
    expect(seen(a, '/run/user/1000/bus')).toBe('hidden');
  });

  it('network = false unshares the network namespace', () => {
    expect(buildBwrapArgs(layout({ network: false }))).toContain('--unshare-net');
  });

  it('binds the project, allowed and read paths by their checked fds, and waits on the block fd', () => {
    const a = buildBwrapArgs(
      layout({
        allowPaths: ['/srv/cache'],
        readPaths: ['/etc/gitconfig'],
        blockFd: 5,
        pathFds: new Map([
          ['/home/u/src/app', 6],
          ['/srv/cache', 7],
          ['/etc/gitconfig', 8],
        ]),
      }),
    );
    const at = (flag: string, fd: string) => a.findIndex((x, i) => x === flag && a[i + 1] === fd);
    expect(a[at('--bind-fd', '6') + 2]).toBe('/home/u/src/app');
    expect(a[at('--bind-fd', '7') + 2]).toBe('/srv/cache');
    expect(a[at('--ro-bind-fd', '8') + 2]).toBe('/etc/gitconfig');
    // Never also by name: a name could lead somewhere else by the time bwrap binds it.
    expect(at('--bind', '/srv/cache')).toBe(-1);
    expect(a[a.indexOf('--block-fd') + 1]).toBe('5');
  });

  it('binds a path named twice once, the most open way (bwrap takes each fd once)', () => {
    const a = buildBwrapArgs(
      layout({
        allowPaths: ['/home/u/src/app', '/srv/x', '/srv/x'],
        readPaths: ['/srv/x', '/etc/y', '/etc/y'],
        pathFds: new Map([
          ['/home/u/src/app', 6],
          ['/srv/x', 7],
          ['/etc/y', 8],
        ]),
      }),
    );
    for (const fd of ['6', '7', '8']) expect(a.filter((x) => x === fd)).toHaveLength(1);
    expect(a[a.indexOf('7') - 1]).toBe('--bind-fd');
  });

  it('copies the shims in from their fds, read-only and executable, instead of binding a directory', () => {
    const a = buildBwrapArgs(
      layout({
        shimFds: new Map([
          ['security', 9],
          ['secret-tool', 10],
        ]),
      }),
    );
    const i = a.indexOf('--ro-bind-data');
    expect(a.slice(i - 2, i + 3)).toEqual([
      '--perms',
      '0555',
      '--ro-bind-data',
      '9',
      `${SANDBOX_BIN}/security`,
    ]);
    expect(a).toContain(`${SANDBOX_BIN}/secret-tool`);
    expect(a).not.toContain(SANDBOX_BIN);
  });

  it("refuses the host's /proc as a read or allowed path", () => {
    for (const over of [{ readPaths: ['/proc'] }, { allowPaths: ['/proc/self'] }]) {
      expect(() => buildBwrapArgs(layout(over)), JSON.stringify(over)).toThrow(/is the host's \/proc/);
    }
  });

  it('passes the seccomp and info fds to bwrap', () => {
    const a = buildBwrapArgs(layout({ seccompFd: 3, infoFd: 4 }));
    expect(a[a.indexOf('--seccomp') + 1]).toBe('3');
    expect(a[a.indexOf('--info-fd') + 1]).toBe('4');
    expect(buildBwrapArgs(layout())).not.toContain('--seccomp');
  });
});

describe("buildBwrapArgs: Entraclaw's and the keyring's files are hidden wherever they are", () => {
  const hide = {
    hideDirs: [
      '/data/u/xdg-data/entraclaw', // XDG_DATA_HOME outside $HOME: the vault
      '/data/u/xdg-data/keyrings',
      '/home/u/.config/entraclaw',
      '/home/u/.local/share/keyrings',
    ],
    hideFiles: ['/data/u/passphrase', '/srv/bus/socket'],
  };

  it('directories and files outside the hidden roots are masked', () => {
    const a = buildBwrapArgs(layout(hide));
    expect(seen(a, '/data/u/xdg-data/entraclaw/vault.ecv')).toBe('hidden');
    expect(seen(a, '/data/u/xdg-data/keyrings/login.keyring')).toBe('hidden');
    expect(seen(a, '/data/u/passphrase')).toBe('null');
    expect(seen(a, '/srv/bus/socket')).toBe('null');
    expect(seen(a, '/data/u/other')).toBe('ro:/data/u/other');
  });

  it('paths already inside an empty $HOME get no mount (the tmpfs $HOME stays empty)', () => {
    const a = buildBwrapArgs(layout(hide));
    expect(
      mounts(a).some((m) => m.dest.startsWith('/home/u/.config') || m.dest.startsWith('/home/u/.local')),
    ).toBe(false);
  });

  it('--project ~ binds $HOME back, but not its Entraclaw and keyring files', () => {
    const a = buildBwrapArgs(layout({ ...hide, project: HOME }));
    expect(seen(a, '/home/u/notes.txt')).toBe('rw:/home/u/notes.txt');
    expect(seen(a, '/home/u/.config/entraclaw/policy.toml')).toBe('hidden');
    expect(seen(a, '/home/u/.local/share/keyrings/login.keyring')).toBe('hidden');
  });

  it('a project that contains the runtime dir does not expose the bus', () => {
    const a = buildBwrapArgs(
      layout({
        runtimeDir: '/tmp/session/runtime',
        project: '/tmp/session',
        hideDirs: ['/tmp/session/runtime'],
        hideFiles: ['/tmp/session/bus'],
      }),
    );
    expect(seen(a, '/tmp/session/work.txt')).toBe('rw:/tmp/session/work.txt');
    expect(seen(a, '/tmp/session/runtime/keyring/control')).toBe('hidden');
    expect(seen(a, '/tmp/session/bus')).toBe('null');
  });

  it('an allowed or read path that contains a hidden directory is masked too', () => {
    const a = buildBwrapArgs(layout({ ...hide, allowPaths: ['/data/u'], readPaths: ['/home/u/.config'] }));
    expect(seen(a, '/data/u/xdg-data/entraclaw/vault.ecv')).toBe('hidden');
    expect(seen(a, '/home/u/.config/entraclaw/policy.toml')).toBe('hidden');
    expect(seen(a, '/home/u/.config/git/config')).toBe('ro:/home/u/.config/git/config');
  });

  it('pins every directory between a writable root and a mask, so renaming it cannot carry the mask away', () => {
    const a = buildBwrapArgs(layout({ ...hide, project: HOME, allowPaths: ['/data/u'] }));
    const all = mounts(a);
    const roots = [HOME, '/data/u'];
    const pins = all.filter((m) => m.op === 'rw' && m.src === m.dest && !roots.includes(m.dest));
    expect(pins.map((m) => m.dest).sort()).toEqual(
      ['/data/u/xdg-data', '/home/u/.config', '/home/u/.local', '/home/u/.local/share'].sort(),
    );
    // Each pin comes before every mask below it: a pin after a mask would bind the real directory over it.
    for (const pin of pins) {
      const masksBelow = all.filter(
        (m) => (m.op === 'tmpfs' || m.src === '/dev/null') && under(m.dest, pin.dest),
      );
      expect(masksBelow.length, pin.dest).toBeGreaterThan(0);
      for (const m of masksBelow)
        expect(all.indexOf(pin), `${pin.dest} before ${m.dest}`).toBeLessThan(all.indexOf(m));
    }
    expect(seen(a, '/home/u/.local/share/keyrings/login.keyring')).toBe('hidden');
    expect(seen(a, '/home/u/.local/bin/tool')).toBe('rw:/home/u/.local/bin/tool');
    expect(seen(a, '/data/u/xdg-data/entraclaw/vault.ecv')).toBe('hidden');
  });

  it('ancestorsToPin lists the directories strictly between a root and each path, parents first', () => {
    expect(ancestorsToPin(['/h/.local/share/entraclaw', '/h/.config/entraclaw'], ['/h'])).toEqual([
      '/h/.config',
      '/h/.local',
      '/h/.local/share',
    ]);
    expect(ancestorsToPin(['/h/entraclaw'], ['/h'])).toEqual([]);
    expect(ancestorsToPin(['/h'], ['/h'])).toEqual([]);
    expect(ancestorsToPin(['/elsewhere/x/y'], ['/h'])).toEqual([]);
    expect(ancestorsToPin(['/h/a/b/c'], ['/h', '/h/a'])).toEqual(['/h/a', '/h/a/b']);
  });

  it('refuses a project, allowed or read path inside a hidden one, and a project of /', () => {
    const bad: Partial<SandboxLayout>[] = [
      { project: '/home/u/.config/entraclaw/sub' },
      { allowPaths: ['/data/u/xdg-data/keyrings'] },
      { readPaths: ['/data/u/xdg-data/entraclaw'] },
      { project: '/' },
    ];
    for (const over of bad) {
      expect(() => buildBwrapArgs(layout({ ...hide, ...over })), JSON.stringify(over)).toThrow(UsageError);
    }
  });
});

describe('sandboxEnv', () => {
  const env = sandboxEnv(
    {
      PATH: '/usr/bin:/bin',
      HOME: '/home/u',
      TERM: 'xterm',
      DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus',
      DBUS_STARTER_ADDRESS: 'x',
      GNOME_KEYRING_CONTROL: '/run/user/1000/keyring',
      SSH_AUTH_SOCK: '/run/user/1000/ssh',
      ENTRACLAW_PASSPHRASE_FILE: '/home/u/.pass',
      ENTRACLAW_STORE: 'kernel-keyring',
    },
    '/home/u',
  );

  it('drops the bus, keyring, ssh-agent and Entraclaw variables and points at the broker', () => {
    expect(env).toEqual({
      PATH: `${SANDBOX_BIN}:/usr/bin:/bin`,
      HOME: '/home/u',
      TERM: 'xterm',
      ENTRACLAW_SOCKET: SANDBOX_SOCKET,
    });
  });
});

describe('dbusAddressSockets', () => {
  it('finds unix:path sockets (escaped, several alternatives)', () => {
    expect(dbusAddressSockets('unix:path=/tmp/dbus-abc,guid=0123')).toEqual({
      paths: ['/tmp/dbus-abc'],
      needsNetns: false,
    });
    expect(dbusAddressSockets('unix:path=/srv/my%20bus;unix:path=/run/user/1/bus')).toEqual({
      paths: ['/srv/my bus', '/run/user/1/bus'],
      needsNetns: false,
    });
  });

  it('abstract and TCP buses need a network namespace', () => {
    expect(dbusAddressSockets('unix:abstract=/tmp/dbus-xyz,guid=1').needsNetns).toBe(true);
    expect(dbusAddressSockets('tcp:host=localhost,port=1234').needsNetns).toBe(true);
    expect(dbusAddressSockets('unix:path=/tmp/a;tcp:host=x,port=1')).toEqual({
      paths: ['/tmp/a'],
      needsNetns: true,
    });
  });

  it('no address: nothing to hide', () => {
    expect(dbusAddressSockets(undefined)).toEqual({ paths: [], needsNetns: false });
    expect(dbusAddressSockets('')).toEqual({ paths: [], needsNetns: false });
  });
});

describe('seccomp keyring filter', () => {
  // A tiny classic-BPF interpreter, enough for the filter: it runs the program on a seccomp_data.
  function runFilter(prog: ReturnType<typeof keyringFilter>, arch: number, nr: number): number {
    let a = 0;
    for (let pc = 0; pc < prog.length; pc++) {
      const { code, jt, jf, k } = prog[pc]!;
      if (code === 0x20) a = k === 0 ? nr : k === 4 ? arch : Number.NaN;
      else if (code === 0x54) a = (a & k) >>> 0;
      else if (code === 0x15) pc += a === k ? jt : jf;
      else if (code === 0x06) return k;
      else throw new Error(`unexpected opcode ${code}`);
    }
    throw new Error('fell off the end');
  }
  const ALLOW = 0x7fff0000;
  const EPERM = 0x00050001;

  it('blocks add_key, request_key and keyctl on every ABI of x64 and arm64, and nothing else', () => {
    expect(BLOCKED_SYSCALLS).toEqual(['add_key', 'request_key', 'keyctl']);
    const cases: Array<['x64' | 'arm64', number, number[]]> = [
      ['x64', 0xc000003e, [248, 249, 250]],
      ['x64', 0xc000003e, [0x40000000 + 248, 0x40000000 + 250]], // x32
      ['x64', 0x40000003, [286, 287, 288]], // i386
      ['arm64', 0xc00000b7, [217, 218, 219]],
      ['arm64', 0x40000028, [309, 310, 311]],
    ];
    for (const [arch, audit, blocked] of cases) {
      const prog = keyringFilter(arch);
      for (const nr of blocked) expect(runFilter(prog, audit, nr), `${arch} ${nr}`).toBe(EPERM);
      for (const nr of [0, 1, 2, 59, 60, 231, 247, 251, 285, 289, 1000]) {
        expect(runFilter(prog, audit, nr), `${arch} ${nr}`).toBe(ALLOW);
      }
    }
  });

  it('serialises as 8-byte sock_filter records in host byte order', () => {
    const prog = keyringFilter('x64');
    const le = keyringFilterBytes('x64', true);
    expect(le.length).toBe(prog.length * 8);
    expect(le.readUInt16LE(0)).toBe(prog[0]!.code);
    expect(le.readUInt32LE(4)).toBe(prog[0]!.k);
    expect(le.readUInt32LE(le.length - 4)).toBe(EPERM);
    expect(keyringFilterBytes('x64', false).readUInt32BE(4)).toBe(prog[0]!.k);
  });
});
