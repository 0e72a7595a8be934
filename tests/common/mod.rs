//! Shared helpers for the integration tests: find the zerobox binary, run
//! it, and make scratch directories the sandboxed command can be pointed at.
#![allow(dead_code)]

pub mod agent;
pub mod tui;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test: `ZEROBOX_BIN` (set by scripts/test when the suite
/// runs as an unprivileged user from a copied tree), else cargo's build.
pub fn bin() -> PathBuf {
    match std::env::var_os("ZEROBOX_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_zerobox")),
    }
}

/// A `zerobox` command with a clean, predictable environment.
pub fn zerobox() -> Command {
    let mut c = Command::new(bin());
    c.env_remove("ZEROBOX_SIMULATE_MISSING");
    c.env_remove("ZEROBOX_SIMULATE_LANDLOCK_ABI");
    c.stdin(Stdio::null());
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let code = out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
        Run {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run `zerobox ARGS -- sh -c SCRIPT` in `cwd`.
pub fn sh_in(cwd: &Path, args: &[&str], script: &str) -> Run {
    let out = zerobox()
        .current_dir(cwd)
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("spawn zerobox");
    Run::from(out)
}

/// Run `zerobox ARGS` (full argv after the binary name) in `cwd`.
pub fn run_in(cwd: &Path, args: &[&str]) -> Run {
    let out = zerobox()
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("spawn zerobox");
    Run::from(out)
}

/// A scratch directory under /var/tmp, not /tmp: the sandbox's /tmp is
/// private, so a host path under /tmp is visible inside only when the
/// policy names it (the cwd is named implicitly). Removed on drop.
pub fn scratch() -> tempfile::TempDir {
    let base = std::env::var_os("ZEROBOX_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let dir = tempfile::Builder::new()
        .prefix("zb-test-")
        .tempdir_in(base)
        .expect("scratch dir");
    dir
}

/// The canonical path of a scratch dir (zerobox canonicalises rule paths).
pub fn real(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).expect("canonicalize")
}

/// Is a program on PATH?
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// A test CA and a leaf for `host`, written as PEM files into `dir`.
pub fn test_pki(dir: &Path, host: &str) -> (PathBuf, PathBuf, PathBuf) {
    test_pki_for(dir, &[host])
}

/// A test CA and one leaf valid for every name in `hosts`.
pub fn test_pki_for(dir: &Path, hosts: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own: with rcgen's default DN for both, OpenSSL clients
    // (curl) take the leaf for self-signed when they verify it themselves.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "zerobox test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca, cert, key)
}

/// Does the test run as root?
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A test that cannot run here because the machine lacks a layer or tool:
/// prints a SKIP line, or FAILS when CI asks for every layer
/// (`ZEROBOX_REQUIRE_ALL=1`, set by .ci/run), so a skip never passes
/// vacuously where the layer should be. Call it, then `return`.
#[track_caller]
pub fn skip(reason: &str) {
    if std::env::var_os("ZEROBOX_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("ZEROBOX_REQUIRE_ALL=1, but this test would skip: {reason}");
    }
    eprintln!("SKIP: {reason}");
}

/// Wait (at most 30 s) until `path` exists; false if it never did.
pub fn wait_for_file(path: &Path) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !path.exists() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

/// zerobox's exit, or a kill after 60 s (a command the watcher did not
/// stop runs that long), so the test fails rather than hangs.
pub fn finish(child: std::process::Child) -> Run {
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        for _ in 0..600 {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let r = Run::from(child.wait_with_output().unwrap());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    r
}
