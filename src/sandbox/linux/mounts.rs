//! The filesystem view inside the namespaces: a read-only host, a private
//! `/tmp`, a minimal `/dev`, a fresh `/proc`, and the policy's rule paths
//! applied on top (masks over denied paths, writable or read-only binds).
//!
//! [`plan`] is pure (it only looks at which paths exist) so `explain` shows
//! exactly what a run will mount; [`apply`] runs in the sandbox's PID 1,
//! inside its own user and mount namespaces, before the command starts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::sys;
use crate::policy::{defaults, Effective, Policy, RuleIndex};
use crate::sandbox::lstats::Lstats;

/// Paths the sandbox builds itself; policy rules at or below them are
/// satisfied by construction (except under `/tmp`, see [`plan`]).
const SYNTHETIC: &[&str] = &["/tmp", "/dev", "/proc"];

/// One mount step, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Step {
    /// Hide a directory behind an empty read-only tmpfs.
    MaskDir { path: PathBuf },
    /// Hide a file behind an empty read-only file.
    MaskFile { path: PathBuf },
    /// Hide a unix socket behind an empty read-only file (connect:
    /// ECONNREFUSED). Sockets belong to other processes and vanish at any
    /// time: one gone by the time the mask is made needs no mask.
    MaskSocket { path: PathBuf },
    /// Bind the host path back, writable.
    BindRw { path: PathBuf },
    /// Bind the host path back, read-only.
    BindRo { path: PathBuf },
    /// Bind a protected symlink onto itself: a mount point cannot be
    /// removed, renamed or replaced, so the link keeps pointing where it
    /// did (its target has its own rule).
    PinLink { path: PathBuf },
}

impl Step {
    pub fn path(&self) -> &Path {
        match self {
            Step::MaskDir { path }
            | Step::MaskFile { path }
            | Step::MaskSocket { path }
            | Step::BindRw { path }
            | Step::BindRo { path }
            | Step::PinLink { path } => path,
        }
    }
}

/// What a path looks like before a step for it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// The host's content with this access.
    Host(Effective),
    /// Nothing of the host (a mask or the private /tmp); `writable` if new
    /// entries may be created there.
    Empty { writable: bool },
}

/// The steps that turn the base view (everything read-only, private /tmp)
/// into the policy's view. Parents come before children.
///
/// A protective step (mask or read-only bind) inside a writable place needs
/// its ancestors up to that place pinned as mount points too: a mount point
/// cannot be renamed (EBUSY), but a plain directory containing one can, and
/// the mask would move along with it, leaving the denied path free to be
/// recreated. So the plan is made twice: once to find the protective steps,
/// then again with their ancestors pinned by writable self-binds.
pub fn plan(policy: &Policy, lstats: &Lstats) -> Vec<Step> {
    // The private /tmp's write right is about the tmpfs, not about host
    // paths bound into it: a host path under /tmp gets exactly what the
    // policy's own rules give it (read-only unless granted).
    let mut host = policy.clone();
    host.fs
        .retain(|r| r.origin != crate::sandbox::PRIVATE_TMP_ORIGIN);
    let policy = &host;
    let index = RuleIndex::new(policy);
    let first = plan_with(policy, &index, &BTreeSet::new(), lstats);
    // Looked up once per ancestor of every protected path: sets, not scans
    // (the scans made a plan of a thousand rules quadratic).
    let mounted: HashSet<&Path> = first.iter().map(Step::path).collect();
    let bound: HashSet<&Path> = first
        .iter()
        .filter(|s| matches!(s, Step::BindRw { .. } | Step::BindRo { .. }))
        .map(Step::path)
        .collect();
    // Is `d` inside a host path we bind (as opposed to the bare private /tmp)?
    let under_bound = |d: &Path| d.ancestors().any(|a| bound.contains(a));
    let mut pins = BTreeSet::new();
    for step in &first {
        if matches!(step, Step::BindRw { .. }) {
            continue;
        }
        // Walk up from the protected path while the parent is writable
        // host content that is not itself a mount point of ours.
        let mut dir = step.path().parent();
        while let Some(d) = dir {
            let is_mount = mounted.contains(d) || d == Path::new("/tmp");
            if is_mount || !index.effective(d).write || d.starts_with("/tmp") && !under_bound(d) {
                break;
            }
            pins.insert(d.to_path_buf());
            dir = d.parent();
        }
    }
    if pins.is_empty() {
        first
    } else {
        plan_with(policy, &index, &pins, lstats)
    }
}

