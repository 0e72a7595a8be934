//! The command line as a user meets it, through the real binary: closed
//! stdout/stderr, `--help` of every subcommand, `--json` output parsed,
//! completions and man page, flag suggestions and escaped values.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

/// `zerobox` with HOME and the XDG dirs in `home`: no user config, no
/// registry, no trusted keys from the machine running the tests.
/// A stub `claude` is first on PATH, so that preset runs resolve their
/// program on machines without the agent.
fn zb(home: &Path) -> Command {
    let mut c = common::zerobox();
    isolate(&mut c, home);
    c
}

/// HOME, XDG dirs and cwd in `home`, the stub first on PATH, no registry.
fn isolate(c: &mut Command, home: &Path) {
    c.env("PATH", test_path(home))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("ZEROBOX_REGISTRY")
        .current_dir(home);
}

fn test_path(home: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = home.join("bin");
    let stub = bin.join("claude");
    if !stub.exists() {
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(&stub, "#!/bin/sh\necho stub claude \"$@\"\n").unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let host = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    format!("{}:{host}", bin.display())
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
                .stdin(Stdio::null());
            isolate(&mut c, home);
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

/// Run `args` with both streams open (exit 3, `needle` on stderr), then
/// with stderr closed both ways: the status stays the command's.
fn run_keeps_status_with_closed_stderr(home: &Path, args: &[&str], needle: &str) {
    let open = exit_code(home, args);
    assert_eq!(open.code, 3, "{open:?}");
    assert!(open.stderr.contains(needle), "{open:?}");
    for closed in [Closed::StderrPipe, Closed::StderrFd] {
        let r = with_closed(home, args, closed);
        assert_eq!(r.code, 3, "{closed:?}: {r:?}");
        assert_eq!(r.stdout, "ran\n", "{closed:?}: {r:?}");
    }
}

/// On the run path a warning printed before the command starts, on a
/// closed stderr, neither stops the run nor changes its status.
#[test]
fn closed_stderr_keeps_the_commands_status() {
    let t = common::scratch();
    let args = [
        "--allow-write=/nonexistent/zerobox-test",
        "--",
        "sh",
        "-c",
        "echo ran; exit 3",
    ];
    run_keeps_status_with_closed_stderr(t.path(), &args, "does not exist");
}

/// The end-of-run summary of blocked connections, written to a closed
/// stderr, does not replace the command's exit status.
#[test]
fn closed_stderr_summary_keeps_the_commands_status() {
    if !common::have("curl") {
        common::skip("curl is required");
        return;
    }
    let t = common::scratch();
    let script = "curl -s -o /dev/null http://blocked.test/; echo ran; exit 3";
    let args = ["--allow-net=127.0.0.1:1", "--", "sh", "-c", script];
    run_keeps_status_with_closed_stderr(t.path(), &args, "blocked 1 connection");
}

/// The command's own output to a closed stdout is the command's business:
/// zerobox reports the command's status, not a panic of its own.
#[test]
fn closed_stdout_on_the_run_path() {
    let t = common::scratch();
    let home = t.path();
    // The command ignores SIGPIPE itself, so its status (4) does not
    // depend on the disposition it inherits: only zerobox is under test.
    let args = ["--", "sh", "-c", "trap '' PIPE; echo x; exit 4"];
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
        common::skip("/dev/full is required");
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

/// Every subcommand answers `--help` (exit 0) with a usage line and an
/// example.
#[test]
fn every_subcommand_has_help_with_an_example() {
    let t = common::scratch();
    let cmds: &[&[&str]] = &[
        &[],
        &["doctor"],
        &["explain"],
        &["run"],
        &["trust"],
        &["preset"],
        &["preset", "list"],
        &["preset", "show"],
        &["preset", "schema"],
        &["preset", "verify"],
        &["preset", "keygen"],
        &["preset", "sign"],
        &["preset", "publish"],
        &["preset", "pull"],
        &["preset", "pin"],
        &["preset", "update"],
        &["preset", "trust-key"],
        &["completions"],
        &["man"],
    ];
    for cmd in cmds {
        let mut args = cmd.to_vec();
        args.push("--help");
        let r = exit_code(t.path(), &args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stdout.contains("Usage: zerobox"), "{args:?}: {r:?}");
        assert!(
            r.stdout.contains("Example"),
            "{args:?} has no example: {r:?}"
        );
    }
    // `zerobox preset help show` is the same help
    let r = exit_code(t.path(), &["preset", "help", "show"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("--resolved"), "{r:?}");
}

/// The preset parser keeps its exit codes: usage errors are 2 with one
/// line naming the subcommand's help.
#[test]
fn preset_usage_errors() {
    let t = common::scratch();
    let r = exit_code(t.path(), &["preset"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("Usage: zerobox preset"), "{r:?}");
    for (args, needle) in [
        (&["preset", "frobnicate"][..], "frobnicate"),
        (&["preset", "show"][..], "NAME[@VERSION]|FILE"),
        (&["preset", "show", "claude", "--bogus"][..], "--bogus"),
        (&["preset", "publish", "--key", "k"][..], "--registry"),
        (
            &[
                "preset",
                "publish",
                "f",
                "--registry",
                "r",
                "--key",
                "k",
                "--expires-days",
                "0",
            ][..],
            "--expires-days",
        ),
        (&["preset", "pull", "Bad@1"][..], "Bad"),
        (&["preset", "pin", "x@one"][..], "bad version"),
    ] {
        let r = exit_code(t.path(), args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {r:?}");
        assert!(r.stderr.contains("zerobox preset"), "{args:?}: {r:?}");
    }
}

/// `preset` and `trust` take `--` like any clap command: what follows is
/// positional, even when it starts with `-`.
#[test]
fn preset_and_trust_take_dashes() {
    let t = common::scratch();
    let r = exit_code(t.path(), &["preset", "show", "--", "claude"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("# claude@"), "{r:?}");
    let r = exit_code(t.path(), &["trust", "--yes", "--", "-weird"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("-weird: No such file"),
        "the file, not a flag: {r:?}"
    );
}

/// `--offline` (and `--strict`) are accepted before the subcommand, after
/// it, and on the run path.
#[test]
fn offline_is_accepted_anywhere() {
    let t = common::scratch();
    for args in [
        &["--offline", "preset", "list"][..],
        &["preset", "--offline", "list"][..],
        &["preset", "list", "--offline"][..],
        &["preset", "show", "--offline", "claude"][..],
        &["trust", "--offline", "--yes", "/nonexistent"][..],
        &["--offline", "--dry-run", "claude"][..],
        &["run", "--offline", "--dry-run", "claude"][..],
        &["explain", "--offline", "claude"][..],
        &["explain", "--offline", "--", "true"][..],
    ] {
        let r = exit_code(t.path(), args);
        assert!(!r.stderr.contains("unexpected argument"), "{args:?}: {r:?}");
        let want = if args[0] == "trust" { 2 } else { 0 };
        assert_eq!(r.code, want, "{args:?}: {r:?}");
    }
}

/// `NAME@VERSION` works where the help says it does: `preset show`,
/// `pull`/`pin` (registry tests), `run` and `explain`; a version that is
/// not the one resolved is refused with the way to get it.
#[test]
fn name_at_version() {
    let t = common::scratch();
    let version = {
        let r = exit_code(t.path(), &["preset", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "claude")
            .unwrap()["version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let good = format!("claude@{version}");
    let r = exit_code(t.path(), &["preset", "show", &good]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with(&format!("# {good} ")), "{r:?}");
    let r = exit_code(t.path(), &["preset", "show", &good, "--resolved"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = exit_code(t.path(), &["run", "--dry-run", &good, "--version"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("- --version"),
        "ARGS reach the command: {r:?}"
    );
    let r = exit_code(t.path(), &["explain", &good]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("origin: {good}")), "{r:?}");
    for args in [
        &["run", "--dry-run", "claude@99.0.0"][..],
        &["--dry-run", "claude@99.0.0"][..],
        &["explain", "claude@99.0.0"][..],
        &["preset", "show", "claude@99.0.0", "--resolved"][..],
    ] {
        let r = exit_code(t.path(), args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("preset pin claude@99.0.0"),
            "{args:?}: {r:?}"
        );
    }
    let r = exit_code(t.path(), &["preset", "show", "claude@99.0.0"]);
    assert_eq!(r.code, 2, "{r:?}");
}

fn json_of(home: &Path, args: &[&str]) -> serde_json::Value {
    let r = exit_code(home, args);
    assert_eq!(r.code, 0, "{args:?}: {r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {r:?}"))
}

/// `--json` output parses and has the documented fields (docs/cli.md).
#[test]
fn json_output_has_the_documented_fields() {
    let t = common::scratch();
    let home = t.path();

    let list = json_of(home, &["preset", "list", "--json"]);
    let rows = list.as_array().expect("an array");
    let claude = rows.iter().find(|r| r["name"] == "claude").expect("claude");
    for key in [
        "name",
        "version",
        "source",
        "description",
        "location",
        "sha256",
        "error",
    ] {
        assert!(claude.get(key).is_some(), "preset list: no {key}: {claude}");
    }
    assert_eq!(claude["source"], "bundled");
    assert_eq!(claude["sha256"].as_str().unwrap().len(), 64);
    assert!(claude["error"].is_null());

    let show = json_of(home, &["preset", "show", "claude", "--json"]);
    assert_eq!(show["name"], "claude");
    assert_eq!(show["source"], "bundled");
    assert_eq!(show["version"], claude["version"]);
    assert_eq!(show["sha256"], claude["sha256"]);
    assert!(
        show["yaml"].as_str().unwrap().contains("name: claude"),
        "{show}"
    );

    let resolved = json_of(home, &["preset", "show", "claude", "--resolved", "--json"]);
    assert_eq!(resolved["command"], "claude");
    let layers = resolved["layers"].as_array().unwrap();
    let own = layers
        .iter()
        .find(|l| l["origin"].as_str().unwrap().starts_with("claude@"))
        .expect("the preset's own layer");
    for key in [
        "read_allow",
        "read_deny",
        "write_allow",
        "write_deny",
        "net_allow",
        "net_allow_any",
        "net_deny",
        "env_allow",
        "env_deny",
        "env_set",
        "unix_sockets",
        "secrets",
    ] {
        assert!(own.get(key).is_some(), "layer: no {key}: {own}");
    }
    assert!(
        own["net_allow"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().contains("anthropic")),
        "{own}"
    );

    let ex = json_of(
        home,
        &["explain", "--json", "--allow-write=.", "--", "true"],
    );
    for key in [
        "command",
        "program",
        "mode",
        "layers",
        "weaker",
        "policy",
        "mounts",
        "landlock_abi",
        "tmpdir",
    ] {
        assert!(ex.get(key).is_some(), "explain: no {key}: {ex}");
    }
    // The plan's fields, as the YAML explain prints them.
    let yaml = exit_code(home, &["explain", "--allow-write=.", "--", "true"]);
    assert_eq!(yaml.code, 0, "{yaml:?}");
    for key in ["landlock_abi:", "tmpdir:", "layers:"] {
        assert!(
            yaml.stdout.contains(key),
            "yaml explain: no {key}: {yaml:?}"
        );
    }
    assert_eq!(ex["command"], serde_json::json!(["true"]));
    let fs = ex["policy"]["fs"].as_array().expect("policy.fs");
    let cwd = common::real(home);
    assert!(
        fs.iter()
            .any(|r| r["path"] == cwd.to_str().unwrap() && r["origin"] == "cli"),
        "the --allow-write rule: {ex}"
    );
    let ex = json_of(home, &["explain", "--json", "claude"]);
    assert_eq!(ex["command"], serde_json::json!(["claude"]));

    let r = exit_code(home, &["doctor", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("doctor json");
    for key in [
        "kernel",
        "uid",
        "namespaces",
        "all_namespaces",
        "apparmor_restricts_userns",
        "landlock",
        "seccomp",
        "host_unix_sockets",
        "limits",
        "run",
    ] {
        assert!(doc.get(key).is_some(), "doctor: no {key}: {doc}");
    }
    // The same facts as the text doctor: its limit and socket lines.
    let text = exit_code(home, &["doctor"]);
    let lines = doc["limits"]["lines"].as_array().expect("limits.lines");
    assert!(!lines.is_empty(), "{doc}");
    for l in lines {
        assert!(
            text.stdout.contains(l.as_str().unwrap()),
            "{l} not in {text:?}"
        );
    }
    assert!(doc["limits"]["pids"].is_number(), "{doc}");
    assert!(doc["limits"]["cgroup"]["available"].is_boolean(), "{doc}");
    assert!(doc["landlock"]["unix_connect"].is_boolean(), "{doc}");
    let sockets = doc["host_unix_sockets"]["summary"]
        .as_str()
        .expect("summary");
    assert!(text.stdout.contains(sockets), "{sockets} not in {text:?}");
    assert!(doc["host_unix_sockets"]["listening"].is_number(), "{doc}");
    let want = if doc["run"] == "refused" { 125 } else { 0 };
    assert_eq!(r.code, want, "{r:?}");
    assert!(doc["namespaces"]["user"]["available"].is_boolean(), "{doc}");
    assert!(doc["landlock"]["abi"].is_number(), "{doc}");
    // ZEROBOX_SIMULATE_MISSING drives the fields
    let out = zb(home)
        .args(["doctor", "--json"])
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .output()
        .unwrap();
    let sim: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(sim["all_namespaces"]["available"], false, "{sim}");
    assert!(sim["all_namespaces"]["error"].is_string(), "{sim}");
}

/// The completion scripts come from the clap definitions: they name real
/// flags and subcommands, and the shells accept them.
#[test]
fn completions_are_generated_from_the_definitions() {
    let t = common::scratch();
    for shell in ["bash", "zsh", "fish"] {
        let r = exit_code(t.path(), &["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        for word in [
            "--allow-write",
            "--allow-net",
            "--offline",
            "explain",
            "preset",
            "trust-key",
            "--resolved",
        ] {
            // fish spells a long flag `-l NAME`
            let word = match (shell, word.strip_prefix("--")) {
                ("fish", Some(long)) => format!("-l {long}"),
                _ => word.to_string(),
            };
            assert!(r.stdout.contains(&word), "{shell} completion lacks {word}");
        }
        let path = t.path().join(format!("zerobox.{shell}"));
        std::fs::write(&path, &r.stdout).unwrap();
        // The shell parses the script without running it.
        if common::have(shell) {
            let check = Command::new(shell).arg("-n").arg(&path).output().unwrap();
            assert!(check.status.success(), "{shell} -n: {check:?}");
        } else {
            assert!(
                shell != "bash" || std::env::var_os("ZEROBOX_REQUIRE_ALL").is_none(),
                "bash is required to check the bash completion"
            );
        }
    }
    let r = exit_code(t.path(), &["completions", "tcsh"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("bash, zsh, fish"), "{r:?}");
}

/// `zerobox man` is a roff page with every subcommand's section and real
/// flags; groff (when present) formats it without a warning.
#[test]
fn man_page_is_generated_from_the_definitions() {
    let t = common::scratch();
    let r = exit_code(t.path(), &["man"]);
    assert_eq!(r.code, 0, "{r:?}");
    let page = &r.stdout;
    assert!(page.contains(".TH zerobox 1"), "{page}");
    assert!(page.is_ascii(), "roff input stays ASCII");
    for word in [
        "\\-\\-allow\\-write",
        "\\-\\-secret\\-host",
        "ZEROBOX PRESET PIN",
        "ZEROBOX EXPLAIN",
        "ZEROBOX COMPLETIONS",
        "NAME[@VERSION]",
    ] {
        assert!(page.contains(word), "man page lacks {word}");
    }
    if common::have("groff") {
        let path = t.path().join("zerobox.1");
        std::fs::write(&path, page).unwrap();
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        common::skip("no groff (the man page's formatting check)");
    }
}

/// `zerobox --help` groups the flags under headings, in this order, and
/// its usage shows where the command goes.
#[test]
fn help_is_grouped_and_shows_the_command() {
    let t = common::scratch();
    let r = exit_code(t.path(), &["--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    let h = &r.stdout;
    let at = |s: &str| h.find(s).unwrap_or_else(|| panic!("no {s} in help:\n{h}"));
    let groups = [
        ("Filesystem:", "--allow-write"),
        ("Environment:", "--allow-env"),
        ("Network & secrets:", "--secret-host"),
        ("Running:", "--strict"),
    ];
    for w in groups.windows(2) {
        assert!(at(w[0].0) < at(w[1].0), "{} before {}", w[0].0, w[1].0);
    }
    for (i, (heading, flag)) in groups.iter().enumerate() {
        let flag_at = at(&format!("\n      {flag}"));
        assert!(at(heading) < flag_at, "{flag} under {heading}");
        if let Some((next, _)) = groups.get(i + 1) {
            assert!(flag_at < at(next), "{flag} before {next}");
        }
    }
    assert!(h.contains("Usage: zerobox [FLAGS] -- CMD [ARGS]…"), "{h}");
    let r = exit_code(t.path(), &["explain", "--help"]);
    assert!(
        r.stdout
            .contains("zerobox explain [FLAGS] [--json] -- CMD [ARGS]…"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("Filesystem:"),
        "explain has the same groups: {r:?}"
    );
}

/// "Did you mean": the closest real name for a mistyped flag, subcommand
/// or preset, and never the name that was typed.
#[test]
fn did_you_mean() {
    let t = common::scratch();
    for (args, typed, meant) in [
        (
            &["--allow-wrte=.", "--", "true"][..],
            "--allow-wrte",
            "--allow-write",
        ),
        (&["explain", "--jsn", "--", "true"][..], "--jsn", "--json"),
        (&["preset", "lst"][..], "lst", "list"),
        (
            &["preset", "show", "claude", "--resolvd"][..],
            "--resolvd",
            "--resolved",
        ),
        (&["claud"][..], "claud", "claude"),
    ] {
        let r = exit_code(t.path(), args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        let (_, after) = r
            .stderr
            .split_once("did you mean")
            .unwrap_or_else(|| panic!("{args:?}: no suggestion: {r:?}"));
        assert!(after.contains(meant), "{args:?}: {r:?}");
        let suggested: Vec<&str> = after
            .trim_start_matches(':')
            .split(['?', ','])
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        assert!(
            !suggested.contains(&typed),
            "{args:?} suggests itself: {r:?}"
        );
    }
    // A flag that exists, in the wrong place: no suggestion of itself.
    let r = exit_code(t.path(), &["preset", "list", "--allow-write=."]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!r.stderr.contains("did you mean --allow-write"), "{r:?}");
}

/// A value echoed in a message is escaped: a newline or ESC in it gives
/// neither a second line nor a raw escape on the user's terminal.
#[test]
fn values_in_messages_are_escaped() {
    let t = common::scratch();
    let bad = "x\ny\x1b[2J";
    let flag = format!("--allow-wr{bad}=1");
    let env = format!("--env={bad}");
    let profile = format!("--profile={bad}");
    let cwd = format!("--cwd=/nonexistent/{bad}");
    let write = format!("--allow-write=/nonexistent/{bad}");
    let spec = format!("a@{bad}");
    let cases: Vec<Vec<&str>> = vec![
        vec![&flag, "--", "true"],
        vec![&env, "--", "true"],
        vec![&profile, "--", "true"],
        vec![&cwd, "--", "true"],
        vec!["--", bad],
        vec![bad],
        vec!["run", bad],
        vec!["preset", "show", bad],
        vec!["preset", "pull", &spec],
        vec!["preset", "trust-key", bad],
        vec!["preset", bad],
        vec!["completions", bad],
        // a warning, then the command runs
        vec![&write, "--", "true"],
    ];
    for args in cases {
        let r = exit_code(t.path(), &args);
        assert_ne!(r.code, 101, "{args:?}: {r:?}");
        assert!(!r.stderr.contains('\x1b'), "{args:?}: raw ESC: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.ends_with('\n'), "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("\\n"),
            "{args:?}: the newline shows escaped: {r:?}"
        );
    }
}

/// Internal names (`AllowWrite`) never reach the user.
#[test]
fn errors_use_the_users_words() {
    let t = common::scratch();
    for flag in ["--allow-write=/", "--deny-read=/"] {
        let r = exit_code(t.path(), &[flag, "--", "true"]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("no sandbox"), "{r:?}");
        for internal in ["AllowWrite", "DenyRead"] {
            assert!(!r.stderr.contains(internal), "{r:?}");
        }
    }
}

/// The signing commands print through the same helper: with a stream
/// closed their status is what it is with both open.
#[test]
fn closed_streams_signing_commands() {
    let t = common::scratch();
    let home = t.path();
    let r = exit_code(home, &["preset", "keygen", "--out", "k"]);
    assert_eq!(r.code, 0, "{r:?}");
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/claude.yaml");
    std::fs::copy(&preset, home.join("team.yaml")).unwrap();
    let cmds: &[&[&str]] = &[
        &["preset", "sign", "team.yaml", "--key", "k.key"],
        &["preset", "verify", "team.yaml"], // 1 until the key is trusted
        &["preset", "trust-key", "k.pub"],
        &["preset", "verify", "team.yaml"], // 0 now
        &["trust", "--yes", "team.yaml"],
        &["preset", "pull", "team"], // no registry: 2
    ];
    let want = [0, 1, 0, 0, 0, 2];
    for (cmd, want) in cmds.iter().zip(want) {
        let expected = exit_code(home, cmd);
        assert_eq!(expected.code, want, "{cmd:?}: {expected:?}");
        for closed in ALL_CLOSED {
            let r = with_closed(home, cmd, closed);
            assert_eq!(r.code, expected.code, "{cmd:?} with {closed:?}: {r:?}");
        }
    }
}

/// `--allow-net HOST` with a space: the bare flag (any host) took no
/// value and HOST became the command; the error says how to write it.
#[test]
fn allow_net_with_a_space_says_so() {
    let t = common::scratch();
    let r = exit_code(t.path(), &["--allow-net", "example.test", "--", "true"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--allow-net=example.test"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
}

/// The tmux driver the interactive agent tests use works on a plain
/// program: it types, reads the screen, and sees the exit status.
#[test]
fn tui_driver_types_reads_and_sees_exit() {
    if !common::have("tmux") {
        common::skip("tmux is not installed");
        return;
    }
    let dir = common::scratch();
    let argv: Vec<String> = [
        "sh",
        "-c",
        "printf 'name? '; read x; echo \"hello $x\"; exit 7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let env = vec![("PATH".to_string(), "/usr/bin:/bin".to_string())];
    let t = common::tui::Tui::start(&common::tui::Start {
        argv: &argv,
        cwd: dir.path(),
        env: &env,
        cols: 80,
        rows: 24,
    });
    t.wait_for("name?", std::time::Duration::from_secs(10));
    t.type_text("zerobox");
    t.keys(&["Enter"]);
    t.wait_for("hello zerobox", std::time::Duration::from_secs(10));
    assert_eq!(t.wait_exit(std::time::Duration::from_secs(10)), 7);
}

/// Closing the terminal ends the sandboxed command. zerobox run straight
/// from a terminal (tmux, `ssh -t`, a terminal window) is the session
/// leader: on hang-up the kernel sends SIGHUP to it alone, so zerobox must
/// relay it; a command left running with no terminal is a process the
/// user can no longer see or stop.
#[test]
fn a_terminal_hang_up_ends_the_command() {
    if !common::have("tmux") {
        common::skip("tmux is not installed");
        return;
    }
    let dir = common::scratch();
    let out = common::real(dir.path());
    let script = format!(
        "trap 'echo hup > {0}/hup; exit 0' HUP; echo READY; while :; do sleep 0.1; done",
        out.display()
    );
    let argv: Vec<String> = [
        common::bin().display().to_string(),
        format!("--allow-write={}", out.display()),
        "--".into(),
        "sh".into(),
        "-c".into(),
        script,
    ]
    .into_iter()
    .collect();
    let env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("HOME".to_string(), out.display().to_string()),
    ];
    let t = common::tui::Tui::start_leader(&common::tui::Start {
        argv: &argv,
        cwd: &out,
        env: &env,
        cols: 80,
        rows: 24,
    });
    t.wait_for("READY", std::time::Duration::from_secs(20));
    t.hang_up();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !out.join("hup").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        out.join("hup").exists(),
        "the command never got SIGHUP after its terminal hung up"
    );
}
