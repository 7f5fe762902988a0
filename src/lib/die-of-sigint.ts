/**
 * A command we ran died of SIGINT (Ctrl-C): we die of it too, once our output is out, instead of exiting
 * 130. A shell running us from a script or a loop stops on Ctrl-C only when its child died of SIGINT; a
 * child that exits 130 is taken to have handled the Ctrl-C, and the script goes on (bash's "wait and
 * cooperative exit", dash likewise) -- as it would not for the command run alone. `$?` is 130 either way.
 * The caller sets process.exitCode first: should SIGINT somehow not end us, that still stands.
 */
export async function dieOfSigint(): Promise<void> {
  await Promise.all([process.stdout, process.stderr].map(flushed));
  process.removeAllListeners('SIGINT');
  process.kill(process.pid, 'SIGINT');
}

function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || stream.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('drain', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
}
