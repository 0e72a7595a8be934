//! Agent state files the agent itself must be able to rewrite, but whose
//! security-relevant keys steer later, unsandboxed runs: checked after the
//! run and reverted.
//!
//! Today that is Claude Code's `~/.claude.json` (and `.claude.json` in its
//! `CLAUDE_CONFIG_DIR`, `~/.claude`, and the legacy `~/.claude/.config.json`
//! that Claude Code reads instead of `~/.claude.json` when it exists). Claude Code rewrites it all the time
//! (onboarding, tips, per-project history) with a temp file and a rename,
//! so a write deny would break it; but the same file holds MCP servers
//! (commands Claude Code starts), `apiKeyHelper` (a command it runs), `env`
//! (variables for every later run: `NODE_OPTIONS` runs code) and
//! per-project permission answers. The design:
//!
//! - before the run, snapshot the keys in [`TOP_KEYS`] and, for every
//!   project entry, [`PROJECT_KEYS`];
//! - after the run, if the file changed, put each of those keys back to
//!   its snapshot (absent if it was absent; a project entry that is new
//!   gets none of them, except empty defaults such as `"allowedTools": []`),
//!   leave everything else as the agent wrote it, and name every reverted
//!   key on stderr. `customApiKeyResponses` (the "use this API key?"
//!   answers, keyed by the key's last characters) is not among them: it
//!   only approves a key the user's own environment supplies, and
//!   reverting it would ask again every run. The one exception is the folder
//!   trust answer for the project the run was in (`hasTrustDialogAccepted`
//!   for the cwd, or for the git top-level above it found before the run:
//!   the two folders Claude Code records the answer for): the user gives
//!   that answer in the sandboxed session, and reverting it would ask again
//!   every run. Never for any other directory above the cwd: Claude Code
//!   trusts a folder when any directory above it is trusted, so a planted
//!   answer for `/` or the home dir would trust every later repository;
//! - the file is attacker input: opened with `O_NOFOLLOW`, a regular file
//!   of at most [`MAX_STATE`] bytes. If it cannot be read or parsed before
//!   the run, it is write-denied for the run (with a warning); if it was
//!   fine before but cannot be read or parsed after, the pre-run copy is
//!   restored whole (fail closed: the agent loses that run's state, never
//!   the user their protection);
//! - the rewrite is a temp file in the same directory plus a rename, so a
//!   symlink put in the file's place is replaced, never followed.
//!
//! Gemini CLI's `~/.gemini/settings.json` and `~/.gemini/trustedFolders.json`
//! go the same way with the opposite list: its first-run screens write the
//! sign-in method and the folder-trust answer there, so both are writable,
//! and after the run everything the command changed is put back except an
//! allowlist (`security.auth.selectedType`, `ui.theme`; the trust answer
//! for this run's own folder), because the settings schema keeps growing
//! and many of its keys name commands (see [`GEMINI_SETTINGS_KEPT`]).
//!
//! The project's `.env` files (which Gemini CLI loads into its
//! environment) are checked in the variables that run code ([`dotenv`]).
//! Every snapshot is also journalled before the command starts
//! ([`journal`]), so a run whose zerobox was killed is checked by the
//! next one.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::git::read_bounded;

mod dotenv;
mod journal;
pub use journal::{recover, Journal};

/// A state file larger than this is not parsed (Claude Code's grows with
/// history; tens of MiB would be unusual).
const MAX_STATE: u64 = 32 << 20;

/// Top-level keys of `.claude.json` that run code or steer later runs.
const TOP_KEYS: &[&str] = &[
    "mcpServers",
    "apiKeyHelper",
    "env",
    "diffTool",
    "bypassPermissionsModeAccepted",
    "primaryApiKey",
    "autoUpdates",
    "installMethod",
    "autoConnectIde",
    "autoInstallIdeExtension",
];

/// Keys of each `projects["<dir>"]` entry that do.
const PROJECT_KEYS: &[&str] = &[
    "mcpServers",
    "allowedTools",
    "enabledMcpjsonServers",
    // Built-in servers that are off by default ("computer-use").
    "enabledMcpServers",
    "disabledMcpjsonServers",
    "enableAllProjectMcpServers",
    "mcpContextUris",
    "hasTrustDialogAccepted",
    "hasClaudeMdExternalIncludesApproved",
];

/// The state files checked, relative to HOME. `.claude/.config.json` is
/// a legacy location Claude Code reads its global config from *instead of*
/// `~/.claude.json` whenever it exists, inside the writable `~/.claude`.
const CLAUDE_STATE: &[&str] = &[
    ".claude.json",
    ".claude.json.backup",
    ".claude/.claude.json",
    ".claude/.config.json",
];

/// What one file looked like before the run.
#[derive(Debug)]
enum Before {
    Absent,
    /// Parsed JSON and the raw bytes (restored whole if the file is
    /// unreadable after the run).
    Json {
        raw: String,
        value: Value,
    },
    /// Readable but not JSON: any change restores it whole.
    Raw(String),
}

#[derive(Debug)]
struct Watched {
    path: PathBuf,
    before: Before,
}

/// Snapshots taken before the run.
#[derive(Debug, Default)]
pub struct Guard {
    files: Vec<Watched>,
    /// The folders whose trust answer is the run's own and is kept: the
    /// cwd and the git top-level above it (found before the run, so the
    /// command cannot move it up by planting a `.git`).
    own_projects: Vec<PathBuf>,
    /// Claude Code's sandbox copy of `~/.claude.json`, when the run points
    /// its config dir at `~/.claude` (see [`ClaudeSync`]).
    sync: Option<ClaudeSync>,
    /// Gemini CLI's settings and folder-trust files.
    gemini: Gemini,
    warnings: Vec<String>,
}

impl Guard {
    /// Snapshot the agents' state files under `home`. Returns the paths to
    /// write-deny for this run (files that cannot be checked).
    ///
    /// `claude_sync`: the run sets `CLAUDE_CONFIG_DIR` to `~/.claude` (the
    /// claude preset does), so Claude Code inside keeps its global config
    /// in `~/.claude/.claude.json`: that copy is seeded from
    /// `~/.claude.json` now and its harmless state merged back after the
    /// run ([`ClaudeSync`]).
    pub fn prepare(home: &Path, cwd: &Path, claude_sync: bool) -> (Vec<String>, Guard) {
        Guard::prepare_with(home, cwd, claude_sync, false)
    }

    /// For a run that starts while another run in the same HOME is live:
    /// the files may hold that run's unchecked changes, so they are no
    /// baseline to revert to (reverting would write the other run's plant
    /// back after that run was itself reverted). Every file is write-denied
    /// instead and nothing is snapshotted, seeded or merged back.
    pub fn prepare_read_only(home: &Path, cwd: &Path) -> (Vec<String>, Guard) {
        Guard::prepare_with(home, cwd, false, true)
    }

