//! Process attacks: tracing, signalling host processes, seeing the host's
//! processes, and processes that outlive the sandbox.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{self, real, scratch};
use crate::util::{alive, expect, host_procs_with, py, py_fallback, unique, wait_until};

/// A host `sleep` that the test owns; killed on drop.
struct HostSleep(std::process::Child);

impl HostSleep {
    fn start() -> HostSleep {
        HostSleep(
            Command::new("sleep")
                .arg(format!("300.{}", unique()))
                .spawn()
                .expect("spawn sleep"),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Threat: ptrace zerobox's init (PID 1: holds capabilities in the
/// sandbox's user namespace and the mounts' setup state), one's own child,
/// or read another process's memory with process_vm_readv; `strace -p 1`.
/// Stopped by: seccomp (ptrace and process_vm_* EPERM); capabilities and
/// Landlock's ptrace scoping would stop an attach on init anyway.
#[test]
fn ptrace_and_process_vm_are_refused() {
    let s = scratch();
    let d = real(s.path());
    let r = py(
        &d,
        None,
        &[],
        &format!(
            r#"
p("attach_init", sc({ptrace}, 16, 1, 0, 0))
p("seize_init", sc({ptrace}, 0x4206, 1, 0, 0))
pid = os.fork()
if pid == 0:
    import time
    time.sleep(5)
    os._exit(0)
p("attach_child", sc({ptrace}, 16, pid, 0, 0))
p("traceme", sc({ptrace}, 0, 0, 0, 0))
buf = ctypes.create_string_buffer(64)
iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 64)
p("vm_readv", sc({readv}, 1, iov, 1, iov, 1, 0))
p("vm_writev", sc({writev}, pid, iov, 1, iov, 1, 0))
os.kill(pid, 9)
os.waitpid(pid, 0)
"#,
            ptrace = libc::SYS_ptrace,
            readv = libc::SYS_process_vm_readv,
            writev = libc::SYS_process_vm_writev,
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in [
        "attach_init",
        "seize_init",
        "attach_child",
        "traceme",
        "vm_readv",
        "vm_writev",
    ] {
        expect(&r, n, "EPERM");
    }
    if common::have("strace") {
        let r = crate::util::sh(&d, None, &[], "strace -p 1 -o /dev/null; echo rc=$?");
        assert!(r.stdout.contains("rc=1"), "{r:?}");
        assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    } else {
        common::skip("no strace (the ptrace part of this test)");
    }
}

/// Threat: kill a host process by pid (the attacker learns it from a log or
/// guesses). Stopped by: the pid namespace (the host pid does not exist
/// inside: ESRCH). The host process survives.
#[test]
fn killing_a_host_process_is_impossible() {
    let victim = HostSleep::start();
    let pid = victim.pid();
    assert!(alive(pid));
    let s = scratch();
    let r = crate::util::sh(
        &real(s.path()),
        None,
        &[],
        &format!("kill -9 {pid}; echo rc=$?; kill -0 {pid}; echo rc0=$?"),
    );
    assert!(
        r.stdout.contains("rc=1") && r.stdout.contains("rc0=1"),
        "{r:?}"
    );
    assert!(r.stderr.contains("No such process"), "{r:?}");
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!("t('kill', lambda: os.kill({pid}, 9))"),
    );
    expect(&r, "kill", "ESRCH");
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid), "the host process was killed");
}

/// Threat: the same kill in the fallback mode (no pid namespace: the host
/// pid is visible). Stopped by: Landlock signal scoping (ABI >= 6): EPERM.
#[test]
fn fallback_mode_cannot_kill_host_process() {
    if crate::util::landlock_abi() < 6 {
        crate::common::skip("Landlock ABI < 6 has no signal scoping");
        return;
    }
    let victim = HostSleep::start();
    let pid = victim.pid();
    let s = scratch();
    let r = py_fallback(
        &real(s.path()),
        &[],
        &format!("t('kill', lambda: os.kill({pid}, 9))\nt('kill_init', lambda: os.kill(1, 0))"),
    );
    assert!(r.stderr.contains("Landlock + seccomp only"), "{r:?}");
    expect(&r, "kill", "EPERM");
    expect(&r, "kill_init", "EPERM");
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid), "the host process was killed");
}

