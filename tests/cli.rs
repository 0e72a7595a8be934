//! The real binary on real commands: defaults, every flag, exit codes,
//! errors, signals, streaming. Runs as root and as an unprivileged user.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{real, run_in, scratch, sh_in, zerobox};

// ---------- defaults ----------

/// Writes are denied by default: the home dir and the cwd are read-only.
#[test]
fn default_denies_writes_to_home_and_cwd() {
    let home = scratch();
    let cwd = scratch();
    let r = zerobox()
        .current_dir(cwd.path())
        .env("HOME", home.path())
        .args(["--", "sh", "-c", "echo x > ~/f; echo x > ./g; echo done"])
        .output()
        .unwrap();
    let r = common::Run::from(r);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("Read-only file system") || r.stderr.contains("Permission denied"),
        "{r:?}"
    );
    assert!(!home.path().join("f").exists());
    assert!(!cwd.path().join("g").exists());
}

/// `--allow-write=.` makes the cwd writable, and the file reaches the host.
#[test]
fn allow_write_dot_grants_the_cwd() {
    let cwd = scratch();
    let r = run_in(cwd.path(), &["--allow-write=.", "--", "touch", "f"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(cwd.path().join("f").exists());
}

/// Reads are allowed by default: system files and the cwd.
#[test]
fn default_allows_reads() {
    let cwd = scratch();
    std::fs::write(cwd.path().join("hello.txt"), "hi there\n").unwrap();
    let r = sh_in(cwd.path(), &[], "cat hello.txt && head -c 4 /etc/passwd");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("hi there\nroot"), "{r:?}");
}

/// The built-in deny list hides secrets in HOME, and a denied path that does
/// not exist yet, created when its parent is writable, does not stay at its
/// name after the run (quarantined, with a warning; see
/// docs/threat-model.md, "Protected paths that do not exist").
#[test]
fn default_deny_list_hides_secrets() {
    let home = scratch();
    let h = home.path();
    std::fs::create_dir_all(h.join(".ssh")).unwrap();
    std::fs::write(h.join(".ssh/id_ed25519"), "PRIVATE").unwrap();
    std::fs::create_dir_all(h.join(".aws")).unwrap();
    std::fs::write(h.join(".aws/credentials"), "AWSKEY").unwrap();
    std::fs::write(h.join(".bash_history"), "HIST").unwrap();
    std::fs::write(h.join(".netrc"), "NETRC").unwrap();
    std::fs::write(h.join("notes.txt"), "public").unwrap();
    let out = zerobox()
        .current_dir(h)
        .env("HOME", h)
        .args(["--allow-write=~", "--", "sh", "-c"])
        .arg(
            "cat ~/.ssh/id_ed25519 ~/.aws/credentials ~/.bash_history ~/.netrc 2>/dev/null; \
             ls -A ~/.ssh; cat ~/notes.txt; echo; \
             mkdir -p ~/.kube/x 2>/dev/null && echo KUBE-CREATED; \
             echo y > ~/.git-credentials 2>/dev/null && echo GITCRED-CREATED; \
             echo new > ~/new.txt && echo wrote-new",
        )
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    for secret in ["PRIVATE", "AWSKEY", "HIST", "NETRC", "id_ed25519"] {
        assert!(!r.stdout.contains(secret), "{secret} leaked: {r:?}");
    }
    assert!(r.stdout.contains("public"), "{r:?}");
    assert!(r.stdout.contains("wrote-new"), "{r:?}");
    // What the command created at missing denied names is moved aside.
    assert!(!h.join(".kube").exists(), "created .kube left at its name");
    assert!(!h.join(".git-credentials").exists());
    assert!(r.stderr.contains(".git-credentials was created"), "{r:?}");
    assert_eq!(std::fs::read_to_string(h.join("new.txt")).unwrap(), "new\n");
}

/// The private /tmp starts empty, is writable, TMPDIR points at it, and
/// nothing of it reaches the host.
#[test]
fn private_tmp_is_empty_writable_and_discarded() {
    let cwd = scratch();
    let marker = format!("zb-marker-{}", std::process::id());
    std::fs::write(std::env::temp_dir().join(&marker), "host").unwrap();
    let r = sh_in(
        cwd.path(),
        &[],
        &format!("ls -A /tmp | grep -c {marker}; echo $TMPDIR; echo inside > /tmp/{marker}-in && cat /tmp/{marker}-in"),
    );
    std::fs::remove_file(std::env::temp_dir().join(&marker)).unwrap();
    assert!(r.stdout.starts_with("0\n/tmp\ninside"), "{r:?}");
    assert!(!Path::new(&format!("/tmp/{marker}-in")).exists());
}

/// No network: only `lo` exists, and a host listener is unreachable.
#[test]
fn default_has_no_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cwd = scratch();
    let r = sh_in(
        cwd.path(),
        &[],
        &format!(
            "ls /sys/class/net; python3 -c \"import socket; s=socket.socket(); s.settimeout(2); \
             print('connected' if s.connect_ex(('127.0.0.1',{port}))==0 else 'refused')\""
        ),
    );
    assert_eq!(r.stdout, "lo\nrefused\n", "{r:?}");
}

