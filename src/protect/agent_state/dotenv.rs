//! Project `.env` files: the variables in them that make programs run
//! code, checked after the run and put back.
//!
//! Gemini CLI loads the first `.env` it finds walking up from the folder
//! it starts in into its own environment, and its shell tool inherits it
//! (docs/presets/gemini.md), so a `BASH_ENV=./x.sh` the agent writes runs
//! `x.sh` on the host in the next plain session; Bun, python-dotenv and
//! dotenv-cli load `.env` the same way. But `.env` is an ordinary
//! development file the agent may rightly edit, so it is not denied.
//! Instead, for the `.env` in the cwd and in each directory above it that
//! the run can write: every line whose variable is in [`is_code_running`]
//! is compared with the pre-run file; if they differ, those lines are
//! removed and the pre-run ones put back (at the top), in a new file
//! renamed over the old one, and the names are reported.
//!
//! Why lines and not a parser: what counts is what `dotenv.parse` (the
//! npm package) makes of the file, and a Rust reading that differs from
//! it in one corner would be a way past the check. Every assignment that
//! parser finds starts a line (its pattern is anchored at a line start,
//! after white space and an optional `export`), so a line whose first
//! word is a code-running name is treated as an assignment to it, even
//! when it sits inside a quoted multi-line value (over-reading only ever
//! removes more). With every such line gone, no other line can be read as
//! an assignment to one of those names.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::sandbox::linux::fsat;

use super::{quarantine_new, read_bounded, replace_file, restore_whole, MAX_STATE};

/// The file name checked.
pub(super) const DOTENV: &str = ".env";

/// Does a variable of this name make a program run code, or send what it
/// does elsewhere? Compared without case (over-reading is safe). Names:
/// shells (`BASH_ENV`, `ENV`, prompts, `PATH`), the dynamic loader, the
/// runtimes' start-up hooks (Node, Python, Perl, Ruby, Java, .NET), git
/// and ssh commands, any `*_COMMAND`/`*_CMD`, the programs others start
/// (`EDITOR`, `PAGER`, `LESSOPEN`…), OpenSSL's config, Gemini CLI's own
/// (its sandbox launch, `CODE_ASSIST_ENDPOINT`, Google credential files
/// that name a command), the
/// directories configs are read from (`HOME`, `XDG_*`: a config planted
/// in the project would be read), Gemini CLI's own settings paths, and
/// where traffic and keys go (proxies, base URLs, CA bundles).
pub(super) fn is_code_running(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "BASH_ENV",
        "ENV",
        "ZDOTDIR",
        "PROMPT_COMMAND",
        "PS0",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "PATH",
        "HOME",
        "SHELL",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "MANPAGER",
        "BROWSER",
        "TERMINAL",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "GCONV_PATH",
        "HOSTALIASES",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "DOTNET_STARTUP_HOOKS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "CURL_HOME",
        "WGETRC",
        "INPUTRC",
        "TMPDIR",
        "PROMPT",
        "RPROMPT",
        // Pagers' input filters (git pages through less).
        "LESSOPEN",
        "LESSCLOSE",
        // Google auth (Gemini CLI): a credential file can name a command
        // to run for a token, allowed by the second; the third sends
        // "Login with Google" tokens and prompts elsewhere.
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
        "KUBECONFIG",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ];
    const PREFIXES: &[&str] = &[
        "LD_",
        "GIT_",
        "NODE_",
        "NPM_CONFIG_",
        "PYTHON",
        "PERL",
        "RUBY",
        "GEM_",
        "BUNDLE_",
        "GEMINI_CLI_",
        "XDG_",
        "DYLD_",
        "CARGO_",
        "RUSTC",
        "LUA_",
        "TCL",
        "JULIA_",
        // Gemini CLI's sandbox launch: `GEMINI_SANDBOX=docker` runs
        // `GEMINI_SANDBOX_PROXY_COMMAND` through a shell at start, and
        // `SANDBOX_FLAGS`/`SANDBOX_MOUNTS` shape the container.
        "GEMINI_SANDBOX",
        "SANDBOX",
        // A config that can load a shared object into any OpenSSL user.
        "OPENSSL_",
        "GCE_METADATA_",
        "CLOUDSDK_",
    ];
    // `_COMMAND`/`_CMD`: a command a tool runs; `_ENDPOINT`: where it
    // sends requests (`CODE_ASSIST_ENDPOINT`, OpenTelemetry exporters).
    const SUFFIXES: &[&str] = &[
        "_PROXY",
        "_BASE_URL",
        "_OPTIONS",
        "_OPTS",
        "_HOOK",
        "_COMMAND",
        "_CMD",
        "_ENDPOINT",
    ];
    // Common in a project's `.env`, and they run nothing.
    const HARMLESS: &[&str] = &["NODE_ENV", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"];
    let upper = name.to_ascii_uppercase();
    if HARMLESS.contains(&upper.as_str()) {
        return false;
    }
    EXACT.contains(&upper.as_str())
        || PREFIXES.iter().any(|p| upper.starts_with(p))
        || SUFFIXES.iter().any(|s| upper.ends_with(s))
}

