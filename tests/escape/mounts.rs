//! Mount attacks: the command runs as uid 0 inside when zerobox runs as
//! root (and as the user otherwise); either way it must not be able to
//! mount, unmount a mask, remount the host writable or change its root.

use crate::common::{self, real, scratch};
use crate::util::{expect, py, sh, Home};

const MS_REMOUNT: u64 = 32;
const MS_BIND: u64 = 4096;
const MNT_DETACH: u64 = 2;

/// Threat: mount a filesystem of one's own (tmpfs over a directory to
/// shadow it, or to get a writable place on the host tree), with the
/// `mount` tool, raw mount(2), or the new mount API (fsopen/fsmount/
/// move_mount, open_tree, fspick, mount_setattr). Stopped by: seccomp
/// (EPERM for all of them); no capabilities would be the next wall.
#[test]
fn mounting_anything_is_refused() {
    let s = scratch();
    let d = real(s.path());
    if common::have("mount") {
        let r = sh(
            &d,
            None,
            &[],
            "mkdir /tmp/m && mount -t tmpfs none /tmp/m; echo rc=$?; grep -c ' /tmp/m ' /proc/self/mountinfo",
        );
        assert!(!r.stdout.contains("rc=0"), "{r:?}");
        assert!(r.stdout.ends_with("0\n"), "{r:?}");
    } else {
        eprintln!("SKIP (part): no mount(8); raw syscalls below still run");
    }
    let d_ = d.display();
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
os.mkdir("/tmp/m")
p("mount", sc({mount}, b"none", b"/tmp/m", b"tmpfs", 0, None))
p("bind", sc({mount}, b"/tmp", b"{d_}", None, {bind}, None))
p("fsopen", sc({fsopen}, b"tmpfs", 0))
p("open_tree", sc({open_tree}, -100, b"/tmp", 1))
p("move_mount", sc({move_mount}, -100, b"/tmp", -100, b"/tmp/m", 0))
p("fsmount", sc({fsmount}, 3, 0, 0))
p("fspick", sc({fspick}, -100, b"/", 0))
p("mount_setattr", sc({mount_setattr}, -100, b"/", 0, None, 0))
t("write_after", lambda: open("{d_}/pwn", "w").write("x"))
"#,
            mount = libc::SYS_mount,
            bind = MS_BIND,
            fsopen = libc::SYS_fsopen,
            open_tree = libc::SYS_open_tree,
            move_mount = libc::SYS_move_mount,
            fsmount = libc::SYS_fsmount,
            fspick = libc::SYS_fspick,
            mount_setattr = libc::SYS_mount_setattr,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in [
        "mount",
        "bind",
        "fsopen",
        "open_tree",
        "move_mount",
        "fsmount",
        "fspick",
        "mount_setattr",
    ] {
        expect(&r, n, "EPERM");
    }
    expect(&r, "write_after", "EROFS");
    assert!(!d.join("pwn").exists());
}

