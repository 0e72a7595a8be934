//! Nothing outlives zerobox in the Landlock-only fallback.
//!
//! The namespace mode gets this from the pid namespace: when its PID 1
//! exits, the kernel kills everything left in it. The fallback has no pid
//! namespace, so a `setsid` or double-forked daemon would be re-parented
//! to the host's init and live on. Instead:
//!
//! ```text
//! zerobox            child subreaper; after the run, kills what came back to it
//!  └ reaper          child subreaper; parent-death signal; forwards signals
//!     └ command      parent-death signal (SIGKILL)
//!        └ …         every orphan is re-parented to the reaper, not to init
//! ```
//!
//! * The command exits: the reaper kills every descendant (orphans are its
//!   children now, and killing one hands that one's children to it), then
//!   exits with the command's status.
//! * zerobox is SIGKILLed: the reaper's parent-death signal wakes it, it
//!   sees zerobox's end of the liveness pipe closed, kills every
//!   descendant and removes the private temp dir.
//! * The command kills the reaper (possible only without Landlock's signal
//!   scoping, ABI < 6): the orphans go to zerobox, itself a subreaper,
//!   which kills them when the run ends.
//! * Everything is SIGKILLed at once (the OOM killer, `kill -9` of the
//!   process group): the next fallback run removes the stale temp dir
//!   ([`remove_stale_tmp_dirs`]).
//!
//! Descendants stay in the subtree: re-parenting goes to the nearest
//! subreaper ancestor, `CLONE_PARENT` only reaches the reaper, and ptrace
//! is refused by seccomp.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::sys;

/// The prefix of the fallback's private temp dirs: `zerobox-PID-HEX16`.
pub const TMP_PREFIX: &str = "zerobox-";

/// Make this process a child subreaper: orphaned descendants are
/// re-parented to it instead of to init.
pub fn become_subreaper() -> io::Result<()> {
    sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1)?;
    if !sys::is_child_subreaper()? {
        return Err(io::Error::other("PR_SET_CHILD_SUBREAPER did not hold"));
    }
    Ok(())
}

/// The pids whose parent is `parent` (from `/proc/PID/stat`).
pub fn children_of(parent: libc::pid_t) -> io::Result<Vec<libc::pid_t>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc")? {
        let e = e?;
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // A process may end while we look: its stat is then gone.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<libc::pid_t>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    Ok(found)
}

/// SIGKILL every descendant of this process and reap them, until it has no
/// child left. Call only in a subreaper (or every orphan would escape to
/// init) whose children are all sandbox processes.
pub fn kill_descendants() -> io::Result<()> {
    let me = sys::getpid();
    loop {
        // Reap what has ended; ECHILD: nothing is left.
        loop {
            match sys::waitpid(-1, libc::WNOHANG) {
                Ok((0, _)) => break,
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        // Kill the live ones. A killed process's children are re-parented
        // to us before we can reap it, so the next round finds them.
        for pid in children_of(me)? {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Remove the private temp dirs that fallback runs killed all at once left
/// under `base`. Only entries named `zerobox-PID-HEX16`, that are real
/// directories (never a symlink: `lstat`, and `remove_dir_all` does not
/// follow links inside), owned by this user, whose zerobox PID no longer
/// exists. A PID reused by another process keeps its dir until it ends.
pub fn remove_stale_tmp_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let uid = sys::getuid();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(stale_candidate_pid) else {
            continue;
        };
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_dir() || meta.uid() != uid {
            continue;
        }
        if !pid_is_gone(pid) {
            continue;
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// `zerobox-PID-HEX16` → PID.
fn stale_candidate_pid(name: &str) -> Option<libc::pid_t> {
    let (pid, hex) = name.strip_prefix(TMP_PREFIX)?.split_once('-')?;
    let ok = hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let pid: libc::pid_t = pid.parse().ok().filter(|p| *p > 0)?;
    ok.then_some(pid)
}

/// No process has this pid (ESRCH). EPERM means one exists.
fn pid_is_gone(pid: libc::pid_t) -> bool {
    matches!(sys::kill(pid, 0), Err(e) if e.raw_os_error() == Some(libc::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_are_parsed_strictly() {
        assert_eq!(
            stale_candidate_pid("zerobox-123-00000000000000aa"),
            Some(123)
        );
        for bad in [
            "zerobox-123-00aa",
            "zerobox--00000000000000aa",
            "zerobox-0-00000000000000aa",
            "zerobox-x-00000000000000aa",
            "zerobox-123-0000000000000zaa",
            "zerobox-123-00000000000000aa-x",
            "other-123-00000000000000aa",
            "zerobox-123",
        ] {
            assert_eq!(stale_candidate_pid(bad), None, "{bad}");
        }
    }

    #[test]
    fn own_pid_is_alive_and_a_huge_one_is_gone() {
        assert!(!pid_is_gone(std::process::id() as libc::pid_t));
        assert!(pid_is_gone(i32::MAX));
    }
}
