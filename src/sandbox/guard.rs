//! Protected paths the sandbox's own layers cannot hold alone: names that
//! do not exist yet (below), and held paths a host program may replace
//! during the run ([`HeldWatch`], at the end).
//!
//! # Protected paths that do not exist yet, without placeholders
//!
//! A deny rule on a path that does not exist (`.envrc`, `.git/hooks`,
//! `.vscode/settings.json` in a fresh project) cannot be masked: there is
//! nothing to mount on, and creating a placeholder in the user's tree is
//! itself the bug (it shows in `git status`, is committed by `git add -A`,
//! stays after `kill -9`, races between two runs). So nothing is created.
//! Instead zerobox guards the name from outside the sandbox:
//!
//! 1. Before the run, each missing protected path whose nearest existing
//!    ancestor the command can write is recorded in a journal in zerobox's
//!    own data dir (unreadable and unwritable inside).
//! 2. While the command runs, a watcher thread (inotify on the
//!    directories on the way) and, after the run, a final pass check each
//!    without following symlinks: if the path (or a symlink or file on the
//!    way to it) exists, it is moved aside to `NAME.zerobox-quarantine-TIME`
//!    and the user is told. The journal is removed.
//! 3. If zerobox was killed (`kill -9`, a crash), the journal stays; the
//!    next run finds it (its pid is gone) and does step 2 for it, for
//!    entries born or moved into place (ctime) after that run started.
//!
//! Limits (docs/threat-model.md, "Protected paths that do not exist"):
//! during the run the command can create the name, and a host process
//! that reads it in the moment before the watcher moves it sees the
//! command's content.
//!
//! # Held paths replaced on the host
//!
//! A write-denied path that exists inside a writable directory is held by
//! a read-only bind in namespace mode, which a rename over it on the host
//! detaches. [`HeldWatch`] watches those paths' directories while the
//! command runs and kills the sandbox (through a pidfd) the moment one is
//! another file or gone; `protect::replaced` records them, checks what
//! the command wrote in that moment, and says what happened (exit 122).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::policy::{FsAccess, Policy};

use super::lstats::Lstats;

use super::linux::fsat::{self, Kind};

/// Missing protected paths the command could create: a deny rule's path
/// that does not exist, under an existing ancestor writable in `policy`
/// (the sandbox's view of host paths).
pub fn missing_protected(policy: &Policy, lstats: &Lstats) -> Vec<PathBuf> {
    let mut out = Vec::new();
    // The same decision as `Policy::effective`, a lookup per ancestor
    // instead of a scan of every rule (made only if something is missing).
    let mut index = None;
    // Whether each ancestor looked at exists: the default deny list has
    // dozens of missing names in the same few directories (`~`,
    // `~/.config`), each of which is looked at once.
    let mut exists: HashMap<&Path, bool> = HashMap::new();
    for rule in &policy.fs {
        if !matches!(rule.access, FsAccess::DenyRead | FsAccess::DenyWrite)
            || lstats.exists(&rule.path)
        {
            continue;
        }
        // The path itself was just seen missing: its nearest existing
        // ancestor decides.
        let mut existing = rule.path.as_path();
        while let Some(parent) = existing.parent() {
            existing = parent;
            if *exists
                .entry(parent)
                .or_insert_with(|| lstats.exists(parent))
            {
                break;
            }
        }
        let index = index.get_or_insert_with(|| crate::policy::RuleIndex::new(policy));
        if index.effective(existing).write && !out.contains(&rule.path) {
            out.push(rule.path.clone());
        }
    }
    out
}

/// The guards of one run: removed (after the check) when dropped.
pub struct Guards {
    paths: Vec<PathBuf>,
    /// Each path's nearest ancestor that existed before the run.
    bases: Vec<PathBuf>,
    journal: Option<PathBuf>,
    watcher: Option<Watcher>,
}

/// Serialises checks between the watcher thread and the final check, so
/// one entry is never moved twice.
static CHECKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check_and_report(paths: &[PathBuf]) {
    check_unless_stopped(paths, None);
}

