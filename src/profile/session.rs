//! One `--build-profile` or `learn` run: the decision for every access
//! the supervisor ([`crate::sandbox::linux::notify`]) and the proxy's host
//! hook report.
//!
//! Two views of the filesystem are kept:
//!
//! - `normal`: the run's own policy (the default view, the built-in deny
//!   list, FILE's and the flags' grants, the private `/tmp`). It is what
//!   the mounts and Landlock enforce during the run.
//! - `complete`: what `--profile FILE` will give once written: the same
//!   rules plus `read_default: deny` (every top-level path not granted is
//!   denied) plus every answer so far.
//!
//! A read the `normal` view refuses (the deny list) is left to the kernel
//! and never asked about. A read the `complete` view allows, of a path
//! that does not exist (a probe: the same `ENOENT` both ways), or of a
//! directory on the way to a grant (the profile's view has it too) goes
//! ahead. Anything else is asked (build) or recorded (learn). Writes are
//! the same with write access: what the run's grants and the private
//! `/tmp` allow goes ahead, the rest is asked or recorded.
//!
//! An allowed write takes effect from the next run (the command gets
//! `EROFS` this time: the run's mounts are fixed when it starts); the
//! prompt says so.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use super::prompt::{Choice, Prompter};
use super::{fold, is_spine, suggest_dir, Kind, Profile};
use crate::exit::Fatal;
use crate::policy::{self, FsAccess, FsRule, Policy};
use crate::sandbox::linux::notify::{Access, Decide, Op, Verdict};

/// What the run is for.
pub enum Purpose {
    /// Ask on the terminal; write FILE after every answer and trust it.
    Build {
        file: PathBuf,
        env: crate::preset::PresetEnv,
        prompter: Prompter,
    },
    /// Ask nothing; write a proposal to FILE at the end (not trusted: the
    /// user reviews it first).
    Learn { out: PathBuf },
}

/// Why a build stopped early.
#[derive(Debug, Clone)]
enum Stop {
    /// `[x]`.
    User,
    /// FILE could not be written: nothing more can be recorded.
    WriteFailed(String),
}

/// A policy with its rules keyed by path, so one decision is a lookup per
/// ancestor of the path instead of a scan of every rule (the same
/// decision as [`Policy::effective`]: the most specific rule wins, a deny
/// on the same path wins; `ways` holds every directory on the way to a
/// grant).
struct View {
    policy: Policy,
    rules: HashMap<PathBuf, Vec<FsAccess>>,
    ways: std::collections::HashSet<PathBuf>,
}

impl View {
    fn new(policy: Policy) -> View {
        let mut v = View {
            rules: HashMap::new(),
            ways: std::collections::HashSet::new(),
            policy: Policy {
                fs: Vec::new(),
                ..policy.clone()
            },
        };
        for r in policy.fs {
            v.push(r);
        }
        v
    }

    fn push(&mut self, rule: FsRule) {
        if matches!(rule.access, FsAccess::AllowRead | FsAccess::AllowWrite) {
            for a in rule.path.ancestors().skip(1) {
                self.ways.insert(a.to_path_buf());
            }
        }
        self.rules
            .entry(rule.path.clone())
            .or_default()
            .push(rule.access);
        self.policy.fs.push(rule);
    }

    fn effective(&self, path: &Path) -> policy::Effective {
        let mut read = None;
        let mut write = None;
        for a in path.ancestors() {
            let Some(here) = self.rules.get(a) else {
                continue;
            };
            let has = |x: FsAccess| here.contains(&x);
            if read.is_none() {
                if has(FsAccess::DenyRead) {
                    read = Some(false);
                } else if has(FsAccess::AllowRead) || has(FsAccess::AllowWrite) {
                    read = Some(true);
                }
            }
            if write.is_none() {
                if has(FsAccess::DenyWrite) || has(FsAccess::DenyRead) {
                    write = Some(false);
                } else if has(FsAccess::AllowWrite) {
                    write = Some(true);
                }
            }
            if read.is_some() && write.is_some() {
                break;
            }
        }
        let read = read.unwrap_or(true);
        policy::Effective {
            read,
            write: write.unwrap_or(false) && read,
        }
    }