fn plan_with(
    policy: &Policy,
    index: &RuleIndex<'_>,
    pins: &BTreeSet<PathBuf>,
    lstats: &Lstats,
) -> Vec<Step> {
    let mut applied: HashMap<PathBuf, View> = HashMap::new();
    applied.insert(
        PathBuf::from("/"),
        View::Host(Effective {
            read: true,
            write: false,
        }),
    );
    applied.insert(PathBuf::from("/tmp"), View::Empty { writable: true });
    let mut paths: Vec<PathBuf> = policy.fs.iter().map(|r| r.path.clone()).collect();
    paths.extend(pins.iter().cloned());
    let paths = crate::policy::parents_first(paths);
    let mut steps = Vec::new();
    for path in paths {
        if path == Path::new("/") || SYNTHETIC.iter().any(|s| path == Path::new(s)) {
            continue;
        }
        if path.starts_with("/dev") || path.starts_with("/proc") {
            continue; // built by the sandbox itself
        }
        // The view of the deepest ancestor a step was planned for (parents
        // come first, so it is final by now).
        let view = path
            .ancestors()
            .find_map(|a| applied.get(a))
            .copied()
            .unwrap_or(View::Empty { writable: false });
        let want = index.effective(&path);
        let meta = lstats.kind(&path);
        let is_dir = meta.is_some_and(|m| m.is_dir());
        let is_socket = {
            use std::os::unix::fs::FileTypeExt;
            meta.is_some_and(|m| m.is_socket())
        };
        let pinned = pins.contains(&path);
        if meta.is_some_and(|m| m.is_symlink()) {
            // A symlink is never masked or bound through (that would
            // follow it): a protected one is pinned where it is writable.
            let writable_here = match view {
                View::Host(have) => have.write,
                View::Empty { writable } => writable,
            };
            if writable_here && (!want.write || !want.read) {
                steps.push(Step::PinLink { path: path.clone() });
            }
            continue;
        }
        let step = match (view, meta.is_some()) {
            (View::Host(have), true) if have == want && pinned && want.write => {
                Some(Step::BindRw { path: path.clone() })
            }
            (View::Host(have), true) if have == want => None,
            (View::Host(_), true) if !want.read => Some(if is_dir {
                Step::MaskDir { path: path.clone() }
            } else if is_socket {
                Step::MaskSocket { path: path.clone() }
            } else {
                Step::MaskFile { path: path.clone() }
            }),
            (_, true) if want.write => Some(Step::BindRw { path: path.clone() }),
            (_, true) if want.read => Some(Step::BindRo { path: path.clone() }),
            // Denied and already hidden, or does not exist: nothing to
            // show. (A missing denied path under a writable host directory
            // gets a placeholder from the launcher before the run, so it
            // exists here; one under a read-only view cannot be created.)
            _ => None,
        };
        if let Some(step) = step {
            let view = match &step {
                Step::MaskDir { .. } | Step::MaskFile { .. } | Step::MaskSocket { .. } => {
                    View::Empty { writable: false }
                }
                _ => View::Host(want),
            };
            applied.insert(path.clone(), view);
            steps.push(step);
        }
    }
    steps
}

/// Where a mount step failed: what was attempted, on which path, and the
/// errno. `rule_path` marks a path that no longer is what the plan saw
/// (a symlink or another type appeared): refused, never followed.
#[derive(Debug)]
pub struct MountError {
    pub what: String,
    pub path: Option<PathBuf>,
    pub rule_path: bool,
    pub err: io::Error,
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.err)
    }
}

impl MountError {
    pub fn into_sandbox_error(self) -> crate::sandbox::SandboxError {
        use crate::sandbox::{SandboxError, Stage};
        let stage = if self.rule_path {
            Stage::RulePath
        } else {
            Stage::Mounts
        };
        let mut e = SandboxError::new(stage, self.to_string())
            .with_errno(self.err.raw_os_error().unwrap_or(0));
        e.path = self.path;
        e
    }
}

fn ctx<T>(what: impl FnOnce() -> String, r: io::Result<T>) -> Result<T, MountError> {
    r.map_err(|err| MountError {
        what: what(),
        path: None,
        rule_path: false,
        err,
    })
}

/// [`ctx`] for a step on a rule path.
fn at<T>(path: &Path, what: &str, r: io::Result<T>) -> Result<T, MountError> {
    r.map_err(|err| MountError {
        what: format!("{what} {}", path.display()),
        path: Some(path.to_path_buf()),
        rule_path: err.raw_os_error() == Some(libc::ELOOP)
            || err.raw_os_error() == Some(libc::EXDEV),
        err,
    })
}

