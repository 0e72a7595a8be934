//! The seccomp filter: a small hand-written classic-BPF program.
//!
//! Why by hand: the filter needs argument checks (clone/unshare namespace
//! flags, ioctl commands, socket families and types) and an x32 guard, and
//! it is about a hundred instructions; a tiny label-resolving assembler here
//! is easier to audit than a generic crate, and every rule is tested below by
//! installing the filter in a thread and asserting the errno.
//!
//! The filter is a table ([`DENIED`]) plus a few argument-checking blocks.
//! Anything not listed is allowed: the filter removes kernel attack surface
//! and sandbox-escape primitives; file and network access is the job of the
//! mounts, Landlock and the network namespace.

use std::io;

/// Why each syscall is denied (errno EPERM unless noted). Reviewed as data.
pub const DENIED: &[(i64, &str)] = &[
    (
        libc::SYS_mount,
        "remount or unmount a mask or read-only bind",
    ),
    (libc::SYS_umount2, "unmount a mask over a denied path"),
    (libc::SYS_pivot_root, "change the root"),
    (libc::SYS_chroot, "change the root"),
    (libc::SYS_move_mount, "new mount API"),
    (libc::SYS_open_tree, "new mount API: clone a mount"),
    (libc::SYS_fsopen, "new mount API"),
    (libc::SYS_fsconfig, "new mount API"),
    (libc::SYS_fsmount, "new mount API"),
    (libc::SYS_fspick, "new mount API: reconfigure a mount"),
    (libc::SYS_mount_setattr, "clear read-only on a mount"),
    (libc::SYS_setns, "join another namespace"),
    (libc::SYS_ptrace, "inspect or control another process"),
    (libc::SYS_process_vm_readv, "read another process's memory"),
    (
        libc::SYS_process_vm_writev,
        "write another process's memory",
    ),
    (libc::SYS_kexec_load, "replace the kernel"),
    (libc::SYS_kexec_file_load, "replace the kernel"),
    (libc::SYS_init_module, "load a kernel module"),
    (libc::SYS_finit_module, "load a kernel module"),
    (libc::SYS_delete_module, "unload a kernel module"),
    (libc::SYS_bpf, "kernel attack surface (eBPF)"),
    (
        libc::SYS_perf_event_open,
        "kernel attack surface, side channels",
    ),
    (
        libc::SYS_keyctl,
        "kernel keyrings hold other processes' secrets",
    ),
    (libc::SYS_add_key, "kernel keyrings"),
    (libc::SYS_request_key, "kernel keyrings"),
    (
        libc::SYS_io_uring_setup,
        "io_uring bypasses syscall filtering",
    ),
    (
        libc::SYS_io_uring_enter,
        "io_uring bypasses syscall filtering",
    ),
    (
        libc::SYS_io_uring_register,
        "io_uring bypasses syscall filtering",
    ),
    (libc::SYS_userfaultfd, "kernel exploitation primitive"),
    (
        libc::SYS_open_by_handle_at,
        "open files by handle, bypassing paths",
    ),
    (
        libc::SYS_name_to_handle_at,
        "file handles (pair of the above)",
    ),
    (libc::SYS_acct, "process accounting"),
    (libc::SYS_swapon, "swap control"),
    (libc::SYS_swapoff, "swap control"),
    (libc::SYS_reboot, "reboot"),
    (libc::SYS_syslog, "kernel log"),
    (libc::SYS_quotactl, "quota control"),
    (libc::SYS_vhangup, "hang up the terminal"),
    (libc::SYS_fanotify_init, "filesystem-wide monitoring"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_iopl, "raw I/O port access"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_ioperm, "raw I/O port access"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_modify_ldt, "kernel attack surface"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_uselib, "obsolete loader"),
];

/// Namespace flags refused in `clone` and `unshare`. (`CLONE_NEWTIME` is
/// 0x80, which in `clone` is part of the exit-signal byte, so it is checked
/// for `unshare` only; `clone3` is refused as a whole.)
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;
const CLONE_NEWTIME: u32 = 0x80;

/// What the socket filter lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketRules {
    /// Refuse UDP sockets on AF_INET/AF_INET6 (when there is no network
    /// namespace to keep them on loopback).
    pub deny_inet_udp: bool,
    /// Refuse AF_INET/AF_INET6 sockets altogether (no network namespace and
    /// no network granted: nothing to reach).
    pub deny_inet: bool,
}

// seccomp_data offsets (little-endian: the low 32 bits of an argument come
// first).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const fn ret_errno(e: i32) -> u32 {
    0x0005_0000 | (e as u32 & 0xffff)
}

// BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

