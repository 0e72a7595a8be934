//! Typed setup errors and the one place that decides what a failure means.
//!
//! Every step of building the sandbox that can fail has its own [`Stage`];
//! an error carries the stage, the path or syscall it was about, and the
//! errno. [`SandboxError::exit_code`] and [`SandboxError::hint`] are the
//! only places that turn a failure into an exit code and advice.
//!
//! No failure is ever a reason to fall back to a weaker mode: the mode is
//! chosen before setup from probes of the machine alone (see
//! `sandbox::choose_mode`), so nothing the command could have left on disk
//! (a dangling symlink at a rule path, a swapped directory) can make
//! zerobox drop a layer. Once the namespaces work, any later failure
//! refuses to run (exit 125).

use std::path::PathBuf;

/// The setup step a failure happened in. The byte values cross the status
/// pipe from the sandbox's PID 1 (see `linux::report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Bad input (a NUL byte, a missing working directory): exit 2.
    Input = 1,
    /// Creating the namespaces or writing the uid/gid maps.
    Namespaces = 2,
    Landlock = 3,
    Capabilities = 4,
    Seccomp = 5,
    /// `execve` itself: 126/127.
    Exec = 6,
    Internal = 7,
    /// Building the filesystem view (a mask, a bind, a mount point).
    Mounts = 8,
    /// A rule path that cannot be enforced as written (e.g. it changed
    /// type or became a symlink between planning and mounting).
    RulePath = 9,
    /// Bringing up the network namespace's loopback.
    Network = 10,
    /// Refused before any setup: the machine lacks what the options
    /// require (`--strict`, no layer at all). The message holds its hint.
    Refused = 11,
}

impl Stage {
    pub fn from_u8(b: u8) -> Stage {
        match b {
            1 => Stage::Input,
            2 => Stage::Namespaces,
            3 => Stage::Landlock,
            4 => Stage::Capabilities,
            5 => Stage::Seccomp,
            6 => Stage::Exec,
            8 => Stage::Mounts,
            9 => Stage::RulePath,
            10 => Stage::Network,
            11 => Stage::Refused,
            _ => Stage::Internal,
        }
    }

    /// How the step is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Namespaces => "namespaces",
            Stage::Landlock => "landlock",
            Stage::Capabilities => "capabilities",
            Stage::Seccomp => "seccomp",
            Stage::Exec => "exec",
            Stage::Internal => "setup",
            Stage::Mounts => "mounts",
            Stage::RulePath => "rule path",
            Stage::Network => "network namespace",
            Stage::Refused => "refused",
        }
    }
}

/// A failure to build or start the sandbox.
#[derive(Debug)]
pub struct SandboxError {
    pub stage: Stage,
    /// The path the step was about, if any (a rule path, a mount point).
    pub path: Option<PathBuf>,
    /// The errno of the failed syscall (0: none).
    pub errno: i32,
    /// What was attempted and how it failed (without the hint).
    pub message: String,
}

impl SandboxError {
    pub fn new(stage: Stage, message: impl Into<String>) -> Self {
        SandboxError {
            stage,
            path: None,
            errno: 0,
            message: message.into(),
        }
    }

    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn with_errno(mut self, errno: i32) -> Self {
        self.errno = errno;
        self
    }

    /// The documented exit code: 2 bad input, 126/127 exec, else 125.
    pub fn exit_code(&self) -> i32 {
        match self.stage {
            Stage::Input => crate::exit::USAGE,
            Stage::Exec if self.errno == libc::ENOENT => crate::exit::NOT_FOUND,
            Stage::Exec => crate::exit::NOT_EXECUTABLE,
            _ => crate::exit::SETUP,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self.stage {
            Stage::Input | Stage::Exec | Stage::Refused => "",
            Stage::Mounts | Stage::RulePath => {
                " (zerobox refuses to run with a weaker sandbox; check or remove that path, or run `zerobox explain` to see the plan)"
            }
            Stage::Landlock => {
                " (the Landlock layer could not be set up; run `zerobox doctor`, or pass --no-sandbox to run unprotected)"
            }
            _ => " (run `zerobox doctor`)",
        }
    }
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if matches!(self.stage, Stage::Exec | Stage::Input | Stage::Refused) {
            return f.write_str(&self.message);
        }
        write!(f, "{}: {}", self.stage.name(), self.message)?;
        f.write_str(self.hint())
    }
}

impl std::error::Error for SandboxError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip_and_decide_the_exit_code() {
        for s in [
            Stage::Input,
            Stage::Namespaces,
            Stage::Landlock,
            Stage::Capabilities,
            Stage::Seccomp,
            Stage::Exec,
            Stage::Internal,
            Stage::Mounts,
            Stage::RulePath,
            Stage::Network,
            Stage::Refused,
        ] {
            assert_eq!(Stage::from_u8(s as u8), s);
        }
        let e = SandboxError::new(Stage::Mounts, "mask /p/x: ENOENT").with_path("/p/x");
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().starts_with("mounts: mask /p/x"), "{e}");
        let e = SandboxError::new(Stage::Exec, "x").with_errno(libc::ENOENT);
        assert_eq!(e.exit_code(), 127);
        assert_eq!(SandboxError::new(Stage::Input, "x").exit_code(), 2);
    }
}
