//! Git metadata that runs code on the host or redirects git: found on disk
//! before the run and made unwritable; created during the run, reverted
//! (or reported) after it.
//!
//! # What is protected, and why
//!
//! The user runs git on the host, in the project the command could write.
//! Whatever git *executes* or *reads instructions from* there must not be
//! the command's: for every git directory (`GITDIR`) reachable from a
//! writable place:
//!
//! | path | why |
//! |---|---|
//! | `GITDIR/config`, `config.worktree` | `core.fsmonitor`, `core.pager`, filters, aliases, `core.hooksPath`… run commands |
//! | `GITDIR/hooks/` | executed by commit, checkout, merge, push… |
//! | `GITDIR/commondir` | makes git read config and hooks from another directory |
//! | `GITDIR/gitdir` (linked worktree) and the worktree's `.git` file | where git finds the repository |
//! | `GITDIR/info/` | `exclude` hides files from `git status` (a planted file goes unseen), `attributes` selects filter/diff/merge drivers for files without a trace in the tree, `sparse-checkout` and `grafts` change what git shows |
//! | `GITDIR/objects/info/alternates`, `http-alternates` | redirect object reads to another directory |
//! | `GITDIR/worktrees/*`, `GITDIR/modules/**` | each is a git directory of its own, protected the same way |
//! | what the config names: `core.hooksPath`, `include.path`, `includeIf.*.path`, a `core.fsmonitor` path | code or config outside `GITDIR` |
//!
//! Objects, refs, `HEAD`, the index, logs and packed refs stay writable:
//! the command can still commit, branch and fetch.
//!
//! A name that does not exist yet cannot be protected by a mount (there is
//! nothing to bind) and git refuses a placeholder at some of them (an empty
//! or directory `commondir` or `config` is a fatal error), so those are
//! denied like any missing protected path, which the sandbox guards
//! without a placeholder (`sandbox::guard`: moved aside as soon as one
//! appears, journalled for a killed zerobox), and checked once more after
//! the run: one still there is renamed to `NAME.zerobox-quarantined` and
//! reported. `hooks/` and `info/` are always
//! denied (a placeholder directory there is harmless).
//!
//! A held config (one that exists, under a writable place) is held by a
//! read-only bind, which a host program saving it mid-run detaches:
//! `protect::replaced` then stops the run and, with
//! [`guarded_entries`], undoes a replacement that gained an entry that
//! runs code or redirects git.
//!
//! # Input
//!
//! Every file read here (`.git` files, `commondir`, `gitdir`, configs) may
//! have been written by the command in an earlier run. Each is opened with
//! `O_NOFOLLOW | O_NONBLOCK`, must be a regular file and is size-capped;
//! the number of git directories and scanned entries is bounded. Anything
//! that cannot be checked makes its whole git directory read-only for the
//! run, with a warning (fail closed). A pointer is followed only to add
//! denies: this module can never make anything writable.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::policy::paths::{canonical, lexical_normalise};

/// `.git` files, `commondir`, `gitdir`: one line.
const MAX_POINTER: u64 = 4096;
/// A git config file.
const MAX_CONFIG: u64 = 1 << 20;
/// Git directories examined per run (a repository with many worktrees or
/// submodules); past that, each further one is denied whole.
const MAX_GITDIRS: usize = 256;
/// Entries listed under one `worktrees/` or `modules/` tree.
const MAX_LISTED: usize = 4096;
/// Nested `include.path` levels followed (git allows 10).
const MAX_INCLUDE_DEPTH: usize = 10;
/// How deep below a writable root repositories are looked for
/// (`root/a/b/c/.git`).
const SCAN_DEPTH: usize = 3;
/// Directory entries one scan (before or after the run) reads at most.
const SCAN_ENTRIES: usize = 50_000;
/// Directories a scan does not enter: package and build trees, where
/// package managers and compilers leave no repositories and a project
/// keeps most of its files (50,000 entries cost a debug build about 60 ms
/// per run, both scans).
const SCAN_SKIP: &[&str] = &["node_modules", "target", ".venv", "__pycache__"];

/// Names under a git directory that git reads, which are watched when
/// they do not exist yet.
const WATCHED: &[&str] = &[
    "config",
    "config.worktree",
    "commondir",
    "objects/info/alternates",
    "objects/info/http-alternates",
];

/// What the git part of a run remembers between before and after.
#[derive(Debug, Default)]
pub struct Guard {
    /// Paths git reads that did not exist before the run.
    watched: Vec<PathBuf>,
    /// Protected names that are symlinks (`.git/hooks -> ../.githooks`):
    /// a rule protects the target, and the link must still be the same
    /// link after the run.
    links: Vec<(PathBuf, PathBuf)>,
    /// `.git` entries under the scan roots before the run.
    before: BTreeSet<PathBuf>,
    scan_roots: Vec<PathBuf>,
    warnings: Vec<String>,
}

