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
pub mod replaced;

use std::path::PathBuf;

use crate::policy::{Origin, PathContext, PolicyLayer};

/// The origin label of the layer this module adds (`explain` shows it).
pub const ORIGIN: Origin = Origin::Protect;

/// What [`Protection::prepare`] found, carried to [`Protection::after_run`].
#[derive(Debug)]
pub struct Protection {
    layer: PolicyLayer,
    git: git::Guard,
    agents: agent_state::Guard,
    /// Codex's and opencode's config files.
    configs: agent_state::ConfigGuard,
    /// Symlinks on the way to a write-denied path, inside a writable place
    /// (`.claude -> ../shared-claude`): the deny holds at the target, and
    /// the link itself must be the same after the run.
    links: Vec<(PathBuf, PathBuf)>,
    /// This run's crash journal of the agents' state files
    /// (`agent_state::Journal`): removed once the after-run check holds,
    /// or when the run goes on without a sandbox ([`Self::unwatched`]).
    journal: std::cell::RefCell<Option<agent_state::Journal>>,
    /// [`Self::before_run`] was called: the command may have run, so a
    /// journal not removed by [`Self::after_run`] stays for the next run.
    started: std::cell::Cell<bool>,
    /// Held (shared) until this value is dropped, after [`Self::after_run`].
    _state_lock: Option<std::fs::File>,
}

/// `agent-state.lock` in zerobox's data dir (denied inside, so no sandbox
/// can hold it): every run holds a shared `flock` on it from its snapshot
/// of the agents' state files until its after-run check is done. A run
/// whose snapshot is taken under the exclusive lock knows no other
/// sandbox could write those files meanwhile; one that cannot get it
/// must not treat what it reads as a baseline (another run's unchecked
/// plant, which its own revert would put back after the other run was
/// reverted).
struct StateLock;

impl StateLock {
    /// The lock (exclusive) and `None` when this run is alone; else why
    /// not (another run is live, or the lock cannot be made: fail closed).
    fn take() -> (Option<std::fs::File>, Option<String>) {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let Some(dir) = crate::dirs::zerobox_dir(crate::dirs::Kind::Data) else {
            return (
                None,
                Some("no data directory for the agent-state lock".into()),
            );
        };
        let opened = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(dir.join("agent-state.lock"))
            });
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                return (
                    None,
                    Some(format!(
                        "cannot open {} ({e})",
                        dir.join("agent-state.lock").display()
                    )),
                )
            }
        };
        match file.try_lock() {
            Ok(()) => (Some(file), None),
            Err(std::fs::TryLockError::WouldBlock) => (
                Some(file),
                Some("another zerobox run is live in this HOME".into()),
            ),
            Err(std::fs::TryLockError::Error(e)) => (
                None,
                Some(format!(
                    "cannot lock {} ({e})",
                    dir.join("agent-state.lock").display()
                )),
            ),
        }
    }

    /// Hold `file` shared from now on (converting the exclusive lock, or
    /// queueing behind a run that holds it exclusive for its snapshot).
    fn share(file: std::fs::File) -> Option<std::fs::File> {
        match file.lock_shared() {
            Ok(()) => Some(file),
            Err(e) => {
                // Rare (ENOLCK); later runs cannot see this one.
                crate::warn!(
                    "cannot hold the agent-state lock ({e}): do not start another zerobox run in this HOME until this one ends"
                );
                None
            }
        }
    }
}