/// The environment is an allow list; --allow-env, --deny-env, --env adjust it.
#[test]
fn environment_allow_list_and_flags() {
    let cwd = scratch();
    let out = zerobox()
        .current_dir(cwd.path())
        .env("AWS_SECRET_ACCESS_KEY", "leak")
        .env("MY_TOKEN", "tok")
        .env("LC_ALL", "C")
        .env("LANG", "C.UTF-8")
        .args(["--", "env"])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert!(
        !r.stdout.contains("leak") && !r.stdout.contains("MY_TOKEN"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("LC_ALL=C\n") && r.stdout.contains("PATH="),
        "{r:?}"
    );
    assert!(r.stdout.contains("TMPDIR=/tmp\n"), "{r:?}");

    let out = zerobox()
        .current_dir(cwd.path())
        .env("MY_VALUE", "tok")
        .env("MY_OTHER", "o")
        .env("LC_ALL", "C")
        .args([
            "--allow-env=MY_*",
            "--deny-env=MY_OTHER,LC_*",
            "--env",
            "FOO=a=b,c",
            "--",
            "env",
        ])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    // (A credential-looking MY_TOKEN would be withheld from MY_*: see
    // tests/network.rs secret_sources_and_env_wildcards_are_hardened.)
    assert!(r.stdout.contains("MY_VALUE=tok\n"), "{r:?}");
    assert!(
        !r.stdout.contains("MY_OTHER") && !r.stdout.contains("LC_ALL"),
        "{r:?}"
    );
    assert!(r.stdout.contains("FOO=a=b,c\n"), "{r:?}");
}

// ---------- path flags ----------

/// --deny-write inside --allow-write wins; --deny-read hides; a more
/// specific --allow-read re-opens a file inside a denied directory.
#[test]
fn path_flags_and_precedence() {
    let d = scratch();
    let p = real(d.path());
    std::fs::create_dir_all(p.join("ro")).unwrap();
    std::fs::create_dir_all(p.join("secret/pub")).unwrap();
    std::fs::write(p.join("secret/key"), "KEY").unwrap();
    std::fs::write(p.join("secret/pub/readme"), "README").unwrap();
    let r = sh_in(
        &p,
        &[
            "--allow-write=.",
            "--deny-write=./ro",
            "--deny-read=secret",
            "--allow-read",
            "secret/pub",
        ],
        "touch ok; touch ro/x 2>/dev/null || echo ro-denied; \
         cat secret/key 2>/dev/null || echo key-denied; cat secret/pub/readme",
    );
    assert_eq!(r.stdout, "ro-denied\nkey-denied\nREADME", "{r:?}");
    assert!(p.join("ok").exists() && !p.join("ro/x").exists());
}

/// `~`, `$HOME`, `$CWD` expand; relative paths are relative to -C/--cwd.
#[test]
fn path_variables_and_cwd_flag() {
    let home = scratch();
    let work = scratch();
    let out = zerobox()
        .env("HOME", home.path())
        .args(["-C"])
        .arg(work.path())
        .args([
            "--allow-write=$HOME/a,$CWD",
            "--",
            "sh",
            "-c",
            "pwd; touch f",
        ])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), real(work.path()).display().to_string());
    assert!(work.path().join("f").exists());
}

// ---------- errors and exit codes ----------

