//! Protections derived from what is on disk at the start of a run, for
//! files the host runs or trusts later: git metadata ([`git`]) and the
//! agents' own state files ([`agent_state`]).
//!
//! Presets protect fixed names (`protect-shell`, `protect-agents`). Some
//! of what must be protected is only known by looking: where a worktree's
//! `.git` file points, which linked worktrees and submodules a repository
//! has, which `core.hooksPath` its config names. [`Protection::prepare`]
//! looks (before the sandbox exists, reading only, every input bounded and
//! opened without following a final symlink) and returns one extra
//! [`PolicyLayer`] of write denies for the launcher to merge; after the run
//! [`Protection::after_run`] checks what the command could not be stopped
//! from creating (names that did not exist yet) and reports, on stderr,
//! what it reverted or found.
//!
//! Everything read here comes from places the command could write in an
//! earlier run: it can only ever add write denies (narrow the policy),
//! never widen it, and a file that cannot be checked makes the whole
//! directory it belongs to read-only (fail closed).
//!
//! Knows nothing about how denies are enforced (see `sandbox`).

pub mod agent_state;
pub mod git;

use std::path::PathBuf;

use crate::policy::{PathContext, PolicyLayer};

/// The origin label of the layer this module adds (`explain` shows it).
pub const ORIGIN: &str = "protect (found on disk)";

/// What [`Protection::prepare`] found, carried to [`Protection::after_run`].
#[derive(Debug, Default)]
pub struct Protection {
    layer: PolicyLayer,
    git: git::Guard,
    agents: agent_state::Guard,
}

impl Protection {
    /// Look at the places `layers` make writable (the project, granted
    /// dirs) and the agents' state files; print warnings for anything that
    /// could not be checked (and is therefore denied whole).
    pub fn prepare(layers: &[PolicyLayer], ctx: &PathContext) -> Protection {
        let roots = writable_roots(layers, ctx);
        let (git_rules, git) = git::Guard::prepare(&roots, &ctx.cwd, &ctx.home);
        for w in git.warnings() {
            eprintln!("zerobox: warning: {w}");
        }
        let (agent_rules, agents) = agent_state::Guard::prepare(&ctx.home, &ctx.cwd);
        for w in agents.warnings() {
            eprintln!("zerobox: warning: {w}");
        }
        let mut layer = PolicyLayer::new(ORIGIN);
        layer.write_deny = git_rules;
        layer.write_deny.extend(agent_rules);
        Protection { layer, git, agents }
    }

    /// The extra write denies (merge after every other layer: a deny there
    /// cannot be undone by a later grant at a shallower path).
    pub fn layer(&self) -> PolicyLayer {
        self.layer.clone()
    }

    /// After the command (and everything it started) ended: revert and
    /// report. Prints one line per finding on stderr.
    pub fn after_run(&self) {
        for line in self.git.after_run() {
            eprintln!("zerobox: {line}");
        }
        for line in self.agents.after_run() {
            eprintln!("zerobox: {line}");
        }
    }
}

/// Every path some layer grants for writing (expanded as the policy will
/// expand it), except zerobox's own labels. Unexpandable values are left to
/// `policy::resolve`, which reports them.
fn writable_roots(layers: &[PolicyLayer], ctx: &PathContext) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for layer in layers {
        for value in &layer.write_allow {
            if let Ok(paths) = ctx.expand(value, &layer.origin, false) {
                roots.extend(paths);
            }
        }
    }
    roots.sort();
    roots.dedup();
    roots
}
