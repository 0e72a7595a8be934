//! The crash journal of the agents' state files: what each one held
//! before the run, on disk for as long as the run is live, so a run whose
//! zerobox was killed (`kill -9`, the OOM killer, a crash) is still
//! checked.
//!
//! Without it, the after-run revert ([`Guard::after_run`],
//! [`ConfigGuard::after_run`]) was the only check: a killed zerobox left
//! the command's changes on disk, the next run took them as its baseline,
//! and a planted Codex `notify`, Gemini CLI hook or MCP server stayed for
//! good, to be run by the next plain, unsandboxed agent.
//!
//! - Before the command starts, the pre-run texts (and what else the
//!   after-run step needs: the run's own folders, the Claude Code copy,
//!   the Codex profile dir) are written to `agent-state/PID.RANDOM.json`
//!   in zerobox's data dir (denied inside, so the command can neither read
//!   nor write it): a new file (`O_EXCL`, 0600, never through a link)
//!   renamed into place, so a half-written journal never has a journal's
//!   name. At most [`MAX_JOURNAL`] bytes: a larger one is not written.
//!   Not `fsync`ed: a killed process's writes are in the page cache and
//!   reach the next run all the same; only a power cut or a kernel crash
//!   in the seconds after the start can lose the journal, and the command
//!   can cause neither. The sync cost 5-8 ms on every run (the journal
//!   is written for every run: the cwd's `.env` is always checked), half
//!   of a whole `zerobox -- true`.
//! - The run's after-run check removes it once a second pass finds
//!   nothing left to revert.
//! - The next run in the same HOME, holding the agent-state lock alone
//!   (`protect::StateLock`: no other run is live), first looks for
//!   journals of runs that are gone (pid, its start time and the boot id
//!   do not match a live process) and runs exactly the after-run step
//!   against the journalled texts, reported as such. A journal of another
//!   HOME (a shared `XDG_DATA_HOME`) or of a live run is left alone.
//! - Fail closed: a journal that cannot be read or parsed (a full disk
//!   cuts it short; the command cannot write it), or a revert that does
//!   not hold, makes the agents' config files read-only for the run,
//!   announced, and the journal is kept for the user.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Before, ClaudeSync, ConfigBefore, ConfigGuard, ConfigKind, ConfigWatched, Gemini, Guard,
    Watched, MAX_STATE,
};
use crate::protect::git::read_bounded;

/// The largest journal written or read: a few state files at their own
/// bound ([`MAX_STATE`]). A run whose files are larger gets no journal
/// (and so read-only files, see `protect::Protection::prepare`).
const MAX_JOURNAL: u64 = 4 * MAX_STATE;

/// The journal format; another number is a journal this zerobox cannot
/// read (fail closed, like a truncated one).
const VERSION: u32 = 1;

