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
//! - `conn.rs`: accept loop, protocol sniffing, tunnels, interception glue.
//! - `http.rs`: forwarding one HTTP request upstream (injection, redaction,
//!   upgrades), dialing upstream (direct or via a chained proxy).
//! - `socks.rs`: the SOCKS5 handshake.
//! - `tls.rs`: interception CA, leaf certificates, upstream root store.
//! - `secrets.rs`: secret values, placeholders, streaming substitution.
//! - `placeholder_key.rs`: the per-user key placeholders are derived from.
//! - `log.rs`: JSON-lines net log, the blocked tally, quiet hosts.
//! - `summary.rs`: the end-of-run report of refusals, a hint per kind.

mod addr;
mod conn;
mod host;
mod http;
mod log;
mod placeholder_key;
mod policy;
mod private_file;
mod secrets;
mod socks;
mod summary;
mod tls;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use host::{Host, HostPattern};
pub use placeholder_key::PlaceholderKey;
pub use secrets::Secret;
pub use summary::{Blocked, ProxySummary, Why};

/// Boxed error used by bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors from configuring or starting the proxy. Never contain secret values.
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
    HostPattern::parse(p, host::Portless::Web).map(|_| ())
}

/// What the proxy enforces.
#[derive(Debug, Default)]
pub struct ProxyConfig {
    /// `--allow-net=HOST[:PORT]` patterns.
    pub allow: Vec<String>,
    /// Bare `--allow-net`: any host (still through the proxy, still
    /// address-checked).
    pub allow_any: bool,
    /// `--deny-net` patterns; deny wins. A port-less deny covers all ports.
    pub deny: Vec<String>,
    /// `network.quiet` patterns (the `--allow-net` grammar): refusals of
    /// these hosts as not allowed are left out of the summary.
    pub quiet: Vec<String>,
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
    let tls = tls::TlsState::new(&config.ca_dir, &config.extra_ca_certs)?;
    let quiet = config
        .quiet
        .iter()
        .map(|p| HostPattern::parse(p, host::Portless::Web))
        .collect::<Result<Vec<_>, _>>()?;
    let log = log::NetLog::new(config.net_log.as_deref())?.with_quiet(quiet);
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
    });
    Ok(PreparedProxy { state })
}

impl PreparedProxy {
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
        runtime.spawn(conn::accept_loop(listener, state.clone(), stop_rx));
        Ok(ProxyHandle {
            state,
            runtime: Some(runtime),
            stop: Some(stop_tx),
            local_addr,
        })
    }
}

impl ProxyHandle {
    /// System roots + the zerobox CA, PEM, for `SSL_CERT_FILE` inside.
    pub fn ca_bundle_pem(&self) -> String {
        self.state.tls.bundle_pem()
    }

    /// The zerobox CA certificate alone, PEM.
    pub fn ca_cert_pem(&self) -> String {
        self.state.tls.ca.cert_pem.clone()
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
