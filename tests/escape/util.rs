//! Helpers for the escape suite: fake homes full of secrets, runners that
//! set HOME, a Python prelude that prints one `name=ERRNO` line per attack,
//! host-side process and socket checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{self, Run};

/// Is the test process root?
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A token unique to this call (pid + time + counter), for markers.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}{:09}{}",
        std::process::id(),
        t,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The Python the sandbox runs: the system one (a pyenv shim is a shell
/// script that wants to write its own state), else whatever is on PATH.
pub fn python() -> String {
    for p in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if Path::new(p).is_file() {
            return p.to_string();
        }
    }
    "python3".to_string()
}

/// A fake home directory holding secrets the default deny list covers.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub ssh: String,
    pub aws: String,
    pub hist: String,
}

impl Home {
    pub fn new() -> Home {
        let dir = common::scratch();
        let h = dir.path();
        let u = unique();
        let ssh = format!("ZB-SSH-SECRET-{u}");
        let aws = format!("ZB-AWS-SECRET-{u}");
        let hist = format!("ZB-HIST-SECRET-{u}");
        std::fs::create_dir_all(h.join(".ssh")).unwrap();
        std::fs::write(h.join(".ssh/id_rsa"), format!("{ssh}\n")).unwrap();
        std::fs::create_dir_all(h.join(".aws")).unwrap();
        std::fs::write(h.join(".aws/credentials"), format!("{aws}\n")).unwrap();
        std::fs::write(h.join(".bash_history"), format!("{hist}\n")).unwrap();
        std::fs::write(h.join("notes.txt"), "public\n").unwrap();
        let home = Home {
            dir,
            ssh,
            aws,
            hist,
        };
        // The attack primitive: the secrets are readable outside.
        home.assert_host_intact();
        home
    }

    pub fn path(&self) -> PathBuf {
        common::real(self.dir.path())
    }

    pub fn markers(&self) -> [&str; 3] {
        [&self.ssh, &self.aws, &self.hist]
    }

    /// Assert no secret marker appears in the run's output.
    pub fn assert_no_leak(&self, r: &Run) {
        for m in self.markers() {
            assert!(
                !r.stdout.contains(m) && !r.stderr.contains(m),
                "secret {m} leaked:\n{r:?}"
            );
        }
    }

    /// The host files still hold the secrets, unchanged.
    pub fn assert_host_intact(&self) {
        let h = self.dir.path();
        let read = |p: &str| std::fs::read_to_string(h.join(p)).unwrap_or_default();
        assert_eq!(read(".ssh/id_rsa"), format!("{}\n", self.ssh));
        assert_eq!(read(".aws/credentials"), format!("{}\n", self.aws));
        assert_eq!(read(".bash_history"), format!("{}\n", self.hist));
    }
}

/// `zerobox ARGS -- CMD…` in `cwd`, with HOME set when given.
pub fn run(cwd: &Path, home: Option<&Path>, args: &[&str], cmd: &[&str]) -> Run {
    let mut c = common::zerobox();
    c.current_dir(cwd);
    if let Some(h) = home {
        c.env("HOME", h);
    }
    let out = c
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .expect("spawn zerobox");
    Run::from(out)
}

/// `zerobox ARGS -- sh -c SCRIPT`.
pub fn sh(cwd: &Path, home: Option<&Path>, args: &[&str], script: &str) -> Run {
    run(cwd, home, args, &["sh", "-c", script])
}

/// Same in the Landlock + seccomp fallback (user namespaces simulated away).
pub fn sh_fallback(cwd: &Path, home: Option<&Path>, args: &[&str], script: &str) -> Run {
    let mut c = common::zerobox();
    c.current_dir(cwd).env("ZEROBOX_SIMULATE_MISSING", "userns");
    if let Some(h) = home {
        c.env("HOME", h);
    }
    let out = c
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("spawn zerobox");
    Run::from(out)
}

/// Python helpers every attack script starts with: `sc(nr, args…)` makes a
/// raw syscall and returns the errno name ("OK" on success); `t(name, f)`
/// runs `f` and prints `name=OK` or `name=EPERM` etc.
pub const PRELUDE: &str = r#"
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def en(e):
    return errno.errorcode.get(e, str(e))
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return "OK" if r >= 0 else en(ctypes.get_errno())
def p(name, val):
    print(f"{name}={val}", flush=True)
def t(name, f):
    try:
        f()
        p(name, "OK")
    except OSError as ex:
        p(name, en(ex.errno) if ex.errno else "OSERR")
"#;

/// `zerobox ARGS -- python3 -B -c PRELUDE+CODE`.
pub fn py(cwd: &Path, home: Option<&Path>, args: &[&str], code: &str) -> Run {
    let script = format!("{PRELUDE}\n{code}");
    let py = python();
    run(cwd, home, args, &[&py, "-B", "-c", &script])
}

/// The same script in the fallback mode.
pub fn py_fallback(cwd: &Path, args: &[&str], code: &str) -> Run {
    let script = format!("{PRELUDE}\n{code}");
    let mut c = common::zerobox();
    c.current_dir(cwd).env("ZEROBOX_SIMULATE_MISSING", "userns");
    let out = c
        .args(args)
        .args(["--", &python(), "-B", "-c", &script])
        .output()
        .expect("spawn zerobox");
    Run::from(out)
}

/// The same script on the host, unsandboxed (to prove a primitive works).
pub fn py_host(cwd: &Path, code: &str) -> Run {
    let script = format!("{PRELUDE}\n{code}");
    let out = Command::new(python())
        .current_dir(cwd)
        .args(["-B", "-c", &script])
        .output()
        .expect("spawn python");
    Run::from(out)
}

/// Assert `name=want` is a line of the run's stdout.
#[track_caller]
pub fn expect(r: &Run, name: &str, want: &str) {
    let line = format!("{name}={want}");
    assert!(
        r.stdout.lines().any(|l| l == line),
        "expected `{line}`:\n{r:?}"
    );
}

/// Compile a C program into `dir`; None (with a SKIP line) without `cc`.
pub fn cc(dir: &Path, name: &str, src: &str) -> Option<PathBuf> {
    if !common::have("cc") {
        common::skip("no C compiler (cc) on PATH");
        return None;
    }
    let c = dir.join(format!("{name}.c"));
    let exe = dir.join(name);
    std::fs::write(&c, src).unwrap();
    let out = Command::new("cc")
        .arg("-O0")
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .output()
        .expect("spawn cc");
    if !out.status.success() {
        common::skip(&format!(
            "cc failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return None;
    }
    Some(exe)
}

/// Host pids whose command line contains `needle`.
pub fn host_procs_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // Zombies have an empty cmdline; the state tells them apart anyway.
        if cmd.contains(needle) && !cmd.contains("zerobox") {
            found.push(pid);
        }
    }
    found
}

/// Poll until `f` holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Is host pid `pid` alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next();
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// Landlock ABI of this kernel (0: none), as zerobox itself reads it.
pub fn landlock_abi() -> i64 {
    i64::from(zerobox::sandbox::linux::sys::landlock_abi())
}
