//! Protected paths that a host program replaces while the command runs.
//! A rename over a mount point from another mount namespace detaches the
//! mount; in namespace mode a denied path inside a writable directory is
//! held by nothing else (Landlock grants the directory whole). zerobox
//! stops the run the moment it sees one (exit 122): see
//! `protect::replaced` and docs/threat-model.md. The git-config cases
//! (content undone after the stop) are in tests/git_protect.rs.

use crate::common::{finish, real, scratch, wait_for_file, zerobox, Run};
use crate::util::python;

/// A read-denied file inside the writable project, saved on the host
/// mid-run (an editor's or a tool's atomic save: a new file renamed over
/// it): the mask over it is detached and the new file would be readable
/// and writable for the rest of the run. The command polls it; it is
/// stopped at once and the file named as exposed.
#[test]
fn a_read_denied_file_replaced_on_the_host_stops_the_run() {
    let dir = scratch();
    let d = real(dir.path());
    std::fs::write(d.join("secret.env"), "OLD\n").unwrap();
    let script = r#"
import time
open('started', 'w').close()
end = time.time() + 20
while time.time() < end:
    try:
        open('secret.env').read()
    except OSError:
        pass
print('not stopped')
"#;
    let child = zerobox()
        .current_dir(&d)
        .env_clear()
        .env("HOME", &d)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["--allow-write=.", "--deny-read=secret.env", "--"])
        .args([python().as_str(), "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn zerobox");
    assert!(
        wait_for_file(&d.join("started")),
        "the command never started"
    );
    std::fs::write(d.join("secret.env.new"), "NEW\n").unwrap();
    std::fs::rename(d.join("secret.env.new"), d.join("secret.env")).unwrap();
    let r: Run = finish(child);
    assert_eq!(r.code, 122, "{r:?}");
    let path = d.join("secret.env");
    assert!(
        r.stderr.contains(&format!(
            "zerobox: error: {} was replaced on the host during the run",
            path.display()
        )) && r.stderr.contains("stopped the command, exit 122"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("treat a secret in it as exposed"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("not stopped"), "{r:?}");
}