/// One run's journal as written on disk. Paths are hex-encoded bytes
/// (paths need not be UTF-8); texts are the files' contents (the state
/// files are read as UTF-8, anything else is not snapshotted but denied).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: u32,
    pid: u32,
    /// The process's start time (clock ticks after boot): a pid reused by
    /// another process has another one.
    start: u64,
    /// `/proc/sys/kernel/random/boot_id`: after a reboot every old run is
    /// gone, whatever its pid.
    boot: String,
    home: String,
    own_projects: Vec<String>,
    claude: Vec<Entry>,
    sync: Option<SyncDoc>,
    gemini_settings: Option<Entry>,
    gemini_trust: Option<Entry>,
    configs: Vec<ConfigEntry>,
    codex_dir: String,
    watch_new_profiles: bool,
    denied: Vec<String>,
    /// The project's `.env` files (absent in a journal written before
    /// they were checked).
    #[serde(default)]
    env_files: Vec<EnvEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvEntry {
    path: String,
    before: Option<String>,
    remove_only: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    path: String,
    /// `None`: the file did not exist before the run.
    before: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncDoc {
    host: String,
    sandbox: String,
    raw: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigEntry {
    path: String,
    kind: ConfigKind,
    before: Option<String>,
}

fn enc(p: &Path) -> String {
    hex::encode(p.as_os_str().as_bytes())
}

fn dec(s: &str) -> Result<PathBuf, String> {
    hex::decode(s)
        .map(|b| PathBuf::from(OsString::from_vec(b)))
        .map_err(|_| format!("a path is not hex ({s:.20})"))
}

fn before_text(b: &Before) -> Option<String> {
    match b {
        Before::Absent => None,
        Before::Json { raw, .. } | Before::Raw(raw) => Some(raw.clone()),
    }
}

/// The snapshot a text gives, as `snapshot_or_deny` makes it.
fn before_of(text: Option<String>) -> Before {
    match text {
        None => Before::Absent,
        Some(raw) => match serde_json::from_str::<Value>(&raw) {
            Ok(value) => Before::Json { raw, value },
            Err(_) => Before::Raw(raw),
        },
    }
}

fn entry(w: &Watched) -> Entry {
    Entry {
        path: enc(&w.path),
        before: before_text(&w.before),
    }
}

fn watched(e: Entry) -> Result<Watched, String> {
    Ok(Watched {
        path: dec(&e.path)?,
        before: before_of(e.before),
    })
}

/// Where the journals live: `agent-state/` in zerobox's data dir.
fn journal_dir() -> Option<PathBuf> {
    crate::dirs::zerobox_dir(crate::dirs::Kind::Data).map(|d| d.join("agent-state"))
}

/// This boot's id (empty if the kernel does not say).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of `pid` (field 22 of `/proc/PID/stat`, counted after
/// the command name, which may hold spaces and parentheses), if it is
/// running: a zombie (killed, not yet reaped by its parent) is a run that
/// is over.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// This run's journal; removed by [`Journal::remove`] once the after-run
/// check is clean. Dropped without that (the run ended another way), the
/// file stays for the next run.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// Write the journal of a run about to start.
    pub fn write(home: &Path, agents: &Guard, configs: &ConfigGuard) -> Result<Journal, String> {
        let dir = journal_dir().ok_or("no data directory")?;
        Journal::write_in(&dir, home, agents, configs)
    }

    fn write_in(
        dir: &Path,
        home: &Path,
        agents: &Guard,
        configs: &ConfigGuard,
    ) -> Result<Journal, String> {
        let pid = std::process::id();
        let doc = Doc {
            version: VERSION,
            pid,
            start: process_start(pid).ok_or("cannot read this process's start time")?,
            boot: boot_id(),
            home: enc(home),
            own_projects: agents.own_projects.iter().map(|p| enc(p)).collect(),
            claude: agents.files.iter().map(entry).collect(),
            sync: agents.sync.as_ref().map(|s| SyncDoc {
                host: enc(&s.host),
                sandbox: enc(&s.sandbox),
                raw: s.raw.clone(),
            }),
            gemini_settings: agents.gemini.settings.as_ref().map(entry),
            gemini_trust: agents.gemini.trust.as_ref().map(entry),
            configs: configs
                .files
                .iter()
                .map(|w| ConfigEntry {
                    path: enc(&w.path),
                    kind: w.kind,
                    before: match &w.before {
                        ConfigBefore::Absent => None,
                        ConfigBefore::Text(t) => Some(t.clone()),
                    },
                })
                .collect(),
            codex_dir: enc(&configs.codex_dir),
            watch_new_profiles: configs.watch_new_profiles,
            denied: configs.denied.iter().map(|p| enc(p)).collect(),
            env_files: configs
                .env
                .iter()
                .map(|f| EnvEntry {
                    path: enc(&f.path),
                    before: f.before.clone(),
                    remove_only: f.remove_only,
                })
                .collect(),
        };
        let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
        if text.len() as u64 > MAX_JOURNAL {
            return Err(format!(
                "the agents' config files add up to more than {MAX_JOURNAL} bytes"
            ));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {} ({e})", dir.display()))?;
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            _ => return Err(format!("{} is not a directory", dir.display())),
        }
        let id = format!("{pid}.{:016x}", rand::random::<u64>());
        let path = dir.join(format!("{id}.json"));
        // Not synced: see the module doc.
        crate::private_file::write_atomic(
            &path,
            text.as_bytes(),
            0o600,
            crate::private_file::Durability::Cached,
        )
        .map_err(|e| format!("cannot write {} ({e})", path.display()))?;
        Ok(Journal { path })
    }

    /// The after-run check is done and clean: the journal is not needed.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What [`recover`] did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// One line per file it reverted or moved (already says which run).
    pub lines: Vec<String>,
    /// Why this run must not take the files as a baseline (a journal it
    /// cannot read, a revert that did not hold): the files are read-only
    /// for it. Each names the journal, which is kept.
    pub blocked: Vec<String>,
}

/// Check every journal in the data dir of a run in `home` that is gone:
/// run its after-run step now, and remove the journal when that holds.
/// Call only while holding the agent-state lock exclusively.
pub fn recover(home: &Path) -> Recovery {
    match journal_dir() {
        Some(dir) => recover_in(&dir, home),
        None => Recovery::default(),
    }
}

fn recover_in(dir: &Path, home: &Path) -> Recovery {
    let mut out = Recovery::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out; // none written yet
    };
    let boot = boot_id();
    let all: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    let name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string()
    };
    // A temp file left by a run killed while writing its journal (no run
    // is writing one now: the lock is held exclusively).
    for tmp in all.iter().filter(|p| {
        let n = name(p);
        n.starts_with('.') && n.ends_with(".tmp")
    }) {
        if std::fs::symlink_metadata(tmp).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(tmp);
        }
    }
    let mut paths: Vec<PathBuf> = all
        .into_iter()
        .filter(|p| {
            let n = name(p);
            n.ends_with(".json") && !n.starts_with('.')
        })
        .collect();
    paths.sort();
    for path in paths {
        let kept = |why: String| {
            format!(
                "{why}; the journal {} is kept: check the agents' config files, then remove it",
                path.display()
            )
        };
        let doc = match read_bounded(&path, MAX_JOURNAL)
            .and_then(|t| serde_json::from_str::<Doc>(&t).map_err(|e| e.to_string()))
        {
            Ok(doc) if doc.version == VERSION => doc,
            Ok(doc) => {
                out.blocked.push(kept(format!(
                    "the journal of an earlier run has format {} (this zerobox reads {VERSION})",
                    doc.version
                )));
                continue;
            }
            Err(why) => {
                out.blocked.push(kept(format!(
                    "cannot read the journal of an earlier run ({why})"
                )));
                continue;
            }
        };
        if doc.home != enc(home) {
            continue; // another HOME's: its own next run checks it
        }
        if doc.boot == boot && process_start(doc.pid) == Some(doc.start) {
            continue; // live (cannot be while the lock is exclusive)
        }
        let pid = doc.pid;
        let (agents, configs) = match rebuild(doc) {
            Ok(g) => g,
            Err(why) => {
                out.blocked.push(kept(format!(
                    "cannot read the journal of an earlier run ({why})"
                )));
                continue;
            }
        };
        let check = || {
            let mut lines = agents.after_run();
            lines.extend(configs.after_run());
            lines
        };
        out.lines.extend(check().into_iter().map(|line| {
            format!("a previous run (pid {pid}) ended before zerobox could check the agents' config files (zerobox was killed); checked now: {line}")
        }));
        // A second pass finds nothing when every revert held.
        let left = check();
        if left.is_empty() {
            let _ = std::fs::remove_file(&path);
        } else {
            out.blocked.push(kept(format!(
                "what a killed run left in the agents' config files could not all be put back ({})",
                left.join("; ")
            )));
        }
    }
    out
}

