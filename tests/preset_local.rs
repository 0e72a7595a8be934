//! Bundled presets, signatures of the repository's own files, overrides and
//! their merge order, narrowing-only project files, `zerobox trust`, and the
//! `zerobox preset` command line (called in-process).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zerobox::policy::{self, PathContext};
use zerobox::preset::{self, registry, sign, PresetEnv, PresetError};

/// Tests that change the process environment or cwd take this lock.
static PROCESS: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_in(root: &Path) -> PresetEnv {
    let env = PresetEnv {
        config_dir: root.join("config/zerobox"),
        cache_dir: root.join("cache/zerobox"),
        data_dir: root.join("data/zerobox"),
        project_dir: root.join("proj"),
        strict: false,
        offline: true,
    };
    std::fs::create_dir_all(&env.project_dir).unwrap();
    env
}

/// The version of a bundled preset, as its file in presets/ declares it
/// (so a version bump does not need every test edited).
fn bundled_version(name: &str) -> String {
    let text = std::fs::read_to_string(repo().join(format!("presets/{name}.yaml"))).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("version: "))
        .expect("a version line")
        .trim()
        .to_string()
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn every_repository_preset_and_registry_file_verifies_against_the_embedded_key() {
    let ring = sign::KeyRing::embedded();
    let mut checked = 0;
    let mut files = Vec::new();
    for e in std::fs::read_dir(repo().join("presets")).unwrap() {
        files.push(e.unwrap().path());
    }
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    walk(&repo().join("registry"), &mut files);
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "yaml"))
    {
        let bytes = std::fs::read(f).unwrap();
        let sig = std::fs::read(sign::sig_path_of(f))
            .unwrap_or_else(|_| panic!("{} has no .minisig", f.display()));
        if f.file_name().unwrap() == "index.yaml" {
            let (v, serial) =
                sign::verify_index(&ring, bytes, &sig, &f.display().to_string()).unwrap();
            let idx: registry::Index = serde_saphyr::from_slice(v.bytes()).unwrap();
            assert_eq!(idx.serial, serial);
            // every indexed file exists with the indexed digest
            for (name, versions) in &idx.presets {
                for (ver, e) in versions {
                    let p = f
                        .parent()
                        .unwrap()
                        .join(format!("presets/{name}/{ver}.yaml"));
                    assert_eq!(
                        sha(&std::fs::read(&p).unwrap()),
                        e.sha256,
                        "{}",
                        p.display()
                    );
                }
            }
        } else {
            let v = sign::verify_preset(&ring, bytes, &sig, &f.display().to_string(), "repo", None)
                .unwrap_or_else(|e| {
                    panic!("{e} (re-sign with `zerobox preset sign FILE --key …`)")
                });
            preset::schema::parse_preset(&v).unwrap();
        }
        checked += 1;
    }
    assert!(checked > 17 * 2, "checked {checked}");
    // no secret key ever lands in the repository
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        assert!(!text.contains("secret key"), "{}", f.display());
    }
}