/// White space as JavaScript's `\s` reads it, and more (over-reading a
/// line's start is safe: it only marks more lines).
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// The characters of a `dotenv` key.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The name a line assigns, if it starts with one (after white space and
/// an optional `export`).
fn line_key(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(is_space);
    let word = |s: &str| -> usize { s.find(|c: char| !is_key_char(c)).unwrap_or(s.len()) };
    let first = &rest[..word(rest)];
    if first == "export" {
        let after = &rest[first.len()..];
        let next = after.trim_start_matches(is_space);
        if next.len() < after.len() {
            let second = &next[..word(next)];
            if !second.is_empty() && is_code_running(second) {
                return Some(second);
            }
        }
    }
    (!first.is_empty()).then_some(first)
}

/// Split as JavaScript's multi-line `^` does: at `\n`, `\r`, U+2028 and
/// U+2029. Each piece keeps its terminator.
fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}') {
            let end = i + c.len_utf8();
            out.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The lines of `text` that assign a code-running name, as written
/// (terminator cut), and their names.
fn code_running_lines(text: &str) -> Vec<(String, String)> {
    lines(text)
        .into_iter()
        .filter_map(|l| {
            let key = line_key(l)?;
            is_code_running(key).then(|| {
                let bare = l.trim_end_matches(['\n', '\r', '\u{2028}', '\u{2029}']);
                (key.to_string(), bare.to_string())
            })
        })
        .collect()
}

/// `after` with its code-running lines replaced by those of `before`
/// (at the top, where nothing above can change how they are read); the
/// names that differed. `remove_only` (a run that was not alone: its
/// `before` may hold another live run's unchecked plant, so nothing is
/// written back from it): only the code-running lines that are not in
/// `before` are removed, the rest stays where it is.
fn put_back(before: &str, after: &str, remove_only: bool) -> Option<(String, Vec<String>)> {
    let (b, a) = (code_running_lines(before), code_running_lines(after));
    let added: Vec<&(String, String)> = a.iter().filter(|l| !b.contains(l)).collect();
    if b == a || (remove_only && added.is_empty()) {
        return None;
    }
    let mut names: Vec<String> = added.iter().map(|(k, _)| k.clone()).collect();
    let mut text = String::new();
    if !remove_only {
        names.extend(b.iter().filter(|l| !a.contains(l)).map(|(k, _)| k.clone()));
        text = b.iter().map(|(_, l)| format!("{l}\n")).collect();
    }
    names.sort();
    names.dedup();
    for l in lines(after) {
        let drop = line_key(l).is_some_and(is_code_running) && {
            let bare = l.trim_end_matches(['\n', '\r', '\u{2028}', '\u{2029}']);
            !remove_only || added.iter().any(|(_, x)| x == bare)
        };
        if !drop {
            text.push_str(l);
        }
    }
    Some((text, names))
}

/// One `.env` and what it held before the run (`None`: absent).
#[derive(Debug)]
pub(super) struct EnvFile {
    pub(super) path: PathBuf,
    pub(super) before: Option<String>,
    /// The run was not alone: only remove what is new (see [`put_back`]).
    pub(super) remove_only: bool,
}

/// Gemini CLI's own dotenv in a directory: in a trusted folder it looks
/// for `DIR/.gemini/.env` before `DIR/.env`, at every level.
const GEMINI_DOTENV: &str = ".gemini/.env";