const EMPTY_FILE: &str = "/tmp/.zerobox-empty";

/// Build the sandbox's filesystem view. Runs in the sandbox's PID 1 with
/// full capabilities in its own user namespace, before anything of the
/// command runs. `steps` comes from [`plan`].
pub fn apply(steps: &[Step], tmpfs_limits: &str) -> Result<(), MountError> {
    // 1. Nothing we mount may propagate back to the host.
    ctx(
        || "make / a private mount".into(),
        sys::mount(
            None,
            Path::new("/"),
            None,
            libc::MS_REC | libc::MS_PRIVATE,
            None,
        ),
    )?;

    // 2. Handles on every host path we bind back later and on the host
    //    devices, taken before masks and the private /tmp hide them.
    //    Opened without following any symlink on the way: the plan saw
    //    none there, so one now is a change behind its back (another run),
    //    refused rather than followed.
    let mut sources: BTreeMap<PathBuf, OwnedFd> = BTreeMap::new();
    for step in steps {
        if let Step::BindRw { path } | Step::BindRo { path } = step {
            let fd = at(path, "open", open_nofollow(path))?;
            sources.insert(path.clone(), fd);
        }
    }
    let mut devices = Vec::new();
    for dev in defaults::WRITABLE_DEVICES {
        if let Ok(fd) = sys::open_path(Path::new(dev)) {
            devices.push((PathBuf::from(dev), fd));
        }
    }

    // 3. The whole host becomes read-only and setuid-free, recursively. Our
    //    own mounts below are made after this, so they are not affected.
    ctx(
        || "make the host filesystem read-only (mount_setattr)".into(),
        sys::mount_setattr(
            Path::new("/"),
            true,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID,
            0,
        ),
    )?;

    // 4. A private, empty /tmp, discarded with the mount namespace.
    tmpfs(Path::new("/tmp"), &format!("mode=1777,{tmpfs_limits}"))?;
    ctx(
        || format!("create {EMPTY_FILE}"),
        std::fs::File::create(EMPTY_FILE),
    )?;

    // 5. A minimal /dev and a fresh /proc for our pid namespace.
    setup_dev(&devices, tmpfs_limits)?;
    setup_proc()?;
    // A sysfs of our own network namespace (the host's would list the
    // host's interfaces). Best effort: where the kernel refuses (a host
    // /sys with covered parts), the read-only host /sys stays.
    let _ = sys::mount(
        Some(Path::new("sysfs")),
        Path::new("/sys"),
        Some("sysfs"),
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    );

    // 6. The policy's rule paths, parents first. Each target is opened
    //    without following symlinks and mounted on through its descriptor.
    let mut make_readonly = vec![PathBuf::from("/dev")];
    // Masks that a later step mounts something inside need their mount
    // points written first, so they are sealed at the end; every other mask
    // is mounted read-only from the start (one syscall, not two: a run with
    // a thousand denied directories makes a thousand masks).
    let masks: HashSet<&Path> = steps
        .iter()
        .filter(|s| matches!(s, Step::MaskDir { .. }))
        .map(Step::path)
        .collect();
    let masks_with_mounts_inside: HashSet<&Path> = steps
        .iter()
        .flat_map(|s| s.path().ancestors().skip(1))
        .filter(|a| masks.contains(a))
        .collect();
    let mut shared_mask = SharedMask::default();
    for step in steps {
        let path = step.path();
        match step {
            Step::MaskDir { path } => {
                // Masks are only planned over host paths that exist: never
                // create one (that would leave an entry on the host).
                let Some(target) = mask_target(path, true)? else {
                    continue;
                };
                let seal_later = masks_with_mounts_inside.contains(path.as_path());
                if !seal_later {
                    if let Some(empty) = shared_mask.get() {
                        ctx(
                            || format!("mask {}", path.display()),
                            empty.attach_onto(&target),
                        )
                        .map_err(|e| with_path(e, path))?;
                        continue;
                    }
                }
                let flags =
                    libc::MS_NOSUID | libc::MS_NODEV | if seal_later { 0 } else { libc::MS_RDONLY };
                ctx(
                    || format!("mask {}", path.display()),
                    sys::mount(
                        Some(Path::new("tmpfs")),
                        &fd_path(&target),
                        Some("tmpfs"),
                        flags,
                        Some("mode=0755,size=4k"),
                    ),
                )
                .map_err(|e| with_path(e, path))?;
                if seal_later {
                    make_readonly.push(path.clone());
                }
            }
            Step::MaskSocket { path } => {
                use std::os::unix::fs::FileTypeExt;
                let still_there =
                    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
                if !still_there {
                    continue;
                }
                let target = match open_nofollow(path) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return at(path, "open", Err(e)),
                };
                // A socket its server unlinks while the mask is made (a
                // host program closing or restarting its listener): the
                // bind onto the unlinked entry fails with ENOENT, or the
                // unlink detaches the fresh bind (another mount
                // namespace's unlink of a mount point does) and making it
                // read-only fails. The socket zerobox found is gone, so
                // nothing is there to connect to; a server that binds the
                // name again is a socket made after the start, which no
                // mask covers (docs/threat-model.md, "Unix sockets created
                // after the run starts"). Any other failure (the empty
                // file missing, a mount refused, the mask in place but not
                // read-only) still refuses the run. Not told apart by
                // inode numbers: a new socket can reuse the old one's.
                use std::os::unix::fs::MetadataExt;
                let id = |p: &Path| {
                    std::fs::symlink_metadata(p)
                        .map(|m| (m.dev(), m.ino()))
                        .ok()
                };
                let mask = id(Path::new(EMPTY_FILE));
                let mounted = sys::mount(
                    Some(Path::new(EMPTY_FILE)),
                    &fd_path(&target),
                    None,
                    libc::MS_BIND,
                    None,
                );
                // ENOENT with the empty file there: the target was unlinked.
                if matches!(&mounted, Err(e) if e.raw_os_error() == Some(libc::ENOENT))
                    && mask.is_some()
                {
                    continue;
                }
                ctx(|| format!("mask {}", path.display()), mounted)
                    .map_err(|e| with_path(e, path))?;
                // The name no longer leads to the mask: the bind is gone
                // with the entry it was on.
                match readonly(path, true) {
                    Err(_) if mask.is_some() && id(path) != mask => continue,
                    r => r?,
                }
            }
            Step::MaskFile { path } => {
                let Some(target) = mask_target(path, false)? else {
                    continue;
                };
                ctx(
                    || format!("mask {}", path.display()),
                    sys::mount(
                        Some(Path::new(EMPTY_FILE)),
                        &fd_path(&target),
                        None,
                        libc::MS_BIND,
                        None,
                    ),
                )
                .map_err(|e| with_path(e, path))?;
                readonly(path, true)?;
            }
            Step::BindRw { .. } | Step::BindRo { .. } => {
                let Some(fd) = sources.get(path) else {
                    continue;
                };
                let is_dir = std::fs::metadata(fd_path(fd))
                    .map(|m| m.is_dir())
                    .unwrap_or(false);
                ensure_mountpoint(path, is_dir)?;
                let target = target_fd(path, Some(is_dir))?;
                ctx(
                    || format!("bind {}", path.display()),
                    sys::mount(
                        Some(&fd_path(fd)),
                        &fd_path(&target),
                        None,
                        libc::MS_BIND | libc::MS_REC,
                        None,
                    ),
                )
                .map_err(|e| with_path(e, path))?;
                readonly(path, matches!(step, Step::BindRo { .. }))?;
            }
            Step::PinLink { path } => at(path, "pin the symlink", pin_link(path))?,
        }
    }
    // 7. Seal the directories we had to write mount points into.
    for path in make_readonly.iter().rev() {
        readonly(path, true)?;
    }
    let _ = std::fs::remove_file(EMPTY_FILE);
    Ok(())
}

