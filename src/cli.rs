//! The command line: clap definitions and the mapping of flags to a
//! [`PolicyLayer`]. Knows nothing about how a policy is enforced.
//!
//! `main` calls [`main`], which returns the process exit code; every error
//! is printed here as one `zerobox: …` line (see `exit` for the codes).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::exit::{self, Fatal};
use crate::launcher::{self, InlineSecrets, RunRequest};
use crate::policy::{PolicyLayer, SecretSource, SecretSpec};

/// Run a command in an OS-native sandbox that denies by default.
///
/// Reads are allowed except secrets, writes are denied except a private /tmp
/// and what you grant, network is off. See `zerobox explain -- CMD`.
#[derive(Debug, Parser)]
#[command(
    name = "zerobox",
    version,
    about,
    allow_external_subcommands = true,
    override_usage = "zerobox [FLAGS] -- CMD [ARGS]…\n       zerobox [FLAGS] PRESET [ARGS]…\n       zerobox <COMMAND> …",
    after_help = "Examples:\n  zerobox -- sh -c 'echo x > ~/f'        # refused: writes are denied\n  zerobox --allow-write=. -- touch f      # the cwd is writable\n  zerobox explain --allow-write=. -- make # show the resolved policy\n  zerobox doctor                          # what this machine enforces\n  zerobox claude                          # Claude Code in its bundled preset\n  zerobox preset list                     # presets you can run"
)]
pub struct Cli {
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    #[command(subcommand)]
    pub sub: Option<Sub>,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Show which sandbox layers this machine has and what each run gets.
    #[command(after_help = "Examples:\n  zerobox doctor\n  zerobox doctor --json | jq .run")]
    Doctor {
        /// Print JSON instead of text (see docs/architecture.md, "JSON output").
        #[arg(long)]
        json: bool,
    },
    /// Print the fully resolved policy and the enforcing layers; run nothing.
    #[command(
        override_usage = "zerobox explain [FLAGS] [--json] -- CMD [ARGS]…\n       zerobox explain [FLAGS] [--json] PRESET",
        after_help = "Examples:\n  zerobox explain --allow-write=. -- make\n  zerobox explain claude                  # a preset's policy"
    )]
    Explain {
        #[command(flatten)]
        sandbox: Box<SandboxArgs>,
        /// A preset to explain instead of `-- CMD` (name, NAME@VERSION or file).
        #[arg(value_name = "PRESET")]
        preset: Option<String>,
        /// Print JSON instead of YAML (see docs/policy.md, "zerobox explain").
        #[arg(long)]
        json: bool,
    },
    /// Run a preset by name or file: `zerobox run NAME [ARGS…]`.
    #[command(
        override_usage = "zerobox run [FLAGS] PRESET [ARGS]…\n       zerobox run [FLAGS] PRESET -- [ARGS]…",
        after_help = "Examples:\n  zerobox run claude --version            # ARGS go to the preset's command\n  zerobox run --allow-write=~/notes codex\n  zerobox run ./team.yaml -- --flag      # a signed preset file"
    )]
    Run {
        #[command(flatten)]
        sandbox: Box<SandboxArgs>,
        /// The preset (name, NAME@VERSION, or a signed YAML file).
        #[arg(value_name = "PRESET")]
        preset: String,
        /// Arguments for the preset's command.
        #[arg(
            value_name = "ARGS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<OsString>,
    },
    /// Run a command with the normal policy and write a proposed profile of what it read, wrote and connected to.
    #[command(
        override_usage = "zerobox learn --out FILE [FLAGS] -- CMD [ARGS]…",
        after_help = "Examples:\n  zerobox learn --out agent.yaml -- claude --version\n  zerobox trust agent.yaml && zerobox --profile agent.yaml -- claude"
    )]
    Learn {
        #[command(flatten)]
        sandbox: Box<SandboxArgs>,
        /// Where to write the proposed profile (review it, then `zerobox trust FILE`).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Presets: list, show, schema, verify, keygen, sign, publish, pull, pin, update, trust-key.
    Preset(crate::preset::PresetArgs),
    /// Trust a project's .zerobox/ file (by content hash) so it may widen a policy.
    Trust(crate::preset::TrustArgs),
    /// Print a shell completion script, generated from these definitions.
    #[command(
        after_help = "Examples:\n  zerobox completions bash > ~/.local/share/bash-completion/completions/zerobox\n  zerobox completions zsh > ~/.zfunc/_zerobox\n  zerobox completions fish > ~/.config/fish/completions/zerobox.fish"
    )]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum, value_name = "SHELL")]
        shell: CompletionShell,
    },
    /// Print the man page (roff), generated from these definitions.
    #[command(
        after_help = "Example:\n  zerobox man > ~/.local/share/man/man1/zerobox.1 && man zerobox"
    )]
    Man,
    /// `zerobox NAME [ARGS…]` runs the preset NAME.
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

