//! Landlock: the policy's filesystem rules as kernel access rights, plus TCP
//! and scope restrictions, enforced on the command process.
//!
//! Landlock only grants (a rule on a directory covers everything beneath
//! it), so "read everything except ~/.ssh" is expressed by granting the
//! complement: walking from `/` down to each denied path and granting every
//! sibling on the way. Directories on the way get `READ_DIR` only, so their
//! listings stay visible (names, not contents).
//!
//! Every requested right is a hard requirement for the ABI the kernel
//! reports: the ruleset is either fully enforced or the run fails.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};

use super::sys;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope,
    ABI,
};

use crate::policy::{Effective, Policy, RuleIndex};

/// What Landlock is asked to enforce.
#[derive(Debug, Clone)]
pub struct Request {
    /// Kernel ABI (from `landlock_create_ruleset(VERSION)`), > 0.
    pub abi: i32,
    /// If true, a writable directory containing a write-denied path gets no
    /// write rights of its own (only its other children do): the only way
    /// Landlock alone can keep the denied path unwritable. With the mount
    /// layer present, the masks and read-only binds enforce that part and
    /// the directory stays fully writable.
    pub precise_writes: bool,
    /// TCP ports the command may connect to (the proxy's).
    pub tcp_connect: Vec<u16>,
    /// Handle TCP bind/connect at all (false only with `--share-net`).
    pub restrict_tcp: bool,
}

/// One rule of the ruleset: a path and the rights granted beneath it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    pub read: bool,
    pub write: bool,
    /// Only `READ_DIR` (a directory on the way to a denied path).
    pub list_only: bool,
    /// A directory when the walk saw it (from `d_type`, not a `stat`).
    pub is_dir: bool,
}

/// Compute the grants for `policy` (reads the directories on the way to
/// each rule path that takes a right away, as the sandbox sees them).
pub fn grants(policy: &Policy, precise_writes: bool) -> Vec<Grant> {
    // Only rule paths that exist shape the complement: a missing one cannot
    // appear during the run (the launcher puts a placeholder where it could
    // be created), so there is nothing to carve out for it. Sorted as
    // bytes, so the rules below a directory are one contiguous run.
    let mut rules: Vec<RulePath> = policy
        .rule_paths()
        .into_iter()
        .filter_map(|p| {
            let t = std::fs::symlink_metadata(&p).ok()?.file_type();
            Some(RulePath {
                path: p.into_os_string().into_vec(),
                is_dir: t.is_dir(),
                is_symlink: t.is_symlink(),
            })
        })
        .collect();
    rules.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    rules.dedup_by(|a, b| a.path == b.path);
    let walker = Walker {
        index: RuleIndex::new(policy),
        rules: &rules,
        precise_writes,
    };
    let mut out = Vec::new();
    walker.walk(PathBuf::from("/"), true, &mut out);
    out
}

/// An existing rule path and its type (one `lstat` each).
struct RulePath {
    path: Vec<u8>,
    is_dir: bool,
    is_symlink: bool,
}

struct Walker<'a> {
    index: RuleIndex<'a>,
    /// Existing rule paths, sorted as bytes.
    rules: &'a [RulePath],
    precise_writes: bool,
}