    fn prepare_with(
        home: &Path,
        cwd: &Path,
        claude_sync: bool,
        read_only: bool,
    ) -> (Vec<String>, Guard) {
        let mut deny = Vec::new();
        let mut own_projects = vec![cwd.to_path_buf()];
        if let Some(top) = cwd
            .ancestors()
            .find(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
            .filter(|top| *top != cwd)
        {
            own_projects.push(top.to_path_buf());
        }
        let mut guard = Guard {
            own_projects,
            ..Guard::default()
        };
        if claude_sync {
            match ClaudeSync::plan(home) {
                Ok(sync) => guard.sync = Some(sync),
                Err(why) => guard.warnings.push(why),
            }
        }
        if read_only {
            deny.extend(
                CLAUDE_STATE
                    .iter()
                    .chain([GEMINI_SETTINGS, GEMINI_TRUST].iter())
                    .map(|rel| home.join(rel).display().to_string()),
            );
            return (deny, guard);
        }
        // That link itself stays as it was, write-denied (as any link at a
        // state path is): replaced by a file, it would be a config a
        // `CLAUDE_CONFIG_DIR=~/.claude` session on the host reads unchecked.
        if guard.sync.is_none() && ClaudeSync::left_copy(home).is_some() {
            deny.push(home.join(".claude/.claude.json").display().to_string());
        }
        let watched = CLAUDE_STATE.iter().map(|rel| match &guard.sync {
            // The link is the sandbox's; the file it names is the state.
            Some(sync) if *rel == ".claude/.claude.json" => sync.sandbox.clone(),
            // Left by an earlier claude-preset run: zerobox's own link,
            // so the state is the file it names (checked as itself, not
            // through the link), not "a symbolic link" every later run
            // warns about and makes read-only.
            None if *rel == ".claude/.claude.json" => {
                ClaudeSync::left_copy(home).unwrap_or_else(|| home.join(rel))
            }
            _ => home.join(rel),
        });
        for path in watched.collect::<Vec<_>>() {
            if let Some(sync) = guard.sync.as_ref().filter(|s| s.sandbox == path) {
                // It will hold exactly `~/.claude.json` when the run starts.
                let before = match &sync.raw {
                    Some(raw) => Before::Json {
                        raw: raw.clone(),
                        value: Value::Object(sync.base.clone()),
                    },
                    None => Before::Absent,
                };
                guard.files.push(Watched { path, before });
                continue;
            }
            if let Some(before) = snapshot_or_deny(&path, &mut deny, &mut guard.warnings) {
                guard.files.push(Watched { path, before });
            }
        }
        guard.gemini = Gemini::prepare(home, &mut deny, &mut guard.warnings);
        (deny, guard)
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Just before the run (not for `explain`): seed Claude Code's config
    /// copy. A warning line if that failed (the run goes on, unsynced).
    pub fn before_run(&self) -> Option<String> {
        self.sync.as_ref().and_then(|s| s.seed().err())
    }

    /// Revert what the run changed in the protected keys; one line each.
    pub fn after_run(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for w in &self.files {
            if let Some(line) = self.check(w) {
                lines.push(line);
            }
        }
        if let Some(sync) = &self.sync {
            if let Some(line) = sync.merge_back(&self.own_projects) {
                lines.push(line);
            }
        }
        lines.extend(self.gemini.after_run(&self.own_projects));
        lines
    }

    fn check(&self, w: &Watched) -> Option<String> {
        if let Some(sync) = self.sync.as_ref().filter(|s| w.path == s.sandbox) {
            if !sync.seeded.get() {
                return None;
            }
            // Its directory is inside the writable ~/.claude: one the
            // command replaced by a link is moved aside, never written
            // through (a link to ~ would make the rewrite below land in
            // ~/.claude.json).
            if let Some(line) = sync.state_dir_replaced() {
                return Some(line);
            }
        }
        let shown = w.path.display();
        let exists = std::fs::symlink_metadata(&w.path).is_ok();
        let now = if exists {
            Some(read_bounded(&w.path, MAX_STATE))
        } else {
            None
        };
        match (&w.before, now) {
            (_, None) => None, // removed: nothing left that runs
            (Before::Absent, Some(Ok(raw))) => match serde_json::from_str::<Value>(&raw) {
                Ok(after) => self.revert_keys(&w.path, &Value::Object(Map::new()), after),
                Err(_) => Some(self.quarantine(&w.path)),
            },
            (Before::Absent, Some(Err(_))) => Some(self.quarantine(&w.path)),
            (Before::Raw(raw), Some(now)) => {
                if now.as_deref() == Ok(raw.as_str()) {
                    return None;
                }
                Some(restore_whole(
                    &w.path,
                    raw,
                    "it was not JSON before the run",
                ))
            }
            (Before::Json { raw, value }, Some(now)) => match now {
                Ok(text) if text == *raw => None,
                Ok(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(after) => self.revert_keys(&w.path, value, after),
                    Err(_) => Some(restore_whole(&w.path, raw, "it is no longer valid JSON")),
                },
                Err(why) => Some(restore_whole(&w.path, raw, &why)),
            },
        }
        .map(|line| line.replace("{path}", &shown.to_string()))
    }

    /// Put every protected key of `after` back to its value in `before`;
    /// rewrite the file if anything changed.
    fn revert_keys(&self, path: &Path, before: &Value, mut after: Value) -> Option<String> {
        let Some(obj) = after.as_object_mut() else {
            return Some(match before.as_object().is_some_and(|b| !b.is_empty()) {
                true => restore_whole(path, &before.to_string(), "it is no longer a JSON object"),
                false => self.quarantine(path),
            });
        };
        let empty = Map::new();
        let before = before.as_object().unwrap_or(&empty);
        let mut reverted = Vec::new();
        for key in TOP_KEYS {
            if put_back(obj, before, key) {
                reverted.push((*key).to_string());
            }
        }
        let before_projects = before
            .get("projects")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        if let Some(projects) = obj.get_mut("projects") {
            match projects.as_object_mut() {
                Some(projects) => {
                    for (dir, entry) in projects.iter_mut() {
                        let prior = before_projects
                            .get(dir)
                            .and_then(Value::as_object)
                            .unwrap_or(&empty);
                        let Some(entry) = entry.as_object_mut() else {
                            *entry = Value::Object(prior.clone());
                            reverted.push(format!("projects[{dir:?}]"));
                            continue;
                        };
                        for key in PROJECT_KEYS {
                            if *key == "hasTrustDialogAccepted" && self.is_this_project(dir) {
                                continue;
                            }
                            if put_back(entry, prior, key) {
                                reverted.push(format!("projects[{dir:?}].{key}"));
                            }
                        }
                    }
                }
                None => {
                    *projects = Value::Object(before_projects.clone());
                    reverted.push("projects".into());
                }
            }
        }
        if reverted.is_empty() {
            return None;
        }
        let text = serde_json::to_string_pretty(&after).unwrap_or_default();
        Some(match replace_file(path, text.as_bytes()) {
            Ok(()) => format!(
                "reverted what the command changed in {{path}} (keys that run code or steer later runs): {}",
                reverted.join(", ")
            ),
            Err(e) => format!(
                "the command changed {} in {{path}} and they could not be reverted ({e}): check the file before running the agent outside zerobox",
                reverted.join(", ")
            ),
        })
    }

    /// The folder-trust answer of the run's own project: the cwd or its
    /// git top-level, exactly (an answer for a dir above covers every
    /// folder under it).
    fn is_this_project(&self, dir: &str) -> bool {
        self.own_projects.iter().any(|p| p.as_os_str() == dir)
    }

    /// A state file that did not exist before and cannot be checked now.
    fn quarantine(&self, path: &Path) -> String {
        quarantine_new(path)
    }
}

/// Move aside a state file the command created that cannot be checked;
/// the line says where (`{path}` stands for the file).
fn quarantine_new(path: &Path) -> String {
    match super::quarantine(path) {
        Ok(to) => format!(
            "the command created {{path}} and it cannot be checked: moved it to {}",
            to.display()
        ),
        Err(e) => format!(
            "the command created {{path}}, it cannot be checked and could not be moved ({e}): remove it before running the agent outside zerobox"
        ),
    }
}

/// What `path` holds before the run; `None` (and the path added to `deny`,
/// with a warning) when it cannot be checked: a symlink, not a regular
/// file, too large, unreadable.
fn snapshot_or_deny(
    path: &Path,
    deny: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<Before> {
    if std::fs::symlink_metadata(path).is_err() {
        return Some(Before::Absent);
    }
    match read_bounded(path, MAX_STATE) {
        Ok(raw) => Some(match serde_json::from_str::<Value>(&raw) {
            Ok(value) => Before::Json { raw, value },
            Err(_) => Before::Raw(raw),
        }),
        Err(why) => {
            warnings.push(format!(
                "cannot check {} ({why}): it is read-only for this run",
                path.display()
            ));
            deny.push(path.display().to_string());
            None
        }
    }
}

/// Top-level keys of Claude Code's global config that carry only what a
/// person answered or saw (onboarding done, theme, the "use this API
/// key?" answers, tips and notices shown): the only ones copied back from
/// the sandbox's copy into `~/.claude.json`. An allowlist, not a deny
/// list: a key Claude Code adds tomorrow stays in the sandbox until it is
/// judged harmless here.
const SYNC_TOP_KEYS: &[&str] = &[
    "hasCompletedOnboarding",
    "lastOnboardingVersion",
    "theme",
    "customApiKeyResponses",
    "numStartups",
    "firstStartTime",
    "userID",
    "machineID",
    "tipsHistory",
    "tipLifetimeShownCounts",
    "lastReleaseNotesSeen",
    "hasSeenTasksHint",
    "seenNotifications",
    "hasAcknowledgedCostThreshold",
    "subscriptionNoticeCount",
    "hasAvailableSubscription",
    "promptQueueUseCount",
    "memoryUsageCount",
    "btwUseCount",
    "queuedCommandUpHintCount",
    "hasUsedStash",
    "hasUsedBackgroundTask",
    "editorMode",
    "verbose",
    "autoCompactEnabled",
    "preferredNotifChannel",
    "showTurnDuration",
];

/// Keys of the run's own `projects[DIR]` entries copied back (the trust
/// answer only for the run's own folder, like [`Guard`] keeps it; other
/// folders' entries never).
const SYNC_PROJECT_KEYS: &[&str] = &[
    "hasTrustDialogAccepted",
    "hasCompletedProjectOnboarding",
    "projectOnboardingSeenCount",
    "hasClaudeMdExternalIncludesWarningShown",
    "lastSessionId",
    "lastCost",
    "lastAPIDuration",
    "lastDuration",
    "lastLinesAdded",
    "lastLinesRemoved",
    "lastTotalInputTokens",
    "lastTotalOutputTokens",
    "lastTotalCacheCreationInputTokens",
    "lastTotalCacheReadInputTokens",
    "lastModelUsage",
    "exampleFiles",
    "exampleFilesGeneratedAt",
];

/// Names in `~/.claude` the preset denies but Claude Code creates at
/// every start (the theme picker writes `settings.json`; the plugin
/// marketplace check makes `plugins/`). Made empty before the run so the
/// deny holds on an existing path and the write fails inside, instead of
/// being moved aside (and reported) at every start.
const CLAUDE_PRECREATE: &[(&str, Option<&str>)] =
    &[("settings.json", Some("{}\n")), ("plugins", None)];

/// The directory in `~/.claude` that holds the sandbox's copy of the
/// global config; `~/.claude/.claude.json` (where Claude Code looks with
/// `CLAUDE_CONFIG_DIR=~/.claude`) is a link to the file in it. Claude Code
/// writes through a link at its config path (temp file and rename beside
/// the target), and a directory of its own with no write-denied names in
/// it can take new files in the Landlock-only fallback too (`~/.claude`
/// itself cannot: it holds denied names).
const SYNC_DIR: &str = "zerobox";

/// Claude Code's state between runs under the claude preset.
///
/// Claude Code saves `~/.claude.json` with a temp file beside it and a
/// rename, which needs all of HOME writable. Instead the preset sets
/// `CLAUDE_CONFIG_DIR=~/.claude`: every other path Claude Code uses stays
/// the same (`~/.claude/settings.json`, `projects/`, …), and the global
/// config becomes `~/.claude/.claude.json`, inside the writable
/// `~/.claude`. `~/.claude.json` itself, which a plain `claude` reads, is
/// never writable inside:
///
/// - before the run, the sandbox copy is replaced by `~/.claude.json` (the
///   sandbox starts from the user's state: onboarding, MCP servers, …);
/// - after the run, the keys in [`SYNC_TOP_KEYS`] (and [`SYNC_PROJECT_KEYS`]
///   of the run's own project) that the run changed are written into
///   `~/.claude.json`, re-read at that moment, so a plain session's
///   changes meanwhile are kept. Nothing else crosses: MCP servers, env,
///   permissions, other folders' trust stay where they were.
#[derive(Debug)]
struct ClaudeSync {
    host: PathBuf,
    /// `~/.claude/zerobox/.claude.json`, the copy Claude Code writes.
    sandbox: PathBuf,
    /// `~/.claude.json` as read before the run (None if absent) and parsed
    /// (empty if absent): what the copy is seeded with.
    raw: Option<String>,
    base: Map<String, Value>,
    /// Seeded for this run ([`ClaudeSync::seed`] succeeded): only then is
    /// anything merged back.
    seeded: std::cell::Cell<bool>,
}

impl ClaudeSync {
    /// `~/.claude/zerobox/.claude.json` when `~/.claude/.claude.json` is
    /// the link a claude-preset run made to it and `~/.claude/zerobox` is
    /// a real directory (never a link the command put on the way).
    fn left_copy(home: &Path) -> Option<PathBuf> {
        let dir = home.join(".claude");
        let target = Path::new(SYNC_DIR).join(".claude.json");
        let ours = std::fs::read_link(dir.join(".claude.json")).ok()? == target;
        let real_dir = std::fs::symlink_metadata(dir.join(SYNC_DIR)).ok()?.is_dir();
        (ours && real_dir).then(|| dir.join(target))
    }

    /// Read `~/.claude.json` (nothing is written yet: `explain` resolves
    /// the same way and must not touch the disk).
    fn plan(home: &Path) -> Result<ClaudeSync, String> {
        let host = home.join(".claude.json");
        let base = match std::fs::symlink_metadata(&host) {
            Err(_) => None,
            Ok(m) if m.is_file() => {
                let raw = read_bounded(&host, MAX_STATE)
                    .map_err(|e| format!("cannot read {} ({e}): Claude Code's state is not shared with the sandbox this run", host.display()))?;
                match serde_json::from_str::<Value>(&raw) {
                    Ok(Value::Object(map)) => Some((raw, map)),
                    _ => return Err(format!("{} is not a JSON object: Claude Code's state is not shared with the sandbox this run", host.display())),
                }
            }
            Ok(_) => return Err(format!("{} is not a regular file: Claude Code's state is not shared with the sandbox this run", host.display())),
        };
        let (raw, base) = match base {
            Some((raw, map)) => (Some(raw), map),
            None => (None, Map::new()),
        };
        Ok(ClaudeSync {
            sandbox: home.join(".claude").join(SYNC_DIR).join(".claude.json"),
            host,
            raw,
            base,
            seeded: std::cell::Cell::new(false),
        })
    }

    /// Just before the run: make `~/.claude` and its pre-created names,
    /// the state directory and the link, and put `~/.claude.json`'s
    /// content in the copy.
    fn seed(&self) -> Result<(), String> {
        let dir = self
            .sandbox
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"));
        if let Err(e) = std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
        {
            return Err(format!("cannot create {} ({e})", dir.display()));
        }
        for (name, content) in CLAUDE_PRECREATE {
            let path = dir.join(name);
            if std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            // Best effort: a name that cannot be made is moved aside after
            // the run like any protected name the command created.
            let _ = match content {
                Some(text) => std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path)
                    .and_then(|mut f| f.write_all(text.as_bytes())),
                None => std::fs::DirBuilder::new().mode(0o700).create(&path),
            };
        }
        let state_dir = dir.join(SYNC_DIR);
        let sandbox = &self.sandbox;
        let link = dir.join(".claude.json");
        let not_shared = |what: &Path, e: std::io::Error| {
            format!(
                "cannot prepare {} ({e}): Claude Code's state is not shared with the sandbox this run",
                what.display()
            )
        };
        match std::fs::symlink_metadata(&state_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                super::quarantine(&state_dir).map_err(|e| not_shared(&state_dir, e))?;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&state_dir)
                    .map_err(|e| not_shared(&state_dir, e))?;
            }
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&state_dir)
                .map_err(|e| not_shared(&state_dir, e))?,
        }
        let target = Path::new(SYNC_DIR).join(".claude.json");
        if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let cleared = match std::fs::symlink_metadata(&link) {
                Err(_) => Ok(()),
                Ok(m) if m.is_dir() => super::quarantine(&link).map(|_| ()),
                Ok(_) => std::fs::remove_file(&link),
            };
            cleared
                .and_then(|()| std::os::unix::fs::symlink(&target, &link))
                .map_err(|e| not_shared(&link, e))?;
        }
        let seeded = match &self.raw {
            Some(raw) => replace_file(sandbox, raw.as_bytes()),
            None => match std::fs::remove_file(sandbox) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        seeded.map_err(|e| not_shared(sandbox, e))?;
        self.seeded.set(true);
        Ok(())
    }

    /// The state directory is no longer a real directory (the command
    /// replaced it): moved aside, and a line saying so.
    fn state_dir_replaced(&self) -> Option<String> {
        let dir = self.sandbox.parent()?;
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => None,
            Err(_) => None,
            Ok(_) => Some(match super::quarantine(dir) {
                Ok(to) => format!(
                    "{} was replaced during the run; moved it to {} (Claude Code's state from this run is not kept)",
                    dir.display(),
                    to.display()
                ),
                Err(e) => format!(
                    "{} was replaced during the run and could not be moved ({e}): remove it",
                    dir.display()
                ),
            }),
        }
    }

    /// Copy what the run changed in the allowed keys into `~/.claude.json`.
    /// Silent when nothing changed or all went well.
    fn merge_back(&self, own_projects: &[PathBuf]) -> Option<String> {
        if !self.seeded.get() {
            return None;
        }
        let real_dir = self
            .sandbox
            .parent()
            .and_then(|d| std::fs::symlink_metadata(d).ok())
            .is_some_and(|m| m.is_dir());
        if !real_dir {
            return None;
        }
        let after = match read_bounded(&self.sandbox, MAX_STATE)
            .ok()
            .and_then(|raw| serde_json::from_str::<Value>(&raw).ok())
        {
            Some(Value::Object(map)) => map,
            // Removed, a symlink, not JSON: nothing the host can take.
            _ => return None,
        };
        let host_now = match std::fs::symlink_metadata(&self.host) {
            Err(_) => Map::new(),
            Ok(_) => match read_bounded(&self.host, MAX_STATE)
                .ok()
                .and_then(|raw| serde_json::from_str::<Value>(&raw).ok())
            {
                Some(Value::Object(map)) => map,
                _ => {
                    return Some(format!(
                        "{} changed during the run and is not a JSON object: Claude Code's answers from this session were not saved to it",
                        self.host.display()
                    ))
                }
            },
        };
        let own: Vec<String> = own_projects
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let merged = merge_claude_state(&self.base, &after, host_now.clone(), &own);
        if merged == host_now {
            return None;
        }
        let text = serde_json::to_string_pretty(&Value::Object(merged)).unwrap_or_default();
        match replace_file(&self.host, text.as_bytes()) {
            Ok(()) => None,
            Err(e) => Some(format!(
                "cannot save Claude Code's state to {} ({e}): onboarding or answers from this session may be asked again",
                self.host.display()
            )),
        }
    }
}