impl Protection {
    /// Look at the places `layers` make writable (the project, granted
    /// dirs) and the agents' state files; print warnings for anything that
    /// could not be checked (and is therefore denied whole).
    ///
    /// `for_run`: a real run takes the agent-state lock (see [`StateLock`]);
    /// `explain` takes none and writes nothing (it reads the same files,
    /// so it shows the same denies as a run that is alone).
    pub fn prepare(layers: &[PolicyLayer], ctx: &PathContext, for_run: bool) -> Protection {
        let roots = writable_roots(layers, ctx);
        let (git_rules, git) = git::Guard::prepare(&roots, &ctx.cwd, &ctx.home);
        for w in git.warnings() {
            crate::warn!("{w}");
        }
        let (state_lock, mut alone) = if for_run {
            StateLock::take()
        } else {
            (None, None)
        };
        if for_run && alone.is_none() {
            // Alone: no other run is live, so a journal left behind is a
            // run that was killed before its after-run check. Its check
            // comes first (its files are no baseline until then).
            let found = agent_state::recover(&ctx.home);
            for line in &found.lines {
                crate::errln!("zerobox: {}", crate::output::one_line(line));
            }
            for why in &found.blocked {
                crate::warn!(
                    "{}: the agents' config files are read-only for this run",
                    crate::output::one_line(why)
                );
            }
            if !found.blocked.is_empty() {
                alone = Some("an earlier run's journal could not be used (see above)".into());
            }
        }
        let claude_sync = claude_config_in_dot_claude(layers, ctx);
        let guards = |read_only: bool| match read_only {
            false => (
                agent_state::Guard::prepare(&ctx.home, &ctx.cwd, claude_sync),
                agent_state::ConfigGuard::prepare(&ctx.home, &ctx.cwd, &roots),
            ),
            true => (
                agent_state::Guard::prepare_read_only(&ctx.home, &ctx.cwd),
                agent_state::ConfigGuard::prepare_read_only(&ctx.home, &ctx.cwd, &roots),
            ),
        };
        let ((mut agent_rules, mut agents), (mut config_rules, mut configs)) =
            guards(alone.is_some());
        // The crash journal, before the command starts: without it a
        // killed zerobox would leave the command's changes as the next
        // run's baseline, so the files are read-only for a run that
        // cannot write it (fail closed).
        let mut journal = None;
        if for_run {
            match agent_state::Journal::write(&ctx.home, &agents, &configs) {
                Ok(j) => journal = Some(j),
                Err(e) if alone.is_none() => {
                    alone = Some(format!("cannot write the agent-state journal ({e})"));
                    ((agent_rules, agents), (config_rules, configs)) = guards(true);
                    // Only new Codex profiles are checked in a read-only
                    // run; best effort.
                    journal = agent_state::Journal::write(&ctx.home, &agents, &configs).ok();
                }
                Err(_) => {}
            }
        }
        for w in agents.warnings() {
            crate::warn!("{w}");
        }
        if let Some(why) = &alone {
            // Said only when the run could have written one of them.
            let writable =
                |r: &String| roots.iter().any(|w| std::path::Path::new(r).starts_with(w));
            if agent_rules.iter().chain(&config_rules).any(writable) {
                crate::warn!(
                    "{why}: the agents' config files (Claude Code, Codex, Gemini CLI, opencode) are read-only for this run, so answers given in it are not saved"
                );
            }
        }
        // Snapshots taken: from here on, only shared (other runs may start,
        // and see this one live).
        let state_lock = state_lock.and_then(StateLock::share);
        for w in configs.warnings() {
            crate::warn!("{w}");
        }
        let mut layer = PolicyLayer::new(ORIGIN);
        layer.write_deny = git_rules;
        layer.write_deny.extend(agent_rules);
        layer.write_deny.extend(config_rules);
        let links = denied_links(layers, ctx, &roots);
        Protection {
            layer,
            git,
            agents,
            configs,
            links,
            journal: std::cell::RefCell::new(journal),
            started: std::cell::Cell::new(false),
            _state_lock: state_lock,
        }
    }

    /// The extra write denies (merge after every other layer: a deny there
    /// cannot be undone by a later grant at a shallower path).
    pub fn layer(&self) -> PolicyLayer {
        self.layer.clone()
    }

    /// Just before the command starts (a run, not `explain`): what must be
    /// on disk for it (Claude Code's config copy). Prints a warning line
    /// for what could not be done.
    pub fn before_run(&self) {
        self.started.set(true);
        if let Some(line) = self.agents.before_run() {
            crate::warn!("{}", crate::output::one_line(&line));
        }
    }

    /// The command runs without a sandbox (`--no-sandbox`, which execs it
    /// in zerobox's place): nothing will be checked after it, and its
    /// changes are the user's, so no later run may revert them.
    pub fn unwatched(&self) {
        if let Some(j) = self.journal.borrow_mut().take() {
            j.remove();
        }
    }

    /// After the command (and everything it started) ended: revert and
    /// report. Prints one line per finding on stderr.
    pub fn after_run(&self) {
        for line in self.git.after_run() {
            crate::errln!("zerobox: {}", crate::output::one_line(&line));
        }
        for line in self.agents.after_run() {
            crate::errln!("zerobox: {}", crate::output::one_line(&line));
        }
        for line in self.configs.after_run() {
            crate::errln!("zerobox: {}", crate::output::one_line(&line));
        }
        // The journal goes once a second pass finds nothing left (every
        // revert held); else the next run checks again.
        if self.agents.after_run().is_empty() && self.configs.after_run().is_empty() {
            if let Some(j) = self.journal.borrow_mut().take() {
                j.remove();
            }
        }
        for (path, target) in &self.links {
            if let Some(line) = git::restore_link(path, target, "on the way to a protected path") {
                crate::errln!("zerobox: {}", crate::output::one_line(&line));
            }
        }
    }
}

impl Drop for Protection {
    /// A run that ends before its command started (a setup error) leaves
    /// nothing to check: its journal goes.
    fn drop(&mut self) {
        if !self.started.get() {
            self.unwatched();
        }
    }
}

/// Does the run set `CLAUDE_CONFIG_DIR` to `~/.claude` (the claude preset
/// does), while a plain `claude` outside uses `~/.claude.json` (the user
/// has no `CLAUDE_CONFIG_DIR` of their own)? Then Claude Code's global
/// config inside is a copy kept in step with `~/.claude.json`
/// (`agent_state`, `ClaudeSync`).
fn claude_config_in_dot_claude(layers: &[PolicyLayer], ctx: &PathContext) -> bool {
    let set = layers.iter().rev().find_map(|l| {
        l.env_set
            .iter()
            .rev()
            .find(|(k, _)| k == "CLAUDE_CONFIG_DIR")
            .map(|(_, v)| crate::policy::expand_env_value(v, &ctx.home))
    });
    let theirs = std::env::var_os("CLAUDE_CONFIG_DIR").is_some_and(|v| !v.is_empty());
    set.is_some_and(|v| std::path::Path::new(&v) == ctx.home.join(".claude")) && !theirs
}