impl Walker<'_> {
    /// The rule paths strictly below the directory `dir`: every path
    /// starting with `dir/`, one contiguous run in byte order.
    fn below(&self, dir: &[u8]) -> &[RulePath] {
        let mut prefix = dir.to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        let first = self
            .rules
            .partition_point(|r| r.path.as_slice() < prefix.as_slice());
        let len = self.rules[first..].partition_point(|r| r.path.starts_with(&prefix));
        &self.rules[first..first + len]
    }

    fn effective_at(&self, path: &[u8]) -> Effective {
        self.index
            .effective(Path::new(std::ffi::OsStr::from_bytes(path)))
    }

    /// Grant `path` (a directory if `is_dir`) and what lies beneath it.
    ///
    /// Everything below a path gets the path's own access unless a rule
    /// below says otherwise, so only rules whose access differs matter:
    /// one that takes a right away (`less`) has to be carved out, by
    /// listing the directory and granting each child on its own; one that
    /// only adds rights (`more`) is granted where it is, on top of the
    /// directory's own grant, with no listing.
    fn walk(&self, path: PathBuf, is_dir: bool, out: &mut Vec<Grant>) {
        let e = self.index.effective(&path);
        let below = if is_dir {
            self.below(path.as_os_str().as_bytes())
        } else {
            &[]
        };
        // Read and write is all Landlock can grant; where writes need not
        // be precise (the mounts make write-denied paths read-only), a
        // writable directory is granted whole.
        if below.is_empty() || (e.write && !self.precise_writes) {
            if e.read || e.write {
                out.push(Grant {
                    path,
                    read: e.read,
                    write: e.write,
                    list_only: false,
                    is_dir,
                });
            }
            return;
        }
        // With precise writes, a writable directory with any rule below it
        // is not writable itself, only its children are (as the fallback
        // has always done: the rule below may be a write denial that a new
        // entry in the directory would otherwise sidestep, e.g. by renaming
        // the denied path away and creating a fresh one).
        if e.write {
            return self.carve(path, e, out);
        }
        let mut more = Vec::new();
        for rule in below {
            let r = self.effective_at(&rule.path);
            if (e.read && !r.read) || (e.write && !r.write) {
                return self.carve(path, e, out);
            }
            if (r.read && !e.read) || (r.write && !e.write) {
                more.push(rule);
            }
        }
        if e.read || e.write {
            out.push(Grant {
                path,
                read: e.read,
                write: e.write,
                list_only: false,
                is_dir,
            });
        }
        // Each rule that adds rights, the outermost of a nest only (its own
        // walk handles what is below it). Byte order does not put a path's
        // descendants right after it (`a/b-c` sorts between `a/b` and
        // `a/b/c`), so the nest is found through each path's ancestors.
        let mut granted: HashSet<&[u8]> = HashSet::new();
        for rule in more {
            let p = rule.path.as_slice();
            let inside = p
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'/')
                .any(|(i, _)| granted.contains(&p[..i]));
            if inside {
                continue;
            }
            granted.insert(p);
            // Symlinks get no rule (see `carve`); one with rules below it
            // was not resolved when the policy was, and gets none either.
            if rule.is_symlink {
                continue;
            }
            self.walk(
                PathBuf::from(std::ffi::OsStr::from_bytes(p)),
                rule.is_dir,
                out,
            );
        }
    }

    /// A directory with a rule below that takes a right away: grant
    /// listing (if readable), then decide each child on its own.
    fn carve(&self, path: PathBuf, e: Effective, out: &mut Vec<Grant>) {
        if e.read {
            out.push(Grant {
                path: path.clone(),
                read: false,
                write: false,
                list_only: true,
                is_dir: true,
            });
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            return;
        };
        // Symlinks get no rule: following one needs no right of its own,
        // and a rule on its target could re-open a denied path. The entry's
        // type comes from the directory listing (`d_type`): no `stat`.
        // Names sort as bytes (cheaper than comparing paths by component).
        let children = sorted_children(entries);
        // A child that is no rule path and has none below it has its
        // directory's access (its deepest rule is the directory's): granted
        // without a walk of its own. Most children of a large directory
        // beside a denied path are such.
        let below = self.below(path.as_os_str().as_bytes());
        for (name, child_is_dir) in children {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            // The child itself, or anything under `child/` (byte order puts
            // `child-x` between the two, hence two searches).
            let has_rules = {
                let c = child.as_os_str().as_bytes();
                let mut under = c.to_vec();
                under.push(b'/');
                below.binary_search_by(|r| r.path.as_slice().cmp(c)).is_ok()
                    || below
                        .get(below.partition_point(|r| r.path.as_slice() < under.as_slice()))
                        .is_some_and(|r| r.path.starts_with(&under))
            };
            if has_rules {
                self.walk(child, child_is_dir, out);
            } else if e.read || e.write {
                out.push(Grant {
                    path: child,
                    read: e.read,
                    write: e.write,
                    list_only: false,
                    is_dir: child_is_dir,
                });
            }
        }
    }
}

