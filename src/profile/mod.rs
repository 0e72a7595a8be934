//! Profiles built from what a command does: `zerobox --build-profile FILE
//! -- CMD` (asks on the terminal about every access outside the profile)
//! and `zerobox learn --out FILE -- CMD` (records, asks nothing).
//!
//! This module owns the profile model ([`Profile`]: entries with a comment
//! each), its YAML form (a normal schema-v1 preset file with
//! `filesystem.read_default: deny`, usable with `--profile FILE`), the
//! crash-safe writer, and the folding rule ([`fold`]) that turns paths into
//! directories. `session` decides each access (the supervisor side of
//! `sandbox::linux::notify` and the proxy's host hook), `prompt` asks the
//! user.
//!
//! Knows nothing of syscalls: accesses arrive as paths and hosts.

pub mod prompt;
pub mod session;

use std::path::{Path, PathBuf};

use crate::exit::Fatal;

/// What one entry grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ReadAllow,
    ReadDeny,
    WriteAllow,
    WriteDeny,
    NetAllow,
    NetDeny,
}

impl Kind {
    /// (YAML section, list) this kind is written under.
    fn place(self) -> (&'static str, &'static str) {
        match self {
            Kind::ReadAllow => ("read", "allow"),
            Kind::ReadDeny => ("read", "deny"),
            Kind::WriteAllow => ("write", "allow"),
            Kind::WriteDeny => ("write", "deny"),
            Kind::NetAllow => ("network", "allow"),
            Kind::NetDeny => ("network", "deny"),
        }
    }
}

/// One entry: a path (or a host pattern) and why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub value: String,
    /// One line, written as the entry's YAML comment (e.g. `allowed
    /// 2026-12-02 10:31 UTC: python3 read …`, `learn: 12 accesses`).
    pub note: String,
}

/// A profile: a name and its entries, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub entries: Vec<Entry>,
}

/// The largest profile read back (the preset loader's own cap).
const MAX_BYTES: usize = 1024 * 1024;

impl Profile {
    /// An empty profile named after `file` (its stem, made a valid preset
    /// name).
    pub fn new_for(file: &Path) -> Self {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let mut name: String = stem
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        name = name.trim_matches('-').chars().take(64).collect();
        if name.is_empty() {
            name = "profile".into();
        }
        Profile {
            name,
            entries: Vec::new(),
        }
    }