    /// Does a rule deny writing `path` on purpose (a write or read deny is
    /// the most specific write rule), as opposed to nothing granting it?
    fn write_denied(&self, path: &Path) -> bool {
        for a in path.ancestors() {
            if let Some(here) = self.rules.get(a) {
                if here.contains(&FsAccess::DenyWrite) || here.contains(&FsAccess::DenyRead) {
                    return true;
                }
                if here.contains(&FsAccess::AllowWrite) {
                    return false;
                }
            }
        }
        false
    }

    /// Is `path` a directory on the way to a grant (not the grant itself)?
    fn on_the_way(&self, path: &Path) -> bool {
        self.ways.contains(path)
    }
}

struct State {
    purpose: Purpose,
    profile: Profile,
    /// Entries in the profile when the run started.
    entries_at_start: usize,
    normal: Option<View>,
    complete: Option<View>,
    /// Paths answered `[n]`, refused with EACCES from then on (with
    /// everything in them, except for HOME, the project and the
    /// directories above them: see [`State::refused`]).
    denied_read: Vec<PathBuf>,
    denied_write: Vec<PathBuf>,
    /// Directories where a look-up (`stat`) was answered `[n]`: the other
    /// look-ups of names in them are refused without a question (an agent
    /// that lists a directory looks up every entry; the profile hides
    /// them all the same).
    quiet_lookups: std::collections::HashSet<PathBuf>,
    /// Paths allowed for writing during this run (effective next run).
    allowed_write: Vec<PathBuf>,
    /// Host (`host:port`) → the pattern allowed, or None (refused).
    hosts: HashMap<String, Option<String>>,
    /// `learn`: what was seen, with counts.
    seen: BTreeMap<(Kind, PathBuf), u64>,
    seen_hosts: BTreeMap<(String, bool), u64>,
    questions: u64,
    stop: Option<Stop>,
}

impl State {
    /// Was `path` refused by an `[n]` in `list`? An `[n]` to a directory
    /// covers everything in it, except when the directory is HOME, the
    /// project or one above them: the command passes through those to
    /// reach its own files, and `[n]` to listing HOME must not refuse
    /// `~/.claude` unasked. There the `[n]` is for that path alone.
    fn refused(&self, list: &[PathBuf], path: &Path) -> bool {
        let (home, cwd) = match self.normal.as_ref() {
            Some(n) => (n.policy.home.as_path(), n.policy.cwd.as_path()),
            None => return true,
        };
        list.iter()
            .any(|p| path == p || (path.starts_with(p) && !is_spine(p, home, cwd)))
    }
}

/// The session: implements the supervisor's [`Decide`], the proxy's
/// [`crate::proxy::HostHook`] and the launcher's
/// [`crate::launcher::Watcher`].
pub struct Session {
    state: Mutex<State>,
    /// The command's name, as the questions say it (`claude wants to …`).
    command: String,
    /// The sandbox's PID 1 (0 until it runs): `[x]` stops it.
    pid: AtomicI32,
    /// Directory (as the command named it) → its real path: most accesses
    /// are in a few directories, so only the last component is looked up
    /// (see [`Session::resolve`]).
    dirs: Mutex<HashMap<PathBuf, PathBuf>>,
}

/// How a `notify` access is named in a question.
fn verb(op: Op) -> &'static str {
    match op {
        Op::Read => "read",
        Op::Exec => "run",
        Op::Stat => "look up",
        Op::Write => "write",
    }
}

fn now_utc() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

impl Session {
    pub fn new(purpose: Purpose, profile: Profile, command: &str) -> Arc<Session> {
        let command = Path::new(command)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| command.to_string());
        let entries_at_start = profile.entries.len();
        Arc::new(Session {
            state: Mutex::new(State {
                purpose,
                profile,
                entries_at_start,
                normal: None,
                complete: None,
                denied_read: Vec::new(),
                denied_write: Vec::new(),
                quiet_lookups: std::collections::HashSet::new(),
                allowed_write: Vec::new(),
                hosts: HashMap::new(),
                seen: BTreeMap::new(),
                seen_hosts: BTreeMap::new(),
                questions: 0,
                stop: None,
            }),
            command: crate::output::one_line(&command),
            pid: AtomicI32::new(0),
            dirs: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-made
        // decision: the state is plain data, consistent between calls.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stop the sandbox (its PID 1 takes every process with it), and
    /// return only once it is gone: the call that was asked about is
    /// answered after that, so nothing of the command runs on after `[x]`.
    /// (PID 1 becomes a zombie only after every process of its namespace
    /// has exited.)
    fn stop_sandbox(&self) {
        let mut pid = 0;
        for _ in 0..200 {
            pid = self.pid.load(Ordering::SeqCst);
            if pid > 0 {
                break;
            }
            // The question came before the launcher learnt the pid.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if pid <= 0 {
            return;
        }
        let _ = crate::sandbox::linux::sys::kill(pid, libc::SIGKILL);
        for _ in 0..500 {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()));
            match state {
                None | Some(Some('Z')) | Some(Some('X')) | Some(None) => return,
                _ => std::thread::sleep(std::time::Duration::from_millis(4)),
            }
        }
    }

