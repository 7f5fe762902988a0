import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  constants as fsConstants,
  lstatSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { constants, endianness, userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../daemon/log.js';
import type { Agent } from '../daemon/server.js';
import { MAX_SOCKET_PATH, makePrivateDir, socketPath } from '../daemon/socket-path.js';
import { UnavailableError, UsageError } from '../errors.js';
import { userNamespaceOf } from '../identity/namespace.js';
import { dieOfSigint } from '../lib/die-of-sigint.js';
import { assertNoInspector } from '../lib/inspector-signal.js';
import { makeDirs } from '../lib/make-dir.js';
import { native } from '../lib/native.js';
import { canonicalIfExists, xdgDir } from '../lib/paths.js';
import { childrenOf } from '../lib/proc-tree.js';
import { shellStatus } from '../lib/shell-status.js';
import { inForegroundOfTerminal } from '../lib/terminal.js';
import { findCommand, missingInterpreter, whyNotRunnable } from '../lib/which.js';
import { buildBwrapArgs, dbusAddressSockets, isUnderAny, sandboxEnv } from '../sandbox/bwrap-args.js';
import { namespaceHint, readNamespaceSettings } from '../sandbox/namespace-hint.js';
import { loadProfile, type SandboxProfile } from '../sandbox/profile.js';
import { createScratch, sweepStaleScratch } from '../sandbox/scratch.js';
import { isSeccompArch, keyringFilterBytes } from '../sandbox/seccomp.js';
import { commandGroup, passTerminalSignals, signalAll } from '../sandbox/terminal.js';
import { installShims, SHIMS } from '../shim/install.js';
import type { StoreOptions } from './context.js';
import { openStore } from './open-store.js';
import { note } from './output.js';
import { assertCommandNamed, cannotStart } from './start-error.js';

/** Options of `entraclaw sandbox`. */
export interface SandboxOptions extends StoreOptions {
  profile?: string;
  allowPath?: string[];
  project?: string;
  verbose?: boolean;
}

const BWRAP = 'bwrap';
/** The fd bwrap reads the seccomp program from (stdio is 0-2). */
const SECCOMP_FD = 3;
/** The fd bwrap reports the sandbox's init pid on. */
const INFO_FD = 4;
/** The fd the sandbox waits on before it starts the command. */
const BLOCK_FD = 5;
/** The first fd of the bound paths (pathFds). */
const FIRST_PATH_FD = 6;

/**
 * `entraclaw sandbox [--profile P] [--allow-path D]... -- CMD`: runs CMD under bubblewrap with the user's
 * keyrings, D-Bus session, kernel keyring, vault and Entraclaw's own files out of reach, and a private
 * broker (granting only the profile's items) as the one door to secrets — through the shims or the SDK.
 */
export async function sandbox(command: string[], opts: SandboxOptions): Promise<void> {
  if (process.platform !== 'linux') throw new UnavailableError('entraclaw sandbox needs Linux (bubblewrap)');
  assertCommandNamed(command, 'usage: entraclaw sandbox [--profile P] -- CMD ARGS');
  if (!isSeccompArch(process.arch)) {
    throw new UnavailableError(
      `entraclaw sandbox does not support ${process.arch}`,
      'it runs on x64 and arm64',
    );
  }
  const help = spawnSync(BWRAP, ['--help']);
  if (help.status !== 0) {
    throw new UnavailableError(
      'bubblewrap (bwrap) is not installed',
      'install it: sudo apt-get install bubblewrap',
    );
  }
  const bindsByFd = help.stdout.toString().includes('--bind-fd');
  const profile: SandboxProfile = opts.profile
    ? await loadProfile(opts.profile)
    : { grants: [], allowPaths: [], readPaths: [], network: true };
  // Every path is checked before anything starts, so a typo is a usage error, not a half-built sandbox.
  // The project as the user reached it: the shell's PWD when it is the cwd, so a symlink on the way
  // (which process.cwd() has already resolved) is still seen by the planted-link check below.
  const projectGiven = opts.project ?? logicalCwd();
  const project = canonical(projectGiven, '--project');
  if (opts.project === undefined) refuseHomeAsDefault(project);
  const allowPaths = [
    ...profile.allowPaths.map((p) => canonical(p, `allow_paths in ${opts.profile}`)),
    ...(opts.allowPath ?? []).map((p) => canonical(p, '--allow-path')),
  ];
  const readPaths = profile.readPaths.map((p) => canonical(p, `read_paths in ${opts.profile}`));
  // What a command may write in one run it may have arranged for the next: a symlink planted in the
  // project that an allowed path goes through would widen what the next run may write.
  const writable = [project, ...allowPaths];
  refusePlantedLinks(
    [
      ['--project', projectGiven],
      ...profile.allowPaths.map((p) => [`allow_paths in ${opts.profile}`, p] as const),
      ...(opts.allowPath ?? []).map((p) => ['--allow-path', p] as const),
      ...profile.readPaths.map((p) => [`read_paths in ${opts.profile}`, p] as const),
      ...(opts.profile ? [['--profile', opts.profile] as const] : []),
    ],
    writable,
  );
  if (opts.profile && isUnderAny(canonicalIfExists(dirname(resolve(opts.profile))), writable)) {
    note(
      `warning: the profile ${opts.profile} is inside a path the command may write, so it can change its own grants for the next run; keep profiles elsewhere (~/.config/entraclaw is hidden from it)`,
    );
  }
  // Inside, the same files are at the same paths (only Entraclaw's own and the stores are hidden), so a
  // command that does not run here would fail there with a bare bwrap message and exit 1. The shims are
  // the exception: first on PATH inside, whether or not the host has such a command.
  if (!Object.hasOwn(SHIMS, command[0]!)) {
    const found = findCommand(command[0]!, process.env.PATH, project);
    if (!found || missingInterpreter(found) !== undefined) {
      throw cannotStart(
        command[0]!,
        found ? 'ENOENT' : whyNotRunnable(command[0]!, process.env.PATH, project),
        undefined,
        ' (the sandbox sees the same PATH)',
        project,
      );
    }
  }
  const { ctx, config } = await import('./context.js').then((m) => m.storeContext(opts));
  const env = process.env;
  const home = userHome();
  const xdgRuntime = xdgDir(env.XDG_RUNTIME_DIR);
  const runtimeDir = xdgRuntime ? canonicalIfExists(xdgRuntime) : undefined;
  const homeDir = canonicalIfExists(home);
  const bus = dbusAddressSockets(env.DBUS_SESSION_BUS_ADDRESS);
  // Wherever they live: Entraclaw's own files, the Secret Service keyrings, the passphrase, the bus socket.
  // The keyrings both where this shell's XDG_DATA_HOME says and at the default: a gnome-keyring started by
  // PAM or systemd uses the default whatever this shell sets.
  const keyrings = [
    ...new Set([
      join(xdgDir(env.XDG_DATA_HOME) ?? join(home, '.local', 'share'), 'keyrings'),
      join(home, '.local', 'share', 'keyrings'),
    ]),
  ];
  const ours = [ctx.paths.config, ctx.paths.data, ctx.paths.state, ...keyrings];
  // One that does not exist yet is created, empty and private, so that it exists to be masked: a command
  // that may write its parent (`--project ~`) could otherwise create it and plant a policy.toml, an
  // agent.toml or a keyring that the host's daemon and keyring would trust afterwards.
  for (const dir of [...ours, ctx.paths.runtime]) createPrivate(dir);
  const hideDirs = existing([...ours, ctx.paths.runtime, ...(runtimeDir ? [runtimeDir] : [])]);
  const passphraseFiles = [
    ...(opts.passphraseFile ? [opts.passphraseFile] : []),
    ...(env.ENTRACLAW_PASSPHRASE_FILE ? [env.ENTRACLAW_PASSPHRASE_FILE] : []),
  ];
  refuseMissingWritable(passphraseFiles, writable);
  // A pipe (`<(pass show ...)`) is nothing the command can open: /proc inside is the sandbox's own, and
  // every fd of ours beyond stdio is closed before bwrap starts. Files are masked.
  const passphrasePaths = passphraseFiles.filter((f) => !statSync(f, { throwIfNoEntry: false })?.isFIFO());
  // The user's daemon wherever this shell would find it. It refuses callers from the sandbox's user
  // namespace anyway (identity/namespace.ts); hiding its socket also keeps them from trying.
  const daemonSockets = [socketPath(ctx.paths, config.agent.socket), socketPath(ctx.paths)];
  const hideFiles = existing([...passphrasePaths, ...bus.paths, ...daemonSockets]);
  // A mask covers the real file or directory, but a symlink on the way to it cannot be masked or pinned:
  // inside a writable path the command could replace `~/.config -> dotfiles/config` with a directory of
  // its own, and the host would read a policy.toml (or passphrase file) planted there from then on.
  refusePlantedLinks(
    [
      ...[...ours, ctx.paths.runtime].map((d) => ['a directory the sandbox hides', d] as const),
      ...passphrasePaths.map((f) => ['the passphrase file', f] as const),
      ...daemonSockets.map((f) => ["the daemon's socket", f] as const),
    ],
    writable,
    'give the sandbox a project (and allowed paths) that does not contain that symlink',
  );
  if (profile.network && bus.needsNetns) {
    note(
      'the D-Bus session bus is an abstract or TCP socket, so the sandbox runs without network to cut it off',
    );
  }

  // Its broker holds the store open (the vault's key) for as long as the command runs: no core dumps and
  // no ptrace or /proc/PID/mem by other programs of this user, before a secret is in memory. Not harden():
  // its RLIMIT_CORE 0 would be inherited by the command, whose crashes are the user's to debug.
  native().noCoreDump();
  await assertNoInspector();
  const sel = await openStore(opts);
  // Where no sandbox can reach: Entraclaw's runtime directory is masked (and its parents pinned) in every
  // sandbox, so another run allowed to write /tmp cannot swap this run's shims or socket.
  const scratchRoot = join(ctx.paths.runtime, 'sandbox');
  // The broker's socket and the shims live under it: a runtime directory another user could reach would
  // let them swap what the sandbox binds.
  makePrivateDir(ctx.paths.runtime, process.getuid!(), true);
  createPrivate(scratchRoot);
  sweepStaleScratch(scratchRoot);
  const scratchDir = createScratch(scratchRoot);
  const scratch = scratchDir.dir;
  let broker: Agent | undefined;
  let pathFds: [string, number][] = [];
  let status = 1;
  let interrupted = false;
  try {
    // The broker's stderr is the command's: only its warnings and errors belong there, unless -v.
    const log = createLogger({ verbose: opts.verbose, quiet: true });
    const { startAgent } = await import('../daemon/server.js');
    const socket = join(scratch, 'run', 'agent.sock');
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw new UsageError(
        `the sandbox's broker socket would be ${Buffer.byteLength(socket)} bytes long (a Unix socket path holds ${MAX_SOCKET_PATH}): ${socket}`,
        'use a shorter XDG_RUNTIME_DIR (the usual /run/user/UID is fine)',
      );
    }
    broker = await startAgent({
      socket,
      paths: ctx.paths,
      store: sel.store,
      log,
      version: '0.1.0',
      boundary: {
        grants: profile.grants,
        auditFile: join(ctx.paths.state, 'sandbox-audit', `${Date.now()}-${process.pid}.jsonl`),
      },
    });
    const shimDir = join(scratch, 'bin');
    const shims = installShims(shimDir).map((p) => [basename(p), readFileSync(p)] as const);
    const installRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const nodeRoot = resolve(dirname(realpathSync(process.execPath)), '..');
    const hiddenRoots = [homeDir, '/tmp', '/run', ...(runtimeDir ? [runtimeDir] : [])];
    if (!bindsByFd) {
      note(
        'warning: this bwrap has no --bind-fd (bubblewrap < 0.8): paths are bound by name, so a sandbox running at the same time could swap one for a symlink between the check and the bind',
      );
    }
    pathFds = bindsByFd ? openChecked([project, ...allowPaths, ...readPaths]) : [];
    const args = buildBwrapArgs({
      home: homeDir,
      ...(runtimeDir ? { runtimeDir } : {}),
      project,
      socket,
      shimDir,
      installRoot: realpathSync(installRoot),
      allowPaths,
      readPaths: [...readPaths, ...(isUnderAny(nodeRoot, hiddenRoots) ? [nodeRoot] : [])],
      network: profile.network && !bus.needsNetns,
      hideDirs,
      hideFiles,
      procMasks: ['/proc/keys', '/proc/key-users'].filter((f) => existsSync(f)),
      seccompFd: SECCOMP_FD,
      infoFd: INFO_FD,
      blockFd: BLOCK_FD,
      pathFds: new Map(pathFds.map(([p], i) => [p, FIRST_PATH_FD + i])),
      shimFds: new Map(shims.map(([name], i) => [name, FIRST_PATH_FD + pathFds.length + i])),
    });
    // bwrap gets its own session too (the command already does, --new-session): a Ctrl-C at the terminal
    // goes to our process group, and bwrap would die of it and take the command down with SIGKILL. So
    // the terminal's signals reach only us, and forward() hands them to the command.
    // Only what is mapped below reaches bwrap: an fd we inherited open (a vault or a config directory
    // opened by the shell that ran us) would otherwise be a way out of every mask.
    native().cloexecFrom(3);
    // Caught from before bwrap starts: until then a SIGTERM would kill us at once and leave bwrap (in a
    // session of its own) to start the command unwatched. A handler runs only after this synchronous
    // stretch, so it finds `child` and `init` set, unless the spawn threw.
    let child: ChildProcess | undefined;
    let init: (() => number | undefined) | undefined;
    let reported = false; // bwrap told us the sandbox's init: the sandbox exists
    let stopping = false; // a SIGINT or SIGTERM was passed on
    let terminating = false; // a SIGTERM was
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(s, () => {
        if (!child || !init) return void process.exit(128 + constants.signals[s]);
        if (s === 'SIGINT') interrupted = true;
        const pid = init();
        // A second SIGTERM ends the sandbox whatever its processes do (a command that stopped the
        // sandbox's init with ptrace would otherwise keep bwrap, and us, waiting forever); so does a
        // second SIGINT once the command is gone. While it runs, each Ctrl-C is its own: a shell or a REPL
        // inside takes one at every prompt, and must not be killed at the second (Ctrl-\ ends us, and with
        // us the sandbox). SIGHUP asks a command to reload, not to stop: passed on every time, it never
        // escalates.
        const gone = pid === undefined || childrenOf(pid).length === 0;
        if (s !== 'SIGHUP' && stopping && (gone || (s === 'SIGTERM' && terminating))) {
          child.kill('SIGKILL');
          return;
        }
        if (s !== 'SIGHUP') stopping = true;
        if (s === 'SIGTERM') terminating = true;
        // bwrap passes no signal on (killed, it takes the command down with SIGKILL, --die-with-parent),
        // so the signal goes to the command, and to bwrap only when nothing of the command is alive (a
        // zombie takes a signal and does nothing with it). A Ctrl-C from the terminal goes to the
        // command's whole process group, as the terminal would send it (a shell's foreground job dies of
        // it, the shell lives on); a signal sent to us alone, to the command alone.
        const targets =
          pid === undefined
            ? []
            : s === 'SIGINT' && inForegroundOfTerminal()
              ? commandGroup(pid)
              : childrenOf(pid);
        if (!signalAll(targets, s)) child.kill(s);
      });
    }
    const untrap = passTerminalSignals(() => init?.());
    const bwrap = spawn(BWRAP, [...args, '--', ...command], {
      stdio: [
        'inherit',
        'inherit',
        'inherit',
        'pipe',
        'pipe',
        'pipe',
        ...pathFds.map(([, fd]) => fd),
        ...shims.map(() => 'pipe' as const),
      ],
      env: sandboxEnv(env, homeDir),
      detached: true,
    });
    child = bwrap;
    const pipes = bwrap.stdio as unknown as (NodeJS.WritableStream | null)[];
    // bwrap may close its end of a pipe early (it reads one byte of BLOCK_FD, and exits on a bad setup):
    // a reset on ours is the expected end of it, not a crash of ours.
    for (const pipe of pipes.slice(SECCOMP_FD)) pipe?.on('error', () => undefined);
    const feed = (fd: number, data: string | Buffer) => pipes[fd]!.end(data);
    // The filter goes through a pipe: no file for anyone to rewrite between its writing and bwrap's read.
    feed(SECCOMP_FD, keyringFilterBytes(process.arch, endianness() === 'LE'));
    // The shims go in as copies of the bytes read here, never as files another run could rewrite.
    for (const [i, [, bytes]] of shims.entries()) feed(FIRST_PATH_FD + pathFds.length + i, bytes);
    for (const [, fd] of pathFds.splice(0)) closeSync(fd);
    // The command starts (BLOCK_FD) only once the broker serves the sandbox's user namespace, and no
    // other: anything else that reaches its socket is refused.
    init = sandboxInit(bwrap.stdio[INFO_FD] as NodeJS.ReadableStream, (pid) => {
      reported = true;
      const ns = userNamespaceOf(pid);
      if (ns === undefined) {
        note('the sandbox did not start: its user namespace could not be read');
        bwrap.kill('SIGKILL');
        return;
      }
      broker?.serveNamespace(ns);
      feed(BLOCK_FD, '1');
    });
    status = await new Promise<number>((res) => {
      bwrap.on('error', () => res(127));
      bwrap.on('close', (code, signal) => res(shellStatus(code, signal)));
    });
    untrap();
    // An init never reported is a sandbox bwrap could not build (user namespaces refused, most often):
    // its own message is on stderr already; this says which setting and what changes it.
    if (!reported && !stopping && status !== 0) {
      throw new UnavailableError(
        `the sandbox did not start: bubblewrap could not set it up (exit ${status})`,
        namespaceHint(readNamespaceSettings()),
      );
    }
  } finally {
    for (const [, fd] of pathFds) closeSync(fd);
    if (broker) await broker.close();
    else await sel.store.close();
    await Promise.all(sel.readFirst.map((s) => s.close()));
    scratchDir.release();
  }
  process.exitCode = status;
  // bwrap reports a command killed by a signal as 128 + its number: after our Ctrl-C, 130 means it died of it.
  if (interrupted && status === 128 + constants.signals.SIGINT) await dieOfSigint();
}

