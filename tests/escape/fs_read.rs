//! Reads of denied files: the default deny list over a fake HOME, reached
//! directly, through symlinks, `..`, /proc, inherited descriptors, search.

use std::path::Path;
use std::process::Command;

use crate::common::{self, real, scratch, Run};
use crate::util::{expect, is_root, py, sh, sh_fallback, unique, Home};

/// Threat: read secrets in HOME (~/.ssh/id_rsa, ~/.aws/credentials,
/// ~/.bash_history) directly. Stopped by: masks (an empty read-only tmpfs
/// over directories, an empty file over files) and Landlock (no read right
/// on the denied paths: EACCES on the masked file).
#[test]
fn plain_read_of_secrets_is_denied() {
    let home = Home::new();
    let h = home.path();
    let cwd = scratch();
    let h_ = h.display();
    let r = py(
        &real(cwd.path()),
        Some(&h),
        &[],
        &format!(
            r#"
t("ssh", lambda: print(open("{h_}/.ssh/id_rsa").read()))
t("aws", lambda: print(open("{h_}/.aws/credentials").read()))
t("hist", lambda: print(open("{h_}/.bash_history").read()))
t("tilde", lambda: print(open(os.path.expanduser("~/.ssh/id_rsa")).read()))
t("public", lambda: print(open("{h_}/notes.txt").read()))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "ssh", "ENOENT");
    expect(&r, "aws", "ENOENT");
    expect(&r, "hist", "EACCES");
    expect(&r, "tilde", "ENOENT");
    expect(&r, "public", "OK");
    assert!(r.stdout.contains("public"), "{r:?}");
    home.assert_no_leak(&r);
}

/// Threat: a symlink in a readable place (the cwd, made on the host before
/// the run, or in /tmp inside) pointing at a secret. Stopped by: symlinks
/// resolve inside the sandbox's mount tree, where the target is masked;
/// Landlock checks the resolved file.
#[test]
fn symlink_to_secret_does_not_read_it() {
    let home = Home::new();
    let h = home.path();
    let cs = scratch();
    let c = real(cs.path());
    std::os::unix::fs::symlink(h.join(".ssh/id_rsa"), c.join("key")).unwrap();
    std::os::unix::fs::symlink(h.join(".ssh"), c.join("sshdir")).unwrap();
    std::os::unix::fs::symlink(h.join(".bash_history"), c.join("hist")).unwrap();
    // The primitive: outside, the links read the secrets.
    assert!(std::fs::read_to_string(c.join("key"))
        .unwrap()
        .contains(&home.ssh));
    let h_ = h.display();
    let r = py(
        &c,
        Some(&h),
        &[],
        &format!(
            r#"
t("cwd_link", lambda: print(open("key").read()))
t("cwd_dirlink", lambda: print(open("sshdir/id_rsa").read()))
t("cwd_hist", lambda: print(open("hist").read()))
os.symlink("{h_}/.aws/credentials", "/tmp/aws")
t("tmp_link", lambda: print(open("/tmp/aws").read()))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "cwd_link", "ENOENT");
    expect(&r, "cwd_dirlink", "ENOENT");
    expect(&r, "cwd_hist", "EACCES");
    expect(&r, "tmp_link", "ENOENT");
    home.assert_no_leak(&r);
}

/// Threat: `..` traversal and odd spellings (`.ssh/../.ssh`, `//`, `./`,
/// relative paths from inside HOME) to dodge a path-string deny list.
/// Stopped by: masks are mounts (path spelling is irrelevant) and Landlock
/// rules are on inodes.
#[test]
fn dotdot_traversal_does_not_read_secrets() {
    let home = Home::new();
    let h = home.path();
    let h_ = h.display();
    let r = sh(
        &h,
        Some(&h),
        &[],
        &format!(
            "cat {h_}/.ssh/../.ssh/id_rsa; cat {h_}/./.aws//credentials; \
             cat .ssh/id_rsa; cat ./.bash_history; cd .aws && cat ./credentials ../.bash_history; \
             cat /proc/../{h_}/.ssh/id_rsa; cat {h_}/notes.txt/../.bash_history; echo done"
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.trim_end().ends_with("done"), "{r:?}");
    home.assert_no_leak(&r);
}

/// Threat: read secrets through /proc/self/root, /proc/thread-self/root
/// and /proc/1/root (init's view). Stopped by: /proc/self/root is the
/// sandbox's own masked tree; /proc/1/* needs ptrace access to init
/// (EACCES: no capabilities, Landlock scoping).
#[test]
fn proc_root_links_do_not_read_secrets() {
    let home = Home::new();
    let h = home.path();
    let h_ = h.display();
    let r = py(
        &h,
        Some(&h),
        &[],
        &format!(
            r#"
t("self_root", lambda: print(open("/proc/self/root{h_}/.ssh/id_rsa").read()))
t("thread_root", lambda: print(open("/proc/thread-self/root{h_}/.aws/credentials").read()))
t("self_hist", lambda: print(open("/proc/self/root{h_}/.bash_history").read()))
t("init_root", lambda: print(open("/proc/1/root{h_}/.ssh/id_rsa").read()))
t("init_hist", lambda: print(open("/proc/1/root{h_}/.bash_history").read()))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "self_root", "ENOENT");
    expect(&r, "thread_root", "ENOENT");
    expect(&r, "self_hist", "EACCES");
    expect(&r, "init_root", "EACCES");
    expect(&r, "init_hist", "EACCES");
    home.assert_no_leak(&r);
}

/// Threat: the caller (or a compromised parent) has a secret open on fd 3/4
/// without close-on-exec; the sandboxed command reads it from the inherited
/// fd, /proc/self/fd, or init's /proc/1/fd. Stopped by: the command process
/// marks every fd >= 3 close-on-exec before exec; init's fds need ptrace
/// access (EACCES).
#[test]
fn inherited_fds_do_not_leak_into_the_command() {
    let home = Home::new();
    let h = home.path();
    let py3 = crate::util::python();
    let code = format!(
        "{}\n{}",
        crate::util::PRELUDE,
        r#"
open_fds = []
for fd in range(3, 64):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
p("open_fds", open_fds)
t("fd3", lambda: print(os.read(3, 100)))
t("procfd3", lambda: print(open("/proc/self/fd/3").read()))
t("init_fd3", lambda: print(open("/proc/1/fd/3").read()))
t("init_fd4", lambda: print(open("/proc/1/fd/4").read()))
"#
    );
    // The shell opens the secrets on fds 3 and 4 (no close-on-exec) and
    // execs zerobox with them.
    let script = r#"exec 3<"$1/.ssh/id_rsa" 4<"$1/.bash_history"; cat <&3 >/dev/null; exec "$2" -- "$3" -B -c "$4""#;
    let out = Command::new("sh")
        .current_dir(&h)
        .env("HOME", &h)
        .env_remove("ZEROBOX_SIMULATE_MISSING")
        .args(["-c", script, "sh"])
        .arg(&h)
        .arg(common::bin())
        .arg(&py3)
        .arg(&code)
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "open_fds", "[]");
    expect(&r, "fd3", "EBADF");
    expect(&r, "procfd3", "ENOENT");
    expect(&r, "init_fd3", "EACCES");
    expect(&r, "init_fd4", "EACCES");
    home.assert_no_leak(&r);
    // The same shell line without zerobox does read the secret via fd 3.
    let out = Command::new("sh")
        .args([
            "-c",
            r#"exec 3<"$1/.ssh/id_rsa"; exec cat /proc/self/fd/3"#,
            "sh",
        ])
        .arg(&h)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&home.ssh));
}

/// Threat: learn what secrets exist by listing the denied directories, or
/// find an unmasked copy anywhere with `find / -name id_rsa` + grep.
/// Stopped by: masked directories are empty tmpfs mounts; Landlock denies
/// reading the files; nothing else holds the marker.
#[test]
fn listing_and_searching_find_no_secret() {
    let home = Home::new();
    let h = home.path();
    let r = sh(
        &h,
        Some(&h),
        &[],
        "echo ssh:$(ls -A ~/.ssh | wc -l) aws:$(ls -A ~/.aws | wc -l); \
         find / \\( -path /proc -o -path /sys -o -path /dev -o -path /usr -o -path /mnt \\) -prune \
           -o \\( -name id_rsa -o -name credentials -o -name .bash_history \\) -print \
           -exec cat {} \\; 2>/dev/null; \
         grep -rs ZB- ~ 2>/dev/null; echo done",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("ssh:0 aws:0\n"), "{r:?}");
    assert!(r.stdout.trim_end().ends_with("done"), "{r:?}");
    home.assert_no_leak(&r);
}

/// Threat: read /etc/shadow and /etc/gshadow (password hashes). Stopped
/// by: masks (an empty read-only file) and Landlock (EACCES). As root the
/// primitive works on the host, so the test proves the mask does the job.
#[test]
fn etc_shadow_is_unreadable() {
    if !Path::new("/etc/shadow").exists() {
        eprintln!("SKIP: no /etc/shadow on this host");
        return;
    }
    let host = std::fs::read_to_string("/etc/shadow");
    if is_root() {
        assert!(host.as_ref().unwrap().contains("root:"), "primitive");
    }
    let s = scratch();
    let r = py(
        &real(s.path()),
        None,
        &[],
        r#"
t("shadow", lambda: print(open("/etc/shadow").read()))
if os.path.exists("/etc/gshadow"):
    t("gshadow", lambda: print(open("/etc/gshadow").read()))
else:
    p("gshadow", "EACCES")
t("proc_root", lambda: print(open("/proc/self/root/etc/shadow").read()))
p("size", os.stat("/etc/shadow").st_size)
"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "shadow", "EACCES");
    expect(&r, "gshadow", "EACCES");
    expect(&r, "proc_root", "EACCES");
    expect(&r, "size", "0");
    assert!(!r.stdout.contains("root:"), "{r:?}");
}

/// Threat: the same reads in the fallback mode (no user namespaces: no
/// masks, no pid namespace), including the parent zerobox's /proc/PPID/fd
/// holding an inherited secret. Stopped by: Landlock alone (EACCES; ptrace
/// scoping for another process's fds).
#[test]
fn fallback_mode_still_denies_secrets() {
    let home = Home::new();
    let h = home.path();
    let h_ = h.display();
    let script = format!(
        "cat {h_}/.ssh/id_rsa; cat {h_}/.aws/credentials; cat {h_}/.bash_history; \
         cat /proc/self/root{h_}/.ssh/id_rsa; cat /proc/$PPID/fd/3; cat <&3; echo done"
    );
    // fd 3 open on the secret in zerobox itself.
    let out = Command::new("sh")
        .current_dir(&h)
        .env("HOME", &h)
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .args([
            "-c",
            r#"exec 3<"$1/.ssh/id_rsa"; exec "$2" -- sh -c "$3""#,
            "sh",
        ])
        .arg(&h)
        .arg(common::bin())
        .arg(&script)
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.trim_end().ends_with("done"), "{r:?}");
    assert!(r.stderr.contains("Permission denied"), "{r:?}");
    home.assert_no_leak(&r);
    // Sanity: fallback mode was really used.
    let r = sh_fallback(&h, Some(&h), &[], "true");
    assert!(r.stderr.contains("Landlock + seccomp only"), "{r:?}");
}

/// Threat: a path with a comma (`--deny-read='~/my,secrets'`) was split by
/// the CLI into `~/my` and `secrets`, and the real directory stayed
/// readable. Stopped by: `\,` keeps the comma in the path (and protects
/// it); an unescaped comma in a value that names an existing path as a
/// whole is refused (exit 2) instead of protecting something else.
#[test]
fn comma_in_a_path_never_protects_something_else() {
    let home = Home::new();
    let h = home.path();
    let marker = format!("ZB-COMMA-SECRET-{}", unique());
    std::fs::create_dir(h.join("my,secrets")).unwrap();
    std::fs::write(h.join("my,secrets/key"), &marker).unwrap();
    let run = |flag: &str| {
        crate::util::sh(
            &h,
            Some(&h),
            &[flag],
            "cat ~/my,secrets/key; echo; echo ran",
        )
    };
    let r = run("--deny-read=~/my,secrets");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("comma"), "{r:?}");
    assert!(
        !r.stdout.contains(&marker) && !r.stdout.contains("ran"),
        "{r:?}"
    );
    let r = run(r"--deny-read=~/my\,secrets");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("ran") && !r.stdout.contains(&marker),
        "{r:?}"
    );
}

