//! Kernel attack surface and privilege: syscalls the filter removes,
//! capabilities, setuid binaries, kernel knobs.

use std::path::Path;
use std::process::Command;

use crate::common::{self, real, scratch};
use crate::util::{cc, expect, is_root, py, sh};

/// Threat: io_uring (its operations bypass seccomp's per-syscall checks and
/// it has a long CVE history). Stopped by: seccomp (setup, enter, register
/// all EPERM).
#[test]
fn io_uring_is_refused() {
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
params = ctypes.create_string_buffer(120)
p("setup", sc({setup}, 8, params))
p("enter", sc({enter}, 3, 1, 0, 0, None, 0))
p("register", sc({register}, 3, 0, None, 0))
"#,
            setup = libc::SYS_io_uring_setup,
            enter = libc::SYS_io_uring_enter,
            register = libc::SYS_io_uring_register,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["setup", "enter", "register"] {
        expect(&r, n, "EPERM");
    }
}

/// Threat: eBPF programs and perf events (verifier bugs, side channels,
/// kernel pointer leaks). Stopped by: seccomp (bpf, perf_event_open EPERM).
#[test]
fn bpf_and_perf_events_are_refused() {
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
attr = ctypes.create_string_buffer(128)
p("bpf_map", sc({bpf}, 0, attr, 72))
p("bpf_prog", sc({bpf}, 5, attr, 128))
p("perf", sc({perf}, attr, 0, -1, -1, 0))
p("perf_all_cpus", sc({perf}, attr, -1, 0, -1, 0))
"#,
            bpf = libc::SYS_bpf,
            perf = libc::SYS_perf_event_open,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["bpf_map", "bpf_prog", "perf", "perf_all_cpus"] {
        expect(&r, n, "EPERM");
    }
}

/// Threat: kernel keyrings (the user's session/user keyring can hold other
/// processes' secrets: Kerberos tickets, ecryptfs keys). Stopped by:
/// seccomp (keyctl, add_key, request_key EPERM).
#[test]
fn keyrings_are_refused() {
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
p("keyctl_get_user", sc({keyctl}, 0, -4, 0))
p("keyctl_read_session", sc({keyctl}, 11, -3, None, 0))
p("add_key", sc({add_key}, b"user", b"zb", b"x", 1, -4))
p("request_key", sc({request_key}, b"user", b"zb", None, 0))
"#,
            keyctl = libc::SYS_keyctl,
            add_key = libc::SYS_add_key,
            request_key = libc::SYS_request_key,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in [
        "keyctl_get_user",
        "keyctl_read_session",
        "add_key",
        "request_key",
    ] {
        expect(&r, n, "EPERM");
    }
}

/// Threat: userfaultfd (turns kernel races into reliable exploits), file
/// handles (open_by_handle_at: the "shocker" container escape opens host
/// files by inode), modules, kexec, and other admin calls. Stopped by:
/// seccomp (EPERM); /dev/userfaultfd is not in the minimal /dev.
#[test]
fn exploit_primitives_and_admin_calls_are_refused() {
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
p("userfaultfd", sc({uffd}, 0))
p("dev_userfaultfd", os.path.exists("/dev/userfaultfd"))
h = ctypes.create_string_buffer(128)
p("name_to_handle", sc({n2h}, -100, b"/etc/passwd", h, ctypes.byref(ctypes.c_int()), 0))
p("open_by_handle", sc({obh}, 3, h, 0))
p("init_module", sc({init_module}, None, 0, b""))
p("finit_module", sc({finit_module}, 0, b"", 0))
p("delete_module", sc({delete_module}, b"loop", 0))
p("kexec_load", sc({kexec_load}, 0, 0, None, 0))
p("kexec_file_load", sc({kexec_file_load}, 0, 0, 0, b"", 0))
p("acct", sc({acct}, None))
p("swapoff", sc({swapoff}, b"/tmp/x"))
p("reboot", sc({reboot}, 0xfee1dead, 672274793, 0x4321fedc, None))
p("syslog", sc({syslog}, 3, ctypes.create_string_buffer(64), 64))
p("fanotify", sc({fanotify}, 0, 0))
"#,
            uffd = libc::SYS_userfaultfd,
            n2h = libc::SYS_name_to_handle_at,
            obh = libc::SYS_open_by_handle_at,
            init_module = libc::SYS_init_module,
            finit_module = libc::SYS_finit_module,
            delete_module = libc::SYS_delete_module,
            kexec_load = libc::SYS_kexec_load,
            kexec_file_load = libc::SYS_kexec_file_load,
            acct = libc::SYS_acct,
            swapoff = libc::SYS_swapoff,
            reboot = libc::SYS_reboot,
            syslog = libc::SYS_syslog,
            fanotify = libc::SYS_fanotify_init,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in [
        "userfaultfd",
        "name_to_handle",
        "open_by_handle",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "acct",
        "swapoff",
        "reboot",
        "syslog",
        "fanotify",
    ] {
        expect(&r, n, "EPERM");
    }
    expect(&r, "dev_userfaultfd", "False");
}