/// Threat: see host processes (their pids, command lines, environments) to
/// attack them. Stopped by: the pid namespace and the fresh /proc: only
/// init, the command and its children exist; the test process's pid and
/// host pid 1 are not there.
#[test]
fn pid_namespace_hides_host_processes() {
    let victim = HostSleep::start();
    let s = scratch();
    let me = std::process::id();
    let r = py(
        &real(s.path()),
        None,
        &[],
        &format!(
            r#"
pids = sorted(int(x) for x in os.listdir("/proc") if x.isdigit())
p("pids", pids)
p("count_ok", len(pids) <= 4)
p("me_visible", os.path.exists("/proc/{me}"))
p("victim_visible", os.path.exists("/proc/{victim}"))
p("init", open("/proc/1/cmdline").read().split("\0")[0].endswith("zerobox"))
p("mypid", os.getpid())
"#,
            victim = victim.pid(),
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "count_ok", "True");
    expect(&r, "me_visible", "False");
    expect(&r, "victim_visible", "False");
    expect(&r, "init", "True");
    expect(&r, "mypid", "2");
    if common::have("ps") {
        let r = crate::util::sh(&real(s.path()), None, &[], "ps -e -o pid=,comm=");
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines.len() <= 4, "{r:?}");
        assert!(!r.stdout.contains("sleep"), "{r:?}");
    }
}

/// Spawn zerobox running `script` with stdout and stdin piped; returns the
/// child once the script printed "started".
fn spawn_until_started(
    script: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let s = scratch();
    let mut child = common::zerobox()
        .current_dir(real(s.path()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .args(["--", "sh", "-c", script])
        .spawn()
        .expect("spawn zerobox");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started");
    (child, out)
}

/// Threat: leave processes running after the sandboxed command exits
/// (background jobs, setsid, nohup, a double-forked daemon) to keep
/// working unsupervised. Stopped by: the pid namespace: when the command
/// exits, init exits and the kernel kills everything left in the namespace.
#[test]
fn no_process_survives_the_command() {
    let mark = format!("3011.{}", unique());
    let py3 = crate::util::python();
    let script = format!(
        "sleep {mark} & (setsid sleep {mark} &) ; nohup sleep {mark} >/dev/null 2>&1 & \
         {py3} -c 'import os,sys\nif os.fork(): sys.exit(0)\nos.setsid()\nif os.fork(): sys.exit(0)\nos.execvp(\"sleep\", [\"sleep\", \"{mark}\"])'; \
         sleep 0.3; echo started; read x; exit 0"
    );
    let (mut child, _out) = spawn_until_started(&script);
    // The primitive: the daemons run, and the host sees them.
    assert!(
        wait_until(Duration::from_secs(3), || host_procs_with(&mark).len() >= 4),
        "daemons not started: {:?}",
        host_procs_with(&mark)
    );
    drop(child.stdin.take()); // the script's `read` ends: the command exits
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    assert!(
        wait_until(Duration::from_secs(3), || host_procs_with(&mark).is_empty()),
        "processes survived the sandbox: {:?}",
        host_procs_with(&mark)
    );
}

/// Threat: keep processes running past the command's exit that go on
/// writing to the host while zerobox makes its post-run checks, or after
/// it has returned: here, recreating a guarded name (a repository's
/// missing `.git/objects/info/alternates`) as soon as it is quarantined,
/// so that one is left after the final check. zerobox does not wait for the sandbox's
/// PID 1 to finish exiting (the teardown of its namespaces), so this holds
/// only because PID 1 kills and reaps every other process before it
/// reports the command's exit. Stopped by: that kill and reap
/// (`end_all_then_report`).
#[test]
fn nothing_of_the_sandbox_writes_after_the_command_is_reported_done() {
    let s = scratch();
    let dir = real(s.path());
    let init = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&dir)
        .status()
        .expect("git init");
    assert!(init.success());
    let mark = format!("3013.{}", unique());
    // Three setsid survivors ignoring every signal they can, detached from
    // zerobox's pipes, each appending to `beat` and recreating the guarded
    // name as fast as they can (a bounded number of times, should one ever
    // outlive the sandbox); the command exits once that was made.
    let guarded = ".git/objects/info/alternates";
    let survivor = format!("n=0; while [ $n -lt 300000 ]; do echo x >> beat; [ -e {guarded} ] || echo /evil > {guarded}; n=$((n+1)); done");
    let script = format!(
        "for i in 1 2 3; do (trap '' HUP INT TERM; setsid sh -c '{survivor}' {mark} </dev/null >/dev/null 2>&1 &); done; \
         n=0; while [ ! -e {guarded} ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done; exit 0"
    );
    let r = common::zerobox()
        .current_dir(&dir)
        .args(["--allow-write", ".", "--", "sh", "-c", &script])
        .output()
        .expect("run zerobox");
    assert!(r.status.success(), "{r:?}");
    let beat = dir.join("beat");
    let at_return = std::fs::metadata(&beat).map(|m| m.len()).unwrap_or(0);
    // The primitive: the survivors ran, wrote to the host and made the
    // guarded name (quarantined by the watcher).
    assert!(at_return > 0, "the survivors never wrote: {r:?}");
    let quarantined = std::fs::read_dir(dir.join(".git/objects/info"))
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("alternates.zerobox-quarantine")
        });
    assert!(quarantined, "the survivors never made {guarded}: {r:?}");
    assert!(
        std::fs::symlink_metadata(dir.join(guarded)).is_err(),
        "a sandbox process recreated {guarded} after the final check"
    );
    assert!(
        host_procs_with(&mark).is_empty(),
        "sandbox processes still alive when zerobox returned: {:?}",
        host_procs_with(&mark)
    );
    std::thread::sleep(Duration::from_millis(300));
    let later = std::fs::metadata(&beat).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        at_return, later,
        "a sandbox process wrote to the host after zerobox returned"
    );
}