/// The `.env` files a later program started in the cwd (or above it)
/// would load and this run can write: `.gemini/.env` and `.env` in the
/// cwd and each directory above it inside one of `writable` (Gemini CLI
/// takes the first it finds, so a `.gemini/.env` above an unchecked
/// level wins over every `.env` below it that does not exist).
pub(super) fn env_paths(cwd: &Path, writable: &[PathBuf]) -> Vec<PathBuf> {
    cwd.ancestors()
        .take_while(|d| writable.iter().any(|w| d.starts_with(w)))
        .flat_map(|d| [d.join(GEMINI_DOTENV), d.join(DOTENV)])
        .collect()
}

/// Snapshot `path`; `Err(why)` when it cannot be checked (a symlink, or
/// one on the way to it, not a regular file, too large, not UTF-8): it is
/// write-denied then.
pub(super) fn snapshot(path: &Path, remove_only: bool) -> Result<EnvFile, String> {
    if let Some(parent) = path.parent() {
        match fsat::open_dir(parent) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "{} cannot be opened without following a link ({e})",
                    parent.display()
                ))
            }
        }
    }
    let before = match std::fs::symlink_metadata(path) {
        Err(_) => None,
        Ok(_) => Some(read_bounded(path, MAX_STATE)?),
    };
    Ok(EnvFile {
        path: path.to_path_buf(),
        before,
        remove_only,
    })
}

/// After the run: put back what the command changed in the code-running
/// lines of `f`; a line saying what was done.
///
/// Every read and write goes through the directory opened without
/// following a symlink on the way: the command can replace a directory
/// above the file (its cwd, when a grant starts above it) with a link,
/// and zerobox, unsandboxed, must not then read or rewrite the `.env` of
/// wherever that points (a file the command could not touch).
pub(super) fn check(f: &EnvFile) -> Option<String> {
    let (Some(parent), Some(name)) = (f.path.parent(), f.path.file_name()) else {
        return None;
    };
    let dir = match fsat::open_dir(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(link_on_the_way(parent, &e)),
    };
    let fd_dir = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let path = fd_dir.join(name);
    if std::fs::symlink_metadata(&path).is_err() {
        return None; // removed: nothing left that runs
    }
    let line = check_at(f, &path)?;
    // Names built from the fd path (a quarantine) read as the real ones.
    let shown = line
        .replace(
            &format!("{}/", fd_dir.display()),
            &format!("{}/", parent.display()),
        )
        .replace("{path}", &f.path.display().to_string());
    drop(dir);
    Some(shown)
}

/// The directory of a checked `.env` cannot be opened without following
/// a link: the command replaced it (or one above it). Never followed: a
/// link at the directory itself is moved aside (a later program started
/// there would load the `.env` of wherever it points), any other is named.
fn link_on_the_way(parent: &Path, e: &std::io::Error) -> String {
    let shown = parent.display();
    let moved = match (parent.parent(), parent.file_name()) {
        (Some(up), Some(name)) => {
            fsat::open_dir(up).and_then(|up| match fsat::kind_at(&up, name)? {
                (fsat::Kind::Symlink, _) => {
                    crate::sandbox::guard::move_aside(&up, name, "replaced").map(Some)
                }
                _ => Ok(None),
            })
        }
        _ => Ok(None),
    };
    match moved {
        Ok(Some(to)) => format!(
            "{shown} was replaced by a symbolic link during the run: not followed (its {DOTENV} was neither read nor written); moved the link to {}",
            parent.with_file_name(to).display()
        ),
        Ok(None) | Err(_) => format!(
            "{shown} cannot be opened without following a link ({e}): its {DOTENV} was neither checked nor written; review what a program started there loads before running an agent outside zerobox"
        ),
    }
}

