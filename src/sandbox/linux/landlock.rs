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

use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::policy::{Policy, RuleIndex};

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
/// each rule path, as the sandbox sees them).
pub fn grants(policy: &Policy, precise_writes: bool) -> Vec<Grant> {
    // Only rule paths that exist shape the complement: a missing one cannot
    // appear during the run (the launcher puts a placeholder where it could
    // be created), so there is nothing to carve out for it. Sorted as
    // bytes, so the rules below a directory are one contiguous run.
    let mut rule_paths: Vec<Vec<u8>> = policy
        .rule_paths()
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| p.into_os_string().into_vec())
        .collect();
    rule_paths.sort_unstable();
    rule_paths.dedup();
    let walker = Walker {
        index: RuleIndex::new(policy),
        rules: &rule_paths,
        precise_writes,
    };
    let mut out = Vec::new();
    walker.walk(PathBuf::from("/"), true, &mut out);
    out
}

struct Walker<'a> {
    index: RuleIndex<'a>,
    /// Existing rule paths, sorted as bytes.
    rules: &'a [Vec<u8>],
    precise_writes: bool,
}

impl Walker<'_> {
    /// Is there a rule path strictly below the directory `dir`?
    fn has_rules_below(&self, dir: &[u8]) -> bool {
        let mut prefix = dir.to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        // Every path starting with `dir/` sorts after `dir/` itself.
        let first = self
            .rules
            .partition_point(|r| r.as_slice() <= prefix.as_slice());
        self.rules
            .get(first)
            .is_some_and(|r| r.starts_with(&prefix))
    }

    fn walk(&self, path: PathBuf, is_dir: bool, out: &mut Vec<Grant>) {
        let e = self.index.effective(&path);
        let has_rules_below = is_dir && self.has_rules_below(path.as_os_str().as_bytes());
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
        // A directory with rules below: grant listing (if readable) and,
        // unless writes must be precise, writing; then decide each child on
        // its own.
        let write_here = e.write && !self.precise_writes;
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
        // Symlinks get no rule: following one needs no right of its own,
        // and a rule on its target could re-open a denied path. The entry's
        // type comes from the directory listing (`d_type`): no `stat`.
        // Names sort as bytes (cheaper than comparing paths by component).
        let mut children: Vec<(Vec<u8>, bool)> = entries
            .flatten()
            .filter_map(|e| {
                let ft = e.file_type().ok()?;
                (!ft.is_symlink()).then(|| (e.file_name().into_vec(), ft.is_dir()))
            })
            .collect();
        children.sort_unstable();
        for (name, child_is_dir) in children {
            self.walk(
                path.join(std::ffi::OsStr::from_bytes(&name)),
                child_is_dir,
                out,
            );
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
    let mut created = ruleset
        .create()
        .map_err(|e| format!("create ruleset: {e}"))?;
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
                if parent.as_ref().is_none_or(|(p, _)| p != dir) {
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
        created = created
            .add_rule(PathBeneath::new(fd, access))
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
            created = created
                .add_rule(PathBeneath::new(fd, AccessFs::ResolveUnix))
                .map_err(|e| format!("unix socket rule for {}: {e}", sock.display()))?;
        }
    }
    if req.abi >= 4 && req.restrict_tcp {
        for port in &req.tcp_connect {
            created = created
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(|e| format!("TCP rule for port {port}: {e}"))?;
        }
    }
    let status = created
        .restrict_self()
        .map_err(|e| format!("restrict_self: {e}"))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(format!(
            "the kernel enforced the ruleset only partially ({:?})",
            status.ruleset
        ));
    }
    Ok(())
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
}
