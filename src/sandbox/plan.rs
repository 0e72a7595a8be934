//! The [`Plan`]: every decision of one run, made once, before anything is
//! set up. `explain` prints it; `spawn` executes it. Nothing else decides
//! the mode, the mounts, the Landlock request, the seccomp socket rules,
//! the proxy endpoint or the guarded paths.
//!
//! The mode comes from probes of the machine alone ([`choose_mode`]): the
//! plan is made before setup, and a failure while executing it never
//! leads to another mode (see `error`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::linux::{self, mounts::Step, seccomp::SocketRules};
use super::{
    guard, implicit_rules, landlock_abi, Mode, Options, SandboxError, Simulated, Stage,
    PRIVATE_TMP_ORIGIN,
};
use crate::policy::{FsRule, Policy};

/// Where the proxy's listener will be.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyPlan {
    /// Inside the sandbox's network namespace on 127.0.0.1:PORT (chosen
    /// now), or on host loopback with a port chosen when it is bound
    /// (`None`; Landlock then allows TCP connect to that port only). Not
    /// shown: each plan picks its own.
    #[serde(skip)]
    pub port: Option<u16>,
    pub in_namespace: bool,
}

/// Everything one run will do.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub mode: Mode,
    /// What each layer does, for `explain`.
    pub layers: Vec<String>,
    /// Announced weaker points (printed before the command starts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weaker: Vec<String>,
    pub landlock_abi: i32,
    /// The sandbox's temp dir: `/tmp` (private tmpfs) in the namespaces, a
    /// fresh host directory (created when the run starts) in the fallback.
    pub tmpdir: PathBuf,
    /// Mount steps, in order (namespaces only).
    pub mounts: Vec<Step>,
    /// Protected paths that do not exist and could be created: guarded
    /// from outside (journal, check, quarantine; `sandbox::guard`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guarded: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyPlan>,
    /// The Landlock request (its TCP port filled in at start in the
    /// fallback); `None` without Landlock.
    #[serde(skip)]
    pub landlock: Option<linux::landlock::Request>,
    #[serde(skip)]
    pub seccomp: SocketRules,
    /// The policy with the implicit rules of the mode added.
    #[serde(skip)]
    pub policy: Policy,
    /// The namespace probe's child, still tearing down its namespaces
    /// after its verdict: reaped when the plan is dropped (after the
    /// sandbox has started), so the run does not wait for it.
    #[serde(skip)]
    pub(super) probe_child: Option<linux::ProbeChild>,
    /// Where the run's cgroup is made, or why it has none.
    #[serde(skip)]
    pub(super) cgroup_parent: Result<PathBuf, String>,
}

/// Make the plan for `policy` on this machine, or refuse.
pub fn plan(policy: &Policy, opts: &Options) -> Result<Plan, SandboxError> {
    let sim = Simulated::from_env();
    // The probe's child runs while the namespace mode's part of the plan
    // is made (the mode nearly every run gets; the fallback's part is made
    // after the verdict, when it is the fallback).
    let probe = (!sim.no_userns).then(linux::probe_start_for_run);
    let in_namespaces = Parts::new(policy, Mode::Namespaces, Path::new("/tmp"));
    let (mode, mut weaker, probe_child) = choose_mode(opts, sim, probe)?;
    let abi = landlock_abi(sim);
    let tmpdir = match mode {
        Mode::Namespaces => PathBuf::from("/tmp"),
        Mode::LandlockOnly => std::env::temp_dir().join(format!(
            "{}{}-{:016x}",
            linux::reaper::TMP_PREFIX,
            std::process::id(),
            rand::random::<u64>()
        )),
    };
    let wants_network = opts.network.is_some();
    if wants_network && mode == Mode::LandlockOnly && abi < 4 {
        return Err(SandboxError::new(
            Stage::Refused,
            "network without a network namespace needs Landlock ABI >= 4 to confine TCP to the proxy; refusing --allow-net (run `zerobox doctor`)",
        ));
    }
    // Without a network namespace Landlock confines TCP per port, not per
    // address: refused before anything is set up unless the user accepts it.
    if wants_network && mode == Mode::LandlockOnly {
        if !opts.allow_weak_net {
            return Err(SandboxError::new(Stage::Refused, super::WEAK_NET_REFUSAL));
        }
        weaker.push(super::WEAK_NET_WARNING.to_string());
    }
    let Parts {
        full,
        mounts,
        guarded,
    } = match mode {
        Mode::Namespaces => in_namespaces,
        Mode::LandlockOnly => Parts::new(policy, mode, &tmpdir),
    };
    let proxy = wants_network.then(|| ProxyPlan {
        port: (mode == Mode::Namespaces).then(|| 20000 + (rand::random::<u16>() % 40000)),
        in_namespace: mode == Mode::Namespaces,
    });
    let seccomp = SocketRules {
        deny_inet_udp: mode == Mode::LandlockOnly && !opts.share_net,
        deny_inet: mode == Mode::LandlockOnly && !wants_network && !opts.share_net,
    };
    let landlock = (abi > 0).then(|| linux::landlock::Request {
        abi,
        precise_writes: mode == Mode::LandlockOnly,
        tcp_connect: proxy.as_ref().and_then(|p| p.port).into_iter().collect(),
        restrict_tcp: !opts.share_net,
    });
    // Looked up once: the layers say it, the run makes its cgroup there.
    let cgroup_parent = linux::cgroup::find_parent();
    let layers = describe_layers(policy, opts, mode, abi, &cgroup_parent);
    Ok(Plan {
        mode,
        layers,
        weaker,
        landlock_abi: abi,
        tmpdir,
        mounts,
        guarded,
        proxy,
        landlock,
        seccomp,
        policy: full,
        probe_child,
        cgroup_parent,
    })
}