impl Guard {
    /// Look at every repository reachable from `roots` (writable grants)
    /// and `cwd`. Returns the write denies (absolute paths) and the guard.
    pub fn prepare(roots: &[PathBuf], cwd: &Path, home: &Path) -> (Vec<String>, Guard) {
        let scan_roots: Vec<PathBuf> = roots
            .iter()
            .filter(|r| std::fs::symlink_metadata(r).is_ok_and(|m| m.is_dir()))
            .filter(|r| r.as_path() != Path::new("/"))
            .cloned()
            .collect();
        let mut finder = Finder::new(home);
        // The repository each writable place (and the cwd) is in, as git
        // would find it by walking up.
        let mut worktrees = BTreeSet::new();
        for start in scan_roots.iter().map(PathBuf::as_path).chain([cwd]) {
            if let Some(top) = enclosing_repository(start) {
                worktrees.insert(top);
            }
        }
        // Repositories below the writable places (nested, vendored,
        // submodule checkouts): the same scan after the run finds new ones.
        let scan = scan(&scan_roots);
        if scan.truncated {
            finder.warnings.push(format!(
                "more than {SCAN_ENTRIES} entries under the writable directories: repositories deeper than that are not protected, nor reported if created"
            ));
        }
        for dotgit in &scan.found {
            if let Some(parent) = dotgit.parent() {
                worktrees.insert(parent.to_path_buf());
            }
        }
        for top in &worktrees {
            finder.worktree(top);
        }
        let mut rules = Vec::new();
        for path in &finder.deny {
            match path.to_str().filter(|s| expressible(s)) {
                Some(s) => rules.push(s.to_string()),
                None => finder.warnings.push(format!(
                    "cannot protect {:?}: zerobox rules cannot name a path with `$`, `*` or invalid UTF-8; do not run git there",
                    path.display().to_string()
                )),
            }
        }
        for path in &finder.deny {
            if let Ok(target) = std::fs::read_link(path) {
                finder.links.insert((path.clone(), target));
            }
        }
        let guard = Guard {
            watched: finder.watched.into_iter().collect(),
            links: finder.links.into_iter().collect(),
            before: scan.found,
            scan_roots,
            warnings: finder.warnings,
        };
        (rules, guard)
    }

    /// Warnings from [`Guard::prepare`] (for stderr).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// After the run: quarantine watched names that appeared and report
    /// repositories the command created. One line per finding.
    pub fn after_run(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for path in &self.watched {
            if std::fs::symlink_metadata(path).is_err() {
                continue;
            }
            // The command may have replaced a directory on the way
            // (`objects/info`) with a link: never rename through one.
            let parent = path.parent().unwrap_or(Path::new("/"));
            if std::fs::canonicalize(parent).ok().as_deref() != Some(parent) {
                lines.push(format!(
                    "{} is now reached through a symbolic link (the command replaced a directory of the repository): check it before you run git there",
                    parent.display()
                ));
                continue;
            }
            lines.push(match quarantine(path) {
                Ok(moved) => format!(
                    "the command created {}, which git reads (it can run code or redirect git): moved it to {}",
                    path.display(),
                    moved.display()
                ),
                Err(e) => format!(
                    "the command created {}, which git reads (it can run code or redirect git), and it could not be moved away ({e}): remove it before you run git there",
                    path.display()
                ),
            });
        }
        for (path, target) in &self.links {
            lines.extend(restore_link(path, target, "which git reads"));
        }
        let after = scan(&self.scan_roots);
        for dotgit in after.found.difference(&self.before) {
            lines.push(describe_new_repository(dotgit));
        }
        lines
    }
}

/// The paths to deny, found by following a repository's layout.
struct Finder<'a> {
    home: &'a Path,
    deny: BTreeSet<PathBuf>,
    links: BTreeSet<(PathBuf, PathBuf)>,
    watched: BTreeSet<PathBuf>,
    visited: BTreeSet<PathBuf>,
    warnings: Vec<String>,
}

impl<'a> Finder<'a> {
    fn new(home: &'a Path) -> Self {
        Finder {
            home,
            deny: BTreeSet::new(),
            links: BTreeSet::new(),
            watched: BTreeSet::new(),
            visited: BTreeSet::new(),
            warnings: Vec::new(),
        }
    }

    /// A directory with a `.git` entry (a worktree, or a submodule checkout).
    fn worktree(&mut self, top: &Path) {
        let dotgit = top.join(".git");
        let Ok(meta) = std::fs::symlink_metadata(&dotgit) else {
            return;
        };
        if meta.is_dir() {
            // A main repository's own `.git` never has a `commondir`: one
            // there was planted (a run whose zerobox was killed before its
            // check) or is very unusual. Git already follows it: say so.
            let commondir = dotgit.join("commondir");
            if std::fs::symlink_metadata(&commondir).is_ok() {
                self.warnings.push(format!(
                    "{} exists: git reads this repository's config and hooks from where it points; if you did not make it, remove it before running git there",
                    commondir.display()
                ));
            }
            self.gitdir(&dotgit, Some(top));
            return;
        }
        // A file (linked worktree, submodule) or a link: where git looks
        // for the repository. The entry itself is never rewritable.
        self.deny.insert(dotgit.clone());
        if meta.file_type().is_symlink() {
            // Git follows it; so do rules on it. Deny the target whole:
            // nothing here reads through a link the command could re-point.
            let target = canonical(&dotgit);
            self.fail_closed(&target, &format!("{} is a symbolic link", dotgit.display()));
            return;
        }
        match read_pointer(&dotgit, "gitdir:") {
            Ok(rel) => {
                let target = resolve_from(top, &rel);
                if is_gitdir(&target) {
                    self.gitdir(&target, Some(top));
                } else {
                    self.fail_closed(
                        &target,
                        &format!(
                            "{} points to a directory that is not a git directory",
                            dotgit.display()
                        ),
                    );
                }
            }
            Err(why) => self.warnings.push(format!(
                "{}: {why}; it is read-only for this run",
                dotgit.display()
            )),
        }
    }

