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

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::git::read_bounded;

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
    /// Gemini CLI's settings and folder-trust files.
    gemini: Gemini,
    warnings: Vec<String>,
}

impl Guard {
    /// Snapshot the agents' state files under `home`. Returns the paths to
    /// write-deny for this run (files that cannot be checked).
    pub fn prepare(home: &Path, cwd: &Path) -> (Vec<String>, Guard) {
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
        for rel in CLAUDE_STATE {
            let path = home.join(rel);
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

    /// Revert what the run changed in the protected keys; one line each.
    pub fn after_run(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for w in &self.files {
            if let Some(line) = self.check(w) {
                lines.push(line);
            }
        }
        lines.extend(self.gemini.after_run(&self.own_projects));
        lines
    }

    fn check(&self, w: &Watched) -> Option<String> {
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
        let (deny, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (_, guard) = Guard::prepare(home.path(), &cwd);
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
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (deny, guard) = Guard::prepare(home.path(), Path::new("/p"));
        assert_eq!(deny.len(), 1);
        assert!(guard.warnings()[0].contains("symbolic link"));
    }

    #[test]
    fn unchanged_file_is_not_rewritten() {
        let (home, path) = setup(r#"{"mcpServers":{"mine":{}}}"#);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (deny, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
        std::fs::write(&path, r#"{"ui":{"theme":{"command":"x"}},"security":"x"}"#).unwrap();
        assert_eq!(guard.after_run().len(), 1);
        assert_eq!(read_json(&path), serde_json::json!({}));
    }

    #[test]
    fn gemini_new_unparsable_settings_are_moved_aside() {
        let home = gemini_home(None, None);
        let path = home.path().join(GEMINI_SETTINGS);
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
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
        let (_, guard) = Guard::prepare(home.path(), &cwd);
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
        let (_, guard) = Guard::prepare(home.path(), Path::new("/p"));
        std::fs::write(&path, r#"{"/p":"TRUST_FOLDER","/q":"TRUST_FOLDER"}"#).unwrap();
        assert_eq!(guard.after_run().len(), 1);
        assert_eq!(read_json(&path)["/p"], "DO_NOT_TRUST");
        let (_, guard) = Guard::prepare(home.path(), Path::new("/q"));
        std::fs::write(&path, r#"{"/p":"DO_NOT_TRUST","/q":"DO_NOT_TRUST"}"#).unwrap();
        assert!(guard.after_run().is_empty());
    }

    #[test]
    fn gemini_files_that_cannot_be_checked_are_denied() {
        let home = gemini_home(None, None);
        std::os::unix::fs::symlink("/etc/hostname", home.path().join(GEMINI_TRUST)).unwrap();
        let (deny, _) = Guard::prepare(home.path(), Path::new("/p"));
        assert_eq!(deny, [home.path().join(GEMINI_TRUST).display().to_string()]);
    }
}
