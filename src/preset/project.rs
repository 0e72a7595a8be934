//! Project files (`.zerobox/` at the repository root) and user overrides.
//!
//! A project file comes with the repository, so it is untrusted input: an
//! override may only narrow (deny entries) and a lock file is not honoured
//! until the user runs `zerobox trust FILE` on that exact content. Trust is
//! keyed by project root, the file's real path and its sha256 (see
//! `sign::is_trusted`): a changed file, or trusted content copied into
//! another project or path, is untrusted again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schema::{parse_override, PresetDoc};
use super::{read_capped, sha256_hex, sign, PresetEnv, PresetError, MAX_PRESET_BYTES};

/// The directory holding `.zerobox/`: the cwd or the nearest ancestor up to
/// the repository root (the first directory holding `.git`); the cwd when
/// there is none.
pub fn find_project_dir(cwd: &Path) -> PathBuf {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if d.join(".zerobox").is_dir() {
            return d.to_path_buf();
        }
        if d.join(".git").exists() {
            break;
        }
        dir = d.parent();
    }
    cwd.to_path_buf()
}

/// `.zerobox/lock.yaml`: exact pins.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    #[serde(rename = "zerobox-lock")]
    pub schema: u32,
    #[serde(default)]
    pub pins: Vec<Pin>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub name: String,
    pub version: String,
    /// Registry URL the pin was taken from, or `bundled`.
    pub registry: String,
    pub sha256: String,
    /// Signing key id (16 hex digits).
    pub key: String,
}

pub fn lock_path(project_dir: &Path) -> PathBuf {
    project_dir.join(".zerobox").join("lock.yaml")
}

/// Read the lock file without checking trust (for listings).
pub fn read_lock(project_dir: &Path) -> Result<Option<LockFile>, PresetError> {
    let path = lock_path(project_dir);
    if !super::present(&path)? {
        return Ok(None);
    }
    let bytes = read_capped(&path, MAX_PRESET_BYTES)?;
    let lock: LockFile = super::yaml::parse(&bytes, &path.display().to_string())?;
    if lock.schema != 1 {
        return Err(PresetError::InvalidFile {
            file: path.display().to_string(),
            message: format!(
                "unsupported lock schema {}; expected `zerobox-lock: 1`",
                lock.schema
            ),
        });
    }
    for p in &lock.pins {
        super::check_name(&p.name)?;
        semver::Version::parse(&p.version).map_err(|e| PresetError::InvalidFile {
            file: path.display().to_string(),
            message: format!("pin {}: invalid version {:?} ({e})", p.name, p.version),
        })?;
        if p.registry != "bundled" {
            super::registry::check_registry_url(&p.registry, &path.display().to_string())?;
        }
        if p.sha256.len() != 64 || !p.sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(PresetError::InvalidFile {
                file: path.display().to_string(),
                message: format!("pin {}: sha256 must be 64 hex digits", p.name),
            });
        }
    }
    Ok(Some(lock))
}

/// The pin for `name`, if the project has a lock file. An untrusted lock
/// file is an error (never silently ignored).
pub fn trusted_pin(env: &PresetEnv, name: &str) -> Result<Option<(Pin, PathBuf)>, PresetError> {
    let path = lock_path(&env.project_dir);
    let Some(lock) = read_lock(&env.project_dir)? else {
        return Ok(None);
    };
    let Some(pin) = lock.pins.into_iter().find(|p| p.name == name) else {
        return Ok(None);
    };
    let f = super::read_real(&path, MAX_PRESET_BYTES)?;
    if !sign::is_trusted(env, &f.real, &sha256_hex(&f.bytes))? {
        return Err(PresetError::Untrusted {
            file: path.display().to_string(),
            message: format!(
                "pins {}@{} but this lock file is not trusted; review it, then run `zerobox trust {}`",
                pin.name,
                pin.version,
                path.display()
            ),
        });
    }
    Ok(Some((pin, path)))
}

