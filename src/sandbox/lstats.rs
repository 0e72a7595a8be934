//! One `lstat` per host path for a whole plan.
//!
//! The mount plan (made twice when protected paths need pinning) and the
//! guards' search for missing protected paths look at the same rule paths
//! and ancestors. Asking the disk once per path saves work that grows with
//! the policy (a thousand `--deny-read` paths were `lstat`ed three times
//! over), and both decide on the same observation of each path, so a path
//! that appears or vanishes meanwhile cannot be planned as present by one
//! and guarded as missing by the other. What is mounted is still opened
//! and checked by descriptor at mount time (`linux::mounts::apply`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::FileType;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct Lstats(RefCell<HashMap<PathBuf, Option<FileType>>>);

impl Lstats {
    /// What `path` is (never following a symlink at its end), or `None` if
    /// it cannot be looked at: missing, or any error, which every caller
    /// treats as missing (nothing there to mount on; a deny path there is
    /// guarded if its parent is writable).
    pub fn kind(&self, path: &Path) -> Option<FileType> {
        if let Some(seen) = self.0.borrow().get(path) {
            return *seen;
        }
        let seen = std::fs::symlink_metadata(path).ok().map(|m| m.file_type());
        self.0.borrow_mut().insert(path.to_path_buf(), seen);
        seen
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.kind(path).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_looked_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let seen = Lstats::default();
        assert!(!seen.exists(&p));
        std::fs::create_dir(&p).unwrap();
        // The first observation stands for the whole plan.
        assert!(!seen.exists(&p));
        assert!(Lstats::default().kind(&p).is_some_and(|k| k.is_dir()));
    }
}
