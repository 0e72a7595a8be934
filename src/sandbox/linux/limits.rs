//! Resource limits of a run: the size of the private tmpfs mounts, the
//! number of processes, and memory.
//!
//! Why: tmpfs pages belong to no process, so a full `/tmp` (by default half
//! the RAM, and `/dev/shm` another half) pushes the host into the OOM
//! killer, which then kills host processes first; a fork loop does the
//! same to the process table.
//!
//! * **tmpfs** (`--tmp-size`, default [`DEFAULT_TMP_SIZE`]): the private
//!   `/tmp` and `/dev/shm` each get `size=` and `nr_inodes=` (one inode per
//!   [`BYTES_PER_INODE`] bytes, at least [`MIN_INODES`]). Namespace mode
//!   only: the fallback's private temp dir lives on the host's `/tmp`.
//! * **processes** (`--pids`, default [`DEFAULT_PIDS`]): a cgroup's
//!   `pids.max` where zerobox can make one (see `cgroup`), and always
//!   `RLIMIT_NPROC` for the command, which the kernel counts *per real uid*:
//!   - in the namespace mode, per uid *of the sandbox's own user
//!     namespace* (Linux ≥ 5.14 keeps these counts per user namespace), so
//!     it counts the sandbox's processes only;
//!   - in the fallback, all of the user's processes on the host count, so
//!     the limit is the user's current count plus `--pids` (other programs
//!     of the user share that headroom while the run lasts);
//!   - root (uid 0) is exempt from `RLIMIT_NPROC` everywhere: as root only
//!     the cgroup limits processes; without one, none (doctor and explain
//!     say so).
//! * **memory** (`--memory`, default half the RAM): only through a cgroup's
//!   `memory.max` (tmpfs pages written by the sandbox are charged to it);
//!   without one, none (doctor and explain say so; the run does not fail).

use std::io;

use super::sys;

pub const DEFAULT_TMP_SIZE: u64 = 1 << 30;
pub const BYTES_PER_INODE: u64 = 8 << 10;
pub const MIN_INODES: u64 = 1024;
pub const DEFAULT_PIDS: u64 = 4096;

/// The limits asked for (CLI flags or defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes for each of the private `/tmp` and `/dev/shm`.
    pub tmp_size: u64,
    /// Processes (and threads) of the sandbox.
    pub pids: u64,
    /// Bytes of memory; `None`: half the RAM.
    pub memory: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tmp_size: DEFAULT_TMP_SIZE,
            pids: DEFAULT_PIDS,
            memory: None,
        }
    }
}

impl Limits {
    /// `size=…,nr_inodes=…` for a private tmpfs. Built from numbers only,
    /// so no value can add a mount option.
    pub fn tmpfs_options(&self) -> String {
        let inodes = (self.tmp_size / BYTES_PER_INODE).max(MIN_INODES);
        format!("size={},nr_inodes={inodes}", self.tmp_size)
    }

    /// The memory limit in bytes: as asked, else half the RAM.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.unwrap_or_else(|| ram_bytes() / 2)
    }
}

/// Parse `SIZE`: bytes, or a number with `k`, `m`, `g` or `t` (binary
/// units, either case, optional trailing `b`/`iB`). Zero is refused.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        Some('t') => (&lower[..lower.len() - 1], 40),
        _ => (lower, 0),
    };
    let bad = || {
        format!(
            "invalid size {s:?}: expected a number of bytes, or with k, m, g or t (e.g. 512m, 2g)"
        )
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!("invalid size {s:?}: must be more than 0"));
    }
    Ok(bytes)
}

/// Parse `--pids N` (at least 1).
pub fn parse_pids(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid process limit {s:?}: expected a number ≥ 1"
        )),
    }
}

/// Physical memory (MemTotal), or 0 if /proc/meminfo cannot be read.
pub fn ram_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// How the process limit is enforced for `uid` in a mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NprocRule {
    /// `RLIMIT_NPROC` = this many, counting the sandbox's processes only.
    Sandbox(u64),
    /// `RLIMIT_NPROC` = the user's current count + this many.
    UserWide(u64),
    /// Root is exempt from `RLIMIT_NPROC`.
    RootExempt,
}

