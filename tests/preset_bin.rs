//! The real binary: `zerobox preset …`, `zerobox trust …`, and a team's
//! whole workflow (keygen, publish to a directory registry, pin in a repo,
//! a colleague runs exactly the pinned bytes or is refused).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn zerobox(root: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .args(args)
        .current_dir(root.join("proj"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env_remove("ZEROBOX_REGISTRY")
        .env_remove("ZEROBOX_REGISTRY_CA")
        .output()
        .unwrap()
}

#[test]
fn binary_preset_and_trust_commands() {
    let t = common::scratch();
    let root = t.path();
    std::fs::create_dir_all(root.join("proj/.git")).unwrap();
    let out = zerobox(root, &["preset", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("claude"));
    let out = zerobox(root, &["preset", "schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema, zerobox::preset::json_schema());

    let out = zerobox(root, &["preset", "show", "claude", "--resolved"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("## claude@") && text.contains("## protect-shell@"),
        "{text}"
    );

    let out = zerobox(root, &["preset", "show", "claud"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean claude"));

    // narrowing-only project file, then `zerobox trust`
    let ov = root.join("proj/.zerobox/overrides/claude.yaml");
    std::fs::create_dir_all(ov.parent().unwrap()).unwrap();
    std::fs::write(&ov, "network:\n  allow: [intranet.example]\n").unwrap();
    let out = zerobox(root, &["preset", "show", "claude", "--resolved"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("network.allow: intranet.example"));
    let out = zerobox(root, &["trust", ".zerobox/overrides/claude.yaml", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = zerobox(root, &["preset", "show", "claude", "--resolved"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("(trusted)"));
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Alice makes a key, publishes a preset to a directory registry and pins
/// it in the repository; Bob (own config, trusts Alice's key and the lock
/// file) runs `zerobox NAME` and gets exactly those bytes. A tampered
/// registry file, or a lock file changed after trust, is refused.
#[test]
fn team_keygen_publish_pin_and_run() {
    let t = common::scratch();
    let root = t.path();
    std::fs::create_dir_all(root.join("proj/.git")).unwrap();
    let reg = root.join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let alice = root.join("alice");
    let bob = root.join("bob");
    let as_user = |home: &Path, args: &[&str]| -> Output {
        Command::new(common::bin())
            .args(args)
            .current_dir(root.join("proj"))
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("ZEROBOX_REGISTRY", format!("file://{}", reg.display()))
            .env_remove("ZEROBOX_REGISTRY_CA")
            .output()
            .unwrap()
    };
    std::fs::create_dir_all(&alice).unwrap();
    std::fs::create_dir_all(&bob).unwrap();
    let key = alice.join("team");
    ok(&as_user(
        &alice,
        &["preset", "keygen", "--out", key.to_str().unwrap()],
    ));
    let pubkey = alice.join("team.pub");
    let preset = root.join("team-echo.yaml");
    std::fs::write(
        &preset,
        "zerobox: 1\nname: team-echo\nversion: 1.0.0\ndescription: prints a marker\ncommand: echo\n",
    )
    .unwrap();
    ok(&as_user(
        &alice,
        &[
            "preset",
            "publish",
            preset.to_str().unwrap(),
            "--registry",
            reg.to_str().unwrap(),
            "--key",
            &format!("{}.key", key.display()),
        ],
    ));
    // Publishing the same version again is refused.
    let again = as_user(
        &alice,
        &[
            "preset",
            "publish",
            preset.to_str().unwrap(),
            "--registry",
            reg.to_str().unwrap(),
            "--key",
            &format!("{}.key", key.display()),
        ],
    );
    assert!(!again.status.success(), "re-publish of 1.0.0 accepted");
    ok(&as_user(
        &alice,
        &["preset", "trust-key", pubkey.to_str().unwrap()],
    ));
    ok(&as_user(&alice, &["preset", "pin", "team-echo@1.0.0"]));
    let lock = std::fs::read_to_string(root.join("proj/.zerobox/lock.yaml")).unwrap();
    assert!(
        lock.contains("team-echo") && lock.contains("sha256"),
        "{lock}"
    );

    // Bob: unknown key first — refused.
    let r = as_user(&bob, &["team-echo", "hello-from-pin"]);
    assert!(
        !r.status.success(),
        "ran with an untrusted key: {}",
        String::from_utf8_lossy(&r.stdout)
    );
    ok(&as_user(
        &bob,
        &["preset", "trust-key", pubkey.to_str().unwrap()],
    ));
    ok(&as_user(&bob, &["trust", ".zerobox/lock.yaml", "--yes"]));
    let out = ok(&as_user(&bob, &["team-echo", "hello-from-pin"]));
    assert_eq!(out, "hello-from-pin\n");

    // The registry copy is tampered with: Bob's next fresh run refuses.
    let file = reg.join("presets/team-echo/1.0.0.yaml");
    let mut bytes = std::fs::read_to_string(&file).unwrap();
    bytes = bytes.replace("command: echo", "command: touch");
    std::fs::write(&file, bytes).unwrap();
    let _ = std::fs::remove_dir_all(bob.join("cache"));
    let r = as_user(&bob, &["team-echo", "pwned"]);
    assert!(!r.status.success(), "tampered preset ran");
    let err = String::from_utf8_lossy(&r.stderr).to_lowercase();
    assert!(
        err.contains("signature") || err.contains("digest") || err.contains("sha256"),
        "{err}"
    );
    assert!(!root.join("proj/pwned").exists());

    // A lock file changed after it was trusted is untrusted again.
    std::fs::write(
        root.join("proj/.zerobox/lock.yaml"),
        format!("{lock}\n# edited\n"),
    )
    .unwrap();
    let r = as_user(&bob, &["team-echo", "x"]);
    assert!(!r.status.success(), "changed lock file accepted");
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("trust"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// Trust replay (issue 8 #3): the user trusts a widening override in
/// project A; the agent copies it (or links it) into project B. In B the
/// widening is refused, the trust store cannot be read from inside the
/// sandbox, and `zerobox trust` without a terminal and without `--yes`
/// trusts nothing.
#[test]
fn trust_is_scoped_to_project_and_path_and_cannot_be_replayed() {
    let t = common::scratch();
    let root = t.path();
    let run_in = |proj: &str, args: &[&str]| -> common::Run {
        common::Run::from(
            common::zerobox()
                .args(args)
                .current_dir(root.join(proj))
                .env("HOME", root)
                .env("XDG_CONFIG_HOME", root.join("config"))
                .env("XDG_CACHE_HOME", root.join("cache"))
                .env("XDG_DATA_HOME", root.join("data"))
                .env_remove("ZEROBOX_REGISTRY")
                .env_remove("ZEROBOX_REGISTRY_CA")
                .output()
                .unwrap(),
        )
    };
    let widening = "env:\n  set:\n    ZB_MARK: widened\n";
    let ov = ".zerobox/overrides/protect-shell.yaml";
    for p in ["a", "b", "c"] {
        std::fs::create_dir_all(root.join(p).join(".git")).unwrap();
    }
    std::fs::create_dir_all(root.join("a/.zerobox/overrides")).unwrap();
    std::fs::write(root.join("a").join(ov), widening).unwrap();
    let show = [
        "--profile",
        "protect-shell",
        "--",
        "sh",
        "-c",
        "echo mark=$ZB_MARK",
    ];

    // Untrusted in A: refused, naming the entry and the fix.
    let r = run_in("a", &show);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("env.set: ZB_MARK") && r.stderr.contains("zerobox trust"),
        "{}",
        r.stderr
    );

    // No terminal, no --yes: nothing trusted, exit 2 naming --yes; the
    // review still says what the file widens.
    let r = run_in("a", &["trust", ov]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(
        r.stdout.contains("widens: env.set: ZB_MARK"),
        "{}",
        r.stdout
    );
    assert_eq!(run_in("a", &show).code, 1, "trusted without confirmation");

    // Trusted in A with --yes: applies there.
    let r = run_in("a", &["trust", ov, "--yes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in("a", &show);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("mark=widened"), "{}", r.stdout);

    // The trust store is zerobox's data dir, not the readable config dir,
    // and the sandboxed command cannot list or read it.
    assert!(!root.join("config/zerobox/trusted").exists());
    let store = root.join("data/zerobox/trust");
    let records: Vec<_> = std::fs::read_dir(&store).unwrap().flatten().collect();
    assert_eq!(records.len(), 1);
    let record = std::fs::read_to_string(records[0].path()).unwrap();
    assert!(record.contains("overrides/protect-shell.yaml"), "{record}");
    let peek = format!("ls {0}; cat {0}/*", store.display());
    let r = run_in(
        "a",
        &["--profile", "protect-shell", "--", "sh", "-c", &peek],
    );
    assert_ne!(r.code, 0, "trust store readable inside: {}", r.stdout);
    assert!(!r.stdout.contains("protect-shell.yaml"), "{}", r.stdout);
    // Nor write one, even with a write grant over the directory holding it
    // (run 1 plants a record, the host-side effect is checked).
    let plant = format!("echo forged > {}/forged && echo planted", store.display());
    let grant = root.display().to_string();
    let r = run_in(
        "a",
        &[
            "--allow-write",
            &grant,
            "--profile",
            "protect-shell",
            "--",
            "sh",
            "-c",
            &plant,
        ],
    );
    assert!(!r.stdout.contains("planted"), "{}", r.stdout);
    assert!(
        !store.join("forged").exists(),
        "a trust record was planted from inside"
    );

    // Replay 1: the same bytes copied into project B.
    std::fs::create_dir_all(root.join("b/.zerobox/overrides")).unwrap();
    std::fs::copy(root.join("a").join(ov), root.join("b").join(ov)).unwrap();
    let r = run_in("b", &show);
    assert_eq!(r.code, 1, "replayed trust accepted: {}", r.stdout);
    assert!(!r.stdout.contains("mark=widened"));
    assert!(
        r.stderr.contains("widens the policy") && r.stderr.contains("zerobox trust"),
        "{}",
        r.stderr
    );
    // Replay 2: project C's .zerobox is a link to A's (the real path is A's
    // file, but the project is C).
    std::os::unix::fs::symlink(root.join("a/.zerobox"), root.join("c/.zerobox")).unwrap();
    let r = run_in("c", &show);
    assert_eq!(r.code, 1, "trust replayed through a link: {}", r.stdout);
    // Replay 3: another file name in A itself (trust is per path too).
    std::fs::copy(
        root.join("a").join(ov),
        root.join("a/.zerobox/overrides/system.yaml"),
    )
    .unwrap();
    let r = run_in("a", &["--profile", "system", "--", "true"]);
    assert_eq!(r.code, 1, "trust replayed to another file: {}", r.stderr);
}

/// Issue 8 #8: a setting the user made is never skipped unseen. An override
/// (or its directory, or the config dir) that exists but cannot be read or
/// parsed is exit 2 naming the path; an override named after no preset is
/// a warning with a suggestion. As root (which reads through mode 000) the
/// unreadable case is a file where a directory is expected; the mode-000
/// case runs when the suite runs unprivileged (scripts/test, zerobox-ci).
#[test]
fn unreadable_or_invalid_overrides_are_errors_and_typos_warn() {
    let t = common::scratch();
    let root = t.path();
    std::fs::create_dir_all(root.join("proj/.git")).unwrap();
    let cfg = root.join("config/zerobox");
    let ovd = cfg.join("overrides");
    let show = ["preset", "show", "claude", "--resolved"];
    let run = |args: &[&str]| common::Run::from(zerobox(root, args));
    let reset = || {
        let _ = std::fs::remove_dir_all(root.join("config"));
        std::fs::create_dir_all(&ovd).unwrap();
    };
    let deny = "filesystem:\n  read:\n    deny: [\"~/secret-notes\"]\n";

    // the user's deny override applies
    reset();
    std::fs::write(ovd.join("claude.yaml"), deny).unwrap();
    let r = run(&show);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("secret-notes"), "{}", r.stdout);

    // invalid YAML: exit 2 naming the file
    std::fs::write(ovd.join("claude.yaml"), "filesystem: [unclosed\n").unwrap();
    let r = run(&show);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("overrides/claude.yaml"), "{}", r.stderr);

    // a directory where the file is expected
    reset();
    std::fs::create_dir_all(ovd.join("claude.yaml")).unwrap();
    let r = run(&show);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("overrides/claude.yaml"), "{}", r.stderr);

    // a file where the overrides directory is expected
    let _ = std::fs::remove_dir_all(&cfg);
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(&ovd, deny).unwrap();
    let r = run(&show);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("overrides"), "{}", r.stderr);

    // an invalid config.yaml
    reset();
    std::fs::write(cfg.join("config.yaml"), "registry: [1, 2\n").unwrap();
    let r = run(&show);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("config.yaml"), "{}", r.stderr);

    // a typo and a .yml spelling: warned, with the fix
    reset();
    std::fs::write(ovd.join("claud.yaml"), deny).unwrap();
    std::fs::write(ovd.join("claude.yml"), deny).unwrap();
    let r = run(&show);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("claud.yaml matches no known preset")
            && r.stderr.contains("did you mean claude"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("rename it to claude.yaml"),
        "{}",
        r.stderr
    );

    if !common::is_root() {
        use std::os::unix::fs::PermissionsExt;
        for (dir, name) in [(&ovd, "overrides"), (&cfg, "zerobox")] {
            reset();
            std::fs::write(ovd.join("claude.yaml"), deny).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o000)).unwrap();
            let r = run(&show);
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            assert_eq!(r.code, 2, "{name} unreadable: {} {}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains("cannot read") && r.stderr.contains(name),
                "{}",
                r.stderr
            );
        }
        // the file itself unreadable
        reset();
        std::fs::write(ovd.join("claude.yaml"), deny).unwrap();
        std::fs::set_permissions(
            ovd.join("claude.yaml"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let r = run(&show);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("overrides/claude.yaml"), "{}", r.stderr);
    }
}

/// `zerobox trust` on a terminal (python3's pty): it shows what the file
/// widens and trusts only on "y".
#[test]
fn trust_asks_on_a_terminal() {
    if !common::have("python3") {
        common::skip("python3 is required for the terminal test");
        return;
    }
    let t = common::scratch();
    let root = t.path();
    std::fs::create_dir_all(root.join("proj/.git")).unwrap();
    std::fs::create_dir_all(root.join("proj/.zerobox/overrides")).unwrap();
    std::fs::write(
        root.join("proj/.zerobox/overrides/system.yaml"),
        "env:\n  set:\n    ZB_TTY: y\n",
    )
    .unwrap();
    let script = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "trust"])
out = b""
while b"[y/N]" not in out:
    chunk = os.read(fd, 1024)
    if not chunk:
        break
    out += chunk
os.write(fd, (sys.argv[2] + "\n").encode())
try:
    while True:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        out += chunk
except OSError:
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let answer = |a: &str| {
        common::Run::from(
            std::process::Command::new("python3")
                .args(["-c", script, common::bin().to_str().unwrap(), a])
                .current_dir(root.join("proj"))
                .env("XDG_CONFIG_HOME", root.join("config"))
                .env("XDG_CACHE_HOME", root.join("cache"))
                .env("XDG_DATA_HOME", root.join("data"))
                .env_remove("ZEROBOX_REGISTRY")
                .output()
                .unwrap(),
        )
    };
    let r = answer("n");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("widens: env.set: ZB_TTY") && r.stdout.contains("[y/N]"),
        "{}",
        r.stdout
    );
    assert!(
        !root.join("data/zerobox/trust").exists()
            || std::fs::read_dir(root.join("data/zerobox/trust"))
                .unwrap()
                .next()
                .is_none()
    );
    let r = answer("y");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("trusted "), "{}", r.stdout);
    let r = common::Run::from(zerobox(root, &["preset", "show", "system", "--resolved"]));
    assert!(r.stdout.contains("(trusted)"), "{}", r.stdout);
}

/// Issue 9: `zerobox NAME -- ARGS` and `zerobox run NAME -- ARGS` hand
/// ARGS to the preset's command without the separator (Claude Code took a
/// literal `--` as "a prompt follows"); a `--` after the preset's own
/// arguments (`claude -p -- TEXT`) is one of them and is kept, and so is a
/// second `--` written on purpose. The bundled claude preset runs a
/// stand-in `claude` that prints its argv.
#[test]
fn preset_separator_is_not_passed_to_the_command() {
    let t = common::scratch();
    let root = t.path();
    let proj = root.join("proj");
    std::fs::create_dir_all(proj.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("home")).unwrap();
    let stub = proj.join("claude");
    std::fs::write(&stub, "#!/bin/sh\nprintf '[%s]\\n' \"$@\"\n").unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| -> String {
        let out = Command::new(common::bin())
            .args(args)
            .current_dir(&proj)
            .env_clear()
            .env("HOME", root.join("home"))
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", proj.display()),
            )
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_CACHE_HOME", root.join("cache"))
            .env("XDG_DATA_HOME", root.join("data"))
            .output()
            .unwrap();
        ok(&out)
    };
    assert_eq!(run(&["claude", "--", "X", "-y"]), "[X]\n[-y]\n");
    assert_eq!(run(&["run", "claude", "--", "X"]), "[X]\n");
    assert_eq!(run(&["claude", "--", "--", "X"]), "[--]\n[X]\n");
    assert_eq!(run(&["claude", "-p", "--", "hi"]), "[-p]\n[--]\n[hi]\n");
    assert_eq!(
        run(&["run", "claude", "-p", "--", "hi"]),
        "[-p]\n[--]\n[hi]\n"
    );
    assert_eq!(run(&["claude", "X"]), "[X]\n");
}
