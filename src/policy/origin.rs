//! Where a rule came from: [`Origin`], carried by every [`PolicyLayer`]
//! and [`FsRule`] so `explain` can name it and the launcher can decide
//! what a source may ask for (only a preset's write grants under HOME get
//! their state directory created; only the CLI's missing write paths are
//! warned about).
//!
//! It is a type, not a label, because decisions branch on it: a label
//! compared as text lets a preset named `zerobox…` pass for zerobox's own
//! layer. Its `Display` (and the JSON `explain --json` prints) is the
//! label a user reads; nothing parses it back.
//!
//! [`PolicyLayer`]: super::PolicyLayer
//! [`FsRule`]: super::FsRule

use std::fmt;

/// The source of a policy layer or rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in deny list (`policy::defaults`).
    Defaults,
    /// zerobox's own config, cache and data directories (never writable).
    OwnState,
    /// The command line's flags (always merged last).
    Cli,
    /// A signed preset, bundled, cached, from a registry or `--profile FILE`.
    Preset { name: String, version: String },
    /// The user's own override file (`~/.config/zerobox/overrides/NAME.yaml`),
    /// as a path for display (`~` for HOME).
    UserOverride { path: String },
    /// A project override (`.zerobox/overrides/NAME.yaml`, relative to the
    /// project); `trusted` when its hash was trusted (it may widen).
    ProjectOverride { path: String, trusted: bool },
    /// Write denies found on disk (git metadata, agent state: `protect`).
    Protect,
    /// A secret's source file, denied for reading inside.
    SecretFile { secret: String },
    /// A rule the sandbox adds to every policy in a mode.
    Implicit(Implicit),
    /// An answer given during `--build-profile` (this session's approvals).
    BuildProfile,
    /// The profile FILE being built or extended by `--build-profile`.
    Profile,
    /// A top-level directory hidden because the layer `by` (a complete
    /// profile, `read_default: deny`) denies reads by default.
    ReadDefaultDeny { by: Box<Origin> },
    /// Unit tests' layers.
    #[cfg(test)]
    Test,
}

/// The sandbox's own rules (see `sandbox::implicit_rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implicit {
    /// `/dev/null`, the pty devices, `/dev/shm`…
    Devices,
    /// The private temp dir (mounts must not read it as a grant on host
    /// paths below `/tmp`).
    PrivateTmp,
    /// The working directory, readable.
    Cwd,
    /// Host unix sockets hidden unless allowed.
    HostUnixSockets,
}

impl Origin {
    /// A preset's layer, `NAME@VERSION`.
    pub fn preset(name: &str, version: &impl fmt::Display) -> Self {
        Origin::Preset {
            name: name.to_string(),
            version: version.to_string(),
        }
    }

    /// Did this rule come from a preset or an override of one (rather than
    /// the user's flags, the defaults or zerobox itself)?
    pub fn is_preset(&self) -> bool {
        matches!(
            self,
            Origin::Preset { .. } | Origin::UserOverride { .. } | Origin::ProjectOverride { .. }
        )
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => f.write_str("defaults"),
            Origin::OwnState => f.write_str("zerobox's own state"),
            Origin::Cli => f.write_str("cli"),
            Origin::Preset { name, version } => write!(f, "{name}@{version}"),
            Origin::UserOverride { path } => write!(f, "user override {path}"),
            Origin::ProjectOverride { path, trusted } => {
                write!(f, "project {path}")?;
                if *trusted {
                    f.write_str(" (trusted)")?;
                }
                Ok(())
            }
            Origin::Protect => f.write_str("protect (found on disk)"),
            Origin::SecretFile { secret } => write!(f, "secret {secret}"),
            Origin::Implicit(Implicit::Devices) => f.write_str("devices"),
            Origin::Implicit(Implicit::PrivateTmp) => f.write_str("private temp dir"),
            Origin::Implicit(Implicit::Cwd) => f.write_str("cwd"),
            Origin::Implicit(Implicit::HostUnixSockets) => f.write_str("host unix sockets"),
            Origin::BuildProfile => f.write_str("build-profile"),
            Origin::Profile => f.write_str("profile"),
            Origin::ReadDefaultDeny { by } => write!(f, "{by} (reads denied by default)"),
            #[cfg(test)]
            Origin::Test => f.write_str("t"),
        }
    }
}

/// As its label (the stable `origin` field of `explain --json`).
impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_what_explain_printed_before() {
        for (o, label) in [
            (Origin::Defaults, "defaults"),
            (Origin::OwnState, "zerobox's own state"),
            (Origin::Cli, "cli"),
            (Origin::preset("claude", &"1.2.0"), "claude@1.2.0"),
            (
                Origin::ProjectOverride {
                    path: ".zerobox/overrides/x.yaml".into(),
                    trusted: true,
                },
                "project .zerobox/overrides/x.yaml (trusted)",
            ),
            (Origin::Protect, "protect (found on disk)"),
            (Origin::Implicit(Implicit::PrivateTmp), "private temp dir"),
        ] {
            assert_eq!(o.to_string(), label);
        }
    }

    #[test]
    fn only_presets_and_their_overrides_are_presets() {
        assert!(Origin::preset("zerobox-tool", &"1.0.0").is_preset());
        assert!(Origin::UserOverride { path: "~/x".into() }.is_preset());
        for o in [
            Origin::Cli,
            Origin::Defaults,
            Origin::OwnState,
            Origin::Protect,
        ] {
            assert!(!o.is_preset(), "{o}");
        }
    }
}
