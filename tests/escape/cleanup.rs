//! What a run leaves on the host: files in /tmp or /dev/shm, SysV IPC
//! objects, mounts, the fallback mode's private temp dir.

use std::path::Path;

use crate::common::{real, scratch};
use crate::util::{expect, py, py_fallback, unique};

/// Threat: drop files in /tmp for a later host process to pick up (a
/// planted script, a poisoned cache, a symlink race), or fill the host's
/// /tmp. Stopped by: the private tmpfs on /tmp (TMPDIR=/tmp), discarded
/// with the mount namespace.
#[test]
fn tmp_files_do_not_reach_the_host() {
    let u = unique();
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
p("tmpdir", os.environ.get("TMPDIR"))
t("file", lambda: open("/tmp/zb-leak-{u}", "w").write("x"))
t("dir", lambda: os.mkdir("/tmp/zb-leak-dir-{u}"))
t("link", lambda: os.symlink("/etc/passwd", "/tmp/zb-leak-link-{u}"))
p("host_tmp_entries", len([e for e in os.listdir("/tmp") if not e.startswith("zb-leak")]))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "tmpdir", "/tmp");
    for n in ["file", "dir", "link"] {
        expect(&r, n, "OK");
    }
    expect(&r, "host_tmp_entries", "0");
    for p in ["zb-leak-", "zb-leak-dir-", "zb-leak-link-"] {
        let path = format!("/tmp/{p}{u}");
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "{path} leaked to the host"
        );
    }
}

/// Threat: leave data in /dev/shm or in a SysV shared memory segment for a
/// host process (shared memory is how some agents and browsers talk).
/// Stopped by: a private tmpfs on /dev/shm and the IPC namespace (both
/// gone when the sandbox ends).
#[test]
fn shared_memory_does_not_reach_the_host() {
    let u = unique();
    let key: u32 = 0x7a00_0000 | (std::process::id() & 0xff_ffff);
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
t("shm_file", lambda: open("/dev/shm/zb-leak-{u}", "w").write("x"))
libc.shmget.restype = ctypes.c_int
ctypes.set_errno(0)
sid = libc.shmget(ctypes.c_int({key}), ctypes.c_size_t(4096), ctypes.c_int(0o1000 | 0o600))
p("shmget", "OK" if sid >= 0 else en(ctypes.get_errno()))
p("ipc_ns_empty", all(len(open(f"/proc/sysvipc/{{k}}").read().splitlines()) <= 2 for k in ("shm", "msg", "sem")))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "shm_file", "OK");
    expect(&r, "shmget", "OK");
    expect(&r, "ipc_ns_empty", "True");
    assert!(!Path::new(&format!("/dev/shm/zb-leak-{u}")).exists());
    let host_shm = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    let key_dec = format!(" {key} ");
    assert!(
        !host_shm
            .lines()
            .any(|l| format!(" {l} ").contains(&key_dec)),
        "SysV segment {key} leaked to the host:\n{host_shm}"
    );
}

/// Threat: a mount (the sandbox's masks, binds, tmpfs) propagating to the
/// host, or a stale placeholder / empty-file left behind. Stopped by: the
/// sandbox makes / private (MS_REC|MS_PRIVATE) in its own mount namespace
/// before mounting anything; no placeholder is ever created (a missing
/// protected path is guarded from outside, see sandbox::guard).
#[test]
fn no_mount_or_placeholder_remains_on_the_host() {
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let s = scratch();
    let d = real(s.path());
    std::fs::create_dir(d.join("ro")).unwrap();
    let wa = format!("--allow-write={}", d.display());
    let dr = format!("--deny-read={}", d.join("missing/secret").display());
    let dw = format!("--deny-write={}", d.join("ro").display());
    let r = py(
        &d,
        None,
        &[&wa, &dr, &dw],
        &format!(
            r#"
p("mounts_inside", len(open("/proc/self/mountinfo").read().splitlines()) > 5)
p("has_mask", "{d}/ro " in open("/proc/self/mountinfo").read())
"#,
            d = d.display()
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "mounts_inside", "True");
    expect(&r, "has_mask", "True");
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        strip(&before),
        strip(&after),
        "the host mount table changed"
    );
    assert!(
        !after.contains(&d.display().to_string()),
        "a sandbox mount is visible on the host"
    );
    assert!(!d.join("missing").exists(), "placeholder left on the host");
    assert!(!Path::new("/tmp/.zerobox-empty").exists());
}

/// Threat: in the fallback mode /tmp is the host's, so zerobox makes a
/// private directory under it; files planted there must not outlive the
/// run. Stopped by: zerobox removes the directory after the command exits.
#[test]
fn fallback_private_tmp_is_removed() {
    let s = scratch();
    let r = py_fallback(
        &real(s.path()),
        &[],
        r#"
d = os.environ["TMPDIR"]
p("tmpdir", d)
t("plant", lambda: open(os.path.join(d, "planted"), "w").write("x"))
t("host_tmp", lambda: open("/tmp/zb-fallback-plant", "w").write("x"))
"#,
    );
    assert!(r.stderr.contains("Landlock + seccomp only"), "{r:?}");
    expect(&r, "plant", "OK");
    expect(&r, "host_tmp", "EACCES");
    let dir = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("tmpdir="))
        .expect("tmpdir printed")
        .to_string();
    assert!(dir.contains("zerobox-"), "{r:?}");
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    assert!(!Path::new("/tmp/zb-fallback-plant").exists());
}
