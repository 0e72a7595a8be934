//! Namespace attacks: create new namespaces (where one regains
//! capabilities), or join the host's / init's namespaces.

use crate::common::{self, real, scratch};
use crate::util::{expect, py, sh};

const CLONE_FLAGS: &[(&str, u64)] = &[
    ("NEWUSER", 0x1000_0000),
    ("NEWNS", 0x0002_0000),
    ("NEWNET", 0x4000_0000),
    ("NEWPID", 0x2000_0000),
    ("NEWIPC", 0x0800_0000),
    ("NEWUTS", 0x0400_0000),
    ("NEWCGROUP", 0x0200_0000),
];
const CLONE_NEWTIME: u64 = 0x80;

/// Threat: `unshare -U` / `-n` / `-m` / `-p` from the shell to get a fresh
/// namespace with full capabilities (the base of most container escapes).
/// Stopped by: seccomp (unshare with namespace flags: EPERM).
#[test]
fn unshare_tool_is_refused() {
    if !common::have("unshare") {
        eprintln!("SKIP: no unshare(1)");
        return;
    }
    let s = scratch();
    let r = sh(
        &real(s.path()),
        None,
        &[],
        "for f in -U -n -m -i -u -C '-p -f' -Ur; do unshare $f true; echo \"$f=$?\"; done",
    );
    assert_eq!(r.code, 0, "{r:?}");
    for f in ["-U", "-n", "-m", "-i", "-u", "-C", "-p -f", "-Ur"] {
        assert!(r.stdout.contains(&format!("{f}=1\n")), "{f}: {r:?}");
    }
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
}

/// Threat: raw unshare(2) (and Python's os.unshare where it exists) with
/// each namespace flag, including CLONE_NEWTIME. Stopped by: seccomp
/// (EPERM for every flag; harmless flags like CLONE_FS still work).
#[test]
fn raw_unshare_of_every_namespace_is_refused() {
    let s = scratch();
    let mut code = String::new();
    for (name, flag) in CLONE_FLAGS {
        code.push_str(&format!(
            "p(\"{name}\", sc({}, {flag}))\n",
            libc::SYS_unshare
        ));
    }
    code.push_str(&format!(
        "p(\"NEWTIME\", sc({}, {CLONE_NEWTIME}))\n",
        libc::SYS_unshare
    ));
    code.push_str(&format!(
        "p(\"FS\", sc({}, {}))\n",
        libc::SYS_unshare,
        libc::CLONE_FS
    ));
    code.push_str(
        "if hasattr(os, 'unshare'):\n    t('os_unshare', lambda: os.unshare(os.CLONE_NEWUSER))\nelse:\n    p('os_unshare', 'EPERM')\n",
    );
    let r = py(&real(s.path()), None, &[], &code);
    assert_eq!(r.code, 0, "{r:?}");
    for (name, _) in CLONE_FLAGS {
        expect(&r, name, "EPERM");
    }
    expect(&r, "NEWTIME", "EPERM");
    expect(&r, "os_unshare", "EPERM");
    expect(&r, "FS", "OK");
}

/// Threat: join another namespace with setns(2) / nsenter: init's (PID 1
/// inside is zerobox's init) or any namespace fd one can open. Stopped by:
/// opening /proc/1/ns/* needs ptrace access to init (EACCES); setns is
/// refused by seccomp even on one's own namespace fds (EPERM).
#[test]
fn setns_and_nsenter_are_refused() {
    let s = scratch();
    let d = real(s.path());
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
for ns in ["mnt", "user", "net", "pid"]:
    t("open_init_" + ns, lambda: os.open(f"/proc/1/ns/{{ns}}", os.O_RDONLY))
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
p("setns_own", sc({setns}, fd, 0))
ufd = os.open("/proc/self/ns/user", os.O_RDONLY)
p("setns_user", sc({setns}, ufd, 0))
"#,
            setns = libc::SYS_setns
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for ns in ["mnt", "user", "net", "pid"] {
        expect(&r, &format!("open_init_{ns}"), "EACCES");
    }
    expect(&r, "setns_own", "EPERM");
    expect(&r, "setns_user", "EPERM");
    if common::have("nsenter") {
        let r = sh(
            &d,
            None,
            &[],
            "nsenter -t 1 -m -U -n true; echo rc=$?; nsenter --net=/proc/self/ns/net true; echo rc2=$?",
        );
        assert!(
            r.stdout.contains("rc=1") && r.stdout.contains("rc2=1"),
            "{r:?}"
        );
    } else {
        eprintln!("SKIP (part): no nsenter(1)");
    }
}

/// Threat: clone(2) with CLONE_NEWUSER (fork straight into a new user
/// namespace), or clone3 whose flags live in memory a seccomp filter cannot
/// read. Stopped by: seccomp (clone with namespace flags EPERM; clone3
/// ENOSYS so libc falls back to the checked clone). A plain fork works.
#[test]
fn clone_into_new_namespaces_is_refused() {
    let s = scratch();
    let code = format!(
        r#"
def clone(flags):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long({clone}), ctypes.c_long(flags | 17), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
        return "OK"
    return en(ctypes.get_errno())
p("clone_newuser", clone(0x10000000))
p("clone_newns", clone(0x00020000))
p("clone_newpid", clone(0x20000000))
p("clone_newnet", clone(0x40000000))
p("clone3", sc({clone3}, 0, 0))
p("clone_plain", clone(0))
"#,
        clone = libc::SYS_clone,
        clone3 = libc::SYS_clone3,
    );
    let r = py(&real(s.path()), None, &[], &code);
    assert_eq!(r.code, 0, "{r:?}");
    for n in [
        "clone_newuser",
        "clone_newns",
        "clone_newpid",
        "clone_newnet",
    ] {
        expect(&r, n, "EPERM");
    }
    expect(&r, "clone3", "ENOSYS");
    expect(&r, "clone_plain", "OK");
}
