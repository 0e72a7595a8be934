//! OpenClaw under its preset (`zerobox openclaw`), the way a person uses
//! it in a terminal: `openclaw chat` (its local TUI, the embedded agent,
//! no gateway) in tmux, from a fresh HOME with a user's own config naming
//! an Anthropic-compatible provider (a stand-in on 127.0.0.1, HTTPS with a
//! test CA, pinned with `--resolve`), to an answer with one `exec` tool
//! call, exit; then a second session in the same HOME. And the user's own
//! OpenClaw home (`~/.openclaw`: its state database with cron jobs, exec
//! approvals and paired devices, credentials, workspace hooks and plugins)
//! is never writable: sandboxed runs keep their own state in
//! `~/.openclaw-zerobox`.
//!
//! OpenClaw is installed by `.ci/run` (Node 24 under /opt/node24, a wrapper
//! on PATH); missing, the tests skip (and fail under `ZEROBOX_REQUIRE_ALL=1`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::agent::*;
use common::tui::{Start, Tui};
use common::{have, scratch, skip};

const REAL_KEY: &str = "sk-ant-test-openclaw-0123456789abcdefREAL";
const ANSWER: &str = "Hello from the OpenClaw stand-in";
/// Long enough for a debug zerobox plus OpenClaw's start on a busy machine.
const SCREEN: Duration = Duration::from_secs(120);

/// The shell command the stand-in asks OpenClaw's `exec` tool to run. It
/// runs in OpenClaw's workspace, so it changes to the project first.
fn tool(proj: &Path) -> String {
    format!(
        r#"cd '{}' && echo made > made-by-openclaw.txt; case "$ANTHROPIC_API_KEY" in ZEROBOX_SECRET_*) echo key=placeholder;; "") echo key=unset;; *) echo key=other;; esac; (echo pwned >> "$HOME/.bashrc") 2>/dev/null && echo bashrc=written || echo bashrc=denied"#,
        proj.display()
    )
}

/// The user's own config (written outside the sandbox, as `openclaw
/// onboard` or `openclaw config set` would): one Anthropic-compatible
/// provider at the stand-in, its key from the environment.
fn user_config(port: u16) -> String {
    serde_json::json!({
        "agents": {"defaults": {"model": {"primary": "standin/claude-standin"}}},
        "models": {"mode": "merge", "providers": {"standin": {
            "baseUrl": format!("https://api.anthropic.com:{port}"),
            "apiKey": "${ANTHROPIC_API_KEY}",
            "api": "anthropic-messages",
            "models": [{"id": "claude-standin", "name": "Stand-in", "reasoning": false,
                        "input": ["text"], "contextWindow": 200000, "maxTokens": 8192,
                        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}]
        }}}
    })
    .to_string()
}

/// `zerobox openclaw chat` in tmux, its provider at the stand-in on `port`.
fn session(home: &Path, proj: &Path, ca: &Path, port: u16) -> Tui {
    let mut argv = vec![common::bin().display().to_string()];
    argv.extend(standin_flags(
        "api.anthropic.com",
        port,
        "ANTHROPIC_API_KEY",
        ca,
    ));
    argv.extend(["openclaw".into(), "chat".into()]);
    Tui::start(&Start {
        argv: &argv,
        cwd: proj,
        env: &tui_env(home, ("ANTHROPIC_API_KEY", REAL_KEY)),
        cols: 120,
        rows: 45,
    })
}

/// The TUI is ready for a message.
const READY: &str = "local ready | idle";

/// Leave with `/exit`. On a loaded machine OpenClaw's command menu can
/// take the first Enter (it opens as `/exit` is typed), so a user presses
/// Enter again, then Ctrl+C twice; each gets a while to take effect.
fn exit(tui: &Tui) {
    tui.submit("/exit", SCREEN);
    let exited_within = |secs: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Some(code) = tui.exited() {
                return Some(code);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    };
    let code = exited_within(30)
        .or_else(|| {
            tui.keys(&["Enter"]);
            exited_within(30)
        })
        .or_else(|| {
            tui.keys(&["C-c"]);
            std::thread::sleep(Duration::from_millis(500));
            tui.keys(&["C-c"]);
            exited_within(60)
        });
    match code {
        Some(0) | Some(130) => {}
        other => panic!(
            "openclaw did not exit cleanly ({other:?}):\n{}",
            tui.screen()
        ),
    }
}

