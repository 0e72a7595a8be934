//! `zerobox --build-profile FILE -- CMD` and `zerobox learn --out FILE --
//! CMD` end to end: a real terminal (tmux) answering the questions, the
//! profile file checked, then `--profile FILE` enforcing exactly what was
//! answered, with no question.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tui::{Start, Tui};
use common::{have, real, scratch, skip, Run};

const T: Duration = Duration::from_secs(20);

/// A scratch tree: a fresh HOME (its own trust store), a working
/// directory, and data outside both that the default-deny view hides.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    work: PathBuf,
}

fn tree() -> Tree {
    let dir = scratch();
    let root = real(dir.path());
    let home = root.join("home");
    let work = root.join("work");
    for d in [&home, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    let put = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put("files/allowed.txt", "ALLOWED-CONTENT\n");
    put("files/sibling.txt", "SIBLING-CONTENT\n");
    put("conf/dir/inner.txt", "INNER-CONTENT\n");
    put("conf/dir/other.txt", "OTHER-CONTENT\n");
    put("private/secret.txt", "SECRET-CONTENT\n");
    Tree {
        _dir: dir,
        root,
        home,
        work,
    }
}

impl Tree {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.home.display().to_string()),
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("TERM".into(), "xterm-256color".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ]
    }

    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    /// A non-interactive zerobox run (no controlling terminal at all:
    /// `setsid`), in `work`, with this tree's HOME.
    fn run(&self, args: &[&str]) -> Run {
        // `setsid` makes it a session leader without a terminal.
        let mut s = std::process::Command::new("setsid");
        s.arg("-w").arg(common::bin()).args(args);
        s.env_clear();
        for (k, v) in self.env() {
            s.env(k, v);
        }
        s.current_dir(&self.work);
        s.stdin(std::process::Stdio::null());
        Run::from(s.output().expect("run setsid zerobox"))
    }

    /// `zerobox ARGS` in a real terminal, its exit status printed after it
    /// (`ZB-EXIT=N`, read by [`exit_code`]: the status is zerobox's own,
    /// independent of when tmux notices the pane ended).
    fn tui(&self, args: &[&str]) -> Tui {
        let mut argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "\"$0\" \"$@\"; echo \"ZB-EXIT=$?\"".to_string(),
            common::bin().display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        Tui::start(&Start {
            argv: &argv,
            cwd: &self.work,
            env: &self.env(),
            cols: 200,
            rows: 40,
        })
    }
}

/// zerobox's exit status in `tui` (see [`Tree::tui`]).
#[track_caller]
fn exit_code(tui: &Tui) -> i32 {
    let screen = tui.wait_for("ZB-EXIT=", T);
    screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("ZB-EXIT="))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("no exit status in\n{screen}"))
}

fn need(tools: &[&str]) -> bool {
    for t in tools {
        if !have(t) {
            skip(&format!("{t} is not installed"));
            return false;
        }
    }
    true
}

/// Wait for the question naming `what`, check it is one line with the
/// keys, answer `key`.
fn answer(tui: &Tui, what: &str, key: &str) -> String {
    let screen = tui.wait_until(&format!("a question about {what}"), T, |s| {
        s.lines()
            .any(|l| l.contains(what) && l.contains("[x] exit") && !l.contains('→'))
    });
    let line = screen
        .lines()
        .find(|l| l.contains(what) && l.contains("[x] exit") && !l.contains('→'))
        .unwrap_or_default()
        .to_string();
    tui.keys(&[key]);
    line
}