/// Threat: SIGKILL zerobox itself (it cannot forward that) and hope the
/// sandbox's processes live on orphaned. Stopped by: init's parent-death
/// signal (SIGKILL when zerobox dies) and the pid namespace dying with it.
#[test]
fn sigkill_of_zerobox_leaves_nothing_behind() {
    let mark = format!("3012.{}", unique());
    let script = format!("sleep {mark} & setsid sleep {mark} & echo started; wait");
    let (mut child, _out) = spawn_until_started(&script);
    assert!(
        wait_until(Duration::from_secs(3), || host_procs_with(&mark).len() >= 2),
        "sleeps not started"
    );
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(5), || host_procs_with(&mark).is_empty()),
        "processes survived SIGKILL of zerobox: {:?}",
        host_procs_with(&mark)
    );
}

/// `zerobox ARGS -- CMD…` (in the fallback when `fallback`), stdout piped:
/// read one line, close the pipe, and return the exit code, or None if
/// zerobox had not ended 10 s later (it was killed then).
fn exit_after_reader_closes(fallback: bool, cmd: &[&str]) -> Option<i32> {
    let s = scratch();
    let mut c = common::zerobox();
    c.current_dir(real(s.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .arg("--")
        .args(cmd);
    if fallback {
        c.env("ZEROBOX_SIMULATE_MISSING", "userns");
    }
    let mut child = c.spawn().expect("spawn zerobox");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    drop(out);
    let mut code = None;
    wait_until(Duration::from_secs(10), || match child.try_wait() {
        Ok(Some(st)) => {
            use std::os::unix::process::ExitStatusExt;
            code = Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            true
        }
        _ => false,
    });
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    code
}

/// Threat (robustness): the command must start with default signal
/// dispositions, not zerobox's. Rust's runtime ignores SIGPIPE, and an
/// ignored disposition survives execve: a writer to a closed pipe then
/// gets EPIPE instead of dying, so `zerobox -- sh -c 'while :; do echo x;
/// done' | head -1` never ends and `zerobox -- yes | head` exits 1, not 141.
/// Stopped by: the command process resets every signal (1..SIGRTMAX) to
/// SIG_DFL, except those zerobox's caller had ignored.
#[test]
fn command_dies_of_sigpipe_like_without_zerobox() {
    for fallback in [false, true] {
        let code = exit_after_reader_closes(fallback, &["sh", "-c", "while :; do echo x; done"]);
        assert_eq!(code, Some(141), "writer loop, fallback={fallback}");
        let code = exit_after_reader_closes(fallback, &["yes"]);
        assert_eq!(code, Some(141), "yes, fallback={fallback}");
    }
}

/// The signal dispositions the command starts with are exactly its
/// caller's: the same as the same shell line without zerobox (SIGPIPE not
/// ignored by default, SIGHUP ignored under `nohup`, here `trap '' HUP`,
/// whatever else the caller ignored), in both modes.
#[test]
fn command_gets_the_callers_signal_dispositions() {
    let s = scratch();
    let bin = common::bin();
    let sig_ign = |script: &str, fallback: bool| -> u64 {
        let mut c = Command::new("sh");
        c.current_dir(real(s.path())).args(["-c", script]).arg(&bin);
        if fallback {
            c.env("ZEROBOX_SIMULATE_MISSING", "userns");
        }
        let r = common::Run::from(c.output().unwrap());
        r.stdout
            .trim()
            .strip_prefix("SigIgn:")
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or_else(|| panic!("{script}: {r:?}"))
    };
    let bit = |sig: libc::c_int| 1u64 << (sig - 1);
    for (trap, set, clear) in [
        ("", 0, bit(libc::SIGPIPE) | bit(libc::SIGHUP)),
        ("trap '' HUP", bit(libc::SIGHUP), bit(libc::SIGPIPE)),
        (
            "trap '' PIPE USR1",
            bit(libc::SIGPIPE) | bit(libc::SIGUSR1),
            0,
        ),
    ] {
        let host = sig_ign(
            &format!("{trap}\nexec grep SigIgn /proc/self/status"),
            false,
        );
        assert_eq!((host & set, host & clear), (set, 0), "host, trap {trap:?}");
        for fallback in [false, true] {
            let inside = sig_ign(
                &format!("{trap}\nexec \"$0\" -- grep SigIgn /proc/self/status"),
                fallback,
            );
            assert_eq!(
                format!("{inside:016x}"),
                format!("{host:016x}"),
                "trap {trap:?}, fallback={fallback}"
            );
        }
    }
}

/// The command gets the open-file limit zerobox was started with (soft and
/// hard), while zerobox itself runs with its soft limit raised to the hard
/// one (the proxy holds two descriptors per connection).
#[test]
fn open_file_limit_is_the_callers_and_zerobox_raises_its_own() {
    let s = scratch();
    let bin = common::bin();
    for fallback in [false, true] {
        let script =
            "ulimit -Sn 200; exec \"$0\" -- sh -c 'ulimit -Sn; ulimit -Hn; echo started; read x; exit 0'";
        let mut c = Command::new("sh");
        c.current_dir(real(s.path()))
            .args(["-c", script])
            .arg(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if fallback {
            c.env("ZEROBOX_SIMULATE_MISSING", "userns");
        }
        let mut child = c.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 || line.trim() == "started" {
                break;
            }
            lines.push(line.trim().to_string());
        }
        // zerobox is the process sh exec'd into.
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        let hard = std::fs::read_to_string("/proc/self/limits")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
            .unwrap();
        assert_eq!(
            lines,
            ["200".to_string(), hard.clone()],
            "fallback={fallback}"
        );
        let own = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| l.split_whitespace().skip(3).take(2).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(
            own,
            [hard.as_str(), hard.as_str()],
            "zerobox's own, fallback={fallback}"
        );
    }
}

/// Like `spawn_until_started`, in the Landlock-only fallback, with the
/// private temp dir under `tmp` (zerobox's TMPDIR). The script's first
/// line is `$TMPDIR`, then "started".
fn spawn_fallback_until_started(
    script: &str,
    tmp: &std::path::Path,
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    let s = scratch();
    let mut child = common::zerobox()
        .current_dir(real(s.path()))
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .args(["--", "sh", "-c", &format!("echo \"$TMPDIR\"; {script}")])
        .spawn()
        .expect("spawn zerobox");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut tmpdir = String::new();
    out.read_line(&mut tmpdir).unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started", "tmpdir line: {tmpdir:?}");
    (child, out, tmpdir.trim().to_string())
}

/// The survivors' script: a background job, `setsid`, `nohup`, a
/// double-forked setsid daemon, each a `sleep MARK`.
fn daemons(mark: &str) -> String {
    let py3 = crate::util::python();
    format!(
        "sleep {mark} & (setsid sleep {mark} &) ; nohup sleep {mark} >/dev/null 2>&1 & \
         {py3} -c 'import os,sys\nif os.fork(): sys.exit(0)\nos.setsid()\nif os.fork(): sys.exit(0)\nos.execvp(\"sleep\", [\"sleep\", \"{mark}\"])'; \
         sleep 0.3; echo started"
    )
}

/// Threat: in the Landlock-only fallback there is no pid namespace, so
/// nothing used to end what the command left running: a `setsid` daemon
/// outlived zerobox (and kept reading the terminal at the next prompt).
/// Stopped by: zerobox and its reaper (the command's parent) are child
/// subreapers: every orphan comes back to them, and the reaper kills every
/// descendant when the command exits.
#[test]
fn fallback_no_process_survives_the_command() {
    let mark = format!("3013.{}", unique());
    let tmp = scratch();
    let (mut child, _out, tmpdir) =
        spawn_fallback_until_started(&format!("{}; read x; exit 0", daemons(&mark)), tmp.path());
    assert!(
        wait_until(Duration::from_secs(3), || host_procs_with(&mark).len() >= 4),
        "daemons not started: {:?}",
        host_procs_with(&mark)
    );
    drop(child.stdin.take());
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    assert!(
        wait_until(Duration::from_secs(3), || host_procs_with(&mark).is_empty()),
        "processes survived the fallback sandbox: {:?}",
        host_procs_with(&mark)
    );
    assert!(
        !std::path::Path::new(&tmpdir).exists(),
        "{tmpdir} left behind"
    );
}

/// Threat: SIGKILL zerobox in the fallback (it can clean nothing up then)
/// so its daemons live on and its private temp dir stays. Stopped by: the
/// reaper's parent-death signal: it kills every descendant and removes
/// the private temp dir.
#[test]
fn fallback_sigkill_of_zerobox_leaves_nothing_behind() {
    let mark = format!("3014.{}", unique());
    let tmp = scratch();
    let (mut child, _out, tmpdir) = spawn_fallback_until_started(
        &format!("{}; echo x > \"$TMPDIR/planted\"; wait", daemons(&mark)),
        tmp.path(),
    );
    assert!(
        wait_until(Duration::from_secs(3), || host_procs_with(&mark).len() >= 4),
        "daemons not started: {:?}",
        host_procs_with(&mark)
    );
    assert!(std::path::Path::new(&tmpdir).is_dir(), "{tmpdir}");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(5), || host_procs_with(&mark).is_empty()),
        "processes survived SIGKILL of zerobox: {:?}",
        host_procs_with(&mark)
    );
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&tmpdir)
            .exists()),
        "{tmpdir} left behind after SIGKILL"
    );
}