/// The shells `zerobox completions` writes scripts for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `zerobox completions SHELL`: the script, from the clap definitions.
fn completions(shell: CompletionShell) -> i32 {
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "zerobox", &mut script);
    crate::out!("{}", String::from_utf8_lossy(&script));
    0
}

/// `zerobox man`: one roff page for zerobox, then one section per
/// subcommand (and per `preset` subcommand) with its options.
fn man_page() -> Result<i32, Fatal> {
    let render = |cmd: clap::Command| -> Result<Vec<u8>, Fatal> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(|e| Fatal::setup(format!("cannot render the man page: {e}")))?;
        Ok(page)
    };
    let mut cmd = Cli::command();
    cmd.build();
    let mut page = render(cmd.clone())?;
    // Each subcommand's own page, appended without its title line, as
    // sections named after it (`zerobox preset pin`).
    let mut subs: Vec<(String, clap::Command)> = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        subs.push((format!("zerobox {}", sub.get_name()), sub.clone()));
        for inner in sub.get_subcommands() {
            if inner.get_name() != "help" {
                subs.push((
                    format!("zerobox {} {}", sub.get_name(), inner.get_name()),
                    inner.clone(),
                ));
            }
        }
    }
    for (name, sub) in subs {
        let text = render(sub.display_name(name.clone()).bin_name(name.clone()))?;
        let text = String::from_utf8_lossy(&text);
        page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        for line in text.lines() {
            if line.starts_with(".TH") || line.starts_with(".ie ") || line.starts_with(".el ") {
                continue; // the page header: once, at the top
            }
            // The subcommand page's sections become sub-sections.
            match line.strip_prefix(".SH ") {
                Some(heading) => page.extend_from_slice(format!(".SS {heading}").as_bytes()),
                None => page.extend_from_slice(line.as_bytes()),
            }
            page.push(b'\n');
        }
    }
    // roff input is ASCII: other characters (the help's `…`, `≥`, `—`)
    // as groff's \[uXXXX] escapes.
    let mut roff = String::with_capacity(page.len());
    for c in String::from_utf8_lossy(&page).chars() {
        if c.is_ascii() {
            roff.push(c);
        } else {
            roff.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    crate::out!("{roff}");
    Ok(0)
}

// The help's headings for the run flags (a unit test makes each flag pick one).
const FILESYSTEM: &str = "Filesystem";
const ENVIRONMENT: &str = "Environment";
const NETWORK: &str = "Network & secrets";
const RUNNING: &str = "Running";
const LIMITS: &str = "Resource limits";

/// Every policy and run flag. Shared by the top level and `explain`.
#[derive(Debug, Clone, Default, Args)]
pub struct SandboxArgs {
    /// Also allow reading PATH (re-opens a path inside a denied one).
    #[arg(long, value_name = "PATH[,PATH…]", help_heading = FILESYSTEM)]
    pub allow_read: Vec<String>,
    /// Deny reading (and writing) PATH; wins over allows on the same path.
    #[arg(long, value_name = "PATH[,PATH…]", help_heading = FILESYSTEM)]
    pub deny_read: Vec<String>,
    /// Allow writing PATH (e.g. `--allow-write=.` for the cwd).
    #[arg(long, value_name = "PATH[,PATH…]", help_heading = FILESYSTEM)]
    pub allow_write: Vec<String>,
    /// Deny writing PATH, even inside an allowed one.
    #[arg(long, value_name = "PATH[,PATH…]", help_heading = FILESYSTEM)]
    pub deny_write: Vec<String>,
    /// Pass environment variable NAME (or every NAME starting with PREFIX).
    #[arg(long, value_name = "NAME|PREFIX*", value_delimiter = ',', help_heading = ENVIRONMENT)]
    pub allow_env: Vec<String>,
    /// Drop environment variable NAME (or PREFIX*) even if allowed.
    #[arg(long, value_name = "NAME|PREFIX*", value_delimiter = ',', help_heading = ENVIRONMENT)]
    pub deny_env: Vec<String>,
    /// Set KEY=VALUE in the command's environment.
    #[arg(long = "env", value_name = "KEY=VALUE", help_heading = ENVIRONMENT)]
    pub env_set: Vec<String>,
    /// Make a host unix socket reachable (they are all hidden by default).
    #[arg(long, value_name = "PATH[,PATH…]", help_heading = NETWORK)]
    pub allow_unix_socket: Vec<String>,
    /// Allow network to HOST[:PORT] through zerobox's proxy (bare: any host).
    #[arg(long, value_name = "HOST[:PORT][,…]", num_args = 0..=1, require_equals = true,
          default_missing_value = "*", value_delimiter = ',', help_heading = NETWORK)]
    pub allow_net: Vec<String>,
    /// Deny network to HOST[:PORT]; wins over --allow-net.
    #[arg(long, value_name = "HOST[:PORT][,…]", value_delimiter = ',', help_heading = NETWORK)]
    pub deny_net: Vec<String>,
    /// Inject secret NAME (from zerobox's env, NAME=@FILE, or NAME=VALUE).
    #[arg(long, value_name = "NAME[=@FILE]", help_heading = NETWORK)]
    pub secret: Vec<SecretArg>,
    /// Bind secret NAME to host patterns it may be sent to.
    #[arg(long, value_name = "NAME=HOST[,HOST…]", help_heading = NETWORK)]
    pub secret_host: Vec<String>,
    /// Pin HOST:PORT to ADDR for the proxy (as curl's --resolve).
    #[arg(long, value_name = "HOST:PORT:ADDR", help_heading = NETWORK)]
    pub resolve: Vec<String>,
    /// Also trust this CA (PEM) when the proxy verifies upstream servers.
    #[arg(long, value_name = "FILE", help_heading = NETWORK)]
    pub ca_cert: Vec<PathBuf>,
    /// Write one JSON line per proxied connection or request to FILE.
    #[arg(long, value_name = "FILE", help_heading = NETWORK)]
    pub net_log: Option<PathBuf>,
    /// Give the command the host's raw network (no proxy, no isolation; warns).
    #[arg(long, help_heading = NETWORK)]
    pub share_net: bool,
    /// Run the command in DIR (default: the current directory).
    #[arg(short = 'C', long = "cwd", value_name = "DIR", help_heading = RUNNING)]
    pub cwd: Option<PathBuf>,
    /// Run WITHOUT any sandbox (prints a warning).
    #[arg(long, help_heading = RUNNING)]
    pub no_sandbox: bool,
    /// Refuse to run unless every sandbox layer holds (no fallback).
    #[arg(long, help_heading = RUNNING)]
    pub strict: bool,
    /// Size of each of the private /tmp and /dev/shm (e.g. 512m, 4g; default 1g).
    #[arg(long, value_name = "SIZE", value_parser = crate::sandbox::linux::limits::parse_size,
          help_heading = LIMITS)]
    pub tmp_size: Option<u64>,
    /// Most processes (and threads) the sandbox may have (default 4096).
    #[arg(long, value_name = "N", value_parser = crate::sandbox::linux::limits::parse_pids,
          help_heading = LIMITS)]
    pub pids: Option<u64>,
    /// Memory limit, where a cgroup is available (default: half the RAM).
    #[arg(long, value_name = "SIZE", value_parser = crate::sandbox::linux::limits::parse_size,
          help_heading = LIMITS)]
    pub memory: Option<u64>,
    /// Accept network in the Landlock-only fallback, where the command can
    /// connect to any address on the proxy's port (docs/network.md §1).
    #[arg(long, conflicts_with = "strict", help_heading = NETWORK)]
    pub allow_weak_net: bool,
    /// Print each setup step and the resolved policy to stderr.
    #[arg(long, help_heading = RUNNING)]
    pub debug: bool,
    /// Print the resolved policy and enforcing layers, run nothing.
    #[arg(long, help_heading = RUNNING)]
    pub dry_run: bool,
    /// Never use the network for presets: cached and bundled ones only (also ZEROBOX_OFFLINE=1).
    #[arg(long, help_heading = RUNNING)]
    pub offline: bool,
    /// Apply a preset or policy file (repeatable, merged left to right).
    #[arg(long, value_name = "NAME|FILE", help_heading = RUNNING)]
    pub profile: Vec<String>,
    // --- profile building (issue 11; src/profile) ---
    /// Run CMD with reads denied by default and ask on the terminal about
    /// every new file, write and host; every answer goes into FILE (a
    /// profile for `--profile FILE`). Re-running extends FILE.
    #[arg(long, value_name = "FILE", help_heading = RUNNING)]
    pub build_profile: Option<PathBuf>,
    /// Hide notices: a preset's first-run summary and the end-of-run
    /// "blocked" lines (--net-log still records them). Warnings and errors
    /// always print.
    #[arg(long, help_heading = RUNNING)]
    pub quiet: bool,
}