    /// One git directory: deny what runs code or redirects git, then follow
    /// its pointers, worktrees and submodules.
    fn gitdir(&mut self, dir: &Path, worktree: Option<&Path>) {
        let dir = canonical(dir);
        if !self.visited.insert(dir.clone()) {
            return;
        }
        if self.visited.len() > MAX_GITDIRS {
            self.fail_closed(&dir, &format!("more than {MAX_GITDIRS} git directories"));
            return;
        }
        self.deny.insert(dir.join("hooks"));
        self.deny.insert(dir.join("info"));
        for name in WATCHED {
            let path = dir.join(name);
            // A missing one is denied too: the sandbox guards a missing
            // protected path without a placeholder (moved aside as soon as
            // it appears, journalled for a killed zerobox); `after_run`
            // checks it once more.
            if std::fs::symlink_metadata(&path).is_err() {
                self.watched.insert(path.clone());
            }
            self.deny.insert(path);
        }
        // What the config names (and whether it reads config.worktree).
        let mut worktree_config = false;
        for name in ["config", "config.worktree"] {
            let path = dir.join(name);
            if std::fs::symlink_metadata(&path).is_err() {
                continue;
            }
            match self.config(&path, worktree, 0) {
                Ok(wc) => worktree_config |= wc,
                Err(why) => {
                    self.fail_closed(&dir, &why);
                    return;
                }
            }
        }
        let config_worktree = dir.join("config.worktree");
        if worktree_config && self.watched.remove(&config_worktree) {
            // Read by git from the first byte: hold it for the run (an
            // empty file is valid config).
            self.deny.insert(config_worktree);
        }
        let commondir = dir.join("commondir");
        if std::fs::symlink_metadata(&commondir).is_ok() {
            match read_pointer(&commondir, "") {
                Ok(rel) => {
                    let common = resolve_from(&dir, &rel);
                    if is_gitdir(&common) {
                        self.gitdir(&common, None);
                    } else {
                        self.fail_closed(
                            &common,
                            "a commondir points to a directory that is not a git directory",
                        );
                    }
                }
                Err(why) => {
                    self.fail_closed(&dir, &format!("{}: {why}", commondir.display()));
                    return;
                }
            }
        }
        // A linked worktree's back link names the worktree's `.git` file.
        let backlink = dir.join("gitdir");
        if std::fs::symlink_metadata(&backlink).is_ok() {
            self.deny.insert(backlink.clone());
            match read_pointer(&backlink, "") {
                Ok(rel) => {
                    let file = lexical_normalise(&resolve_from(&dir, &rel));
                    if std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
                        self.deny.insert(file);
                    }
                }
                Err(why) => self.warnings.push(format!("{}: {why}", backlink.display())),
            }
        }
        for entry in list_dirs(&dir.join("worktrees"), MAX_LISTED) {
            if is_gitdir(&entry) {
                self.gitdir(&entry, None);
            }
        }
        self.modules(&dir.join("modules"), 0);
    }

    /// `modules/` holds one git directory per submodule; names may contain
    /// slashes, so descend until a git directory is found.
    fn modules(&mut self, dir: &Path, depth: usize) {
        if depth > 8 {
            self.fail_closed(dir, "submodule names nested too deep");
            return;
        }
        for entry in list_dirs(dir, MAX_LISTED) {
            if is_gitdir(&entry) {
                self.gitdir(&entry, None);
            } else {
                self.modules(&entry, depth + 1);
            }
        }
    }

    /// Read one config file: deny what it names; returns whether it turns
    /// on `extensions.worktreeConfig`.
    fn config(
        &mut self,
        path: &Path,
        worktree: Option<&Path>,
        depth: usize,
    ) -> Result<bool, String> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(format!("{}: includes nested too deep", path.display()));
        }
        let text =
            read_bounded(path, MAX_CONFIG).map_err(|e| format!("{}: {e}", path.display()))?;
        let entries = parse_config(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut worktree_config = false;
        for (key, value) in entries {
            let is_include =
                key == "include.path" || (key.starts_with("includeif.") && key.ends_with(".path"));
            if is_include {
                let included = self.expand(&base, &value);
                self.deny.insert(included.clone());
                if std::fs::symlink_metadata(&included).is_ok_and(|m| m.is_file()) {
                    worktree_config |= self.config(&included, worktree, depth + 1)?;
                } else if std::fs::symlink_metadata(&included).is_ok() {
                    return Err(format!(
                        "{}: included {} is not a regular file",
                        path.display(),
                        included.display()
                    ));
                }
            } else if key == "core.hookspath" {
                // Relative to where hooks run: the worktree's top.
                let from = worktree.unwrap_or(&base);
                self.deny.insert(self.expand(from, &value));
            } else if key == "core.fsmonitor"
                && !is_bool(&value)
                && !value.contains(char::is_whitespace)
            {
                let from = worktree.unwrap_or(&base);
                self.deny.insert(self.expand(from, &value));
            } else if key == "extensions.worktreeconfig" {
                worktree_config = !matches!(
                    value.to_ascii_lowercase().as_str(),
                    "false" | "no" | "off" | "0"
                );
            }
        }
        Ok(worktree_config)
    }

    /// A path as git expands it in config: `~/` is the home.
    fn expand(&self, base: &Path, value: &str) -> PathBuf {
        let p = match value.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None => base.join(value),
        };
        canonical(&lexical_normalise(&p))
    }

    /// Deny `dir` whole (commits fail there) and say why.
    fn fail_closed(&mut self, dir: &Path, why: &str) {
        self.deny.insert(dir.to_path_buf());
        self.warnings.push(format!(
            "cannot check the git metadata in {} ({why}): all of it is read-only for this run",
            dir.display()
        ));
    }
}

/// The top of the repository `start` is in (the first directory, going up,
/// that has a `.git` entry), as git finds it.
fn enclosing_repository(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if std::fs::symlink_metadata(d.join(".git")).is_ok() {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    None
}

/// What git's own check asks of a git directory: `HEAD`, and `objects/`
/// (or a `commondir` that provides it). Not following a final symlink.
fn is_gitdir(dir: &Path) -> bool {
    let is = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
        && is(&dir.join("HEAD"))
        && (std::fs::symlink_metadata(dir.join("objects")).is_ok_and(|m| m.is_dir())
            || is(&dir.join("commondir")))
}

/// `base/rel`, or `rel` when absolute; canonical (real) path.
fn resolve_from(base: &Path, rel: &str) -> PathBuf {
    canonical(&lexical_normalise(&base.join(rel)))
}

/// Subdirectories of `dir` (not symlinks), at most `max`.
fn list_dirs(dir: &Path, max: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .take(max)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Read a regular file of at most `max` bytes, never through a final
/// symlink and never blocking on a FIFO.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<String, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                "is a symbolic link".to_string()
            } else {
                e.to_string()
            }
        })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("larger than {max} bytes"));
    }
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    String::from_utf8(buf).map_err(|_| "not UTF-8".to_string())
}