/// The host's config `host` with every allowed key the run changed
/// (`after` differs from `base`) set to the run's value: top-level
/// [`SYNC_TOP_KEYS`], and [`SYNC_PROJECT_KEYS`] of the `own` projects.
fn merge_claude_state(
    base: &Map<String, Value>,
    after: &Map<String, Value>,
    mut host: Map<String, Value>,
    own: &[String],
) -> Map<String, Value> {
    fn carry(
        key: &str,
        base: &Map<String, Value>,
        after: &Map<String, Value>,
        host: &mut Map<String, Value>,
    ) {
        if base.get(key) == after.get(key) {
            return;
        }
        match after.get(key) {
            Some(v) => {
                host.insert(key.to_string(), v.clone());
            }
            None => {
                host.remove(key);
            }
        }
    }
    for key in SYNC_TOP_KEYS {
        carry(key, base, after, &mut host);
    }
    let empty = Map::new();
    let projects = |m: &Map<String, Value>| m.get("projects").and_then(Value::as_object).cloned();
    let (base_p, after_p) = (
        projects(base).unwrap_or_default(),
        projects(after).unwrap_or_default(),
    );
    for dir in own {
        let Some(after_e) = after_p.get(dir).and_then(Value::as_object) else {
            continue;
        };
        let base_e = base_p.get(dir).and_then(Value::as_object).unwrap_or(&empty);
        let all = host
            .entry("projects")
            .or_insert_with(|| Value::Object(Map::new()));
        if !all.is_object() {
            *all = Value::Object(Map::new());
        }
        let Some(all) = all.as_object_mut() else {
            continue;
        };
        let entry = all
            .entry(dir.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Some(entry) = entry.as_object_mut() {
            for key in SYNC_PROJECT_KEYS {
                carry(key, base_e, after_e, entry);
            }
        }
    }
    host
}

/// Make `key` in `now` what it was in `before`; true if it differed. A key
/// that was absent and now holds an empty value (`[]`, `{}`, `false`,
/// `null`, `""`: the defaults Claude Code writes into every new project
/// entry) changes nothing and is left alone.
fn put_back(now: &mut Map<String, Value>, before: &Map<String, Value>, key: &str) -> bool {
    match (now.get(key), before.get(key)) {
        (a, b) if a == b => false,
        (Some(v), None) if is_empty(v) => false,
        (_, Some(b)) => {
            now.insert(key.to_string(), b.clone());
            true
        }
        (_, None) => {
            now.remove(key);
            true
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn restore_whole(path: &Path, raw: &str, why: &str) -> String {
    match replace_file(path, raw.as_bytes()) {
        Ok(()) => format!("restored {{path}} as it was before the run ({why})"),
        Err(e) => format!(
            "{{path}} changed and cannot be checked ({why}); restoring it failed ({e}): check it before running the agent outside zerobox"
        ),
    }
}

/// Write `content` to a new file beside `path` and rename it over `path`
/// (a symlink at `path` is replaced, not followed). Mode 0600.
fn replace_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.zerobox-{:016x}", rand::random::<u64>()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let written = f.write_all(content).and_then(|()| f.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Codex's config.toml and opencode's global config.
//
// Codex rewrites `~/.codex/config.toml` itself (folder trust under
// `projects."DIR".trust_level`, `[notice]` acknowledgements, TUI flags,
// the model picked with /model), with a temp file and a rename, so a
// write deny would ask the trust question at every run and leave a
// quarantined copy each time. But nearly everything else in it runs code
// or steers later runs outside the sandbox: `mcp_servers`, `notify`,
// `model_providers` (where prompts and the key go), `profiles`, `hooks`,
// `sandbox_mode`, `approval_policy`, `shell_environment_policy`, trust
// for any other folder... So this is an allowlist, not a blocklist: a
// change to anything but [`codex_key_is_state`] puts every other key back
// as it was before the run (the file is rebuilt from its pre-run text, so
// the user's comments and layout stay), and the reverted keys are named.
// The profiles beside it (`NAME.config.toml`, layered by `codex -p NAME`)
// get the same rule.
//
// opencode writes a default `~/.config/opencode/opencode.jsonc` (just
// `$schema`) when it finds no global config. Every other key of that file
// steers or runs code (plugins, MCP servers, formatters, LSP commands,
// providers, permissions), and opencode does not rewrite an existing
// one: a new file survives only as that default, a changed one is
// restored whole.
// ---------------------------------------------------------------------

/// Codex's user config, relative to HOME.
const CODEX_CONFIG: &str = ".codex/config.toml";
/// Where Codex looks for `NAME.config.toml` profiles.
const CODEX_DIR: &str = ".codex";
/// At most this many profile files are checked (each is bounded too).
const MAX_CODEX_PROFILES: usize = 256;
/// opencode's global config files, relative to HOME.
const OPENCODE_CONFIG: &[&str] = &[
    ".config/opencode/opencode.json",
    ".config/opencode/opencode.jsonc",
];

/// The folders whose trust answer is the run's own: the cwd and the git
/// top-level above it, found before the run (the command cannot move it
/// by planting a `.git`).
fn own_projects(cwd: &Path) -> Vec<PathBuf> {
    let mut own = vec![cwd.to_path_buf()];
    if let Some(top) = cwd
        .ancestors()
        .find(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
        .filter(|top| *top != cwd)
    {
        own.push(top.to_path_buf());
    }
    own
}

/// Is `path` (keys from the top of a Codex config) state Codex writes for
/// itself, harmless for a later run? `own` are the run's own folders.
fn codex_key_is_state(path: &[&str], own: &[PathBuf]) -> bool {
    match path {
        ["notice", ..] => true,
        ["tui", "screen_reader_detection_done" | "theme" | "model_availability_nux", ..] => true,
        ["model" | "model_reasoning_effort"] => true,
        ["projects", dir, "trust_level"] => own.iter().any(|p| p.as_os_str() == *dir),
        _ => false,
    }
}

/// A TOML file as a JSON tree (for a comparison that ignores layout).
fn toml_tree(item: &toml_edit::Item) -> Value {
    use toml_edit::Item;
    match item {
        Item::None => Value::Null,
        Item::Value(v) => toml_value(v),
        Item::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), toml_tree(v)))
                .collect(),
        ),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| toml_tree(&toml_edit::Item::Table(t.clone())))
                .collect(),
        ),
    }
}

