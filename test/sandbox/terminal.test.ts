import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it, onTestFinished } from 'vitest';
import { statFields } from '../../src/lib/proc-stat.js';
import { childrenOf, descendantsOf } from '../../src/lib/proc-tree.js';
import { waitFor } from '../support/broker.js';
import { CLI } from '../support/cli.js';
import { bwrapMissing, describeIfProvided, inTestSession, randomName } from '../support/context.js';
import { startPty } from '../support/pty.js';

// `entraclaw sandbox` at a real terminal (a pty), with an interactive shell inside, as a developer uses
// it. The command has no controlling terminal (a session of its own), so every key the terminal turns
// into a signal reaches entraclaw only; these check that it reaches the command as the terminal would
// have delivered it. The outer shell is an interactive bash with job control, as in a real terminal.
const missing =
  bwrapMissing() ??
  (spawnSync('bash', ['--version']).status !== 0
    ? 'bash is not installed'
    : !inTestSession
      ? 'no Secret Service to test against: run under scripts/with-keyring.sh, as make test does'
      : undefined);

/** The inner shell's prompt: keys typed after a Ctrl-C wait for the next one (readline drops them until then). */
const PROMPT = 'in> ';
const prompts = (out: string) => out.split(PROMPT).length - 1;

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describeIfProvided('entraclaw sandbox at a terminal', missing, () => {
  const root = missing ? '' : mkdtempSync('/var/tmp/entraclaw-sandbox-tty-');
  const project = join(root, 'project');
  const profile = join(root, 'profile.toml');
  const S = randomName('tty-svc');
  const VALUE = `tty-${randomName('v')}`;
  const env = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: join(root, 'home'),
    DBUS_SESSION_BUS_ADDRESS: process.env.DBUS_SESSION_BUS_ADDRESS,
    XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR,
    TERM: 'xterm',
    PS1: '$ ',
  });
  if (!missing) {
    mkdirSync(project, { recursive: true });
    mkdirSync(join(root, 'home'));
    writeFileSync(
      profile,
      `[credential_access]\nservices = [${JSON.stringify(S)}]\naccounts = ["me"]\noperations = ["read"]\n`,
    );
    const set = spawnSync(
      process.execPath,
      ['--', CLI, 'secret', 'set', S, 'me', '--store', 'secret-service'],
      {
        env: env(),
        input: VALUE,
      },
    );
    expect(set.status, set.stderr.toString()).toBe(0);
  }
  afterAll(() => {
    if (!missing) {
      spawnSync(process.execPath, ['--', CLI, 'secret', 'rm', S, 'me', '--store', 'secret-service'], {
        env: env(),
      });
      rmSync(root, { recursive: true, force: true });
    }
  });

  /** An interactive bash on a pty that has typed `entraclaw sandbox ... -- bash` and shows the inner prompt. */
  async function sandboxedShell() {
    const pty = startPty(['bash', '--norc', '--noprofile', '-i'], env());
    onTestFinished(() => void pty.driver.kill('SIGKILL'));
    const argv = [process.execPath, '--', CLI, 'sandbox', '--store', 'secret-service', '--profile', profile];
    pty.type(
      `cd ${sq(project)} && ${[...argv, '--', 'bash', '--norc', '--noprofile', '-i'].map(sq).join(' ')}\n`,
    );
    // INNER is set only inside: the same line typed to the outer shell would print "in=-".
    pty.type(`INNER=yes PS1=${sq(PROMPT)}; echo "in=$INNER-$((20+1))"\n`);
    await pty.waitFor('in=yes-21');
    return pty;
  }

  it("Ctrl-C ends the shell's foreground job, not the shell; Ctrl-C at its prompt does not end the sandbox", async () => {
    const pty = await sandboxedShell();
    const ready = join(project, `sleeping-${randomName('r')}`);
    pty.type(`touch ${sq(ready)}; sleep 120; echo "slept=$((1+1))"\n`);
    await waitFor(() => existsSync(ready), 'the sleep in the sandboxed shell');
    const before = prompts(pty.output());
    pty.type('\x03');
    await waitFor(() => prompts(pty.output()) > before, 'a prompt after Ctrl-C');
    pty.type('echo "after=$INNER-$((30+1))"\n');
    await pty.waitFor('after=yes-31');
    expect(pty.output()).not.toContain('slept=2');
    // At the prompt: twice more, as one does to clear a line.
    for (let i = 0; i < 2; i++) {
      const shown = prompts(pty.output());
      pty.type('\x03');
      await waitFor(() => prompts(pty.output()) > shown, 'a prompt after Ctrl-C');
    }
    pty.type(`secret-tool lookup service ${S} account me; echo " still=$INNER-$((40+1))"\n`);
    await pty.waitFor('still=yes-41');
    expect(pty.output()).toContain(VALUE);
    pty.type('exit 7\n');
    pty.type('echo "status=$?"\n');
    await pty.waitFor('status=7');
  }, 60_000);

  it('a resize of the terminal reaches the program in the sandbox (SIGWINCH)', async () => {
    const pty = await sandboxedShell();
    const py =
      'import signal, shutil\nsignal.signal(signal.SIGWINCH, lambda *a: print("cols=%d" % shutil.get_terminal_size().columns, flush=True))\nprint("wait" + "ing", flush=True)\nwhile True: signal.pause()\n';
    pty.type(`python3 -c ${sq(py)}\n`);
    await pty.waitFor('waiting');
    pty.resize(91, 30);
    await pty.waitFor('cols=91');
    pty.type('\x03');
    pty.type('exit\n');
  }, 60_000);

  it('Ctrl-Z stops the whole sandbox with entraclaw, so nothing inside reads the terminal; fg resumes it', async () => {
    const pty = await sandboxedShell();
    pty.type('\x1a');
    await pty.waitFor('Stopped');
    // The outer shell is the driver's child; everything below it (entraclaw, bwrap, the sandbox's init
    // and the shell inside) is stopped, except the outer bwrap and init, which read no terminal.
    const [outer] = childrenOf(pty.driver.pid!);
    const state = (pid: number) => statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[0];
    const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const inner = descendantsOf(outer!).filter((p) => comm(p) === 'bash' || comm(p) === 'node');
    expect(inner.length).toBe(2);
    expect(inner.map(state)).toEqual(['T', 'T']);
    pty.type('fg\n');
    pty.type('echo "back=$INNER-$((50+1))"\n');
    await pty.waitFor('back=yes-51');
    pty.type('exit 3\n');
    pty.type('echo "status=$?"\n');
    await pty.waitFor('status=3');
  }, 60_000);
});