/// The mode-dependent part of a plan: the policy with the mode's implicit
/// rules, the mount steps, the guarded paths.
struct Parts {
    full: Policy,
    mounts: Vec<Step>,
    guarded: Vec<PathBuf>,
}

impl Parts {
    fn new(policy: &Policy, mode: Mode, tmpdir: &Path) -> Parts {
        let full = with_rules(policy, implicit_rules(policy, mode, tmpdir));
        let lstats = super::lstats::Lstats::default();
        let mounts = match mode {
            Mode::Namespaces => linux::mounts::plan(&full, &lstats),
            Mode::LandlockOnly => Vec::new(),
        };
        // The guards look at host paths as the command will see them: in
        // the namespaces the private /tmp's write right is not one on the
        // host.
        let mut host_view = full.clone();
        if mode == Mode::Namespaces {
            host_view.fs.retain(|r| r.origin != PRIVATE_TMP_ORIGIN);
        }
        let guarded = guard::missing_protected(&host_view, &lstats);
        Parts {
            full,
            mounts,
            guarded,
        }
    }
}

/// Decide the mode from probes of the machine and the options, or refuse.
/// `probe` is the run's namespace probe, started (none when user
/// namespaces are simulated as missing).
fn choose_mode(
    opts: &Options,
    sim: Simulated,
    probe: Option<linux::ProbeRun>,
) -> Result<(Mode, Vec<String>, Option<linux::ProbeChild>), SandboxError> {
    let abi = landlock_abi(sim);
    let mut weaker = Vec::new();
    let Some(probe) = probe else {
        return fallback_mode(opts, abi, "user namespaces are disabled (simulated)");
    };
    let (verdict, child) = probe.finish();
    // The probe is the only way to the fallback: a child in fresh
    // namespaces writes its uid map and mounts a tmpfs, touching nothing
    // of the policy. If it works, the run's own setup must work too, and
    // any failure there refuses to run (see `error`).
    if let Err(why) = verdict {
        drop(child); // reaped now: the fallback starts no namespaces
        return fallback_mode(opts, abi, &format!("user namespaces unusable ({why})"));
    }
    if abi == 0 {
        if opts.strict {
            return Err(SandboxError::new(
                Stage::Refused,
                "Landlock is not available on this kernel and --strict refuses to run without it (run `zerobox doctor`)",
            ));
        }
        weaker.push("Landlock unavailable: namespaces and seccomp only".into());
    }
    Ok((Mode::Namespaces, weaker, child))
}

fn fallback_mode(
    opts: &Options,
    abi: i32,
    why: &str,
) -> Result<(Mode, Vec<String>, Option<linux::ProbeChild>), SandboxError> {
    if abi == 0 {
        return Err(SandboxError::new(
            Stage::Refused,
            format!(
                "no sandbox layer available: {why} and Landlock is missing; run `zerobox doctor`, or pass --no-sandbox to run unprotected"
            ),
        ));
    }
    if opts.strict {
        return Err(SandboxError::new(
            Stage::Refused,
            format!("{why}; --strict refuses the Landlock-only fallback (run `zerobox doctor`)"),
        ));
    }
    Ok((
        Mode::LandlockOnly,
        vec![format!(
            "{why}: running with Landlock + seccomp only (no private /tmp, no pid isolation, host unix sockets reachable; a writable directory that contains write-protected paths is writable only in its subdirectories)"
        )],
        None,
    ))
}

