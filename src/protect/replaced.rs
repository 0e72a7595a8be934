//! Protected paths replaced on the host during a run.
//!
//! Inside a writable place (the project, a granted dir), a write-denied
//! path (`.git/config`, `.vscode/tasks.json`, `~/.codex/.env`…) is held by
//! a read-only bind mount in namespace mode: Landlock grants the writable
//! directory whole (so that new files can be made in it), and cannot take
//! a subtree back out of a grant. Linux detaches a mount whose mount point
//! is renamed over or unlinked in *another* mount namespace (since 3.18):
//! when something on the host saves such a file the usual way (a temp
//! file renamed over it: `git config`, `git push -u`, editors), the
//! sandbox's bind is gone and the command could write the new file. The
//! command cannot cause that rename, but it can wait for one; and while
//! host git holds `config.lock` (written, then renamed over `config`) the
//! command can append to the lock file, no detach needed.
//!
//! No layer can close that window without forbidding new files in such a
//! directory (see docs/threat-model.md). What zerobox does instead:
//!
//! 1. **Stop at once.** [`Replaced::record`] takes each held path's
//!    (device, inode) just before the command starts; while it runs,
//!    `sandbox::guard::HeldWatch` watches their directories and kills the
//!    sandbox as soon as one is another file, or gone (the launcher then
//!    exits with `exit::PROTECTION_LAPSED`, [`Replaced::stopped_line`]).
//!    The kernel detaches the bind before any event is queued, so a
//!    command polling `open(O_WRONLY)` can still get one write in.
//! 2. **Undo what that window allowed, where zerobox can judge it.** For
//!    a git directory's own config (`GITDIR/config`, `config.worktree`)
//!    the text before the run is kept (bounded, never through a symlink);
//!    after the run a replacement that adds or changes an entry that runs
//!    code or redirects git (`protect::git::guarded_entries`: fsmonitor,
//!    hooksPath, includes, pagers, filters, aliases, credential
//!    helpers, `core.worktree`, `url.*.insteadOf`…), or that is no
//!    readable config at all, is moved aside to
//!    `config.zerobox-replaced-TIME` and the pre-run text is put back
//!    (the simplest correct undo: no rewriting of a file the command
//!    wrote). The line names where the host's version went, so a change
//!    made on purpose can be re-applied. A replacement with no such entry
//!    (`git config user.name`, `git push -u`) is left as it is.
//! 3. **Report the rest.** Every other held path that changed (no content
//!    model) is named, with what to check; so is one the watcher missed
//!    (a replacement in the last instant of the run).
//!
//! Namespace mode only: in the Landlock-only fallback Landlock's precise
//! writes hold these paths whatever the host does (the new file is
//! granted by no rule), so nothing lapses there.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::policy::{FsAccess, Policy, RuleIndex};
use crate::sandbox::guard::{self, Held, Lapse, Stopped};
use crate::sandbox::linux::fsat::{self, Kind};

use super::git;

/// The held paths, as they were at the start.
#[derive(Debug, Default)]
pub struct Replaced {
    held: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    held: Held,
    /// Read-denied (held by a mask), not only write-denied.
    unreadable: bool,
    /// A git directory's config: its text and mode before the run.
    config: Option<(String, u32)>,
}

