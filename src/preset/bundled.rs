//! Presets embedded in the binary at build time (`presets/*.yaml` and their
//! `.minisig`). They are verified against the embedded key like any other
//! source before they are parsed.

/// One embedded preset: its file bytes and signature.
pub struct Bundled {
    pub name: &'static str,
    pub yaml: &'static [u8],
    pub sig: &'static [u8],
}

macro_rules! bundled {
    ($name:literal) => {
        Bundled {
            name: $name,
            yaml: include_bytes!(concat!("../../presets/", $name, ".yaml")),
            sig: include_bytes!(concat!("../../presets/", $name, ".yaml.minisig")),
        }
    };
}

/// Every bundled preset (agents first, then building blocks).
pub const BUNDLED: &[Bundled] = &[
    bundled!("claude"),
    bundled!("codex"),
    bundled!("gemini"),
    bundled!("opencode"),
    bundled!("openclaw"),
    bundled!("agent-base"),
    bundled!("system"),
    bundled!("deny-credentials"),
    bundled!("deny-history"),
    bundled!("deny-browsers"),
    bundled!("protect-shell"),
    bundled!("protect-agents"),
    bundled!("toolchain-node"),
    bundled!("toolchain-python"),
    bundled!("toolchain-rust"),
    bundled!("toolchain-go"),
    bundled!("net-package-registries"),
    bundled!("net-github"),
];

pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}
