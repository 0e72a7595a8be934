//! A cgroup for one run, where the user can have one: `pids.max` and
//! `memory.max` for everything in the sandbox (tmpfs pages it writes are
//! charged to it too, so the OOM killer picks the sandbox, not the host).
//!
//! Where one comes from:
//! * **cgroup v2**: a new directory `zerobox-PID-HEX` under the nearest
//!   ancestor of zerobox's own cgroup that delegates the `pids` controller
//!   (its `cgroup.subtree_control` lists it) and whose `cgroup.procs` we may
//!   write (moving a process needs write access to the common ancestor) —
//!   a delegated systemd user scope or service (`Delegate=yes`), a
//!   container's root, or any cgroup as root;
//!
//! Legacy cgroup v1 hierarchies are not used: where they are writable
//! (root), they are often the cgroups of whatever supervises the machine,
//! and zerobox does not reach into those.
//!
//! Nothing found: the run goes on without (doctor and explain say so).
//! The sandbox's first process (PID 1, or the fallback's reaper) moves
//! itself in before it forks anything, so nothing of the sandbox starts
//! outside. The directory is removed after the run; one left by a killed
//! zerobox is removed by the next run (`rmdir` only succeeds on an empty
//! cgroup).

use std::io;
use std::path::{Path, PathBuf};

use super::limits::Limits;
use super::sys;

const PREFIX: &str = "zerobox-";

/// A run's cgroup directory.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    /// "cgroup v2 /user.slice/…" for explain and debug.
    pub description: String,
}

impl Cgroup {
    /// The `cgroup.procs` files the sandbox's first process writes "0" to.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Whatever is still in the run's cgroup is the sandbox's: end it
        // (cgroup.kill, Linux ≥ 5.14; the reaper or the pid namespace has
        // normally done so already). The last processes may still be
        // exiting: retry the rmdir briefly.
        for dir in &self.dirs {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(2))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Where a cgroup would be made, or why none can be (for doctor/explain).
pub fn probe() -> Result<String, String> {
    find().map(|parent| describe(&parent))
}

/// The cgroup a run's own would be made under, or why none can be: looked
/// up once per run (the plan) and used by explain and [`create`] alike.
pub fn find_parent() -> Result<PathBuf, String> {
    find()
}

/// [`probe`]'s answer for a [`find_parent`] result.
pub fn described(parent: &Result<PathBuf, String>) -> Result<String, String> {
    parent.as_ref().map(|p| describe(p)).map_err(Clone::clone)
}

fn describe(parent: &Path) -> String {
    format!("cgroup v2 under {}", parent.display())
}

/// Why a run has no cgroup.
#[derive(Debug)]
pub enum NoCgroup {
    /// None can be made here (explain and doctor say why; not an error).
    Unavailable(String),
    /// One could be made but setting it up failed (announced).
    Failed(String),
}

/// Make the run's cgroup with `limits` under `parent` (from
/// [`find_parent`]).
pub fn create(parent: &Result<PathBuf, String>, limits: &Limits) -> Result<Cgroup, NoCgroup> {
    let parent = parent
        .as_ref()
        .map_err(|why| NoCgroup::Unavailable(why.clone()))?;
    make(parent, limits).map_err(NoCgroup::Failed)
}

fn make(parent: &Path, limits: &Limits) -> Result<Cgroup, String> {
    let name = format!(
        "{PREFIX}{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let mut cg = Cgroup {
        dirs: Vec::new(),
        description: describe(parent),
    };
    {
        remove_stale(parent);
        let dir = parent.join(&name);
        std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        cg.dirs.push(dir.clone());
        let write = |file: &str, value: String| -> Result<(), String> {
            let p = dir.join(file);
            std::fs::write(&p, value).map_err(|e| format!("write {}: {e}", p.display()))
        };
        let has = |file: &str| dir.join(file).exists();
        if has("pids.max") {
            write("pids.max", limits.pids.to_string())?;
        }
        let mem = limits.memory_bytes();
        if has("memory.max") && mem > 0 {
            write("memory.max", mem.to_string())?;
            if has("memory.swap.max") {
                write("memory.swap.max", "0".into())?;
            }
        }
    }
    Ok(cg)
}

fn find() -> Result<PathBuf, String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    find_in(&cgroups, &mounts)
}