fn toml_value(v: &toml_edit::Value) -> Value {
    use toml_edit::Value as V;
    match v {
        V::String(s) => Value::String(s.value().clone()),
        V::Integer(i) => Value::from(*i.value()),
        V::Float(f) => Value::String(format!("float:{}", f.value())),
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => Value::String(format!("datetime:{}", d.value())),
        V::Array(a) => Value::Array(a.iter().map(toml_value).collect()),
        V::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), toml_value(v)))
                .collect(),
        ),
    }
}

/// Remove every state key from `tree` (so two trees that differ only in
/// state compare equal).
fn strip_codex_state(tree: &mut Value, prefix: &mut Vec<String>, own: &[PathBuf]) {
    let Some(obj) = tree.as_object_mut() else {
        return;
    };
    obj.retain(|k, _| {
        let mut path: Vec<&str> = prefix.iter().map(String::as_str).collect();
        path.push(k);
        !codex_key_is_state(&path, own)
    });
    for (k, v) in obj.iter_mut() {
        prefix.push(k.clone());
        strip_codex_state(v, prefix, own);
        prefix.pop();
    }
    // A table left empty by the strip (`[projects]` holding only trust)
    // is no difference either.
    obj.retain(|_, v| !matches!(v, Value::Object(o) if o.is_empty()));
}

/// The paths (up to two keys deep) where `a` and `b` differ, for the
/// message.
fn differing_keys(a: &Value, b: &Value) -> Vec<String> {
    let empty = Map::new();
    let (ao, bo) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = ao.keys().chain(bo.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let (x, y) = (ao.get(k), bo.get(k));
        if x == y {
            continue;
        }
        match (x.and_then(Value::as_object), y.and_then(Value::as_object)) {
            (Some(_), Some(_)) => {
                for sub in differing_keys(x.unwrap_or(&Value::Null), y.unwrap_or(&Value::Null)) {
                    out.push(format!("{k}.{sub}"));
                }
            }
            _ => out.push(k.clone()),
        }
    }
    out
}

/// Copy the state keys of `after` into `base` (a document built from the
/// pre-run text), creating the tables on the way.
fn copy_codex_state(
    base: &mut toml_edit::DocumentMut,
    after: &toml_edit::DocumentMut,
    own: &[PathBuf],
) {
    use toml_edit::{Item, Table};
    fn slot<'a>(t: &'a mut toml_edit::Table, key: &str) -> Option<&'a mut toml_edit::Table> {
        let item = t.entry(key).or_insert_with(|| {
            let mut new = Table::new();
            new.set_implicit(true);
            Item::Table(new)
        });
        item.as_table_mut()
    }
    let mut set = |path: &[&str], value: Option<&Item>| {
        let Some((last, parents)) = path.split_last() else {
            return; // an empty key path names nothing
        };
        let mut t = base.as_table_mut();
        for p in parents {
            match slot(t, p) {
                Some(next) => t = next,
                None => return, // not a table in the pre-run file: leave it
            }
        }
        let same = match (t.get(last), value) {
            (Some(a), Some(b)) => toml_tree(a) == toml_tree(b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return; // keep the pre-run text (comments, layout) as it was
        }
        match value {
            Some(v) => {
                t.insert(last, v.clone());
            }
            None => {
                t.remove(last);
            }
        }
    };
    let get = |path: &[&str]| {
        let mut item = after.as_item();
        for p in path {
            item = item.get(p)?;
        }
        Some(item)
    };
    set(&["notice"], get(&["notice"]));
    for k in [
        "screen_reader_detection_done",
        "theme",
        "model_availability_nux",
    ] {
        set(&["tui", k], get(&["tui", k]));
    }
    for k in ["model", "model_reasoning_effort"] {
        set(&[k], get(&[k]));
    }
    for dir in own {
        let dir = dir.to_string_lossy();
        set(
            &["projects", &dir, "trust_level"],
            get(&["projects", &dir, "trust_level"]),
        );
    }
}