/// A one-line pointer file (`gitdir: PATH`, or a bare path): its path.
fn read_pointer(path: &Path, prefix: &str) -> Result<String, String> {
    let text = read_bounded(path, MAX_POINTER)?;
    let line = text.trim_end_matches(['\n', '\r']);
    let value = line
        .strip_prefix(prefix)
        .ok_or_else(|| format!("does not start with {prefix:?}"))?
        .trim();
    if value.is_empty() || value.contains(['\n', '\0']) {
        return Err("not a single path".into());
    }
    Ok(value.to_string())
}

fn is_bool(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
    )
}

/// Can a policy layer carry this path as written? (`policy::paths` reads
/// `$` as a variable and `*` as a wildcard.)
fn expressible(s: &str) -> bool {
    !s.contains(['$', '*', '\0'])
}

/// If `path` is no longer the symlink to `target` it was before the run,
/// move what is there now out of the way and put the link back; one line
/// for stderr. `what` says why the link matters.
pub(crate) fn restore_link(path: &Path, target: &Path, what: &str) -> Option<String> {
    if std::fs::read_link(path).ok().as_deref() == Some(target) {
        return None;
    }
    let moved = match std::fs::symlink_metadata(path) {
        Ok(_) => quarantine(path).map(|to| format!(" (the replacement is now {})", to.display())),
        Err(_) => Ok(String::new()),
    };
    let restored = moved.and_then(|m| std::os::unix::fs::symlink(target, path).map(|()| m));
    Some(match restored {
        Ok(m) => format!(
            "the command replaced the link {} -> {}, {what}: restored it{m}",
            path.display(),
            target.display()
        ),
        Err(e) => format!(
            "the command replaced the link {} -> {}, {what}, and it could not be restored ({e}): check it before relying on it",
            path.display(),
            target.display()
        ),
    })
}

/// Move a file git would read out of its way (see [`super::quarantine`]).
fn quarantine(path: &Path) -> std::io::Result<PathBuf> {
    super::quarantine(path)
}

/// The `.git` entries found below some roots.
struct Scan {
    found: BTreeSet<PathBuf>,
    truncated: bool,
}

/// Find `.git` entries below `roots` (at most [`SCAN_DEPTH`] levels,
/// [`SCAN_ENTRIES`] entries, not in [`SCAN_SKIP`]), never following
/// symlinks nor entering a `.git` directory.
fn scan(roots: &[PathBuf]) -> Scan {
    let mut out = Scan {
        found: BTreeSet::new(),
        truncated: false,
    };
    let mut budget = SCAN_ENTRIES;
    let mut queue: std::collections::VecDeque<(PathBuf, usize)> =
        roots.iter().map(|r| (r.clone(), 0)).collect();
    while let Some((dir, depth)) = queue.pop_front() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if budget == 0 {
                out.truncated = true;
                return out;
            }
            budget -= 1;
            let Ok(ft) = entry.file_type() else { continue };
            if entry.file_name() == ".git" {
                out.found.insert(entry.path());
            } else if ft.is_dir()
                && depth < SCAN_DEPTH
                && !SCAN_SKIP.iter().any(|s| entry.file_name() == *s)
            {
                queue.push_back((entry.path(), depth + 1));
            }
        }
    }
    out
}

/// Config keys whose value git runs as a command (or which name code).
fn runs_code(key: &str, value: &str) -> bool {
    const EXACT: &[&str] = &[
        "core.alternaterefscommand",
        "core.fsmonitor",
        "core.hookspath",
        "core.sshcommand",
        "core.pager",
        "core.editor",
        "core.askpass",
        "core.gitproxy",
        "sequence.editor",
        "diff.external",
        "credential.helper",
        "gpg.program",
        "gpg.ssh.defaultkeycommand",
        "include.path",
        "interactive.difffilter",
        "uploadpack.packobjectshook",
        "web.browser",
    ];
    let parts: Vec<&str> = key.split('.').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if EXACT.contains(&key) {
        return !(key == "core.fsmonitor" && is_bool(value));
    }
    match (first, last) {
        // Every alias: one without `!` runs git with its own options,
        // and some of those run code (`-c core.fsmonitor=…`,
        // `grep -O<cmd>`, `difftool -x`, `rebase --exec`).
        ("alias", _) => true,
        ("filter", "clean" | "smudge" | "process") => true,
        ("diff", "textconv" | "command") => true,
        ("merge", "driver") => true,
        ("includeif", "path") => true,
        ("credential", "helper") => true,
        ("gpg", "program") => true,
        ("pager", _) => true,
        ("remote", "uploadpack" | "receivepack") => true,
        // `ext::CMD` runs CMD on fetch and push (when `protocol.ext.allow`
        // lets it: see `redirects`).
        ("remote", "url" | "pushurl") => value.starts_with("ext::"),
        ("difftool" | "mergetool" | "man" | "browser", "cmd" | "path") => true,
        // Config-defined hooks (git 2.46+), `update = !cmd` submodules,
        // trailer commands.
        ("hook", "command") => true,
        ("submodule", "update") => value.starts_with('!'),
        ("trailer", "command" | "cmd") => true,
        // `git send-email` runs an absolute `smtpServer` as sendmail.
        ("sendemail", "smtpserver") => true,
        // Any other `…cmd`/`…command`: git's keys so named are commands
        // (`guitool.*.cmd`, `sendemail.toCmd`/`ccCmd`/`headerCmd`, and
        // whatever a later git adds under the same convention).
        (_, last) if last.ends_with("cmd") || last.ends_with("command") => true,
        _ => false,
    }
}

