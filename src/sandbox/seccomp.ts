import { UnavailableError } from '../errors.js';

// A seccomp filter for the sandbox that makes the kernel keyring syscalls (add_key, request_key, keyctl)
// fail with EPERM. Why: keyrings are not fully namespaced. A new user namespace gets its own user keyring
// (Linux >= 5.3), but the process keeps the SESSION keyring it inherited — and a login session's keyring
// (pam_keyinit) links the real user keyring, so without this filter `keyctl print ID` inside the sandbox
// reads the kernel-keyring store's keys. Docker's and Flatpak's default filters block the same three
// calls for the same reason. bubblewrap loads the program (`--seccomp FD`) just before it execs the command.
//
// The program is classic BPF (struct sock_filter: u16 code, u8 jt, u8 jf, u32 k), in host byte order.

/** Architectures the filter knows, by Node's `process.arch`. */
export type SeccompArch = 'x64' | 'arm64';

interface Abi {
  /** AUDIT_ARCH_* value of seccomp_data.arch. */
  audit: number;
  /** Syscall numbers of add_key, request_key, keyctl. */
  calls: readonly number[];
  /** Bits to clear from the number first (x32 syscalls set 0x40000000 on x86-64). */
  clear?: number;
}

// Numbers from the kernel's syscall tables (syscall_64.tbl, syscall_32.tbl, asm-generic/unistd.h, arm).
const ABIS: Record<SeccompArch, readonly Abi[]> = {
  x64: [
    { audit: 0xc000003e, calls: [248, 249, 250], clear: 0x40000000 }, // x86-64 and x32
    { audit: 0x40000003, calls: [286, 287, 288] }, // i386 (int 0x80)
  ],
  arm64: [
    { audit: 0xc00000b7, calls: [217, 218, 219] }, // aarch64
    { audit: 0x40000028, calls: [309, 310, 311] }, // arm (compat)
  ],
};

/** The keyring syscalls the filter blocks, by name (for documentation and tests). */
export const BLOCKED_SYSCALLS = ['add_key', 'request_key', 'keyctl'] as const;

const LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const ALU_AND_K = 0x54; // BPF_ALU | BPF_AND | BPF_K
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K = 0x06; // BPF_RET | BPF_K
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EPERM = 1;
const OFFSET_NR = 0; // offsetof(struct seccomp_data, nr)
const OFFSET_ARCH = 4; // offsetof(struct seccomp_data, arch)

type Insn = { code: number; jt: number; jf: number; k: number };

/** The filter as BPF instructions (exported for tests). */
export function keyringFilter(arch: SeccompArch): Insn[] {
  const abis = ABIS[arch];
  if (!abis)
    throw new UnavailableError(
      `entraclaw sandbox has no seccomp filter for ${arch}`,
      'it supports x64 and arm64',
    );
  // Layout: for each ABI a block "arch == A ? (check its numbers) : next block"; then ALLOW; then DENY.
  const blocks = abis.map((abi) => {
    const body: Insn[] = [{ code: LD_W_ABS, jt: 0, jf: 0, k: OFFSET_NR }];
    if (abi.clear) body.push({ code: ALU_AND_K, jt: 0, jf: 0, k: ~abi.clear >>> 0 });
    return { abi, body };
  });
  const out: Insn[] = [{ code: LD_W_ABS, jt: 0, jf: 0, k: OFFSET_ARCH }];
  // Each block: [jeq arch] + body + one jeq per call + [ret allow]. Jumps are relative to the next insn.
  const sizes = blocks.map((b) => 1 + b.body.length + b.abi.calls.length + 1);
  const total = 1 + sizes.reduce((a, b) => a + b, 0) + 2; // + final ALLOW + DENY
  const denyAt = total - 1;
  blocks.forEach((b, i) => {
    const here = out.length;
    // Not this ABI: jump over the block's remaining instructions to the next block (or to final ALLOW).
    out.push({ code: JEQ_K, jt: 0, jf: sizes[i]! - 1, k: b.abi.audit });
    out.push(...b.body);
    for (const nr of b.abi.calls) {
      const at = out.length;
      out.push({ code: JEQ_K, jt: denyAt - at - 1, jf: 0, k: nr });
    }
    out.push({ code: RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW });
    if (out.length - here !== sizes[i]) throw new Error('seccomp block size mismatch');
  });
  // A process can only run ABIs its kernel supports, all listed above; anything else is allowed as is.
  out.push({ code: RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW });
  out.push({ code: RET_K, jt: 0, jf: 0, k: SECCOMP_RET_ERRNO | EPERM });
  for (const insn of out) {
    if (insn.jt > 255 || insn.jf > 255) throw new Error('seccomp jump out of range');
  }
  return out;
}

/** The filter as the bytes bubblewrap reads from `--seccomp FD`. */
export function keyringFilterBytes(arch: SeccompArch, littleEndian = true): Buffer {
  const insns = keyringFilter(arch);
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    const o = i * 8;
    if (littleEndian) {
      buf.writeUInt16LE(insn.code, o);
      buf.writeUInt32LE(insn.k >>> 0, o + 4);
    } else {
      buf.writeUInt16BE(insn.code, o);
      buf.writeUInt32BE(insn.k >>> 0, o + 4);
    }
    buf.writeUInt8(insn.jt, o + 2);
    buf.writeUInt8(insn.jf, o + 3);
  });
  return buf;
}

/** Whether the filter exists for this Node architecture. */
export function isSeccompArch(arch: string): arch is SeccompArch {
  return arch in ABIS;
}