/** The pid (as seen from here) of the sandbox's init, once bwrap has reported it on its info fd. */
function sandboxInit(info: NodeJS.ReadableStream, onPid: (pid: number) => void): () => number | undefined {
  let text = '';
  let pid: number | undefined;
  info.on('data', (d: Buffer) => {
    text += d.toString();
    // bwrap writes one JSON object and keeps the fd open while the sandbox runs: parse once it is whole.
    if (pid !== undefined) return;
    try {
      const n = (JSON.parse(text) as { 'child-pid'?: unknown })['child-pid'];
      if (typeof n === 'number' && Number.isInteger(n) && n > 1) {
        pid = n;
        onPid(n);
      }
    } catch {
      // Not whole yet; without a report the command never starts (it waits on BLOCK_FD).
    }
  });
  info.on('error', () => undefined);
  return () => pid;
}

/** The canonical path of an existing directory given by the user; a UsageError naming `what` otherwise. */
function canonical(path: string, what: string): string {
  try {
    return realpathSync(path);
  } catch (err) {
    // A profile's paths (and --allow-path=~/x, which the shell leaves alone) are taken as written.
    const tilde = /^~(\/|$)/.test(path) && process.env.HOME;
    throw new UsageError(
      `${what}: ${path} does not exist (${(err as NodeJS.ErrnoException).code})`,
      tilde
        ? `~ is not expanded here: write the path in full, ${join(tilde, path.slice(1))}`
        : 'create it first, or give another path',
    );
  }
}