    /// The full-screen command redraws after a question covered its
    /// bottom row (relayed by the sandbox's PID 1).
    fn redraw(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid > 0 {
            let _ = crate::sandbox::linux::sys::kill(pid, libc::SIGWINCH);
        }
    }

    /// Record `entry` and, for a build, write FILE at once.
    fn record(&self, st: &mut State, kind: Kind, value: &Path, note: String) {
        st.profile.add(kind, value.display().to_string(), note);
        let access = match kind {
            Kind::ReadAllow => Some(FsAccess::AllowRead),
            Kind::ReadDeny => Some(FsAccess::DenyRead),
            _ => None,
        };
        if let (Some(access), Some(c)) = (access, st.complete.as_mut()) {
            c.push(FsRule {
                path: value.to_path_buf(),
                access,
                origin: policy::Origin::BuildProfile,
            });
        }
        self.save(st);
    }

    fn save(&self, st: &mut State) {
        if let Purpose::Build { file, env, .. } = &st.purpose {
            if let Err(e) = st.profile.save(file, Some(env)) {
                st.stop = Some(Stop::WriteFailed(e.message));
            }
        }
    }

    /// Ask, with the state locked (one question at a time). `None` = `[x]`.
    ///
    /// The calling thread waits in its system call meanwhile; the rest of
    /// the command runs on. It is not stopped (SIGSTOP): a stopped child
    /// is reported to its parent (`CLD_STOPPED`), and Claude Code's
    /// runtime (Bun) then never reaped its Bash tool's shell, which hung
    /// the session (seen with 2.1.197). Another thread of the command may
    /// still read a key meant for the question from the terminal; it
    /// cannot answer it (the answer is read by zerobox alone, and the
    /// main filter refuses TIOCSTI), the question just waits for another
    /// key.
    fn ask(&self, st: &mut State, question: String, choices: Vec<Choice>) -> Option<char> {
        let Purpose::Build { prompter, .. } = &mut st.purpose else {
            return None;
        };
        let (key, full_screen) = prompter.ask(&question, &choices);
        st.questions += 1;
        if full_screen {
            self.redraw();
        }
        if key == 'x' {
            st.stop = Some(Stop::User);
            None
        } else {
            Some(key)
        }
    }

