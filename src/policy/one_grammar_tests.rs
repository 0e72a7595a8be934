//! The command line and a preset must read every value alike: the same
//! inputs go through both paths (flags → `SandboxArgs::to_layer`, YAML →
//! `parse_override` → `to_layer`, then `policy::resolve` for both) and
//! both accept or both refuse. Each row is a value that once split them
//! or sits on a grammar's edge.

use std::ffi::OsString;

use clap::Parser as _;

use super::{resolve, Origin, PathContext, Policy, PolicyLayer};

/// Where a value goes: the flag and the YAML that carry it.
#[derive(Clone, Copy, Debug)]
enum Slot {
    NetAllow,
    NetDeny,
    SecretHost,
    EnvAllow,
    SecretName,
    ReadAllow,
    WriteDeny,
}

impl Slot {
    fn flags(self, v: &str) -> Vec<String> {
        match self {
            Slot::NetAllow => vec![format!("--allow-net={v}")],
            Slot::NetDeny => vec![format!("--deny-net={v}")],
            Slot::SecretHost => vec!["--secret=K".into(), format!("--secret-host=K={v}")],
            Slot::EnvAllow => vec![format!("--allow-env={v}")],
            Slot::SecretName => vec![
                format!("--secret={v}"),
                format!("--secret-host={v}=a.example"),
            ],
            Slot::ReadAllow => vec![format!("--allow-read={v}")],
            Slot::WriteDeny => vec![format!("--deny-write={v}")],
        }
    }

    fn yaml(self, v: &str) -> String {
        // A JSON string is a YAML double-quoted scalar.
        let q = serde_json::to_string(v).expect("a string serialises");
        match self {
            Slot::NetAllow => format!("network:\n  allow: [{q}]\n"),
            Slot::NetDeny => format!("network:\n  deny: [{q}]\n"),
            Slot::SecretHost => format!("secrets:\n  K:\n    hosts: [{q}]\n"),
            Slot::EnvAllow => format!("env:\n  allow: [{q}]\n"),
            Slot::SecretName => format!("secrets:\n  {q}:\n    hosts: [a.example]\n"),
            Slot::ReadAllow => format!("filesystem:\n  read:\n    allow: [{q}]\n"),
            Slot::WriteDeny => format!("filesystem:\n  write:\n    deny: [{q}]\n"),
        }
    }
}

fn ctx() -> PathContext {
    PathContext {
        home: "/nonexistent-zb/home".into(),
        cwd: "/nonexistent-zb/home/proj".into(),
        tmpdir: "/tmp".into(),
    }
}

fn via_cli(slot: Slot, v: &str) -> Result<Policy, String> {
    let argv: Vec<OsString> = std::iter::once("zerobox".to_string())
        .chain(slot.flags(v))
        .map(OsString::from)
        .collect();
    let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let layer = cli.sandbox.to_layer().map_err(|e| e.to_string())?;
    resolve(&[layer], &ctx(), &[]).map_err(|e| e.to_string())
}

fn via_preset(slot: Slot, v: &str) -> Result<Policy, String> {
    let doc = crate::preset::schema::parse_override(slot.yaml(v).as_bytes(), "o.yaml")
        .map_err(|e| e.to_string())?;
    let layer: PolicyLayer = doc.to_layer(Origin::Test);
    resolve(&[layer], &ctx(), &[]).map_err(|e| e.to_string())
}

