//! zerobox: run any command, or a known AI agent, in an OS-native sandbox
//! that denies by default. See `docs/architecture.md` for the map.
//!
//! Modules, in the order data flows through a run:
//! `cli` (flags → `PolicyLayer`) → `policy` (merge → `Policy`) →
//! `launcher` (one run) → `sandbox` (enforcement) ; `proxy` (network and
//! secrets) ; `preset` (signed YAML policy sources).
#![deny(unsafe_code)]
// Everything zerobox prints goes through `output` (`outln!`, `errln!`,
// `warn!`): `println!`/`eprintln!` panic on a closed stream.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod dirs;
pub mod exit;
pub mod launcher;
pub mod output;
pub mod policy;
pub mod preset;
pub mod profile;
pub mod protect;
pub mod proxy;
pub mod sandbox;
