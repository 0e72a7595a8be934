//! Resource exhaustion: filling the private tmpfs mounts (whose pages
//! belong to no process, so the OOM killer would pick host processes) and
//! fork loops. Bounded attempts only: never a real fork bomb.

use crate::common::{self, real, scratch};
use crate::util::{expect, is_root, py, py_fallback};

/// Threat: fill `/tmp` or `/dev/shm` (each was a tmpfs of half the RAM)
/// until the host runs out of memory; or exhaust inodes. Stopped by: each
/// private tmpfs has `size=` and `nr_inodes=` (`--tmp-size`, default 1 GiB
/// and one inode per 8 KiB).
#[test]
fn private_tmpfs_mounts_are_bounded() {
    let cwd = scratch();
    let d = real(cwd.path());
    let r = py(
        &d,
        None,
        &[],
        r#"
for m in ["/tmp", "/dev/shm"]:
    st = os.statvfs(m)
    p(m + "_bytes", st.f_blocks * st.f_frsize)
    p(m + "_inodes", st.f_files)
"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    for m in ["/tmp", "/dev/shm"] {
        expect(&r, &format!("{m}_bytes"), &(1u64 << 30).to_string());
        expect(&r, &format!("{m}_inodes"), "131072");
    }
    let r = py(
        &d,
        None,
        &["--tmp-size=1m"],
        r#"
for m in ["/tmp", "/dev/shm"]:
    def fill():
        with open(m + "/big", "wb") as f:
            for _ in range(64):
                f.write(b"\0" * 65536)
                f.flush()
    t(m + "_fill", fill)
    os.unlink(m + "/big")
    def files():
        for i in range(2000):
            open(f"{m}/f{i}", "w").close()
    t(m + "_files", files)
"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    for m in ["/tmp", "/dev/shm"] {
        expect(&r, &format!("{m}_fill"), "ENOSPC");
        expect(&r, &format!("{m}_files"), "ENOSPC");
    }
}

/// A size that is not a plain size is a usage error naming the value: it
/// must never reach the mount options (`1g,mode=777`).
#[test]
fn bad_tmp_size_is_refused() {
    let cwd = scratch();
    for bad in ["0", "1g,mode=777", "lots", "-5m"] {
        let r = common::run_in(cwd.path(), &[&format!("--tmp-size={bad}"), "--", "true"]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(r.stderr.contains(bad), "{bad}: {r:?}");
    }
    let r = common::run_in(cwd.path(), &["--pids=0", "--", "true"]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// 50 forks, each child sleeping; prints how many forks worked and failed.
const FORKS: &str = r#"
import time
kids, fails, err = [], 0, "none"
for i in range(50):
    try:
        pid = os.fork()
    except OSError as e:
        fails += 1
        err = en(e.errno)
        continue
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.kill(k, 9)
    os.waitpid(k, 0)
p("forked", len(kids))
p("failed", fails)
p("err", err)
"#;

fn counts(r: &common::Run) -> (usize, usize) {
    let get = |k: &str| -> usize {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}: {r:?}"))
    };
    (get("forked"), get("failed"))
}

/// Threat: a fork loop exhausts the host's process table. Stopped by: the
/// process limit (`--pids`): a cgroup's pids.max where one is available,
/// and RLIMIT_NPROC (for a non-root user: counted in the sandbox's own
/// user namespace; in the fallback, the user's count plus the limit).
/// Root is exempt from RLIMIT_NPROC: without a cgroup, explain says the
/// limit is not enforced (and this test checks that it says so).
#[test]
fn fork_loop_hits_the_process_limit() {
    let cwd = scratch();
    let d = real(cwd.path());
    let explain = common::run_in(&d, &["--pids=20", "--dry-run", "--", "true"]);
    let cgroup = explain.stdout.contains("cgroup pids.max");
    if is_root() && !cgroup {
        assert!(
            explain
                .stdout
                .contains("RLIMIT_NPROC not enforced (root is exempt)"),
            "{explain:?}"
        );
        return;
    }
    let r = py(&d, None, &["--pids=20"], FORKS);
    assert_eq!(r.code, 0, "{r:?}");
    let (forked, failed) = counts(&r);
    assert!(
        forked <= 20 && failed >= 30,
        "forked {forked}, failed {failed}: {r:?}"
    );
    expect(&r, "err", "EAGAIN");
    // Without the low limit the same loop runs through (the primitive).
    let r = py(&d, None, &[], FORKS);
    assert_eq!(counts(&r), (50, 0), "{r:?}");
    // The fallback: the user's other processes share the headroom, so
    // only "bounded" is asserted.
    if !is_root() {
        let r = py_fallback(&d, &["--pids=20"], FORKS);
        let (forked, failed) = counts(&r);
        assert!(
            forked < 50 && failed > 0,
            "fallback: forked {forked}, failed {failed}: {r:?}"
        );
    }
}
