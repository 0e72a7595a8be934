//! The launcher's errors: one variant per step of a run (working
//! directory, home, policy, program lookup, network checks, secrets, the
//! proxy, the sandbox), each carrying the path, name or flag it is about
//! and its cause as `#[source]`. [`LaunchError::exit_code`] is where the
//! launcher's part of the exit-code table (`exit`) is decided; `cli`
//! prints the chain once (`exit::chain`).

use std::path::PathBuf;

use crate::exit;
use crate::policy::{Origin, PolicyError};
use crate::proxy::ProxyError;
use crate::sandbox::{SandboxError, Stage};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot read the current directory")]
    CurrentDir(#[source] std::io::Error),
    #[error("invalid --cwd {:?} (give an existing directory)", .path.display().to_string())]
    Cwd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --cwd {:?}: not a directory", .path.display().to_string())]
    CwdNotDir { path: PathBuf },
    #[error("cannot find your home directory: set HOME")]
    NoHome,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A rule that makes the whole filesystem writable or hidden.
    #[error("refusing {what} from {origin}: that is no sandbox (use --no-sandbox to say so)")]
    WholeFilesystem { what: &'static str, origin: Origin },
    #[error("no command given")]
    NoCommand,
    #[error("empty command name")]
    EmptyCommand,
    #[error("command not found: {name}")]
    NotFound { name: String },
    #[error("permission denied: {} is not executable", .path.display())]
    NotExecutable { path: PathBuf },
    /// `--no-sandbox`'s own `execve`.
    #[error("cannot execute {}", .path.display())]
    Exec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--share-net gives raw host networking; it cannot be combined with --allow-net or --secret (which go through the proxy)")]
    ShareNetWithProxy,
    #[error(transparent)]
    Resolve(ProxyError),
    #[error("invalid --ca-cert {:?}: not a readable file (give a PEM file)", .path.display().to_string())]
    CaCert { path: PathBuf },
    #[error("invalid --net-log {path:?}: {why}")]
    NetLog { path: String, why: String },
    #[error("secret {name}: {why}")]
    SecretFile { name: String, why: String },
    #[error("secret {name} is not bound to any host: add --secret-host {name}=HOST (a secret never goes to all hosts)")]
    SecretUnbound { name: String },
    #[error("secret {name}: environment variable {var} is not set")]
    SecretEnvUnset { name: String, var: String },
    /// Reading a secret's value (its file, its variable).
    #[error(transparent)]
    Secret(ProxyError),
    #[error(
        "environment variable {var} contains the value of a secret: drop it with --deny-env={var}"
    )]
    SecretInEnv { var: String },
    /// No data directory for the proxy's own state (`what`).
    #[error("cannot find your home directory for {what}: set HOME or XDG_DATA_HOME")]
    NoDataDir { what: &'static str },
    #[error("the placeholder key")]
    PlaceholderKey(#[source] ProxyError),
    /// The proxy's configuration, refused (bad input).
    #[error(transparent)]
    ProxyConfig(ProxyError),
    /// The proxy could not be set up (TLS, I/O).
    #[error("proxy")]
    ProxySetup(#[source] ProxyError),
    /// The sandbox refused or failed a step; an exec failure names the
    /// program.
    #[error("{}", spawn_message(.program, .source))]
    Spawn {
        program: PathBuf,
        source: SandboxError,
    },
    #[error("cannot render the policy")]
    Render(#[source] serde_json::Error),
    #[error(
        "--build-profile and learn watch the sandbox's accesses: they cannot run with --no-sandbox"
    )]
    WatchWithoutSandbox,
    /// `--build-profile` / `learn` could not set up their watch (the
    /// profile layer's own error, with its exit code).
    #[error(transparent)]
    Watch(exit::Fatal),
}

fn spawn_message(program: &std::path::Path, e: &SandboxError) -> String {
    match e.stage {
        Stage::Exec if e.errno == libc::ENOENT => format!(
            "command not found inside the sandbox: {}",
            program.display()
        ),
        Stage::Exec => format!(
            "cannot execute {} inside the sandbox: {}",
            program.display(),
            e.message
        ),
        _ => e.to_string(),
    }
}

impl LaunchError {
    /// 2 for bad input, 125 for setup, 126/127 for the program; the
    /// sandbox's own errors decide theirs (`SandboxError::exit_code`).
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::NotFound { .. } => exit::NOT_FOUND,
            LaunchError::NotExecutable { .. } | LaunchError::Exec { .. } => exit::NOT_EXECUTABLE,
            LaunchError::PlaceholderKey(_)
            | LaunchError::ProxySetup(_)
            | LaunchError::Render(_) => exit::SETUP,
            LaunchError::Spawn { source, .. } => source.exit_code(),
            LaunchError::Watch(f) => f.code,
            _ => exit::USAGE,
        }
    }

    /// The proxy's `prepare` error, sorted into input or setup.
    pub(crate) fn proxy(e: ProxyError) -> Self {
        match e {
            ProxyError::Tls(_) | ProxyError::Io(_) => LaunchError::ProxySetup(e),
            _ => LaunchError::ProxyConfig(e),
        }
    }
}

impl From<LaunchError> for exit::Fatal {
    fn from(e: LaunchError) -> Self {
        exit::Fatal::new(e.exit_code(), exit::chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_has_its_exit_code() {
        assert_eq!(
            LaunchError::NotFound { name: "x".into() }.exit_code(),
            exit::NOT_FOUND
        );
        assert_eq!(
            LaunchError::NotExecutable { path: "/x".into() }.exit_code(),
            exit::NOT_EXECUTABLE
        );
        assert_eq!(LaunchError::NoCommand.exit_code(), exit::USAGE);
        assert_eq!(
            LaunchError::proxy(ProxyError::Tls("x".into())).exit_code(),
            exit::SETUP
        );
        assert_eq!(
            LaunchError::proxy(ProxyError::Pattern("x".into())).exit_code(),
            exit::USAGE
        );
    }

    /// The cause is printed once, after the step that failed.
    #[test]
    fn the_chain_names_the_step_then_the_cause() {
        let e = LaunchError::Cwd {
            path: "/nope".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let text = exit::Fatal::from(e).message;
        assert!(
            text.starts_with("invalid --cwd \"/nope\" (give an existing directory): "),
            "{text}"
        );
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
    }
}