/// [`find`] given the text of `/proc/self/cgroup` and `mountinfo`.
fn find_in(cgroups: &str, mounts: &str) -> Result<PathBuf, String> {
    let mut why = Vec::new();
    if let (Some(own), Some(root)) = (
        cgroups.lines().find_map(|l| l.strip_prefix("0::")),
        mount_of(mounts, "cgroup2"),
    ) {
        let own = root.join(own.trim_start_matches('/'));
        // Our own cgroup holds processes (us), so it cannot delegate
        // controllers, unless it is the root cgroup; look from its parent
        // up (from itself when it is the root).
        let mut cand = if own == root {
            Some(own.as_path())
        } else {
            own.parent()
        };
        while let Some(dir) = cand {
            if !dir.starts_with(&root) {
                break;
            }
            let ctl =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if ctl.split_whitespace().any(|c| c == "pids")
                && writable(&dir.join("cgroup.procs"))
                && writable(dir)
            {
                return Ok(dir.to_path_buf());
            }
            cand = dir.parent();
        }
        why.push("no cgroup v2 ancestor delegates the pids controller to this user".to_string());
    } else {
        why.push("no cgroup v2 hierarchy".to_string());
    }
    Err(why.join("; "))
}

/// The mount point of a `fstype` filesystem, from mountinfo.
fn mount_of(mountinfo: &str, fstype: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != fstype {
            return None;
        }
        Some(PathBuf::from(left.split_whitespace().nth(4)?))
    })
}

fn writable(p: &Path) -> bool {
    sys::access_writable(p)
}

/// Remove empty run cgroups left by a zerobox that was killed: ours by
/// name, whose pid is gone (rmdir fails on a cgroup with processes).
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|r| r.split_once('-'))
            .and_then(|(p, _)| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if matches!(sys::kill(pid, 0), Err(e) if e.raw_os_error() == Some(libc::ESRCH)) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Move the calling process into the run's cgroup (writes "0").
pub fn enter(procs_files: &[PathBuf]) -> io::Result<()> {
    for f in procs_files {
        std::fs::write(f, "0")
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", f.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup2 tree: `root` delegates `root_ctl`, `root/a` delegates
    /// `a_ctl`, and we live in `root/a/b`.
    fn tree(root_ctl: &str, a_ctl: &str) -> (tempfile::TempDir, String, String) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("cg");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for (dir, ctl) in [
            (root.clone(), root_ctl),
            (root.join("a"), a_ctl),
            (root.join("a/b"), ""),
        ] {
            std::fs::write(dir.join("cgroup.subtree_control"), ctl).unwrap();
            std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        }
        let mounts = format!(
            "30 25 0:26 / /proc rw - proc proc rw\n31 25 0:27 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            root.display()
        );
        (t, "0::/a/b\n".to_string(), mounts)
    }

    #[test]
    fn nearest_delegating_ancestor_is_chosen() {
        let (t, cg, mi) = tree("cpu pids memory", "memory pids");
        assert_eq!(find_in(&cg, &mi).unwrap(), t.path().join("cg/a"));
        let (t, cg, mi) = tree("pids memory", "memory");
        assert_eq!(find_in(&cg, &mi).unwrap(), t.path().join("cg"));
    }

    #[test]
    fn no_delegation_or_no_v2_is_unavailable() {
        let (_t, cg, mi) = tree("memory", "");
        assert!(find_in(&cg, &mi).unwrap_err().contains("pids controller"));
        let (_t, _, mi) = tree("pids", "pids");
        // A v1-only process (no "0::" line).
        assert!(find_in("4:pids:/x\n", &mi).is_err());
        assert!(find_in(
            "0::/a/b\n",
            "31 25 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
        )
        .unwrap_err()
        .contains("no cgroup v2"));
    }

    /// Leftovers of killed runs go; live runs' and foreign names stay.
    #[test]
    fn stale_run_cgroups_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let dead = t.path().join("zerobox-2147483647-00000000000000aa");
        let live = t
            .path()
            .join(format!("zerobox-{}-00000000000000bb", std::process::id()));
        let other = t.path().join("user.slice");
        for d in [&dead, &live, &other] {
            std::fs::create_dir(d).unwrap();
        }
        remove_stale(t.path());
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    /// In the root cgroup (a container) the root itself is the candidate.
    #[test]
    fn the_root_cgroup_can_hold_the_run() {
        let (t, _, mi) = tree("pids", "");
        assert_eq!(find_in("0::/\n", &mi).unwrap(), t.path().join("cg"));
    }
}