    pub fn has(&self, kind: Kind, value: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.kind == kind && e.value == value)
    }

    /// Add an entry unless the same (kind, value) is there already.
    pub fn add(&mut self, kind: Kind, value: impl Into<String>, note: impl Into<String>) {
        let value = value.into();
        if !self.has(kind, &value) {
            self.entries.push(Entry {
                kind,
                value,
                note: one_line(&note.into()),
            });
        }
    }

    /// The YAML document. Values are written as double-quoted strings
    /// (JSON escapes, which YAML reads the same), each followed by its
    /// note as a comment, so any path or host round-trips.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# A zerobox profile: use it with `zerobox --profile FILE -- CMD`.\n");
        out.push_str(
            "# Written by `zerobox --build-profile` / `zerobox learn` (docs/profiles.md).\n",
        );
        out.push_str("# Reads not granted below are denied (read_default: deny); the system\n");
        out.push_str("# runtime comes from the bundled `system` preset, the working directory\n");
        out.push_str("# is always readable. After editing it yourself: `zerobox trust FILE`.\n");
        out.push_str("zerobox: 1\n");
        out.push_str(&format!("name: {}\n", self.name));
        out.push_str("version: 1.0.0\n");
        out.push_str("extends:\n  - system\n");
        out.push_str("filesystem:\n  read_default: deny\n");
        for section in ["read", "write"] {
            out.push_str(&format!("  {section}:\n"));
            for list in ["allow", "deny"] {
                self.render_list(&mut out, "    ", section, list);
            }
        }
        out.push_str("network:\n");
        for list in ["allow", "deny"] {
            self.render_list(&mut out, "  ", "network", list);
        }
        out
    }

    fn render_list(&self, out: &mut String, indent: &str, section: &str, list: &str) {
        let items: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.kind.place() == (section, list))
            .collect();
        if items.is_empty() {
            out.push_str(&format!("{indent}{list}: []\n"));
            return;
        }
        out.push_str(&format!("{indent}{list}:\n"));
        for e in items {
            let quoted = serde_json::to_string(&e.value).unwrap_or_else(|_| "\"\"".into());
            if e.note.is_empty() {
                out.push_str(&format!("{indent}  - {quoted}\n"));
            } else {
                out.push_str(&format!("{indent}  - {quoted}  # {}\n", e.note));
            }
        }
    }

    /// Read a profile back from its YAML (as [`render`] writes it, or as a
    /// person edited it): the entries with their comments. The document is
    /// validated by the preset parser first (`validated` is its
    /// [`crate::preset::schema::PresetDoc`] lists); comments are taken
    /// from the entry's own line.
    pub fn parse(file: &Path, text: &str) -> Result<Profile, Fatal> {
        let doc =
            crate::preset::schema::parse_profile_doc(text.as_bytes(), &file.display().to_string())
                .map_err(|e| Fatal::usage(e.to_string()))?;
        let mut p = Profile::new_for(file);
        if let Some(n) = &doc.name {
            p.name = n.value.clone();
        }
        let lines: Vec<&str> = text.lines().collect();
        let note_of = |line: usize| -> String {
            lines
                .get(line.saturating_sub(1))
                .and_then(|l| l.split_once("  # "))
                .map(|(_, c)| c.trim().to_string())
                .unwrap_or_default()
        };
        let fs = &doc.filesystem;
        for (kind, list) in [
            (Kind::ReadAllow, &fs.read.allow),
            (Kind::ReadDeny, &fs.read.deny),
            (Kind::WriteAllow, &fs.write.allow),
            (Kind::WriteDeny, &fs.write.deny),
            (Kind::NetAllow, &doc.network.allow),
            (Kind::NetDeny, &doc.network.deny),
        ] {
            for s in list {
                p.add(kind, s.value.clone(), note_of(s.referenced.line() as usize));
            }
        }
        Ok(p)
    }

    /// Read FILE if it exists (refusing anything but a regular file).
    pub fn load(file: &Path) -> Result<Option<Profile>, Fatal> {
        match std::fs::symlink_metadata(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Fatal::usage(format!("cannot read {}: {e}", file.display()))),
            Ok(_) => {}
        }
        let f = crate::preset::read_profile(file, MAX_BYTES)
            .map_err(|e| Fatal::new(e.exit_code(), e.to_string()))?;
        let text = String::from_utf8(f)
            .map_err(|_| Fatal::usage(format!("{}: not UTF-8 text", file.display())))?;
        Profile::parse(file, &text).map(Some)
    }

    /// Write the profile to `file` at once and crash-safe (a fresh temp
    /// file, fsync, rename, fsync of the directory: an interrupted session
    /// keeps every answer given so far), then record zerobox's trust of
    /// exactly this content at this path, as `zerobox trust` does: a later
    /// change by anything else makes `--profile` refuse it until trusted
    /// again. `trust` is false for `learn`, whose proposal the user reviews.
    pub fn save(&self, file: &Path, env: Option<&crate::preset::PresetEnv>) -> Result<(), Fatal> {
        // Never replace something that is not a plain file (`--out
        // /dev/null` as root would rename over the device).
        if let Ok(m) = std::fs::symlink_metadata(file) {
            if !m.is_file() {
                return Err(Fatal::usage(format!(
                    "{} is not a regular file (a symlink, a device or a directory); give a path for the profile itself",
                    file.display()
                )));
            }
        }
        let bytes = self.render().into_bytes();
        crate::preset::write_profile(file, &bytes, env)
            .map_err(|e| Fatal::new(e.exit_code(), format!("cannot write the profile: {e}")))
    }
}

/// A FILE argument as the preset loader takes a file (a bare `p.txt`
/// would be read as a preset name).
fn file_arg(file: &Path) -> Result<PathBuf, Fatal> {
    let abs = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Fatal::usage(format!("cannot read the current directory: {e}")))?
            .join(file)
    };
    let abs = crate::policy::paths::lexical_normalise(&abs);
    if std::fs::symlink_metadata(&abs).is_ok_and(|m| !m.is_file()) {
        return Err(Fatal::usage(format!(
            "{} is not a regular file (a symlink, a device or a directory); give a path for the profile itself",
            abs.display()
        )));
    }
    Ok(abs)
}