/// The empty read-only tmpfs that every sealed directory mask shares: made
/// once, and each mask is a clone of its mount (`open_tree` + `move_mount`
/// onto the target's descriptor). A tmpfs per mask made a new superblock
/// each time, which was most of the cost of a run with a thousand
/// `--deny-read` directories (1,000 masks: 7.2 ms of mounts alone, 2.5 ms
/// as clones, in a C program on the same kernel). The clones are one
/// filesystem: read-only at the superblock and at every mount, empty,
/// with nothing mounted inside (a mask with a mount point in it gets its
/// own tmpfs, written, then sealed).
#[derive(Default)]
enum SharedMask {
    /// Not made yet.
    #[default]
    Unmade,
    Made(EmptyMount),
    /// The kernel refused the new mount API (a filter in a container, an
    /// old kernel): every mask is its own tmpfs, as bubblewrap does. The
    /// same protection, at the old cost.
    Unavailable,
}

impl SharedMask {
    /// The shared mount, made on first use; `None` when it cannot be made.
    fn get(&mut self) -> Option<&EmptyMount> {
        if matches!(self, SharedMask::Unmade) {
            let simulated = crate::sandbox::Simulated::from_env().no_fsmount;
            *self = match EmptyMount::new() {
                Ok(m) if !simulated => SharedMask::Made(m),
                _ => SharedMask::Unavailable,
            };
        }
        match self {
            SharedMask::Made(m) => Some(m),
            _ => None,
        }
    }
}