/// What one config file looked like before the run.
#[derive(Debug)]
enum ConfigBefore {
    Absent,
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConfigKind {
    CodexToml,
    OpencodeJson,
}

#[derive(Debug)]
struct ConfigWatched {
    path: PathBuf,
    kind: ConfigKind,
    before: ConfigBefore,
}

/// Codex's and opencode's config files, snapshotted before the run and
/// checked after it (see the section comment above).
#[derive(Debug, Default)]
pub struct ConfigGuard {
    files: Vec<ConfigWatched>,
    codex_dir: PathBuf,
    /// `~/.codex` is writable in this run: profiles made there are checked.
    watch_new_profiles: bool,
    /// Files write-denied for the run instead of watched (not new).
    denied: Vec<PathBuf>,
    /// The project's `.env` files (see [`dotenv`]).
    env: Vec<dotenv::EnvFile>,
    own_projects: Vec<PathBuf>,
    warnings: Vec<String>,
}

impl ConfigGuard {
    /// Snapshot the files under `home` that this run could write (inside
    /// one of `writable`: the others need no check, and a symlinked
    /// dotfile there gets no warning at every run). Returns the paths to
    /// write-deny for this run (files that cannot be checked).
    pub fn prepare(home: &Path, cwd: &Path, writable: &[PathBuf]) -> (Vec<String>, ConfigGuard) {
        ConfigGuard::prepare_with(home, cwd, writable, false)
    }

    /// For a run that starts while another run in the same HOME is live
    /// (see [`Guard::prepare_read_only`]): every existing file is
    /// write-denied, not snapshotted; profiles made during the run are
    /// still checked (against nothing: only state keys stay).
    pub fn prepare_read_only(
        home: &Path,
        cwd: &Path,
        writable: &[PathBuf],
    ) -> (Vec<String>, ConfigGuard) {
        ConfigGuard::prepare_with(home, cwd, writable, true)
    }

    fn prepare_with(
        home: &Path,
        cwd: &Path,
        writable: &[PathBuf],
        read_only: bool,
    ) -> (Vec<String>, ConfigGuard) {
        let codex_dir = home.join(CODEX_DIR);
        let mut guard = ConfigGuard {
            watch_new_profiles: writable.iter().any(|w| codex_dir.starts_with(w)),
            codex_dir,
            own_projects: own_projects(cwd),
            ..ConfigGuard::default()
        };
        let mut deny = Vec::new();
        let mut paths: Vec<(PathBuf, ConfigKind)> =
            vec![(home.join(CODEX_CONFIG), ConfigKind::CodexToml)];
        paths.extend(
            guard
                .codex_profiles()
                .into_iter()
                .map(|p| (p, ConfigKind::CodexToml)),
        );
        paths.extend(
            OPENCODE_CONFIG
                .iter()
                .map(|r| (home.join(r), ConfigKind::OpencodeJson)),
        );
        paths.retain(|(p, _)| writable.iter().any(|w| p.starts_with(w)));
        for (path, kind) in paths {
            if read_only {
                deny.push(path.display().to_string());
                guard.denied.push(path);
                continue;
            }
            let before = match std::fs::symlink_metadata(&path) {
                Err(_) => ConfigBefore::Absent,
                Ok(_) => match read_bounded(&path, MAX_STATE) {
                    Ok(text) => ConfigBefore::Text(text),
                    Err(why) => {
                        guard.warnings.push(format!(
                            "cannot check {} ({why}): it is read-only for this run",
                            path.display()
                        ));
                        deny.push(path.display().to_string());
                        continue;
                    }
                },
            };
            guard.files.push(ConfigWatched { path, kind, before });
        }
        // `.env` stays writable in a run that is not alone (it is the
        // project's own file): that run only removes what it finds new.
        for path in dotenv::env_paths(cwd, writable) {
            match dotenv::snapshot(&path, read_only) {
                Ok(f) => guard.env.push(f),
                Err(why) => {
                    guard.warnings.push(format!(
                        "cannot check {} ({why}): it is read-only for this run",
                        path.display()
                    ));
                    deny.push(path.display().to_string());
                }
            }
        }
        (deny, guard)
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `~/.codex/NAME.config.toml` files (at most [`MAX_CODEX_PROFILES`]).
    fn codex_profiles(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.codex_dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".config.toml") && n != "config.toml")
            })
            .collect();
        out.sort();
        out
    }

    /// Check every file; one line per finding.
    pub fn after_run(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for w in &self.files {
            lines.extend(self.check(&w.path, w.kind, &w.before));
        }
        lines.extend(self.env.iter().filter_map(dotenv::check));
        // Profiles that appeared during the run.
        if !self.watch_new_profiles {
            return lines;
        }
        let known: Vec<&PathBuf> = self
            .files
            .iter()
            .map(|w| &w.path)
            .chain(&self.denied)
            .collect();
        let new: Vec<PathBuf> = self.codex_profiles();
        if new.len() > MAX_CODEX_PROFILES {
            lines.push(format!(
                "{} holds more than {MAX_CODEX_PROFILES} NAME.config.toml files: check them before running Codex outside zerobox",
                self.codex_dir.display()
            ));
        }
        for path in new.iter().filter(|p| !known.contains(p)) {
            lines.extend(self.check(path, ConfigKind::CodexToml, &ConfigBefore::Absent));
        }
        lines
    }

    fn check(&self, path: &Path, kind: ConfigKind, before: &ConfigBefore) -> Option<String> {
        if std::fs::symlink_metadata(path).is_err() {
            return None; // removed (or never made): nothing left that runs
        }
        let now = read_bounded(path, MAX_STATE);
        let line = match (before, now) {
            (ConfigBefore::Text(raw), Ok(text)) if text == *raw => return None,
            (ConfigBefore::Text(raw), Err(why)) => restore_whole(path, raw, &why),
            (ConfigBefore::Absent, Err(_)) => quarantine_line(path),
            (before, Ok(text)) => match kind {
                ConfigKind::CodexToml => self.check_codex(path, before, &text)?,
                ConfigKind::OpencodeJson => match before {
                    ConfigBefore::Text(raw) => restore_whole(
                        path,
                        raw,
                        "opencode does not rewrite its config; the command did",
                    ),
                    ConfigBefore::Absent if is_opencode_default(&text) => return None,
                    ConfigBefore::Absent => quarantine_line(path),
                },
            },
        };
        Some(line.replace("{path}", &path.display().to_string()))
    }

    /// A Codex config after the run: keep it if only state keys changed,
    /// else rebuild it from the pre-run text plus the new state keys.
    fn check_codex(&self, path: &Path, before: &ConfigBefore, text: &str) -> Option<String> {
        let raw_before = match before {
            ConfigBefore::Text(raw) => raw.as_str(),
            ConfigBefore::Absent => "",
        };
        let Ok(after) = text.parse::<toml_edit::DocumentMut>() else {
            return Some(match before {
                ConfigBefore::Text(raw) => restore_whole(path, raw, "it is no longer valid TOML"),
                ConfigBefore::Absent => quarantine_line(path),
            });
        };
        let Ok(mut base) = raw_before.parse::<toml_edit::DocumentMut>() else {
            // Not TOML before the run: any change puts it back whole.
            return Some(restore_whole(
                path,
                raw_before,
                "it was not TOML before the run",
            ));
        };
        let (mut a, mut b) = (toml_tree(base.as_item()), toml_tree(after.as_item()));
        strip_codex_state(&mut a, &mut Vec::new(), &self.own_projects);
        strip_codex_state(&mut b, &mut Vec::new(), &self.own_projects);
        if a == b {
            return None;
        }
        let reverted = differing_keys(&a, &b);
        copy_codex_state(&mut base, &after, &self.own_projects);
        Some(match replace_file(path, base.to_string().as_bytes()) {
            Ok(()) => format!(
                "reverted what the command changed in {{path}} (keys that run code or steer later runs): {}",
                reverted.join(", ")
            ),
            Err(e) => format!(
                "the command changed {} in {{path}} and they could not be reverted ({e}): check the file before running Codex outside zerobox",
                reverted.join(", ")
            ),
        })
    }
}

/// opencode's own first-run config: an object holding at most `$schema`
/// (a string).
fn is_opencode_default(text: &str) -> bool {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o.iter().all(|(k, v)| k == "$schema" && v.is_string()),
        _ => false,
    }
}