#[test]
fn exit_status_is_the_commands() {
    let cwd = scratch();
    assert_eq!(sh_in(cwd.path(), &[], "exit 7").code, 7);
    assert_eq!(sh_in(cwd.path(), &[], "exit 0").code, 0);
    // Died of a signal: 128 + N.
    assert_eq!(sh_in(cwd.path(), &[], "kill -TERM $$").code, 128 + 15);
    assert_eq!(sh_in(cwd.path(), &[], "kill -KILL $$").code, 128 + 9);
}

#[test]
fn unknown_command_is_127() {
    let r = run_in(scratch().path(), &["--", "no-such-command-zb"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert_eq!(r.stderr, "zerobox: command not found: no-such-command-zb\n");
}

#[test]
fn not_executable_is_126() {
    let d = scratch();
    std::fs::write(d.path().join("script"), "#!/bin/sh\necho hi\n").unwrap();
    let r = run_in(d.path(), &["--", "./script"]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.starts_with("zerobox: permission denied:"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1);
}

/// Bad flags, paths and values: exit 2, one line naming the value.
#[test]
fn bad_input_is_2_with_the_value_named() {
    let d = scratch();
    let cases: &[(&[&str], &str)] = &[
        (&["--allow-write=$NOPE/x", "--", "true"], "$NOPE"),
        (&["--allow-env=BAD-NAME", "--", "true"], "BAD-NAME"),
        (&["--env", "NOEQUALS", "--", "true"], "NOEQUALS"),
        (
            &["-C", "/nonexistent-zb-dir", "--", "true"],
            "/nonexistent-zb-dir",
        ),
        (&["--allow-write=/", "--", "true"], "on /"),
        (&["--no-sandbox", "--strict", "--", "true"], "--strict"),
        (&[], "no command given"),
        (
            &["--share-net", "--allow-net=example.com", "--", "true"],
            "--share-net",
        ),
    ];
    for (args, want) in cases {
        let r = run_in(d.path(), args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
    }
    let r = run_in(d.path(), &["--no-such-flag", "--", "true"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("--no-such-flag"), "{r:?}");
}

/// Every flag documents itself in --help.
#[test]
fn help_lists_every_flag_with_text() {
    let r = run_in(scratch().path(), &["--help"]);
    assert_eq!(r.code, 0);
    for flag in [
        "--allow-read",
        "--deny-read",
        "--allow-write",
        "--deny-write",
        "--allow-env",
        "--deny-env",
        "--env",
        "--cwd",
        "--no-sandbox",
        "--strict",
        "--debug",
        "--dry-run",
        "--allow-net",
        "--deny-net",
        "--secret",
        "--allow-unix-socket",
    ] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains(flag))
            .unwrap_or_default();
        assert!(!line.is_empty(), "{flag} missing from --help");
    }
}

// ---------- modes and layers ----------

/// --no-sandbox runs the command unprotected, with a warning.
#[test]
fn no_sandbox_warns_and_runs_plainly() {
    let d = scratch();
    let r = sh_in(d.path(), &["--no-sandbox"], "echo x > f && cat f");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "x\n");
    assert!(r.stderr.contains("WITHOUT any sandbox"), "{r:?}");
}

/// Without user namespaces: Landlock + seccomp, one warning line; --strict
/// refuses; without Landlock too: refuse with 125.
#[test]
fn fallback_and_refusal() {
    let d = scratch();
    let out = zerobox()
        .current_dir(d.path())
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .args(["--", "sh", "-c", "echo x > f 2>/dev/null || echo denied; echo t > $TMPDIR/t && echo tmp-ok; cat /etc/shadow 2>/dev/null || echo shadow-denied"])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.stdout, "denied\ntmp-ok\nshadow-denied\n", "{r:?}");
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.starts_with("zerobox: warning"))
            .count(),
        1,
        "{r:?}"
    );
    assert!(!d.path().join("f").exists());

    let out = zerobox()
        .current_dir(d.path())
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .args(["--strict", "--", "true"])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("--strict"), "{r:?}");

    let out = zerobox()
        .current_dir(d.path())
        .env("ZEROBOX_SIMULATE_MISSING", "userns,landlock")
        .args(["--", "true"])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("--no-sandbox"), "{r:?}");
}