/// One instruction with symbolic jump targets, resolved by [`Asm::finish`].
#[derive(Clone, Copy)]
enum Jump {
    Next,
    Label(usize),
}

struct Ins {
    code: u16,
    k: u32,
    jt: Jump,
    jf: Jump,
}

/// A tiny assembler: forward jumps to labels only (as BPF requires).
struct Asm {
    ins: Vec<Ins>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn new() -> Self {
        Asm {
            ins: Vec::new(),
            labels: Vec::new(),
        }
    }
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.ins.len());
    }
    fn load(&mut self, off: u32) {
        self.ins.push(Ins {
            code: LD_W_ABS,
            k: off,
            jt: Jump::Next,
            jf: Jump::Next,
        });
    }
    fn and(&mut self, k: u32) {
        self.ins.push(Ins {
            code: AND_K,
            k,
            jt: Jump::Next,
            jf: Jump::Next,
        });
    }
    fn jump(&mut self, code: u16, k: u32, jt: Jump, jf: Jump) {
        self.ins.push(Ins { code, k, jt, jf });
    }
    fn ret(&mut self, k: u32) {
        self.ins.push(Ins {
            code: RET_K,
            k,
            jt: Jump::Next,
            jf: Jump::Next,
        });
    }
    /// `if A == k { return ret }`.
    fn ret_if_eq(&mut self, k: u32, ret: u32) {
        let skip = self.label();
        self.jump(JEQ_K, k, Jump::Next, Jump::Label(skip));
        self.ret(ret);
        self.bind(skip);
    }

    /// `if nr == sys { if arg0 & flags { EPERM } else { ALLOW } }`; leaves
    /// the syscall number loaded for what follows.
    fn ns_flags_block(&mut self, sys: i64, flags: u32) {
        let next = self.label();
        let allow = self.label();
        self.jump(JEQ_K, sys as u32, Jump::Next, Jump::Label(next));
        self.load(arg_lo(0));
        self.jump(JSET_K, flags, Jump::Next, Jump::Label(allow));
        self.ret(ret_errno(libc::EPERM));
        self.bind(allow);
        self.ret(RET_ALLOW);
        self.bind(next);
    }

    fn finish(self) -> io::Result<Vec<libc::sock_filter>> {
        let mut out = Vec::with_capacity(self.ins.len());
        for (pc, i) in self.ins.iter().enumerate() {
            let rel = |j: Jump| -> io::Result<u8> {
                match j {
                    Jump::Next => Ok(0),
                    Jump::Label(l) => {
                        let target = self.labels[l].ok_or_else(|| {
                            io::Error::other("seccomp: unbound label (filter bug)")
                        })?;
                        u8::try_from(target.wrapping_sub(pc + 1)).map_err(|_| {
                            io::Error::other("seccomp: jump out of range (filter bug)")
                        })
                    }
                }
            };
            out.push(libc::sock_filter {
                code: i.code,
                jt: rel(i.jt)?,
                jf: rel(i.jf)?,
                k: i.k,
            });
        }
        Ok(out)
    }
}