/// A detached mount of an empty read-only tmpfs (`fsopen`, `fsconfig`,
/// `fsmount`), attached at its first target and cloned for the others.
struct EmptyMount {
    mnt: OwnedFd,
    attached: std::cell::Cell<bool>,
}

impl EmptyMount {
    fn new() -> io::Result<EmptyMount> {
        let fs = sys::fsopen(c"tmpfs")?;
        // Named as a tmpfs mount(2) names it in mountinfo.
        sys::fsconfig_string(&fs, c"source", c"tmpfs")?;
        sys::fsconfig_string(&fs, c"mode", c"0755")?;
        sys::fsconfig_string(&fs, c"size", c"4k")?;
        // Read-only at the superblock too, not only at the mount.
        sys::fsconfig_flag(&fs, c"ro")?;
        sys::fsconfig_create(&fs)?;
        let mnt = sys::fsmount(
            &fs,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        )?;
        Ok(EmptyMount {
            mnt,
            attached: std::cell::Cell::new(false),
        })
    }

    /// Mount it (the first time) or a clone of it (every later time) on
    /// the entry `target` was opened on. The first attach puts the mount
    /// in this namespace; `open_tree` copies only a mount in one.
    fn attach_onto(&self, target: &OwnedFd) -> io::Result<()> {
        if !self.attached.get() {
            sys::move_mount_onto(&self.mnt, target)?;
            self.attached.set(true);
            return Ok(());
        }
        let clone = sys::open_tree_clone(&self.mnt)?;
        sys::move_mount_onto(&clone, target)
    }
}

/// A mask's target, opened as [`target_fd`] does, or `None` when the path
/// the plan saw was removed since (by another process): then there is
/// nothing to hide, as for a path that was missing when the plan was made.
/// Anything else at the path (a symlink on the way, another type) refuses
/// the run. One `openat2` instead of an `lstat` first: a run with a
/// thousand denied directories makes a thousand masks.
fn mask_target(path: &Path, dir: bool) -> Result<Option<OwnedFd>, MountError> {
    match open_nofollow(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        opened => checked_type(path, at(path, "open", opened)?, Some(dir)).map(Some),
    }
}

fn with_path(mut e: MountError, path: &Path) -> MountError {
    e.path = Some(path.to_path_buf());
    e
}

/// Open a mount target without following symlinks and check it is the
/// kind of entry the plan expects (`Some(true)`: a directory).
fn target_fd(path: &Path, dir: Option<bool>) -> Result<OwnedFd, MountError> {
    checked_type(path, at(path, "open", open_nofollow(path))?, dir)
}

/// `fd` (opened at `path`) if it is the kind of entry the plan expects.
fn checked_type(path: &Path, fd: OwnedFd, dir: Option<bool>) -> Result<OwnedFd, MountError> {
    let Some(want_dir) = dir else {
        return Ok(fd);
    };
    // `fstat` on the descriptor itself (not a path lookup through
    // /proc/self/fd).
    let file = std::fs::File::from(fd);
    let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(false);
    if is_dir != want_dir {
        return Err(MountError {
            what: format!(
                "{} changed type since the plan (now {}a directory)",
                path.display(),
                if is_dir { "" } else { "not " }
            ),
            path: Some(path.to_path_buf()),
            rule_path: true,
            err: io::Error::from_raw_os_error(if is_dir { libc::EISDIR } else { libc::ENOTDIR }),
        });
    }
    Ok(OwnedFd::from(file))
}

/// `/proc/self/fd/N`: mounting on it mounts on the opened entry itself.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `openat2(path, O_PATH, RESOLVE_NO_SYMLINKS)`: fails with ELOOP if any
/// component, the last included, is a symlink.
fn open_nofollow(path: &Path) -> io::Result<OwnedFd> {
    open_nofollow_at(libc::AT_FDCWD, path)
}