fn describe_layers(
    policy: &Policy,
    opts: &Options,
    mode: Mode,
    abi: i32,
    cgroup_parent: &Result<PathBuf, String>,
) -> Vec<String> {
    let mut layers = Vec::new();
    if mode == Mode::Namespaces {
        layers.push("namespaces: user, mount, net (only lo), pid (own init), ipc, uts".into());
        layers.push(
            "mounts: host read-only, private /tmp, minimal /dev, fresh /proc, masks (listening host unix sockets included)"
                .into(),
        );
    }
    if abi > 0 {
        let mut l = format!("landlock ABI {abi}: filesystem rules");
        if abi >= 4 {
            l.push_str(", TCP bind/connect denied");
        }
        if abi >= 6 {
            l.push_str(", abstract unix sockets and signals scoped");
        }
        if abi >= 9 {
            l.push_str(", pathname unix socket connect restricted");
        }
        layers.push(l);
    }
    layers.push("seccomp: mount, namespaces, ptrace, bpf, keyrings, io_uring, TIOCSTI, raw sockets … refused".into());
    layers.push("capabilities: all dropped, no_new_privs".into());
    layers.extend(
        linux::limits::describe(
            &opts.limits,
            mode == Mode::Namespaces,
            linux::sys::getuid(),
            &linux::cgroup::described(cgroup_parent),
        )
        .into_iter()
        .map(|l| format!("limits: {l}")),
    );
    if opts.share_net {
        layers.push("network: the host's own (--share-net): no isolation".into());
    } else if policy.network.wants_network() || !policy.secrets.is_empty() {
        layers.push(format!(
            "network: only through zerobox's proxy ({}); {}",
            if policy.network.allow_any {
                "any host".to_string()
            } else {
                format!("{} host pattern(s)", policy.network.allow.len())
            },
            if mode == Mode::Namespaces {
                "its listener (and the transparent-egress DNS and capture listeners) are the only sockets in the sandbox's network namespace"
            } else if opts.allow_weak_net {
                "on host loopback, Landlock allows TCP connect to its port only (on any address: --allow-weak-net)"
            } else {
                "REFUSED in this mode without --allow-weak-net (Landlock confines TCP per port, not per address)"
            }
        ));
        layers.push(if mode == Mode::Namespaces {
            let ports: Vec<String> = capture_ports(policy)
                .iter()
                .map(u16::to_string)
                .collect();
            format!(
                "transparent egress: allowed names resolve inside (DNS on 127.0.0.1:53, synthetic 198.18.0.0/15 and 2001:2::/48, nothing forwarded upstream); connections to them on TCP ports {} are captured and decided as CONNECT name:port; other ports (host:* or a bare --allow-net) only through the proxy variables",
                ports.join(", ")
            )
        } else {
            "transparent egress: not available without a network namespace (no DNS inside; only clients that use the proxy variables reach allowed hosts)".to_string()
        });
    } else {
        layers.push("network: none (only lo)".into());
    }
    layers
}

/// The ports a run of `policy` captures (as the proxy computes them, less
/// DNS's 53), for `explain`.
fn capture_ports(policy: &Policy) -> Vec<u16> {
    use crate::policy::net::{HostPattern, Portless};
    let secret_hosts: Vec<HostPattern> = policy
        .secrets
        .iter()
        .flat_map(|s| &s.hosts)
        .filter_map(|h| HostPattern::parse(h, Portless::Web).ok())
        .collect();
    let mut ports =
        crate::proxy::capture_ports_for(policy.network.allow.iter().chain(&secret_hosts));
    ports.retain(|p| *p != 53);
    ports
}

fn with_rules(policy: &Policy, extra: Vec<FsRule>) -> Policy {
    let mut p = policy.clone();
    p.fs.extend(extra);
    p.fs.sort_by(|a, b| a.path.cmp(&b.path).then(a.access.cmp(&b.access)));
    p.fs.dedup_by(|a, b| a.path == b.path && a.access == b.access);
    p
}

impl Plan {
    /// The fallback's private temp dir, created 0700 (never an existing
    /// one: a name someone planted is refused).
    pub(super) fn create_private_tmp(&self) -> Result<Option<PathBuf>, SandboxError> {
        use std::os::unix::fs::DirBuilderExt;
        if self.mode != Mode::LandlockOnly {
            return Ok(None);
        }
        // What runs killed all at once left behind (their reaper died too).
        linux::reaper::remove_stale_tmp_dirs(self.tmpdir.parent().unwrap_or(Path::new("/tmp")));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.tmpdir)
            .map_err(|e| {
                SandboxError::new(
                    Stage::Internal,
                    format!("create the private temp dir {}: {e}", self.tmpdir.display()),
                )
                .with_path(&self.tmpdir)
            })?;
        Ok(Some(self.tmpdir.clone()))
    }

    pub fn tmpdir(&self) -> &Path {
        &self.tmpdir
    }
}
