//! Every byte zerobox itself prints goes through here (`outln!`, `out!`,
//! `errln!`, `err_prompt!`), never through `println!`/`eprintln!`, which
//! panic when the stream is gone.
//!
//! The rule: **a closed stdout or stderr never panics and never changes the
//! exit status.** `zerobox preset list | head -1`, `zerobox doctor >&-` or
//! `zerobox -- make 2>&-` behave exactly as with an open stream, the output
//! is just dropped. Once a write has failed the stream is marked gone and
//! later writes are skipped, so a long listing to a closed pipe costs
//! nothing. On the run path this matters most: a warning on a closed stderr
//! must not stop the run, and the end-of-run summary must not replace the
//! command's own exit status.
//!
//! A broken pipe (`EPIPE`) or a closed descriptor (`EBADF`) is the reader's
//! choice and stays silent. Any other failure on stdout (`ENOSPC` on
//! `> file`) means the output is incomplete: it is remembered, and
//! `cli::main` turns it into one stderr line and exit 1 for the commands
//! whose product *is* their output (`preset list`, `explain`, …); a run
//! keeps its command's status.
//!
//! No locking beyond std's: each call writes one formatted piece and
//! flushes it, so lines from the proxy thread and `main` do not interleave
//! inside a line.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);
/// The first stdout failure that was not the reader going away.
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(libc::EBADF)
}

/// Write to stdout (what `out!`/`outln!` expand to). Never panics.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut lock = io::stdout().lock();
    let r = lock.write_fmt(args).and_then(|()| lock.flush());
    if let Err(e) = r {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if !is_gone(&e) {
            if let Ok(mut slot) = STDOUT_FAILED.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Write to stderr (what `errln!`/`err_prompt!` expand to). Never panics;
/// a failure only marks stderr gone (there is nowhere left to report it).
pub fn write_stderr(args: fmt::Arguments<'_>) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut lock = io::stderr().lock();
    if lock.write_fmt(args).and_then(|()| lock.flush()).is_err() {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// Has a write to stderr failed (closed, broken pipe)? Then a notice
/// printed there was not seen (the first-run summary is shown again).
pub fn stderr_gone() -> bool {
    STDERR_GONE.load(Ordering::Relaxed)
}

/// Why stdout output was lost, when it was not the reader closing the pipe
/// (e.g. "No space left on device").
pub fn stdout_failure() -> Option<String> {
    STDOUT_FAILED.lock().ok().and_then(|s| s.clone())
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `zerobox: warning: …` on stderr, as one line: the message is escaped
/// with [`one_line`] (it often carries a path or host from a place the
/// sandboxed command could write), and a closed stderr is ignored.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!(
            "zerobox: warning: {}\n",
            $crate::output::one_line(&format!($($arg)*))
        ))
    };
}

/// `eprint!` (a prompt without newline) that never panics.
#[macro_export]
macro_rules! err_prompt {
    ($($arg:tt)*) => { $crate::output::write_stderr(format_args!($($arg)*)) };
}

/// A value quoted for a one-line message: printable text as-is inside
/// quotes, control characters (newline, ESC, …), quotes and backslashes
/// escaped. A value from argv or a file can then neither split an error
/// into several lines nor send terminal escapes. Use it for every value a
/// message echoes back (`{}` with `quote(v)`, not `{v:?}` or `{v}`).
pub fn quote(value: &str) -> Quoted<'_> {
    Quoted(value)
}

/// See [`quote`].
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                // C0/C1 controls, DEL, and the bidi/format characters that
                // reorder what a terminal shows.
                c if c.is_control()
                    || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
                {
                    write!(f, "\\u{{{:x}}}", c as u32)?
                }
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// Escape a whole message (clap's, or one built from several values) so
/// it stays one line without raw escapes: like [`quote`] without the
/// surrounding quotes and keeping `"`/`\` as they are.
pub fn one_line(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => s.push_str("\\n"),
            '\t' => s.push(' '),
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                s.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => s.push(c),
        }
    }
    s
}

/// Print a clap parse result the zerobox way and return the exit code:
/// `--help`/`--version` on stdout (0); a missing subcommand prints the
/// help on stderr (2); any other error is one escaped `zerobox: …` line
/// (2) naming the bad value and where to look.
///
/// `cmd` and `argv` (what was parsed) name the subcommand whose help the
/// message points to.
pub fn clap_error(e: &clap::Error, cmd: &clap::Command, argv: &[std::ffi::OsString]) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            write_stdout(format_args!("{}", e.render()));
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            write_stderr(format_args!("{}", e.render()));
            crate::exit::USAGE
        }
        _ => {
            let path = subcommand_path(cmd, argv);
            write_stderr(format_args!("zerobox: {}\n", clap_message(e, &path)));
            crate::exit::USAGE
        }
    }
}