    /// The real path of `path` (symlinks and `..` resolved as the kernel
    /// will; this view equals the host's outside the sandbox's own /tmp,
    /// /proc, /dev and /sys) and whether it exists. The real path of its
    /// directory comes from a cache, so a repeated directory costs one
    /// `lstat` (of the last component). A directory replaced by a symlink
    /// after it was cached is the race of docs/threat-model.md: it can hide
    /// an access from the profile, which then lacks the grant (fails
    /// closed under `--profile`).
    fn resolve(&self, path: &Path) -> (PathBuf, bool) {
        use std::path::Component;
        let plain = path.components().all(|c| {
            matches!(
                c,
                Component::RootDir | Component::Normal(_) | Component::CurDir
            )
        });
        let lexical = policy::paths::lexical_normalise(path);
        let (Some(parent), Some(name), true) = (lexical.parent(), lexical.file_name(), plain)
        else {
            let real = policy::paths::canonical(path);
            let exists = std::fs::symlink_metadata(&real).is_ok();
            return (real, exists);
        };
        let real_parent = {
            let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
            match dirs.get(parent) {
                Some(r) => r.clone(),
                None => {
                    let r = policy::paths::canonical(parent);
                    if dirs.len() >= 100_000 {
                        dirs.clear();
                    }
                    dirs.insert(parent.to_path_buf(), r.clone());
                    r
                }
            }
        };
        let candidate = real_parent.join(name);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = policy::paths::canonical(&candidate);
                let exists = std::fs::symlink_metadata(&real).is_ok();
                (real, exists)
            }
            Ok(_) => (candidate, true),
            Err(_) => (candidate, false),
        }
    }

    fn decide_path(&self, a: &Access) -> Verdict {
        let lexical = policy::paths::lexical_normalise(&a.path);
        // Built by the sandbox itself: its own /proc, /dev and /sys
        // (runtime facts: CPUs, cgroup limits; read-only).
        if ["/proc", "/dev", "/sys"]
            .iter()
            .any(|d| lexical.starts_with(d))
        {
            return Verdict::Continue;
        }
        let (real, exists) = self.resolve(&a.path);
        let mut st = self.lock();
        if st.stop.is_some() {
            return Verdict::Deny(libc::EACCES);
        }
        let (Some(normal), Some(complete)) = (st.normal.as_ref(), st.complete.as_ref()) else {
            return Verdict::Deny(libc::EACCES);
        };
        let learn = matches!(st.purpose, Purpose::Learn { .. });
        // `mkdir` of a name that exists fails with EEXIST whatever the
        // mounts and Landlock say (the kernel looks the name up before it
        // checks write access): the same answer under the profile, so
        // nothing to ask (`mkdir -p ~/.config/app` makes one of HOME).
        if a.op == Op::Write && exists && matches!(a.syscall, "mkdir" | "mkdirat") {
            return Verdict::ContinueUncached;
        }
        if a.op == Op::Write {
            let now = normal.effective(&real);
            // Granted, or the deny list (the kernel refuses): nothing to ask.
            if now.write || !now.read {
                return Verdict::Continue;
            }
            if st.allowed_write.iter().any(|p| real.starts_with(p)) {
                return Verdict::Continue;
            }
            // Denied by this run (`[n]`) or by FILE / the flags: not asked
            // again.
            if st.refused(&st.denied_write, &real) || normal.write_denied(&real) {
                return Verdict::Deny(libc::EACCES);
            }
            if learn {
                *st.seen.entry((Kind::WriteAllow, real)).or_default() += 1;
                return Verdict::ContinueUncached;
            }
            return self.ask_write(&mut st, a, &real);
        }
        if !normal.effective(&real).read {
            return Verdict::Continue;
        }
        // A probe of a missing path fails the same way under the profile;
        // asked about once it exists.
        if !exists {
            return Verdict::ContinueUncached;
        }
        if complete.effective(&real).read {
            return Verdict::Continue;
        }
        // A directory on the way to a grant: the profile's view has it.
        if complete.on_the_way(&real) {
            return Verdict::Continue;
        }
        if st.refused(&st.denied_read, &real) {
            return Verdict::Deny(libc::EACCES);
        }
        if a.op == Op::Stat && real.parent().is_some_and(|d| st.quiet_lookups.contains(d)) {
            return Verdict::Deny(libc::EACCES);
        }
        if learn {
            *st.seen.entry((Kind::ReadAllow, real)).or_default() += 1;
            return Verdict::ContinueUncached;
        }
        self.ask_read(&mut st, a, &real)
    }

    fn ask_read(&self, st: &mut State, a: &Access, real: &Path) -> Verdict {
        let (home, cwd) = match st.normal.as_ref() {
            Some(n) => (n.policy.home.clone(), n.policy.cwd.clone()),
            None => return Verdict::Deny(libc::EACCES),
        };
        let is_dir = real.is_dir();
        let dir = suggest_dir(real, &home, &cwd);
        let mut choices = vec![Choice {
            key: 'a',
            label: if is_dir {
                "allow this directory".into()
            } else {
                "allow this file".into()
            },
        }];
        if let Some(d) = &dir {
            choices.push(Choice {
                key: 'd',
                label: format!("allow {}/", d.display()),
            });
        }
        push_deny_and_exit(&mut choices);
        let spine = is_dir && is_spine(real, &home, &cwd);
        let parent = real.parent().map(Path::to_path_buf);
        if let Some(n) = choices.iter_mut().find(|c| c.key == 'n') {
            if spine {
                n.label = "deny (this directory, not what is in it)".into();
            } else if a.op == Op::Stat {
                n.label = "deny (and look-ups beside it)".into();
            }
        }
        let question = crate::output::one_line(&format!(
            "zerobox: {} wants to {} {}",
            self.command,
            verb(a.op),
            real.display()
        ));
        let when = now_utc();
        match self.ask(st, question, choices) {
            Some('a') => {
                let note = format!("allowed {when}: {} {}", self.command, verb(a.op));
                self.record(st, Kind::ReadAllow, real, note);
                Verdict::Continue
            }
            Some('d') if dir.is_some() => {
                let d = dir.unwrap_or_default();
                let note = format!(
                    "allowed {when}: {} {} {}",
                    self.command,
                    verb(a.op),
                    real.display()
                );
                self.record(st, Kind::ReadAllow, &d, note);
                Verdict::Continue
            }
            Some(_) => {
                st.denied_read.push(real.to_path_buf());
                if a.op == Op::Stat && !spine {
                    st.quiet_lookups.extend(parent);
                }
                // HOME, the project or a directory above them: refused for
                // this run only. The profile denies them anyway (they are
                // only passed through), and a deny rule there would hide
                // everything the user grants inside them later.
                if !spine {
                    let note = format!("denied {when}: {} {}", self.command, verb(a.op));
                    self.record(st, Kind::ReadDeny, real, note);
                }
                Verdict::Deny(libc::EACCES)
            }
            None => {
                self.stop_sandbox();
                Verdict::Deny(libc::EACCES)
            }
        }
    }

    fn ask_write(&self, st: &mut State, a: &Access, real: &Path) -> Verdict {
        let (home, cwd) = match st.normal.as_ref() {
            Some(n) => (n.policy.home.clone(), n.policy.cwd.clone()),
            None => return Verdict::Deny(libc::EACCES),
        };
        let dir = suggest_dir(real, &home, &cwd);
        let mut choices = vec![Choice {
            key: 'a',
            label: "allow writing this (from the next run)".into(),
        }];
        if let Some(d) = &dir {
            choices.push(Choice {
                key: 'd',
                label: format!("allow writing {}/", d.display()),
            });
        }
        push_deny_and_exit(&mut choices);
        let question = crate::output::one_line(&format!(
            "zerobox: {} wants to write {} ({})",
            self.command,
            real.display(),
            a.syscall
        ));
        let when = now_utc();
        match self.ask(st, question, choices) {
            Some('a') => {
                st.allowed_write.push(real.to_path_buf());
                let note = format!("allowed {when}: {} {}", self.command, a.syscall);
                self.record(st, Kind::WriteAllow, real, note);
                Verdict::Continue
            }
            Some('d') if dir.is_some() => {
                let d = dir.unwrap_or_default();
                st.allowed_write.push(d.clone());
                let note = format!(
                    "allowed {when}: {} {} {}",
                    self.command,
                    a.syscall,
                    real.display()
                );
                self.record(st, Kind::WriteAllow, &d, note);
                Verdict::Continue
            }
            Some(_) => {
                st.denied_write.push(real.to_path_buf());
                // As for reads: an `[n]` to HOME or above is for this path
                // and this run; a write deny there would cover everything.
                if !is_spine(real, &home, &cwd) {
                    let note = format!("denied {when}: {} {}", self.command, a.syscall);
                    self.record(st, Kind::WriteDeny, real, note);
                }
                Verdict::Deny(libc::EACCES)
            }
            None => {
                self.stop_sandbox();
                Verdict::Deny(libc::EACCES)
            }
        }
    }

    /// The host pattern `[a]` records: the host, with its port unless it
    /// is a web port (80/443, which a port-less pattern means).
    fn host_pattern(host: &str, port: u16) -> String {
        if port == 80 || port == 443 {
            host.to_string()
        } else {
            format!("{host}:{port}")
        }
    }

    /// `[s]`: `*.example.com` for `api.example.com` (three labels or
    /// more, a name rather than an address).
    fn suffix_pattern(host: &str) -> Option<String> {
        if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            return None;
        }
        let labels: Vec<&str> = host.split('.').collect();
        (labels.len() >= 3).then(|| format!("*.{}", labels[1..].join(".")))
    }
}

