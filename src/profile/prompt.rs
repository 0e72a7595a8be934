//! The question on the controlling terminal: one line, single-letter keys,
//! no Enter.
//!
//! The command is paused while the question is open (its system call, or
//! its connection, waits for the answer). The terminal's mode is the
//! command's: it is saved, switched to single-key input for the answer,
//! and put back. A command in line mode (a shell, a script) gets the
//! question and the answer as a line of its scrollback; a full-screen one
//! (raw mode: an editor, an agent's UI) gets it on the bottom row, in
//! reverse video, after which the row is cleared, the cursor put back and
//! the command sent SIGWINCH so it redraws what the question covered.
//!
//! Keys typed before the question are dropped (they were meant for the
//! command, and must not answer a question not yet seen).

use std::fs::File;
use std::io::{Read, Write};

use crate::sandbox::linux::tty;

/// One choice: its key and what the line says about it.
pub struct Choice {
    pub key: char,
    pub label: String,
}

pub struct Prompter {
    tty: File,
}

impl Prompter {
    /// The controlling terminal, or why there is none.
    pub fn open() -> std::io::Result<Prompter> {
        let tty = tty::open()?;
        // A terminal is one whose mode can be read (not /dev/null).
        tty::get_mode(&tty)?;
        Ok(Prompter { tty })
    }

    /// Ask and wait for one of `choices`' keys (case-insensitive; Ctrl-C
    /// and Ctrl-D answer `x`, as does a terminal that went away). Returns
    /// the key and whether the command's terminal was in raw mode (the
    /// caller then asks it to redraw).
    pub fn ask(&mut self, question: &str, choices: &[Choice]) -> (char, bool) {
        let Ok(saved) = tty::get_mode(&self.tty) else {
            return ('x', false);
        };
        let full_screen = !saved_is_line_mode(&saved);
        let _ = tty::set_mode(&self.tty, &tty::single_key(&saved));
        tty::flush_input(&self.tty);
        let choices_text: String = choices
            .iter()
            .map(|c| format!("  [{}] {}", c.key, c.label))
            .collect();
        let line = if full_screen {
            let width = tty::columns(&self.tty).saturating_sub(1);
            fit(question, &choices_text, width)
        } else {
            format!("{question}{choices_text}")
        };
        let shown = if full_screen {
            // Save the cursor, bottom row, clear it, reverse video.
            format!("\x1b7\x1b[999;1H\x1b[2K\x1b[7m{line}\x1b[0m")
        } else {
            format!("{line} ")
        };
        let _ = self.tty.write_all(shown.as_bytes());
        let _ = self.tty.flush();
        let key = loop {
            let mut b = [0u8; 1];
            match self.tty.read(&mut b) {
                Ok(1) => {}
                _ => break 'x',
            }
            let c = (b[0] as char).to_ascii_lowercase();
            if b[0] == 3 || b[0] == 4 {
                break 'x';
            }
            if choices.iter().any(|ch| ch.key == c) {
                break c;
            }
        };
        let label = choices
            .iter()
            .find(|c| c.key == key)
            .map(|c| c.label.as_str())
            .unwrap_or("exit");
        let done = if full_screen {
            "\x1b[2K\x1b8".to_string()
        } else {
            format!("→ {label}\r\n")
        };
        let _ = self.tty.write_all(done.as_bytes());
        let _ = self.tty.flush();
        let _ = tty::set_mode(&self.tty, &saved);
        (key, full_screen)
    }

    /// One line of information on the terminal (e.g. why the run ends).
    pub fn say(&mut self, text: &str) {
        let _ = self.tty.write_all(format!("\r{text}\r\n").as_bytes());
    }
}

fn saved_is_line_mode(m: &tty::Mode) -> bool {
    tty::is_canonical(m)
}

/// The question and the choices on `width` columns: the choices whole,
/// the question shortened in the middle (the path's start and its end
/// stay readable).
fn fit(question: &str, choices: &str, width: usize) -> String {
    let q: Vec<char> = question.chars().collect();
    let c = choices.chars().count();
    if q.len() + c <= width {
        return format!("{question}{choices}");
    }
    let room = width.saturating_sub(c + 1);
    if room < 10 {
        return format!("{question}{choices}").chars().take(width).collect();
    }
    let head = room / 2;
    let tail = room - head;
    let mut s: String = q[..head].iter().collect();
    s.push('…');
    s.extend(&q[q.len() - tail..]);
    s.push_str(choices);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_questions_keep_their_choices() {
        let q = format!("zerobox: sh wants to read /{}", "a".repeat(200));
        let c = "  [a] allow  [n] deny  [x] exit";
        let line = fit(&q, c, 80);
        assert_eq!(line.chars().count(), 80);
        assert!(line.ends_with(c));
        assert!(line.starts_with("zerobox: sh wants"));
        assert_eq!(fit("short", c, 80), format!("short{c}"));
    }
}