/// Threat: everything of a fallback run is SIGKILLed at once (`kill -9` of
/// its process group, the OOM killer): nobody is left to remove its private
/// temp dir. Stopped by: the next fallback run removes stale ones — only
/// directories named like zerobox's, owned by the user, whose zerobox pid
/// is dead; a symlink of that name is neither followed nor removed, and a
/// live run's directory stays.
#[test]
fn fallback_stale_temp_dirs_are_removed_on_the_next_start() {
    use std::os::unix::fs::symlink;
    let tmp = scratch();
    let base = real(tmp.path());
    let stale = base.join("zerobox-2147483647-00000000000000aa");
    std::fs::create_dir(&stale).unwrap();
    std::fs::create_dir(stale.join("sub")).unwrap();
    std::fs::write(stale.join("sub/f"), "x").unwrap();
    let target = base.join("not-zerobox");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "keep").unwrap();
    let link = base.join("zerobox-2147483646-00000000000000bb");
    symlink(&target, &link).unwrap();
    let live = base.join(format!("zerobox-{}-00000000000000cc", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    let other = base.join("zerobox-2147483645-00000000000000dd");
    std::fs::create_dir(&other).unwrap();
    let other_owned = crate::util::is_root()
        && Command::new("chown")
            .args(["nobody", other.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
    let s = scratch();
    let r = common::Run::from(
        common::zerobox()
            .current_dir(real(s.path()))
            .env("ZEROBOX_SIMULATE_MISSING", "userns")
            .env("TMPDIR", &base)
            .args(["--", "true"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!stale.exists(), "stale dir kept");
    assert!(std::fs::symlink_metadata(&link).is_ok(), "symlink removed");
    assert_eq!(
        std::fs::read_to_string(target.join("keep")).unwrap(),
        "keep"
    );
    assert!(live.is_dir(), "a live run's dir was removed");
    if other_owned {
        assert!(other.is_dir(), "another user's dir was removed");
    }
}
