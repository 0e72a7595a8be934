//! Terminal attacks: inject keystrokes into the controlling terminal so the
//! user's shell runs them after the sandbox exits.

use std::process::Command;

use crate::common::{self, real, scratch, Run};
use crate::util::{expect, python, PRELUDE};

/// Runs argv[1:] with a fresh pty as stdin and controlling terminal, then
/// prints what is left in the terminal's input queue (what the user's shell
/// would read next).
const HARNESS: &str = r#"
import fcntl, os, pty, subprocess, sys, termios, time
m, s = pty.openpty()
def pre():
    os.setsid()
    fcntl.ioctl(s, termios.TIOCSCTTY, 0)
p = subprocess.run(sys.argv[1:], stdin=s, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=pre, timeout=30)
sys.stdout.write(p.stdout.decode())
sys.stderr.write(p.stderr.decode())
# Canonical mode: injected text is readable once a newline follows it.
os.write(m, b"\n")
time.sleep(0.2)
fl = fcntl.fcntl(s, fcntl.F_GETFL)
fcntl.fcntl(s, fcntl.F_SETFL, fl | os.O_NONBLOCK)
pending = b""
try:
    while True:
        chunk = os.read(s, 4096)
        if not chunk:
            break
        pending += chunk
except OSError:
    pass
print("pending=" + repr(pending))
sys.exit(p.returncode)
"#;

const INJECT: &str = r#"
import fcntl, termios
def inject():
    for ch in b"echo zb-injected":
        fcntl.ioctl(0, termios.TIOCSTI, bytes([ch]))
t("tiocsti", inject)
t("tiocsti_devtty", lambda: fcntl.ioctl(os.open("/dev/tty", os.O_RDWR), termios.TIOCSTI, b"x"))
t("tioclinux", lambda: fcntl.ioctl(0, termios.TIOCLINUX if hasattr(termios, "TIOCLINUX") else 0x541C, b"\x06" + b"\0" * 31))
"#;

fn harness(cmd: &[&str]) -> Run {
    let out = Command::new(python())
        .arg("-c")
        .arg(HARNESS)
        .args(cmd)
        .env_remove("ZEROBOX_SIMULATE_MISSING")
        .output()
        .expect("spawn python harness");
    Run::from(out)
}

/// Threat: TIOCSTI keystroke injection into the controlling terminal
/// (`echo zb-injected` lands in the user's shell after exit); TIOCLINUX
/// console control. Stopped by: seccomp (ioctl TIOCSTI / TIOCLINUX EPERM).
/// The attack runs with a real pty as stdin and controlling terminal.
#[test]
fn tiocsti_injection_is_refused() {
    let s = scratch();
    let d = real(s.path());
    let script = format!("{PRELUDE}\n{INJECT}");
    let py3 = python();
    let bin = common::bin();
    let bin = bin.to_str().unwrap();
    let r = harness(&[
        bin,
        "-C",
        d.to_str().unwrap(),
        "--",
        &py3,
        "-B",
        "-c",
        &script,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "tiocsti", "EPERM");
    expect(&r, "tiocsti_devtty", "EPERM");
    expect(&r, "tioclinux", "EPERM");
    assert!(!r.stdout.contains("zb-injected"), "injected:\n{r:?}");
    // The primitive: without the sandbox, the injection lands (where the
    // kernel still allows TIOCSTI at all).
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|s| s.trim() == "1")
        .unwrap_or(true);
    let h = harness(&[&py3, "-B", "-c", &script]);
    if legacy {
        expect(&h, "tiocsti", "OK");
        assert!(h.stdout.contains("zb-injected"), "{h:?}");
    } else {
        eprintln!("NOTE: dev.tty.legacy_tiocsti=0: the kernel refuses TIOCSTI outside too");
    }
}