/// Threat: with HOME pointing elsewhere (a fake home, a project dir), the
/// built-in deny list followed $HOME only and the account's real `~/.ssh`
/// was readable. Stopped by: the deny list is applied under the account's
/// home from the user database as well.
#[test]
fn deny_list_covers_the_account_home_when_home_points_elsewhere() {
    let Some(account) = zerobox::sandbox::linux::account::account_home() else {
        panic!("no passwd entry for this uid: the test user must have one");
    };
    let account = std::fs::canonicalize(&account).unwrap_or(account);
    let ssh = account.join(".ssh");
    let created = !ssh.exists();
    if created {
        std::fs::create_dir(&ssh).unwrap();
    }
    let marker = format!("ZB-ACCOUNT-SSH-{}", unique());
    let file = ssh.join(format!("zb-test-{}", unique()));
    std::fs::write(&file, &marker).unwrap();
    let fake = Home::new();
    let r = crate::util::sh(
        &fake.path(),
        Some(&fake.path()),
        &[],
        &format!("cat {}; echo; echo ran", file.display()),
    );
    let _ = std::fs::remove_file(&file);
    if created {
        let _ = std::fs::remove_dir(&ssh);
    }
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ran"), "{r:?}");
    assert!(
        !r.stdout.contains(&marker),
        "account ~/.ssh readable: {r:?}"
    );
    fake.assert_no_leak(&r);
}

