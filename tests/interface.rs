//! The command line as a user meets it, through the real binary: closed
//! stdout/stderr, `--help` of every subcommand, `--json` output parsed,
//! completions and man page, flag suggestions and escaped values.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

/// `zerobox` with HOME and the XDG dirs in `home`: no user config, no
/// registry, no trusted keys from the machine running the tests.
fn zb(home: &Path) -> Command {
    let mut c = common::zerobox();
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("ZEROBOX_REGISTRY")
        .current_dir(home);
    c
}

/// Which of zerobox's streams the test closes.
#[derive(Clone, Copy, Debug)]
enum Closed {
    /// A pipe whose reader is gone (`| head -c0`): writes fail with EPIPE.
    StdoutPipe,
    StderrPipe,
    /// No descriptor at all (`2>&-`, `>&-`).
    StdoutFd,
    StderrFd,
}

/// Run `zerobox ARGS` with one stream closed; returns (exit code, what the
/// other stream got).
fn with_closed(home: &Path, args: &[&str], closed: Closed) -> common::Run {
    let out = match closed {
        Closed::StdoutPipe | Closed::StderrPipe => {
            let (reader, writer) = std::io::pipe().expect("pipe");
            drop(reader); // the reader is gone before zerobox writes
            let mut c = zb(home);
            c.args(args);
            match closed {
                Closed::StdoutPipe => c.stdout(writer).stderr(Stdio::piped()),
                _ => c.stderr(writer).stdout(Stdio::piped()),
            };
            c.output().expect("spawn zerobox")
        }
        Closed::StdoutFd | Closed::StderrFd => {
            let redirect = match closed {
                Closed::StdoutFd => ">&-",
                _ => "2>&-",
            };
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("exec \"$0\" \"$@\" {redirect}"))
                .arg(common::bin())
                .args(args)
                .env("HOME", home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .env("XDG_CACHE_HOME", home.join(".cache"))
                .env("XDG_DATA_HOME", home.join(".local/share"))
                .env_remove("ZEROBOX_REGISTRY")
                .current_dir(home)
                .stdin(Stdio::null());
            c.output().expect("spawn sh")
        }
    };
    common::Run::from(out)
}

fn exit_code(home: &Path, args: &[&str]) -> common::Run {
    common::Run::from(zb(home).args(args).output().expect("spawn zerobox"))
}

const ALL_CLOSED: [Closed; 4] = [
    Closed::StdoutPipe,
    Closed::StderrPipe,
    Closed::StdoutFd,
    Closed::StderrFd,
];

/// Every printing command keeps its exit status (and never panics, 101)
/// whichever of its streams is closed.
#[test]
fn closed_streams_never_panic_nor_change_the_status() {
    let t = common::scratch();
    let home = t.path();
    let cmds: &[&[&str]] = &[
        &["--help"],
        &["--version"],
        &["doctor"],
        &["explain", "--", "true"],
        &["--dry-run", "--", "true"],
        &["preset", "list"],
        &["preset", "show", "claude"],
        &["preset", "show", "claude", "--resolved"],
        &["preset", "schema"],
        &["preset", "--help"],
        &["preset", "keygen", "--out", "k"],
        // errors: the status is the error's
        &["--allow-wrte=.", "--", "true"],
        &["preset", "show", "no-such-preset"],
        &["no-such-preset"],
    ];
    for cmd in cmds {
        let _ = std::fs::remove_file(home.join("k.key"));
        let _ = std::fs::remove_file(home.join("k.pub"));
        let expected = exit_code(home, cmd).code;
        assert_ne!(expected, 101, "{cmd:?} panics even with open streams");
        for closed in ALL_CLOSED {
            let _ = std::fs::remove_file(home.join("k.key"));
            let _ = std::fs::remove_file(home.join("k.pub"));
            let r = with_closed(home, cmd, closed);
            assert_eq!(r.code, expected, "{cmd:?} with {closed:?}: {r:?}");
            assert!(!r.stderr.contains("panicked"), "{cmd:?} {closed:?}: {r:?}");
        }
    }
}

/// On the run path a warning printed before the command starts, on a
/// closed stderr, neither stops the run nor changes its status.
#[test]
fn closed_stderr_keeps_the_commands_status() {
    let t = common::scratch();
    let home = t.path();
    let args = [
        "--allow-write=/nonexistent/zerobox-test",
        "--",
        "sh",
        "-c",
        "echo ran; exit 3",
    ];
    let open = exit_code(home, &args);
    assert_eq!(open.code, 3, "{open:?}");
    assert!(open.stderr.contains("does not exist"), "{open:?}");
    for closed in [Closed::StderrPipe, Closed::StderrFd] {
        let r = with_closed(home, &args, closed);
        assert_eq!(r.code, 3, "{closed:?}: {r:?}");
        assert_eq!(r.stdout, "ran\n", "{closed:?}: {r:?}");
    }
}

/// The end-of-run summary of blocked connections, written to a closed
/// stderr, does not replace the command's exit status.
#[test]
fn closed_stderr_summary_keeps_the_commands_status() {
    if !common::have("curl") {
        assert!(
            std::env::var_os("ZEROBOX_REQUIRE_ALL").is_none(),
            "curl is required"
        );
        eprintln!("skipped: no curl");
        return;
    }
    let t = common::scratch();
    let home = t.path();
    let args = [
        "--allow-net=127.0.0.1:1",
        "--",
        "sh",
        "-c",
        "curl -s -o /dev/null http://blocked.test/; exit 3",
    ];
    let open = exit_code(home, &args);
    assert_eq!(open.code, 3, "{open:?}");
    assert!(open.stderr.contains("blocked 1 connection"), "{open:?}");
    for closed in [Closed::StderrPipe, Closed::StderrFd] {
        let r = with_closed(home, &args, closed);
        assert_eq!(r.code, 3, "{closed:?}: {r:?}");
    }
}

/// The command's own output to a closed stdout is the command's business:
/// zerobox reports the command's status, not a panic of its own.
#[test]
fn closed_stdout_on_the_run_path() {
    let t = common::scratch();
    let home = t.path();
    let args = ["--", "sh", "-c", "echo x; exit 4"];
    for closed in [Closed::StdoutPipe, Closed::StdoutFd] {
        let r = with_closed(home, &args, closed);
        assert_eq!(r.code, 4, "{closed:?}: {r:?}");
    }
}

/// A stdout that fails for another reason than the reader leaving
/// (a full disk) is an error for commands whose product is their output.
#[test]
fn full_stdout_is_reported() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let t = common::scratch();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = zb(t.path())
        .args(["preset", "list"])
        .stdout(full)
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot write"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
}