impl SandboxArgs {
    /// The CLI's policy layer (always merged last).
    pub fn to_layer(&self) -> Result<PolicyLayer, Fatal> {
        let mut layer = PolicyLayer::new(crate::policy::Origin::Cli);
        layer.read_allow = path_list("--allow-read", &self.allow_read)?;
        layer.read_deny = path_list("--deny-read", &self.deny_read)?;
        layer.write_allow = path_list("--allow-write", &self.allow_write)?;
        layer.write_deny = path_list("--deny-write", &self.deny_write)?;
        layer.env_allow = self.allow_env.clone();
        layer.env_deny = self.deny_env.clone();
        for kv in &self.env_set {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(Fatal::usage(format!(
                    "invalid --env value {kv:?}: expected KEY=VALUE"
                )));
            };
            layer.env_set.push((k.to_string(), v.to_string()));
        }
        layer.unix_sockets = path_list("--allow-unix-socket", &self.allow_unix_socket)?;
        for host in &self.allow_net {
            if host == "*" {
                layer.net_allow_any = true;
            } else if !host.is_empty() {
                layer.net_allow.push(host.clone());
            }
        }
        layer.net_deny = self.deny_net.clone();
        for spec in &self.secret {
            let spec = spec.0.as_str();
            let (name, from) = match spec.split_once('=') {
                None => (spec, None),
                Some((name, v)) if v.starts_with('@') => {
                    (name, Some(SecretSource::File(v[1..].to_string())))
                }
                // NAME=VALUE: the value stays out of the policy (it would
                // show in `explain`); `inline_secrets` carries it.
                Some((name, _)) => (name, Some(SecretSource::Inline)),
            };
            layer.secrets.push(SecretSpec {
                name: name.to_string(),
                from,
                hosts: Vec::new(),
            });
        }
        for binding in &self.secret_host {
            let Some((name, hosts)) = binding.split_once('=') else {
                return Err(Fatal::usage(format!(
                    "invalid --secret-host {binding:?}: expected NAME=HOST[,HOST…]"
                )));
            };
            let hosts: Vec<String> = hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect();
            // Bound after merging, so a preset's secret can be bound to a
            // test or proxy host from the command line too.
            layer.secret_hosts.push((name.to_string(), hosts));
        }
        Ok(layer)
    }

    /// `--secret NAME=VALUE` values (kept out of the policy and zeroized).
    fn inline_secrets(&self) -> InlineSecrets {
        InlineSecrets(
            self.secret
                .iter()
                .filter_map(|spec| {
                    let (name, v) = spec.0.split_once('=')?;
                    (!v.starts_with('@'))
                        .then(|| (name.to_string(), zeroize::Zeroizing::new(v.to_string())))
                })
                .collect(),
        )
    }
}