fn open_nofollow_at(dirfd: libc::c_int, path: &Path) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let c = sys::cstr(path)?;
    // SAFETY: `open_how` is plain integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `c` is a valid C string and `how` a properly laid out
    // `struct open_how` whose size is passed alongside it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Bind the symlink at `path` onto itself: `open_tree` and `move_mount`
/// without following it (the old `mount(2)` always follows a target).
fn pin_link(path: &Path) -> io::Result<()> {
    use std::os::fd::FromRawFd;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let dir = open_nofollow(parent)?;
    let name = std::ffi::CString::new(name.as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `dir` is an open descriptor, `name` a valid C string; the
    // flags ask for a detached copy of the link's own mount tree.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::OPEN_TREE_CLONE
                | libc::OPEN_TREE_CLOEXEC
                | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `tree` is a fresh descriptor we own.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as libc::c_int) };
    // SAFETY: both descriptors are open; an empty source path with
    // F_EMPTY_PATH means `tree` itself; the target is not followed (no
    // MOVE_MOUNT_T_SYMLINKS).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // Checked, not trusted: it must still be a symlink there.
    let m = std::fs::symlink_metadata(path)?;
    if !m.file_type().is_symlink() {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(())
}

fn tmpfs(path: &Path, opts: &str) -> Result<(), MountError> {
    ctx(
        || format!("mount tmpfs on {}", path.display()),
        sys::mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(opts),
        ),
    )
}

/// Set or clear read-only on the mount at `path` (not its submounts).
fn readonly(path: &Path, ro: bool) -> Result<(), MountError> {
    let (set, clr) = if ro {
        (sys::MOUNT_ATTR_RDONLY, 0)
    } else {
        (0, sys::MOUNT_ATTR_RDONLY)
    };
    ctx(
        || {
            format!(
                "make {} {}",
                path.display(),
                if ro { "read-only" } else { "writable" }
            )
        },
        open_nofollow(path).and_then(|fd| sys::mount_setattr(&fd_path(&fd), false, set, clr)),
    )
    .map_err(|e| with_path(e, path))
}

/// Make sure a mount point exists. Only ever creates entries inside our own
/// tmpfs mounts (a mask or the private /tmp): host paths already exist, and
/// the host is read-only by now anyway.
fn ensure_mountpoint(path: &Path, dir: bool) -> Result<(), MountError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    let r = if dir {
        std::fs::create_dir_all(path)
    } else {
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::File::create(path).map(|_| ()))
    };
    ctx(|| format!("create mount point {}", path.display()), r)
}