#[test]
fn three_reads_answered_a_d_n_make_a_profile_that_is_enforced_without_questions() {
    if !need(&["tmux", "setsid"]) {
        return;
    }
    let t = tree();
    let file = t.root.join("agent.yaml");
    let script = format!(
        "cat {} {} {}; echo EXIT=$?",
        t.p("files/allowed.txt"),
        t.p("conf/dir/inner.txt"),
        t.p("private/secret.txt")
    );
    let tui = t.tui(&[
        "--build-profile",
        &file.display().to_string(),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let q = answer(&tui, &t.p("files/allowed.txt"), "a");
    assert!(
        q.starts_with("zerobox: sh wants to read ")
            && q.contains("[a] allow this file")
            && q.contains(&format!("[d] allow {}/", t.p("files")))
            && q.contains("[n] deny"),
        "{q}"
    );
    answer(&tui, &t.p("conf/dir/inner.txt"), "d");
    answer(&tui, &t.p("private/secret.txt"), "n");
    let code = exit_code(&tui);
    let screen = tui.screen();
    assert!(screen.contains("ALLOWED-CONTENT"), "{screen}");
    assert!(screen.contains("INNER-CONTENT"), "{screen}");
    assert!(!screen.contains("SECRET-CONTENT"), "{screen}");
    assert!(screen.contains("Permission denied"), "{screen}");
    assert_eq!(code, 0, "{screen}");

    // The file: a profile with one commented entry per answer.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("read_default: deny"), "{text}");
    let line_of = |v: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("- \"{v}\"")))
            .unwrap_or_else(|| panic!("no entry {v} in\n{text}"))
            .to_string()
    };
    assert!(line_of(&t.p("files/allowed.txt")).contains("# allowed "));
    assert!(line_of(&t.p("conf/dir")).contains("# allowed "));
    assert!(line_of(&t.p("private/secret.txt")).contains("# denied "));
    let deny_at = text.find("    deny:").unwrap();
    assert!(
        text.find(&t.p("private/secret.txt")).unwrap() > deny_at,
        "{text}"
    );

    // Enforced with no question (no terminal at all) and nothing else.
    let f = file.display().to_string();
    let check = |rel: &str| t.run(&["--profile", &f, "--", "cat", &t.p(rel)]);
    for ok in [
        "files/allowed.txt",
        "conf/dir/inner.txt",
        "conf/dir/other.txt",
    ] {
        let r = check(ok);
        assert_eq!(r.code, 0, "{ok}: {r:?}");
        assert!(!r.stderr.contains("wants to"), "{r:?}");
    }
    for denied in ["files/sibling.txt", "private/secret.txt"] {
        let r = check(denied);
        assert_ne!(r.code, 0, "{denied} must not be readable: {r:?}");
        assert!(!r.stdout.contains("CONTENT"), "{r:?}");
    }
    // The home is not readable either (read_default: deny), the system is.
    std::fs::write(t.home.join("note"), "HOME-NOTE").unwrap();
    let r = t.run(&[
        "--profile",
        &f,
        "--",
        "sh",
        "-c",
        &format!(
            "cat {}/note; head -c 4 /usr/bin/env | od -c | head -1",
            t.home.display()
        ),
    ]);
    assert!(!r.stdout.contains("HOME-NOTE"), "{r:?}");
    assert!(r.stdout.contains("E   L   F"), "{r:?}");

    // Changed by anything else: refused until trusted again.
    let mut changed = text.clone();
    changed.push_str("# edited\n");
    std::fs::write(&file, changed).unwrap();
    let r = check("files/allowed.txt");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("trust"), "{r:?}");
}