pub fn nproc_rule(namespaces: bool, uid: u32, pids: u64) -> NprocRule {
    if uid == 0 {
        NprocRule::RootExempt
    } else if namespaces {
        NprocRule::Sandbox(pids)
    } else {
        NprocRule::UserWide(pids)
    }
}

/// Processes (threads included, as the kernel counts them) whose real uid
/// is `uid`, from `/proc/PID/status`.
pub fn processes_of(uid: u32) -> io::Result<u64> {
    let mut n = 0u64;
    for e in std::fs::read_dir("/proc")? {
        let e = e?;
        if !e
            .file_name()
            .to_str()
            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue; // ended while we looked
        };
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        if real == Some(uid) {
            n += threads;
        }
    }
    Ok(n)
}

/// Set `RLIMIT_NPROC` (soft and hard: the command cannot raise it again)
/// to `n`, never above the current hard limit.
pub fn set_nproc(n: u64) -> io::Result<()> {
    let cur = sys::getrlimit(libc::RLIMIT_NPROC)?;
    let n = n.min(cur.rlim_max);
    sys::setrlimit(
        libc::RLIMIT_NPROC,
        &libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        },
    )
}

/// One line per limit, for `explain` and `doctor`.
pub fn describe(
    limits: &Limits,
    namespaces: bool,
    uid: u32,
    cgroup: &Result<String, String>,
) -> Vec<String> {
    let mib = |b: u64| format!("{} MiB", b >> 20);
    let mut out = Vec::new();
    if namespaces {
        out.push(format!(
            "tmpfs: private /tmp and /dev/shm {} each, {} inodes (--tmp-size)",
            mib(limits.tmp_size),
            (limits.tmp_size / BYTES_PER_INODE).max(MIN_INODES)
        ));
    } else {
        out.push(
            "tmpfs: none (fallback: the private temp dir is on the host's /tmp, unlimited)".into(),
        );
    }
    let rlimit = match nproc_rule(namespaces, uid, limits.pids) {
        NprocRule::Sandbox(n) => {
            format!("RLIMIT_NPROC {n} (counts the sandbox's own user namespace)")
        }
        NprocRule::UserWide(n) => format!(
            "RLIMIT_NPROC your current process count + {n} (fallback: counts all your processes)"
        ),
        NprocRule::RootExempt => "RLIMIT_NPROC not enforced (root is exempt)".into(),
    };
    match cgroup {
        Ok(where_) => {
            out.push(format!(
                "processes: {} (cgroup pids.max, {where_}); {rlimit}",
                limits.pids
            ));
            out.push(format!(
                "memory: {} (cgroup memory.max, {where_})",
                mib(limits.memory_bytes())
            ));
        }
        Err(why) => {
            out.push(format!("processes: {rlimit}; no cgroup ({why})"));
            out.push(format!("memory: NOT LIMITED: no cgroup ({why})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_strictly() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1t").unwrap(), 1 << 40);
        for bad in [
            "",
            "0",
            "0m",
            "-1",
            "1.5g",
            "1g,mode=777",
            "1x",
            "g",
            "99999999999999999999",
            "20000000000t",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tmpfs_options_are_numbers_only() {
        let l = Limits {
            tmp_size: 64 << 20,
            ..Limits::default()
        };
        assert_eq!(l.tmpfs_options(), "size=67108864,nr_inodes=8192");
        let tiny = Limits {
            tmp_size: 4096,
            ..Limits::default()
        };
        assert_eq!(tiny.tmpfs_options(), "size=4096,nr_inodes=1024");
    }

    #[test]
    fn nproc_rules() {
        assert_eq!(nproc_rule(true, 1000, 10), NprocRule::Sandbox(10));
        assert_eq!(nproc_rule(false, 1000, 10), NprocRule::UserWide(10));
        assert_eq!(nproc_rule(true, 0, 10), NprocRule::RootExempt);
        assert!(parse_pids("0").is_err() && parse_pids("x").is_err());
        assert_eq!(parse_pids("64").unwrap(), 64);
    }
}