/// The system runtime's layers (the bundled `system` preset).
fn system_layers(env: &crate::preset::PresetEnv) -> Result<Vec<crate::policy::PolicyLayer>, Fatal> {
    crate::preset::load("system", env)
        .map(|l| l.layers)
        .map_err(|e| Fatal::new(e.exit_code(), e.to_string()))
}

/// `zerobox --build-profile FILE [FLAGS] -- CMD`.
pub fn build(
    args: &crate::cli::SandboxArgs,
    file: &Path,
    command: Vec<std::ffi::OsString>,
) -> Result<i32, Fatal> {
    if command.is_empty() {
        return Err(Fatal::usage(
            "no command given: usage `zerobox --build-profile FILE [FLAGS] -- CMD [ARGS…]`",
        ));
    }
    if args.dry_run || args.no_sandbox {
        return Err(Fatal::usage(
            "--build-profile runs the command in the sandbox and asks about its accesses: drop --dry-run / --no-sandbox",
        ));
    }
    let file = file_arg(file)?;
    let prompter = prompt::Prompter::open().map_err(|e| {
        Fatal::usage(format!(
            "--build-profile asks its questions on the terminal, and there is none here ({e}); to record a proposed profile without questions run `zerobox learn --out {} -- CMD`",
            file.display()
        ))
    })?;
    let env = crate::cli::preset_env(args)?;
    // An existing FILE is extended: it must be the one zerobox wrote (or
    // one the user trusted since), like any `--profile FILE`. During the
    // build its reads are the readable base, not a complete view.
    let (mut layers, profile) = match Profile::load(&file)? {
        Some(p) => {
            let loaded = crate::preset::load(&file.display().to_string(), &env)
                .map_err(|e| Fatal::new(e.exit_code(), e.to_string()))?;
            let mut layers = loaded.layers;
            for l in &mut layers {
                l.read_default_deny = false;
            }
            (layers, p)
        }
        None => (system_layers(&env)?, Profile::new_for(&file)),
    };
    let mut plain = args.clone();
    plain.build_profile = None;
    let mut req = crate::cli::request(&plain, command.clone())?;
    layers.append(&mut req.layers);
    req.layers = layers;
    let name = command[0].to_string_lossy().into_owned();
    let session = session::Session::new(
        session::Purpose::Build {
            file,
            env,
            prompter,
        },
        profile,
        &name,
    );
    req.watcher = Some(crate::launcher::WatcherRef(session));
    crate::launcher::run(&req).map_err(Fatal::from)
}

/// `zerobox learn --out FILE [FLAGS] -- CMD`.
pub fn learn(
    args: &crate::cli::SandboxArgs,
    out: &Path,
    command: Vec<std::ffi::OsString>,
) -> Result<i32, Fatal> {
    if command.is_empty() {
        return Err(Fatal::usage(
            "no command given: usage `zerobox learn --out FILE [FLAGS] -- CMD [ARGS…]`",
        ));
    }
    if args.dry_run || args.no_sandbox {
        return Err(Fatal::usage(
            "learn runs the command in the sandbox and records its accesses: drop --dry-run / --no-sandbox",
        ));
    }
    let out = file_arg(out)?;
    let env = crate::cli::preset_env(args)?;
    let mut layers = system_layers(&env)?;
    let mut req = crate::cli::request(args, command.clone())?;
    layers.append(&mut req.layers);
    req.layers = layers;
    let name = command[0].to_string_lossy().into_owned();
    let session = session::Session::new(
        session::Purpose::Learn { out: out.clone() },
        Profile::new_for(&out),
        &name,
    );
    req.watcher = Some(crate::launcher::WatcherRef(session));
    crate::launcher::run(&req).map_err(Fatal::from)
}

/// A note is one line of text (no newline or control character from a
/// path the command chose can break the YAML comment).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The directory `[d]` offers for `path`, and the one [`fold`] folds it
/// into; `None` when there is no sensible one (then only the path itself):
///
/// 1. under HOME: the first component below HOME (`~/.claude` for
///    `~/.claude/config.txt`), never HOME itself;
/// 2. under the project (the working directory): the first component
///    below it;
/// 3. elsewhere: the parent directory, when it is at least two levels
///    deep (`/var/lib/app` for `/var/lib/app/db`; never `/` or `/etc`).
///
/// The path itself is never its own directory: a file right under HOME
/// (`~/.gitconfig`) has none. Nor is HOME, the project or a directory
/// above either of them (`/home`, `~/src` for a project in `~/src/app`):
/// `[d]` there would grant the user's other projects or all of HOME.
pub fn suggest_dir(path: &Path, home: &Path, cwd: &Path) -> Option<PathBuf> {
    suggest_dir_any(path, home, cwd).filter(|d| !is_spine(d, home, cwd))
}

