//! Attacks on `protect::agent_state`: the after-run revert of agent
//! config files that stay writable inside (Codex, Claude Code, Gemini CLI,
//! opencode).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{real, scratch};
use crate::util::{wait_until, Home};

/// `zerobox --allow-write=. --allow-write=~/.codex -- sh -c SCRIPT` in
/// `cwd` with `HOME=home`, in the background.
fn spawn(cwd: &Path, home: &Path, script: &str) -> Child {
    crate::common::zerobox()
        .current_dir(cwd)
        .env("HOME", home)
        .args(["--allow-write=.", "--allow-write=~/.codex"])
        .args(["--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zerobox")
}

fn wait_for(p: &Path) {
    assert!(
        wait_until(Duration::from_secs(20), || p.exists()),
        "{} never appeared",
        p.display()
    );
}

/// Threat (multi-run, concurrent): two sandboxed runs in the same HOME.
/// Run M plants an MCP server in `~/.codex/config.toml` and waits; run V
/// starts meanwhile, so its pre-run snapshot holds M's plant. M ends and
/// is reverted; then V ends and "reverts" the file to its snapshot: the
/// plant is back, and the next plain `codex` starts it unsandboxed.
/// Stopped by: a run that starts while another run in the same HOME is
/// live takes no snapshot of the agents' state files: they are read-only
/// for it (said on stderr), so it never writes a value back.
#[test]
fn a_concurrent_run_cannot_replant_through_the_other_runs_snapshot() {
    let home = Home::new();
    let h = home.path();
    let s = scratch();
    let d = real(s.path());
    let config = h.join(".codex/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "model = \"o3\"\n").unwrap();
    let m = spawn(
        &d,
        &h,
        "printf '[mcp_servers.evil]\\ncommand = \"sh\"\\n' >> ~/.codex/config.toml; \
         touch planted; while [ ! -e m-go ]; do sleep 0.1; done",
    );
    wait_for(&d.join("planted"));
    let v = spawn(
        &d,
        &h,
        "touch v-started; echo 'model = \"x\"' > ~/.codex/config.toml 2>/dev/null; \
         while [ ! -e v-go ]; do sleep 0.1; done",
    );
    wait_for(&d.join("v-started"));
    std::fs::write(d.join("m-go"), "").unwrap();
    let out_m = m.wait_with_output().unwrap();
    let after_m = std::fs::read_to_string(&config).unwrap();
    assert!(
        !after_m.contains("evil"),
        "M not reverted: {after_m} {out_m:?}"
    );
    std::fs::write(d.join("v-go"), "").unwrap();
    let out_v = v.wait_with_output().unwrap();
    let after_v = std::fs::read_to_string(&config).unwrap();
    assert!(
        !after_v.contains("evil"),
        "the second run put the first run's plant back: {after_v}\n{out_v:?}"
    );
    assert_eq!(after_v, "model = \"o3\"\n", "{out_v:?}");
    let said = String::from_utf8_lossy(&out_v.stderr);
    assert!(said.contains("another zerobox run"), "not said: {said}");
    home.assert_host_intact();
}
