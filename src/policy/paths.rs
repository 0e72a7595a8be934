//! Path expansion and normalisation for policy rules.
//!
//! A rule path as written (`~/.ssh`, `$CWD/build`, `./out`, `/etc/ssh/ssh_host_*`)
//! becomes one or more absolute paths. Existing paths are resolved so that a
//! symlink cannot carry a denied directory out from under its rule (denying
//! `~/.ssh` when it links to `/data/ssh` denies `/data/ssh`), and every
//! symlink met on the way is recorded ([`Expanded::links`]): a link that
//! lives where the command can write is attacker input for the next run,
//! and `policy::resolve` refuses a grant through one and protects a
//! protected one itself (see docs/policy.md, "Symlinks").

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

/// One expanded rule path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// The real path: every symlink on the way resolved (the part that does
    /// not exist yet kept as written).
    pub path: PathBuf,
    /// Each symlink the resolution went through, at its own real location.
    pub links: Vec<PathBuf>,
}

impl PathContext {
    /// Expand one rule path. `allow_glob` permits a `*` in the last
    /// component (matched against existing entries only).
    pub fn expand(
        &self,
        value: &str,
        origin: &str,
        allow_glob: bool,
    ) -> Result<Vec<Expanded>, PolicyError> {
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
        check_syntax(value).map_err(|r| bad(&r))?;
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
                        out.push(resolve_links(&parent.join(name)).map_err(|r| bad(&r))?);
                    }
                }
            }
            out.sort_by(|a, b| a.path.cmp(&b.path));
            return Ok(out);
        }
        Ok(vec![resolve_links(&normal).map_err(|r| bad(&r))?])
    }

    fn expand_vars(&self, value: &str) -> Result<PathBuf, String> {
        let (head, rest) = match value.find('/') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        let base = match head {
            "~" | "$HOME" | "${HOME}" => Some(&self.home),
            "$CWD" | "${CWD}" => Some(&self.cwd),
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

/// The variables a rule path may start with, and what they stand for.
/// The one list for the CLI and presets (`${NAME}` also accepted).
pub const PATH_VARIABLES: &[(&str, &str)] = &[
    ("~", "your home"),
    ("$HOME", "your home"),
    ("$CWD", "the working directory"),
    ("$TMPDIR", "the sandbox's private /tmp"),
];

/// The syntax of a rule path as written, without I/O: the one grammar for
/// flags and presets (a preset is checked when it is parsed, with its
/// FILE:LINE; [`PathContext::expand`] checks again). Absolute, relative to
/// the working directory (`.`, `src`), or starting with one of
/// [`PATH_VARIABLES`]; no control characters; `~user` and a `$` anywhere
/// else are refused (zerobox does not expand them, and a literal `$` name
/// is more likely a typo than a file).
pub fn check_syntax(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(
            "empty path; expected /abs, ~/…, $HOME/…, $CWD/…, $TMPDIR/… or a relative path".into(),
        );
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("contains a control character".into());
    }
    let head = value.split('/').next().unwrap_or_default();
    if value.starts_with('~') && head != "~" {
        return Err("only `~` (your own home) is supported, not ~user".into());
    }
    let known = PATH_VARIABLES.iter().any(|(name, _)| {
        head == *name
            || name.strip_prefix('$').is_some_and(|bare| {
                head.strip_prefix("${").and_then(|h| h.strip_suffix('}')) == Some(bare)
            })
    });
    if head.contains('$') && !known {
        return Err(format!(
            "unknown variable {head}; the known variables are ~, $HOME, $CWD and $TMPDIR (at the start of the path)"
        ));
    }
    let rest = value.strip_prefix(head).unwrap_or_default();
    if let Some(i) = rest.find('$') {
        let name: String = rest[i + 1..]
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return Err(format!(
            "unknown variable ${name} here: a variable may only start the path (~, $HOME, $CWD, $TMPDIR)"
        ));
    }
    Ok(())
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

/// The real path of `path` (see [`resolve_links`]); a path with a symlink
/// loop is kept as written.
pub fn canonical(path: &Path) -> PathBuf {
    resolve_links(path)
        .map(|e| e.path)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// What `lstat` (and `readlink`) said about one path, remembered for the
/// rest of a [`memoized`] scope.
#[derive(Clone)]
enum Seen {
    Link(PathBuf),
    Present,
    Missing,
}

thread_local! {
    static MEMO: std::cell::RefCell<Option<std::collections::HashMap<PathBuf, Seen>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` with the `lstat`s of [`resolve_links`] remembered: the rules of
/// one policy share their ancestors (`/home/u` for every `~/…` rule), and
/// each was looked up once per rule. The memory lasts only for `f` (one
/// resolution, before anything of the sandbox exists), never across runs
/// or into a later step that may have changed the disk (zerobox creates
/// state directories and placeholders after resolving). Nested scopes
/// share the outer one.
pub fn memoized<T>(f: impl FnOnce() -> T) -> T {
    let outer = MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let had = m.is_some();
        if !had {
            *m = Some(std::collections::HashMap::new());
        }
        had
    });
    // Cleared on the way out, also when `f` unwinds.
    struct Clear(bool);
    impl Drop for Clear {
        fn drop(&mut self) {
            if !self.0 {
                MEMO.with(|m| *m.borrow_mut() = None);
            }
        }
    }
    let _clear = Clear(outer);
    f()
}

/// `lstat` (and `readlink` for a link) of `path`, through the memo when a
/// [`memoized`] scope is active and `remember` is set. Errors other than
/// "missing" are never remembered.
fn look(path: &Path, remember: bool) -> Result<Seen, String> {
    if remember {
        if let Some(seen) = MEMO.with(|m| m.borrow().as_ref().and_then(|m| m.get(path).cloned())) {
            return Ok(seen);
        }
    }
    let seen = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Seen::Link(
            std::fs::read_link(path)
                .map_err(|e| format!("cannot read the symlink {}: {e}", path.display()))?,
        ),
        Ok(_) => Seen::Present,
        // Missing (or hidden from us, and so from the command): the rest
        // of the path is kept as written.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::EACCES)) =>
        {
            Seen::Missing
        }
        // Anything else (a path longer than PATH_MAX, an I/O error) would
        // make the rule silently protect nothing.
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if remember {
        MEMO.with(|m| {
            if let Some(m) = m.borrow_mut().as_mut() {
                m.insert(path.to_path_buf(), seen.clone());
            }
        });
    }
    Ok(seen)
}

/// Resolve `path` (absolute, normalised) one component at a time with
/// `lstat`, following each symlink by hand and recording where it was. A
/// dangling link resolves to its (missing) target. Hand-written rather
/// than `canonicalize` because zerobox needs the links themselves, and the
/// missing tail.
pub fn resolve_links(path: &Path) -> Result<Expanded, String> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    const MAX_LINKS: usize = 40; // as the kernel's own limit
    let mut pending: VecDeque<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut out = PathBuf::from("/");
    let mut links = Vec::new();
    let mut exists = true;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&name);
        if exists {
            // Only ancestors are shared between rules; a path's own last
            // component is looked at directly (remembering it would cost
            // more than it saves).
            match look(&next, !pending.is_empty())? {
                Seen::Link(target) => {
                    if links.len() >= MAX_LINKS {
                        return Err(format!(
                            "too many levels of symbolic links at {}",
                            next.display()
                        ));
                    }
                    links.push(next);
                    for c in target.components().rev() {
                        match c {
                            Component::Normal(n) => pending.push_front(n.to_os_string()),
                            Component::ParentDir => pending.push_front(OsString::from("..")),
                            _ => {}
                        }
                    }
                    if target.is_absolute() {
                        out = PathBuf::from("/");
                    }
                    continue;
                }
                Seen::Present => {}
                Seen::Missing => exists = false,
            }
        }
        out = next;
    }
    Ok(Expanded { path: out, links })
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
        let one = |v: &str| c.expand(v, "t", false).unwrap().remove(0).path;
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
        let got = resolve_links(&dir.path().join("link/new/file")).unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(got.path, base.join("real/new/file"));
        assert_eq!(got.links, vec![base.join("link")]);
    }

    #[test]
    fn dangling_and_chained_links_are_followed_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("d")).unwrap();
        std::os::unix::fs::symlink("d/b", base.join("a")).unwrap();
        std::os::unix::fs::symlink("../missing/x", base.join("d/b")).unwrap();
        let got = resolve_links(&base.join("a")).unwrap();
        assert_eq!(got.path, base.join("missing/x"));
        assert_eq!(got.links, vec![base.join("a"), base.join("d/b")]);
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        assert!(resolve_links(&base.join("loop")).is_err());
    }
}