pub fn write_lock(env: &PresetEnv, lock: &LockFile) -> Result<PathBuf, PresetError> {
    let path = lock_path(&env.project_dir);
    let mut text = String::from("# zerobox preset pins; written by `zerobox preset pin`.\n");
    text.push_str(&format!("zerobox-lock: {}\npins:\n", lock.schema));
    for p in &lock.pins {
        text.push_str(&format!(
            "  - name: {}\n    version: \"{}\"\n    registry: \"{}\"\n    sha256: {}\n    key: \"{}\"\n",
            p.name, p.version, p.registry, p.sha256, p.key
        ));
    }
    super::write_atomic(&path, text.as_bytes())?;
    // Pinning is the user's own act: trust the content just written, at
    // the real path it was written to.
    let f = super::read_real(&path, MAX_PRESET_BYTES)?;
    sign::record_trust(env, &f.real, &sha256_hex(&f.bytes))?;
    Ok(path)
}

/// A user override (`$XDG_CONFIG_HOME/zerobox/overrides/NAME.yaml`): the
/// user's own file, may widen.
pub fn read_override(path: &Path) -> Result<Option<PresetDoc>, PresetError> {
    if !super::present(path)? {
        return Ok(None);
    }
    let bytes = read_capped(path, MAX_PRESET_BYTES)?;
    parse_override(&bytes, &path.display().to_string()).map(Some)
}

/// A project override (`.zerobox/overrides/NAME.yaml`): returns the document
/// and whether it is trusted. Untrusted documents that widen are an error
/// naming the first widening entry.
pub fn read_project_override(
    path: &Path,
    env: &PresetEnv,
) -> Result<Option<(PresetDoc, bool)>, PresetError> {
    if !super::present(path)? {
        return Ok(None);
    }
    let f = super::read_real(path, MAX_PRESET_BYTES)?;
    let file = path.display().to_string();
    let doc = parse_override(&f.bytes, &file)?;
    let trusted = sign::is_trusted(env, &f.real, &sha256_hex(&f.bytes))?;
    if !trusted {
        if let Some(entry) = doc.widening_entries().into_iter().next() {
            return Err(PresetError::Widening { file, entry });
        }
    }
    Ok(Some((doc, trusted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &Path) -> PresetEnv {
        PresetEnv {
            config_dir: dir.join("config"),
            cache_dir: dir.join("cache"),
            data_dir: dir.join("data"),
            project_dir: dir.join("proj"),
            strict: false,
            offline: true,
        }
    }

    #[test]
    fn project_dir_search_stops_at_repo_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join(".zerobox")).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        assert_eq!(find_project_dir(&root.join("a/b")), root);
        let other = t.path().join("other/x");
        std::fs::create_dir_all(t.path().join("other/.git")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        assert_eq!(find_project_dir(&other), other);
    }

    #[test]
    fn narrowing_only_until_trusted() {
        let t = tempfile::tempdir().unwrap();
        let e = env(t.path());
        let p = e.project_dir.join(".zerobox/overrides/claude.yaml");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "filesystem:\n  write:\n    deny: [secret]\n").unwrap();
        let (_, trusted) = read_project_override(&p, &e).unwrap().unwrap();
        assert!(!trusted);
        let widening = "network:\n  allow: [evil.example]\n";
        std::fs::write(&p, widening).unwrap();
        let err = read_project_override(&p, &e).unwrap_err();
        assert!(
            err.to_string().contains("network.allow: evil.example"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
        let real = std::fs::canonicalize(&p).unwrap();
        sign::record_trust(&e, &real, &sha256_hex(widening.as_bytes())).unwrap();
        let (_, trusted) = read_project_override(&p, &e).unwrap().unwrap();
        assert!(trusted);
        // a changed file is untrusted again
        std::fs::write(&p, "network:\n  allow: [evil2.example]\n").unwrap();
        assert!(read_project_override(&p, &e).is_err());
    }
}