#[test]
fn openclaw_interactive_answer_with_a_tool_call_and_a_second_session() {
    if !installed(&OPENCLAW) {
        return;
    }
    for t in ["python3", "tmux", "git"] {
        if !have(t) {
            skip(&format!("the interactive openclaw test needs {t}"));
            return;
        }
    }
    let d = scratch();
    let (ca, cert, key) = common::test_pki(d.path(), "api.anthropic.com");
    let home = fresh_home(&OPENCLAW);
    let home_p = common::real(home.path());
    let proj = scratch();
    let proj_p = common::real(proj.path());
    let api = StandIn::start_with(
        d.path(),
        &cert,
        &key,
        ANSWER,
        &tool(&proj_p),
        &[("STANDIN_TOOL_NAME", "exec")],
    );
    let bashrc = "# the user's own rc file\n";
    std::fs::write(home_p.join(".bashrc"), bashrc).unwrap();
    std::fs::create_dir(home_p.join(".openclaw")).unwrap();
    std::fs::write(
        home_p.join(".openclaw/openclaw.json"),
        user_config(api.port),
    )
    .unwrap();
    let git = |args: &[&str]| git(&proj_p, &home_p, args);
    git(&["init", "-q"]);
    let openclaw_before = snapshot(&home_p.join(".openclaw"));

    // Session 1: no onboarding (the user's config names the provider):
    // straight to the TUI, one message, one exec call, the answer.
    let tui = session(&home_p, &proj_p, &ca, api.port);
    tui.wait_for(READY, SCREEN);
    tui.submit("say hello", SCREEN);
    tui.wait_for(ANSWER, SCREEN);
    tui.wait_for(READY, SCREEN);
    exit(&tui);
    let first = tui.screen();
    drop(tui);

    assert_tool_ran_inside(
        &api,
        (&proj_p, "made-by-openclaw.txt"),
        (&home_p, bashrc),
        "tool_result",
        &first,
    );

    // Session 2, same HOME: the state it kept (sessions, workspace) is
    // there, no setup is asked for, and it answers again.
    let state = home_p.join(".openclaw-zerobox");
    assert!(state.join("state/openclaw.sqlite").is_file(), "{first}");
    let tui = session(&home_p, &proj_p, &ca, api.port);
    let second = tui.wait_for(READY, SCREEN);
    assert!(
        second.contains("say hello"),
        "the session was not kept:\n{second}"
    );
    exit(&tui);
    drop(tui);

    // The stand-in got the real key, never a placeholder.
    let seen = api.requests();
    assert!(
        seen.iter().filter(|s| s.path == "/v1/messages").count() >= 2,
        "{:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    assert_real_key_only(&seen, "x-api-key", REAL_KEY);

    // Only what the sessions were meant to change: the project file,
    // the sandbox's own OpenClaw state, its snapshot staging dir
    // (~/.cache/openclaw), zerobox's data dir. The user's OpenClaw home is
    // exactly as it was.
    assert_eq!(git(&["status", "--porcelain"]), "?? made-by-openclaw.txt\n");
    assert_eq!(snapshot(&home_p.join(".openclaw")), openclaw_before);
    for entry in std::fs::read_dir(&home_p).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            [
                ".bashrc",
                ".openclaw",
                ".openclaw-zerobox",
                ".cache",
                ".local"
            ]
            .contains(&name.as_str()),
            "unexpected in HOME: {name}"
        );
    }
}

/// Run 1 (a shell in the openclaw preset, standing in for a prompt-injected
/// agent) tries to write what the user's own, unsandboxed OpenClaw (its
/// gateway, the next `openclaw chat`) would act on: the state database
/// (cron jobs, exec approvals, paired devices live there), credentials,
/// agent auth profiles, cron and approval files, workspace hooks and
/// plugins, managed hooks. The host's files must be unchanged; the
/// sandbox's own state dir is writable and is what OpenClaw is told to use.
#[test]
fn openclaw_users_own_state_is_never_writable() {
    let (home, proj) = (scratch(), scratch());
    let (home_p, proj_p) = (common::real(home.path()), common::real(proj.path()));
    let oc = home_p.join(".openclaw");
    for d in [
        "state",
        "workspace",
        "agents/main/agent",
        "credentials",
        "cron",
    ] {
        std::fs::create_dir_all(oc.join(d)).unwrap();
    }
    std::fs::write(oc.join("state/openclaw.sqlite"), "the user's db").unwrap();
    std::fs::write(oc.join("workspace/MEMORY.md"), "the user's memory").unwrap();
    let before = snapshot(&oc);
    const PLANTS: &[&str] = &[
        "state/openclaw.sqlite",
        "state/openclaw.sqlite-wal",
        "exec-approvals.json",
        "credentials/evil.json",
        "agents/main/agent/auth-profiles.json",
        "cron/jobs.json",
        "workspace/MEMORY.md",
        "workspace/hooks/evil/handler.js",
        "workspace/.openclaw/extensions/evil/index.js",
        "hooks/evil/handler.js",
        "extensions/evil/index.js",
    ];
    let mut script = String::new();
    for rel in PLANTS {
        let p = oc.join(rel);
        script.push_str(&format!(
            "mkdir -p '{d}' 2>/dev/null; echo planted >> '{p}' 2>/dev/null && echo 'WROTE {rel}'\n",
            d = p.parent().unwrap().display(),
            p = p.display()
        ));
    }
    script.push_str(
        "echo \"state=$OPENCLAW_STATE_DIR config=$OPENCLAW_CONFIG_PATH\"\n\
         echo ok > ~/.openclaw-zerobox/probe && echo SANDBOX-STATE-OK\n",
    );
    let mut cmd = clean(&common::bin(), &home_p, &proj_p);
    cmd.args(["--profile", "openclaw", "--", "sh", "-c", &script]);
    let r = run_timeout(cmd);
    assert!(r.stdout.contains("SANDBOX-STATE-OK"), "{r:?}");
    // zerobox expands a leading `~/` of an `env.set` value to the home.
    assert!(
        r.stdout.contains(&format!(
            "state={h}/.openclaw-zerobox config={h}/.openclaw/openclaw.json",
            h = home_p.display()
        )),
        "{r:?}"
    );
    let wrote: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("WROTE"))
        .collect();
    assert!(wrote.is_empty(), "{wrote:?}\n{r:?}");
    // Nothing new or changed on the host (a name created inside would be
    // moved aside and named; none may be).
    assert_eq!(snapshot(&oc), before, "{r:?}");
}
