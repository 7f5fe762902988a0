import { type ChildProcess, spawn } from 'node:child_process';

// Drives a command on a real pty, the way a person at a terminal does: the test types keys (Ctrl-C is
// "\x03", Ctrl-Z "\x1a"), resizes the window, and waits for text to show. Python's pty module gives the
// command the pty as its controlling terminal; the driver reads control lines on its stdin.
const DRIVER = `
import fcntl, json, os, pty, select, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
pending = b''
while True:
    r, _, _ = select.select([fd, 0], [], [])
    if fd in r:
        try:
            d = os.read(fd, 65536)
        except OSError:
            break
        if not d:
            break
        os.write(1, d)
    if 0 in r:
        d = os.read(0, 65536)
        if not d:
            os.kill(pid, 9)
            break
        pending += d
        while b'\\n' in pending:
            line, pending = pending.split(b'\\n', 1)
            op = json.loads(line)
            if 'keys' in op:
                os.write(fd, op['keys'].encode())
            else:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', op['rows'], op['cols'], 0, 0))
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) & 255)
`;

/** A command running on a pty. */
export interface Pty {
  /** The python driver (the pty's owner); the command is its child. */
  readonly driver: ChildProcess;
  /** Everything the command wrote to the terminal so far (echoed keys included). */
  output(): string;
  /** Types `keys` at the terminal. */
  type(keys: string): void;
  /** Resizes the terminal, which sends SIGWINCH to its foreground process group. */
  resize(cols: number, rows: number): void;
  /** Waits until `text` has shown; the error shows what did. */
  waitFor(text: string): Promise<void>;
  /** Resolves with the command's exit status once it has ended. */
  readonly exited: Promise<number | null>;
}

/** Starts `argv` on a new 80x24 pty with `env`. Kill `driver` to end it. */
export function startPty(argv: string[], env: NodeJS.ProcessEnv): Pty {
  const driver = spawn('python3', ['-c', DRIVER, ...argv], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  driver.stdout!.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  const exited = new Promise<number | null>((resolve) => driver.on('close', (code) => resolve(code)));
  const send = (op: object) => driver.stdin!.write(`${JSON.stringify(op)}\n`);
  return {
    driver,
    output: () => out,
    type: (keys) => send({ keys }),
    resize: (cols, rows) => send({ cols, rows }),
    async waitFor(text) {
      const deadline = Date.now() + 15_000;
      while (!out.includes(text)) {
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for ${JSON.stringify(text)}; the terminal shows:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    exited,
  };
}