/// [`check`] on `path`, the file reached through its directory's fd.
fn check_at(f: &EnvFile, path: &Path) -> Option<String> {
    let line = match (&f.before, read_bounded(path, MAX_STATE)) {
        (Some(raw), Ok(text)) if text == *raw => return None,
        (Some(raw), Err(why)) => restore_whole(path, raw, &why),
        (None, Err(_)) => quarantine_new(path),
        (before, Ok(text)) => {
            let (kept, names) = put_back(before.as_deref().unwrap_or(""), &text, f.remove_only)?;
            match replace_file(path, kept.as_bytes()) {
                Ok(()) => format!(
                    "put back what the command changed in {{path}} in variables that make programs run code (a later `gemini` loads this file): {}",
                    names.join(", ")
                ),
                Err(e) => format!(
                    "the command changed {} in {{path}} and they could not be put back ({e}): remove them before running an agent outside zerobox",
                    names.join(", ")
                ),
            }
        }
    };
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_dotenv_reads_is_a_line_start() {
        for text in [
            "BASH_ENV=/x",
            "  export BASH_ENV=/x",
            "export\tNODE_OPTIONS='--require /x.js'",
            "bash_env: /x",
            "BASH_ENV\n=/x",
            "A=1\u{2028}LD_PRELOAD=/x.so",
            "A=1\rPATH=/x",
            "\u{feff}PYTHONSTARTUP=/x.py",
            "A=\"multi\nGIT_SSH_COMMAND=sh /x\"",
            "HTTPS_PROXY=http://evil",
            "GEMINI_SANDBOX_PROXY_COMMAND=sh x",
            "CODE_ASSIST_ENDPOINT=https://evil",
            "OTEL_EXPORTER_OTLP_ENDPOINT=https://evil",
            "GOOGLE_APPLICATION_CREDENTIALS=./c.json",
            "OPENSSL_CONF=./x.cnf",
            "LESSOPEN=|x %s",
        ] {
            assert!(!code_running_lines(text).is_empty(), "{text:?}");
        }
        for text in [
            "API_URL=https://x",
            "# BASH_ENV=/x",
            "MY_PATH_X=1",
            "export=1",
            "NODE_ENV=production",
        ] {
            assert!(code_running_lines(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn only_code_running_lines_are_put_back() {
        let before = "API=1\nNODE_OPTIONS=--max-old-space-size=4096\n";
        let after = "API=2\nNEW=3\nNODE_OPTIONS=--require /x.js\nexport BASH_ENV=/x\n";
        let (text, names) = put_back(before, after, false).unwrap();
        assert_eq!(
            text,
            "NODE_OPTIONS=--max-old-space-size=4096\nAPI=2\nNEW=3\n"
        );
        assert_eq!(names, ["BASH_ENV", "NODE_OPTIONS"]);
        // Idempotent: a second pass finds nothing.
        assert!(put_back(before, &text, false).is_none());
        let kept = "API=5\nNODE_OPTIONS=--max-old-space-size=4096\n";
        assert!(put_back(before, kept, false).is_none());
    }

    #[test]
    fn a_run_that_is_not_alone_only_removes() {
        // Its snapshot holds another live run's plant (BASH_ENV): never
        // written back, even after the other run removed it.
        let before = "API=1\nBASH_ENV=/other-runs-plant\n";
        assert!(put_back(before, "API=1\n", true).is_none());
        let after = "API=2\nBASH_ENV=/other-runs-plant\nLD_PRELOAD=/x\n";
        let (text, names) = put_back(before, after, true).unwrap();
        assert_eq!(text, "API=2\nBASH_ENV=/other-runs-plant\n");
        assert_eq!(names, ["LD_PRELOAD"]);
    }

    #[test]
    fn a_new_env_file_keeps_everything_but_code_running_lines() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(DOTENV);
        let f = snapshot(&path, false).unwrap();
        std::fs::write(&path, "API=1\nLD_PRELOAD=/x.so\n").unwrap();
        let line = check(&f).unwrap();
        assert!(line.contains("LD_PRELOAD"), "{line}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "API=1\n");
        assert_eq!(check(&f), None);
    }

    #[test]
    fn a_symlink_is_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(DOTENV);
        std::fs::write(&path, "A=1\n").unwrap();
        let f = snapshot(&path, false).unwrap();
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "BASH_ENV=/x\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(check(&f).unwrap().contains("restored"));
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "BASH_ENV=/x\n");
    }

    #[test]
    fn only_writable_dirs_are_watched() {
        let p = env_paths(Path::new("/w/proj/sub"), &[PathBuf::from("/w/proj")]);
        assert_eq!(
            p,
            [
                PathBuf::from("/w/proj/sub/.gemini/.env"),
                PathBuf::from("/w/proj/sub/.env"),
                PathBuf::from("/w/proj/.gemini/.env"),
                PathBuf::from("/w/proj/.env")
            ]
        );
        assert!(env_paths(Path::new("/x"), &[PathBuf::from("/w")]).is_empty());
    }
}