/// Build the filter program. Pure; installed by [`install`].
pub fn build(rules: SocketRules) -> io::Result<Vec<libc::sock_filter>> {
    let mut a = Asm::new();
    // 1. Wrong architecture (i386 `int 0x80` on x86_64, for instance): kill.
    a.load(OFF_ARCH);
    let arch_ok = a.label();
    a.jump(JEQ_K, AUDIT_ARCH, Jump::Label(arch_ok), Jump::Next);
    a.ret(RET_KILL_PROCESS);
    a.bind(arch_ok);
    a.load(OFF_NR);
    // 2. x32 syscalls share the x86_64 arch value with bit 30 set: refuse
    //    them all, or each rule below could be bypassed with its x32 number.
    #[cfg(target_arch = "x86_64")]
    {
        let not_x32 = a.label();
        a.jump(JGE_K, 0x4000_0000, Jump::Next, Jump::Label(not_x32));
        a.ret(ret_errno(libc::ENOSYS));
        a.bind(not_x32);
    }
    // 3. The table.
    for (nr, _why) in DENIED {
        a.ret_if_eq(*nr as u32, ret_errno(libc::EPERM));
    }
    // clone3 passes its flags in memory the filter cannot read; ENOSYS makes
    // libc fall back to clone, whose flags are checked below.
    a.ret_if_eq(libc::SYS_clone3 as u32, ret_errno(libc::ENOSYS));

    // 4. clone: no new namespaces.
    a.ns_flags_block(libc::SYS_clone, CLONE_NS_FLAGS);
    // 5. unshare: no new namespaces (CLONE_FS/FILES/etc. are fine).
    a.ns_flags_block(libc::SYS_unshare, CLONE_NS_FLAGS | CLONE_NEWTIME);

    // 6. ioctl: no terminal input injection (TIOCSTI) or console control
    //    (TIOCLINUX). The command is an `unsigned int`: compare the low word.
    let next = a.label();
    a.jump(JEQ_K, libc::SYS_ioctl as u32, Jump::Next, Jump::Label(next));
    a.load(arg_lo(1));
    a.ret_if_eq(libc::TIOCSTI as u32, ret_errno(libc::EPERM));
    a.ret_if_eq(libc::TIOCLINUX as u32, ret_errno(libc::EPERM));
    a.ret(RET_ALLOW);
    a.bind(next);

    // 7. personality: only query or plain Linux (no ADDR_NO_RANDOMIZE &c.).
    let next = a.label();
    a.jump(
        JEQ_K,
        libc::SYS_personality as u32,
        Jump::Next,
        Jump::Label(next),
    );
    a.load(arg_lo(0));
    a.ret_if_eq(0xffff_ffff, RET_ALLOW);
    a.ret_if_eq(0, RET_ALLOW);
    a.ret(ret_errno(libc::EPERM));
    a.bind(next);

    // 8. socket: AF_UNIX, AF_INET, AF_INET6, and AF_NETLINK for the route
    //    family only (getaddrinfo's AI_ADDRCONFIG needs it).
    let next = a.label();
    let inet = a.label();
    let netlink = a.label();
    a.load(OFF_NR);
    a.jump(
        JEQ_K,
        libc::SYS_socket as u32,
        Jump::Next,
        Jump::Label(next),
    );
    a.load(arg_lo(0));
    a.ret_if_eq(libc::AF_UNIX as u32, RET_ALLOW);
    a.jump(JEQ_K, libc::AF_INET as u32, Jump::Label(inet), Jump::Next);
    a.jump(JEQ_K, libc::AF_INET6 as u32, Jump::Label(inet), Jump::Next);
    a.jump(
        JEQ_K,
        libc::AF_NETLINK as u32,
        Jump::Label(netlink),
        Jump::Next,
    );
    a.ret(ret_errno(libc::EAFNOSUPPORT));
    a.bind(netlink);
    a.load(arg_lo(2));
    a.ret_if_eq(libc::NETLINK_ROUTE as u32, RET_ALLOW);
    a.ret(ret_errno(libc::EAFNOSUPPORT));
    a.bind(inet);
    if rules.deny_inet {
        a.ret(ret_errno(libc::EACCES));
    }
    // Inet sockets: an allow-list of (type, protocol), not a deny-list.
    // Landlock's TCP rights cover IPPROTO_TCP only and, without a network
    // namespace, nothing else confines MPTCP, SCTP, DCCP or a protocol
    // added to the kernel tomorrow. So: stream sockets with protocol 0 or
    // IPPROTO_TCP, datagram sockets (where the mode allows them) with 0 or
    // IPPROTO_UDP; every other type (raw, packet, seqpacket, rdm, dccp)
    // EPERM, every other protocol EPROTONOSUPPORT (what a kernel without
    // it answers, so programs that try MPTCP first fall back to TCP).
    let stream = a.label();
    let dgram = a.label();
    a.load(arg_lo(1));
    a.and(0xf); // the type without SOCK_NONBLOCK / SOCK_CLOEXEC
    a.jump(
        JEQ_K,
        libc::SOCK_STREAM as u32,
        Jump::Label(stream),
        Jump::Next,
    );
    if !rules.deny_inet_udp {
        a.jump(
            JEQ_K,
            libc::SOCK_DGRAM as u32,
            Jump::Label(dgram),
            Jump::Next,
        );
    }
    a.ret(ret_errno(libc::EPERM));
    a.bind(stream);
    a.load(arg_lo(2));
    a.ret_if_eq(0, RET_ALLOW);
    a.ret_if_eq(libc::IPPROTO_TCP as u32, RET_ALLOW);
    a.ret(ret_errno(libc::EPROTONOSUPPORT));
    a.bind(dgram);
    a.load(arg_lo(2));
    a.ret_if_eq(0, RET_ALLOW);
    a.ret_if_eq(libc::IPPROTO_UDP as u32, RET_ALLOW);
    a.ret(ret_errno(libc::EPROTONOSUPPORT));
    a.bind(next);

    a.ret(RET_ALLOW);
    a.finish()
}

/// Install `prog` on the calling thread. `no_new_privs` must already be set
/// (or the thread must hold CAP_SYS_ADMIN).
pub fn install(prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::other("seccomp: filter too long"))?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program. SECCOMP_SET_MODE_FILTER with flags 0 only affects
    // the calling thread.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
