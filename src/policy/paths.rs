//! Path expansion and normalisation for policy rules.
//!
//! A rule path as written (`~/.ssh`, `$CWD/build`, `./out`, `/etc/ssh/ssh_host_*`)
//! becomes one or more absolute paths. Existing paths are canonicalised so
//! that a symlink cannot carry a denied directory out from under its rule
//! (denying `~/.ssh` when it links to `/data/ssh` denies `/data/ssh`).

use std::path::{Component, Path, PathBuf};

use super::PolicyError;

/// What relative paths and variables expand against.
#[derive(Debug, Clone)]
pub struct PathContext {
    pub home: PathBuf,
    pub cwd: PathBuf,
    /// What `$TMPDIR` means inside the sandbox (its private `/tmp`).
    pub tmpdir: PathBuf,
}

impl PathContext {
    /// Expand one rule path. `allow_glob` permits a `*` in the last
    /// component (matched against existing entries only).
    pub fn expand(
        &self,
        value: &str,
        origin: &str,
        allow_glob: bool,
    ) -> Result<Vec<PathBuf>, PolicyError> {
        let bad = |reason: &str| PolicyError::BadPath {
            value: value.to_string(),
            origin: origin.to_string(),
            reason: reason.to_string(),
        };
        if value.is_empty() {
            return Err(bad("empty path"));
        }
        if value.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let expanded = self.expand_vars(value).map_err(|r| bad(&r))?;
        let absolute = if expanded.is_absolute() {
            expanded
        } else {
            self.cwd.join(expanded)
        };
        let normal = lexical_normalise(&absolute);
        let file_name = normal
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_has_glob = normal
            .parent()
            .is_some_and(|p| p.to_string_lossy().contains('*'));
        if parent_has_glob || (file_name.contains('*') && !allow_glob) {
            return Err(bad(
                "wildcards are only allowed in the last component of a deny-read path",
            ));
        }
        if file_name.contains('*') {
            let parent = normal.parent().unwrap_or(Path::new("/"));
            let mut out = Vec::new();
            if let Ok(entries) = std::fs::read_dir(parent) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if glob_match(&file_name, &name) {
                        out.push(canonical(&parent.join(name)));
                    }
                }
            }
            out.sort();
            return Ok(out);
        }
        Ok(vec![canonical(&normal)])
    }

    fn expand_vars(&self, value: &str) -> Result<PathBuf, String> {
        let (head, rest) = match value.find('/') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        let base = match head {
            "~" | "$HOME" | "${HOME}" => Some(&self.home),
            "$CWD" | "${CWD}" | "$PWD" | "${PWD}" => Some(&self.cwd),
            "$TMPDIR" | "${TMPDIR}" => Some(&self.tmpdir),
            _ => None,
        };
        if let Some(base) = base {
            let rest = rest.trim_start_matches('/');
            return Ok(if rest.is_empty() {
                base.clone()
            } else {
                base.join(rest)
            });
        }
        if let Some(i) = value.find('$') {
            let name: String = value[i + 1..]
                .trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Err(format!(
                "unknown variable ${name} (known: ~, $HOME, $CWD, $TMPDIR, at the start of a path)"
            ));
        }
        if value.starts_with('~') {
            return Err("only ~ for your own home is supported (not ~user)".into());
        }
        Ok(PathBuf::from(value))
    }
}

/// Remove `.` and resolve `..` without touching the filesystem.
pub fn lexical_normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The real path of `path`: its longest existing ancestor canonicalised, plus
/// the part that does not exist yet.
pub fn canonical(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut tail = Vec::new();
    loop {
        // symlink_metadata: a dangling symlink still counts as existing, and
        // canonicalize fails on it; then keep the lexical path.
        if std::fs::symlink_metadata(&existing).is_ok() {
            let base = std::fs::canonicalize(&existing).unwrap_or(existing);
            return tail
                .iter()
                .rev()
                .fold(base, |acc, n: &std::ffi::OsString| acc.join(n));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                tail.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// `*` matches any run of characters (no other metacharacters).
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PathContext {
        PathContext {
            home: PathBuf::from("/nonexistent-home/u"),
            cwd: PathBuf::from("/nonexistent-home/u/proj"),
            tmpdir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn expansions() {
        let c = ctx();
        let one = |v: &str| c.expand(v, "t", false).unwrap().remove(0);
        assert_eq!(one("~"), PathBuf::from("/nonexistent-home/u"));
        assert_eq!(one("~/.ssh"), PathBuf::from("/nonexistent-home/u/.ssh"));
        assert_eq!(one("$HOME/x"), PathBuf::from("/nonexistent-home/u/x"));
        assert_eq!(one("${CWD}/b"), PathBuf::from("/nonexistent-home/u/proj/b"));
        assert_eq!(one("."), PathBuf::from("/nonexistent-home/u/proj"));
        assert_eq!(
            one("out/../x/./y"),
            PathBuf::from("/nonexistent-home/u/proj/x/y")
        );
        assert_eq!(one("/a/../../b"), PathBuf::from("/b"));
        assert_eq!(one("$TMPDIR/k"), PathBuf::from("/tmp/k"));
    }

    #[test]
    fn bad_paths_name_the_value() {
        let c = ctx();
        for (v, want) in [
            ("", "empty"),
            ("$FOO/x", "unknown variable $FOO"),
            ("/a/$X", "unknown variable $X"),
            ("~bob/x", "~user"),
            ("/a/*/b", "wildcards"),
            ("/a/b*", "wildcards"),
        ] {
            let e = c.expand(v, "cli", false).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
            assert!(e.contains(&format!("{v:?}")), "{v}: {e}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("ssh_host_*", "ssh_host_rsa_key"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b", "ab_"));
        assert!(!glob_match("ssh_host_*", "sshd_config"));
    }

    #[test]
    fn symlinks_resolve_to_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let got = canonical(&dir.path().join("link/new/file"));
        assert_eq!(got, std::fs::canonicalize(&real).unwrap().join("new/file"));
    }
}
