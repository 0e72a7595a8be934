//! The egress proxy: the only way out of the sandbox's network namespace.
//!
//! One listening port speaks HTTP/1.1 forward proxy (absolute-form
//! requests), `CONNECT`, and SOCKS5, told apart by the first byte. Every
//! destination is checked against `--allow-net`/`--deny-net` before any DNS
//! query, resolved once, its address checked, and connected to by that
//! address. Hosts a secret is bound to are TLS-intercepted so placeholders
//! can be swapped for real values; everything else is tunnelled untouched.
//! See `docs/network.md` for the full story.
//!
//! Files, one concern each:
//! - `mod.rs`: public API (config, errors, start/shutdown, env for the sandbox).
//! - `host.rs`: host patterns, normalisation, matching.
//! - `addr.rs`: refused address classes, this host's own addresses.
//! - `policy.rs`: the decision (deny/allow), resolution, address checks.
//! - `conn.rs`: accept loop, protocol sniffing, the HTTP front door.
//! - `tunnel.rs`: an open tunnel: intercept it or relay it; the HTTP/1
//!   server builder.
//! - `relay.rs`: bytes both ways (splice between sockets), idle timeout,
//!   byte counts; tunnels and upgrades.
//! - `http.rs`: forwarding one HTTP request upstream (injection, redaction,
//!   upgrades), dialing upstream (direct or via a chained proxy).
//! - `socks.rs`: the SOCKS5 handshake.
//! - `tls.rs`: interception CA, leaf certificates, upstream root store.
//! - `secrets.rs`: secret values, placeholders, streaming substitution.
//! - `placeholder_key.rs`: the per-user key placeholders are derived from.
//! - `log.rs`: JSON-lines net log, the blocked tally, quiet hosts.
//! - `summary.rs`: the end-of-run report of refusals, a hint per kind.
//! - `dns.rs`: the sandbox's DNS responder (allowed names get synthetic
//!   addresses, nothing is forwarded).
//! - `capture.rs`: connections to synthetic addresses, handled as
//!   `CONNECT name:port` (transparent egress).

mod addr;
mod capture;
mod conn;
mod dns;
mod host;
mod http;
mod log;
mod placeholder_key;
mod policy;
mod relay;
mod secrets;
mod socks;
mod summary;
mod tls;
mod tunnel;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use capture::capture_ports_for;
pub use host::{Host, HostPattern};
pub use placeholder_key::PlaceholderKey;
pub use policy::HostHook;
pub use secrets::Secret;
pub use summary::{Blocked, ProxySummary, Why};

