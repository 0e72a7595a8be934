//! The per-user placeholder key: 32 random bytes in zerobox's data dir
//! from which every secret's placeholder is derived, so a placeholder is
//! the same from run to run for one user, secret name and host binding.
//!
//! Owns: creating, loading and verifying `placeholder/key`. The data dir
//! is read-denied inside the sandbox, so the command never sees the key;
//! the file is still treated as possibly tampered with: opened
//! `O_NOFOLLOW`, a regular file of exactly [`KEY_LEN`] bytes, owner-only,
//! or refused with the file and the fix named. Created under an exclusive
//! `flock` (concurrent first runs agree on one key), via a temporary file
//! and rename (no run ever reads half a key).
//!
//! Hand-written (small): the file handling mirrors the CA's in `tls.rs`,
//! with its own messages, because the fix for a bad key differs.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::ProxyError;

/// Bytes of key.
pub const KEY_LEN: usize = 32;
/// The key's file name inside its directory.
const KEY_FILE: &str = "key";
/// Held (exclusive `flock`) while the key is loaded or created.
const KEY_LOCK: &str = "key.lock";

/// The key; wiped on drop, never printed.
pub struct PlaceholderKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for PlaceholderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaceholderKey(<redacted>)")
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> ProxyError {
    ProxyError::Io(format!(
        "placeholder key: cannot {what} {}: {e}",
        path.display()
    ))
}

fn bad_key(path: &Path, why: &str) -> ProxyError {
    ProxyError::Io(format!(
        "placeholder key {} is unusable ({why}); delete it and the next run makes a new one (secrets then get new placeholders, and an agent may ask once more to approve its key)",
        path.display()
    ))
}

impl PlaceholderKey {
    /// A key for this process only (tests; never written anywhere).
    pub fn ephemeral() -> PlaceholderKey {
        PlaceholderKey(Zeroizing::new(rand::random()))
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Load the key from `dir` (zerobox's data dir + `placeholder`),
    /// creating it on first use.
    pub fn load_or_create(dir: &Path) -> Result<PlaceholderKey, ProxyError> {
        private_dir(dir)?;
        let lock_path = dir.join(KEY_LOCK);
        let lock = open_nofollow(&lock_path, true)?;
        lock.lock().map_err(|e| io_err("lock", &lock_path, e))?;
        let path = dir.join(KEY_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Self::load(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = PlaceholderKey::ephemeral();
                write_atomic(&path, &key.0[..])?;
                drop(lock);
                Ok(key)
            }
            Err(e) => Err(io_err("stat", &path, e)),
        }
    }

    fn load(path: &Path) -> Result<PlaceholderKey, ProxyError> {
        let f = open_nofollow(path, false)?;
        let meta = f.metadata().map_err(|e| io_err("stat", path, e))?;
        if meta.uid() != crate::sandbox::linux::sys::getuid() {
            return Err(bad_key(path, "it is not owned by you"));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(bad_key(path, "others may read or write it"));
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
        f.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| io_err("read", path, e))?;
        if buf.len() != KEY_LEN {
            return Err(bad_key(
                path,
                &format!("it holds {} bytes, not {KEY_LEN}", buf.len()),
            ));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&buf);
        Ok(PlaceholderKey(key))
    }
}

fn private_dir(dir: &Path) -> Result<(), ProxyError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("create", dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io_err("stat", dir, e))?;
    if !meta.is_dir() {
        return Err(ProxyError::Io(format!(
            "placeholder key: {} is not a directory: delete it",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("chmod", dir, e))?;
    }
    Ok(())
}

/// Open never through a symlink, regular files only.
fn open_nofollow(path: &Path, create: bool) -> Result<std::fs::File, ProxyError> {
    crate::private_file::open_nofollow(path, create).map_err(|e| match e {
        crate::private_file::OpenError::Io(e) => io_err("open", path, e),
        crate::private_file::OpenError::NotRegular => bad_key(path, "it is not a regular file"),
    })
}

/// Temporary file (exclusive, no symlink, 0600) then rename.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ProxyError> {
    crate::private_file::write_atomic(path, data, 0o600, crate::private_file::Durability::Synced)
        .map_err(|e| io_err("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_reused_and_verified() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("placeholder");
        let a = PlaceholderKey::load_or_create(&dir).unwrap();
        let b = PlaceholderKey::load_or_create(&dir).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        let meta = std::fs::metadata(dir.join(KEY_FILE)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_LEN as u64);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // Wrong size: refused, naming the file and the fix.
        std::fs::write(dir.join(KEY_FILE), b"short").unwrap();
        let e = PlaceholderKey::load_or_create(&dir)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds 5 bytes") && e.contains("delete it"),
            "{e}"
        );
        assert!(e.contains(&dir.join(KEY_FILE).display().to_string()), "{e}");
        // A symlink in its place: refused.
        std::fs::remove_file(dir.join(KEY_FILE)).unwrap();
        let other = d.path().join("other");
        std::fs::write(&other, [7u8; KEY_LEN]).unwrap();
        std::os::unix::fs::symlink(&other, dir.join(KEY_FILE)).unwrap();
        assert!(PlaceholderKey::load_or_create(&dir).is_err());
        // Readable by others: refused.
        std::fs::remove_file(dir.join(KEY_FILE)).unwrap();
        std::fs::write(dir.join(KEY_FILE), [7u8; KEY_LEN]).unwrap();
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = PlaceholderKey::load_or_create(&dir)
            .unwrap_err()
            .to_string();
        assert!(e.contains("others may read"), "{e}");
    }

    #[test]
    fn concurrent_first_runs_agree() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("placeholder");
        let keys: Vec<[u8; KEY_LEN]> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| *PlaceholderKey::load_or_create(&dir).unwrap().bytes()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }
}