#[test]
fn the_cli_and_a_preset_read_every_value_alike() {
    use Slot::*;
    // (slot, value, accepted)
    let table: &[(Slot, &str, bool)] = &[
        (NetAllow, "example.com", true),
        (NetAllow, "example.com:8443", true),
        (NetAllow, "example.com:*", true),
        (NetAllow, "*.example.com", true),
        (NetAllow, "10.0.0.0/8:*", true),
        (NetAllow, "10.0.0.1", true),
        (NetAllow, "[::1]:8080", true),
        (NetAllow, "fc00::/7", true),
        (NetAllow, "Example.COM", true),
        (NetAllow, "example.com.", true),
        (NetAllow, "a_b.example.com", true),
        (NetAllow, "bücher.example", true),
        (NetAllow, "*", true),
        (NetAllow, "*.com", false),
        (NetAllow, "*.*.example.com", false),
        (NetAllow, "ex*ample.com", false),
        (NetAllow, "example.com:0", false),
        (NetAllow, "example.com:65536", false),
        (NetAllow, "exa mple.com", false),
        (NetAllow, "https://example.com", false),
        (NetAllow, "[::1", false),
        (NetAllow, "10.0.0.0/33", false),
        (NetDeny, "evil.example", true),
        (NetDeny, "10.0.0.0/8", true),
        (NetDeny, "*", false),
        (NetDeny, "*.com", false),
        (SecretHost, "api.example.com", true),
        (SecretHost, "10.0.0.1:8080", true),
        (SecretHost, "*", false),
        (SecretHost, "*.com", false),
        (SecretHost, "api.example.com:0", false),
        (EnvAllow, "FOO", true),
        (EnvAllow, "FOO_*", true),
        (EnvAllow, "*", false),
        (EnvAllow, "1FOO", false),
        (EnvAllow, "FO-O", false),
        (EnvAllow, "F*O", false),
        (SecretName, "API_KEY", true),
        (SecretName, "API-KEY", false),
        (SecretName, "9KEY", false),
        (ReadAllow, "/etc/hosts", true),
        (ReadAllow, "~/x", true),
        (ReadAllow, "$HOME/x", true),
        (ReadAllow, "${HOME}/x", true),
        (ReadAllow, "$CWD/x", true),
        (ReadAllow, "$PWD/x", false),
        (ReadAllow, "${PWD}", false),
        (ReadAllow, "$TMPDIR/x", true),
        (ReadAllow, "./x", true),
        (ReadAllow, ".", true),
        (ReadAllow, "src", true),
        (ReadAllow, "~user/x", false),
        (ReadAllow, "$FOO/x", false),
        (ReadAllow, "/a/$HOME", false),
        (ReadAllow, "/a\nb", false),
        (ReadAllow, "/a\u{1b}b", false),
        (WriteDeny, "~/.ssh", true),
        (WriteDeny, "~/.ssh/*", false),
    ];
    let mut wrong = Vec::new();
    for &(slot, v, accepted) in table {
        let (cli, preset) = (via_cli(slot, v), via_preset(slot, v));
        if cli.is_ok() != accepted || preset.is_ok() != accepted {
            wrong.push(format!(
                "{slot:?} {v:?}: want {}, cli {cli:?}, preset {preset:?}",
                if accepted { "accepted" } else { "refused" },
                cli = cli.map(|_| "ok"),
                preset = preset.map(|_| "ok"),
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The one intended difference: a cleartext binding (`http://HOST`) for a
/// secret is the user's own choice on the command line; a preset or an
/// override (which a project can ship) cannot ask for it.
#[test]
fn a_cleartext_secret_binding_is_the_command_lines_only() {
    for v in ["http://127.0.0.1:8080", "https://api.example.com/"] {
        assert!(via_cli(Slot::SecretHost, v).is_ok(), "{v}");
        assert!(via_preset(Slot::SecretHost, v).is_err(), "{v}");
    }
}

/// The patterns both paths produce are the same parsed values.
#[test]
fn both_paths_give_the_same_patterns() {
    for v in [
        "10.0.0.0/8:*",
        "Example.COM",
        "bücher.example",
        "*.example.com:443",
        "[::1]:8080",
    ] {
        let cli = via_cli(Slot::NetAllow, v).expect("cli").network;
        let preset = via_preset(Slot::NetAllow, v).expect("preset").network;
        let kinds = |n: &super::NetworkPolicy| {
            n.allow
                .iter()
                .map(|p| (p.kind.clone(), p.ports))
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&cli), kinds(&preset), "{v}");
    }
}