impl Replaced {
    /// Record every denied path that exists directly inside a writable
    /// place (its parent is writable: the ones a mount of their own holds,
    /// a read-only bind or a mask). A read-denied one counts too: Landlock
    /// grants the writable directory whole, so the new file a host save
    /// puts there is readable once the mask is detached. Call just before
    /// the command starts.
    pub fn record(policy: &Policy) -> Replaced {
        let index = RuleIndex::new(policy);
        let mut held: Vec<Entry> = Vec::new();
        for rule in &policy.fs {
            let path = &rule.path;
            if !matches!(rule.access, FsAccess::DenyWrite | FsAccess::DenyRead)
                || held.iter().any(|e| e.held.path == *path)
                || index.effective(path).write
                || !path.parent().is_some_and(|p| index.effective(p).write)
            {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                continue; // missing: `sandbox::guard` guards the name
            };
            let unreadable = !index.effective(path).read;
            let config = (meta.is_file() && !unreadable && git::is_gitdir_config(path))
                .then(|| git::read_config(path).ok())
                .flatten()
                .map(|text| (text, meta.mode() & 0o7777));
            held.push(Entry {
                held: Held {
                    path: path.clone(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                },
                unreadable,
                config,
            });
        }
        Replaced { held }
    }

    /// What the watcher compares.
    pub fn held(&self) -> Vec<Held> {
        self.held.iter().map(|e| e.held.clone()).collect()
    }

    /// The line for a run the watcher stopped: the path, what happened,
    /// and the exit code.
    pub fn stopped_line(s: &Stopped, code: i32) -> String {
        let what = match &s.lapse {
            Lapse::Replaced => "was replaced on the host during the run (a program there renamed a new file over it)".to_string(),
            Lapse::Gone => "was removed on the host during the run".to_string(),
            Lapse::Unknown(e) => format!("can no longer be checked ({e})"),
        };
        let action = match &s.killed {
            Ok(()) => "stopped the command".to_string(),
            Err(e) => format!("could not stop the command ({e})"),
        };
        format!(
            "error: {} {what}, which ends its protection inside the sandbox (the mount that held it is gone): {action}, exit {code}; what it may have changed is checked below",
            s.path.display()
        )
    }

    /// After the run (every process of the sandbox gone): one line per
    /// held path that is now another file or gone, saying what was done.
    pub fn after_run(&self) -> Vec<String> {
        self.held
            .iter()
            .filter_map(|e| e.held.lapse().map(|l| (e, l)))
            .map(|(e, lapse)| match &e.config {
                Some((text, mode)) => undo_config(&e.held.path, text, *mode, &lapse),
                None if e.unreadable => format!(
                    "warning: {} was replaced on the host during the run; it was unreadable inside the sandbox, but not the new file from that moment until the command ended, so the command may have read or changed it: review it, and treat a secret in it as exposed",
                    e.held.path.display()
                ),
                None => format!(
                    "warning: {} was replaced on the host during the run; its read-only protection inside the sandbox lapsed from then on, so the command may have changed it: review it before using it",
                    e.held.path.display()
                ),
            })
            .collect()
    }
}

/// A held git config changed during the run: keep the replacement if it
/// adds no entry that runs code or redirects git, else move it aside and
/// put `before` back.
fn undo_config(path: &Path, before: &str, mode: u32, lapse: &Lapse) -> String {
    let shown = path.display();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return format!("warning: {shown} changed during the run: review it before you run git");
    };
    // Never through a symlink: every step below is relative to this fd.
    let dir = match fsat::open_dir(parent) {
        Ok(d) => d,
        Err(e) => {
            return format!(
                "warning: {shown} changed during the run and cannot be checked ({e}): review it before you run git there"
            )
        }
    };
    let kind = match fsat::kind_at(&dir, name) {
        Ok((kind, _)) => kind,
        Err(e) => {
            return format!(
                "warning: {shown} changed during the run and cannot be checked ({e}): review it before you run git there"
            )
        }
    };
    if kind == Kind::Missing {
        return match put_back(&dir, name, before, mode) {
            Ok(()) => format!(
                "warning: {shown} was removed during the run: put back its text from before the run"
            ),
            Err(e) => format!(
                "warning: {shown} was removed during the run and could not be put back ({e}): restore it before you run git there"
            ),
        };
    }
    let why = match judge(&entry_path(&dir, name), before) {
        Ok(None) => {
            let how = if *lapse == Lapse::Replaced {
                "was replaced on the host during the run"
            } else {
                "changed during the run"
            };
            return format!(
                "warning: {shown} {how}; the new file adds or changes no entry that runs code or redirects git: left as it is"
            );
        }
        Ok(Some(keys)) => format!("adds or changes entries that run code or redirect git ({keys})"),
        Err(e) => format!("is not a config zerobox can check ({e})"),
    };
    let aside = match guard::move_aside(&dir, name, "replaced") {
        Ok(n) => parent.join(n),
        Err(e) => {
            return format!(
                "warning: {shown} changed during the run and {why}; it could not be moved aside ({e}): remove those entries before you run git there"
            )
        }
    };
    match put_back(&dir, name, before, mode) {
        Ok(()) => format!(
            "warning: {shown} changed during the run and the new file {why}: put back its text from before the run; the new file is now {} (if you made that change yourself, re-apply it from there)",
            aside.display()
        ),
        Err(e) => format!(
            "warning: {shown} changed during the run and the new file {why}: moved it to {}, and the text from before the run could not be put back ({e}): restore {shown} before you run git there",
            aside.display()
        ),
    }
}