/// Threat: a denied file that a host program replaces during the run (an
/// editor's or a shell's atomic save: a new file renamed over the old, as
/// zsh does with its history on every prompt). Since Linux 3.18 a rename
/// over a mount point made in another mount namespace is allowed and
/// detaches that mount there: the sandbox's mask over the file is gone and
/// the new file is what the path names. Stopped by: Landlock, not the
/// masks: the denied file's directory is carved out (its siblings are
/// granted one by one), so the new file, granted by no rule, stays
/// unreadable. This is why Landlock keeps carving out denied paths in
/// namespace mode too (docs/architecture.md, "Layers").
#[test]
fn denied_file_replaced_on_the_host_during_the_run_stays_unreadable() {
    let home = Home::new();
    let h = home.path();
    let cwd = scratch();
    let replaced = format!("ZB-REPLACED-SECRET-{}", unique());
    let host = {
        let (h, replaced) = (h.clone(), replaced.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(800));
            std::fs::write(h.join(".bash_history.new"), format!("{replaced}\n")).unwrap();
            std::fs::rename(h.join(".bash_history.new"), h.join(".bash_history")).unwrap();
        })
    };
    // Read before and, for a while, after the host's rename.
    let script = format!(
        "cat {h}/.bash_history; echo \"[first: $?]\"; i=0; while [ $i -lt 30 ]; do cat {h}/.bash_history 2>/dev/null && break; sleep 0.1; i=$((i+1)); done; echo \"[last: $i]\"",
        h = h.display()
    );
    let r = sh(&real(cwd.path()), Some(&h), &[], &script);
    host.join().unwrap();
    // The primitive: the host file was replaced during the run.
    assert_eq!(
        std::fs::read_to_string(h.join(".bash_history")).unwrap(),
        format!("{replaced}\n")
    );
    assert!(r.stdout.contains("[last: 30]"), "{r:?}");
    assert!(
        !r.stdout.contains(&replaced) && !r.stdout.contains(&home.hist),
        "the replaced file was read:\n{r:?}"
    );
    // And in the fallback, where Landlock is the only layer.
    let again = format!("ZB-REPLACED-AGAIN-{}", unique());
    let host = {
        let (h, again) = (h.clone(), again.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(800));
            std::fs::write(h.join(".bash_history.new"), format!("{again}\n")).unwrap();
            std::fs::rename(h.join(".bash_history.new"), h.join(".bash_history")).unwrap();
        })
    };
    let r = sh_fallback(&real(cwd.path()), Some(&h), &[], &script);
    host.join().unwrap();
    assert!(r.stdout.contains("[last: 30]"), "{r:?}");
    assert!(
        !r.stdout.contains(&again) && !r.stdout.contains(&replaced),
        "the replaced file was read in the fallback:\n{r:?}"
    );
}
