import { chmodSync, existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { resolvePaths } from '../../src/lib/paths.js';
import { NODE, nodeClientSource, run, waitFor } from '../support/broker.js';
import { CLI, isolatedEnv, runCli } from '../support/cli.js';
import { randomName } from '../support/context.js';
import { startPty } from '../support/pty.js';

// The vault passphrase prompt at a real terminal (a pty), end to end with the built CLI: what shows,
// what does not (no echo), in which order, and that the terminal's settings are as they were after every
// ending (a hidden prompt cut short is the classic way to leave a terminal without echo).
const root = mkdtempSync(join(tmpdir(), 'entraclaw-pp-tty-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const VALUE = `tty-value-${randomName('v')}`;
const PASS = `tty-pass-${randomName('p')}`;

/** A home of its own: no Secret Service, no passphrase file; the prompt is the only source. */
function home() {
  const env = isolatedEnv(mkdtempSync(join(root, 'h-')), { DBUS_SESSION_BUS_ADDRESS: '', TERM: 'xterm' });
  return { env, vault: join(resolvePaths(env).data, 'vault.ecv') };
}

/**
 * Runs `entraclaw ARGS` on a pty under sh, which shows the terminal's settings (stty -g) before and after,
 * and the command's status as the shell sees it (130 when it died of SIGINT: sh's own trap keeps it alive).
 */
function atTerminal(args: string[], env: NodeJS.ProcessEnv) {
  const script =
    'trap "" QUIT; trap "echo" INT; echo "before=$(stty -g)."; "$@"; echo "status=$?."; echo "after=$(stty -g)."';
  const pty = startPty(['sh', '-c', script, 'sh', process.execPath, '--', CLI, ...args], env);
  onTestFinished(() => void pty.driver.kill('SIGKILL'));
  return {
    ...pty,
    /** Waits for the command to end; its status, and whether the terminal's settings are back as they were. */
    async ended(): Promise<{ status: number; restored: boolean }> {
      await pty.waitFor('after=');
      await pty.exited;
      const out = pty.output();
      const before = /before=([^.]*)\./.exec(out)![1];
      const after = /after=([^.]*)\./.exec(out)![1];
      return { status: Number(/status=(\d+)\./.exec(out)![1]), restored: before === after };
    },
  };
}

/** A vault holding S/A = VALUE under PASS, made with a passphrase file (not at a terminal). */
function vaultWithValue() {
  const h = home();
  const file = join(root, `pass-${randomName('f')}`);
  writeFileSync(file, `${PASS}\n`, { mode: 0o600 });
  const r = runCli(
    ['secret', 'set', 'S', 'A', '--store', 'encrypted-file', '--passphrase-file', file],
    h.env,
    VALUE,
  );
  expect(r.status, r.stderr).toBe(0);
  return h;
}

const count = (s: string, what: string) => s.split(what).length - 1;
const SET = ['secret', 'set', 'S', 'A', '--store', 'encrypted-file'];
const GET = ['secret', 'get', 'S', 'A', '--store', 'encrypted-file'];

describe('the vault passphrase at a terminal', () => {
  it('a first set asks for the value, then the passphrase twice; nothing typed shows; the terminal is as it was', async () => {
    const h = home();
    const t = atTerminal(SET, h.env);
    await t.waitFor('Secret for S/A: ');
    expect(t.output()).not.toContain('Passphrase');
    t.type(`${VALUE}\r`);
    await t.waitFor(`Passphrase for the new vault ${h.vault} (at least 8 bytes): `);
    t.type(`${PASS}\r`);
    await t.waitFor('Repeat it to confirm: ');
    t.type(`${PASS}\r`);
    const end = await t.ended();
    expect(end.status, t.output()).toBe(0);
    expect(end.restored).toBe(true);
    expect(t.output()).toContain('stored S/A in encrypted-file');
    expect(t.output()).not.toContain(VALUE);
    expect(t.output()).not.toContain(PASS);
    const get = atTerminal(GET, h.env);
    await get.waitFor('Passphrase for vault');
    get.type(`${PASS}\r`);
    await get.waitFor(VALUE);
    expect((await get.ended()).status).toBe(0);
  });

  it('Ctrl-C at the passphrase prompt ends the command as Ctrl-C does (status 130), writes nothing, leaves echo on', async () => {
    const h = home();
    const t = atTerminal(SET, h.env);
    await t.waitFor('Secret for S/A: ');
    t.type(`${VALUE}\r`);
    await t.waitFor('Passphrase for the new vault');
    // Typed: the random tail of the passphrase, which no temp path or prompt can contain by chance.
    const typed = PASS.slice(-8);
    t.type(`${typed}\x03`);
    const end = await t.ended();
    expect(end.status, t.output()).toBe(130);
    expect(end.restored).toBe(true);
    expect(t.output()).toContain('cancelled at the prompt; nothing was done');
    expect(existsSync(h.vault)).toBe(false);
    expect(t.output()).not.toContain(typed);
  });

  it('Ctrl-D at the passphrase prompt is a clear error (exit 2), writes nothing, leaves echo on', async () => {
    const h = home();
    const t = atTerminal(SET, h.env);
    await t.waitFor('Secret for S/A: ');
    t.type(`${VALUE}\r`);
    await t.waitFor('Passphrase for the new vault');
    t.type('\x04');
    const end = await t.ended();
    expect(end.status, t.output()).toBe(EXIT_CODES.usage);
    expect(end.restored).toBe(true);
    expect(t.output()).toContain('cancelled at the prompt; nothing was done');
    expect(existsSync(h.vault)).toBe(false);
  });

  it('a new vault refuses a confirmation that differs and a short passphrase; nothing is written', async () => {
    const h = home();
    const mismatch = atTerminal(SET, h.env);
    await mismatch.waitFor('Secret for S/A: ');
    mismatch.type(`${VALUE}\r`);
    await mismatch.waitFor('Passphrase for the new vault');
    mismatch.type(`${PASS}\r`);
    await mismatch.waitFor('Repeat it to confirm: ');
    mismatch.type(`${PASS}x\r`);
    let end = await mismatch.ended();
    expect(end.status, mismatch.output()).toBe(EXIT_CODES.usage);
    expect(end.restored).toBe(true);
    expect(mismatch.output()).toContain('the passphrases did not match; the vault was not created');
    const short = atTerminal(SET, h.env);
    await short.waitFor('Secret for S/A: ');
    short.type(`${VALUE}\r`);
    await short.waitFor('Passphrase for the new vault');
    short.type('short\r');
    await short.waitFor('Repeat it to confirm: ');
    short.type('short\r');
    end = await short.ended();
    expect(end.status, short.output()).toBe(EXIT_CODES.usage);
    expect(end.restored).toBe(true);
    expect(short.output()).toContain('needs at least 8 bytes; the vault was not created');
    expect(existsSync(h.vault)).toBe(false);
    expect(mismatch.output() + short.output()).not.toContain(PASS);
  });

  it('get asks once and prints the value; a wrong passphrase is exit 5 with the terminal as it was', async () => {
    const h = vaultWithValue();
    const t = atTerminal(GET, h.env);
    await t.waitFor(`Passphrase for vault ${h.vault}: `);
    t.type(`${PASS}\r`);
    let end = await t.ended();
    expect(end.status, t.output()).toBe(0);
    expect(end.restored).toBe(true);
    expect(t.output()).toContain(VALUE);
    expect(count(t.output(), 'Passphrase for vault')).toBe(1);
    expect(t.output()).not.toContain('Repeat');
    const wrong = atTerminal(GET, h.env);
    await wrong.waitFor('Passphrase for vault');
    wrong.type('not the passphrase\r');
    end = await wrong.ended();
    expect(end.status, wrong.output()).toBe(EXIT_CODES.locked);
    expect(end.restored).toBe(true);
    expect(wrong.output()).toContain(`wrong passphrase for vault ${h.vault}`);
    expect(wrong.output()).not.toContain(VALUE);
    expect(wrong.output()).not.toContain('not the passphrase');
  });

  it('vault rekey asks for the current passphrase, then the new one twice', async () => {
    const h = vaultWithValue();
    const NEW = `${PASS}-new`;
    const t = atTerminal(['vault', 'rekey'], h.env);
    await t.waitFor(`Passphrase for vault ${h.vault}: `);
    t.type(`${PASS}\r`);
    await t.waitFor(`New passphrase for vault ${h.vault}: `);
    t.type(`${NEW}\r`);
    await t.waitFor('Repeat it to confirm: ');
    t.type(`${NEW}\r`);
    const end = await t.ended();
    expect(end.status, t.output()).toBe(0);
    expect(end.restored).toBe(true);
    expect(t.output()).not.toContain(PASS);
    const get = atTerminal(GET, h.env);
    await get.waitFor('Passphrase for vault');
    get.type(`${NEW}\r`);
    await get.waitFor(VALUE);
    expect((await get.ended()).status).toBe(0);
  });
});

describe('editing what is typed at the passphrase prompt', () => {
  /** Types `keys` at `secret get`'s prompt on a vault made with PASS; resolves with the command's status. */
  async function getTyping(keys: string) {
    const h = vaultWithValue();
    const t = atTerminal(GET, h.env);
    await t.waitFor('Passphrase for vault');
    t.type(keys);
    const end = await t.ended();
    expect(end.restored).toBe(true);
    return { status: end.status, output: t.output() };
  }

  it('Backspace erases a whole character, not one byte of it', async () => {
    const r = await getTyping(`${PASS}é\x7f\r`);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain(VALUE);
  });

  it('Ctrl-U erases the line typed so far, as at a shell prompt', async () => {
    const r = await getTyping(`a typo\x15${PASS}\r`);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain(VALUE);
  });
});

describe('entraclaw agent started at a terminal', () => {
  /** An agent on a pty over a vault holding S/A, and a registered SDK client allowed to read it. */
  async function agentAtTerminal() {
    const h = vaultWithValue();
    const client = join(root, `client-${randomName('c')}.mjs`);
    writeFileSync(client, nodeClientSource());
    chmodSync(client, 0o644);
    const script = realpathSync(client);
    const reg = runCli(['register', NODE, '--script', script, '--grant', 'S/A', '--ops', 'read'], h.env);
    expect(reg.status, reg.stderr).toBe(0);
    const socket = join(h.env.XDG_RUNTIME_DIR!, 'entraclaw', 'agent.sock');
    const t = atTerminal(['agent', '--store', 'encrypted-file', '--socket', socket], h.env);
    await waitFor(() => existsSync(socket), 'the agent socket');
    // The socket can exist a moment before its "listening" line has come through the pty.
    const listening = /listening .* pid=(\d+)/;
    await waitFor(() => listening.test(t.output()), 'the agent\'s "listening" line');
    const pid = Number(listening.exec(t.output())![1]);
    const get = () => run(NODE, [script, 'get', 'S', 'A'], { env: { ...h.env, ENTRACLAW_SOCKET: socket } });
    return { t, pid, get };
  }

  it('asks at the first request that needs the vault, and serves it', async () => {
    const { t, pid, get } = await agentAtTerminal();
    const r = get();
    await t.waitFor('Passphrase for vault');
    t.type(`${PASS}\r`);
    expect((await r).result).toEqual({ ok: true, value_b64: Buffer.from(VALUE).toString('base64') });
    process.kill(pid, 'SIGTERM');
    const end = await t.ended();
    expect(end.status).toBe(0);
    expect(end.restored).toBe(true);
    expect(t.output()).not.toContain(PASS);
  });

  it('Ctrl-C or Ctrl-D at its prompt fails that request as locked (not a bad request of the client), and the next asks again', async () => {
    for (const key of ['\x03', '\x04']) {
      const { t, pid, get } = await agentAtTerminal();
      const prompts = () => t.output().split('Passphrase for vault').length - 1;
      const r = get();
      await waitFor(() => prompts() === 1, 'the prompt');
      t.type(key);
      expect((await r).result).toMatchObject({
        ok: false,
        code: 'locked',
        message: "the vault is locked: its passphrase prompt at the agent's terminal was cancelled",
        hint: 'ask again: the agent prompts at the next request that needs the vault',
      });
      // The agent lives on and asks again.
      const again = get();
      await waitFor(() => prompts() === 2, 'the prompt again');
      t.type(`${PASS}\r`);
      expect((await again).result).toEqual({ ok: true, value_b64: Buffer.from(VALUE).toString('base64') });
      process.kill(pid, 'SIGTERM');
      expect((await t.ended()).restored).toBe(true);
    }
  });

  it('a SIGTERM while it asks stops the agent at once, the terminal as it was', async () => {
    const { t, pid, get } = await agentAtTerminal();
    const r = get();
    await t.waitFor('Passphrase for vault');
    process.kill(pid, 'SIGTERM');
    const end = await t.ended();
    expect(end.status, t.output()).toBe(0);
    expect(end.restored).toBe(true);
    expect((await r).result.ok).toBe(false);
  });
});