fn setup_dev(devices: &[(PathBuf, OwnedFd)], tmpfs_limits: &str) -> Result<(), MountError> {
    tmpfs(Path::new("/dev"), "mode=0755,size=64k")?;
    for (path, fd) in devices {
        ensure_mountpoint(path, false)?;
        let src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        ctx(
            || format!("bind device {}", path.display()),
            sys::mount(Some(&src), path, None, libc::MS_BIND, None),
        )?;
    }
    // A private pty namespace for programs that open their own terminals;
    // the command's own terminal is its inherited stdin/stdout/stderr.
    ensure_mountpoint(Path::new("/dev/pts"), true)?;
    ctx(
        || "mount devpts on /dev/pts".into(),
        sys::mount(
            Some(Path::new("devpts")),
            Path::new("/dev/pts"),
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        ),
    )?;
    ensure_mountpoint(Path::new("/dev/shm"), true)?;
    tmpfs(Path::new("/dev/shm"), &format!("mode=1777,{tmpfs_limits}"))?;
    let links = [
        ("pts/ptmx", "/dev/ptmx"),
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    for (target, link) in links {
        ctx(
            || format!("symlink {link}"),
            std::os::unix::fs::symlink(target, link),
        )?;
    }
    Ok(())
}

fn setup_proc() -> Result<(), MountError> {
    ctx(
        || "mount a fresh /proc (needs a pid namespace and an unobstructed host /proc)".into(),
        sys::mount(
            Some(Path::new("proc")),
            Path::new("/proc"),
            Some("proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ),
    )?;
    // Kernel knobs stay read-only even though this /proc is ours.
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        ctx(
            || format!("bind {p} read-only"),
            sys::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None),
        )?;
        readonly(path, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{resolve, PathContext, PolicyLayer};

    /// The plan with a fresh look at the disk.
    fn plan(policy: &Policy) -> Vec<Step> {
        super::plan(policy, &Lstats::default())
    }

    fn policy_in(dir: &Path, f: impl FnOnce(&mut PolicyLayer)) -> Policy {
        let mut l = PolicyLayer::new(crate::policy::Origin::Test);
        f(&mut l);
        let ctx = PathContext {
            home: dir.to_path_buf(),
            cwd: dir.to_path_buf(),
            tmpdir: "/tmp".into(),
        };
        resolve(&[l], &ctx, &[]).unwrap()
    }

    // The plan as it was before planning became near-linear (scans of the
    // applied steps and of every rule per path), kept as the reference the
    // property test below compares the fast plan against.
    fn plan_reference(policy: &Policy) -> Vec<Step> {
        // The private /tmp's write right is about the tmpfs, not about host
        // paths bound into it: a host path under /tmp gets exactly what the
        // policy's own rules give it (read-only unless granted).
        let mut host = policy.clone();
        host.fs
            .retain(|r| r.origin != crate::sandbox::PRIVATE_TMP_ORIGIN);
        let policy = &host;
        let first = plan_with_reference(policy, &BTreeSet::new());
        let mut pins = BTreeSet::new();
        for step in &first {
            if matches!(step, Step::BindRw { .. }) {
                continue;
            }
            // Walk up from the protected path while the parent is writable
            // host content that is not itself a mount point of ours.
            let mut dir = step.path().parent();
            while let Some(d) = dir {
                let is_mount = first.iter().any(|s| s.path() == d) || d == Path::new("/tmp");
                if is_mount
                    || !policy.effective(d).write
                    || d.starts_with("/tmp") && !under_bound_reference(&first, d)
                {
                    break;
                }
                pins.insert(d.to_path_buf());
                dir = d.parent();
            }
        }
        if pins.is_empty() {
            first
        } else {
            plan_with_reference(policy, &pins)
        }
    }

    /// Is `d` inside a host path we bind (as opposed to the bare private /tmp)?
    fn under_bound_reference(steps: &[Step], d: &Path) -> bool {
        steps.iter().any(|s| {
            matches!(s, Step::BindRw { .. } | Step::BindRo { .. }) && d.starts_with(s.path())
        })
    }

    fn plan_with_reference(policy: &Policy, pins: &BTreeSet<PathBuf>) -> Vec<Step> {
        let mut applied: BTreeMap<PathBuf, View> = BTreeMap::new();
        applied.insert(
            PathBuf::from("/"),
            View::Host(Effective {
                read: true,
                write: false,
            }),
        );
        applied.insert(PathBuf::from("/tmp"), View::Empty { writable: true });
        let mut paths = policy.rule_paths();
        paths.extend(pins.iter().cloned());
        let paths = crate::policy::parents_first(paths);
        let mut steps = Vec::new();
        for path in paths {
            if path == Path::new("/") || SYNTHETIC.iter().any(|s| path == Path::new(s)) {
                continue;
            }
            if path.starts_with("/dev") || path.starts_with("/proc") {
                continue; // built by the sandbox itself
            }
            let view = applied
                .iter()
                .rev()
                .find(|(p, _)| path.starts_with(p))
                .map(|(_, v)| *v)
                .unwrap_or(View::Empty { writable: false });
            let want = policy.effective(&path);
            let meta = std::fs::symlink_metadata(&path).ok();
            let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
            let is_socket = {
                use std::os::unix::fs::FileTypeExt;
                meta.as_ref().is_some_and(|m| m.file_type().is_socket())
            };
            let pinned = pins.contains(&path);
            if meta.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
                // A symlink is never masked or bound through (that would
                // follow it): a protected one is pinned where it is writable.
                let writable_here = match view {
                    View::Host(have) => have.write,
                    View::Empty { writable } => writable,
                };
                if writable_here && (!want.write || !want.read) {
                    steps.push(Step::PinLink { path: path.clone() });
                }
                continue;
            }
            let step = match (view, meta.is_some()) {
                (View::Host(have), true) if have == want && pinned && want.write => {
                    Some(Step::BindRw { path: path.clone() })
                }
                (View::Host(have), true) if have == want => None,
                (View::Host(_), true) if !want.read => Some(if is_dir {
                    Step::MaskDir { path: path.clone() }
                } else if is_socket {
                    Step::MaskSocket { path: path.clone() }
                } else {
                    Step::MaskFile { path: path.clone() }
                }),
                (_, true) if want.write => Some(Step::BindRw { path: path.clone() }),
                (_, true) if want.read => Some(Step::BindRo { path: path.clone() }),
                // Denied and already hidden, or does not exist: nothing to
                // show. (A missing denied path under a writable host directory
                // gets a placeholder from the launcher before the run, so it
                // exists here; one under a read-only view cannot be created.)
                _ => None,
            };
            if let Some(step) = step {
                let view = match &step {
                    Step::MaskDir { .. } | Step::MaskFile { .. } | Step::MaskSocket { .. } => {
                        View::Empty { writable: false }
                    }
                    _ => View::Host(want),
                };
                applied.insert(path.clone(), view);
                steps.push(step);
            }
        }
        steps
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn plan_is_the_reference_plan(
            rules in proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::sample::select(vec!["d", "e", "f", "x"]), 0..4),
                    0u8..4,
                ),
                0..14,
            ),
        ) {
            // A fixed tree with directories, files and missing names, and
            // random rules over it (`resolve` refuses rules on or through
            // symlinks in writable places, so those are left to the unit
            // tests above).
            let d = tempfile::tempdir().unwrap();
            let root = std::fs::canonicalize(d.path()).unwrap();
            std::fs::create_dir_all(root.join("d/e/d")).unwrap();
            std::fs::create_dir_all(root.join("e/d")).unwrap();
            std::fs::write(root.join("f"), "").unwrap();
            std::fs::write(root.join("d/f"), "").unwrap();
            std::fs::write(root.join("d/e/f"), "").unwrap();
            std::os::unix::fs::symlink(root.join("d"), root.join("l")).unwrap();
            std::os::unix::fs::symlink(root.join("e"), root.join("d/l")).unwrap();
            let p = policy_in(&root, |l| {
                l.write_allow.push(root.display().to_string());
                for (parts, kind) in &rules {
                    let mut path = root.clone();
                    for part in parts {
                        path.push(part);
                    }
                    let path = path.display().to_string();
                    match kind {
                        0 => l.read_allow.push(path),
                        1 => l.read_deny.push(path),
                        2 => l.write_allow.push(path),
                        _ => l.write_deny.push(path),
                    }
                }
            });
            proptest::prop_assert_eq!(plan(&p), plan_reference(&p));
        }
    }

    #[test]
    fn deny_inside_allow_write_masks_after_binding() {
        let d = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("p/secret")).unwrap();
        std::fs::create_dir_all(root.join("p/ro")).unwrap();
        let p = policy_in(&root, |l| {
            l.write_allow.push("p".into());
            l.read_deny.push("p/secret".into());
            l.write_deny.push("p/ro".into());
        });
        let steps = plan(&p);
        assert_eq!(
            steps,
            vec![
                Step::BindRw {
                    path: root.join("p")
                },
                Step::BindRo {
                    path: root.join("p/ro")
                },
                Step::MaskDir {
                    path: root.join("p/secret")
                },
            ]
        );
    }

    #[test]
    fn ancestors_of_protected_paths_are_pinned() {
        let d = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("p/a/b/secret")).unwrap();
        let p = policy_in(&root, |l| {
            l.write_allow.push("p".into());
            l.read_deny.push("p/a/b/secret".into());
        });
        assert_eq!(
            plan(&p),
            vec![
                Step::BindRw {
                    path: root.join("p")
                },
                Step::BindRw {
                    path: root.join("p/a")
                },
                Step::BindRw {
                    path: root.join("p/a/b")
                },
                Step::MaskDir {
                    path: root.join("p/a/b/secret")
                },
            ]
        );
    }

    #[test]
    fn allow_inside_deny_re_exposes() {
        let d = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("s/pub")).unwrap();
        let p = policy_in(&root, |l| {
            l.read_deny.push("s".into());
            l.read_allow.push("s/pub".into());
        });
        assert_eq!(
            plan(&p),
            vec![
                Step::MaskDir {
                    path: root.join("s")
                },
                Step::BindRo {
                    path: root.join("s/pub")
                },
            ]
        );
    }

    #[test]
    fn paths_under_tmp_are_bound_into_the_private_tmp() {
        let d = tempfile::tempdir_in("/tmp").unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        let p = policy_in(&root, |l| l.read_allow.push(".".into()));
        assert_eq!(plan(&p), vec![Step::BindRo { path: root.clone() }]);
        let p = policy_in(&root, |l| l.write_allow.push(".".into()));
        assert_eq!(plan(&p), vec![Step::BindRw { path: root }]);
    }

    #[test]
    fn missing_paths_need_no_step() {
        let p = policy_in(Path::new("/nonexistent-zb"), |l| {
            l.read_deny.push("/nonexistent-zb/x".into());
            l.write_allow.push("/nonexistent-zb/y".into());
        });
        assert!(plan(&p).is_empty());
    }
}
