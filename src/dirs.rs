//! zerobox's own directories on the host (XDG base directories): the one
//! place that decides where configuration, cache and data live, for the
//! launcher (interception CA, what the sandbox may not touch) and for
//! presets (trusted keys, trust store, registry cache).

use std::path::PathBuf;

/// Which base directory.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `$XDG_CONFIG_HOME/zerobox`: trusted keys, overrides, registry
    /// settings. Readable inside the sandbox (write-denied).
    Config,
    /// `$XDG_CACHE_HOME/zerobox`: downloaded presets, highest serials seen
    /// (`seen.json` and its lock). Write-denied inside.
    Cache,
    /// `$XDG_DATA_HOME/zerobox`: the interception CA and the trust store
    /// (`trust/`): what the command must not even read. Denied inside.
    Data,
}

/// `$XDG_…_HOME/zerobox` (an absolute value only), else the platform
/// default under the home directory; `None` without a home directory.
pub fn zerobox_dir(kind: Kind) -> Option<PathBuf> {
    let var = match kind {
        Kind::Config => "XDG_CONFIG_HOME",
        Kind::Cache => "XDG_CACHE_HOME",
        Kind::Data => "XDG_DATA_HOME",
    };
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            let base = directories::BaseDirs::new()?;
            Some(
                match kind {
                    Kind::Config => base.config_dir(),
                    Kind::Cache => base.cache_dir(),
                    Kind::Data => base.data_dir(),
                }
                .to_path_buf(),
            )
        })
        .map(|p| p.join("zerobox"))
}