/// Split path flag values on commas. `\,` is a comma inside a path and
/// `\\` a backslash. A value with a plain comma that names an existing
/// path as a whole is refused: splitting it would silently protect (or
/// grant) two other paths instead of the one meant.
fn path_list(flag: &str, values: &[String]) -> Result<Vec<String>, Fatal> {
    let mut out = Vec::new();
    for value in values {
        let mut parts = vec![String::new()];
        let mut plain_comma = false;
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some(',') | Some('\\')) => {
                    parts
                        .last_mut()
                        .into_iter()
                        .for_each(|p| p.push(chars.next().unwrap_or(c)));
                }
                ',' => {
                    plain_comma = true;
                    parts.push(String::new());
                }
                c => parts.last_mut().into_iter().for_each(|p| p.push(c)),
            }
        }
        if plain_comma && names_existing_path(value) {
            return Err(Fatal::usage(format!(
                "invalid {flag} value {value:?}: it contains a comma and names an existing path as a whole; write \\, for a comma inside a path (e.g. {flag}='{}'), or give the paths as separate flags",
                value.replace(',', "\\,")
            )));
        }
        out.extend(parts.into_iter().filter(|p| !p.is_empty()));
    }
    Ok(out)
}

/// Does `value` (as written, `~` for HOME) name a path that exists?
fn names_existing_path(value: &str) -> bool {
    let path = match value.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(rest),
            None => return false,
        },
        None => PathBuf::from(value),
    };
    std::fs::symlink_metadata(path).is_ok()
}