/// Threat: personality flags (ADDR_NO_RANDOMIZE disables ASLR for an
/// exploit; READ_IMPLIES_EXEC, ADDR_COMPAT_LAYOUT), `setarch -R`. Stopped
/// by: seccomp (personality only allows the query and plain PER_LINUX).
#[test]
fn personality_changes_are_refused() {
    let s = scratch();
    let d = real(s.path());
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
p("no_randomize", sc({pers}, 0x0040000))
p("read_implies_exec", sc({pers}, 0x0400000))
p("compat_layout", sc({pers}, 0x0200000))
p("query", sc({pers}, 0xffffffff))
p("linux", sc({pers}, 0))
"#,
            pers = libc::SYS_personality
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["no_randomize", "read_implies_exec", "compat_layout"] {
        expect(&r, n, "EPERM");
    }
    expect(&r, "query", "OK");
    expect(&r, "linux", "OK");
    if common::have("setarch") {
        let r = sh(&d, None, &[], "setarch -R true; echo rc=$?");
        assert!(!r.stdout.contains("rc=0"), "{r:?}");
    }
}

/// Threat: bypass the filter with another syscall ABI: x32 numbers (same
/// audit arch, bit 30 set) and the i386 `int 0x80` entry. Stopped by:
/// seccomp (x32: ENOSYS; a foreign arch kills the process with SIGSYS).
#[test]
fn foreign_syscall_abis_are_refused() {
    let s = scratch();
    let d = real(s.path());
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
p("x32_getpid", sc(0x40000000 | {getpid}))
p("x32_unshare", sc(0x40000000 | {unshare}, 0x10000000))
p("x32_mount", sc(0x40000000 | {mount}, None, b"/", None, 32, None))
"#,
            getpid = libc::SYS_getpid,
            unshare = libc::SYS_unshare,
            mount = libc::SYS_mount,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["x32_getpid", "x32_unshare", "x32_mount"] {
        expect(&r, n, "ENOSYS");
    }
    #[cfg(target_arch = "x86_64")]
    {
        // i386 unshare(CLONE_NEWUSER) through int 0x80 (i386 nr 310).
        let src = r#"
#include <stdio.h>
int main(void) {
    long r;
    __asm__ volatile ("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    printf("getpid32=%ld\n", r);
    fflush(stdout);
    __asm__ volatile ("int $0x80" : "=a"(r) : "a"(310L), "b"(0x10000000L) : "memory");
    printf("unshare32=%ld\n", r);
    return 0;
}
"#;
        let Some(exe) = cc(&d, "int80", src) else {
            return;
        };
        // The primitive: outside, int 0x80 works (if the kernel has IA32
        // emulation at all).
        let host = Command::new(&exe).output().unwrap();
        let host_out = String::from_utf8_lossy(&host.stdout);
        if !host.status.success() || !host_out.contains("getpid32=") {
            eprintln!("SKIP (part): no IA32 emulation on this kernel: {host:?}");
            return;
        }
        let exe_s = exe.to_str().unwrap().to_string();
        let r = sh(&d, None, &[], &format!("{exe_s}; echo rc=$?"));
        assert!(r.stdout.contains("rc=159"), "not killed by SIGSYS: {r:?}");
        assert!(!r.stdout.contains("getpid32="), "{r:?}");
    }
}

/// Threat: setuid-root binaries (su, passwd, newgrp, mount) to gain root or
/// capabilities. Stopped by: every mount is nosuid, no_new_privs is set,
/// the bounding set is empty and SECBIT_NOROOT is locked: the process runs
/// with the caller's euid and no capabilities. The attack reads the
/// credentials of the running setuid program from /proc.
#[test]
fn setuid_binaries_do_not_elevate() {
    let mut bins = Vec::new();
    for b in [
        "/usr/bin/su",
        "/usr/bin/passwd",
        "/usr/bin/newgrp",
        "/usr/bin/chsh",
    ] {
        if let Ok(m) = std::fs::metadata(b) {
            use std::os::unix::fs::PermissionsExt;
            if m.permissions().mode() & 0o4000 != 0 {
                bins.push(b);
            }
        }
    }
    if bins.is_empty() {
        eprintln!("SKIP: no setuid binaries found");
        return;
    }
    let code = format!(
        r#"
import subprocess, time
for b in {bins:?}:
    pr = subprocess.Popen([b], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    st = {{}}
    try:
        for l in open(f"/proc/{{pr.pid}}/status"):
            k, v = l.split(":", 1)
            st[k] = v.split()
    except OSError:
        pass
    pr.kill()
    pr.wait()
    if st:
        p(b + ".euid", st["Uid"][1])
        p(b + ".capeff", st["CapEff"][0])
"#
    );
    let s = scratch();
    let d = real(s.path());
    let my_uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let r = py(&d, None, &[], &code);
    assert_eq!(r.code, 0, "{r:?}");
    let mut checked = 0;
    for b in &bins {
        let euid = format!("{b}.euid=");
        if let Some(l) = r.stdout.lines().find(|l| l.starts_with(&euid)) {
            assert_eq!(&l[euid.len()..], my_uid, "{b} ran with another euid: {r:?}");
            expect(&r, &format!("{b}.capeff"), "0000000000000000");
            checked += 1;
        }
    }
    assert!(checked > 0, "no setuid program could be observed: {r:?}");
    // The primitive: unprivileged on the host, the same programs do run
    // with euid 0.
    if !is_root() {
        let h = crate::util::py_host(&d, &code);
        let line = format!("{}.euid=0", bins[0]);
        assert!(h.stdout.lines().any(|l| l == line), "{h:?}");
    }
}

/// Threat: keep or regain capabilities (root inside is uid 0 when zerobox
/// runs as root): CAP_SYS_ADMIN for mounts, CAP_NET_ADMIN, CAP_SYS_PTRACE,
/// and set the hostname / domain name. Stopped by: all capability sets and
/// the bounding set are empty, securebits locked, no_new_privs, seccomp in
/// filter mode.
#[test]
fn no_capabilities_and_no_new_privs() {
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
for l in open("/proc/self/status"):
    k, v = l.split(":", 1)
    if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
        p(k, v.strip())
t("sethostname", lambda: socket.sethostname("pwned"))
p("securebits_unlock", sc({prctl}, 28, 0))
p("ambient_raise", sc({prctl}, 47, 2, 21, 0, 0))
"#,
            prctl = libc::SYS_prctl
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        expect(&r, k, "0000000000000000");
    }
    expect(&r, "NoNewPrivs", "1");
    expect(&r, "Seccomp", "2");
    expect(&r, "sethostname", "EPERM");
    expect(&r, "securebits_unlock", "EPERM");
    expect(&r, "ambient_raise", "EPERM");
}

/// Threat: write kernel knobs through /proc (core_pattern runs a program as
/// host root on a crash; sysrq-trigger; /proc/sys/kernel/*). Stopped by:
/// /proc/sys, /proc/sysrq-trigger are read-only binds over the fresh /proc
/// (EROFS), and no capabilities.
#[test]
fn proc_kernel_knobs_are_read_only() {
    let s = scratch();
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    // Knobs this kernel has (minimal kernels lack sysrq, modprobe).
    let knobs: Vec<&str> = [
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/sysrq",
        "/proc/sysrq-trigger",
        "/proc/sys/kernel/modprobe",
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/ns_last_pid",
        "/proc/sys/vm/drop_caches",
    ]
    .into_iter()
    .filter(|k| Path::new(k).exists())
    .collect();
    // Harmless values: sysrq 'h' only prints help.
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
vals = {{"/proc/sysrq-trigger": "h", "/proc/sys/kernel/core_pattern": "|/tmp/pwn", "/proc/sys/kernel/modprobe": "/tmp/pwn", "/proc/sys/kernel/hostname": "pwned", "/proc/sys/kernel/ns_last_pid": "100", "/proc/sys/vm/drop_caches": "1", "/proc/sys/kernel/sysrq": "1"}}
for k in {knobs:?}:
    t(k, lambda: open(k, "w").write(vals[k]))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for k in &knobs {
        expect(&r, k, "EROFS");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}
