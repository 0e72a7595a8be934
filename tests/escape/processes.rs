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
        eprintln!("SKIP (part): no strace");
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