impl Decide for Session {
    fn decide(&self, access: &Access) -> Verdict {
        self.decide_path(access)
    }

    fn first_exec(&self, program: &Path) {
        let real = policy::paths::canonical(program);
        let mut st = self.lock();
        let readable = st
            .complete
            .as_ref()
            .is_some_and(|c| c.effective(&real).read);
        if readable {
            return;
        }
        match st.purpose {
            Purpose::Learn { .. } => {
                *st.seen.entry((Kind::ReadAllow, real)).or_default() += 1;
            }
            Purpose::Build { .. } => {
                let note = format!("allowed {}: the command itself", now_utc());
                self.record(&mut st, Kind::ReadAllow, &real, note);
            }
        }
    }
}

impl crate::proxy::HostHook for Session {
    fn not_allowed(&self, host: &str, port: u16) -> Option<String> {
        let key = format!("{host}:{port}");
        let mut st = self.lock();
        if st.stop.is_some() {
            return None;
        }
        if let Some(answer) = st.hosts.get(&key) {
            return answer.clone();
        }
        if matches!(st.purpose, Purpose::Learn { .. }) {
            *st.seen_hosts
                .entry((Self::host_pattern(host, port), false))
                .or_default() += 1;
            return None;
        }
        let suffix = Self::suffix_pattern(host);
        let mut choices = vec![Choice {
            key: 'a',
            label: "allow this host".into(),
        }];
        if let Some(s) = &suffix {
            choices.push(Choice {
                key: 's',
                label: format!("allow {s}"),
            });
        }
        push_deny_and_exit(&mut choices);
        let question = crate::output::one_line(&format!(
            "zerobox: {} wants to connect to {key}",
            self.command
        ));
        let when = now_utc();
        let answer = match self.ask(&mut st, question, choices) {
            Some('a') => Some(Self::host_pattern(host, port)),
            Some('s') if suffix.is_some() => suffix,
            Some(_) => None,
            None => {
                self.stop_sandbox();
                return None;
            }
        };
        let (kind, value, verb) = match &answer {
            Some(p) => (Kind::NetAllow, p.clone(), "allowed"),
            None => (Kind::NetDeny, Self::host_pattern(host, port), "denied"),
        };
        st.profile.add(
            kind,
            value,
            format!("{verb} {when}: {} connect to {key}", self.command),
        );
        self.save(&mut st);
        st.hosts.insert(key, answer.clone());
        answer
    }