/// [`check_and_report`], but nothing once `stop` is set (read under the
/// lock, which is also held while it is set: after that, only the final
/// check moves anything).
fn check_unless_stopped(paths: &[PathBuf], stop: Option<&std::sync::atomic::AtomicBool>) {
    let _lock = CHECKING.lock().unwrap_or_else(|e| e.into_inner());
    if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst)) {
        return;
    }
    for p in paths {
        report(check(p, None));
    }
}

/// Watches the directories on the way to the guarded paths while the
/// command runs, and quarantines a protected name as soon as it appears
/// (narrowing the window in which a host process could read it).
struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watcher {
    fn start(guards: Vec<(PathBuf, PathBuf)>) -> Option<Watcher> {
        let paths: Vec<PathBuf> = guards.iter().map(|(p, _)| p.clone()).collect();
        let ino = super::linux::inotify::Inotify::new().ok()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        // Not joined when dropped (a join waited up to one poll timeout,
        // 100 ms, at the end of every such run): once `stop` is set the
        // thread moves nothing and ends at its next wake.
        std::thread::Builder::new()
            .name("zerobox-guard".into())
            .spawn(move || {
                arm(&ino, &guards);
                // Anything made before the first watch existed.
                check_unless_stopped(&paths, Some(&flag));
                while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    match ino.wait(100) {
                        Ok(events) if events.is_empty() => continue,
                        Ok(_) => {
                            // New directories on the way get their own
                            // watch first, then everything is checked (an
                            // entry made before its watch is caught here).
                            arm(&ino, &guards);
                            check_unless_stopped(&paths, Some(&flag));
                        }
                        Err(_) => return, // the final check remains
                    }
                }
            })
            .ok()?;
        Some(Watcher { stop })
    }
}