/// One `--secret` argument. It may carry a value (`NAME=VALUE`), so its
/// Debug output shows the name only, and it is zeroized on drop.
#[derive(Clone, Default)]
pub struct SecretArg(zeroize::Zeroizing<String>);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretArg(zeroize::Zeroizing::new(s.to_string())))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.0.split('=').next().unwrap_or("");
        write!(f, "SecretArg({name})")
    }
}

/// Split argv at the first `--`: clap parses the flags and subcommands
/// before it; what follows is the command (`zerobox [FLAGS] -- CMD`,
/// `zerobox explain [FLAGS] -- CMD`, `zerobox run NAME -- ARGS`). A preset
/// run (`zerobox NAME ARGS…`) takes everything after its name; a `--` right
/// after the name is the separator, one after ARGS is an argument (see
/// `dispatch`).
fn split_at_dashes(args: Vec<OsString>) -> (Vec<OsString>, Option<Vec<OsString>>) {
    match args.iter().position(|a| a == "--") {
        Some(i) => {
            let mut head = args;
            let tail = head.split_off(i);
            (head, Some(tail[1..].to_vec()))
        }
        None => (args, None),
    }
}

/// Parse argv, run, and return the exit code. Never panics on bad input.
pub fn main(args: Vec<OsString>) -> i32 {
    let (head, tail) = split_at_dashes(args.clone());
    let parse_error =
        |e: clap::Error, argv: &[OsString]| crate::output::clap_error(&e, &Cli::command(), argv);
    // `zerobox preset|trust … -- ARGS`: those parsers take `--` themselves
    // (`preset show -- NAME`, a file named `-x`), so they see the whole argv.
    let takes_dashes = |c: &Cli| matches!(c.sub, Some(Sub::Preset(_) | Sub::Trust(_)));
    let whole = || Cli::try_parse_from(&args);
    let cli = match Cli::try_parse_from(&head) {
        Ok(c) if tail.is_some() && takes_dashes(&c) => match whole() {
            Ok(c) => c,
            Err(e) => return parse_error(e, &args),
        },
        Ok(c) => c,
        Err(e) => match tail.is_some().then(whole) {
            Some(Ok(c)) if takes_dashes(&c) => c,
            _ => return parse_error(e, &head),
        },
    };
    // Commands whose product is their output; a run's product is the
    // command's own exit status, which nothing zerobox prints may change.
    let prints = match &cli.sub {
        None | Some(Sub::External(_)) => cli.sandbox.dry_run,
        Some(Sub::Run { sandbox, .. }) => sandbox.dry_run,
        Some(_) => true,
    };
    let code = match dispatch(cli, tail) {
        Ok(code) => code,
        Err(fatal) => {
            // One line whatever a value in it holds (newline, ESC).
            crate::errln!("zerobox: {}", crate::output::one_line(&fatal.message));
            fatal.code
        }
    };
    match crate::output::stdout_failure() {
        Some(e) if prints && code == 0 => {
            crate::errln!("zerobox: cannot write the output: {e}");
            exit::OUTPUT
        }
        _ => code,
    }
}