/// Errors name the step; the caller turns them into "landlock: …".
pub fn enforce(policy: &Policy, req: &Request) -> Result<(), String> {
    let abi = ABI::from(req.abi);
    let grants = grants(policy, req.precise_writes);
    let fs_all = AccessFs::from_all(abi);
    let read: BitFlags<AccessFs> = AccessFs::from_read(abi) | (fs_all & AccessFs::IoctlDev);
    let write: BitFlags<AccessFs> = AccessFs::from_write(abi);
    let file_rights = AccessFs::from_file(abi);

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(fs_all)
        .map_err(|e| format!("handle fs access: {e}"))?;
    if req.abi >= 4 && req.restrict_tcp {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(|e| format!("handle TCP access: {e}"))?;
    }
    if req.abi >= 6 {
        ruleset = ruleset
            .scope(Scope::from_all(abi))
            .map_err(|e| format!("scope abstract unix sockets and signals: {e}"))?;
    }
    let created = ruleset
        .create()
        .map_err(|e| format!("create ruleset: {e}"))?;
    // The crate checked and created the ruleset (every handled right a hard
    // requirement); rules and enforcement are direct syscalls (see
    // `sys::landlock_add_path_rule`).
    let ruleset: Option<OwnedFd> = created.into();
    let ruleset = ruleset.ok_or("create ruleset: the kernel did not create one")?;
    let ruleset = ruleset.as_fd();
    // The walk lists a directory's children one after another, so their
    // parent is opened once and each child relative to it.
    let mut parent: Option<(PathBuf, OwnedFd)> = None;
    for g in &grants {
        // Never through a symlink: the walk saw none on the way, so one now
        // was swapped in (another run's command) and could point the rule
        // at a denied path. The parent is opened with no symlink anywhere on
        // its path and the child beneath it with none either; a directory
        // the walk saw must still be one (O_DIRECTORY), so its type needs no
        // `stat` of its own. Vanished since the walk, swapped for a symlink
        // or another type, or unreadable to us: no rule, which denies it
        // (fail closed).
        let fd: OwnedFd = match (g.path.parent(), g.path.file_name()) {
            (Some(dir), Some(name)) => {
                if parent
                    .as_ref()
                    .is_none_or(|(p, _)| p.as_os_str() != dir.as_os_str())
                {
                    parent = super::fsat::open_dir(dir)
                        .ok()
                        .map(|fd| (dir.to_path_buf(), fd));
                }
                let Some((_, dirfd)) = &parent else {
                    continue;
                };
                match super::fsat::open_child_nofollow(dirfd, name, g.is_dir) {
                    Ok(fd) => fd,
                    Err(_) => continue,
                }
            }
            _ => match super::fsat::open_nofollow(&g.path) {
                Ok(fd) => fd,
                Err(_) => continue,
            },
        };
        let mut access = BitFlags::<AccessFs>::empty();
        if g.list_only {
            access |= AccessFs::ReadDir;
        }
        if g.read {
            access |= read;
        }
        if g.write {
            access |= write | read;
        }
        if !g.is_dir {
            access &= file_rights;
        }
        if access.is_empty() {
            continue;
        }
        sys::landlock_add_path_rule(ruleset, fd.as_fd(), access.bits())
            .map_err(|e| format!("rule for {}: {e}", g.path.display()))?;
    }
    // ABI 9 handles connecting to pathname unix sockets (`ResolveUnix`,
    // part of the write rights): the sockets the policy allows get it on
    // their own, whether or not their directory is writable.
    if req.abi >= 9 {
        for sock in &policy.unix_sockets {
            let Ok(fd) = super::fsat::open_nofollow(sock) else {
                continue; // missing (or now a symlink): nothing granted
            };
            sys::landlock_add_path_rule(
                ruleset,
                fd.as_fd(),
                BitFlags::from(AccessFs::ResolveUnix).bits(),
            )
            .map_err(|e| format!("unix socket rule for {}: {e}", sock.display()))?;
        }
    }
    if req.abi >= 4 && req.restrict_tcp {
        for port in &req.tcp_connect {
            sys::landlock_add_port_rule(
                ruleset,
                *port,
                BitFlags::from(AccessNet::ConnectTcp).bits(),
            )
            .map_err(|e| format!("TCP rule for port {port}: {e}"))?;
        }
    }
    // Every right asked for is handled (hard requirements above) and every
    // rule was accepted: enforcing the ruleset enforces all of it.
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| format!("no_new_privs: {e}"))?;
    sys::landlock_restrict_self(ruleset).map_err(|e| format!("restrict_self: {e}"))?;
    Ok(())
}

