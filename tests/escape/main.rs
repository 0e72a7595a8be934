//! Adversarial escape tests: each test runs a real attack inside zerobox and
//! asserts the safe outcome (the precise errno or output) and that the host
//! is unchanged. Runs as root and as an unprivileged user; see
//! docs/escape-tests.md for the table of cases.
//!
//! A case that finds a real escape stays in the suite, marked
//! `#[ignore = "ESCAPE: …"]`, so the fix can be checked with `--ignored`.

#[path = "../common/mod.rs"]
mod common;
mod util;

mod agent_state;
mod cleanup;
mod fallback_net;
mod fs_read;
mod fs_write;
mod held;
mod kernel;
mod limits;
mod mounts;
mod namespaces;
mod processes;
mod sockets;
mod terminal;
