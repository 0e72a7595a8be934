//! zerobox's own small state files (the interception CA, the placeholder
//! key, their lock files): opened never through a symlink, regular files
//! only, and replaced atomically. Both the CA and the placeholder key use
//! this, so a fix to one is a fix to both.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why an open was refused, for the caller's message.
#[derive(Debug)]
pub enum OpenError {
    Io(std::io::Error),
    /// Something other than a regular file (a FIFO, a directory, a device).
    NotRegular,
}

/// Open `path` for reading (and writing, creating it 0600, with `create`:
/// lock files), never through a symlink in the last component, never
/// blocking on a FIFO, never becoming a controlling terminal; the type is
/// checked on the descriptor.
pub fn open_nofollow(path: &Path, create: bool) -> Result<std::fs::File, OpenError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(OpenError::Io)?;
    if !f.metadata().map_err(OpenError::Io)?.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok(f)
}

/// Replace `path` with `data`: a per-process temporary file beside it
/// (created exclusively, never through a symlink, with `mode`), synced,
/// then renamed over `path`, so a concurrent reader never sees half a key.
/// Callers hold their directory's lock.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