/// In the fallback, the private temp dir is removed after the run and the
/// network is closed by seccomp.
#[test]
fn fallback_cleans_its_temp_dir_and_has_no_network() {
    let d = scratch();
    let out = zerobox()
        .current_dir(d.path())
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .args([
            "--",
            "sh",
            "-c",
            "echo $TMPDIR; python3 -c 'import socket; socket.socket()' 2>&1 | tail -1",
        ])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    let tmp = r.stdout.lines().next().unwrap_or_default().to_string();
    assert!(tmp.contains("zerobox-"), "{r:?}");
    assert!(!Path::new(&tmp).exists(), "temp dir {tmp} left behind");
    assert!(r.stdout.contains("PermissionError"), "{r:?}");
}

/// explain / --dry-run print the resolved policy and run nothing.
#[test]
fn explain_prints_policy_and_runs_nothing() {
    let d = scratch();
    for args in [
        &["explain", "--allow-write=.", "--", "touch", "f"][..],
        &["--dry-run", "--allow-write=.", "--", "touch", "f"][..],
    ] {
        let r = run_in(d.path(), args);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(!d.path().join("f").exists(), "explain ran the command");
        assert!(r.stdout.contains("mode: namespaces"), "{r:?}");
        assert!(r.stdout.contains("access: allow-write"), "{r:?}");
        assert!(r.stdout.contains("origin: cli"), "{r:?}");
        assert!(r.stdout.contains("/etc/shadow"), "{r:?}");
        assert!(r.stdout.contains("landlock ABI"), "{r:?}");
    }
}

#[test]
fn doctor_describes_the_machine() {
    let r = run_in(scratch().path(), &["doctor"]);
    assert_eq!(r.code, 0, "{r:?}");
    for want in [
        "Landlock",
        "ABI",
        "seccomp",
        "user namespace",
        "network namespace",
        "all of them together",
        "Each run gets",
    ] {
        assert!(r.stdout.contains(want), "{want}: {r:?}");
    }
}

// ---------- process behaviour ----------

