// Who is asking, on macOS (compiled and reviewed; the tested path is Linux, peer.ts). There are no
// per-message credentials and no pidfds: the kernel's record of the peer is the audit token taken at
// connect() (LOCAL_PEERTOKEN). proc_pidpath_audittoken() checks the token's pidversion against the live
// process, so a reused pid fails instead of naming another program; reading the token again after
// hashing shows the hash describes the process that connected.
//
// Limits, said plainly (README, docs/protocol.md): the token is the connector's, so an fd handed to
// another process (fork, SCM_RIGHTS) is still judged as the connector; argv and the environment are not
// read, so interpreters cannot be pinned to a script and are refused, as are the Linux-only checks
// (TracerPid, LD_PRELOAD-style injection through DYLD_* is left to the hardened runtime).
import { basename } from 'node:path';
import { native } from '../lib/native.js';
import { hashExecutable } from './hash.js';
import { analyzeCommand } from './interpreter.js';
import type { Identity, Refusal } from './peer.js';

/** Identifies the peer of a connected socket from its audit token; `pid` is the sender the reader saw. */
export function identifyByToken(fd: number, pid: number, uid: number): Identity | Refusal {
  const refuse = (reason: string, exe?: string, sha256?: string): Refusal => ({
    refused: true,
    reason,
    pid,
    ...(exe ? { exe } : {}),
    ...(sha256 ? { sha256 } : {}),
  });
  let first: ReturnType<ReturnType<typeof native>['peerToken']>;
  try {
    first = native().peerToken(fd);
  } catch (err) {
    return refuse(`cannot read the peer's audit token (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (first.pid !== pid)
    return refuse(`the connection's peer (pid ${first.pid}) is not the sender (pid ${pid})`);
  if (first.uid !== uid) return refuse(`caller runs as uid ${first.uid}, not ${uid}`);
  const name = basename(first.exe);
  if (analyzeCommand(name, [name], {}).kind !== 'binary') {
    return refuse(
      `${name} is an interpreter; on macOS scripts cannot be pinned in this build, approve a compiled program`,
      first.exe,
    );
  }
  let sha256: string;
  try {
    sha256 = hashExecutable(first.exe);
  } catch (err) {
    return refuse(`cannot hash ${first.exe} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, first.exe);
  }
  let again: typeof first;
  try {
    again = native().peerToken(fd);
  } catch {
    return refuse('peer exited (cannot verify identity)', first.exe, sha256);
  }
  if (again.pidversion !== first.pidversion || again.exe !== first.exe) {
    return refuse('caller changed while it was identified', first.exe, sha256);
  }
  return { pid, uid, ppid: 0, exe: first.exe, sha256, argv: [] };
}