/// `name` in `dir`, as a path that reaches it through the fd (only the
/// last component is looked up by name, never following a symlink where
/// opened with `O_NOFOLLOW`).
fn entry_path(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// `None` if the config at `path` adds or changes no guarded entry
/// compared with `before`; else the keys it adds (names only: the values
/// are the command's).
fn judge(path: &Path, before: &str) -> Result<Option<String>, String> {
    let now = git::guarded_entries(&git::read_config(path)?)?;
    // A pre-run text that no longer parses counts as having none.
    let was = git::guarded_entries(before).unwrap_or_default();
    let added: BTreeSet<&str> = now.difference(&was).map(|(k, _)| k.as_str()).collect();
    Ok((!added.is_empty()).then(|| added.into_iter().collect::<Vec<_>>().join(", ")))
}

/// Write `text` to a new file in `dir` and rename it to `name`, never over
/// an entry that appeared meanwhile (it then stays next to it).
fn put_back(dir: &OwnedFd, name: &OsStr, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".zerobox-restore-{:016x}", rand::random::<u64>()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(entry_path(dir, &tmp))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(mode & 0o777)))
        .and_then(|()| f.sync_all())
        .and_then(|()| fsat::rename_noreplace(dir, &tmp, name));
    if written.is_err() {
        let _ = std::fs::remove_file(entry_path(dir, &tmp));
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{FsRule, Origin};

    fn policy(root: &Path, denied: &[&str]) -> Policy {
        let rule = |p: &str, access| FsRule {
            path: if p.is_empty() {
                root.to_path_buf()
            } else {
                root.join(p)
            },
            access,
            origin: Origin::Test,
        };
        let mut fs = vec![rule("", FsAccess::AllowWrite)];
        fs.extend(denied.iter().map(|p| rule(p, FsAccess::DenyWrite)));
        Policy {
            cwd: root.to_path_buf(),
            home: root.to_path_buf(),
            fs,
            env: Default::default(),
            env_dropped: Vec::new(),
            env_withheld: Vec::new(),
            network: Default::default(),
            unix_sockets: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        (d, root)
    }

    /// `root/.git` laid out enough for `is_gitdir`, with `config`.
    fn gitdir(root: &Path, config: &str) -> PathBuf {
        let g = root.join(".git");
        std::fs::create_dir_all(g.join("objects")).unwrap();
        std::fs::write(g.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(g.join("config"), config).unwrap();
        g
    }

    /// What a host `git config` does: a new file renamed over the old.
    fn host_save(path: &Path, text: &str) {
        let new = path.with_extension("lock");
        std::fs::write(&new, text).unwrap();
        std::fs::rename(&new, path).unwrap();
    }

    fn asides(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".zerobox-replaced-"))
            .collect()
    }

    const BEFORE: &str = "[core]\n\tbare = false\n[user]\n\tname = t\n";

    #[test]
    fn a_file_renamed_over_is_named_an_untouched_one_is_not() {
        let (_d, root) = tmp();
        std::fs::write(root.join("held"), "a").unwrap();
        let r = Replaced::record(&policy(&root, &["held", "missing"]));
        assert_eq!(r.held.len(), 1, "only existing paths inside a grant");
        assert!(r.held[0].config.is_none(), "not a git config");
        assert!(r.after_run().is_empty());
        // Written in place: the same file, nothing to say.
        std::fs::write(root.join("held"), "b").unwrap();
        assert!(r.after_run().is_empty());
        host_save(&root.join("held"), "c");
        let lines = r.after_run();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("held was replaced on the host"),
            "{lines:?}"
        );
        assert_eq!(std::fs::read_to_string(root.join("held")).unwrap(), "c");
    }

    #[test]
    fn a_read_denied_file_in_a_writable_dir_is_held_and_named_as_exposed() {
        let (_d, root) = tmp();
        std::fs::write(root.join("secret"), "a").unwrap();
        let mut p = policy(&root, &[]);
        p.fs.push(FsRule {
            path: root.join("secret"),
            access: FsAccess::DenyRead,
            origin: Origin::Test,
        });
        let r = Replaced::record(&p);
        assert_eq!(r.held.len(), 1);
        host_save(&root.join("secret"), "b");
        let lines = r.after_run();
        assert!(
            lines[0].contains("treat a secret in it as exposed"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_path_inside_a_held_directory_is_not_held_itself() {
        // `.git/hooks` has its own bind; `.git/hooks/x` lies inside that
        // read-only mount, which a rename inside it does not detach.
        let (_d, root) = tmp();
        std::fs::create_dir(root.join("hooks")).unwrap();
        std::fs::write(root.join("hooks/x"), "a").unwrap();
        let r = Replaced::record(&policy(&root, &["hooks", "hooks/x"]));
        let held: Vec<_> = r.held().into_iter().map(|h| h.path).collect();
        assert_eq!(held, [root.join("hooks")]);
    }

    #[test]
    fn a_replaced_git_config_with_a_planted_key_is_put_back() {
        let (_d, root) = tmp();
        let g = gitdir(&root, BEFORE);
        let r = Replaced::record(&policy(&root, &[".git/config"]));
        assert_eq!(r.held.len(), 1);
        assert!(r.held[0].config.is_some(), "a git config's text is kept");
        // Host git saves its change; the command appends in the window.
        let host = format!("{BEFORE}\temail = t@example.invalid\n");
        host_save(&g.join("config"), &host);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(g.join("config"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"[core]\n\tfsmonitor = \"touch /x; false\"\n").unwrap();
        let lines = r.after_run();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("(core.fsmonitor)") && lines[0].contains("put back"),
            "{lines:?}"
        );
        assert_eq!(std::fs::read_to_string(g.join("config")).unwrap(), BEFORE);
        let aside = asides(&g);
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert!(
            lines[0].contains(&aside[0].display().to_string()),
            "{lines:?}"
        );
        assert!(std::fs::read_to_string(&aside[0])
            .unwrap()
            .contains("fsmonitor"));
    }

    /// The lock-file spelling: the command appended to `config.lock`
    /// while host git held it, before git renamed it over `config`.
    #[test]
    fn a_planted_lock_file_renamed_into_place_is_put_back() {
        let (_d, root) = tmp();
        let g = gitdir(&root, BEFORE);
        let r = Replaced::record(&policy(&root, &[".git/config"]));
        let lock = g.join("config.lock");
        std::fs::write(
            &lock,
            format!("{BEFORE}[branch \"main\"]\n\tremote = origin\n"),
        )
        .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&lock)
            .unwrap();
        std::io::Write::write_all(&mut f, b"[alias]\n\tco = !touch /x\n").unwrap();
        std::fs::rename(&lock, g.join("config")).unwrap();
        let lines = r.after_run();
        assert!(lines[0].contains("(alias.co)"), "{lines:?}");
        assert_eq!(std::fs::read_to_string(g.join("config")).unwrap(), BEFORE);
    }

    #[test]
    fn a_replaced_git_config_with_benign_changes_is_left() {
        let (_d, root) = tmp();
        let g = gitdir(&root, "[core]\n\tpager = less\n");
        let r = Replaced::record(&policy(&root, &[".git/config"]));
        // The same code-running entry, plus what `git push -u` adds.
        let host = "[core]\n\tpager = less\n[branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n";
        host_save(&g.join("config"), host);
        let lines = r.after_run();
        assert!(lines[0].contains("left as it is"), "{lines:?}");
        assert_eq!(std::fs::read_to_string(g.join("config")).unwrap(), host);
        assert!(asides(&g).is_empty());
    }

    #[test]
    fn an_unreadable_or_removed_git_config_is_put_back() {
        let (_d, root) = tmp();
        let g = gitdir(&root, BEFORE);
        let r = Replaced::record(&policy(&root, &[".git/config"]));
        // A symlink renamed over it: never read through, moved aside.
        std::os::unix::fs::symlink("/etc/passwd", g.join("new")).unwrap();
        std::fs::rename(g.join("new"), g.join("config")).unwrap();
        let lines = r.after_run();
        assert!(
            lines[0].contains("is not a config zerobox can check"),
            "{lines:?}"
        );
        assert_eq!(std::fs::read_to_string(g.join("config")).unwrap(), BEFORE);
        // Unparsable.
        host_save(&g.join("config"), "[core\n");
        let lines = r.after_run();
        assert!(
            lines[0].contains("is not a config zerobox can check"),
            "{lines:?}"
        );
        assert_eq!(std::fs::read_to_string(g.join("config")).unwrap(), BEFORE);
        // Removed.
        std::fs::remove_file(g.join("config")).unwrap();
        let lines = r.after_run();
        assert!(lines[0].contains("was removed"), "{lines:?}");
        assert_eq!(std::fs::read_to_string(g.join("config")).unwrap(), BEFORE);
    }
}
