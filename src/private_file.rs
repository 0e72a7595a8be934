//! zerobox's own small state files (the interception CA, the placeholder
//! key, their lock files, the run journals of `sandbox::guard` and
//! `protect::agent_state`): opened never through a symlink, regular files
//! only, and replaced atomically. All of them use this, so a fix to one is
//! a fix to all.

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

/// Whether [`write_atomic`] syncs the new file before the rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced: the file survives a power cut once this returns (keys,
    /// which are written once and read for good).
    Synced,
    /// Page cache only: a killed zerobox's write still reaches the next
    /// run; a power cut may lose it (the run journals, written on every
    /// run, where a sync cost 5-8 ms: see `protect::agent_state::journal`).
    Cached,
}

/// Replace `path` with `data`: a temporary file beside it with a name no
/// other writer uses (per process and random; created exclusively, never
/// through a symlink, with `mode`), synced if asked, then renamed over
/// `path`, so a concurrent reader never sees half a file. On failure the
/// temporary file is removed.
pub fn write_atomic(
    path: &Path,
    data: &[u8],
    mode: u32,
    durability: Durability,
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        if durability == Durability::Synced {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