fn dispatch(cli: Cli, tail: Option<Vec<OsString>>) -> Result<i32, Fatal> {
    // Re-attach what followed `--` for a preset's command. Right after the
    // preset's name (`zerobox NAME -- ARGS`, `zerobox run NAME -- ARGS`)
    // the `--` is zerobox's separator and is dropped (the agent would take
    // a literal `--` as "a prompt follows"); after the preset's own
    // arguments (`zerobox claude -p -- TEXT`) it is one of them, kept.
    let with_tail = |mut args: Vec<OsString>| {
        if let Some(t) = &tail {
            if !args.is_empty() {
                args.push("--".into());
            }
            args.extend(t.iter().cloned());
        }
        args
    };
    let command = tail.clone().unwrap_or_default();
    // `zerobox --offline --strict preset …`: the top-level flags count too.
    let top = crate::preset::RegistryFlags {
        strict: cli.sandbox.strict,
        offline: cli.sandbox.offline,
    };
    match cli.sub {
        Some(Sub::Doctor { json }) => Ok(launcher::doctor(json)),
        Some(Sub::Completions { shell }) => Ok(completions(shell)),
        Some(Sub::Man) => man_page(),
        Some(Sub::Preset(mut a)) => {
            a.registry.strict |= top.strict;
            a.registry.offline |= top.offline;
            Ok(crate::preset::run(a))
        }
        Some(Sub::Trust(mut a)) => {
            a.registry.strict |= top.strict;
            a.registry.offline |= top.offline;
            Ok(crate::preset::trust(a))
        }
        Some(Sub::Explain {
            sandbox,
            preset,
            json,
        }) => {
            let mut sandbox = *sandbox;
            sandbox.dry_run = true;
            if let Some(preset) = preset {
                return run_preset(&sandbox, &preset, command, json);
            }
            if command.is_empty() {
                return Err(Fatal::usage(
                    "no command given: usage `zerobox explain [FLAGS] -- CMD [ARGS…]` or `zerobox explain PRESET`",
                ));
            }
            let req = request(&sandbox, command)?;
            Ok(launcher::explain(&req, json)?)
        }
        Some(Sub::Run {
            sandbox,
            preset,
            args,
        }) => run_preset(&sandbox, &preset, with_tail(args), false),
        Some(Sub::Learn { sandbox, out }) => crate::profile::learn(&sandbox, &out, command),
        Some(Sub::External(mut argv)) => {
            let name = argv.remove(0);
            let name = name.to_string_lossy().into_owned();
            run_preset(&cli.sandbox, &name, with_tail(argv), false)
        }
        None => {
            if let Some(file) = &cli.sandbox.build_profile {
                return crate::profile::build(&cli.sandbox, file, command);
            }
            if command.is_empty() {
                return Err(Fatal::usage(
                    "no command given: usage `zerobox [FLAGS] -- CMD [ARGS…]` or `zerobox PRESET [ARGS…]` (see `zerobox --help`)",
                ));
            }
            let req = request(&cli.sandbox, command)?;
            if cli.sandbox.dry_run {
                Ok(launcher::explain(&req, false)?)
            } else {
                Ok(launcher::run(&req)?)
            }
        }
    }
}

pub(crate) fn preset_env(args: &SandboxArgs) -> Result<crate::preset::PresetEnv, Fatal> {
    let cwd = match &args.cwd {
        Some(d) => d.clone(),
        None => std::env::current_dir()
            .map_err(|e| Fatal::usage(format!("cannot read the current directory: {e}")))?,
    };
    let mut env = crate::preset::PresetEnv::from_system(&cwd, args.strict).map_err(Fatal::from)?;
    env.offline |= args.offline;
    Ok(env)
}