/// Threat: unmount the mask over ~/.ssh (or the empty file over
/// ~/.bash_history), lazily or not, to uncover the host's secret.
/// Stopped by: seccomp (umount2 EPERM); masks are also locked mounts of a
/// less privileged mount namespace.
#[test]
fn unmounting_a_mask_is_refused() {
    let home = Home::new();
    let h = home.path();
    if common::have("umount") {
        let r = sh(
            &h,
            Some(&h),
            &[],
            "umount ~/.ssh; umount -l ~/.ssh; umount ~/.bash_history; cat ~/.ssh/id_rsa ~/.bash_history; echo done",
        );
        assert!(r.stdout.ends_with("done\n"), "{r:?}");
        home.assert_no_leak(&r);
    } else {
        eprintln!("SKIP (part): no umount(8); raw syscalls below still run");
    }
    let h_ = h.display();
    let r = py(
        &h,
        Some(&h),
        &[],
        &format!(
            r#"
p("umount", sc({umount2}, b"{h_}/.ssh", 0))
p("umount_lazy", sc({umount2}, b"{h_}/.ssh", {detach}))
p("umount_hist", sc({umount2}, b"{h_}/.bash_history", {detach}))
p("umount_proc", sc({umount2}, b"/proc", {detach}))
t("read_after", lambda: print(open("{h_}/.ssh/id_rsa").read()))
"#,
            umount2 = libc::SYS_umount2,
            detach = MNT_DETACH,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["umount", "umount_lazy", "umount_hist", "umount_proc"] {
        expect(&r, n, "EPERM");
    }
    expect(&r, "read_after", "ENOENT");
    home.assert_no_leak(&r);
    home.assert_host_intact();
}

/// Threat: remount the host root (or a mask) read-write, then write the
/// host. Stopped by: seccomp (mount EPERM); the read-only flag is also
/// locked for a less privileged mount namespace.
#[test]
fn remounting_root_writable_is_refused() {
    let s = scratch();
    let d = real(s.path());
    if common::have("mount") {
        let r = sh(
            &d,
            None,
            &[],
            "mount -o remount,rw /; echo rc=$?; touch ./pwn; echo done",
        );
        assert!(!r.stdout.contains("rc=0"), "{r:?}");
        assert!(r.stdout.ends_with("done\n"), "{r:?}");
    } else {
        eprintln!("SKIP (part): no mount(8); raw syscalls below still run");
    }
    let d_ = d.display();
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
p("remount_root", sc({mount}, None, b"/", None, {remount}, None))
p("remount_bind", sc({mount}, None, b"/", None, {remount_bind}, None))
p("remount_cwd", sc({mount}, None, b"{d_}", None, {remount_bind}, None))
t("write_after", lambda: open("{d_}/pwn", "w").write("x"))
"#,
            mount = libc::SYS_mount,
            remount = MS_REMOUNT,
            remount_bind = MS_REMOUNT | MS_BIND,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["remount_root", "remount_bind", "remount_cwd"] {
        expect(&r, n, "EPERM");
    }
    expect(&r, "write_after", "EROFS");
    assert!(!d.join("pwn").exists());
}

/// Threat: create a nested user + mount namespace (`unshare -Urm`), where
/// one holds all capabilities again, and unmount the mask from there.
/// Stopped by: seccomp (unshare/clone with namespace flags EPERM).
#[test]
fn nested_userns_cannot_unmount_masks() {
    let home = Home::new();
    let h = home.path();
    if !common::have("unshare") {
        eprintln!("SKIP: no unshare(1)");
        return;
    }
    let r = sh(
        &h,
        Some(&h),
        &[],
        "unshare -Urm sh -c 'umount -l ~/.ssh; cat ~/.ssh/id_rsa'; echo rc=$?; \
         unshare -Ur --mount-proc -fp sh -c 'cat ~/.ssh/id_rsa'; echo rc2=$?",
    );
    assert!(
        r.stdout.contains("rc=1") && r.stdout.contains("rc2=1"),
        "{r:?}"
    );
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    home.assert_no_leak(&r);
}

/// Threat: change the root (chroot into a directory one controls, the
/// classic chroot escape, or pivot_root). Stopped by: seccomp (EPERM).
#[test]
fn chroot_and_pivot_root_are_refused() {
    let s = scratch();
    let d = real(s.path());
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
os.mkdir("/tmp/r")
p("chroot", sc({chroot}, b"/tmp/r"))
t("os_chroot", lambda: os.chroot("/tmp"))
p("pivot_root", sc({pivot_root}, b"/tmp", b"/tmp/r"))
"#,
            chroot = libc::SYS_chroot,
            pivot_root = libc::SYS_pivot_root,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["chroot", "os_chroot", "pivot_root"] {
        expect(&r, n, "EPERM");
    }
}

/// Threat (multi-run downgrade): run 1, with the project writable, plants
/// a dangling symlink where run 2 has a deny rule (an agent can add one to
/// a deny-only project override, which needs no trust). On main the mask
/// failed on it and zerobox fell back to Landlock-only with a warning.
/// Stopped by: the mode is chosen from probes before setup; the link is
/// inspected without being followed and pinned in place, so run 2 is a
/// full namespace sandbox (PID 1 is zerobox's) that cannot remove it.
#[test]
fn planted_dangling_symlink_at_a_rule_path_does_not_downgrade() {
    let s = scratch();
    let d = real(s.path());
    let r1 = sh(
        &d,
        None,
        &["--allow-write=."],
        "ln -s /nonexistent-zb/x dl && ln -s /etc/hostname fl && echo planted",
    );
    assert_eq!(r1.stdout, "planted\n", "{r1:?}");
    for (flag, name) in [
        ("--deny-read=./dl", "dl"),
        ("--deny-write=./dl", "dl"),
        ("--deny-write=./fl", "fl"),
    ] {
        let r2 = sh(
            &d,
            None,
            &["--allow-write=.", flag],
            &format!("cat /proc/1/comm; rm -f {name} 2>/dev/null; echo rm=$?"),
        );
        assert!(
            !r2.stderr.contains("Landlock + seccomp only"),
            "{flag}: downgraded: {r2:?}"
        );
        // Either a full sandbox, or a refusal naming the link: never less.
        if r2.code == 125 {
            assert!(r2.stderr.contains(&d.display().to_string()), "{r2:?}");
            continue;
        }
        assert_eq!(r2.code, 0, "{flag}: {r2:?}");
        assert!(r2.stdout.starts_with("zerobox\n"), "{flag}: {r2:?}");
        assert!(r2.stdout.contains("rm=1"), "{flag}: {r2:?}");
    }
    assert!(std::fs::symlink_metadata(d.join("dl")).is_ok());
    assert!(std::fs::symlink_metadata(d.join("fl")).is_ok());
}

/// Threat: another process (a concurrent run's command) flips a rule path
/// between a file and a directory while zerobox sets up, so the step made
/// for one meets the other. Stopped by: the mode was chosen before setup,
/// so a failed step is a refusal (exit 125 naming the step and the path),
/// never a fallback or a mask on something else. Each run either works,
/// refuses, or (a flip after the command started) is stopped (exit 122);
/// none is weaker.
#[test]
fn rule_path_changing_during_setup_refuses_or_holds() {
    let s = scratch();
    let d = real(s.path());
    std::fs::create_dir(d.join("Xd")).unwrap();
    std::fs::write(d.join("X"), "f").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let dir = d.clone();
    let flipper = std::thread::spawn(move || {
        let p = |n: &str| dir.join(n);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = std::fs::rename(p("X"), p("Xf"));
            let _ = std::fs::rename(p("Xd"), p("X"));
            let _ = std::fs::rename(p("X"), p("Xd"));
            let _ = std::fs::rename(p("Xf"), p("X"));
        }
    });
    let mut refused = 0;
    for _ in 0..20 {
        let r = sh(&d, None, &["--allow-write=.", "--deny-write=./X"], "true");
        assert!(!r.stderr.contains("Landlock + seccomp only"), "{r:?}");
        match r.code {
            0 => {}
            125 => {
                refused += 1;
                assert!(r.stderr.contains(&format!("{}/X", d.display())), "{r:?}");
            }
            // The flip came after the command started: the held path was
            // replaced on the host, which stops the run
            // (`protect::replaced`).
            122 => assert!(
                r.stderr.contains(&format!("{}/X was ", d.display()))
                    && r.stderr.contains("stopped the command"),
                "{r:?}"
            ),
            _ => panic!("neither ran, refused nor was stopped: {r:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    eprintln!("{refused} of 20 runs refused (the rest won the race)");
}

/// Threat: the read-denied directories' masks are clones of one empty,
/// read-only tmpfs (one superblock for all: see `mounts::SharedMask`). A
/// file planted through any of them would show up in all, and a clone of
/// the wrong mount would show host content. So: through each of several
/// masks under a writable project, no secret is visible and nothing can
/// be created, linked, renamed or re-pointed; the host keeps exactly its
/// own files.
/// Stopped by: the shared tmpfs is read-only at the superblock and at
/// every mount; each mask is a mount point (rename: EBUSY).
#[test]
fn shared_masks_show_nothing_and_take_nothing() {
    masks_hold(None);
}

/// The same where the kernel refuses the new mount API (simulated): each
/// mask is its own tmpfs, with the same protection.
#[test]
fn masks_without_the_new_mount_api_hold_the_same() {
    masks_hold(Some("fsmount"));
}

fn masks_hold(simulate_missing: Option<&str>) {
    let s = scratch();
    let d = real(s.path());
    for n in ["a", "b", "c"] {
        std::fs::create_dir(d.join(n)).unwrap();
        std::fs::write(d.join(n).join("secret"), "TOPSECRET").unwrap();
    }
    let code = format!(
        "{}{}",
        crate::util::PRELUDE,
        r#"
for n in ["a", "b", "c"]:
    p(f"list_{n}", ",".join(os.listdir(n)) or "EMPTY")
    t(f"create_{n}", lambda: open(f"{n}/x", "w").write("x"))
    t(f"mkdir_{n}", lambda: os.mkdir(f"{n}/d"))
    t(f"symlink_{n}", lambda: os.symlink("/etc/passwd", f"{n}/l"))
    t(f"link_{n}", lambda: os.link("/etc/hostname", f"{n}/h"))
    t(f"rename_{n}", lambda: os.rename(n, f"{n}2"))
    t(f"chmod_{n}", lambda: os.chmod(n, 0o777))
t("secret_a", lambda: print(open("a/secret").read()))
p("filesystems", len({os.stat(n).st_dev for n in ["a", "b", "c"]}))
p("masks_are_mounts", "OK" if all(open("/proc/self/mountinfo").read().count(f" {os.path.realpath(n)} ") == 1 for n in ["a", "b", "c"]) else "NO")
"#
    );
    let py = crate::util::python();
    let mut c = crate::common::zerobox();
    c.current_dir(&d);
    if let Some(v) = simulate_missing {
        c.env("ZEROBOX_SIMULATE_MISSING", v);
    }
    let r = crate::common::Run::from(
        c.args([
            "--allow-write=.",
            "--deny-read=a",
            "--deny-read=b",
            "--deny-read=c",
            "--",
            &py,
            "-B",
            "-c",
            &code,
        ])
        .output()
        .expect("spawn zerobox"),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("TOPSECRET"), "{r:?}");
    expect(&r, "secret_a", "ENOENT");
    expect(&r, "masks_are_mounts", "OK");
    // One shared filesystem, or one each without the new mount API.
    expect(
        &r,
        "filesystems",
        if simulate_missing.is_some() { "3" } else { "1" },
    );
    for n in ["a", "b", "c"] {
        expect(&r, &format!("list_{n}"), "EMPTY");
        for op in ["create", "mkdir", "symlink", "link", "chmod"] {
            expect(&r, &format!("{op}_{n}"), "EROFS");
        }
        // A mount point cannot be renamed away.
        expect(&r, &format!("rename_{n}"), "EBUSY");
        let left: Vec<_> = std::fs::read_dir(d.join(n))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["secret"], "{n}: {r:?}");
        assert!(!d.join(format!("{n}2")).exists(), "{r:?}");
    }
}