/// Config keys that send git somewhere else: another worktree or git
/// directory, other URLs for a remote (a push of the project to another
/// host: a remote's own `url`/`pushurl` as much as an `insteadOf`), a
/// proxy for its HTTP traffic (which sees the credentials), a transport
/// that runs a command.
fn redirects(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    matches!(key, "core.worktree" | "core.bare")
        || matches!(
            (first, last),
            ("url", "insteadof" | "pushinsteadof")
                | ("protocol", "allow")
                | ("remote", "url" | "pushurl" | "proxy")
                | ("http", "proxy")
        )
}

/// The entries of a git config that run code or redirect git (what a
/// replacement of a held config must not add): `(key, value)` pairs,
/// keys as [`parse_config`] gives them. An error: the text is not a
/// config git would read the same way.
pub(crate) fn guarded_entries(text: &str) -> Result<BTreeSet<(String, String)>, String> {
    Ok(parse_config(text)?
        .into_iter()
        .filter(|(k, v)| runs_code(k, v) || redirects(k))
        .collect())
}

/// Is `path` a git directory's own config (`GITDIR/config`,
/// `GITDIR/config.worktree`)? Read as [`read_config`] reads it.
pub(crate) fn is_gitdir_config(path: &Path) -> bool {
    let is_config = path
        .file_name()
        .is_some_and(|n| n == "config" || n == "config.worktree");
    is_config && path.parent().is_some_and(is_gitdir)
}

/// A git config's text as this module reads one: a regular file (never
/// through a final symlink), at most [`MAX_CONFIG`] bytes, UTF-8.
pub(crate) fn read_config(path: &Path) -> Result<String, String> {
    read_bounded(path, MAX_CONFIG)
}

/// One stderr line about a repository the command created.
fn describe_new_repository(dotgit: &Path) -> String {
    let top = dotgit.parent().unwrap_or(Path::new("/"));
    let gitdir = match std::fs::symlink_metadata(dotgit) {
        Ok(m) if m.is_dir() => Some(dotgit.to_path_buf()),
        Ok(m) if m.is_file() => read_pointer(dotgit, "gitdir:")
            .ok()
            .map(|rel| resolve_from(top, &rel)),
        _ => None,
    };
    let mut code = Vec::new();
    if let Some(dir) = &gitdir {
        let hooks = dir.join("hooks");
        if let Ok(entries) = std::fs::read_dir(&hooks) {
            let mut names: Vec<String> = entries
                .flatten()
                .take(1000)
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".sample"))
                .map(|e| hooks.join(e.file_name()).display().to_string())
                .collect();
            names.sort();
            code.extend(names.into_iter().take(20));
        }
        for name in ["config", "config.worktree"] {
            let path = dir.join(name);
            let Ok(text) = read_bounded(&path, MAX_CONFIG) else {
                continue;
            };
            let keys: Vec<String> = match parse_config(&text) {
                Ok(entries) => entries
                    .into_iter()
                    .filter(|(k, v)| runs_code(k, v))
                    .map(|(k, _)| k)
                    .collect(),
                Err(_) => vec!["(unparsable)".to_string()],
            };
            if !keys.is_empty() {
                code.push(format!("{} ({})", path.display(), keys.join(", ")));
            }
        }
        if std::fs::symlink_metadata(dir.join("commondir")).is_ok() {
            code.push(format!(
                "{} (reads config and hooks from elsewhere)",
                dir.join("commondir").display()
            ));
        }
    }
    let pointer = match (&gitdir, std::fs::symlink_metadata(dotgit)) {
        (Some(dir), Ok(m)) if !m.is_dir() => format!(" (its .git points to {})", dir.display()),
        _ => String::new(),
    };
    if code.is_empty() {
        format!(
            "the command created a git repository at {}{pointer}; it has no hooks or config that run code",
            top.display()
        )
    } else {
        format!(
            "the command created a git repository at {}{pointer}: git runs code from {} there; review them before you run git in it",
            top.display(),
            code.join(", ")
        )
    }
}

/// Git config as (key, value) pairs: `section[.subsection].name`, section
/// and name lowercased (as git compares them), subsection as written (a
/// `[section.sub]` header lowercased whole, as git does); a key without
/// `=` reads `true`.
///
/// Hand-written, and on purpose a transcription of git's own reader
/// (`config.c`: `git_parse_source`, `get_base_var`, `get_value`,
/// `parse_value`, git 2.47) character by character rather than a line
/// splitter: the command writes these files, and any text this reads
/// differently from git is a place to hide an entry (a comment ending in
/// `\`, which git does not continue; `""` before an alias's `!`; `\b`,
/// which git keeps as a byte). What git would refuse is an error here too
/// (the caller fails closed); a few things git refuses are accepted (a
/// key followed by a comment), never the other way round.
pub(crate) fn parse_config(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut r = ConfigReader::new(text);
    let mut out = Vec::new();
    let mut section = String::new();
    let mut comment = false;
    // git skips a UTF-8 byte order mark at the start (and only there).
    r.skip_bom();
    loop {
        let c = r.next();
        if c == '\n' {
            if r.eof {
                return Ok(out);
            }
            comment = false;
            continue;
        }
        if comment || is_git_space(c) {
            continue;
        }
        match c {
            '#' | ';' => comment = true,
            '[' => section = r.section()?,
            c if c.is_ascii_alphabetic() => {
                if section.is_empty() {
                    return Err(r.error("key outside a section"));
                }
                let (name, value) = r.entry(c)?;
                out.push((format!("{section}.{name}"), value));
            }
            _ => return Err(r.error("bad key")),
        }
    }
}