/// Every path some layer grants for writing (expanded as the policy will
/// expand it), except zerobox's own labels. Unexpandable values are left to
/// `policy::resolve`, which reports them.
fn writable_roots(layers: &[PolicyLayer], ctx: &PathContext) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for layer in layers {
        for value in &layer.write_allow {
            if let Ok(paths) = ctx.expand(value, &layer.origin.to_string(), false) {
                roots.extend(paths.into_iter().map(|e| e.path));
            }
        }
    }
    roots.sort();
    roots.dedup();
    roots
}

/// Symlinks the command could replace (inside a writable root) on the way
/// to any write-denied path of `layers`, with their targets. Rule paths
/// are resolved through links (a deny protects the target); the link
/// itself lives in a writable directory, so it is checked after the run.
fn denied_links(
    layers: &[PolicyLayer],
    ctx: &PathContext,
    roots: &[PathBuf],
) -> Vec<(PathBuf, PathBuf)> {
    use crate::policy::paths::lexical_normalise;
    let mut out = std::collections::BTreeSet::new();
    for layer in layers {
        for value in &layer.write_deny {
            // As written, not canonicalised: `~/…`, absolute or relative.
            let path = match value.strip_prefix("~/") {
                Some(rest) => ctx.home.join(rest),
                None if value.starts_with('$') || value.starts_with('~') => continue,
                None => ctx.cwd.join(value),
            };
            let path = lexical_normalise(&path);
            let mut here = PathBuf::from("/");
            for part in path.iter().skip(1) {
                here.push(part);
                let inside = roots.iter().any(|r| here.starts_with(r) && here != *r);
                if !inside {
                    continue;
                }
                match std::fs::read_link(&here) {
                    Ok(target) => {
                        out.insert((here.clone(), target));
                        break; // what lies beyond is the target's
                    }
                    Err(_) if std::fs::symlink_metadata(&here).is_err() => break,
                    Err(_) => {}
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Move `path` (something the command left where the host would read it)
/// aside: to `NAME.zerobox-quarantined`, or, once the command has taken
/// that name, to one with a random suffix it cannot guess (it can make any
/// number of names beforehand; running out must never leave the plant in
/// place). Never over an existing entry. If the command took the owner's
/// write access to the directory away (`chmod 555` after planting: the
/// host still reads the file, the rename needs write access), it is given
/// back for the move and the mode put back. Called after the command
/// ended.
pub(crate) fn quarantine(path: &std::path::Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = path.parent().unwrap_or(std::path::Path::new("/"));
    let mut restore = None;
    let mut result = Err(std::io::Error::other("no free quarantine name"));
    for n in 0..100 {
        let to = if n == 0 {
            path.with_file_name(format!("{name}.zerobox-quarantined"))
        } else {
            path.with_file_name(format!(
                "{name}.zerobox-quarantined.{:016x}",
                rand::random::<u64>()
            ))
        };
        if std::fs::symlink_metadata(&to).is_ok() {
            continue;
        }
        let mut moved = std::fs::rename(path, &to);
        if restore.is_none()
            && moved
                .as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::EACCES))
        {
            if let Ok(old) = std::fs::metadata(parent).map(|m| m.permissions().mode() & 0o7777) {
                if std::fs::set_permissions(parent, std::fs::Permissions::from_mode(old | 0o700))
                    .is_ok()
                {
                    restore = Some(old);
                    moved = std::fs::rename(path, &to);
                }
            }
        }
        result = moved.map(|()| to);
        break;
    }
    if let Some(old) = restore {
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(old));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_link_to_a_protected_dir_is_put_back() {
        let t = tempfile::tempdir().unwrap();
        let proj = crate::policy::paths::canonical(t.path());
        std::fs::create_dir(proj.join("shared")).unwrap();
        std::os::unix::fs::symlink("shared", proj.join(".claude")).unwrap();
        let ctx = PathContext {
            home: proj.join("home"),
            cwd: proj.clone(),
            tmpdir: PathBuf::from("/tmp"),
        };
        let mut layer = PolicyLayer::new(crate::policy::Origin::Test);
        layer.write_allow.push(".".into());
        layer.write_deny.push(".claude/settings.json".into());
        let p = Protection::prepare(&[layer], &ctx, true);
        assert_eq!(
            p.links,
            vec![(proj.join(".claude"), PathBuf::from("shared"))]
        );
        std::fs::remove_file(proj.join(".claude")).unwrap();
        std::fs::create_dir(proj.join(".claude")).unwrap();
        std::fs::write(proj.join(".claude/settings.json"), "{\"hooks\":1}").unwrap();
        p.after_run();
        assert_eq!(
            std::fs::read_link(proj.join(".claude")).unwrap(),
            PathBuf::from("shared")
        );
        assert!(proj
            .join(".claude.zerobox-quarantined/settings.json")
            .exists());
    }
}