#[test]
fn bundled_agents_load_and_resolve_into_a_policy() {
    let t = tempfile::tempdir().unwrap();
    let env = env_in(t.path());
    let ctx = PathContext {
        home: PathBuf::from("/home/u"),
        cwd: PathBuf::from("/home/u/proj"),
        tmpdir: PathBuf::from("/tmp"),
    };
    for (agent, host, secret, own_state, instructions) in [
        (
            "claude",
            "api.anthropic.com",
            "ANTHROPIC_API_KEY",
            "/home/u/.claude/projects/x",
            "/home/u/.claude/CLAUDE.md",
        ),
        (
            "codex",
            "api.openai.com",
            "OPENAI_API_KEY",
            "/home/u/.codex/sessions/x",
            "/home/u/.codex/AGENTS.md",
        ),
        (
            "gemini",
            "generativelanguage.googleapis.com",
            "GEMINI_API_KEY",
            "/home/u/.gemini/tmp/x",
            "/home/u/.gemini/GEMINI.md",
        ),
        (
            "opencode",
            "api.anthropic.com",
            "ANTHROPIC_API_KEY",
            "/home/u/.local/share/opencode/x",
            "/home/u/.config/opencode/AGENTS.md",
        ),
        (
            "openclaw",
            "api.anthropic.com",
            "ANTHROPIC_API_KEY",
            // Sandboxed runs' own state dir; the user's ~/.openclaw is
            // read-only whole (docs/presets/openclaw.md).
            "/home/u/.openclaw-zerobox/workspace/MEMORY.md",
            "/home/u/.openclaw/workspace/MEMORY.md",
        ),
    ] {
        let lp = preset::load(agent, &env).unwrap();
        assert_eq!(lp.command, agent);
        let origin = lp.layers.last().unwrap().origin.to_string();
        assert!(origin.starts_with(&format!("{agent}@")), "{origin}");
        let mut layers = vec![policy::defaults_layer()];
        layers.extend(lp.layers.clone());
        let p = policy::resolve(&layers, &ctx, &[]).unwrap_or_else(|e| panic!("{agent}: {e}"));
        let w = |s: &str| p.effective(Path::new(s)).write;
        assert!(w("/home/u/proj/src/main.rs"), "{agent}: project writable");
        assert!(w(own_state), "{agent}: own state writable");
        for denied in [
            instructions,
            "/home/u/.bashrc",
            "/home/u/.zshrc",
            "/home/u/.profile",
            "/home/u/proj/.git/hooks/pre-commit",
            "/home/u/proj/.git/config",
            "/home/u/.ssh/id_ed25519",
            "/home/u/Documents/x",
        ] {
            assert!(!w(denied), "{agent}: {denied} must not be writable");
        }
        assert!(!p.effective(Path::new("/home/u/.ssh/id_ed25519")).read);
        assert!(p.network.allow.iter().any(|h| h.text == host), "{agent}");
        assert!(!p.network.allow_any, "{agent}");
        for never in [
            "registry.npmjs.org",
            "github.com",
            "pypi.org",
            "statsig.anthropic.com",
            "sentry.io",
        ] {
            assert!(
                !p.network.allow.iter().any(|h| h.text == never),
                "{agent}: {never}"
            );
        }
        let secrets: Vec<_> = lp.layers.iter().flat_map(|l| l.secrets.iter()).collect();
        assert!(
            secrets
                .iter()
                .any(|s| s.name == secret && s.hosts == vec![host.to_string()]),
            "{agent}"
        );
    }
}

#[test]
fn user_and_project_overrides_merge_in_order_with_provenance() {
    let t = tempfile::tempdir().unwrap();
    let env = env_in(t.path());
    let user = env.config_dir.join("overrides/claude.yaml");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    std::fs::write(
        &user,
        "extends: [net-github]\nnetwork:\n  allow: [example.org]\n",
    )
    .unwrap();
    let proj = env.project_dir.join(".zerobox/overrides/claude.yaml");
    std::fs::create_dir_all(proj.parent().unwrap()).unwrap();
    std::fs::write(
        &proj,
        "filesystem:\n  write:\n    deny: [secrets]\nnetwork:\n  deny: [claude.ai]\n",
    )
    .unwrap();
    let lp = preset::load("claude", &env).unwrap();
    let origins: Vec<String> = lp.layers.iter().map(|l| l.origin.to_string()).collect();
    let n = origins.len();
    assert_eq!(
        origins[n - 4],
        format!("claude@{}", bundled_version("claude"))
    );
    assert_eq!(origins[n - 3], "net-github@1.0.0");
    assert!(
        origins[n - 2].starts_with("user override ")
            && origins[n - 2].ends_with("overrides/claude.yaml"),
        "{origins:?}"
    );
    assert_eq!(origins[n - 1], "project .zerobox/overrides/claude.yaml");
    assert_eq!(
        origins[0],
        format!("system@{}", bundled_version("system")),
        "extends chain first"
    );
    // merged: lists union, deny wins, CLI last
    let ctx = PathContext {
        home: "/h".into(),
        cwd: "/h/p".into(),
        tmpdir: "/tmp".into(),
    };
    let mut layers = lp.layers.clone();
    let mut cli = policy::PolicyLayer::new(policy::Origin::Cli);
    cli.write_allow.push("/h/p/secrets/ok".into());
    layers.push(cli);
    let p = policy::resolve(&layers, &ctx, &[]).unwrap();
    assert!(p.network.allow.iter().any(|h| h.text == "example.org"));
    assert!(p.network.allow.iter().any(|h| h.text == "github.com"));
    assert!(p.network.deny.iter().any(|h| h.text == "claude.ai"));
    assert!(
        !p.effective(Path::new("/h/p/secrets/x")).write,
        "project deny narrows"
    );
    assert!(
        p.effective(Path::new("/h/p/secrets/ok/x")).write,
        "most specific path wins (CLI grant inside)"
    );
    assert!(p.effective(Path::new("/h/p/src")).write);
}

