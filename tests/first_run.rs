//! The first-run summary of a preset, with the real binary: shown on the
//! first run, not on the second, again when the grants change, never with
//! `--quiet` or in `--dry-run`/`explain --json` output; a marker that cannot
//! be read or written only means it shows again (the run never fails), and
//! a planted symlink in place of the marker is never followed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{scratch, zerobox, Run};

const HEAD: &str = "zerobox: first run of preset demo@";

/// A scratch home with its own XDG dirs, a trusted signing key, and a
/// project directory.
struct Home {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = scratch();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("proj")).unwrap();
        let h = Home { _dir: dir, root };
        let k = h.zb(&["preset", "keygen", "--out", "k"], false);
        assert_eq!(k.code, 0, "{k:?}");
        let t = h.zb(&["preset", "trust-key", "k.pub"], false);
        assert_eq!(t.code, 0, "{t:?}");
        h
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Write and sign `demo.yaml` (command `true`).
    fn preset(&self, version: &str, hosts: &[&str]) -> PathBuf {
        let p = self.root.join("demo.yaml");
        std::fs::write(
            &p,
            format!(
                "zerobox: 1\nname: demo\nversion: {version}\ncommand: \"true\"\nfilesystem:\n  write:\n    allow: [., ~/.demo]\nnetwork:\n  allow: [{}]\n",
                hosts.join(", ")
            ),
        )
        .unwrap();
        let s = self.zb(
            &["preset", "sign", p.to_str().unwrap(), "--key", "k.key"],
            false,
        );
        assert_eq!(s.code, 0, "{s:?}");
        p
    }

    fn zb(&self, args: &[&str], in_proj: bool) -> Run {
        let mut c = zerobox();
        c.current_dir(if in_proj {
            self.root.join("proj")
        } else {
            self.root.clone()
        })
        .env("HOME", &self.root)
        .env("XDG_CONFIG_HOME", self.root.join("config"))
        .env("XDG_CACHE_HOME", self.root.join("cache"))
        .env("XDG_DATA_HOME", self.data())
        .env("ZEROBOX_OFFLINE", "1")
        .args(args);
        Run::from(c.output().unwrap())
    }

    fn run(&self, preset: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["run", "--allow-weak-net"];
        args.extend_from_slice(extra);
        args.push(preset.to_str().unwrap());
        self.zb(&args, true)
    }
}

fn shows(r: &Run) -> bool {
    r.stderr.contains(HEAD)
}

#[test]
fn shown_once_per_set_of_grants() {
    let h = Home::new();
    let p = h.preset("1.0.0", &["api.demo.example"]);
    let first = h.run(&p, &[]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(shows(&first), "{first:?}");
    for want in [
        "demo@1.0.0",
        ". (the project), ~/.demo",
        "api.demo.example",
        "overrides/demo.yaml",
        "zerobox preset show demo --resolved",
        "--quiet",
    ] {
        assert!(first.stderr.contains(want), "{want}: {first:?}");
    }
    // The marker lives in zerobox's data dir, not in the project.
    assert!(h.data().join("zerobox/seen/demo").is_file());
    let second = h.run(&p, &[]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(!shows(&second), "{second:?}");
    // A new version with the same grants: not again.
    let p = h.preset("1.0.1", &["api.demo.example"]);
    assert!(!shows(&h.run(&p, &[])));
    // New grants: shown again, once.
    let p = h.preset("2.0.0", &["api.demo.example", "new.demo.example"]);
    let r = h.run(&p, &[]);
    assert!(shows(&r) && r.stderr.contains("new.demo.example"), "{r:?}");
    assert!(!shows(&h.run(&p, &[])));
}

#[test]
fn quiet_dry_run_and_json_never_show_it() {
    let h = Home::new();
    let p = h.preset("1.0.0", &["api.demo.example"]);
    let q = h.run(&p, &["--quiet"]);
    assert_eq!(q.code, 0, "{q:?}");
    assert!(!shows(&q), "{q:?}");
    let d = h.run(&p, &["--dry-run"]);
    assert_eq!(d.code, 0, "{d:?}");
    assert!(!shows(&d) && !d.stdout.contains(HEAD), "{d:?}");
    let j = h.zb(
        &[
            "explain",
            "--json",
            "--profile",
            p.to_str().unwrap(),
            "--",
            "true",
        ],
        true,
    );
    assert_eq!(j.code, 0, "{j:?}");
    assert!(!shows(&j), "{j:?}");
    serde_json::from_str::<serde_json::Value>(&j.stdout).expect("explain --json parses");
    let j = h.zb(&["explain", "--json", p.to_str().unwrap()], true);
    assert_eq!(j.code, 0, "{j:?}");
    assert!(!shows(&j), "{j:?}");
    serde_json::from_str::<serde_json::Value>(&j.stdout).expect("explain --json NAME parses");
    // None of those counted as seeing it.
    assert!(shows(&h.run(&p, &[])));
}

/// An unwritable or odd marker never fails the run: the summary shows
/// again. A symlink planted as the marker is not followed (its target is
/// left as it was).
#[test]
fn marker_failures_fail_closed() {
    let h = Home::new();
    let p = h.preset("1.0.0", &["api.demo.example"]);
    // The seen dir is a file: nothing can be written, every run shows it.
    std::fs::create_dir_all(h.data().join("zerobox")).unwrap();
    std::fs::write(h.data().join("zerobox/seen"), "not a dir").unwrap();
    for _ in 0..2 {
        let r = h.run(&p, &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(shows(&r), "{r:?}");
    }
    std::fs::remove_file(h.data().join("zerobox/seen")).unwrap();
    std::fs::create_dir_all(h.data().join("zerobox/seen")).unwrap();
    let victim = h.root.join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    std::os::unix::fs::symlink(&victim, h.data().join("zerobox/seen/demo")).unwrap();
    let r = h.run(&p, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(shows(&r), "{r:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    // The link was replaced by a marker of its own: seen from now on.
    assert!(!h
        .data()
        .join("zerobox/seen/demo")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!shows(&h.run(&p, &[])));
}

/// A closed or failing stderr: the summary is dropped, the command's status
/// kept; a write that failed does not count as seen. (A closed descriptor
/// cannot be told from a working one: Rust's stderr ignores EBADF.)
#[test]
fn closed_stderr_keeps_the_status() {
    let h = Home::new();
    let p = h.preset("1.0.0", &["api.demo.example"]);
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" run --allow-weak-net \"$1\" 2>&-")
        .arg(common::bin())
        .arg(&p)
        .current_dir(h.root.join("proj"))
        .env("HOME", &h.root)
        .env("XDG_CONFIG_HOME", h.root.join("config"))
        .env("XDG_CACHE_HOME", h.root.join("cache"))
        .env("XDG_DATA_HOME", h.data())
        .env("ZEROBOX_OFFLINE", "1")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    // A stderr that fails (a full disk, here /dev/full): nobody saw it, so
    // the next run shows it.
    let h = Home::new();
    let p = h.preset("1.0.0", &["api.demo.example"]);
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" run --allow-weak-net \"$1\" 2>/dev/full")
        .arg(common::bin())
        .arg(&p)
        .current_dir(h.root.join("proj"))
        .env("HOME", &h.root)
        .env("XDG_CONFIG_HOME", h.root.join("config"))
        .env("XDG_CACHE_HOME", h.root.join("cache"))
        .env("XDG_DATA_HOME", h.data())
        .env("ZEROBOX_OFFLINE", "1")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(shows(&h.run(&p, &[])));
}