/// clap's error as one line naming the offending flag or value (escaped
/// with [`quote`]), clap's suggestion when it is not the name itself, and
/// the help to read. Built from the error's parts, not its text: clap's
/// text spans several lines and echoes values raw.
fn clap_message(e: &clap::Error, help_of: &str) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let text = e.render().to_string();
    let ctx = |k: ContextKind| -> Vec<String> {
        match e.get(k) {
            Some(ContextValue::String(s)) => vec![s.clone()],
            Some(ContextValue::Strings(v)) => v.clone(),
            Some(ContextValue::StyledStr(s)) => vec![s.to_string()],
            Some(ContextValue::StyledStrs(v)) => v.iter().map(|s| s.to_string()).collect(),
            Some(ContextValue::Number(n)) => vec![n.to_string()],
            _ => Vec::new(),
        }
    };
    let one = |k: ContextKind| ctx(k).into_iter().next().unwrap_or_default();
    let arg = one(ContextKind::InvalidArg);
    let value = one(ContextKind::InvalidValue);
    let suggest = |given: &str, kind: ContextKind| -> String {
        let close: Vec<String> = ctx(kind)
            .into_iter()
            .filter(|s| s != given && !s.is_empty())
            .collect();
        if close.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", close.join(", "))
        }
    };
    let main = match e.kind() {
        ErrorKind::UnknownArgument => format!(
            "unknown flag {}{}",
            quote(&arg),
            suggest(&arg, ContextKind::SuggestedArg)
        ),
        ErrorKind::InvalidSubcommand => {
            let sub = one(ContextKind::InvalidSubcommand);
            format!(
                "unknown subcommand {}{}",
                quote(&sub),
                suggest(&sub, ContextKind::SuggestedSubcommand)
            )
        }
        ErrorKind::MissingRequiredArgument => {
            format!(
                "missing {}",
                one_line(&ctx(ContextKind::InvalidArg).join(", "))
            )
        }
        ErrorKind::MissingSubcommand => "missing a subcommand".to_string(),
        ErrorKind::InvalidValue if value.is_empty() => format!("{} needs a value", one_line(&arg)),
        ErrorKind::InvalidValue => {
            let valid = ctx(ContextKind::ValidValue);
            let mut m = format!("invalid value {} for {}", quote(&value), one_line(&arg));
            if !valid.is_empty() {
                m.push_str(&format!(" (expected one of: {})", valid.join(", ")));
            }
            m.push_str(&suggest(&value, ContextKind::SuggestedValue));
            m
        }
        ErrorKind::ValueValidation => {
            let why = std::error::Error::source(e)
                .map(|s| format!(": {}", one_line(&s.to_string())))
                .unwrap_or_default();
            format!(
                "invalid value {} for {}{why}",
                quote(&value),
                one_line(&arg)
            )
        }
        ErrorKind::ArgumentConflict => {
            let prior = ctx(ContextKind::PriorArg);
            format!(
                "{} cannot be used with {}",
                one_line(&arg),
                one_line(&prior.join(", "))
            )
        }
        ErrorKind::NoEquals => format!(
            "{} takes its value after `=` ({}=VALUE)",
            one_line(&arg),
            one_line(arg.split(['=', ' ', '[', '<']).next().unwrap_or(&arg))
        ),
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".to_string(),
        _ => {
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            one_line(first)
        }
    };
    format!("{main} (see `{help_of} --help`)")
}

/// `zerobox preset pull` for `[zerobox, --offline, preset, pull, X]`: the
/// words of argv that name subcommands, from the outermost.
fn subcommand_path(cmd: &clap::Command, argv: &[std::ffi::OsString]) -> String {
    let mut path = vec![cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string()];
    let mut at = cmd;
    for word in argv.iter().skip(1) {
        let Some(word) = word.to_str() else { break };
        if word == "--" {
            break;
        }
        if let Some(sub) = at.find_subcommand(word) {
            path.push(sub.get_name().to_string());
            at = sub;
        }
    }
    path.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_controls_and_quotes() {
        assert_eq!(quote("a b").to_string(), "\"a b\"");
        assert_eq!(quote("a\nb").to_string(), "\"a\\nb\"");
        assert_eq!(quote("\x1b[31m").to_string(), "\"\\u{1b}[31m\"");
        assert_eq!(quote("q\"\\").to_string(), "\"q\\\"\\\\\"");
        assert_eq!(quote("\u{202e}x").to_string(), "\"\\u{202e}x\"");
        assert_eq!(quote("ünï").to_string(), "\"ünï\"");
    }

    #[test]
    fn one_line_has_no_newline_or_escape() {
        let s = one_line("bad value 'x\ny\x1b[2J'\n");
        assert!(!s.contains('\n') && !s.contains('\x1b'), "{s}");
    }
}