/// Watch every existing directory on the way to each guarded path, from
/// `/` down to its parent. Not only from the nearest ancestor that existed
/// before the run: the command can move any directory it may write the
/// parent of away and make a new one at its name (`mv .vscode .old; mkdir
/// .vscode`), which must get a watch of its own. So each call watches
/// them all again: adding a watch to an inode that has one is a no-op, and
/// remembering paths or inode numbers would miss a new directory at the
/// same path (or with a reused inode number).
fn arm(ino: &super::linux::inotify::Inotify, guards: &[(PathBuf, PathBuf)]) {
    for (path, _) in guards {
        let Some(parent) = path.parent() else {
            continue;
        };
        let mut dir = PathBuf::from("/");
        let rest: Vec<_> = parent
            .strip_prefix("/")
            .map(|r| r.components().collect())
            .unwrap_or_default();
        for i in 0..=rest.len() {
            if i > 0 {
                dir.push(rest[i - 1]);
            }
            if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                break;
            }
            let _ = ino.watch_dir(&dir);
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _lock = CHECKING.lock().unwrap_or_else(|e| e.into_inner());
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn journal_dir() -> Option<PathBuf> {
    crate::dirs::zerobox_dir(crate::dirs::Kind::Data).map(|d| d.join("guards"))
}

/// The start time of `pid` (field 22 of /proc/PID/stat): a pid with the
/// same number but another start time is another process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

impl Guards {
    /// Record `paths` in the crash journal (only if there are any).
    pub fn arm(paths: Vec<PathBuf>) -> Guards {
        let since = now();
        let mut journal = None;
        if !paths.is_empty() {
            match write_journal(&paths, since) {
                Ok(p) => journal = Some(p),
                Err(e) => crate::warn!(
                    "cannot write the run journal ({e}): if zerobox is killed, protected paths the command creates will not be reported"
                ),
            }
        }
        let bases = paths
            .iter()
            .map(|p| {
                p.ancestors()
                    .skip(1)
                    .find(|a| std::fs::symlink_metadata(a).is_ok())
                    .unwrap_or(Path::new("/"))
                    .to_path_buf()
            })
            .collect();
        Guards {
            paths,
            bases,
            journal,
            watcher: None,
        }
    }

    /// Start watching (after the sandbox started: zerobox may have
    /// threads from now on).
    pub fn watch(&mut self) {
        if !self.paths.is_empty() {
            let guards = self
                .paths
                .iter()
                .cloned()
                .zip(self.bases.iter().cloned())
                .collect();
            self.watcher = Watcher::start(guards);
        }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for Guards {
    fn drop(&mut self) {
        drop(self.watcher.take());
        check_and_report(&self.paths);
        if let Some(j) = self.journal.take() {
            let _ = std::fs::remove_file(j);
        }
    }
}

/// Make the journal directory (and so zerobox's data dir) if it does not
/// exist yet. Called before the run is planned: made later, it would be a
/// missing protected path the plan gave no mask (readable and writable
/// inside where the home is granted) and that the guard then moves aside,
/// journal and all.
pub fn make_journal_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = journal_dir().ok_or_else(|| std::io::Error::other("no home directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

fn write_journal(paths: &[PathBuf], since: i64) -> std::io::Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let dir = make_journal_dir()?;
    let pid = std::process::id();
    let doc = serde_json::json!({
        "pid": pid,
        "start": start_time(pid).unwrap_or(0),
        "since": since,
        "paths": paths.iter().map(|p| hex::encode(p.as_os_str().as_bytes())).collect::<Vec<_>>(),
    });
    // Written aside and renamed into place: a concurrent run's `recover`
    // never sees a half-written journal, and a leftover of a killed run
    // with the same pid is neither written through nor in the way.
    let path = dir.join(format!("{pid}.json"));
    crate::private_file::write_atomic(
        &path,
        doc.to_string().as_bytes(),
        0o600,
        crate::private_file::Durability::Cached,
    )?;
    Ok(path)
}

/// Check the journals of runs that ended without cleaning up (killed):
/// quarantine what their commands created, then drop the journal.
pub fn recover() {
    let Some(dir) = journal_dir() else { return };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue; // another run's journal being written
        }
        // A journal that cannot be read or understood is kept and named
        // on every run until the user removes it: dropping it would leave
        // whatever its run's command planted at a protected name (an
        // `.envrc` direnv runs) unchecked, without a word.
        let doc = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // another run handled it
            Err(e) => Err(e.to_string()),
            Ok(text) => serde_json::from_str::<Journal>(&text).map_err(|e| e.to_string()),
        };
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                crate::warn!(
                    "cannot read {} ({e}), the journal of a zerobox run that was killed: what its command created at protected paths is not checked; look for new .envrc, .git/hooks and similar files in the projects it ran in, then remove it",
                    path.display()
                );
                continue;
            }
        };
        if doc.pid != 0 && start_time(doc.pid).is_some_and(|s| s == doc.start) {
            continue; // that run is still going
        }
        let pid = doc.pid;
        let mut all_checked = true;
        for protected in doc.paths {
            let r = check(&protected, Some(doc.since)).map(|q| {
                q.map(|(found, moved, _)| {
                    (
                        found,
                        moved,
                        format!(" by an earlier zerobox run (pid {pid}) that was killed"),
                    )
                })
            });
            all_checked &= r.is_ok();
            report(r);
        }
        // A path that could not be checked now is checked again by the
        // next run: the journal stays until every path was.
        if all_checked {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A run's crash journal as [`write_journal`] writes it. Paths are hex
/// (any bytes, not only UTF-8).
#[derive(serde::Deserialize)]
struct Journal {
    pid: u32,
    start: u64,
    since: i64,
    #[serde(deserialize_with = "hex_paths")]
    paths: Vec<PathBuf>,
}

fn hex_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    use std::os::unix::ffi::OsStringExt;
    let hexes = <Vec<String> as serde::Deserialize>::deserialize(d)?;
    hexes
        .into_iter()
        .map(|h| {
            hex::decode(&h)
                .map(|b| PathBuf::from(OsString::from_vec(b)))
                .map_err(|_| serde::de::Error::custom(format!("path {h:?} is not hex")))
        })
        .collect()
}

type Found = Option<(PathBuf, PathBuf, String)>;

fn report(r: std::io::Result<Found>) {
    match r {
        Ok(None) => {}
        Ok(Some((found, moved, how))) => crate::warn!(
            "{} was created{how} where a protected path did not exist; moved to {} (review it before using it)",
            found.display(),
            moved.display()
        ),
        Err(e) => crate::warn!("cannot check a protected path: {e}"),
    }
}

/// Does `protected`, or an entry on the way to it below its nearest
/// existing directory, exist now? Then move it aside. `born_after` (crash
/// recovery): skip an entry only if neither it nor any directory on the
/// way was born or changed (ctime) at or after that time.
fn check(protected: &Path, born_after: Option<i64>) -> std::io::Result<Found> {
    let names: Vec<OsString> = protected
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut dir = fsat::open_dir(Path::new("/"))?;
    let mut at = PathBuf::from("/");
    // The newest birth or status change on the way: a directory renamed
    // into place carries old files with it.
    let mut newest = 0;
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let (kind, changed) = with_owner_access(&dir, || fsat::kind_at(&dir, name))?;
        newest = newest.max(changed);
        match kind {
            Kind::Missing => return Ok(None),
            Kind::Dir if !last => {
                dir = with_owner_access(&dir, || fsat::open_child_dir(&dir, name))?;
                at.push(name);
            }
            _ => {
                if born_after.is_some_and(|t| newest < t) {
                    return Ok(None); // older than the run: not its doing
                }
                let moved = match with_owner_access(&dir, || quarantine(&dir, name)) {
                    Ok(m) => m,
                    // Gone meanwhile (the command removed it, or another
                    // run moved it): nothing left at the name.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                    Err(e) => return Err(e),
                };
                return Ok(Some((at.join(name), at.join(moved), String::new())));
            }
        }
    }
    Ok(None)
}

/// Run `op` in `dir`; if it is refused for lack of permission, give the
/// owner rwx on `dir` for one more try, then put the mode back. The
/// command owns the directories it makes and can `chmod 555` one after
/// planting a file in it: a host reader still reads the file, but the
/// rename that moves it aside needs write access (root on the host
/// ignores the mode; the user does not).
fn with_owner_access<T>(
    dir: &std::os::fd::OwnedFd,
    mut op: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    match op() {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            // chmod through the fd's /proc link: `dir` is an O_PATH fd of
            // the directory itself, never a path the command can swap.
            let link = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            let old = std::fs::metadata(&link)?.permissions().mode() & 0o7777;
            std::fs::set_permissions(&link, std::fs::Permissions::from_mode(old | 0o700))?;
            let r = op();
            let _ = std::fs::set_permissions(&link, std::fs::Permissions::from_mode(old));
            r
        }
        r => r,
    }
}