#[test]
fn rerunning_extends_the_profile_and_x_stops_with_130() {
    if !need(&["tmux", "setsid"]) {
        return;
    }
    let t = tree();
    let file = t.root.join("p.yaml");
    let f = file.display().to_string();
    let tui = t.tui(&[
        "--build-profile",
        &f,
        "--",
        "cat",
        &t.p("files/allowed.txt"),
    ]);
    answer(&tui, &t.p("files/allowed.txt"), "a");
    assert_eq!(exit_code(&tui), 0, "{}", tui.screen());
    drop(tui);
    // Second run: the allowed file is not asked again; the new one is,
    // and [x] stops the command (130) with the answers kept.
    let script = format!(
        "cat {}; cat {}; echo NOT-REACHED",
        t.p("files/allowed.txt"),
        t.p("files/sibling.txt")
    );
    let tui = t.tui(&["--build-profile", &f, "--", "sh", "-c", &script]);
    answer(&tui, &t.p("files/sibling.txt"), "x");
    let code = exit_code(&tui);
    let screen = tui.screen();
    assert_eq!(code, 130, "{screen}");
    assert!(screen.contains("ALLOWED-CONTENT"), "{screen}");
    assert!(!screen.contains("NOT-REACHED"), "{screen}");
    assert!(screen.contains("stopped at your request"), "{screen}");
    assert_eq!(
        screen
            .matches(&format!("read {}", t.p("files/allowed.txt")))
            .count(),
        0,
        "asked again: {screen}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&t.p("files/allowed.txt")), "{text}");
    assert!(!text.contains(&t.p("files/sibling.txt")), "{text}");
    // Still trusted (zerobox wrote it).
    let r = t.run(&["--profile", &f, "--", "cat", &t.p("files/allowed.txt")]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn without_a_terminal_build_profile_refuses_and_points_at_learn() {
    if !need(&["setsid"]) {
        return;
    }
    let t = tree();
    let f = t.root.join("p.yaml").display().to_string();
    let r = t.run(&["--build-profile", &f, "--", "true"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("zerobox learn"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(!Path::new(&f).exists());
}

/// A loopback HTTP server answering every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn one_host_allowed_one_denied_then_enforced() {
    if !need(&["tmux", "setsid", "curl"]) {
        return;
    }
    let t = tree();
    let good = http_server("GOOD-HOST");
    let bad = http_server("BAD-HOST");
    let f = t.root.join("net.yaml").display().to_string();
    let script = format!(
        "curl -s http://127.0.0.1:{good}/; echo; curl -s http://127.0.0.1:{bad}/; echo; echo END"
    );
    let tui = t.tui(&["--build-profile", &f, "--", "sh", "-c", &script]);
    let q = answer(&tui, &format!("connect to 127.0.0.1:{good}"), "a");
    assert!(q.contains("[a] allow this host"), "{q}");
    answer(&tui, &format!("connect to 127.0.0.1:{bad}"), "n");
    tui.wait_for("END", T);
    let screen = tui.screen();
    assert!(screen.contains("GOOD-HOST"), "{screen}");
    assert!(!screen.contains("BAD-HOST"), "{screen}");
    let text = std::fs::read_to_string(&f).unwrap();
    let allow_at = text.find("network:").unwrap();
    assert!(
        text[allow_at..].contains(&format!("\"127.0.0.1:{good}\"  # allowed")),
        "{text}"
    );
    assert!(
        text[allow_at..].contains(&format!("\"127.0.0.1:{bad}\"  # denied")),
        "{text}"
    );
    drop(tui);
    let r = t.run(&["--profile", &f, "--", "sh", "-c", &script]);
    assert!(r.stdout.contains("GOOD-HOST"), "{r:?}");
    assert!(!r.stdout.contains("BAD-HOST"), "{r:?}");
    assert!(!r.stderr.contains("wants to"), "{r:?}");
}

#[test]
fn a_full_screen_program_gets_the_question_and_its_screen_back() {
    if !need(&["tmux", "vim"]) {
        return;
    }
    let t = tree();
    std::fs::write(t.work.join("notes.txt"), "FIRST-LINE-OF-NOTES\n").unwrap();
    let f = t.root.join("vim.yaml").display().to_string();
    let tui = t.tui(&[
        "--build-profile",
        &f,
        "--",
        "vim",
        "-u",
        "NONE",
        "-N",
        "-n",
        "-i",
        "NONE",
        "notes.txt",
    ]);
    tui.wait_for("FIRST-LINE-OF-NOTES", T);
    tui.type_text(&format!(":r {}", t.p("files/allowed.txt")));
    tui.keys(&["Enter"]);
    // vim looks the file up before reading it: the first access asked.
    let screen = tui.wait_for("zerobox: vim wants to look up", T);
    // The question is on the bottom row, the editor's text still above it.
    let last = screen
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        last.contains(&t.p("files/allowed.txt")) && last.contains("[x] exit"),
        "{screen}"
    );
    assert!(screen.contains("FIRST-LINE-OF-NOTES"), "{screen}");
    tui.keys(&["a"]);
    let screen = tui.wait_for("ALLOWED-CONTENT", T);
    assert!(screen.contains("FIRST-LINE-OF-NOTES"), "{screen}");
    // Redrawn: no trace of the question.
    let screen = tui.wait_until("the question gone", T, |s| !s.contains("wants to"));
    assert!(screen.contains("ALLOWED-CONTENT"), "{screen}");
    tui.type_text(":q!");
    tui.keys(&["Enter"]);
    assert_eq!(exit_code(&tui), 0, "{}", tui.screen());
}

#[test]
fn learn_records_a_folded_profile_with_counts_and_asks_nothing() {
    if !need(&["setsid"]) {
        return;
    }
    let t = tree();
    let out = t.root.join("learned.yaml");
    let o = out.display().to_string();
    let script = format!(
        "cat {} {} {} >/dev/null; cat {} >/dev/null; echo x > {} ; true",
        t.p("conf/dir/inner.txt"),
        t.p("conf/dir/other.txt"),
        t.p("files/allowed.txt"),
        t.p("files/allowed.txt"),
        t.p("files/new.txt"),
    );
    let r = t.run(&["learn", "--out", &o, "--", "sh", "-c", &script]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("proposed profile"), "{r:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    // Folded into directories (parent of each file, two levels deep or
    // more), with a count per entry.
    assert!(
        text.contains(&format!("\"{}\"  # learn: 2 read", t.p("conf/dir"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"{}\"  # learn:", t.p("files"))),
        "{text}"
    );
    assert!(text.contains("  write:\n    allow:\n"), "{text}");
    // The command itself ran under the normal policy: the write failed.
    assert!(!t.root.join("files/new.txt").exists());
    // A proposal is not trusted until reviewed.
    let r = t.run(&["--profile", &o, "--", "true"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("trust"), "{r:?}");
}