/// git's `isspace` (its own ctype table: no `\v`, no `\f`).
fn is_git_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// git's `iskeychar`.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// The character stream git's config reader sees: `\r\n` is `\n`, the end
/// is one last `\n` with `eof` set.
struct ConfigReader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    eof: bool,
    line: usize,
}

impl<'a> ConfigReader<'a> {
    fn new(text: &'a str) -> Self {
        ConfigReader {
            chars: text.chars().peekable(),
            eof: false,
            line: 1,
        }
    }

    fn skip_bom(&mut self) {
        if self.chars.peek() == Some(&'\u{feff}') {
            self.chars.next();
        }
    }

    fn next(&mut self) -> char {
        match self.chars.next() {
            Some('\r') if self.chars.peek() == Some(&'\n') => {
                self.chars.next();
                self.line += 1;
                '\n'
            }
            Some('\n') => {
                self.line += 1;
                '\n'
            }
            Some(c) => c,
            None => {
                self.eof = true;
                '\n'
            }
        }
    }

    fn error(&self, what: &str) -> String {
        format!("line {}: {what}", self.line)
    }

    /// After `[`: `name]`, `name.sub]` or `name "sub"]` → the key prefix.
    fn section(&mut self) -> Result<String, String> {
        let mut name = String::new();
        loop {
            let c = self.next();
            if self.eof {
                return Err(self.error("unterminated section"));
            }
            match c {
                ']' if name.is_empty() => return Err(self.error("bad section")),
                ']' => return Ok(name),
                c if is_git_space(c) => return self.subsection(name, c),
                c if is_key_char(c) || c == '.' => name.push(c.to_ascii_lowercase()),
                _ => return Err(self.error("bad section")),
            }
        }
    }

    /// `name "sub"]` after the name and the first blank `c`.
    fn subsection(&mut self, name: String, mut c: char) -> Result<String, String> {
        while is_git_space(c) {
            if c == '\n' {
                return Err(self.error("unterminated section"));
            }
            c = self.next();
        }
        if c != '"' || name.is_empty() {
            return Err(self.error("bad section"));
        }
        let mut out = format!("{name}.");
        loop {
            let mut c = self.next();
            if c == '\n' {
                return Err(self.error("unterminated section"));
            }
            if c == '"' {
                break;
            }
            if c == '\\' {
                c = self.next();
                if c == '\n' {
                    return Err(self.error("unterminated section"));
                }
            }
            out.push(c);
        }
        if self.next() != ']' {
            return Err(self.error("bad section"));
        }
        Ok(out)
    }

    /// A key starting with `first`, and its value (`true` without `=`).
    fn entry(&mut self, first: char) -> Result<(String, String), String> {
        let mut name = String::from(first.to_ascii_lowercase());
        let mut c;
        loop {
            c = self.next();
            if self.eof || !is_key_char(c) {
                break;
            }
            name.push(c.to_ascii_lowercase());
        }
        while c == ' ' || c == '\t' {
            c = self.next();
        }
        match c {
            '\n' => Ok((name, "true".to_string())),
            '=' => Ok((name, self.value()?)),
            // git refuses a comment here; reading it as `true` is no
            // weaker (the caller judges keys, and git would not run).
            '#' | ';' => {
                self.skip_line();
                Ok((name, "true".to_string()))
            }
            _ => Err(self.error("expected `=`")),
        }
    }

    fn skip_line(&mut self) {
        while self.next() != '\n' {}
    }