/// A directory's entries as (name, is a directory), symlinks left out,
/// sorted by name bytes. The type comes from the listing (`d_type`): no
/// `stat` per entry.
fn sorted_children(entries: std::fs::ReadDir) -> Vec<(Vec<u8>, bool)> {
    use std::os::unix::ffi::OsStringExt;
    let mut children: Vec<(Vec<u8>, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let ft = e.file_type().ok()?;
            (!ft.is_symlink()).then(|| (e.file_name().into_vec(), ft.is_dir()))
        })
        .collect();
    children.sort_unstable();
    children
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{resolve, PathContext, PolicyLayer};
    use std::path::Path;

    #[test]
    fn complement_skips_denied_and_lists_ancestors() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        for p in ["a/secret", "a/pub", "b"] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("a/secret"), root.join("a/link")).unwrap();
        let mut l = PolicyLayer::new(crate::policy::Origin::Test);
        l.read_deny
            .push(root.join("a/secret").display().to_string());
        let ctx = PathContext {
            home: root.clone(),
            cwd: root.clone(),
            tmpdir: "/tmp".into(),
        };
        let p = resolve(&[l], &ctx, &[]).unwrap();
        let g = grants(&p, true);
        let find = |p: &Path| g.iter().find(|x| x.path == p).cloned();
        assert!(
            find(&root.join("a/secret")).is_none(),
            "denied path granted"
        );
        assert!(find(&root.join("a/link")).is_none(), "symlink granted");
        assert!(find(&root.join("a")).unwrap().list_only);
        assert!(find(&root.join("a/pub")).unwrap().read);
        assert!(find(&root.join("b")).unwrap().read);
        assert!(find(Path::new("/usr")).unwrap().read);
    }

    // The walk as it was before it skipped rules that change nothing and
    // granted rules that only add rights where they are: every directory
    // with any rule below it listed and each child granted on its own.
    // Kept as the reference the property test compares against.
    fn grants_reference(policy: &Policy, precise_writes: bool) -> Vec<Grant> {
        let mut rule_paths: Vec<Vec<u8>> = policy
            .rule_paths()
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .map(|p| p.into_os_string().into_vec())
            .collect();
        rule_paths.sort_unstable();
        rule_paths.dedup();
        let index = RuleIndex::new(policy);
        let mut out = Vec::new();
        walk_reference(
            &index,
            &rule_paths,
            precise_writes,
            PathBuf::from("/"),
            true,
            &mut out,
        );
        out
    }

    fn walk_reference(
        index: &RuleIndex<'_>,
        rules: &[Vec<u8>],
        precise_writes: bool,
        path: PathBuf,
        is_dir: bool,
        out: &mut Vec<Grant>,
    ) {
        let e = index.effective(&path);
        let mut prefix = path.as_os_str().as_bytes().to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        let has_rules_below = is_dir && rules.iter().any(|r| r.starts_with(&prefix));
        if !has_rules_below {
            if e.read || e.write {
                out.push(Grant {
                    path,
                    read: e.read,
                    write: e.write,
                    list_only: false,
                    is_dir,
                });
            }
            return;
        }
        let write_here = e.write && !precise_writes;
        if e.read || write_here {
            out.push(Grant {
                path: path.clone(),
                read: e.read && write_here,
                write: write_here,
                list_only: e.read && !write_here,
                is_dir,
            });
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            return;
        };
        let children = sorted_children(entries);
        for (name, d) in children {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            walk_reference(index, rules, precise_writes, child, d, out);
        }
    }

    /// What a set of grants lets the command do at `path` (a directory or
    /// a file), as Landlock unions the rules on it and its ancestors:
    /// (list or read, write).
    fn access_at(grants: &[Grant], path: &Path, is_dir: bool) -> (bool, bool) {
        let mut read = false;
        let mut write = false;
        for g in grants.iter().filter(|g| path.starts_with(&g.path)) {
            // A rule on a file covers that file only, with file rights.
            if !g.is_dir && g.path != path {
                continue;
            }
            read |= g.read || g.write || (g.list_only && is_dir);
            write |= g.write;
        }
        (read, write)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// The walk grants exactly what the reference walk grants, path by
        /// path, in both modes; and in the fallback (precise writes) every
        /// file gets exactly what the policy says.
        #[test]
        fn walk_grants_what_the_reference_grants(
            root_writable in proptest::bool::ANY,
            rules in proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::sample::select(vec!["d", "d-e", "e", "f", "x"]), 0..4),
                    0u8..4,
                ),
                0..10,
            ),
        ) {
            let d = tempfile::tempdir().unwrap();
            let root = std::fs::canonicalize(d.path()).unwrap();
            for dir in ["d/e/d", "d/d-e", "d-e/d", "e/d", "e/f"] {
                std::fs::create_dir_all(root.join(dir)).unwrap();
            }
            for file in ["f", "d/f", "d/e/f", "d-e/f", "e/d/f"] {
                std::fs::write(root.join(file), "").unwrap();
            }
            std::os::unix::fs::symlink(root.join("d"), root.join("e/x")).unwrap();
            let mut l = PolicyLayer::new(crate::policy::Origin::Test);
            if root_writable {
                l.write_allow.push(root.display().to_string());
            }
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
            let ctx = PathContext { home: root.clone(), cwd: root.clone(), tmpdir: "/tmp".into() };
            // `resolve` refuses a grant through the symlink in a writable
            // place: no policy, nothing to compare.
            let Ok(p) = resolve(&[l], &ctx, &[]) else {
                return Ok(());
            };
            let mut tree = vec![(root.clone(), true)];
            let mut i = 0;
            while i < tree.len() {
                let (dir, is_dir) = tree[i].clone();
                i += 1;
                if !is_dir {
                    continue;
                }
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    let ft = e.file_type().unwrap();
                    if !ft.is_symlink() {
                        tree.push((e.path(), ft.is_dir()));
                    }
                }
            }
            let ancestors: Vec<PathBuf> = root.ancestors().skip(1).map(Path::to_path_buf).collect();
            tree.extend(ancestors.into_iter().map(|a| (a, true)));
            for precise in [true, false] {
                let new = grants(&p, precise);
                let old = grants_reference(&p, precise);
                for (path, is_dir) in &tree {
                    proptest::prop_assert_eq!(
                        access_at(&new, path, *is_dir),
                        access_at(&old, path, *is_dir),
                        "{} (precise writes: {})", path.display(), precise
                    );
                    if precise && !is_dir {
                        let e = p.effective(path);
                        proptest::prop_assert_eq!(access_at(&new, path, false), (e.read, e.write), "{}", path.display());
                    }
                }
            }
        }
    }
}