/// Move `name` aside, never over an existing entry. The first choice is
/// `NAME.zerobox-quarantine-TIME`; if the command took it (it can make
/// any number of names in a writable directory), a random suffix follows,
/// which it cannot guess: running out of names must never leave the
/// planted entry in place.
fn quarantine(dir: &std::os::fd::OwnedFd, name: &std::ffi::OsStr) -> std::io::Result<OsString> {
    move_aside(dir, name, "quarantine")
}

/// Rename `name` in `dir` to `NAME.zerobox-TAG-TIME` (then with a random
/// suffix if that is taken), never over an existing entry and never
/// through a symlink (`dir` is an fd). Returns the new name.
pub(crate) fn move_aside(
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    tag: &str,
) -> std::io::Result<OsString> {
    let stamp = now();
    for n in 0..100 {
        let mut to = name.to_os_string();
        to.push(format!(".zerobox-{tag}-{stamp}"));
        if n > 0 {
            to.push(format!("-{:016x}", rand::random::<u64>()));
        }
        match fsat::rename_noreplace(dir, name, &to) {
            Ok(()) => return Ok(to),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free name to move it to"))
}

/// A write-protected path that exists inside a writable directory: in
/// namespace mode only a read-only bind holds it, and the bind goes when a
/// host program renames over or removes the path (`protect::replaced`).
/// `dev` and `ino` are the ones it had just before the command started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

/// How a held path changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lapse {
    /// Another file (or directory) is at the path now.
    Replaced,
    /// Nothing is at the path now.
    Gone,
    /// The path cannot be looked at any more (a directory on the way made
    /// unsearchable): taken as changed, since nothing says it is not.
    Unknown(String),
}

impl Held {
    /// The held path now, seen without following a symlink: `None` while
    /// it is still the same file.
    pub fn lapse(&self) -> Option<Lapse> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == (self.dev, self.ino) => None,
            Ok(_) => Some(Lapse::Replaced),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Lapse::Gone),
            Err(e) => Some(Lapse::Unknown(e.to_string())),
        }
    }
}