/// `zerobox NAME [ARGS…]` / `zerobox run NAME -- ARGS`: the preset's layers,
/// then `--profile`s, then the CLI flags; the preset's command with ARGS.
fn run_preset(
    args: &SandboxArgs,
    name: &str,
    extra: Vec<OsString>,
    json: bool,
) -> Result<i32, Fatal> {
    let env = preset_env(args)?;
    let is_file = name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml");
    if !is_file && !crate::preset::exists(name.split('@').next().unwrap_or(name), &env) {
        let mut close = crate::preset::suggestions(name, &env);
        close.retain(|c| c != name); // never "did you mean" the name itself
        let hint = if args.allow_net.iter().any(|h| h == "*") {
            // `--allow-net x`: the bare flag (any host) took no value, and
            // x became the command.
            format!(
                " (a bare --allow-net takes no value: write --allow-net={name} to allow that host)"
            )
        } else if close.is_empty() {
            " (run a program with `zerobox -- CMD`; list presets with `zerobox preset list`)"
                .to_string()
        } else {
            format!(" (did you mean: {}?)", close.join(", "))
        };
        return Err(Fatal::usage(format!(
            "no command or preset named {}{hint}",
            crate::output::quote(name)
        )));
    }
    // NAME@VERSION: run NAME only if that is the version it resolves to
    // here (pinned, cached or bundled); `preset pin` chooses another.
    let (base, version) = match name.split_once('@') {
        Some((base, v)) if !is_file => {
            let v = semver::Version::parse(v).map_err(|e| {
                Fatal::usage(format!(
                    "{}: bad version ({e}); expected NAME@1.2.3",
                    crate::output::quote(name)
                ))
            })?;
            (base, Some(v))
        }
        _ => (name, None),
    };
    let loaded = crate::preset::load(base, &env).map_err(Fatal::from)?;
    if let Some(v) = version {
        if loaded.version != v {
            return Err(Fatal::usage(format!(
                "{base} resolves to {base}@{} here, not {v}: `zerobox preset pin {base}@{v}` makes it the one used",
                loaded.version
            )));
        }
    }
    if loaded.command.is_empty() {
        return Err(Fatal::usage(format!(
            "preset {name} is a building block without a command: use it with `--profile {name} -- CMD`"
        )));
    }
    let mut command = vec![OsString::from(&loaded.command)];
    command.extend(loaded.args.iter().map(OsString::from));
    command.extend(extra);
    let mut req = request(args, command)?;
    if !args.dry_run {
        // What the preset grants, once per user and set of grants (never
        // in explain/--dry-run output, which is the full picture).
        crate::preset::first_run::maybe_show(&loaded, args.quiet);
    }
    let mut layers = loaded.layers;
    layers.append(&mut req.layers);
    req.layers = layers;
    if args.dry_run {
        Ok(launcher::explain(&req, json)?)
    } else {
        Ok(launcher::run(&req)?)
    }
}

