//! The first-run summary: the first time a user runs a preset
//! (`zerobox claude`), a few stderr lines say what it grants (writable
//! paths, hosts, secrets), where a user override goes, and how to see
//! everything. Shown again when the grants change (a new version that adds
//! a path or a host), never again otherwise; `--quiet` hides it.
//!
//! The "seen" marker is `$XDG_DATA_HOME/zerobox/seen/NAME`: zerobox's data
//! dir, which the sandbox can neither read nor write, so a sandboxed
//! command cannot silence the summary for the next preset it plants. The
//! marker holds the SHA-256 of the grants as shown; it is compared, never
//! parsed. It is written atomically (a fresh temp file, `O_EXCL`, never
//! through a symlink, renamed over the marker). Every failure (no home,
//! unreadable, unwritable, a closed stderr) means "not seen": the summary
//! is printed again next time; a run never fails over it.

use std::path::{Path, PathBuf};

use super::LoadedPreset;

/// How many entries of one list the summary names.
const SHOWN: usize = 6;

/// The grants of `p` as the summary shows them (paths as written, not
/// expanded: the same text in every project).
pub fn grants(p: &LoadedPreset) -> Vec<(&'static str, String)> {
    let mut writes: Vec<&str> = Vec::new();
    let mut hosts: Vec<&str> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();
    let mut any_host = false;
    for l in &p.layers {
        for w in &l.write_allow {
            if !writes.contains(&w.as_str()) {
                writes.push(w);
            }
        }
        for h in &l.net_allow {
            if !hosts.contains(&h.as_str()) {
                hosts.push(h);
            }
        }
        any_host |= l.net_allow_any;
        for s in &l.secrets {
            let line = format!("{} → {}", s.name, s.hosts.join(", "));
            if !secrets.contains(&line) {
                secrets.push(line);
            }
        }
    }
    let list = |v: &[&str]| {
        if v.is_empty() {
            return "nothing".to_string();
        }
        let mut s = v
            .iter()
            .take(SHOWN)
            .map(|x| if *x == "." { ". (the project)" } else { x })
            .collect::<Vec<_>>()
            .join(", ");
        if v.len() > SHOWN {
            s.push_str(&format!(", and {} more", v.len() - SHOWN));
        }
        s
    };
    let mut out = vec![("writes", list(&writes))];
    out.push((
        "network",
        if any_host {
            "any host (through zerobox's proxy)".to_string()
        } else {
            list(&hosts)
        },
    ));
    if !secrets.is_empty() {
        out.push(("secrets", secrets.join("; ")));
    }
    out
}

/// The summary's lines.
pub fn summary(p: &LoadedPreset, override_path: &Path) -> Vec<String> {
    let mut lines = vec![format!(
        "zerobox: first run of preset {}@{}; it grants:",
        p.name, p.version
    )];
    for (k, v) in grants(p) {
        lines.push(format!("  {k:<9}{v}"));
    }
    lines.push(format!("  {:<9}{}", "yours", super::tilde(override_path)));
    lines.push(format!(
        "  {:<9}zerobox preset show {} --resolved   (this note shows once; --quiet hides it)",
        "all", p.name
    ));
    lines
}

/// The marker for `name`, or `None` without a data dir.
fn marker(name: &str) -> Option<PathBuf> {
    Some(
        crate::dirs::zerobox_dir(crate::dirs::Kind::Data)?
            .join("seen")
            .join(name),
    )
}

fn fingerprint(p: &LoadedPreset) -> String {
    let text: String = grants(p)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    super::sha256_hex(text.as_bytes())
}

/// Has this user seen the summary of these grants? Any failure: no.
fn seen(path: &Path, fp: &str) -> bool {
    use std::io::Read;
    // Never through a symlink, never blocking on a FIFO; 64 bytes at most.
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut buf = String::new();
    f.take(64).read_to_string(&mut buf).is_ok() && buf.trim() == fp
}

/// Print the summary on stderr if this user has not seen these grants of
/// `p` (and `quiet` is off), then remember it. Never fails.
pub fn maybe_show(p: &LoadedPreset, quiet: bool) {
    if quiet {
        return;
    }
    let fp = fingerprint(p);
    let path = marker(&p.name);
    if path.as_deref().is_some_and(|m| seen(m, &fp)) {
        return;
    }
    let override_path = crate::dirs::zerobox_dir(crate::dirs::Kind::Config)
        .map(|c| c.join("overrides").join(format!("{}.yaml", p.name)))
        .unwrap_or_else(|| PathBuf::from(format!("~/.config/zerobox/overrides/{}.yaml", p.name)));
    for line in summary(p, &override_path) {
        // Paths and hosts come from a signed preset, but a user or project
        // override may add any text: escaped.
        crate::errln!("{}", crate::output::one_line(&line));
    }
    if crate::output::stderr_gone() {
        // Nobody saw it: show it again next time.
        return;
    }
    if let Some(m) = path {
        // Private, like the rest of the data dir (which presets a user
        // runs is nobody else's business). Failing to remember only means
        // showing it again next time.
        if let Some(dir) = m.parent() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let _ = super::write_atomic(&m, format!("{fp}\n").as_bytes());
    }
}