#[test]
fn project_override_may_only_narrow_until_trusted() {
    let t = tempfile::tempdir().unwrap();
    let env = env_in(t.path());
    let proj = env.project_dir.join(".zerobox/overrides/codex.yaml");
    std::fs::create_dir_all(proj.parent().unwrap()).unwrap();
    for (widening, entry) in [
        (
            "network:\n  allow: [evil.example]\n",
            "network.allow: evil.example",
        ),
        (
            "filesystem:\n  write:\n    allow: [~/]\n",
            "filesystem.write.allow: ~/",
        ),
        (
            "filesystem:\n  read:\n    allow: [~/.ssh]\n",
            "filesystem.read.allow: ~/.ssh",
        ),
        ("env:\n  allow: [AWS_*]\n", "env.allow: AWS_*"),
        (
            "env:\n  set:\n    LD_PRELOAD: /x.so\n",
            "env.set: LD_PRELOAD",
        ),
        ("extends: [net-github]\n", "extends: net-github"),
        (
            "secrets:\n  OPENAI_API_KEY:\n    hosts: [evil.example]\n",
            "secrets: OPENAI_API_KEY",
        ),
        (
            "unix_sockets: [/run/docker.sock]\n",
            "unix_sockets: /run/docker.sock",
        ),
    ] {
        std::fs::write(&proj, widening).unwrap();
        let e = preset::load("codex", &env).unwrap_err();
        assert!(matches!(e, PresetError::Widening { .. }), "{widening}: {e}");
        assert!(
            e.to_string().contains(entry) && e.to_string().contains("zerobox trust"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 1);
    }
    // trusted by hash: allowed, and labelled
    let text = "network:\n  allow: [internal.example]\n";
    std::fs::write(&proj, text).unwrap();
    sign::record_trust(
        &env,
        &std::fs::canonicalize(&proj).unwrap(),
        &sha(text.as_bytes()),
    )
    .unwrap();
    let lp = preset::load("codex", &env).unwrap();
    assert_eq!(
        lp.layers.last().unwrap().origin.to_string(),
        "project .zerobox/overrides/codex.yaml (trusted)"
    );
    assert_eq!(
        lp.layers.last().unwrap().net_allow,
        vec!["internal.example"]
    );
    // changed content: untrusted again
    std::fs::write(
        &proj,
        "network:\n  allow: [internal.example, evil.example]\n",
    )
    .unwrap();
    assert!(matches!(
        preset::load("codex", &env).unwrap_err(),
        PresetError::Widening { .. }
    ));
}

#[test]
fn override_errors_name_file_line_column() {
    let t = tempfile::tempdir().unwrap();
    let env = env_in(t.path());
    let user = env.config_dir.join("overrides/gemini.yaml");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    for (text, pos, needle) in [
        (
            "filesystem:\n  write:\n    allow: [$SECRET_DIR/x]\n",
            ":3:13:",
            "unknown variable $SECRET_DIR",
        ),
        ("network:\n  allow: 5\n", ":2:10:", ""),
        ("netwrk:\n  allow: [a.b]\n", ":1:1:", "netwrk"),
        ("version: 1.0.0\n", ":1:10:", "not allowed in an override"),
        ("env:\n  allow: [A]\n  allow: [B]\n", ":3:", "uplicate"),
    ] {
        std::fs::write(&user, text).unwrap();
        let e = preset::load("gemini", &env).unwrap_err().to_string();
        assert!(e.contains(&format!("gemini.yaml{pos}")), "{text:?}: {e}");
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn local_preset_files_need_a_signature_or_trust() {
    let t = tempfile::tempdir().unwrap();
    let env = env_in(t.path());
    let f = t.path().join("mine.yaml");
    let text = "zerobox: 1\nname: mine\nversion: 0.1.0\ncommand: true\nextends: [system]\n";
    std::fs::write(&f, text).unwrap();
    let e = preset::load(f.to_str().unwrap(), &env).unwrap_err();
    assert!(matches!(e, PresetError::Untrusted { .. }), "{e}");
    sign::record_trust(
        &env,
        &std::fs::canonicalize(&f).unwrap(),
        &sha(text.as_bytes()),
    )
    .unwrap();
    let lp = preset::load(f.to_str().unwrap(), &env).unwrap();
    assert_eq!(lp.name, "mine");
    assert_eq!(lp.layers.len(), 2);
    // a bad version is reported with its position even in a trusted file
    let bad = "zerobox: 1\nname: mine\nversion: 1.0\n";
    std::fs::write(&f, bad).unwrap();
    sign::record_trust(
        &env,
        &std::fs::canonicalize(&f).unwrap(),
        &sha(bad.as_bytes()),
    )
    .unwrap();
    let e = preset::load(f.to_str().unwrap(), &env)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mine.yaml:3:10:") && e.contains("semver"), "{e}");
}

#[test]
fn names_suggestions_and_exists() {
    let t = tempfile::tempdir().unwrap();
    let env = env_in(t.path());
    assert!(preset::exists("claude", &env));
    assert!(!preset::exists("claud", &env));
    assert!(!preset::exists("../claude", &env));
    assert_eq!(preset::suggestions("claud", &env), vec!["claude"]);
    assert_eq!(preset::suggestions("codx", &env), vec!["codex"]);
    assert!(preset::suggestions("zzzzzzzz", &env).is_empty());
    let e = preset::load("gemnii", &env).unwrap_err().to_string();
    assert!(e.contains("did you mean gemini"), "{e}");
}

// ------------------------------------------------------------------- CLI

fn args(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

struct ProcessEnv {
    _guard: std::sync::MutexGuard<'static, ()>,
    old_cwd: PathBuf,
}

impl Drop for ProcessEnv {
    fn drop(&mut self) {
        std::env::set_current_dir(&self.old_cwd).unwrap();
        for v in ["XDG_CONFIG_HOME", "XDG_CACHE_HOME", "ZEROBOX_REGISTRY"] {
            std::env::remove_var(v);
        }
    }
}

fn process_env(root: &Path) -> ProcessEnv {
    let guard = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let old_cwd = std::env::current_dir().unwrap();
    std::env::set_var("XDG_CONFIG_HOME", root.join("config"));
    std::env::set_var("XDG_CACHE_HOME", root.join("cache"));
    std::env::set_var("XDG_DATA_HOME", root.join("data"));
    std::env::remove_var("ZEROBOX_REGISTRY");
    std::fs::create_dir_all(root.join("proj/.git")).unwrap();
    std::env::set_current_dir(root.join("proj")).unwrap();
    ProcessEnv {
        _guard: guard,
        old_cwd,
    }
}

#[test]
fn cli_keygen_trust_key_sign_verify_publish_pull_pin() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let _p = process_env(root);
    let prefix = root.join("k");
    assert_eq!(
        preset::cli_main(args(&["keygen", "--out", prefix.to_str().unwrap()])),
        0
    );
    assert_eq!(
        preset::cli_main(args(&["keygen", "--out", prefix.to_str().unwrap()])),
        2,
        "no overwrite"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(root.join("k.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let f = root.join("team.yaml");
    std::fs::write(
        &f,
        "zerobox: 1\nname: team\nversion: 1.0.0\ncommand: bash\nextends: [agent-base]\n",
    )
    .unwrap();
    let key = root.join("k.key");
    assert_eq!(
        preset::cli_main(args(&[
            "sign",
            f.to_str().unwrap(),
            "--key",
            key.to_str().unwrap()
        ])),
        0
    );
    // signed by a key not trusted yet
    assert_eq!(preset::cli_main(args(&["verify", f.to_str().unwrap()])), 1);
    assert_eq!(
        preset::cli_main(args(&["trust-key", root.join("k.pub").to_str().unwrap()])),
        0
    );
    assert_eq!(preset::cli_main(args(&["verify", f.to_str().unwrap()])), 0);
    // tampered: verification failure exit 1
    std::fs::write(&f, "zerobox: 1\nname: team\nversion: 1.0.0\ncommand: sh\n").unwrap();
    assert_eq!(preset::cli_main(args(&["verify", f.to_str().unwrap()])), 1);
    std::fs::write(
        &f,
        "zerobox: 1\nname: team\nversion: 1.0.0\ncommand: bash\nextends: [agent-base]\n",
    )
    .unwrap();
    // publish into a file registry, then pull and pin from it
    let reg = root.join("reg");
    let pubargs = [
        "publish",
        f.to_str().unwrap(),
        "--registry",
        reg.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    assert_eq!(preset::cli_main(args(&pubargs)), 0);
    assert_eq!(preset::cli_main(args(&pubargs)), 2, "version exists");
    std::env::set_var("ZEROBOX_REGISTRY", format!("file://{}", reg.display()));
    assert_eq!(preset::cli_main(args(&["pull", "team"])), 0);
    assert_eq!(preset::cli_main(args(&["pull", "team@9.9.9"])), 2);
    assert_eq!(preset::cli_main(args(&["pin", "team"])), 0);
    let lock = std::fs::read_to_string(root.join("proj/.zerobox/lock.yaml")).unwrap();
    assert!(
        lock.contains("name: team") && lock.contains(&sha(&std::fs::read(&f).unwrap())),
        "{lock}"
    );
    std::env::remove_var("ZEROBOX_REGISTRY");
    assert_eq!(
        preset::cli_main(args(&[
            "pin",
            &format!("claude@{}", bundled_version("claude"))
        ])),
        0,
        "bundled pin"
    );
    assert_eq!(
        preset::cli_main(args(&["pin", "claude@0.0.1"])),
        2,
        "no such bundled version"
    );
    let lock = std::fs::read_to_string(root.join("proj/.zerobox/lock.yaml")).unwrap();
    assert!(
        lock.contains("name: team") && lock.contains("registry: \"bundled\""),
        "{lock}"
    );
    let env = PresetEnv::from_system(&root.join("proj"), false).unwrap();
    assert_eq!(
        preset::load("claude", &env).unwrap().version.to_string(),
        bundled_version("claude")
    );
    // a teammate edits the lock file: untrusted until `zerobox trust`
    let lock_path = root.join("proj/.zerobox/lock.yaml");
    let edited =
        std::fs::read_to_string(&lock_path)
            .unwrap()
            .replacen("# zerobox", "# edited zerobox", 1);
    std::fs::write(&lock_path, edited).unwrap();
    assert!(matches!(
        preset::load("claude", &env).unwrap_err(),
        PresetError::Untrusted { .. }
    ));
    assert_eq!(
        preset::trust_main(args(&[lock_path.to_str().unwrap(), "--yes"])),
        0
    );
    assert!(preset::load("claude", &env).is_ok());
    // publish --refresh bumps the serial
    assert_eq!(
        preset::cli_main(args(&[
            "publish",
            "--refresh",
            "--registry",
            reg.to_str().unwrap(),
            "--key",
            key.to_str().unwrap()
        ])),
        0
    );
    assert!(std::fs::read_to_string(reg.join("index.yaml"))
        .unwrap()
        .contains("serial: 2"));
}

#[test]
fn cli_usage_schema_show_list_and_trust() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let _p = process_env(root);
    assert_eq!(preset::cli_main(args(&[])), 2);
    assert_eq!(preset::cli_main(args(&["frobnicate"])), 2);
    assert_eq!(preset::cli_main(args(&["show"])), 2);
    assert_eq!(preset::cli_main(args(&["show", "claude", "--bogus"])), 2);
    assert_eq!(preset::cli_main(args(&["show", "nope"])), 2);
    let unsigned = root.join("unsigned.yaml");
    std::fs::write(&unsigned, "zerobox: 1\nname: x\nversion: 1.0.0\n").unwrap();
    assert_eq!(
        preset::cli_main(args(&["show", unsigned.to_str().unwrap()])),
        1,
        "unsigned file: trust failure"
    );
    assert_eq!(preset::cli_main(args(&["show", "/nonexistent/x.yaml"])), 2);
    assert_eq!(preset::cli_main(args(&["show", "claude"])), 0);
    assert_eq!(preset::cli_main(args(&["show", "claude", "--resolved"])), 0);
    assert_eq!(preset::cli_main(args(&["list"])), 0);
    assert_eq!(preset::cli_main(args(&["schema"])), 0);
    assert_eq!(preset::cli_main(args(&["trust-key", "not-a-key"])), 2);
    // trust: nothing to trust, then a project override
    assert_eq!(preset::trust_main(args(&["--yes"])), 2);
    let ov = root.join("proj/.zerobox/overrides/claude.yaml");
    std::fs::create_dir_all(ov.parent().unwrap()).unwrap();
    std::fs::write(&ov, "network:\n  allow: [intranet.example]\n").unwrap();
    let env = PresetEnv::from_system(&root.join("proj/sub"), false).unwrap();
    assert_eq!(env.project_dir, root.join("proj"));
    assert!(preset::load("claude", &env).is_err());
    assert_eq!(preset::trust_main(args(&["--yes"])), 0);
    assert!(preset::load("claude", &env).is_ok());
    // invalid override cannot be trusted
    std::fs::write(&ov, "network:\n  allow: [Bad Host]\n").unwrap();
    assert_eq!(
        preset::trust_main(args(&[ov.to_str().unwrap(), "--yes"])),
        2
    );
}

#[test]
fn schema_matches_parser() {
    let schema = preset::json_schema();
    let props = schema["properties"].as_object().unwrap();
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort();
    let mut expected = preset::schema::TOP_LEVEL_KEYS.to_vec();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(schema["additionalProperties"], false);
    for sub in ["filesystem", "network", "env"] {
        assert_eq!(props[sub]["additionalProperties"], false, "{sub}");
    }
    // every bundled preset only uses keys the schema names
    for e in std::fs::read_dir(repo().join("presets")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let v: serde_json::Value =
                serde_saphyr::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            for k in v.as_object().unwrap().keys() {
                assert!(props.contains_key(k), "{}: {k}", p.display());
            }
        }
    }
}