/// What [`HeldWatch`] saw and did: the first held path that changed, and
/// whether the sandbox was killed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub path: PathBuf,
    pub lapse: Lapse,
    /// `Err`: the kill failed (the reason); the command then ran on.
    pub killed: Result<(), String>,
}

/// Watches the held paths while the command runs and kills the sandbox as
/// soon as one of them is another file, or gone.
///
/// The bind over a held path is detached by the kernel *before* any event
/// is queued, so this cannot prevent the detach: it bounds what follows
/// to the moment between the host's rename and the kill (a command that
/// polls `open(O_WRONLY)` in a loop can get a write in, which
/// `protect::replaced` then checks). Watched: each held path's directory,
/// for name changes only (never reads or writes of contents), and on every
/// event, and every 100 ms in any case, every held path is compared with
/// its (device, inode) from the start. Namespace mode only: in the
/// Landlock-only fallback Landlock's precise writes hold these paths
/// whatever the host does (the new file is granted by no rule), so there
/// nothing lapses and nothing is killed.
pub struct HeldWatch {
    held: Vec<Held>,
    ino: Option<super::linux::inotify::Inotify>,
    failures: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stopped: std::sync::Arc<std::sync::Mutex<Option<Stopped>>>,
}

impl HeldWatch {
    /// Set up the watches (before the command starts, without a thread:
    /// `sandbox::spawn` must be called single-threaded). What could not be
    /// watched is in [`HeldWatch::failures`].
    pub fn prepare(held: Vec<Held>) -> HeldWatch {
        let mut failures = Vec::new();
        let ino = if held.is_empty() {
            None
        } else {
            match super::linux::inotify::Inotify::new() {
                Ok(ino) => {
                    let mut dirs: Vec<&Path> = held
                        .iter()
                        .map(|h| h.path.parent().unwrap_or(Path::new("/")))
                        .collect();
                    dirs.sort();
                    dirs.dedup();
                    for dir in dirs {
                        if let Err(e) = ino.watch_names(dir) {
                            failures.push(format!("{} ({e})", dir.display()));
                        }
                    }
                    Some(ino)
                }
                Err(e) => {
                    failures.push(format!("inotify ({e})"));
                    None
                }
            }
        };
        HeldWatch {
            held,
            ino,
            failures,
            stop: Default::default(),
            stopped: Default::default(),
        }
    }

