//! The real binary: `zerobox preset …` and `zerobox trust …`. Skipped (with a
//! note) until the CLI routes `preset` to `zerobox::preset::cli_main`.

use std::path::Path;
use std::process::{Command, Output};

fn zerobox(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zerobox"))
        .args(args)
        .current_dir(root.join("proj"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env_remove("ZEROBOX_REGISTRY")
        .env_remove("ZEROBOX_REGISTRY_CA")
        .output()
        .unwrap()
}

fn wired(root: &Path) -> bool {
    let out = zerobox(root, &["preset", "list"]);
    let ok = out.status.success() && String::from_utf8_lossy(&out.stdout).contains("claude");
    if !ok {
        eprintln!(
            "note: `zerobox preset` is not wired to preset::cli_main yet; skipping binary tests"
        );
    }
    ok
}

#[test]
fn binary_preset_and_trust_commands() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    std::fs::create_dir_all(root.join("proj/.git")).unwrap();
    if !wired(root) {
        return;
    }
    let out = zerobox(root, &["preset", "schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema, zerobox::preset::json_schema());

    let out = zerobox(root, &["preset", "show", "claude", "--resolved"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("## claude@1.0.0") && text.contains("## protect-shell@1.0.0"),
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
    let out = zerobox(root, &["trust", ".zerobox/overrides/claude.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = zerobox(root, &["preset", "show", "claude", "--resolved"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("(trusted)"));
}