    /// After `=`, to the end of the line: git's `parse_value` (blanks
    /// inside kept, leading and trailing ones dropped, `"` toggles
    /// quoting, `#`/`;` outside quotes start a comment that no `\`
    /// continues, `\` + newline continues, only `\t \b \n \\ \"`).
    fn value(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut quote = false;
        let mut comment = false;
        // Where trailing blanks began (0: none pending).
        let mut trim_len = 0;
        loop {
            let c = self.next();
            if c == '\n' {
                if quote {
                    return Err(self.error("unterminated quote"));
                }
                if trim_len > 0 {
                    out.truncate(trim_len);
                }
                return Ok(out);
            }
            if comment {
                continue;
            }
            if is_git_space(c) && !quote {
                if trim_len == 0 {
                    trim_len = out.len();
                }
                if !out.is_empty() {
                    out.push(c);
                }
                continue;
            }
            if !quote && (c == '#' || c == ';') {
                comment = true;
                continue;
            }
            trim_len = 0;
            match c {
                '\\' => match self.next() {
                    // A continuation (at the very end too, as in git).
                    '\n' => {}
                    't' => out.push('\t'),
                    'b' => out.push('\u{8}'),
                    'n' => out.push('\n'),
                    c @ ('\\' | '"') => out.push(c),
                    _ => return Err(self.error("bad escape")),
                },
                '"' => quote = !quote,
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_syntax() {
        let text = "[core]\n\trepositoryformatversion = 0\n\tfsmonitor = \"touch /x; false\" # c\n\
                    [includeIf \"gitdir:~/w/\"]\n  path = ../inc\n[Core] HooksPath=.husky/_\n\
                    [alias] st = !sh -c 'a \\\n b'\n[x.y]\nflag\n";
        let got = parse_config(text).unwrap();
        assert!(got.contains(&("core.fsmonitor".into(), "touch /x; false".into())));
        assert!(got.contains(&("includeif.gitdir:~/w/.path".into(), "../inc".into())));
        assert!(got.contains(&("core.hookspath".into(), ".husky/_".into())));
        assert!(got.contains(&("alias.st".into(), "!sh -c 'a  b'".into())));
        assert!(got.contains(&("x.y.flag".into(), "true".into())));
    }

    /// `parse_config` reads what git reads: every text below either
    /// gives git's own `git config --list` entries, or is an error for
    /// both (git refuses the file, so runs nothing from it). Each is a
    /// way to write an entry one reader sees and the other does not.
    #[test]
    fn config_is_read_as_git_reads_it() {
        let texts = [
            "[core]\n# note \\\n\tfsmonitor = x\n",
            "[core]\n\tabbrev = 12 ; note \\\n\tfsmonitor = x\n",
            "[core]\n\tabbrev = 12 # \"\n\tfsmonitor = x\n",
            "[alias]\n\tst = \"\" !x\n",
            "[alias]\n\tst = \" \"!x\n",
            "[alias]\n\tst = !\\b; x\n",
            "[alias]\n\tst = a\\\n!x\n",
            "[alias]\n\tst = \\\n  !x\n",
            "[alias]\n\tst = !x  \t \n",
            "[alias]\n\tst = \"!x \\\" ; y\" ; z\n",
            "\u{feff}[core]\n\tfsmonitor = x\n",
            "[core]\r\n\tfsmonitor = x\r\n",
            "[core]\n\tfsmonitor = x\ry\n",
            "[core] fsmonitor = x\n",
            "[Core]\n\tFSMonitor = x\n",
            "[CORE.Sub]\n\tx = y\n",
            "[url \"A\\\"B\\\\C\"]\n\tinsteadOf = y\n",
            "[includeIf \"gitdir:/x/\"]\n\tpath = y\n",
            "[ core]\n\tfsmonitor = x\n",
            "[core ]\n\tfsmonitor = x\n",
            "[core \"x\" ]\n\tfsmonitor = x\n",
            "[core]\n\tfsmonitor\n",
            "[core]\n\tfsmonitor = x\\",
            "[core]\n\tfsmonitor = \"x\n\"\n",
            "[core]\n\tfsmonitor = x\\q\n",
            "[core]\n\t1x = y\n",
            "[core]\n\tfs_monitor = y\n",
            "[]\n\tx = y\n",
            "[a]\n\tb = c\n\u{b}[core]\n\tfsmonitor = x\n",
            "[core]\n\tfsmonitor=x\n\tfsmonitor=y\n",
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        for text in texts {
            std::fs::write(&file, text).unwrap();
            let git = match std::process::Command::new("git")
                .args(["config", "--no-includes", "--list", "-z", "--file"])
                .arg(&file)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
            {
                Ok(out) => out,
                Err(_) if std::env::var_os("ZEROBOX_REQUIRE_ALL").is_none() => return,
                Err(e) => panic!("git is needed (ZEROBOX_REQUIRE_ALL=1): {e}"),
            };
            let ours = parse_config(text);
            if !git.status.success() {
                assert!(ours.is_err(), "{text:?}: git refuses it, we read {ours:?}");
                continue;
            }
            let theirs: Vec<(String, String)> = String::from_utf8(git.stdout)
                .unwrap()
                .split_terminator('\0')
                .map(|e| match e.split_once('\n') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.to_string(), "true".to_string()),
                })
                .collect();
            assert_eq!(ours, Ok(theirs), "{text:?}");
        }
    }

    #[test]
    fn bad_config_is_an_error() {
        for bad in [
            "key = 1\n",
            "[core\nx=1\n",
            "[core]\nx = \"open\n",
            "[core]\n=1\n",
        ] {
            assert!(parse_config(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn code_keys() {
        assert!(runs_code("core.fsmonitor", "touch x"));
        assert!(!runs_code("core.fsmonitor", "false"));
        assert!(runs_code("alias.x", "!rm"));
        assert!(runs_code("alias.x", "-c core.fsmonitor=x status"));
        assert!(runs_code("filter.lfs.smudge", "git-lfs smudge"));
        assert!(!runs_code("user.name", "x"));
        assert!(runs_code("hook.lint.command", "make lint"));
        assert!(runs_code("submodule.x.update", "!sh x"));
        assert!(!runs_code("submodule.x.update", "rebase"));
        assert!(runs_code("remote.origin.url", "ext::sh -c x"));
        assert!(!runs_code("remote.origin.url", "https://example.invalid/r"));
        assert!(runs_code("core.alternaterefscommand", "x"));
        assert!(runs_code("guitool.lint.cmd", "x"));
        assert!(runs_code("sendemail.tocmd", "x"));
        assert!(runs_code("sendemail.smtpserver", "/x"));
        assert!(!runs_code("branch.main.merge", "refs/heads/main"));
    }

    #[test]
    fn guarded_entries_are_code_and_redirects_only() {
        let text = "[user]\n\tname = a\n[branch \"main\"]\n\tremote = origin\n\
                    [core]\n\tfsmonitor = x\n\tworktree = /elsewhere\n\
                    [url \"https://evil.invalid/\"]\n\tinsteadOf = https://example.invalid/\n";
        let got = guarded_entries(text).unwrap();
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "core.fsmonitor",
                "core.worktree",
                "url.https://evil.invalid/.insteadof"
            ]
        );
        assert!(guarded_entries("[core\n").is_err());
        let text = "[remote \"origin\"]\n\tpushurl = https://evil.invalid/r\n\
                    [remote \"x\"]\n\turl = https://evil.invalid/r\n\
                    [http]\n\tproxy = http://evil.invalid\n\
                    [http \"https://example.invalid/\"]\n\tproxy = http://evil.invalid\n";
        assert_eq!(guarded_entries(text).unwrap().len(), 4);
    }

    fn repo(dir: &Path) {
        let ok = std::process::Command::new("git")
            .args(["init", "-q"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // No git here: make the layout by hand.
            for d in ["objects/info", "refs/heads", "hooks", "info"] {
                std::fs::create_dir_all(dir.join(".git").join(d)).unwrap();
            }
            std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
            std::fs::write(dir.join(".git/config"), "[core]\n").unwrap();
        }
    }

    #[test]
    fn main_repository_rules_and_watches() {
        let t = tempfile::tempdir().unwrap();
        let top = canonical(t.path());
        repo(&top);
        std::fs::write(
            top.join(".git/config"),
            "[core]\n hooksPath = .husky/_\n[include]\n path = ../shared.inc\n",
        )
        .unwrap();
        let (rules, guard) = Guard::prepare(std::slice::from_ref(&top), &top, &top);
        let g = top.join(".git");
        for want in [
            g.join("config"),
            g.join("hooks"),
            g.join("info"),
            top.join(".husky/_"),
            top.join("shared.inc"),
        ] {
            assert!(
                rules.contains(&want.display().to_string()),
                "{want:?} in {rules:?}"
            );
        }
        assert!(guard.watched.contains(&g.join("commondir")));
        assert!(!rules
            .iter()
            .any(|r| r.ends_with("/objects") || r.ends_with("/refs")));
        // A watched name that appears is moved away and reported.
        std::fs::write(g.join("commondir"), "/elsewhere\n").unwrap();
        let lines = guard.after_run();
        assert!(lines.iter().any(|l| l.contains("commondir")), "{lines:?}");
        assert!(!g.join("commondir").exists());
        assert!(g.join("commondir.zerobox-quarantined").exists());
        // One left behind (zerobox killed before its check) is named at
        // the next start.
        std::fs::write(g.join("commondir"), "/elsewhere\n").unwrap();
        let (_, guard) = Guard::prepare(std::slice::from_ref(&top), &top, &top);
        assert!(
            guard
                .warnings()
                .iter()
                .any(|w| w.contains("commondir exists")),
            "{:?}",
            guard.warnings()
        );
    }

    #[test]
    fn a_replaced_protected_link_is_restored() {
        let t = tempfile::tempdir().unwrap();
        let top = canonical(t.path());
        repo(&top);
        let hooks = top.join(".git/hooks");
        std::fs::remove_dir_all(&hooks).unwrap();
        std::fs::create_dir(top.join(".githooks")).unwrap();
        std::os::unix::fs::symlink("../.githooks", &hooks).unwrap();
        let (rules, guard) = Guard::prepare(std::slice::from_ref(&top), &top, &top);
        assert!(rules.contains(&hooks.display().to_string()), "{rules:?}");
        std::fs::remove_file(&hooks).unwrap();
        std::fs::create_dir(&hooks).unwrap();
        std::fs::write(hooks.join("pre-commit"), "evil").unwrap();
        let lines = guard.after_run();
        assert!(lines.iter().any(|l| l.contains("restored")), "{lines:?}");
        assert_eq!(
            std::fs::read_link(&hooks).unwrap(),
            PathBuf::from("../.githooks")
        );
        assert!(top
            .join(".git/hooks.zerobox-quarantined/pre-commit")
            .exists());
    }

    #[test]
    fn no_rename_through_a_replaced_directory() {
        let t = tempfile::tempdir().unwrap();
        let top = canonical(t.path());
        repo(&top);
        let (_, guard) = Guard::prepare(std::slice::from_ref(&top), &top, &top);
        let elsewhere = top.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("alternates"), "victim").unwrap();
        let info = top.join(".git/objects/info");
        std::fs::remove_dir_all(&info).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &info).unwrap();
        let lines = guard.after_run();
        assert!(
            lines.iter().any(|l| l.contains("symbolic link")),
            "{lines:?}"
        );
        assert!(
            elsewhere.join("alternates").exists(),
            "renamed through the link"
        );
    }

    #[test]
    fn a_dot_git_file_is_followed_and_protected() {
        let t = tempfile::tempdir().unwrap();
        let base = canonical(t.path());
        let real = base.join("real.git");
        for d in ["objects", "refs", "hooks"] {
            std::fs::create_dir_all(real.join(d)).unwrap();
        }
        std::fs::write(real.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(real.join("config"), "[core]\n").unwrap();
        let wt = base.join("wt");
        std::fs::create_dir(&wt).unwrap();
        std::fs::write(wt.join(".git"), "gitdir: ../real.git\n").unwrap();
        let (rules, _) = Guard::prepare(std::slice::from_ref(&wt), &wt, &base);
        assert!(rules.contains(&wt.join(".git").display().to_string()));
        assert!(rules.contains(&real.join("config").display().to_string()));
        assert!(rules.contains(&real.join("hooks").display().to_string()));
    }

    #[test]
    fn unreadable_pointers_fail_closed() {
        let t = tempfile::tempdir().unwrap();
        let top = canonical(t.path());
        repo(&top);
        let g = top.join(".git");
        // A commondir that is a symlink: never read through it.
        std::os::unix::fs::symlink("/etc/passwd", g.join("commondir")).unwrap();
        let (rules, guard) = Guard::prepare(std::slice::from_ref(&top), &top, &top);
        assert!(rules.contains(&g.display().to_string()), "{rules:?}");
        assert!(guard.warnings().iter().any(|w| w.contains("symbolic link")));
        // A FIFO as config does not block, and fails closed.
        std::fs::remove_file(g.join("commondir")).unwrap();
        std::fs::remove_file(g.join("config")).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(g.join("config"))
            .status()
            .unwrap()
            .success());
        let (rules, _) = Guard::prepare(std::slice::from_ref(&top), &top, &top);
        assert!(rules.contains(&g.display().to_string()), "{rules:?}");
    }

    #[test]
    fn pointer_bounds() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, "x".repeat(5000)).unwrap();
        assert!(read_pointer(&p, "").unwrap_err().contains("larger"));
        std::fs::write(&p, "gitdir: a\nb\n").unwrap();
        assert!(read_pointer(&p, "gitdir:").is_err());
        std::fs::write(&p, "gitdir: ../x\n").unwrap();
        assert_eq!(read_pointer(&p, "gitdir:").unwrap(), "../x");
    }
}