pub(crate) fn request(args: &SandboxArgs, command: Vec<OsString>) -> Result<RunRequest, Fatal> {
    if args.build_profile.is_some() {
        return Err(Fatal::usage(
            "--build-profile runs a command: `zerobox --build-profile FILE [FLAGS] -- CMD` (not with a preset, `run`, `explain` or `learn`)",
        ));
    }
    if args.no_sandbox && args.strict {
        return Err(Fatal::usage(
            "--no-sandbox and --strict contradict each other: pick one",
        ));
    }
    // --profile layers come before the CLI's own layer (CLI flags last).
    let mut layers = Vec::new();
    if !args.profile.is_empty() {
        let env = preset_env(args)?;
        for p in &args.profile {
            let loaded = crate::preset::load(p, &env).map_err(Fatal::from)?;
            layers.extend(loaded.layers);
        }
    }
    layers.push(args.to_layer()?);
    Ok(RunRequest {
        layers,
        command,
        cwd: args.cwd.clone(),
        no_sandbox: args.no_sandbox,
        strict: args.strict,
        debug: args.debug,
        inline_secrets: args.inline_secrets(),
        resolve: args.resolve.clone(),
        ca_certs: args.ca_cert.clone(),
        net_log: args.net_log.clone(),
        share_net: args.share_net,
        allow_weak_net: args.allow_weak_net,
        quiet: args.quiet,
        limits: {
            let d = crate::sandbox::linux::limits::Limits::default();
            crate::sandbox::linux::limits::Limits {
                tmp_size: args.tmp_size.unwrap_or(d.tmp_size),
                pids: args.pids.unwrap_or(d.pids),
                memory: args.memory.or(d.memory),
            }
        },
        watcher: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_help() {
        for arg in Cli::command().get_arguments() {
            if arg.get_id() == "help" || arg.get_id() == "version" {
                continue;
            }
            assert!(arg.get_help().is_some(), "flag {} lacks help", arg.get_id());
        }
    }

    /// Every run flag sits under one of the help's headings (a new flag
    /// must pick one: `#[arg(help_heading = …)]`).
    #[test]
    fn every_flag_has_a_heading() {
        for arg in Cli::command().get_arguments() {
            if arg.get_id() == "help" || arg.get_id() == "version" {
                continue;
            }
            assert!(
                matches!(
                    arg.get_help_heading(),
                    Some(
                        "Filesystem"
                            | "Environment"
                            | "Network & secrets"
                            | "Running"
                            | "Resource limits"
                    )
                ),
                "flag {} has no heading",
                arg.get_id()
            );
        }
    }

    fn parse(args: &[&str]) -> Cli {
        let argv: Vec<OsString> = std::iter::once("zerobox")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        Cli::try_parse_from(split_at_dashes(argv).0).unwrap()
    }

    #[test]
    fn comma_lists_and_repeats() {
        let cli = parse(&["--allow-write=a,b", "--allow-write", "c", "--", "true"]);
        let layer = cli.sandbox.to_layer().unwrap();
        assert_eq!(layer.write_allow, ["a", "b", "c"]);
    }

    #[test]
    fn escaped_commas_stay_in_the_path() {
        let cli = parse(&[r"--deny-read=~/my\,secrets,/x\\y", "--", "true"]);
        let layer = cli.sandbox.to_layer().unwrap();
        assert_eq!(layer.read_deny, ["~/my,secrets", r"/x\y"]);
    }

    #[test]
    fn a_comma_in_an_existing_path_is_refused_not_split() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("my,secrets");
        std::fs::create_dir(&p).unwrap();
        let flag = format!("--deny-read={}", p.display());
        let err = parse(&[&flag, "--", "true"])
            .sandbox
            .to_layer()
            .unwrap_err();
        assert!(err.to_string().contains("comma"), "{err}");
        assert_eq!(err.code, crate::exit::USAGE);
    }

    #[test]
    fn dashes_split_the_command_off() {
        let argv = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (head, tail) = split_at_dashes(argv(&["zerobox", "-C", "x", "--", "sh", "--", "y"]));
        assert_eq!(head, argv(&["zerobox", "-C", "x"]));
        assert_eq!(tail.unwrap(), argv(&["sh", "--", "y"]));
        let (_, tail) = split_at_dashes(argv(&["zerobox", "claude", "-p", "hi"]));
        assert!(tail.is_none());
    }

    #[test]
    fn preset_names_are_external_subcommands() {
        let cli = parse(&["--allow-write=~/notes", "claude", "--version"]);
        assert_eq!(cli.sandbox.allow_write, ["~/notes"]);
        match cli.sub {
            Some(Sub::External(v)) => assert_eq!(v, ["claude", "--version"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bare_allow_net_means_any() {
        let cli = parse(&["--allow-net", "--", "true"]);
        let layer = cli.sandbox.to_layer().unwrap();
        assert!(layer.net_allow_any);
        let cli = parse(&["--allow-net=a.example,b.example", "--", "true"]);
        let layer = cli.sandbox.to_layer().unwrap();
        assert!(!layer.net_allow_any);
        assert_eq!(layer.net_allow, ["a.example", "b.example"]);
    }

    #[test]
    fn explain_takes_the_same_flags() {
        let cli = parse(&["explain", "--allow-write=.", "--", "make"]);
        match cli.sub {
            Some(Sub::Explain { sandbox, .. }) => {
                assert_eq!(sandbox.allow_write, ["."]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secret_values_never_in_debug_output() {
        let cli = parse(&["--secret", "K=hunter2-value", "--", "true"]);
        let shown = format!("{cli:?} {:?}", cli.sandbox.inline_secrets());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("K=<redacted>"), "{shown}");
    }

    #[test]
    fn env_needs_key_value() {
        let cli = parse(&["--env", "NOPE", "--", "true"]);
        let err = cli.sandbox.to_layer().unwrap_err();
        assert!(err.message.contains("\"NOPE\""));
    }
}