    fn allowed(&self, host: &str, port: u16, _rule: &str) {
        let mut st = self.lock();
        if matches!(st.purpose, Purpose::Learn { .. }) {
            *st.seen_hosts
                .entry((Self::host_pattern(host, port), true))
                .or_default() += 1;
        }
    }
}

impl crate::launcher::Watcher for Session {
    fn supervisor(self: Arc<Self>, policy: &Policy) -> Result<Arc<dyn Decide>, Fatal> {
        let mut normal = policy.clone();
        normal.fs.extend(crate::sandbox::implicit_rules(
            policy,
            crate::sandbox::Mode::Namespaces,
            Path::new("/tmp"),
        ));
        let mut complete = normal.clone();
        let top: Vec<PathBuf> = std::fs::read_dir("/")
            .map_err(|e| Fatal::setup(format!("cannot list /: {e}")))?
            .flatten()
            .map(|e| e.path())
            .collect();
        let extra =
            policy::default_deny_rules(&complete.fs, top, &policy.cwd, &policy::Origin::Profile);
        complete.fs.extend(extra);
        {
            let mut st = self.lock();
            // The profile's own absolute read grants (an existing FILE's
            // are in `policy` too; the runtime comes from `system`).
            for e in &st.profile.entries {
                if e.kind == Kind::ReadAllow && e.value.starts_with('/') {
                    complete.fs.push(FsRule {
                        path: policy::paths::canonical(Path::new(&e.value)),
                        access: FsAccess::AllowRead,
                        origin: policy::Origin::Profile,
                    });
                }
            }
            st.normal = Some(View::new(normal));
            st.complete = Some(View::new(complete));
            // FILE exists (and is trusted) from the start; an unchanged
            // FILE (loaded, so trusted) is left as it is.
            let unchanged = match &st.purpose {
                Purpose::Build { file, .. } => {
                    std::fs::read_to_string(file).is_ok_and(|t| t == st.profile.render())
                }
                Purpose::Learn { .. } => true,
            };
            if !unchanged {
                self.save(&mut st);
            }
            if let Some(Stop::WriteFailed(e)) = &st.stop {
                return Err(Fatal::usage(e.clone()));
            }
        }
        Ok(self)
    }

    fn host_hook(self: Arc<Self>) -> Arc<dyn crate::proxy::HostHook> {
        self
    }

