//! Protected paths replaced on the host during a run.
//!
//! Inside a writable place (the project, a granted dir), a write-denied
//! path (`.git/config`, `.vscode/tasks.json`, `~/.codex/.env`…) is held by
//! a read-only bind mount in namespace mode. Linux detaches a mount whose
//! mount point is renamed over or unlinked in *another* mount namespace
//! (since 3.18): when something on the host saves such a file the usual
//! way (a temp file renamed over it: git, editors), the sandbox's bind is
//! gone and, for the rest of the run, the command can write the new file.
//! The command cannot cause that rename, but it can wait for one.
//!
//! This module does not close that window (see docs/threat-model.md); it
//! makes sure it is never silent: each held path's inode is recorded just
//! before the command starts and compared after the run, and a path that
//! was replaced is named, with what to check.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::policy::{FsAccess, Policy};

/// The held paths and the (device, inode) each had at the start.
#[derive(Debug, Default)]
pub struct Replaced {
    held: Vec<(PathBuf, u64, u64)>,
}

impl Replaced {
    /// Record every write-denied path that exists inside a writable rule
    /// (the ones a bind holds). Call just before the command starts.
    pub fn record(policy: &Policy) -> Replaced {
        let writable: Vec<&PathBuf> = policy
            .fs
            .iter()
            .filter(|r| r.access == FsAccess::AllowWrite)
            .map(|r| &r.path)
            .collect();
        let held = policy
            .fs
            .iter()
            .filter(|r| r.access == FsAccess::DenyWrite)
            .filter(|r| {
                writable
                    .iter()
                    .any(|w| r.path.starts_with(w) && r.path != **w)
            })
            .filter_map(|r| {
                let m = std::fs::symlink_metadata(&r.path).ok()?;
                Some((r.path.clone(), m.dev(), m.ino()))
            })
            .collect();
        Replaced { held }
    }

    /// After the run: one line per held path that is now another file (or
    /// gone).
    pub fn after_run(&self) -> Vec<String> {
        self.held
            .iter()
            .filter(|(path, dev, ino)| {
                std::fs::symlink_metadata(path)
                    .map(|m| (m.dev(), m.ino()) != (*dev, *ino))
                    .unwrap_or(true)
            })
            .map(|(path, _, _)| {
                format!(
                    "warning: {} was replaced on the host during the run; its read-only protection inside the sandbox lapsed from then on, so the command may have changed it: review it before using it",
                    path.display()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{FsRule, Origin};

    fn policy(root: &std::path::Path) -> Policy {
        let rule = |p: &str, access| FsRule {
            path: root.join(p),
            access,
            origin: Origin::Test,
        };
        Policy {
            cwd: root.to_path_buf(),
            home: root.to_path_buf(),
            fs: vec![
                rule("", FsAccess::AllowWrite),
                rule("held", FsAccess::DenyWrite),
                rule("missing", FsAccess::DenyWrite),
            ],
            env: Default::default(),
            env_dropped: Vec::new(),
            env_withheld: Vec::new(),
            network: Default::default(),
            unix_sockets: Vec::new(),
            secrets: Vec::new(),
        }
    }

    #[test]
    fn a_file_renamed_over_is_named_an_untouched_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::write(root.join("held"), "a").unwrap();
        let r = Replaced::record(&policy(&root));
        assert_eq!(r.held.len(), 1, "only existing paths inside a grant");
        assert!(r.after_run().is_empty());
        // Written in place: the same file, nothing to say.
        std::fs::write(root.join("held"), "b").unwrap();
        assert!(r.after_run().is_empty());
        std::fs::write(root.join("new"), "c").unwrap();
        std::fs::rename(root.join("new"), root.join("held")).unwrap();
        let lines = r.after_run();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("held was replaced on the host"),
            "{lines:?}"
        );
    }
}