/// Output streams line by line (no buffering by zerobox).
#[test]
fn output_streams_without_buffering() {
    let d = scratch();
    let mut child = zerobox()
        .current_dir(d.path())
        .args(["--", "sh", "-c", "echo first; sleep 3; echo second"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    let first_at = start.elapsed();
    assert_eq!(lines.next().unwrap().unwrap(), "second");
    child.wait().unwrap();
    assert!(
        first_at < Duration::from_secs(2),
        "first line came after {first_at:?}"
    );
}

/// stdin is the real one.
#[test]
fn stdin_passes_through() {
    let d = scratch();
    let mut child = zerobox()
        .current_dir(d.path())
        .args(["--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello sandbox\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO SANDBOX\n");
}

fn wait_for_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, want: &str) {
    for line in lines.by_ref() {
        if line.unwrap().contains(want) {
            return;
        }
    }
    panic!("never saw {want}");
}

/// Signals sent to zerobox reach the command (which can trap them), and an
/// untrapped one ends it with 128+N.
#[test]
fn signals_are_forwarded() {
    let d = scratch();
    for (sig, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGWINCH, "WINCH"),
        (libc::SIGQUIT, "QUIT"),
    ] {
        let script = format!(
            "trap 'echo got-{name}; exit 3' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let mut child = zerobox()
            .current_dir(d.path())
            .args(["--", "bash", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        wait_for_line(&mut lines, "ready");
        // The kill(1) command: tests stay free of unsafe code.
        let st = std::process::Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        wait_for_line(&mut lines, &format!("got-{name}"));
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(3), "{name}");
    }
    // Untrapped TERM: 128 + 15.
    let mut child = zerobox()
        .current_dir(d.path())
        .args(["--", "sh", "-c", "echo ready; exec sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for_line(&mut lines, "ready");
    std::thread::sleep(Duration::from_millis(100));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
}

/// The command runs as the calling user (root stays uid 0 but without any
/// capability), in its own pid namespace.
#[test]
fn identity_and_pid_namespace() {
    let d = scratch();
    let r = sh_in(
        d.path(),
        &[],
        "id -u; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; ls /proc | grep -cE '^[0-9]+$'",
    );
    let uid = if common::is_root() { "0" } else { "" };
    if !uid.is_empty() {
        assert!(r.stdout.starts_with("0\n"), "{r:?}");
    }
    for line in [
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(r.stdout.contains(line), "{line}: {r:?}");
    }
    let procs: usize = r.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(procs <= 5, "host processes visible: {r:?}");
}

/// Killing zerobox with SIGKILL leaves no process behind.
#[test]
fn sigkill_of_zerobox_leaves_nothing() {
    let d = scratch();
    let marker = format!(
        "{}.{}",
        4000 + std::process::id() % 1000,
        std::process::id()
    );
    let mut child = zerobox()
        .current_dir(d.path())
        .args([
            "--",
            "sh",
            "-c",
            &format!("sleep {marker} & sleep {marker} & echo ready; wait"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for_line(&mut lines, "ready");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = std::process::Command::new("pgrep")
            .args(["-f", &format!("sleep {marker}")])
            .output()
            .unwrap();
        if ps.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leftover: {}",
            String::from_utf8_lossy(&ps.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Background children left by the command die with it.
#[test]
fn background_children_die_at_exit() {
    let d = scratch();
    let marker = format!(
        "{}.{}",
        5000 + std::process::id() % 1000,
        std::process::id()
    );
    let r = sh_in(d.path(), &[], &format!("sleep {marker} & echo started"));
    assert_eq!(r.stdout, "started\n");
    std::thread::sleep(Duration::from_millis(200));
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "leftover: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

/// A TTY program sees a terminal on stdin/stdout and can query its size.
#[test]
fn tty_programs_work_under_a_pty() {
    if !common::have("script") {
        common::skip("`script` (util-linux) not installed");
        return;
    }
    let d = scratch();
    let cmd = format!(
        "{} -- sh -c 'test -t 0 && test -t 1 && echo is-a-tty; stty size'",
        common::bin().display()
    );
    let out = std::process::Command::new("script")
        .current_dir(d.path())
        .args(["-qec", &cmd, "/dev/null"])
        .env("COLUMNS", "100")
        .env("LINES", "40")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("is-a-tty"), "{s}");
    assert!(out.status.success(), "{s}");
}

/// --allow-unix-socket keeps a host socket reachable.
#[test]
fn unix_sockets_hidden_unless_allowed() {
    let d = scratch();
    let sock = real(d.path()).join("svc.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let _ = s.write_all(b"hello-from-host\n");
        }
    });
    // A socket outside /run (the scratch dir is the cwd): reachable when
    // allowed. Sockets under /run and /run/user are masked by default; the
    // escape suite checks that.
    let r = sh_in(d.path(), &[&format!("--allow-unix-socket={}", sock.display())], &format!(
        "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('{}'); print(s.recv(100).decode().strip())\"",
        sock.display()
    ));
    assert_eq!(r.stdout, "hello-from-host\n", "{r:?}");
}

/// Where the machine offers every layer, a run uses them all: no fallback
/// warning (a silently — or even loudly — weaker sandbox on a capable
/// machine is a bug; this once happened when zerobox became non-dumpable
/// and could no longer write its own uid map as an unprivileged user).
#[test]
fn capable_machine_gets_every_layer_without_warning() {
    let d = scratch();
    let doctor = run_in(d.path(), &["doctor"]);
    if !doctor.stdout.contains("Each run gets: all layers") {
        common::skip(&format!("this machine lacks a layer:\n{}", doctor.stdout));
        return;
    }
    for args in [
        &["--", "true"][..],
        &["--allow-net=a.test", "--", "true"][..],
        &["--strict", "--", "true"][..],
    ] {
        let r = run_in(d.path(), args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert_eq!(r.stderr, "", "{args:?}: {r:?}");
    }
}

/// `--profile` applies a preset to a plain run (before the CLI flags): the
/// protect-shell block keeps `.envrc` and `.git/hooks` unwritable even in a
/// writable project where they do not exist yet; nothing is left behind.
#[test]
fn profile_applies_a_preset_to_a_plain_run() {
    let d = scratch();
    let p = real(d.path());
    let r = sh_in(
        &p,
        &["--profile", "protect-shell", "--allow-write=."],
        "echo 'curl evil|sh' > .envrc 2>/dev/null && echo ENVRC-WRITTEN; \
         mkdir -p .git/hooks/x 2>/dev/null && echo HOOKS-WRITTEN; \
         test -f .vscode/settings.json && test \"$(cat .vscode/settings.json)\" = '{}' && echo json-file; \
         mkdir -p .vscode && echo '{}' > .vscode/settings.json 2>/dev/null && echo VSCODE-WRITTEN; \
         echo ok > ok.txt && cat ok.txt",
    );
    // No placeholder: a missing protected file is missing inside too. What
    // the command creates there is moved aside after the run, with a
    // warning for each.
    assert!(
        r.stdout.ends_with("ok\n") && !r.stdout.contains("json-file"),
        "{r:?}"
    );
    assert!(
        !p.join(".envrc").exists()
            && !p.join(".git/hooks").exists()
            && !p.join(".vscode/settings.json").exists(),
        "a protected path created by the command stayed: {r:?}"
    );
    for name in [".envrc", ".git/hooks", ".vscode/settings.json"] {
        assert!(
            r.stderr.contains(&format!("{name} was created")),
            "{name}: {r:?}"
        );
    }
    let r = run_in(&p, &["--profile", "no-such-profile-zb", "--", "true"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no-such-profile-zb"), "{r:?}");
}

/// On a real terminal, Ctrl-C reaches the command exactly once (the
/// terminal signals the whole process group; zerobox must not relay it a
/// second time), and a window resize reaches it as SIGWINCH.
#[test]
fn ctrl_c_and_resize_on_a_terminal() {
    let d = scratch();
    let harness = r#"
import os, pty, sys, time, select, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "--", "bash", "-c",
        "n=0; trap 'n=$((n+1)); echo got-int-$n' INT; trap 'echo got-winch' WINCH; echo ready; "
        "for i in $(seq 1 40); do sleep 0.05; done; echo total-$n"])
out = b""
def read_until(token, timeout=10):
    global out
    end = time.time() + timeout
    while token not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                out += os.read(fd, 1024)
            except OSError:
                break
read_until(b"ready")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
read_until(b"got-winch")
# (bash ends a loop whose child died of SIGINT, so Ctrl-C comes last)
os.write(fd, b"\x03")
read_until(b"got-int-1")
read_until(b"total-")
read_until(b"\n", 2)
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
"#;
    let out = std::process::Command::new("python3")
        .current_dir(d.path())
        .args(["-c", harness])
        .arg(common::bin())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("got-int-1"), "{s}");
    assert!(!s.contains("got-int-2"), "Ctrl-C delivered twice: {s}");
    assert!(s.contains("got-winch"), "{s}");
    assert!(s.contains("total-1"), "{s}");
}

/// A preset's state directories under HOME are created (0700) when missing,
/// so the agent can write its state; a secret the preset declares but the
/// user does not have is simply not injected (the run does not fail).
#[test]
fn preset_state_dirs_are_created_and_unset_preset_secrets_are_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let home = scratch();
    let work = scratch();
    let out = zerobox()
        .current_dir(work.path())
        .env("HOME", home.path())
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME")
        .args(["--profile", "claude", "--", "sh", "-c", "echo state > ~/.claude/s && cat ~/.claude/s; echo x > ~/other 2>/dev/null || echo home-denied"])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "state\nhome-denied\n", "{r:?}");
    let mode = std::fs::metadata(home.path().join(".claude"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// zerobox's own config (trusted keys, trusted project files) stays
/// unwritable inside even when a grant covers it.
#[test]
fn own_config_dir_is_never_writable_inside() {
    let d = scratch();
    let p = real(d.path());
    std::fs::create_dir_all(p.join("cfg/zerobox/keys")).unwrap();
    let out = zerobox()
        .current_dir(&p)
        .env("XDG_CONFIG_HOME", p.join("cfg"))
        .args(["--allow-write=.", "--", "sh", "-c", "echo k > cfg/zerobox/keys/evil.pub 2>/dev/null || echo denied; echo y > cfg/other && echo other-ok"])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.stdout, "denied\nother-ok\n", "{r:?}");
    assert!(!p.join("cfg/zerobox/keys/evil.pub").exists());
}

/// The preset cache (verified presets, and the highest registry serial
/// seen, which refuses rollbacks) stays unwritable inside too.
#[test]
fn preset_cache_is_never_writable_inside() {
    let d = scratch();
    let p = real(d.path());
    std::fs::create_dir_all(p.join("cache/zerobox")).unwrap();
    let out = zerobox()
        .current_dir(&p)
        .env("XDG_CACHE_HOME", p.join("cache"))
        .args(["--allow-write=.", "--", "sh", "-c", "echo 0 > cache/zerobox/serial 2>/dev/null || echo denied; echo y > cache/other && echo other-ok"])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.stdout, "denied\nother-ok\n", "{r:?}");
    assert!(!p.join("cache/zerobox/serial").exists());
}

/// Older kernels, simulated (`ZEROBOX_SIMULATE_LANDLOCK_ABI=N` can only
/// lower the ABI): doctor and explain say what holds; the Landlock-only
/// fallback still denies the secrets at every ABI; network without a
/// network namespace is refused below ABI 4 (no TCP rules) with exit 125.
#[test]
fn simulated_older_landlock_abis_take_their_own_paths() {
    let d = scratch();
    let p = common::real(d.path());
    std::fs::create_dir(p.join(".ssh")).unwrap();
    std::fs::write(p.join(".ssh/id"), "ZB-SIM-ABI-SECRET").unwrap();
    let kernel = zerobox::sandbox::linux::sys::landlock_abi();
    if kernel < 6 {
        common::skip("kernel Landlock ABI < 6: cannot simulate the ABIs below it all");
        return;
    }
    let zb = |abi: &str, fallback: bool, args: &[&str]| {
        let mut c = common::zerobox();
        c.current_dir(&p)
            .env("HOME", &p)
            .env("ZEROBOX_SIMULATE_LANDLOCK_ABI", abi);
        if fallback {
            c.env("ZEROBOX_SIMULATE_MISSING", "userns");
        }
        common::Run::from(c.args(args).output().unwrap())
    };
    for abi in [1, 3, 4, 5, 6] {
        let n = abi.to_string();
        let doc = zb(&n, false, &["doctor"]);
        assert!(doc.stdout.contains(&format!("ABI {abi}\n")), "{doc:?}");
        let tcp = doc
            .stdout
            .lines()
            .find(|l| l.contains("TCP bind/connect"))
            .unwrap();
        assert!(
            tcp.ends_with(if abi >= 4 { "yes" } else { "no" }),
            "{doc:?}"
        );
        let ex = zb(&n, false, &["explain", "--", "true"]);
        assert!(ex.stdout.contains(&format!("landlock ABI {abi}")), "{ex:?}");
        let r = zb(&n, true, &["--", "sh", "-c", "cat ~/.ssh/id; echo ran"]);
        assert_eq!(r.code, 0, "ABI {abi}: {r:?}");
        assert!(
            r.stdout.contains("ran") && !r.stdout.contains("ZB-SIM-ABI-SECRET"),
            "{r:?}"
        );
        let net = zb(&n, true, &["--allow-net=a.test", "--", "true"]);
        if abi < 4 {
            assert_eq!(net.code, 125, "ABI {abi}: {net:?}");
            assert!(net.stderr.contains("ABI >= 4"), "{net:?}");
        } else {
            // (The fallback may refuse network for its own reasons; never
            // for lack of TCP rules at this ABI.)
            assert!(!net.stderr.contains("ABI >= 4"), "ABI {abi}: {net:?}");
        }
    }
    // A simulated ABI above the kernel's changes nothing.
    let doc = zb("99", false, &["doctor"]);
    assert!(doc.stdout.contains(&format!("ABI {kernel}\n")), "{doc:?}");
}

/// `explain` prints the plan a run executes: the mode, the mounts and the
/// protected paths guarded from outside (no placeholders); the run then
/// quarantines exactly what the command created at a guarded name.
#[test]
fn explain_shows_the_plan_the_run_executes() {
    let d = scratch();
    let p = common::real(d.path());
    let args = ["--profile", "protect-shell", "--allow-write=."];
    let mut full = vec!["explain"];
    full.extend(args);
    full.extend(["--", "true"]);
    let ex = run_in(&p, &full);
    assert_eq!(ex.code, 0, "{ex:?}");
    assert!(ex.stdout.contains("mode: namespaces"), "{ex:?}");
    let envrc = p.join(".envrc").display().to_string();
    assert!(ex.stdout.contains(&format!("- {envrc}\n")), "{ex:?}");
    assert!(
        ex.stdout.contains(&format!("path: {}", p.display())),
        "{ex:?}"
    );
    let r = sh_in(&p, &args, "echo x > .envrc; echo y > other");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&format!("{envrc} was created")), "{r:?}");
    assert!(!p.join(".envrc").exists() && p.join("other").exists());
}
