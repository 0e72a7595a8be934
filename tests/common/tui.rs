//! Drive a real terminal program the way a person does: in its own tmux
//! server (private socket, no user config), type keys, read the screen.
//!
//! Used by the interactive agent tests: the agent runs full-screen in a
//! real terminal, so its first-run screens, prompts and rendering are the
//! ones a user sees.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One program running in a detached tmux session. Dropping it kills the
/// tmux server (and with it the program).
pub struct Tui {
    socket: PathBuf,
    /// Where the launcher shell writes the program's exit status (None
    /// when the program is the pane's own process: [`Tui::start_leader`]).
    status: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// How to start the program: argv, working directory and the exact
/// environment (nothing is inherited from the test process).
pub struct Start<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub cols: u16,
    pub rows: u16,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Tui {
    /// Start `start.argv` in a fresh tmux server. The pane stays after the
    /// program exits so its last screen and exit status can be read.
    pub fn start(start: &Start) -> Tui {
        Tui::launch(start, false)
    }

    /// Like [`Tui::start`], but the program replaces the launcher shell:
    /// it is the terminal's session leader (as when tmux, `ssh -t` or a
    /// terminal window runs it directly). tmux 3.3 sometimes never reaps
    /// such a pane process (seen with zerobox and with `exec`'d programs
    /// generally under load), so [`Tui::exited`] may stay `None`: use
    /// this only where being the leader is the point of the test.
    pub fn start_leader(start: &Start) -> Tui {
        Tui::launch(start, true)
    }

    fn launch(start: &Start, leader: bool) -> Tui {
        let dir = tempfile::Builder::new()
            .prefix("zb-tui.")
            .tempdir_in(std::env::temp_dir())
            .expect("a scratch dir for the tmux socket");
        let socket = dir.path().join("sock");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g history-limit 20000\nset -g status off\n\
             set -g default-terminal xterm-256color\nset -sg escape-time 0\n",
        )
        .expect("write tmux.conf");
        // The program's environment is exactly `env`: a launcher script
        // clears everything tmux would pass down.
        // Unless the program must lead the session, the shell stays as
        // its parent and writes its status to a file: the exit status
        // does not depend on tmux reaping the pane. It ignores Ctrl-C
        // and Ctrl-\\ through a handler (a handler, unlike SIG_IGN, is not
        // inherited across exec); a hang-up ends it as usual, and the
        // kernel then hangs up the program too.
        let status_file = dir.path().join("status");
        let mut script = if leader {
            String::from("#!/bin/sh\nexec env -i")
        } else {
            String::from("#!/bin/sh\ntrap : INT QUIT\nenv -i")
        };
        for (k, v) in start.env {
            script.push(' ');
            script.push_str(&sh_quote(&format!("{k}={v}")));
        }
        for a in start.argv {
            script.push(' ');
            script.push_str(&sh_quote(a));
        }
        if !leader {
            script.push_str(&format!(
                "\necho $? > {0}.tmp && mv {0}.tmp {0}",
                sh_quote(&status_file.to_string_lossy())
            ));
        }
        script.push('\n');
        let launcher = dir.path().join("run.sh");
        std::fs::write(&launcher, script).expect("write launcher");
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .arg("-f")
            .arg(&conf)
            .args(["new-session", "-d", "-x"])
            .arg(start.cols.to_string())
            .arg("-y")
            .arg(start.rows.to_string())
            .arg("-c")
            .arg(start.cwd)
            .arg(format!("sh {}", sh_quote(&launcher.to_string_lossy())))
            .env("TERM", "xterm-256color")
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed: {status}");
        Tui {
            socket,
            status: (!leader).then_some(status_file),
            _dir: dir,
        }
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    /// Send tmux key names (`Enter`, `Down`, `Escape`, `C-c`, `y`…).
    pub fn keys(&self, keys: &[&str]) {
        let s = self
            .tmux()
            .args(["send-keys", "-t", "0"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(s.success(), "tmux send-keys {keys:?} failed");
    }

    /// Type `text` literally (no key-name interpretation).
    pub fn type_text(&self, text: &str) {
        let s = self
            .tmux()
            .args(["send-keys", "-t", "0", "-l", "--", text])
            .status()
            .expect("tmux send-keys -l");
        assert!(s.success(), "tmux send-keys -l failed");
    }

    /// Type `text` and press Enter once it shows on the screen: an Enter
    /// sent with the text is taken as part of a paste by some TUIs (Ink).
    #[track_caller]
    pub fn submit(&self, text: &str, timeout: Duration) {
        self.type_text(text);
        self.wait_for(text, timeout);
        std::thread::sleep(Duration::from_millis(500));
        self.keys(&["Enter"]);
    }

    /// The visible screen plus scroll-back, lines joined where wrapped.
    pub fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", "0"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `Some(status)` once the program has exited.
    pub fn exited(&self) -> Option<i32> {
        if let Some(path) = &self.status {
            return std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
        }
        let out = self
            .tmux()
            .args([
                "display-message",
                "-p",
                "-t",
                "0",
                "#{pane_dead} #{pane_dead_status}",
            ])
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout);
        let mut it = s.split_whitespace();
        match (it.next(), it.next()) {
            (Some("1"), Some(code)) => code.parse().ok(),
            _ => None,
        }
    }

    /// Wait until `pred(screen)` holds; panics with the last screen (and
    /// `what`) after `timeout`, or early if the program exited first.
    #[track_caller]
    pub fn wait_until(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            if let Some(code) = self.exited() {
                let screen = self.screen();
                if pred(&screen) {
                    return screen;
                }
                panic!("waiting for {what}: the program exited ({code}); last screen:\n{screen}");
            }
            if Instant::now() > deadline {
                panic!("waiting for {what}: timed out after {timeout:?}; last screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the screen contains `needle`.
    #[track_caller]
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_until(needle, timeout, |s| s.contains(needle))
    }

    /// Wait for the program to exit; its status.
    #[track_caller]
    pub fn wait_exit(&self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exited() {
                return code;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for exit; last screen:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Tui {
    /// Hang up the terminal, as closing a terminal window or losing an
    /// ssh connection does: the tmux server goes, the program's pty is
    /// hung up (SIGHUP to its session leader).
    pub fn hang_up(&self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        // A program still running (a test that failed half-way) is ended
        // first: killing the tmux server only hangs up its terminal, which
        // a sandbox launcher may outlive.
        if self.exited().is_none() {
            let pid = self
                .tmux()
                .args(["display-message", "-p", "-t", "0", "#{pane_pid}"])
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<i32>()
                        .ok()
                });
            if let Some(pid) = pid.filter(|p| *p > 1) {
                // The pane's process leads its own session and process
                // group: signal the whole group (launcher shell, zerobox,
                // and through zerobox the command).
                let _ = Command::new("kill")
                    .args(["-TERM", "--", &format!("-{pid}")])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(5);
                while self.exited().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let _ = self.tmux().arg("kill-server").status();
    }
}