/// Boxed error used by bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the proxy, one variant per step. The first group comes from
/// configuring or starting it (`prepare`, `start`); the second from
/// serving one exchange, and ends up in the exchange's net-log line and in
/// the error answer the client gets. Each carries the host, port or
/// syscall it is about, and keeps its cause as `source()` (print the whole
/// chain with [`error_chain`]). Never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Pattern(String),
    #[error("--resolve: {0}")]
    Resolve(String),
    #[error("{0}")]
    Secret(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
    /// The `--net-log` path is unsafe or cannot be opened (a usage error:
    /// the user names another path).
    #[error("{0}")]
    NetLog(String),

    /// The client's request cannot be forwarded as sent.
    #[error("bad request: {what}")]
    ParseRequest { what: &'static str },
    /// The client's request body could not be read (it hung up or stalled).
    #[error("client: reading the request body")]
    ClientBody(#[source] BoxError),
    /// `connect(2)` to the checked address(es) of `host:port` failed.
    #[error("upstream: connect to {host}:{port}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The corporate proxy chained through refused or failed the CONNECT.
    #[error("upstream proxy: CONNECT {host}:{port}")]
    UpstreamProxy {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake with the client of an intercepted tunnel failed.
    #[error("client: TLS handshake for {host}")]
    TlsClient {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake with the upstream failed (untrusted certificate,
    /// not TLS, timeout).
    #[error("upstream: TLS handshake with {host}:{port}")]
    TlsUpstream {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP handshake with the upstream failed.
    #[error("upstream: HTTP handshake with {host}:{port}")]
    Handshake {
        host: String,
        port: u16,
        #[source]
        source: hyper::Error,
    },
    /// A secret's value cannot be put where its placeholder was.
    #[error("secret value is not valid in header {header}")]
    Inject { header: String },
    /// The request to the upstream failed (reset, closed, bad response).
    #[error("upstream: request to {host}:{port} failed")]
    Request {
        host: String,
        port: u16,
        #[source]
        source: BoxError,
    },
    /// The upstream sent no response head in time.
    #[error("upstream: {host}:{port} sent no response within {secs} s")]
    ResponseTimeout { host: String, port: u16, secs: u64 },
    /// The upstream's response body could not be read for redaction.
    #[error("upstream: reading the response body of {host}:{port}")]
    ResponseBody {
        host: String,
        port: u16,
        #[source]
        source: BoxError,
    },
}

/// `e` and its causes, `outer: inner: innermost` (each once).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// `--resolve HOST:PORT:ADDR[,ADDR…]`: use these addresses for HOST on
/// PORT instead of DNS. Counts as naming the address on purpose, so a pin
/// to a loopback or private address is honoured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveOverride {
    pub host: String,
    pub port: u16,
    pub addrs: Vec<IpAddr>,
}

/// Parse `HOST:PORT:ADDR` (as curl's `--resolve`); ADDR may be `[v6]` and
/// may be a comma-separated list.
pub fn parse_resolve(s: &str) -> Result<ResolveOverride, ProxyError> {
    let bad = |why: &str| ProxyError::Resolve(format!("{s:?}: {why} (want HOST:PORT:ADDR)"));
    let (host, rest) = if let Some(r) = s.strip_prefix('[') {
        let close = r.find(']').ok_or_else(|| bad("missing ]"))?;
        let rest = r[close + 1..]
            .strip_prefix(':')
            .ok_or_else(|| bad("missing port"))?;
        (format!("[{}]", &r[..close]), rest)
    } else {
        let (h, rest) = s.split_once(':').ok_or_else(|| bad("missing port"))?;
        (h.to_string(), rest)
    };
    let (port, addrs) = rest.split_once(':').ok_or_else(|| bad("missing address"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("bad port"))?;
    let host = match Host::parse(&host).map_err(|_| bad("bad host"))? {
        Host::Name(n) => n,
        Host::Ip(_) => return Err(bad("host must be a name")),
    };
    let mut out = Vec::new();
    for a in addrs.split(',') {
        let a = a.trim();
        let a = a
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(a);
        out.push(a.parse::<IpAddr>().map_err(|_| bad("bad address"))?);
    }
    if out.is_empty() {
        return Err(bad("no address"));
    }
    Ok(ResolveOverride {
        host,
        port,
        addrs: out,
    })
}

/// Check an `--allow-net`/`--deny-net`/secret host pattern (for early CLI
/// errors, exit 2).
pub fn validate_pattern(p: &str) -> Result<(), ProxyError> {
    HostPattern::parse(p, host::Portless::Web)
        .map(|_| ())
        .map_err(|e| ProxyError::Pattern(e.to_string()))
}

/// What the proxy enforces. `Debug` shows no credential: secrets print
/// their names only, and the upstream proxy URL without its `user:pass@`.
#[derive(Default)]
pub struct ProxyConfig {
    /// `--allow-net=HOST[:PORT]` patterns, parsed by `policy::resolve`
    /// (port-less: 80 and 443).
    pub allow: Vec<HostPattern>,
    /// Bare `--allow-net`: any host (still through the proxy, still
    /// address-checked).
    pub allow_any: bool,
    /// `--deny-net` patterns; deny wins. Parsed with `Portless::Any`: a
    /// port-less deny covers all ports.
    pub deny: Vec<HostPattern>,
    /// `network.quiet` patterns (the `--allow-net` grammar): refusals of
    /// these hosts as not allowed are left out of the summary.
    pub quiet: Vec<HostPattern>,
    pub secrets: Vec<Secret>,
    pub resolve: Vec<ResolveOverride>,
    /// `--ca-cert FILE`: extra roots for verifying intercepted upstreams.
    pub extra_ca_certs: Vec<PathBuf>,
    /// Where the interception CA lives (created 0700).
    pub ca_dir: PathBuf,
    /// `--net-log FILE`.
    pub net_log: Option<PathBuf>,
    /// `http://[user:pass@]host:port` of a proxy to chain through.
    pub upstream_proxy: Option<String>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("allow", &self.allow)
            .field("allow_any", &self.allow_any)
            .field("deny", &self.deny)
            .field("quiet", &self.quiet)
            .field("secrets", &self.secrets)
            .field("resolve", &self.resolve)
            .field("extra_ca_certs", &self.extra_ca_certs)
            .field("ca_dir", &self.ca_dir)
            .field("net_log", &self.net_log)
            .field(
                "upstream_proxy",
                &self.upstream_proxy.as_deref().map(http::without_userinfo),
            )
            .finish()
    }
}

/// The hosts secrets are bound to by exact name or address: their leaves
/// can be issued before anyone asks.
fn warm_hosts(secrets: &[Arc<Secret>]) -> Vec<Host> {
    let mut hosts: Vec<Host> = Vec::new();
    for s in secrets {
        for p in s.host_patterns() {
            let h = match p.kind {
                host::HostKind::Exact(n) => Host::Name(n),
                host::HostKind::Ip(a) => Host::Ip(a),
                _ => continue,
            };
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    hosts
}

/// Shared state of a running proxy.
pub(crate) struct State {
    pub policy: policy::Policy,
    pub secrets: Vec<Arc<Secret>>,
    pub tls: tls::TlsState,
    pub log: log::NetLog,
    pub upstream_proxy: Option<http::UpstreamProxy>,
    /// Every resolution performed (overrides included); tests use it to
    /// prove that denied names are never resolved.
    pub resolutions: AtomicU64,
    /// Resolutions that went to the system resolver.
    pub dns_queries: AtomicU64,
    /// A tunnel or upgrade with no byte either way this long is closed
    /// ([`relay::IDLE_TIMEOUT`]; tests shorten it).
    pub idle_timeout: std::time::Duration,
    /// Names the sandbox's DNS gave synthetic addresses (transparent
    /// egress, [`dns`]).
    pub synth: dns::Synth,
    /// Upstream connections kept for reuse ([`http::MAX_PARKED`]).
    pub parked: Arc<std::sync::atomic::AtomicUsize>,
}

/// A running proxy. Dropping it without [`ProxyHandle::shutdown`] stops it too.
pub struct ProxyHandle {
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    local_addr: std::net::SocketAddr,
}

/// Alias kept for the API sketch: the running proxy is its handle.
pub type Proxy = ProxyHandle;

/// Serve on an already-bound listener. Returns at once; the proxy runs on
/// its own tokio runtime (2 worker threads).
pub fn start(
    listener: std::net::TcpListener,
    config: ProxyConfig,
) -> Result<ProxyHandle, ProxyError> {
    prepare(config)?.serve(listener)
}

/// A configured proxy that does not serve yet: everything that can fail on
/// bad configuration (patterns, secrets, CA, log file, upstream proxy) is
/// done, and no thread exists. The launcher prepares the proxy before it
/// forks the sandbox (which must happen while zerobox is single-threaded),
/// writes the CA bundle and placeholders into the sandbox, then serves the
/// listener the sandbox hands back.
pub struct PreparedProxy {
    state: Arc<State>,
}

/// Validate `config` and load (or create) the interception CA.
pub fn prepare(config: ProxyConfig) -> Result<PreparedProxy, ProxyError> {
    let policy = policy::Policy::new(&config)?;
    let tls = tls::TlsState::new(
        &config.ca_dir,
        &config.extra_ca_certs,
        !config.secrets.is_empty(),
    )?;
    let log = log::NetLog::new(config.net_log.as_deref())?.with_quiet(config.quiet.clone());
    let upstream_proxy = match &config.upstream_proxy {
        None => None,
        Some(u) if u.trim().is_empty() => None,
        Some(u) => Some(http::UpstreamProxy::parse(u)?),
    };
    let state = Arc::new(State {
        policy,
        secrets: config.secrets.into_iter().map(Arc::new).collect(),
        tls,
        log,
        upstream_proxy,
        resolutions: AtomicU64::new(0),
        dns_queries: AtomicU64::new(0),
        idle_timeout: relay::IDLE_TIMEOUT,
        synth: dns::Synth::default(),
        parked: Arc::default(),
    });
    Ok(PreparedProxy { state })
}

impl PreparedProxy {
    /// `--build-profile` / `learn`: consult `hook` at the decision point
    /// (see [`policy::HostHook`]). Before [`PreparedProxy::serve`].
    pub fn set_host_hook(&mut self, hook: Arc<dyn policy::HostHook>) -> Result<(), ProxyError> {
        Arc::get_mut(&mut self.state)
            .map(|s| s.policy.set_hook(hook))
            .ok_or_else(|| ProxyError::Io("the proxy already serves (bug)".into()))
    }

    /// System roots + the zerobox CA, PEM, for `SSL_CERT_FILE` inside.
    pub fn ca_bundle_pem(&self) -> String {
        self.state.tls.bundle_pem()
    }

    /// `(NAME, placeholder)` for every secret, for the sandbox environment.
    pub fn placeholders(&self) -> Vec<(String, String)> {
        self.state
            .secrets
            .iter()
            .map(|s| (s.name().to_string(), s.placeholder().to_string()))
            .collect()
    }

    /// The ports transparent egress captures: every port an allow or
    /// secret pattern names (port-less: 80 and 443; bare `--allow-net` or
    /// a `:*` pattern: 80 and 443 too, other ports only through the proxy
    /// variables). Sorted, no duplicates.
    pub fn capture_ports(&self) -> Vec<u16> {
        self.state.policy.capture_ports()
    }

    /// Start serving `listener` on a runtime of its own (2 worker threads).
    pub fn serve(self, listener: std::net::TcpListener) -> Result<ProxyHandle, ProxyError> {
        let state = self.state;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ProxyError::Io(format!("proxy listener: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ProxyError::Io(format!("proxy listener: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zerobox-proxy")
            .enable_all()
            .build()
            .map_err(|e| ProxyError::Io(format!("proxy runtime: {e}")))?;
        let listener = {
            let _g = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| ProxyError::Io(format!("proxy listener: {e}")))?
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if !state.secrets.is_empty() {
            // Interception may come: get its costs out of the first
            // request's way while the command starts (a blocking thread:
            // key generation is CPU work).
            // The lock is taken here, before any connection is accepted,
            // so a request cannot slip in ahead of the warm-up and
            // duplicate it.
            let st = state.clone();
            let held = state.tls.warming.clone().try_write_owned();
            // On a worker thread (its tasks handed to the other worker
            // meanwhile), not the blocking pool: what the root store
            // parse allocates and frees then stays in the workers' malloc
            // arenas for connections to reuse, instead of pinning pages
            // in an arena of its own.
            runtime.spawn(async move {
                tokio::task::block_in_place(|| st.tls.warm_up(&warm_hosts(&st.secrets)));
                drop(held);
            });
        }
        runtime.spawn(conn::accept_loop(listener, state.clone(), stop_rx));
        Ok(ProxyHandle {
            state,
            runtime: Some(runtime),
            stop: Some(stop_tx),
            local_addr,
        })
    }
}

/// The synthetic range of transparent egress, `(network, prefix length)`:
/// the sandbox makes it local on its loopback.
pub fn dns_range() -> (std::net::Ipv4Addr, u8) {
    (dns::SYNTH_NET, dns::SYNTH_LEN)
}

/// The IPv6 synthetic range, `(network, prefix length)`: made local too
/// when the sandbox has IPv6.
pub fn dns_range_v6() -> (std::net::Ipv6Addr, u8) {
    (dns::SYNTH_NET6, dns::SYNTH_LEN6)
}

/// Sockets bound inside the sandbox's network namespace for transparent
/// egress: DNS on 127.0.0.1:53, and one TCP listener per captured port on
/// the wildcard address (the synthetic range is local there): `[::]`
/// accepting IPv4 too, or `0.0.0.0` when the sandbox has no IPv6.
pub struct CaptureSockets {
    pub dns_udp: std::net::UdpSocket,
    pub dns_tcp: std::net::TcpListener,
    pub tcp: Vec<std::net::TcpListener>,
}

impl ProxyHandle {
    /// Serve transparent egress on `socks` (on the proxy's runtime, with
    /// its policy, log and summary).
    pub fn serve_capture(&self, socks: CaptureSockets) -> Result<(), ProxyError> {
        let (Some(rt), Some(stop)) = (&self.runtime, &self.stop) else {
            return Err(ProxyError::Io("the proxy is stopped (bug)".into()));
        };
        let io = |e: std::io::Error| ProxyError::Io(format!("capture sockets: {e}"));
        let _g = rt.enter();
        let mut ports = Vec::new();
        let mut listeners = Vec::new();
        // IPv6 is captured (AAAA answered) only if every listener is on
        // `[::]`: PID 1 falls back to IPv4 for all of them or none.
        let mut v6 = !socks.tcp.is_empty();
        for l in socks.tcp {
            let local = l.local_addr().map_err(io)?;
            v6 &= local.is_ipv6();
            ports.push(local.port());
            l.set_nonblocking(true).map_err(io)?;
            listeners.push(tokio::net::TcpListener::from_std(l).map_err(io)?);
        }
        socks.dns_udp.set_nonblocking(true).map_err(io)?;
        let udp = tokio::net::UdpSocket::from_std(socks.dns_udp).map_err(io)?;
        socks.dns_tcp.set_nonblocking(true).map_err(io)?;
        let dns_tcp = tokio::net::TcpListener::from_std(socks.dns_tcp).map_err(io)?;
        let sem = capture::semaphore();
        for l in listeners {
            rt.spawn(capture::accept_loop(
                l,
                self.state.clone(),
                sem.clone(),
                stop.subscribe(),
            ));
        }
        if !v6 {
            // Not weaker (nothing in the sandbox can reach an IPv6
            // address at all), but different: said, not silent.
            crate::warn!(
                "transparent egress: IPv6 is disabled inside the sandbox (no IPv6 in this kernel, or disable_ipv6 set for new network namespaces); allowed names resolve to IPv4 only"
            );
        }
        let served = Arc::new(dns::Served { ports, v6 });
        rt.spawn(dns::serve_udp(
            udp,
            self.state.clone(),
            served.clone(),
            stop.subscribe(),
        ));
        rt.spawn(dns::serve_tcp(
            dns_tcp,
            self.state.clone(),
            served,
            sem,
            stop.subscribe(),
        ));
        Ok(())
    }

    /// System roots + the zerobox CA, PEM, for `SSL_CERT_FILE` inside.
    pub fn ca_bundle_pem(&self) -> String {
        self.state.tls.bundle_pem()
    }

    /// The zerobox CA certificate alone, PEM (loaded now if this run had
    /// no secret; empty if it cannot be loaded).
    pub fn ca_cert_pem(&self) -> String {
        self.state
            .tls
            .ca()
            .map(|c| c.cert_pem.clone())
            .unwrap_or_default()
    }

    /// The placeholder for a configured secret, by name.
    pub fn placeholder(&self, name: &str) -> Option<String> {
        self.state
            .secrets
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.placeholder().to_string())
    }

    /// `(NAME, placeholder)` for every secret, for the sandbox environment.
    pub fn placeholders(&self) -> Vec<(String, String)> {
        self.state
            .secrets
            .iter()
            .map(|s| (s.name().to_string(), s.placeholder().to_string()))
            .collect()
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// How many names were resolved (including `--resolve` pins).
    pub fn resolutions(&self) -> u64 {
        self.state.resolutions.load(Ordering::Relaxed)
    }

    /// How many of those went to the system resolver (DNS).
    pub fn dns_queries(&self) -> u64 {
        self.state.dns_queries.load(Ordering::Relaxed)
    }

    /// What has been blocked so far.
    pub fn summary(&self) -> ProxySummary {
        ProxySummary {
            blocked: self.state.log.blocked(),
            quiet: self.state.log.quiet_refused(),
            log_lost: self.state.log.lost(),
        }
    }

    /// Stop serving (open connections are cut after a short grace period)
    /// and report what was blocked.
    pub fn shutdown(mut self) -> ProxySummary {
        self.stop_now();
        self.summary()
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(rt) = self.runtime.take() {
            // Blocking on shutdown is not allowed from inside another
            // runtime (e.g. an async caller): let it wind down there.
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(std::time::Duration::from_millis(500));
            }
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Environment variables that make common tools use the proxy and trust
/// the bundle. `proxy_url_host_port` is e.g. `127.0.0.1:3128`.
pub fn sandbox_env(proxy_url_host_port: &str, ca_bundle_path: &Path) -> Vec<(String, String)> {
    let http = format!("http://{proxy_url_host_port}");
    let socks = format!("socks5h://{proxy_url_host_port}");
    let ca = ca_bundle_path.display().to_string();
    let (phost, pport) = match proxy_url_host_port.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            p.to_string(),
        ),
        None => (proxy_url_host_port.to_string(), "80".to_string()),
    };
    let mut v: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, val: &str| v.push((k.to_string(), val.to_string()));
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "YARN_HTTP_PROXY",
        "YARN_HTTPS_PROXY",
        "PIP_PROXY",
        "CARGO_HTTP_PROXY",
        "BUNDLE_HTTP_PROXY",
        "BUNDLE_HTTPS_PROXY",
        "GLOBAL_AGENT_HTTP_PROXY",
        "GLOBAL_AGENT_HTTPS_PROXY",
    ] {
        set(k, &http);
    }
    set("ALL_PROXY", &socks);
    set("all_proxy", &socks);
    set("NO_PROXY", "");
    set("no_proxy", "");
    set("GLOBAL_AGENT_NO_PROXY", "");
    set("ELECTRON_GET_USE_PROXY", "1");
    set("NODE_USE_ENV_PROXY", "1");
    set(
        "JAVA_TOOL_OPTIONS",
        &format!(
            "-Dhttp.proxyHost={phost} -Dhttp.proxyPort={pport} -Dhttps.proxyHost={phost} -Dhttps.proxyPort={pport} -Dhttp.nonProxyHosts="
        ),
    );
    for k in [
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSL_CAINFO",
        "CARGO_HTTP_CAINFO",
        "PIP_CERT",
        "DENO_CERT",
        "AWS_CA_BUNDLE",
        "npm_config_cafile",
    ] {
        set(k, &ca);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_parsing() {
        let r = parse_resolve("API.example.test:443:127.0.0.1").unwrap();
        assert_eq!(r.host, "api.example.test");
        assert_eq!(r.port, 443);
        assert_eq!(r.addrs, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        let r = parse_resolve("a.test:8080:[::1],127.0.0.2").unwrap();
        assert_eq!(r.addrs.len(), 2);
        for bad in [
            "",
            "a.test",
            "a.test:80",
            "a.test:0:1.2.3.4",
            "a.test:x:1.2.3.4",
            "a.test:80:nothost",
            "1.2.3.4:80:1.2.3.4",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_vars() {
        let v = sandbox_env("127.0.0.1:3128", Path::new("/tmp/b.pem"));
        let get = |k: &str| v.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone());
        assert_eq!(get("HTTPS_PROXY").unwrap(), "http://127.0.0.1:3128");
        assert_eq!(get("ALL_PROXY").unwrap(), "socks5h://127.0.0.1:3128");
        assert_eq!(get("NO_PROXY").unwrap(), "");
        assert_eq!(get("SSL_CERT_FILE").unwrap(), "/tmp/b.pem");
        assert!(get("JAVA_TOOL_OPTIONS")
            .unwrap()
            .contains("-Dhttps.proxyPort=3128"));
    }

    #[test]
    fn patterns_validate() {
        assert!(validate_pattern("*.example.com:443").is_ok());
        assert!(validate_pattern("*.com").is_err());
    }
}

#[cfg(test)]
mod exits_tests;

#[cfg(test)]
mod debug_tests {
    use super::*;

    /// No credential reaches `Debug` of the settings: not the secret
    /// values, not the upstream proxy's password (plain or as the Base64
    /// it is sent as).
    #[test]
    fn debug_of_proxy_settings_never_prints_credentials() {
        let cfg = ProxyConfig {
            secrets: vec![Secret::from_value(
                "TOKEN",
                "sk-live-value-7777".into(),
                vec!["api.example".into()],
            )
            .unwrap()],
            upstream_proxy: Some("http://alice:hunter2pw@proxy.corp:3128".into()),
            ..Default::default()
        };
        let shown = format!("{cfg:?} {cfg:#?}");
        let up = http::UpstreamProxy::parse(cfg.upstream_proxy.as_deref().unwrap()).unwrap();
        let shown = format!("{shown} {up:?} {up:#?}");
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "alice:hunter2pw",
        );
        for secret in ["sk-live-value-7777", "hunter2pw", b64.as_str()] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("TOKEN") && shown.contains("proxy.corp:3128"),
            "{shown}"
        );
    }
}