    /// The directories (or `inotify` itself) that could not be watched.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Start watching; `pid` is the sandbox's PID 1 (a child of zerobox
    /// not reaped yet). Returns why it could not start, if it could not.
    pub fn start(&mut self, pid: libc::pid_t) -> Result<(), String> {
        let Some(ino) = self.ino.take() else {
            return Ok(()); // nothing held, or already reported
        };
        let target = super::linux::pidfd::PidFd::open(pid)
            .map_err(|e| format!("cannot get a handle on the sandbox to stop it ({e})"))?;
        let held = self.held.clone();
        let stop = self.stop.clone();
        let stopped = self.stopped.clone();
        // Not joined: `finish` sets `stop` under the lock, and from then on
        // the thread kills nothing and ends at its next wake (a join would
        // add up to one poll timeout to every run).
        std::thread::Builder::new()
            .name("zerobox-held".into())
            .spawn(move || loop {
                // First before any wait: a change between the record and
                // the start is caught here.
                if let Some((h, lapse)) = held.iter().find_map(|h| h.lapse().map(|l| (h, l))) {
                    let mut slot = stopped.lock().unwrap_or_else(|e| e.into_inner());
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return; // the run is over: the after-run check has it
                    }
                    let killed = target.kill().map_err(|e| e.to_string());
                    *slot = Some(Stopped {
                        path: h.path.clone(),
                        lapse,
                        killed,
                    });
                    return;
                }
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                if ino.wait(100).is_err() {
                    // The timer alone from now on.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            })
            .map_err(|e| format!("cannot start the watcher thread ({e})"))?;
        Ok(())
    }

    /// Stop watching (after the command ended); what the watcher saw.
    pub fn finish(self) -> Option<Stopped> {
        let mut slot = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        slot.take()
    }
}

impl Drop for HeldWatch {
    fn drop(&mut self) {
        // A run that ends on an error path: the thread kills nothing more.
        let _slot = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::ExitStatusExt;

    fn held(path: &Path) -> Held {
        let m = std::fs::symlink_metadata(path).unwrap();
        Held {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    #[test]
    fn missing_names_under_a_writable_ancestor_are_guarded() {
        use crate::policy::{resolve, PathContext, PolicyLayer};
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        let (rw, ro) = (root.join("rw"), root.join("ro"));
        for dir in [&rw, &ro] {
            std::fs::create_dir_all(dir.join("sub")).unwrap();
        }
        std::fs::write(rw.join("exists"), "").unwrap();
        let mut l = PolicyLayer::new(crate::policy::Origin::Test);
        l.write_allow.push(rw.display().to_string());
        // Missing names at several depths, several sharing an ancestor
        // (looked at once): guarded where the nearest existing ancestor is
        // writable, whichever ancestor that is.
        let guarded = ["a", "b", "sub/c", "sub/d/e", "f/g/h", "f/g/i"].map(|n| rw.join(n));
        let not_guarded = [rw.join("exists"), ro.join("a"), ro.join("sub/b/c")];
        for p in guarded.iter().chain(&not_guarded) {
            l.read_deny.push(p.display().to_string());
        }
        l.write_deny.push(rw.join("a").display().to_string());
        let ctx = PathContext {
            home: root.clone(),
            cwd: root.clone(),
            tmpdir: "/tmp".into(),
        };
        let p = resolve(&[l], &ctx, &[]).unwrap();
        let found = missing_protected(&p, &Lstats::default());
        let mut want = guarded.to_vec();
        want.sort();
        let mut got = found.clone();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(found.len(), want.len(), "a path guarded twice: {found:?}");
    }

    #[test]
    fn a_held_path_renamed_over_kills_the_process_at_once() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("config");
        std::fs::write(&file, "a").unwrap();
        let mut watch = HeldWatch::prepare(vec![held(&file)]);
        assert!(watch.failures().is_empty(), "{:?}", watch.failures());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        watch.start(child.id() as libc::pid_t).unwrap();
        // Written in place and read: the same file, no kill.
        std::fs::write(&file, "b").unwrap();
        let _ = std::fs::read(&file).unwrap();
        std::fs::write(d.path().join("sibling"), "c").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "killed without cause");
        std::fs::write(d.path().join("new"), "d").unwrap();
        std::fs::rename(d.path().join("new"), &file).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let stopped = watch.finish().expect("the watcher saw it");
        assert_eq!(stopped.path, file);
        assert_eq!(stopped.lapse, Lapse::Replaced);
        assert_eq!(stopped.killed, Ok(()));
    }

    #[test]
    fn a_removed_held_path_is_gone_and_an_unwatchable_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("tasks.json");
        std::fs::write(&file, "a").unwrap();
        let h = held(&file);
        assert_eq!(h.lapse(), None);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(h.lapse(), Some(Lapse::Gone));
        let missing = Held {
            path: d.path().join("no-such-dir/x"),
            dev: 0,
            ino: 0,
        };
        let watch = HeldWatch::prepare(vec![missing]);
        assert_eq!(watch.failures().len(), 1, "{:?}", watch.failures());
        assert!(watch.failures()[0].contains("no-such-dir"));
        assert!(watch.finish().is_none());
    }
}