/// Move a config file the command created, and that cannot stay, aside.
fn quarantine_line(path: &Path) -> String {
    match super::quarantine(path) {
        Ok(to) => format!(
            "the command created {{path}} with settings that run code or steer later runs: moved it to {}",
            to.display()
        ),
        Err(e) => format!(
            "the command created {{path}} and it could not be moved ({e}): remove it before running the agent outside zerobox"
        ),
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    fn home_with(rel: &str, content: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if let Some(c) = content {
            std::fs::write(&path, c).unwrap();
        }
        (home, path)
    }

    #[test]
    fn codex_state_is_kept_and_code_running_keys_reverted() {
        let before = "# mine\nmodel = \"o3\"\n\n[mcp_servers.mine]\ncommand = \"my-server\"\n";
        let (home, path) = home_with(CODEX_CONFIG, Some(before));
        let (deny, guard) =
            ConfigGuard::prepare(home.path(), Path::new("/p"), &[home.path().to_path_buf()]);
        assert!(deny.is_empty());
        std::fs::write(
            &path,
            "model = \"o3\"\nnotify = [\"sh\", \"-c\", \"evil\"]\n[tui]\nscreen_reader_detection_done = true\n\
             [mcp_servers.mine]\ncommand = \"my-server\"\n[mcp_servers.evil]\ncommand = \"sh\"\n\
             [projects.\"/p\"]\ntrust_level = \"trusted\"\n[projects.\"/\"]\ntrust_level = \"trusted\"\n",
        )
        .unwrap();
        let lines = guard.after_run();
        assert_eq!(lines.len(), 1, "{lines:?}");
        for k in ["notify", "mcp_servers.evil", "projects"] {
            assert!(lines[0].contains(k), "{k}: {lines:?}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        let now: toml_edit::DocumentMut = text.parse().unwrap();
        assert!(now.get("notify").is_none(), "{text}");
        assert!(now["mcp_servers"].get("evil").is_none(), "{text}");
        assert_eq!(
            now["mcp_servers"]["mine"]["command"].as_str(),
            Some("my-server")
        );
        assert_eq!(
            now["projects"]["/p"]["trust_level"].as_str(),
            Some("trusted"),
            "{text}"
        );
        assert!(now["projects"].get("/").is_none(), "{text}");
        assert_eq!(
            now["tui"]["screen_reader_detection_done"].as_bool(),
            Some(true)
        );
    }

    #[test]
    fn codex_only_state_changes_leave_the_file_alone() {
        let (home, path) = home_with(CODEX_CONFIG, None);
        let (_, guard) =
            ConfigGuard::prepare(home.path(), Path::new("/p"), &[home.path().to_path_buf()]);
        let written = "[tui]\nscreen_reader_detection_done = true\n[notice]\nhide_x = true\n[projects.\"/p\"]\ntrust_level = \"trusted\"\n";
        std::fs::write(&path, written).unwrap();
        assert!(guard.after_run().is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    }

    #[test]
    fn a_new_codex_profile_keeps_nothing_that_runs() {
        let (home, _) = home_with(CODEX_CONFIG, None);
        let (_, guard) =
            ConfigGuard::prepare(home.path(), Path::new("/p"), &[home.path().to_path_buf()]);
        let profile = home.path().join(".codex/work.config.toml");
        std::fs::write(&profile, "[mcp_servers.evil]\ncommand = \"sh\"\n").unwrap();
        let lines = guard.after_run();
        assert!(
            lines.iter().any(|l| l.contains("work.config.toml")),
            "{lines:?}"
        );
        let text = std::fs::read_to_string(&profile).unwrap_or_default();
        assert!(!text.contains("evil"), "{text}");
    }

    #[test]
    fn a_config_the_run_cannot_write_is_not_watched() {
        let (home, path) = home_with(CODEX_CONFIG, None);
        std::fs::remove_dir(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", home.path().join(".codex")).unwrap();
        let (deny, guard) = ConfigGuard::prepare(home.path(), Path::new("/p"), &[]);
        assert!(deny.is_empty() && guard.warnings().is_empty() && guard.files.is_empty());
        assert!(guard.after_run().is_empty());
    }

    #[test]
    fn a_deeply_nested_plant_is_refused_not_a_crash() {
        let (home, path) = home_with(CODEX_CONFIG, Some("model = \"o3\"\n"));
        let (_, guard) =
            ConfigGuard::prepare(home.path(), Path::new("/p"), &[home.path().to_path_buf()]);
        let deep = format!("a = {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        std::fs::write(&path, deep).unwrap();
        let lines = guard.after_run();
        assert!(lines[0].contains("restored"), "{lines:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "model = \"o3\"\n");
    }

    #[test]
    fn codex_config_that_is_not_toml_is_restored() {
        let (home, path) = home_with(CODEX_CONFIG, Some("model = \"o3\"\n"));
        let (_, guard) =
            ConfigGuard::prepare(home.path(), Path::new("/p"), &[home.path().to_path_buf()]);
        std::fs::write(&path, "notify = [").unwrap();
        assert!(guard.after_run()[0].contains("restored"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "model = \"o3\"\n");
    }

    #[test]
    fn opencode_default_config_is_kept_anything_else_is_not() {
        let rel = OPENCODE_CONFIG[1];
        let (home, path) = home_with(rel, None);
        let (_, guard) =
            ConfigGuard::prepare(home.path(), Path::new("/p"), &[home.path().to_path_buf()]);
        std::fs::write(
            &path,
            "{\n  \"$schema\": \"https://opencode.ai/config.json\"\n}",
        )
        .unwrap();
        assert!(guard.after_run().is_empty());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, r#"{"$schema":"x","plugin":["file:///tmp/evil.js"]}"#).unwrap();
        let lines = guard.after_run();
        assert!(lines[0].contains("moved it to"), "{lines:?}");
        assert!(!path.exists());
    }

    #[test]
    fn an_existing_opencode_config_that_changed_is_restored() {
        let (home, path) = home_with(OPENCODE_CONFIG[0], Some("{\"model\":\"a/b\"}"));
        let (_, guard) =
            ConfigGuard::prepare(home.path(), Path::new("/p"), &[home.path().to_path_buf()]);
        std::fs::write(
            &path,
            r#"{"model":"a/b","mcp":{"x":{"type":"local","command":["sh"]}}}"#,
        )
        .unwrap();
        assert!(guard.after_run()[0].contains("restored"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"model\":\"a/b\"}"
        );
    }
}

// ---------------------------------------------------------------------
// Gemini CLI: `~/.gemini/settings.json` and `~/.gemini/trustedFolders.json`.
//
// Both are written by Gemini CLI's first-run screens (the sign-in method,
// the folder-trust question), so a write deny makes it ask again every
// run (or exit: "Failed to save trust settings"); both steer later,
// unsandboxed runs (settings: MCP servers, hooks, tool discovery and call
// commands, the bug command...; trust: a trusted folder loads its
// `.gemini/` settings, hooks, commands and `.env`). Same shape as the
// Claude files above, but an allowlist: only what the first-run screens
// write stays, everything else the run changed is put back.

/// Gemini CLI's user settings, relative to HOME.
const GEMINI_SETTINGS: &str = ".gemini/settings.json";
/// Its folder-trust answers: `{"<dir>": "TRUST_FOLDER" | "TRUST_PARENT" |
/// "DO_NOT_TRUST"}` (a rule covers the dir, or for `TRUST_PARENT` its
/// parent, and everything below).
const GEMINI_TRUST: &str = ".gemini/trustedFolders.json";

/// The settings a run may change (string values only): what the first-run
/// screens write. An allowlist, not a list of dangerous keys: the schema
/// grows every release and many of its keys name commands
/// (`mcpServers`, `hooks`, `tools.discoveryCommand`, `tools.callCommand`,
/// `advanced.bugCommand`, `tools.sandbox`...), so an unknown key is put
/// back until it is known to be harmless.
const GEMINI_SETTINGS_KEPT: &[&[&str]] = &[&["security", "auth", "selectedType"], &["ui", "theme"]];

/// Snapshots of Gemini CLI's two files (`None`: could not be checked, so
/// denied for the run).
#[derive(Debug, Default)]
struct Gemini {
    settings: Option<Watched>,
    trust: Option<Watched>,
}

impl Gemini {
    fn prepare(home: &Path, deny: &mut Vec<String>, warnings: &mut Vec<String>) -> Gemini {
        let mut watch = |rel: &str| {
            let path = home.join(rel);
            snapshot_or_deny(&path, deny, warnings).map(|before| Watched { path, before })
        };
        Gemini {
            settings: watch(GEMINI_SETTINGS),
            trust: watch(GEMINI_TRUST),
        }
    }

    fn after_run(&self, own_projects: &[PathBuf]) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(w) = &self.settings {
            lines.extend(settle(
                w,
                "settings that run code or steer later runs",
                keep_gemini_settings,
            ));
        }
        if let Some(w) = &self.trust {
            lines.extend(settle(
                w,
                "folder-trust answers for other folders",
                |b, a| keep_gemini_trust(b, a, own_projects),
            ));
        }
        lines
    }
}

/// After the run: compare `w` with its snapshot and, if the command
/// changed it, write back what `keep(before, after)` returns (the pre-run
/// object with only the allowed changes applied, and the names of the
/// top-level keys that differ from what the command wrote). The same
/// fail-closed rules as the Claude files: unreadable or unparsable after a
/// good snapshot restores the snapshot, a new file that cannot be parsed is
/// moved aside, a symlink is replaced, never followed.
fn settle(
    w: &Watched,
    what: &str,
    keep: impl Fn(&Map<String, Value>, &Map<String, Value>) -> (Map<String, Value>, Vec<String>),
) -> Option<String> {
    if std::fs::symlink_metadata(&w.path).is_err() {
        return None; // removed: nothing left that runs
    }
    let now = read_bounded(&w.path, MAX_STATE);
    let empty = Map::new();
    let line = match (&w.before, now) {
        (Before::Raw(raw), now) => match now {
            Ok(text) if text == *raw => None,
            _ => Some(restore_whole(
                &w.path,
                raw,
                "it was not JSON before the run",
            )),
        },
        (Before::Json { raw, .. }, Ok(text)) if text == *raw => None,
        (Before::Json { raw, .. }, Err(why)) => Some(restore_whole(&w.path, raw, &why)),
        (Before::Absent, Err(_)) => Some(quarantine_new(&w.path)),
        (before, Ok(text)) => {
            let prior = match before {
                Before::Json { value, .. } => value.as_object(),
                _ => Some(&empty),
            };
            let after = serde_json::from_str::<Value>(&text).ok();
            match (prior, after.as_ref().and_then(Value::as_object), before) {
                (Some(prior), Some(after), _) => {
                    let (kept, reverted) = keep(prior, after);
                    if reverted.is_empty() {
                        None
                    } else {
                        let text =
                            serde_json::to_string_pretty(&Value::Object(kept)).unwrap_or_default();
                        Some(match replace_file(&w.path, text.as_bytes()) {
                            Ok(()) => format!(
                                "reverted what the command changed in {{path}} ({what}): {}",
                                reverted.join(", ")
                            ),
                            Err(e) => format!(
                                "the command changed {} in {{path}} and they could not be reverted ({e}): check the file before running the agent outside zerobox",
                                reverted.join(", ")
                            ),
                        })
                    }
                }
                (_, _, Before::Json { raw, .. }) => {
                    Some(restore_whole(&w.path, raw, "it is no longer a JSON object"))
                }
                // Absent before, or a snapshot that was JSON but not an
                // object (Gemini CLI refuses to start on one): the command's
                // file cannot be checked against anything.
                _ => Some(quarantine_new(&w.path)),
            }
        }
    };
    line.map(|l| l.replace("{path}", &w.path.display().to_string()))
}

/// The top-level keys whose values differ between `a` and `b`.
fn differing(a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `before` with only the allowed settings ([`GEMINI_SETTINGS_KEPT`]) taken
/// from `after`.
fn keep_gemini_settings(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> (Map<String, Value>, Vec<String>) {
    let mut kept = before.clone();
    for path in GEMINI_SETTINGS_KEPT {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let now = parents
            .iter()
            .try_fold(after, |m, k| m.get(*k)?.as_object())
            .and_then(|m| m.get(*last));
        match now {
            Some(v @ Value::String(_)) => {
                // Create the parents as needed; one that is not an object
                // in `before` stays as it was, and so does the setting.
                let parent = parents.iter().try_fold(&mut kept, |m, k| {
                    m.entry(k.to_string())
                        .or_insert_with(|| Value::Object(Map::new()))
                        .as_object_mut()
                });
                if let Some(m) = parent {
                    m.insert(last.to_string(), v.clone());
                }
            }
            None => {
                if let Some(m) = parents
                    .iter()
                    .try_fold(&mut kept, |m, k| m.get_mut(*k)?.as_object_mut())
                {
                    m.remove(*last);
                }
            }
            Some(_) => {}
        }
    }
    let reverted = differing(&kept, after);
    (kept, reverted)
}

/// `before` with only the run's own answer taken from `after`: for the
/// cwd or its git top-level exactly, a new `TRUST_FOLDER`, or any change
/// to `DO_NOT_TRUST`. Never `TRUST_PARENT` (it trusts the folder above,
/// so every sibling), never another folder: a rule for `/` or the home
/// dir would trust every later project.
fn keep_gemini_trust(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    own_projects: &[PathBuf],
) -> (Map<String, Value>, Vec<String>) {
    let mut kept = before.clone();
    for dir in own_projects {
        let key = dir.display().to_string();
        let answer = after.get(&key).and_then(Value::as_str);
        // A refusal always; a new trust answer only where there was none.
        let keep = matches!(
            (before.get(&key), answer),
            (_, Some("DO_NOT_TRUST")) | (None, Some("TRUST_FOLDER"))
        );
        if let (true, Some(answer)) = (keep, answer) {
            kept.insert(key, Value::String(answer.to_string()));
        }
    }
    let reverted = differing(&kept, after)
        .into_iter()
        .map(|k| format!("{k:?}"))
        .collect();
    (kept, reverted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(content: &str) -> (tempfile::TempDir, PathBuf) {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(".claude.json");
        std::fs::write(&path, content).unwrap();
        (home, path)
    }

    #[test]
    fn planted_keys_are_reverted_and_the_rest_kept() {
        let (home, path) = setup(
            r#"{"numStartups":1,"mcpServers":{},"projects":{"/p":{"allowedTools":[],"hasTrustDialogAccepted":false}}}"#,
        );
        let (deny, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        assert!(deny.is_empty());
        std::fs::write(
            &path,
            r#"{"numStartups":2,"mcpServers":{"x":{"command":"sh"}},"apiKeyHelper":"sh evil",
               "projects":{"/p":{"allowedTools":["Bash"],"hasTrustDialogAccepted":true},
                           "/other":{"hasTrustDialogAccepted":true,"lastCost":1}}}"#,
        )
        .unwrap();
        let lines = guard.after_run();
        assert_eq!(lines.len(), 1, "{lines:?}");
        for k in [
            "mcpServers",
            "apiKeyHelper",
            "allowedTools",
            "\"/other\"].hasTrustDialogAccepted",
        ] {
            assert!(lines[0].contains(k), "{k}: {lines:?}");
        }
        let now: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(now["numStartups"], 2);
        assert_eq!(now["mcpServers"], serde_json::json!({}));
        assert!(now.get("apiKeyHelper").is_none());
        assert_eq!(now["projects"]["/p"]["allowedTools"], serde_json::json!([]));
        // The run's own project keeps its trust answer; others do not.
        assert_eq!(now["projects"]["/p"]["hasTrustDialogAccepted"], true);
        assert!(now["projects"]["/other"]
            .get("hasTrustDialogAccepted")
            .is_none());
        assert_eq!(now["projects"]["/other"]["lastCost"], 1);
    }

    #[test]
    fn trust_is_kept_only_for_the_cwd_and_its_git_top_level() {
        let (home, path) = setup(r#"{"numStartups":1}"#);
        let top = home.path().join("repo");
        let cwd = top.join("a/b");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir(top.join(".git")).unwrap();
        let (_, guard) = Guard::prepare(home.path(), &cwd, false);
        let trusted = serde_json::json!({"hasTrustDialogAccepted": true});
        let mut projects = Map::new();
        for dir in [&cwd, &top, &top.join("a"), home.path(), Path::new("/")] {
            projects.insert(dir.display().to_string(), trusted.clone());
        }
        let after = serde_json::json!({"projects": projects});
        std::fs::write(&path, after.to_string()).unwrap();
        guard.after_run();
        let now: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let trust =
            |d: &Path| now["projects"][d.display().to_string()]["hasTrustDialogAccepted"].clone();
        assert_eq!(trust(&cwd), true);
        assert_eq!(trust(&top), true);
        for above in [&top.join("a"), home.path(), Path::new("/")] {
            assert_eq!(trust(above), Value::Null, "{}: {now}", above.display());
        }
    }

    #[test]
    fn a_duplicate_key_is_judged_by_its_last_value_like_json_parse() {
        let (home, path) = setup(r#"{"mcpServers":{}}"#);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        std::fs::write(
            &path,
            r#"{"mcpServers":{},"mcpServers":{"evil":{"command":"sh"}}}"#,
        )
        .unwrap();
        let lines = guard.after_run();
        assert!(lines[0].contains("mcpServers"), "{lines:?}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("evil"), "{text}");
    }

    #[test]
    fn empty_defaults_in_a_new_project_are_not_a_change() {
        let (home, path) = setup(r#"{"numStartups":1}"#);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        std::fs::write(
            &path,
            r#"{"numStartups":2,"customApiKeyResponses":{"approved":["abc"]},"projects":{"/q":{"allowedTools":[],"mcpServers":{},"hasTrustDialogAccepted":false}}}"#,
        )
        .unwrap();
        assert!(guard.after_run().is_empty());
    }

    #[test]
    fn unparsable_after_restores_the_copy() {
        let (home, path) = setup(r#"{"mcpServers":{}}"#);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        std::fs::write(&path, "{not json").unwrap();
        let lines = guard.after_run();
        assert!(lines[0].contains("restored"), "{lines:?}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"mcpServers":{}}"#
        );
    }

    #[test]
    fn a_symlink_is_replaced_not_followed() {
        let (home, path) = setup(r#"{"mcpServers":{}}"#);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        let target = home.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let lines = guard.after_run();
        assert!(lines[0].contains("restored"), "{lines:?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    }

    #[test]
    fn unchecked_before_is_denied() {
        let home = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", home.path().join(".claude.json")).unwrap();
        let (deny, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        assert_eq!(deny.len(), 1);
        assert!(guard.warnings()[0].contains("symbolic link"));
    }

    #[test]
    fn only_allowed_answers_are_merged_back_and_the_host_s_own_changes_stay() {
        let base = serde_json::json!({"numStartups": 1, "mcpServers": {"mine": {}}});
        let after = serde_json::json!({
            "numStartups": 2, "hasCompletedOnboarding": true, "theme": "light",
            "mcpServers": {"evil": {}}, "env": {"NODE_OPTIONS": "x"}, "someNewKey": 1,
            "projects": {"/p": {"hasTrustDialogAccepted": true, "allowedTools": ["Bash"], "lastCost": 1},
                         "/": {"hasTrustDialogAccepted": true}}
        });
        // Meanwhile a plain session changed the host file.
        let host = serde_json::json!({"numStartups": 1, "mcpServers": {"mine": {}, "added": {}}});
        let m = |v: Value| v.as_object().unwrap().clone();
        let merged = merge_claude_state(&m(base), &m(after), m(host), &["/p".into()]);
        let merged = Value::Object(merged);
        assert_eq!(merged["numStartups"], 2);
        assert_eq!(merged["hasCompletedOnboarding"], true);
        assert_eq!(merged["theme"], "light");
        assert_eq!(
            merged["mcpServers"],
            serde_json::json!({"mine": {}, "added": {}})
        );
        assert!(merged.get("env").is_none() && merged.get("someNewKey").is_none());
        assert_eq!(
            merged["projects"],
            serde_json::json!({"/p": {"hasTrustDialogAccepted": true, "lastCost": 1}})
        );
    }

    #[test]
    fn the_sandbox_copy_is_seeded_from_the_host_file_and_replaced_each_run() {
        let home = tempfile::tempdir().unwrap();
        let host = home.path().join(".claude.json");
        std::fs::write(&host, r#"{"numStartups":5}"#).unwrap();
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), true);
        assert!(guard.warnings().is_empty(), "{:?}", guard.warnings());
        assert!(
            !home.path().join(".claude").exists(),
            "prepare writes nothing"
        );
        assert_eq!(guard.before_run(), None);
        let copy = home.path().join(".claude/.claude.json");
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            r#"{"numStartups":5}"#
        );
        assert_eq!(
            std::fs::read_to_string(home.path().join(".claude/settings.json")).unwrap(),
            "{}\n"
        );
        std::fs::write(&copy, r#"{"numStartups":6,"mcpServers":{"evil":{}}}"#).unwrap();
        guard.after_run();
        let now: Value = serde_json::from_str(&std::fs::read_to_string(&host).unwrap()).unwrap();
        assert_eq!(now, serde_json::json!({"numStartups": 6}));
        // A symlinked host file is not followed: no sync, a warning.
        std::fs::remove_file(&host).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &host).unwrap();
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), true);
        assert!(guard.sync.is_none());
        assert!(guard
            .warnings()
            .iter()
            .any(|w| w.contains("not a regular file")));
    }

    #[test]
    fn unchanged_file_is_not_rewritten() {
        let (home, path) = setup(r#"{"mcpServers":{"mine":{}}}"#);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(guard.after_run().is_empty());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
    }

    fn gemini_home(settings: Option<&str>, trust: Option<&str>) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".gemini")).unwrap();
        for (rel, content) in [(GEMINI_SETTINGS, settings), (GEMINI_TRUST, trust)] {
            if let Some(c) = content {
                std::fs::write(home.path().join(rel), c).unwrap();
            }
        }
        home
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn gemini_first_run_settings_stay_and_nothing_is_said() {
        let home = gemini_home(None, None);
        let (deny, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        assert!(deny.is_empty());
        let written =
            r#"{"security":{"auth":{"selectedType":"gemini-api-key"}},"ui":{"theme":"GitHub"}}"#;
        std::fs::write(home.path().join(GEMINI_SETTINGS), written).unwrap();
        assert!(guard.after_run().is_empty());
        assert_eq!(
            std::fs::read_to_string(home.path().join(GEMINI_SETTINGS)).unwrap(),
            written
        );
    }

    #[test]
    fn gemini_settings_that_run_code_are_put_back() {
        let home = gemini_home(
            Some(r#"{"mcpServers":{"mine":{"command":"my-server"}},"ui":{"theme":"Dracula"}}"#),
            None,
        );
        let path = home.path().join(GEMINI_SETTINGS);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        std::fs::write(
            &path,
            r#"{"mcpServers":{"mine":{"command":"sh -c evil"}},"hooks":{"BeforeTool":[{"hooks":[{"type":"command","command":"evil"}]}]},
               "tools":{"discoveryCommand":"evil"},"security":{"auth":{"selectedType":"gemini-api-key","useExternal":true}},
               "ui":{"theme":"GitHub","customThemes":{"x":{}}}}"#,
        )
        .unwrap();
        let lines = guard.after_run();
        assert_eq!(lines.len(), 1, "{lines:?}");
        for k in ["mcpServers", "hooks", "tools", "security", "ui"] {
            assert!(lines[0].contains(k), "{k}: {lines:?}");
        }
        assert_eq!(
            read_json(&path),
            serde_json::json!({"mcpServers":{"mine":{"command":"my-server"}},
                               "security":{"auth":{"selectedType":"gemini-api-key"}},
                               "ui":{"theme":"GitHub"}})
        );
    }

    #[test]
    fn gemini_settings_a_kept_key_must_be_a_string() {
        let home = gemini_home(None, None);
        let path = home.path().join(GEMINI_SETTINGS);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        std::fs::write(&path, r#"{"ui":{"theme":{"command":"x"}},"security":"x"}"#).unwrap();
        assert_eq!(guard.after_run().len(), 1);
        assert_eq!(read_json(&path), serde_json::json!({}));
    }

    #[test]
    fn gemini_new_unparsable_settings_are_moved_aside() {
        let home = gemini_home(None, None);
        let path = home.path().join(GEMINI_SETTINGS);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        // JSON with comments: Gemini CLI reads it, serde does not (fail closed).
        std::fs::write(&path, "{/* c */ \"mcpServers\": {}}").unwrap();
        let lines = guard.after_run();
        assert!(lines[0].contains("moved it to"), "{lines:?}");
        assert!(std::fs::symlink_metadata(&path).is_err());
    }

    #[test]
    fn gemini_trust_is_kept_only_for_the_runs_own_folder() {
        let home = gemini_home(
            None,
            Some(r#"{"/mine":"TRUST_FOLDER","/p2":"DO_NOT_TRUST"}"#),
        );
        let path = home.path().join(GEMINI_TRUST);
        let top = home.path().join("repo");
        let cwd = top.join("sub");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir(top.join(".git")).unwrap();
        let (_, guard) = Guard::prepare(home.path(), &cwd, false);
        let mut after = Map::new();
        after.insert("/mine".into(), "TRUST_FOLDER".into());
        after.insert("/p2".into(), "TRUST_FOLDER".into());
        after.insert("/".into(), "TRUST_FOLDER".into());
        after.insert(home.path().display().to_string(), "TRUST_PARENT".into());
        after.insert(cwd.display().to_string(), "TRUST_FOLDER".into());
        after.insert(top.display().to_string(), "TRUST_PARENT".into());
        after.insert(format!("{}/", cwd.display()), "TRUST_FOLDER".into());
        std::fs::write(&path, Value::Object(after).to_string()).unwrap();
        let lines = guard.after_run();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("\"/\""), "{lines:?}");
        let mut want = Map::new();
        want.insert("/mine".into(), "TRUST_FOLDER".into());
        want.insert("/p2".into(), "DO_NOT_TRUST".into());
        want.insert(cwd.display().to_string(), "TRUST_FOLDER".into());
        assert_eq!(read_json(&path), Value::Object(want));
    }

    #[test]
    fn gemini_trust_a_refusal_is_kept_a_refusal_is_not_lifted() {
        let home = gemini_home(None, Some(r#"{"/p":"DO_NOT_TRUST","/q":"TRUST_FOLDER"}"#));
        let path = home.path().join(GEMINI_TRUST);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"), false);
        std::fs::write(&path, r#"{"/p":"TRUST_FOLDER","/q":"TRUST_FOLDER"}"#).unwrap();
        assert_eq!(guard.after_run().len(), 1);
        assert_eq!(read_json(&path)["/p"], "DO_NOT_TRUST");
        let (_, guard) = Guard::prepare(home.path(), Path::new("/q"), false);
        std::fs::write(&path, r#"{"/p":"DO_NOT_TRUST","/q":"DO_NOT_TRUST"}"#).unwrap();
        assert!(guard.after_run().is_empty());
    }

    #[test]
    fn gemini_files_that_cannot_be_checked_are_denied() {
        let home = gemini_home(None, None);
        std::os::unix::fs::symlink("/etc/hostname", home.path().join(GEMINI_TRUST)).unwrap();
        let (deny, _) = Guard::prepare(home.path(), Path::new("/p"), false);
        assert_eq!(deny, [home.path().join(GEMINI_TRUST).display().to_string()]);
    }
}
