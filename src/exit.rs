//! Exit codes and the one error shape zerobox prints.
//!
//! Every code zerobox itself returns is a constant here; each layer's
//! error type maps its variants onto them (`LaunchError::exit_code`,
//! `PresetError::exit_code`, `SandboxError::exit_code`) and `cli::main`
//! prints the error's chain once ([`chain`]).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (a printing command, or the command exited 0) |
//! | N | the command's own exit status (128+N when it died of signal N) |
//! | 1 | a printing command (`preset list`, `explain`, …) could not write its output (e.g. a full disk); a preset, pin or project file refused by verification or trust (`preset verify`, a bad signature, an untrusted key, a rollback) |
//! | 2 | bad flag, path or policy (the offending value is named) |
//! | 122 | zerobox stopped the command: a write-protected path was replaced or removed on the host during the run, which ends its protection inside the sandbox (the path is named, and what was checked or put back) |
//! | 125 | the sandbox could not be set up (the layer and the way out are named) |
//! | 126 | the command was found but cannot be executed |
//! | 127 | the command was not found |
//! | 130 | `--build-profile`: the user answered `[x]` (stop); the answers so far are kept |

/// Success.
pub const SUCCESS: i32 = 0;
/// A preset, pin or project file refused by verification or trust (bad
/// signature, untrusted key, rollback, expired index, digest mismatch,
/// a widening project file): the input is well formed but not accepted.
pub const REFUSED: i32 = 1;
/// A printing command's output could not be written (not a closed pipe:
/// that is the reader's choice and leaves the status alone, see `output`).
pub const OUTPUT: i32 = 1;
/// Bad flag, path or policy.
pub const USAGE: i32 = 2;
/// zerobox stopped the command mid-run because a protection lapsed: a
/// host program replaced or removed a write-protected path, which detaches
/// its read-only bind (`protect::replaced`). Not 125 (setup worked and the
/// command ran), not 137 (a plain SIGKILL: an OOM kill or `kill -9` look
/// the same), not 124/123 (`timeout`, `xargs`) nor 126+ (the shell's):
/// below 125 a command's own status can be anything, so the stderr line
/// is what tells; the code lets a script tell "stopped for safety" apart
/// from the usual ones.
pub const PROTECTION_LAPSED: i32 = 122;
/// A sandbox layer could not be set up.
pub const SETUP: i32 = 125;
/// The command exists but is not executable.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// `--build-profile` stopped at the user's `[x]` (as a shell reports a
/// command ended by Ctrl-C: 128 + SIGINT).
pub const STOPPED: i32 = 130;

/// An error that ends the run: a one-line message and an exit code.
#[derive(Debug)]
pub struct Fatal {
    pub code: i32,
    pub message: String,
}

impl Fatal {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Fatal {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Fatal::new(USAGE, message)
    }
    pub fn setup(message: impl Into<String>) -> Self {
        Fatal::new(SETUP, message)
    }
}

impl std::error::Error for Fatal {}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An error and its causes as one line, each cause once: `step: cause:
/// cause`. A cause whose text the message already shows (an error that
/// formats its source itself) is not repeated.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

impl From<crate::policy::PolicyError> for Fatal {
    fn from(e: crate::policy::PolicyError) -> Self {
        Fatal::usage(chain(&e))
    }
}
