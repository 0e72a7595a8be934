//! zerobox: run any command, or a known AI agent, in an OS-native sandbox
//! that denies by default. See `docs/architecture.md` for the map.
//!
//! Modules, in the order data flows through a run:
//! `cli` (flags → `PolicyLayer`) → `policy` (merge → `Policy`) →
//! `launcher` (one run) → `sandbox` (enforcement) ; `proxy` (network and
//! secrets) ; `preset` (signed YAML policy sources).
// `unsafe_code` is denied for the whole package in Cargo.toml's
// `[lints]`; `sandbox::linux` alone allows it.
// No panics on bad input: the library unwraps only where an invariant is
// proved next to the `#[allow]` (tests may; see clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]
// Everything zerobox prints goes through `output` (`outln!`, `errln!`,
// `warn!`): `println!`/`eprintln!` panic on a closed stream.
#![deny(clippy::print_stdout, clippy::print_stderr)]

// The public surface is what the binary, the integration tests and the
// benches use: `cli::main`, the policy types, presets, the proxy, and two
// probes of `sandbox::linux`. Everything else is `pub(crate)`.
pub mod cli;
pub(crate) mod dirs;
pub(crate) mod exit;
pub(crate) mod launcher;
pub(crate) mod output;
pub mod policy;
pub mod preset;
pub(crate) mod private_file;
pub mod profile;
pub(crate) mod protect;
pub mod proxy;
pub mod sandbox;