// Opens each path and checks that the fd is the path that was checked: bwrap binds the fd (--bind-fd),
// so a path swapped for a symlink after this point changes nothing.
function openChecked(paths: string[]): [string, number][] {
  const out: [string, number][] = [];
  try {
    for (const p of [...new Set(paths)]) {
      // O_NOFOLLOW: a last component swapped for a symlink fails here; an earlier one, the check below.
      const fd = openSync(p, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      out.push([p, fd]);
      if (realpathSync(`/proc/self/fd/${fd}`) !== p) {
        throw new UsageError(`${p} changed while it was being checked`, 'run the command again');
      }
    }
    return out;
  } catch (err) {
    for (const [, fd] of out) closeSync(fd);
    if (err instanceof UsageError) throw err;
    throw new UsageError(
      `cannot open ${(err as NodeJS.ErrnoException).path ?? 'a sandbox path'}: ${(err as NodeJS.ErrnoException).code}`,
      'check the project, allowed and read paths',
    );
  }
}

// The current directory is the project only by default; a shell left in ~ (or /) would silently make
// ~/.bashrc and ~/.ssh/authorized_keys writable for the command, and those changes outlive the run.
// Naming it with --project is the user's choice (docs/sandbox.md).
function refuseHomeAsDefault(project: string): void {
  const home = userHome();
  if (!home.startsWith('/') || !isUnderAny(canonicalIfExists(home), [project])) return;
  throw new UsageError(
    `the current directory ${project} would be the sandbox's writable project, and it is (or contains) your home directory: the command could change ~/.bashrc, ~/.ssh and the like for good`,
    'cd into the project directory first, or name it with --project (--project ~ if you really mean your whole home)',
  );
}

// $HOME when it is absolute; else (env -i, a service) the account's own home from passwd, which is where
// a login shell reads ~/.bashrc and a keyring daemon keeps its files.
function userHome(): string {
  const given = process.env.HOME;
  return given?.startsWith('/') ? given : userInfo().homedir;
}

// The current directory as the shell names it ($PWD), when that is where we are; else the resolved one.
function logicalCwd(): string {
  const cwd = process.cwd();
  const pwd = process.env.PWD;
  return pwd?.startsWith('/') && canonicalIfExists(pwd) === cwd ? pwd : cwd;
}

// Refuses a path that goes through a symlink lying inside a writable root of this run (other than the
// path itself): an earlier run with the same roots could have put it there, or could replace it. The
// resolved path, given as such, is taken: then the user named it.
function refusePlantedLinks(
  paths: (readonly [string, string])[],
  writableRoots: string[],
  hint?: string,
): void {
  for (const [what, given] of paths) {
    const parts = resolve(given).split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const at = `/${parts.slice(0, i).join('/')}`;
      let link = false;
      try {
        link = lstatSync(at).isSymbolicLink();
      } catch {
        break;
      }
      if (!link) continue;
      const where = canonicalIfExists(dirname(at));
      const root = writableRoots.find((r) => r !== canonicalIfExists(given) && isUnderAny(where, [r]));
      if (root) {
        throw new UsageError(
          `${what} ${given} goes through the symlink ${at}, inside ${root}, which the sandboxed command may write: an earlier run could have planted it`,
          hint ?? `if ${canonicalIfExists(given)} is meant, give that path itself`,
        );
      }
    }
  }
}

function createPrivate(dir: string): void {
  try {
    makeDirs(dir, 0o700);
  } catch (err) {
    throw new UnavailableError(
      `cannot create ${dir}, which the sandbox must hide: ${(err as NodeJS.ErrnoException).code}`,
      'create it (mode 700) or fix the permissions of its parent',
    );
  }
}

// A named passphrase file that does not exist cannot be masked (a mount needs something to cover); where
// the command may write, it could create it and choose the passphrase of the user's next vault.
function refuseMissingWritable(files: string[], writable: string[]): void {
  for (const file of files) {
    if (existsSync(file)) continue;
    const where = join(canonicalIfExists(dirname(resolve(file))), basename(file));
    if (isUnderAny(where, writable)) {
      throw new UsageError(
        `the passphrase file ${file} does not exist, and the sandboxed command could create it`,
        'create the passphrase file first, or unset ENTRACLAW_PASSPHRASE_FILE / --passphrase-file',
      );
    }
  }
}

/** The canonical paths of those that exist (a path that does not exist needs no hiding). */
function existing(paths: string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    if (!existsSync(p)) continue;
    out.add(realpathSync(p));
  }
  return [...out];
}