/// The after-run step of the run a journal describes.
fn rebuild(doc: Doc) -> Result<(Guard, ConfigGuard), String> {
    let own_projects = doc
        .own_projects
        .iter()
        .map(|p| dec(p))
        .collect::<Result<Vec<_>, _>>()?;
    let sync = match doc.sync {
        None => None,
        Some(s) => {
            let base = s
                .raw
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .and_then(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .unwrap_or_default();
            Some(ClaudeSync {
                host: dec(&s.host)?,
                sandbox: dec(&s.sandbox)?,
                raw: s.raw,
                base,
                // The journal is written before the copy is seeded; one
                // left unseeded holds an older, already checked copy, and
                // checking it again against `~/.claude.json` is harmless.
                seeded: std::cell::Cell::new(true),
            })
        }
    };
    let agents = Guard {
        files: doc
            .claude
            .into_iter()
            .map(watched)
            .collect::<Result<_, _>>()?,
        own_projects: own_projects.clone(),
        sync,
        gemini: Gemini {
            settings: doc.gemini_settings.map(watched).transpose()?,
            trust: doc.gemini_trust.map(watched).transpose()?,
        },
        warnings: Vec::new(),
    };
    let configs = ConfigGuard {
        files: doc
            .configs
            .into_iter()
            .map(|c| {
                Ok(ConfigWatched {
                    path: dec(&c.path)?,
                    kind: c.kind,
                    before: match c.before {
                        None => ConfigBefore::Absent,
                        Some(t) => ConfigBefore::Text(t),
                    },
                })
            })
            .collect::<Result<_, String>>()?,
        codex_dir: dec(&doc.codex_dir)?,
        watch_new_profiles: doc.watch_new_profiles,
        denied: doc
            .denied
            .iter()
            .map(|p| dec(p))
            .collect::<Result<_, _>>()?,
        env: doc
            .env_files
            .into_iter()
            .map(|e| {
                Ok(super::dotenv::EnvFile {
                    path: dec(&e.path)?,
                    before: e.before,
                    remove_only: e.remove_only,
                })
            })
            .collect::<Result<_, String>>()?,
        own_projects,
        warnings: Vec::new(),
    };
    Ok((agents, configs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A HOME with a Codex config, its guards prepared as a run would.
    fn run_in(home: &Path) -> (Guard, ConfigGuard) {
        let (_, agents) = Guard::prepare(home, Path::new("/p"), false);
        let (_, configs) = ConfigGuard::prepare(home, Path::new("/p"), &[home.to_path_buf()]);
        (agents, configs)
    }

    /// Make the journal at `path` belong to a process that is gone (a pid
    /// above any `pid_max`).
    fn kill(path: &Path) {
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        doc["pid"] = Value::from(4_999_999_u32);
        std::fs::write(path, doc.to_string()).unwrap();
    }

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        let dir = t.path().join("data/agent-state");
        let codex = home.join(".codex/config.toml");
        std::fs::create_dir_all(codex.parent().unwrap()).unwrap();
        std::fs::write(&codex, "model = \"o3\"\n").unwrap();
        (t, home, dir, codex)
    }

    #[test]
    fn a_dead_runs_plant_is_reverted_a_live_or_foreign_journal_is_left() {
        let (_t, home, dir, codex) = setup();
        let (agents, configs) = run_in(&home);
        let j = Journal::write_in(&dir, &home, &agents, &configs).unwrap();
        let mode = std::fs::symlink_metadata(&j.path).unwrap();
        assert!(mode.is_file());
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        std::fs::write(&codex, "model = \"o3\"\nnotify = [\"sh\"]\n").unwrap();
        // Live (this process): not touched.
        let r = recover_in(&dir, &home);
        assert!(r.lines.is_empty() && r.blocked.is_empty(), "{r:?}");
        // Another HOME's: not touched either.
        kill(&j.path);
        let r = recover_in(&dir, &home.join("other"));
        assert!(r.lines.is_empty() && r.blocked.is_empty(), "{r:?}");
        assert!(std::fs::read_to_string(&codex).unwrap().contains("notify"));
        // Dead, this HOME: reverted, reported, removed.
        let r = recover_in(&dir, &home);
        assert!(r.blocked.is_empty(), "{r:?}");
        assert_eq!(r.lines.len(), 1, "{r:?}");
        assert!(
            r.lines[0].contains("killed") && r.lines[0].contains("notify"),
            "{r:?}"
        );
        assert_eq!(std::fs::read_to_string(&codex).unwrap(), "model = \"o3\"\n");
        assert!(!j.path.exists());
    }

    #[test]
    fn two_runs_one_dead_one_live_only_the_dead_one_is_checked() {
        let (_t, home, dir, codex) = setup();
        let (agents, configs) = run_in(&home);
        let dead = Journal::write_in(&dir, &home, &agents, &configs).unwrap();
        kill(&dead.path);
        let live = Journal::write_in(&dir, &home, &agents, &configs).unwrap();
        std::fs::write(&codex, "[mcp_servers.x]\ncommand = \"sh\"\n").unwrap();
        let r = recover_in(&dir, &home);
        assert_eq!(r.lines.len(), 1, "{r:?}");
        assert!(!dead.path.exists() && live.path.exists());
    }

    #[test]
    fn a_cut_short_or_unknown_journal_blocks_and_is_kept() {
        let (_t, home, dir, _) = setup();
        let (agents, configs) = run_in(&home);
        let j = Journal::write_in(&dir, &home, &agents, &configs).unwrap();
        let text = std::fs::read_to_string(&j.path).unwrap();
        std::fs::write(&j.path, &text[..text.len() / 2]).unwrap();
        let r = recover_in(&dir, &home);
        assert_eq!(r.blocked.len(), 1, "{r:?}");
        assert!(
            r.blocked[0].contains(&j.path.display().to_string()),
            "{r:?}"
        );
        assert!(j.path.exists());
        // Another format, or a symlink in the journal's place: the same.
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        doc["version"] = Value::from(VERSION + 1);
        std::fs::write(&j.path, doc.to_string()).unwrap();
        std::os::unix::fs::symlink(&j.path, dir.join("1.x.json")).unwrap();
        let r = recover_in(&dir, &home);
        assert_eq!(r.blocked.len(), 2, "{r:?}");
    }

    #[test]
    fn the_users_own_change_to_a_harmless_key_after_the_kill_stays() {
        let (_t, home, dir, codex) = setup();
        let (agents, configs) = run_in(&home);
        let j = Journal::write_in(&dir, &home, &agents, &configs).unwrap();
        kill(&j.path);
        // The plant, then the user picks another model with a plain codex.
        std::fs::write(&codex, "model = \"gpt-5\"\nnotify = [\"sh\"]\n").unwrap();
        let r = recover_in(&dir, &home);
        assert_eq!(r.lines.len(), 1, "{r:?}");
        assert_eq!(
            std::fs::read_to_string(&codex).unwrap(),
            "model = \"gpt-5\"\n"
        );
    }

    #[test]
    fn a_half_written_journal_of_a_killed_run_is_cleaned_up() {
        let (_t, home, dir, _) = setup();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".4999999.00.tmp"), "{\"version\":1,").unwrap();
        let r = recover_in(&dir, &home);
        assert!(r.lines.is_empty() && r.blocked.is_empty(), "{r:?}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn an_unchanged_file_says_nothing() {
        let (_t, home, dir, _) = setup();
        let (agents, configs) = run_in(&home);
        let j = Journal::write_in(&dir, &home, &agents, &configs).unwrap();
        kill(&j.path);
        let r = recover_in(&dir, &home);
        assert!(r.lines.is_empty() && r.blocked.is_empty(), "{r:?}");
        assert!(!j.path.exists());
    }

    #[test]
    fn a_killed_claude_run_merges_only_the_allowlisted_answers() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        let dir = t.path().join("data/agent-state");
        std::fs::create_dir_all(&home).unwrap();
        let host = home.join(".claude.json");
        std::fs::write(&host, r#"{"numStartups":1,"mcpServers":{}}"#).unwrap();
        let (_, agents) = Guard::prepare(&home, Path::new("/p"), true);
        let (_, configs) =
            ConfigGuard::prepare(&home, Path::new("/p"), std::slice::from_ref(&home));
        let j = Journal::write_in(&dir, &home, &agents, &configs).unwrap();
        assert_eq!(agents.before_run(), None);
        let copy = home.join(".claude/zerobox/.claude.json");
        std::fs::write(
            &copy,
            r#"{"numStartups":2,"theme":"light","mcpServers":{"evil":{"command":"sh"}}}"#,
        )
        .unwrap();
        kill(&j.path);
        let r = recover_in(&dir, &home);
        assert!(r.blocked.is_empty(), "{r:?}");
        assert!(r.lines.iter().any(|l| l.contains("mcpServers")), "{r:?}");
        let now: Value = serde_json::from_str(&std::fs::read_to_string(&host).unwrap()).unwrap();
        assert_eq!(
            now,
            serde_json::json!({"numStartups": 2, "theme": "light", "mcpServers": {}})
        );
        let copy_now = std::fs::read_to_string(&copy).unwrap();
        assert!(!copy_now.contains("evil"), "{copy_now}");
    }
}