    fn started(&self, pid: i32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    fn finish(&self, code: i32) -> Result<i32, Fatal> {
        let mut st = self.lock();
        let new = st.profile.entries.len() - st.entries_at_start.min(st.profile.entries.len());
        match (&st.stop, &st.purpose) {
            (Some(Stop::User), Purpose::Build { file, .. }) => {
                crate::errln!(
                    "zerobox: stopped at your request ([x]); the answers so far ({new} new entries) are in {}",
                    file.display()
                );
                return Ok(crate::exit::STOPPED);
            }
            (Some(Stop::WriteFailed(e)), _) => {
                return Err(Fatal::setup(format!(
                    "{e}; the run was stopped (its answers could not be kept)"
                )));
            }
            _ => {}
        }
        match &st.purpose {
            Purpose::Build { file, .. } => {
                crate::errln!(
                    "zerobox: profile {}: {new} new entries from {} questions; run with `zerobox --profile {} -- CMD`",
                    file.display(),
                    st.questions,
                    file.display()
                );
            }
            Purpose::Learn { out } => {
                let out = out.clone();
                let (home, cwd) = match st.normal.as_ref() {
                    Some(n) => (n.policy.home.clone(), n.policy.cwd.clone()),
                    None => (PathBuf::from("/"), PathBuf::from("/")),
                };
                for kind in [Kind::ReadAllow, Kind::WriteAllow] {
                    let paths: Vec<(PathBuf, u64)> = st
                        .seen
                        .iter()
                        .filter(|((k, _), _)| *k == kind)
                        .map(|((_, p), n)| (p.clone(), *n))
                        .collect();
                    for (p, n) in fold(&paths, &home, &cwd) {
                        let what = if kind == Kind::ReadAllow {
                            "read"
                        } else {
                            "write"
                        };
                        let note = format!("learn: {n} {what} access(es)");
                        st.profile.add(kind, p.display().to_string(), note);
                    }
                }
                let hosts: Vec<((String, bool), u64)> =
                    st.seen_hosts.iter().map(|(k, v)| (k.clone(), *v)).collect();
                for ((h, allowed), n) in hosts {
                    let note = if allowed {
                        format!("learn: {n} connection(s)")
                    } else {
                        format!("learn: {n} connection(s) refused by this run's flags; review")
                    };
                    st.profile.add(Kind::NetAllow, h, note);
                }
                st.profile.save(&out, None)?;
                crate::errln!(
                    "zerobox: wrote a proposed profile to {} ({} entries); review it, then `zerobox trust {}` and run with `zerobox --profile {} -- CMD`",
                    out.display(),
                    st.profile.entries.len(),
                    out.display(),
                    out.display()
                );
            }
        }
        Ok(code)
    }
}

/// Every question ends with the same two choices.
fn push_deny_and_exit(choices: &mut Vec<Choice>) {
    choices.push(Choice {
        key: 'n',
        label: "deny".into(),
    });
    choices.push(Choice {
        key: 'x',
        label: "exit".into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index decides as `Policy::effective` does, for every rule kind
    /// at every depth (rules on `/` itself aside, which no view has).
    #[test]
    fn view_decides_like_the_policy() {
        let kinds = [
            FsAccess::AllowRead,
            FsAccess::DenyRead,
            FsAccess::AllowWrite,
            FsAccess::DenyWrite,
        ];
        let paths = ["/a", "/a/b", "/a/b/c", "/a/bc", "/x"];
        let probes = [
            "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/bc", "/a/b2", "/x/y", "/z",
        ];
        // Every set of up to three (path, kind) rules from the grid.
        let grid: Vec<(usize, usize)> = (0..paths.len())
            .flat_map(|p| (0..kinds.len()).map(move |k| (p, k)))
            .collect();
        let mut checked = 0;
        for i in 0..grid.len() {
            for j in i..grid.len() {
                for k in j..grid.len() {
                    let rules: Vec<FsRule> = [grid[i], grid[j], grid[k]]
                        .iter()
                        .map(|(p, k)| FsRule {
                            path: PathBuf::from(paths[*p]),
                            access: kinds[*k],
                            origin: crate::policy::Origin::Test,
                        })
                        .collect();
                    let policy = Policy {
                        cwd: PathBuf::from("/"),
                        home: PathBuf::from("/"),
                        fs: rules,
                        env: Default::default(),
                        env_dropped: Vec::new(),
                        env_withheld: Vec::new(),
                        network: Default::default(),
                        unix_sockets: Vec::new(),
                        secrets: Vec::new(),
                    };
                    let view = View::new(policy.clone());
                    for p in probes {
                        assert_eq!(
                            view.effective(Path::new(p)),
                            policy.effective(Path::new(p)),
                            "{p} under {:?}",
                            policy.fs
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }
}
