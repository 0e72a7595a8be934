//! The end-of-run "zerobox: blocked …" lines, with the real binary and
//! real clients: each kind of refusal gets the hint that fixes it (and
//! never a flag zerobox would reject), and hosts a preset names as optional
//! (`network.quiet`) are refused without a line, still logged, and still
//! reachable when allowed (an allow wins over quiet). Everything talks to
//! 127.0.0.1 only; the name that cannot resolve is looked up inside a
//! network namespace the test makes, where no resolver is reachable.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{scratch, zerobox, Run};

/// A loopback HTTP server answering `ok` (python3's http.server).
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> Server {
    let py = r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"ok\n")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", py])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Server {
        port: line.trim().parse().expect("server port"),
        child,
    }
}

fn run(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = zerobox();
    cmd.current_dir(cwd).args(["--allow-weak-net"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

fn blocked_lines(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| l.starts_with("zerobox: blocked"))
        .collect()
}

/// Not allowed: the hint is the `--allow-net` that allows it, and that
/// flag is accepted.
#[test]
fn not_allowed_suggests_the_allow_flag() {
    let d = scratch();
    let r = run(
        d.path(),
        &[],
        &[
            "--allow-net=ok.test",
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "http://evil.test:8081/",
        ],
    );
    let lines = blocked_lines(&r);
    assert_eq!(
        lines,
        ["zerobox: blocked 1 connection: evil.test:8081 (1) — allow with --allow-net=evil.test:8081"],
        "{r:?}"
    );
    // The suggested flag is valid (explain accepts it).
    let e = run(
        d.path(),
        &[],
        &["explain", "--allow-net=evil.test:8081", "--", "true"],
    );
    assert_eq!(e.code, 0, "{e:?}");
}

/// Denied by a rule: allowing it would not help; the hint says a deny
/// rule wins and where to look.
#[test]
fn denied_by_rule_names_the_rule() {
    let d = scratch();
    let r = run(
        d.path(),
        &[],
        &[
            "--allow-net=bad.test",
            "--deny-net=bad.test",
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "http://bad.test/",
        ],
    );
    let lines = blocked_lines(&r);
    assert_eq!(lines.len(), 1, "{r:?}");
    assert!(
        lines[0].starts_with("zerobox: blocked 1 connection: bad.test (1) — denied by a rule"),
        "{r:?}"
    );
    assert!(!lines[0].contains("--allow-net"), "{r:?}");
}

/// A name or literal that is a local address: the hint says so and names
/// the way to reach it on purpose (a literal: the exact address flag).
#[test]
fn local_address_says_local() {
    let d = scratch();
    let s = server();
    let url = format!("http://127.0.0.1:{}/", s.port);
    let r = run(
        d.path(),
        &[],
        &[
            "--allow-net",
            "--",
            "sh",
            "-c",
            &format!(
                "curl -s -o /dev/null {url}; curl -s -o /dev/null http://localhost:{}/",
                s.port
            ),
        ],
    );
    let lines = blocked_lines(&r);
    assert_eq!(lines.len(), 1, "{r:?}");
    let l = lines[0];
    assert!(l.contains("local or private address (loopback)"), "{r:?}");
    assert!(
        l.contains(&format!("127.0.0.1:{} (1)", s.port))
            && l.contains(&format!("localhost:{} (1)", s.port)),
        "{r:?}"
    );
    // Whichever entry leads, the fix it names is a valid flag.
    let fix = if l.contains("--allow-net=127.0.0.1") {
        format!("--allow-net=127.0.0.1:{}", s.port)
    } else {
        format!("--resolve localhost:{}:ADDR", s.port)
    };
    assert!(l.contains(&fix), "{r:?}");
    // Following the literal's hint reaches the server.
    let ok = run(
        d.path(),
        &[],
        &[
            &format!("--allow-net=127.0.0.1:{}", s.port),
            "--",
            "curl",
            "-s",
            &url,
        ],
    );
    assert_eq!(ok.stdout, "ok\n", "{ok:?}");
    assert!(blocked_lines(&ok).is_empty(), "{ok:?}");
}

/// An invalid request (port 0, a host the grammar rejects): nothing to
/// allow, and no `--allow-net=…` suggestion at all.
#[test]
fn invalid_requests_get_no_allow_flag() {
    let d = scratch();
    let py = r#"
import os, socket
h, p = os.environ["HTTP_PROXY"].rsplit("/", 1)[1].rsplit(":", 1)
for target in ("evil.test:0", "bad_host!.test:443", ",host:0"):
    s = socket.create_connection((h, int(p)))
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    print(s.recv(200).split(b"\r\n")[0].decode())
    s.close()
"#;
    let r = run(
        d.path(),
        &[],
        &["--allow-net=ok.test", "--", "python3", "-c", py],
    );
    assert_eq!(r.stdout.matches("403").count(), 3, "{r:?}");
    assert!(!r.stderr.contains("--allow-net="), "{r:?}");
    let lines = blocked_lines(&r);
    assert_eq!(lines.len(), 1, "{r:?}");
    assert!(
        lines[0].starts_with("zerobox: blocked 3 connections: "),
        "{r:?}"
    );
    assert!(lines[0].ends_with("there is nothing to allow"), "{r:?}");
}

/// A name that does not resolve (allowed, no resolver reachable): the hint
/// is about the name, not `--allow-net`. Run in a network namespace of its
/// own so the lookup reaches no real resolver.
#[test]
fn resolve_failure_says_it_did_not_resolve() {
    if !common::have("unshare") {
        common::skip("unshare(1) is not installed");
        return;
    }
    if !common::have("ip") {
        common::skip("ip(8) is not installed");
        return;
    }
    let probe = Command::new("unshare")
        .args(["-rn", "ip", "link", "set", "lo", "up"])
        .status()
        .is_ok_and(|s| s.success());
    if !probe {
        common::skip("cannot make a network namespace (unshare -rn)");
        return;
    }
    let d = scratch();
    // The proxy needs loopback up in the namespace.
    let out = Command::new("unshare")
        .args(["-rn", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(common::bin())
        .args([
            "--allow-weak-net",
            "--allow-net=nx.test",
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "http://nx.test/",
        ])
        .current_dir(d.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = Run::from(out);
    let lines = blocked_lines(&r);
    assert_eq!(lines.len(), 1, "{r:?}");
    assert!(
        lines[0].contains("nx.test (1) — allowed, but did not resolve"),
        "{r:?}"
    );
    assert!(lines[0].contains("--resolve nx.test:80:ADDR"), "{r:?}");
    assert!(!lines[0].contains("--allow-net"), "{r:?}");
}

/// `network.quiet` (from a user override of a building block used with
/// `--profile`): a quiet host is refused without a summary line but logged
/// with `"quiet": true`; a loud host is still reported; a quiet host that is
/// allowed is reached (an allow wins); quiet never allows anything.
#[test]
fn quiet_hosts_are_refused_quietly_and_allow_wins() {
    let d = scratch();
    let config = d.path().join("config");
    let overrides = config.join("zerobox/overrides");
    std::fs::create_dir_all(&overrides).unwrap();
    let s = server();
    let port = s.port.to_string();
    std::fs::write(
        overrides.join("net-github.yaml"),
        format!("network:\n  quiet: [telemetry.test, '*.updates.test', 'reached.test:{port}']\n"),
    )
    .unwrap();
    let log = d.path().join("logs/net.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let proj = d.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let script = format!(
        "curl -s -o /dev/null http://telemetry.test/; \
         curl -s -o /dev/null https://a.updates.test/; \
         curl -s -o /dev/null http://loud.test/; \
         curl -s http://reached.test:{port}/"
    );
    let config_s = config.display().to_string();
    let r = run(
        &proj,
        &[("XDG_CONFIG_HOME", &config_s)],
        &[
            "--profile",
            "net-github",
            &format!("--allow-net=reached.test:{port}"),
            "--resolve",
            &format!("reached.test:{port}:127.0.0.1"),
            "--net-log",
            log.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    assert_eq!(r.stdout, "ok\n", "the allowed quiet host is reached: {r:?}");
    assert_eq!(
        blocked_lines(&r),
        ["zerobox: blocked 1 connection: loud.test (1) — allow with --allow-net=loud.test"],
        "{r:?}"
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rec = |host: &str| {
        records
            .iter()
            .find(|r| r["host"] == host)
            .unwrap_or_else(|| panic!("no record for {host}: {records:?}"))
    };
    for host in ["telemetry.test", "a.updates.test"] {
        assert_eq!(rec(host)["decision"], "deny", "{host}");
        assert_eq!(rec(host)["quiet"], true, "{host}");
    }
    assert_eq!(rec("loud.test")["decision"], "deny");
    assert!(rec("loud.test").get("quiet").is_none());
    assert_eq!(rec("reached.test")["decision"], "allow");
    assert!(rec("reached.test").get("quiet").is_none());

    // explain shows the quiet list; it is not an allow.
    let e = run(
        &proj,
        &[("XDG_CONFIG_HOME", &config_s)],
        &["explain", "--json", "--profile", "net-github", "--", "true"],
    );
    assert_eq!(e.code, 0, "{e:?}");
    let v: serde_json::Value = serde_json::from_str(&e.stdout).unwrap();
    let net = &v["policy"]["network"];
    assert!(
        net["quiet"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == "telemetry.test"),
        "{net}"
    );
    assert!(
        !net["allow"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "telemetry.test"),
        "{net}"
    );
}

/// Every bundled agent preset has a quiet list disjoint from its allow
/// list (as resolved, `explain --json`), and names in its notes the agent
/// version its hosts were checked against, which docs/presets/hosts.md
/// records.
#[test]
fn agent_presets_name_their_survey() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let survey = std::fs::read_to_string(repo.join("docs/presets/hosts.md")).unwrap();
    for agent in ["claude", "codex", "gemini", "opencode", "openclaw"] {
        let yaml = std::fs::read_to_string(repo.join(format!("presets/{agent}.yaml"))).unwrap();
        let checked = yaml
            .lines()
            .find_map(|l| l.split_once("Hosts checked against ").map(|(_, v)| v))
            .unwrap_or_else(|| panic!("{agent}: no \"Hosts checked against\" in notes"));
        // "Claude Code 2.1.197 (docs/…": the name and version as surveyed.
        let version = checked
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("{agent}: no version in {checked:?}"));
        assert!(
            survey.contains(version),
            "{agent} {version} is not in docs/presets/hosts.md"
        );
        let d = scratch();
        let e = run(
            d.path(),
            &[("HOME", d.path().to_str().unwrap())],
            &["explain", "--json", agent],
        );
        assert_eq!(e.code, 0, "{agent}: {e:?}");
        let v: serde_json::Value = serde_json::from_str(&e.stdout).unwrap();
        let list = |k: &str| -> Vec<String> {
            v["policy"]["network"][k]
                .as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let (allow, quiet) = (list("allow"), list("quiet"));
        assert!(!quiet.is_empty(), "{agent}: no quiet hosts");
        for q in &quiet {
            assert!(!allow.contains(q), "{agent}: {q} is both allowed and quiet");
        }
    }
}

/// The survey as a test: Gemini CLI started interactively under its preset
/// (nothing reachable) tries its usage statistics and update check at
/// start, both quiet in the preset: they are logged `"quiet": true`, and
/// after `/quit` no "zerobox: blocked" line is printed.
#[test]
fn gemini_start_refuses_its_optional_hosts_quietly() {
    use common::agent::{fresh_home, installed, GEMINI};
    use common::tui::{Start, Tui};
    use std::time::{Duration, Instant};
    if !installed(&GEMINI) {
        return;
    }
    if !common::have("tmux") {
        common::skip("tmux is not installed");
        return;
    }
    let home = fresh_home(&GEMINI);
    let proj = scratch();
    let logs = scratch();
    let log = logs.path().join("net.jsonl");
    // API-key auth chosen and the folder trusted beforehand, as after the
    // first-run screens (which the gemini tests drive): the prompt comes up.
    let gem = home.path().join(".gemini");
    std::fs::create_dir_all(&gem).unwrap();
    std::fs::write(
        gem.join("settings.json"),
        r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
    )
    .unwrap();
    let real_proj = std::fs::canonicalize(proj.path()).unwrap();
    std::fs::write(
        gem.join("trustedFolders.json"),
        format!("{{{:?}:\"TRUST_FOLDER\"}}", real_proj.display().to_string()),
    )
    .unwrap();
    let argv: Vec<String> = vec![
        common::bin().display().to_string(),
        "--net-log".into(),
        log.display().to_string(),
        "gemini".into(),
    ];
    let env: Vec<(String, String)> = [
        ("HOME", home.path().display().to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
        ("LANG", "C.UTF-8".to_string()),
        ("TERM", "xterm-256color".to_string()),
        (
            "GEMINI_API_KEY",
            "AIzaTestQuiet000000000000000000".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let tui = Tui::start(&Start {
        argv: &argv,
        cwd: &real_proj,
        env: &env,
        cols: 120,
        rows: 40,
    });
    tui.wait_for("Type your message", Duration::from_secs(90));
    // Both start-up calls have been tried (and refused).
    let tried = |host: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!("\"host\":\"{host}\""))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(tried("play.googleapis.com") && tried("registry.npmjs.org")) {
        assert!(
            Instant::now() < deadline,
            "gemini's start-up calls were not seen: {}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            tui.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    tui.type_text("/quit");
    std::thread::sleep(Duration::from_millis(300));
    tui.keys(&["Enter"]);
    tui.wait_exit(Duration::from_secs(30));
    let screen = tui.screen();
    assert!(!screen.contains("zerobox: blocked"), "{screen}");
    let text = std::fs::read_to_string(&log).unwrap();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["decision"] == "deny" && v["reason"] == "not-allowed" {
            assert_eq!(v["quiet"], true, "a loud refusal at start: {l}");
        }
    }
}