/// HOME, the project, or a directory above one of them: the places a
/// command passes through to reach anything of its own.
pub fn is_spine(dir: &Path, home: &Path, cwd: &Path) -> bool {
    home.starts_with(dir) || cwd.starts_with(dir)
}

fn suggest_dir_any(path: &Path, home: &Path, cwd: &Path) -> Option<PathBuf> {
    let first_below = |base: &Path| -> Option<PathBuf> {
        let rest = path.strip_prefix(base).ok()?;
        let first = rest.components().next()?;
        let dir = base.join(first);
        (dir != path).then_some(dir)
    };
    for base in [home, cwd] {
        if base != Path::new("/") && path.starts_with(base) && path != base {
            return first_below(base);
        }
    }
    let parent = path.parent()?;
    (parent.components().count() >= 3).then(|| parent.to_path_buf())
}

/// The folding rule of `learn`: every path goes to its [`suggest_dir`]
/// (or stays itself when it has none), then an entry inside another
/// entry of the same list is merged into it. Counts add up. The result is
/// sorted by path.
pub fn fold(paths: &[(PathBuf, u64)], home: &Path, cwd: &Path) -> Vec<(PathBuf, u64)> {
    use std::collections::BTreeMap;
    let mut folded: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for (p, n) in paths {
        let to = suggest_dir(p, home, cwd).unwrap_or_else(|| p.clone());
        *folded.entry(to).or_default() += n;
    }
    let mut out: Vec<(PathBuf, u64)> = Vec::new();
    // Parents sort before their children: one pass merges a child into
    // the last kept entry that contains it.
    for (p, n) in folded {
        match out.iter_mut().find(|(q, _)| p.starts_with(q)) {
            Some((_, m)) => *m += n,
            None => out.push((p, n)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn suggested_directory_is_the_first_component_under_home_or_project() {
        let home = pb("/home/me");
        let cwd = pb("/home/me/src/app");
        let s = |p: &str| suggest_dir(Path::new(p), &home, &cwd);
        assert_eq!(
            s("/home/me/.claude/config.txt"),
            Some(pb("/home/me/.claude"))
        );
        assert_eq!(
            s("/home/me/.claude/a/b/c.json"),
            Some(pb("/home/me/.claude"))
        );
        assert_eq!(s("/home/me/.gitconfig"), None, "never HOME itself");
        assert_eq!(s("/var/lib/app/db"), Some(pb("/var/lib/app")));
        assert_eq!(s("/etc/hostname"), None, "never a top-level directory");
        assert_eq!(s("/etc/foo/bar"), Some(pb("/etc/foo")));
        assert_eq!(s("/x"), None);
        // A project outside HOME.
        let cwd = pb("/work/proj");
        assert_eq!(
            suggest_dir(Path::new("/work/proj/sub/f"), &home, &cwd),
            Some(pb("/work/proj/sub"))
        );
    }

    /// HOME itself (its parent would be offered), a sibling of the
    /// project (its parent holds the user's other projects): no `[d]`.
    #[test]
    fn no_directory_above_home_or_the_project_is_suggested() {
        let home = pb("/var/tmp/u/home");
        let cwd = pb("/var/tmp/u/src/app");
        let s = |p: &str| suggest_dir(Path::new(p), &home, &cwd);
        assert_eq!(s("/var/tmp/u/home"), None, "HOME's parent");
        assert_eq!(
            s("/var/tmp/u/notes.txt"),
            None,
            "above HOME and the project"
        );
        assert_eq!(s("/var/tmp/u/src/f"), None, "the project's parent");
        assert_eq!(
            s("/var/tmp/u/src/other/f"),
            Some(pb("/var/tmp/u/src/other"))
        );
        assert_eq!(
            s("/var/tmp/u/home/.claude/x"),
            Some(pb("/var/tmp/u/home/.claude"))
        );
        assert!(is_spine(Path::new("/var/tmp/u"), &home, &cwd));
        assert!(!is_spine(Path::new("/var/tmp/u/home/.claude"), &home, &cwd));
    }

    #[test]
    fn folding_merges_into_directories_and_adds_counts() {
        let home = pb("/home/me");
        let cwd = pb("/work/p");
        let got = fold(
            &[
                (pb("/home/me/.claude/a.json"), 3),
                (pb("/home/me/.claude/x/y"), 2),
                (pb("/home/me/.gitconfig"), 1),
                (pb("/opt/tool/lib/z.so"), 4),
                (pb("/opt/tool/lib"), 1),
                (pb("/opt/tool"), 1),
                (pb("/etc/hostname"), 7),
            ],
            &home,
            &cwd,
        );
        assert_eq!(
            got,
            vec![
                (pb("/etc/hostname"), 7),
                (pb("/home/me/.claude"), 5),
                (pb("/home/me/.gitconfig"), 1),
                // /opt/tool/lib/z.so → /opt/tool/lib; /opt/tool has no
                // directory of its own (parent /opt is top-level) and
                // contains the rest.
                (pb("/opt/tool"), 6),
            ]
        );
    }

    #[test]
    fn rendered_profile_parses_back_with_its_comments() {
        let mut p = Profile::new_for(Path::new("/x/Claude Profile.yaml"));
        assert_eq!(p.name, "claude-profile");
        p.add(
            Kind::ReadAllow,
            "/home/me/.claude",
            "allowed 2026-12-02: claude read",
        );
        p.add(
            Kind::ReadAllow,
            "/home/me/odd \"name\" # not a comment",
            "n",
        );
        p.add(Kind::ReadDeny, "/home/me/private", "denied\nwith a newline");
        p.add(Kind::WriteAllow, "/home/me/.claude", "w");
        p.add(Kind::NetAllow, "api.example.com:443", "allowed");
        p.add(Kind::NetDeny, "evil.example.com", "denied");
        p.add(Kind::ReadAllow, "/home/me/.claude", "duplicate, ignored");
        let text = p.render();
        assert!(text.contains("read_default: deny"), "{text}");
        assert!(text.contains("  # denied?with a newline\n"), "{text}");
        let back = Profile::parse(Path::new("/x/Claude Profile.yaml"), &text).unwrap();
        assert_eq!(back.entries.len(), 6);
        assert_eq!(back, {
            let mut q = p.clone();
            q.entries[2].note = "denied?with a newline".into();
            q
        });
        // It is a valid preset for the loader too (name, version, schema).
        let doc = crate::preset::schema::parse_profile_doc(text.as_bytes(), "p.yaml").unwrap();
        assert_eq!(doc.filesystem.read.allow.len(), 2);
        assert!(doc.to_layer(crate::policy::Origin::Test).read_default_deny);
    }

    #[test]
    fn reads_denied_by_default_cover_every_top_level_path_no_grant_covers() {
        use crate::policy::{FsAccess, FsRule};
        let rule = |p: &str, access| FsRule {
            path: pb(p),
            access,
            origin: crate::policy::Origin::Test,
        };
        let fs = vec![
            rule("/usr", FsAccess::AllowRead),
            rule("/etc/ssl", FsAccess::AllowRead),
            rule("/home/me/.claude", FsAccess::AllowWrite),
            rule("/srv", FsAccess::DenyRead),
        ];
        let top = [
            "/usr", "/etc", "/home", "/srv", "/tmp", "/dev", "/proc", "/work", "/var",
        ]
        .iter()
        .map(|p| pb(p))
        .collect();
        let got: Vec<PathBuf> = crate::policy::default_deny_rules(
            &fs,
            top,
            Path::new("/work"),
            &crate::policy::Origin::Test,
        )
        .into_iter()
        .inspect(|r| assert_eq!(r.access, FsAccess::DenyRead))
        .map(|r| r.path)
        .collect();
        // /usr is granted whole; /tmp, /dev, /proc are the sandbox's own;
        // /work is the cwd; the rest is denied (grants inside re-open).
        assert_eq!(got, vec![pb("/etc"), pb("/home"), pb("/srv"), pb("/var")]);
    }

    #[test]
    fn an_empty_profile_is_valid() {
        let p = Profile::new_for(Path::new("p.yaml"));
        let text = p.render();
        let back = Profile::parse(Path::new("p.yaml"), &text).unwrap();
        assert!(back.entries.is_empty());
    }
}
