//! The decision for one destination: deny rules, allow rules, resolution
//! (only after the name is allowed), and the address checks.
//!
//! Order, for `host:port` as the client asked:
//! 1. normalise the host (invalid → refused);
//! 2. `--deny-net` on the name/literal → refused;
//! 3. `--allow-net` (or a secret's host list, or bare `--allow-net`) →
//!    otherwise refused, with no DNS query at all;
//! 4. resolve once: `--resolve` pin first, else the system resolver;
//! 5. every address: `--deny-net` address/CIDR rules, then the refused
//!    classes (loopback, private, …, this host's own addresses) unless the
//!    address is named on purpose (pin, address/CIDR allow rule, or an
//!    explicit `localhost` rule for loopback);
//! 6. connect only to addresses that passed.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::addr;
use super::host::{allow_hint, Host, HostKind, HostPattern};
use super::{ProxyConfig, ProxyError, ResolveOverride, State};

const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Policy {
    allow: Vec<HostPattern>,
    deny: Vec<HostPattern>,
    allow_any: bool,
    /// (secret name, its host patterns): implicitly allowed.
    secret_hosts: Vec<(String, Vec<HostPattern>)>,
    overrides: Vec<ResolveOverride>,
    local_addrs: Vec<IpAddr>,
    /// `--build-profile` / `learn` (see [`HostHook`]): consulted after the
    /// rules, never instead of them.
    hook: Option<std::sync::Arc<dyn HostHook>>,
    /// Patterns the hook allowed during this run: matched like `allow`.
    hooked_allow: std::sync::Mutex<Vec<HostPattern>>,
}

/// A second opinion at the decision point, for `--build-profile` (ask the
/// user) and `learn` (record). Deny rules still win and are never asked
/// about; a name the rules allow is only reported.
pub trait HostHook: Send + Sync {
    /// The rules do not allow `host:port`: `Some(pattern)` allows it from
    /// now on (a `--allow-net` pattern, e.g. `api.example.com` or
    /// `*.example.com`), `None` refuses it. May block (a question on the
    /// terminal); called from a proxy worker thread.
    fn not_allowed(&self, host: &str, port: u16) -> Option<String>;
    /// The rules allowed `host:port` by `rule`.
    fn allowed(&self, _host: &str, _port: u16, _rule: &str) {}
}

/// A refusal. `reason` goes in `X-Zerobox-Denied` and the log; `message`
/// is the body shown to the client; `key` is the blocked-tally entry.
#[derive(Debug, Clone)]
pub struct Denial {
    pub reason: String,
    pub message: String,
    pub key: String,
    pub host: String,
    pub port: u16,
}

/// Where to connect.
#[derive(Debug, Clone)]
pub enum Dest {
    /// Checked addresses, in order of preference.
    Direct(Vec<SocketAddr>),
    /// Through the configured upstream proxy, by name.
    ViaProxy,
}

/// An allowed destination.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    pub rule: String,
    pub dest: Dest,
}

impl Policy {
    pub fn new(cfg: &ProxyConfig) -> Result<Policy, ProxyError> {
        // Already parsed by `policy::resolve` (deny with `Portless::Any`).
        let allow = cfg.allow.clone();
        let deny = cfg.deny.clone();
        let secret_hosts = cfg
            .secrets
            .iter()
            .map(|s| (s.name().to_string(), s.host_patterns()))
            .collect();
        Ok(Policy {
            allow,
            deny,
            allow_any: cfg.allow_any,
            secret_hosts,
            overrides: cfg.resolve.clone(),
            local_addrs: addr::local_addresses().map_err(ProxyError::Io)?,
            hook: None,
            hooked_allow: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// See [`super::PreparedProxy::capture_ports`].
    pub fn capture_ports(&self) -> Vec<u16> {
        super::capture_ports_for(
            self.allow
                .iter()
                .chain(self.secret_hosts.iter().flat_map(|(_, p)| p)),
        )
    }

    /// Install the [`HostHook`] (before the proxy serves).
    pub fn set_hook(&mut self, hook: std::sync::Arc<dyn HostHook>) {
        self.hook = Some(hook);
    }

    /// Steps 2–3 with the hook: the rules first; a name they refuse only
    /// as not allowed (no deny rule) goes to the hook.
    pub fn check_name(&self, host: &Host, port: u16) -> Result<String, Denial> {
        let Some(hook) = &self.hook else {
            return self.check_name_rules(host, port);
        };
        let hooked = |host: &Host| {
            self.hooked_allow
                .lock()
                .map(|l| l.iter().any(|p| p.matches_host(host, port)))
                .unwrap_or(false)
        };
        match self.check_name_rules(host, port) {
            Ok(rule) => {
                hook.allowed(&host.authority(), port, &rule);
                Ok(rule)
            }
            Err(d) if d.reason == "not-allowed" => {
                if hooked(host) {
                    return Ok("--build-profile".into());
                }
                match hook.not_allowed(&host.authority(), port) {
                    Some(pattern) => match HostPattern::parse(&pattern, super::host::Portless::Web)
                    {
                        Ok(p) => {
                            if let Ok(mut l) = self.hooked_allow.lock() {
                                l.push(p);
                            }
                            Ok("--build-profile".into())
                        }
                        Err(_) => Err(d),
                    },
                    None => Err(d),
                }
            }
            Err(d) => Err(d),
        }
    }

    fn denial(host: &Host, port: u16, reason: &str, message: String) -> Denial {
        Denial {
            reason: reason.to_string(),
            message,
            key: allow_hint(host, port),
            host: host.authority(),
            port,
        }
    }

    /// The decision for a DNS question about `host` (transparent egress):
    /// allowed if a connection to it would be on any of `ports`. The rules
    /// are tried on every port first; only when they refuse the name as not
    /// allowed is the hook asked, once (as for port 443).
    pub fn check_name_any(&self, host: &Host, ports: &[u16]) -> Result<String, Denial> {
        let mut first = None;
        for &port in ports {
            match self.check_name_rules(host, port) {
                Ok(rule) => {
                    if let Some(hook) = &self.hook {
                        hook.allowed(&host.authority(), port, &rule);
                    }
                    return Ok(rule);
                }
                Err(d) => {
                    first.get_or_insert(d);
                }
            }
        }
        match first {
            Some(d) if d.reason == "not-allowed" && self.hook.is_some() => {
                self.check_name(host, 443)
            }
            Some(d) => Err(d),
            None => Err(Self::denial(
                host,
                0,
                "not-allowed",
                "zerobox: no port is captured\n".into(),
            )),
        }
    }

    /// Steps 2–3: the name (or literal) alone. Returns the allowing rule.
    fn check_name_rules(&self, host: &Host, port: u16) -> Result<String, Denial> {
        if let Some(d) = self.deny.iter().find(|p| p.matches_host(host, port)) {
            return Err(Self::denial(
                host,
                port,
                "denied-by-rule",
                format!(
                    "zerobox: {}:{port} is blocked by --deny-net={}\n",
                    host.authority(),
                    d.text
                ),
            ));
        }
        if let Some(a) = self.allow.iter().find(|p| p.matches_host(host, port)) {
            return Ok(format!("--allow-net={}", a.text));
        }
        for (name, pats) in &self.secret_hosts {
            if pats.iter().any(|p| p.matches_host(host, port)) {
                return Ok(format!("--secret {name}"));
            }
        }
        if self.allow_any {
            return Ok("--allow-net".to_string());
        }
        let hint = allow_hint(host, port);
        Err(Self::denial(
            host,
            port,
            "not-allowed",
            format!(
                "zerobox: {}:{port} is not allowed by the sandbox policy.\nAllow it with --allow-net={hint}\n",
                host.authority()
            ),
        ))
    }

    /// Is `a` named on purpose by the policy for `host:port`?
    fn explicit(&self, host: &Host, port: u16, a: IpAddr, pinned: bool) -> bool {
        if pinned {
            return true;
        }
        if self
            .allow
            .iter()
            .any(|p| p.is_address() && p.matches_addr(a, port))
        {
            return true;
        }
        // An address the user allowed during `--build-profile` is named on
        // purpose too (the profile then lists it in `network.allow`).
        if self
            .hooked_allow
            .lock()
            .is_ok_and(|l| l.iter().any(|p| p.is_address() && p.matches_addr(a, port)))
        {
            return true;
        }
        if let Host::Name(n) = host {
            if n == "localhost"
                && addr::canonical(a).is_loopback()
                && self
                    .allow
                    .iter()
                    .any(|p| p.kind == HostKind::Exact("localhost".into()) && p.ports.matches(port))
            {
                return true;
            }
        }
        false
    }

    /// Step 5 for one address. `Err(reason)` if refused.
    pub fn check_addr(
        &self,
        host: &Host,
        port: u16,
        a: IpAddr,
        pinned: bool,
    ) -> Result<(), Denial> {
        if let Some(d) = self
            .deny
            .iter()
            .find(|p| p.is_address() && p.matches_addr(a, port))
        {
            return Err(Self::denial(
                host,
                port,
                "denied-by-rule",
                format!(
                    "zerobox: {}:{port} resolves to {a}, blocked by --deny-net={}\n",
                    host.authority(),
                    d.text
                ),
            ));
        }
        let canon = addr::canonical(a);
        let class = addr::refused_class(canon).or_else(|| {
            self.local_addrs
                .iter()
                .any(|l| addr::canonical(*l) == canon)
                .then_some("own-address")
        });
        if let Some(class) = class {
            if !self.explicit(host, port, a, pinned) {
                let hint = match canon {
                    IpAddr::V4(v4) => format!("{v4}:{port}"),
                    IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                };
                return Err(Self::denial(
                    host,
                    port,
                    &format!("address-refused:{class}"),
                    format!(
                        "zerobox: {}:{port} resolves to {a} ({class}), which the proxy refuses.\nAllow that address on purpose with --allow-net={hint}\n",
                        host.authority()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn pinned(&self, name: &str, port: u16) -> Option<Vec<IpAddr>> {
        self.overrides
            .iter()
            .find(|o| o.host == name && o.port == port)
            .map(|o| o.addrs.clone())
    }
}

/// The whole decision, steps 1–5.
pub async fn authorize(state: &State, raw_host: &str, port: u16) -> Result<Target, Denial> {
    let host = match Host::parse(raw_host) {
        Ok(h) => h,
        Err(_) => {
            // Never echo arbitrary bytes into a header.
            let shown: String = raw_host
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(100)
                .collect();
            return Err(Denial {
                reason: "invalid-host".into(),
                message: format!("zerobox: invalid host {shown:?}\n"),
                key: shown.clone(),
                host: shown,
                port,
            });
        }
    };
    if port == 0 {
        return Err(Policy::denial(
            &host,
            port,
            "invalid-port",
            "zerobox: port 0\n".into(),
        ));
    }
    let policy = &state.policy;
    let rule = policy.check_name(&host, port)?;

    // Chained proxy: the upstream proxy resolves names; literals are still checked.
    if state.upstream_proxy.is_some() {
        if let Host::Ip(a) = host {
            policy.check_addr(&host, port, a, false)?;
        }
        return Ok(Target {
            host,
            port,
            rule,
            dest: Dest::ViaProxy,
        });
    }

    let (addrs, pinned) = match &host {
        Host::Ip(a) => (vec![*a], false),
        Host::Name(n) => {
            state.resolutions.fetch_add(1, Ordering::Relaxed);
            match policy.pinned(n, port) {
                Some(a) => (a, true),
                None => {
                    state.dns_queries.fetch_add(1, Ordering::Relaxed);
                    let lookup = tokio::net::lookup_host((n.as_str(), port));
                    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                        Ok(Ok(it)) => (it.map(|sa| sa.ip()).collect::<Vec<_>>(), false),
                        _ => {
                            return Err(Policy::denial(
                                &host,
                                port,
                                "resolve-failed",
                                format!("zerobox: cannot resolve {n}\n"),
                            ))
                        }
                    }
                }
            }
        }
    };
    let mut ok = Vec::new();
    let mut first_err = None;
    for a in addrs {
        match policy.check_addr(&host, port, a, pinned) {
            Ok(()) => {
                let a = addr::canonical(a);
                if !ok.iter().any(|s: &SocketAddr| s.ip() == a) {
                    ok.push(SocketAddr::new(a, port));
                }
            }
            Err(d) => {
                // A deny rule on any address refuses the whole name.
                if d.reason == "denied-by-rule" {
                    return Err(d);
                }
                first_err.get_or_insert(d);
            }
        }
    }
    if ok.is_empty() {
        return Err(first_err.unwrap_or_else(|| {
            Policy::denial(
                &host,
                port,
                "resolve-failed",
                "zerobox: no address\n".into(),
            )
        }));
    }
    Ok(Target {
        host,
        port,
        rule,
        dest: Dest::Direct(ok),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Portless;

    fn policy(allow: &[&str], deny: &[&str], any: bool, resolve: &[&str]) -> Policy {
        let cfg = ProxyConfig {
            allow: allow
                .iter()
                .map(|s| HostPattern::parse(s, Portless::Web).unwrap())
                .collect(),
            deny: deny
                .iter()
                .map(|s| HostPattern::parse(s, Portless::Any).unwrap())
                .collect(),
            allow_any: any,
            resolve: resolve
                .iter()
                .map(|s| super::super::parse_resolve(s).unwrap())
                .collect(),
            ..Default::default()
        };
        Policy::new(&cfg).unwrap()
    }
    fn h(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn deny_wins() {
        let p = policy(&["*.example.com"], &["bad.example.com"], false, &[]);
        assert!(p.check_name(&h("ok.example.com"), 443).is_ok());
        let d = p.check_name(&h("bad.example.com"), 443).unwrap_err();
        assert_eq!(d.reason, "denied-by-rule");
        // Port-less deny covers every port.
        assert!(p.check_name(&h("bad.example.com"), 8443).is_err());
        let p = policy(&[], &["bad.example.com"], true, &[]);
        assert!(p.check_name(&h("bad.example.com"), 443).is_err());
        assert!(p.check_name(&h("fine.example"), 443).is_ok());
    }

    #[test]
    fn not_allowed_hint() {
        let p = policy(&["a.example"], &[], false, &[]);
        let d = p.check_name(&h("evil.example"), 443).unwrap_err();
        assert_eq!(d.reason, "not-allowed");
        assert!(d.message.contains("--allow-net=evil.example"));
        let d = p.check_name(&h("evil.example"), 22).unwrap_err();
        assert!(d.message.contains("--allow-net=evil.example:22"));
        assert_eq!(d.key, "evil.example:22");
    }

    #[test]
    fn address_checks() {
        let p = policy(
            &["a.example", "10.0.0.0/8:*", "localhost:8080"],
            &[],
            true,
            &[],
        );
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let meta: IpAddr = "169.254.169.254".parse().unwrap();
        // A name resolving to loopback: refused.
        let d = p.check_addr(&h("a.example"), 443, lo, false).unwrap_err();
        assert_eq!(d.reason, "address-refused:loopback");
        // Pinned on purpose: accepted.
        assert!(p.check_addr(&h("a.example"), 443, lo, true).is_ok());
        // Named by CIDR: accepted for any name resolving there.
        assert!(p
            .check_addr(&h("a.example"), 443, "10.1.2.3".parse().unwrap(), false)
            .is_ok());
        // localhost named explicitly, on that port only.
        assert!(p.check_addr(&h("localhost"), 8080, lo, false).is_ok());
        assert!(p.check_addr(&h("localhost"), 8081, lo, false).is_err());
        // Metadata and mapped forms refused.
        assert!(p.check_addr(&h("a.example"), 80, meta, false).is_err());
        assert!(p
            .check_addr(
                &h("a.example"),
                80,
                "::ffff:169.254.169.254".parse().unwrap(),
                false
            )
            .is_err());
        // Public: fine.
        assert!(p
            .check_addr(
                &h("a.example"),
                443,
                "93.184.216.34".parse().unwrap(),
                false
            )
            .is_ok());
        // Deny by CIDR applies to resolved addresses.
        let p = policy(&["a.example"], &["93.184.216.0/24"], false, &[]);
        let d = p
            .check_addr(
                &h("a.example"),
                443,
                "93.184.216.34".parse().unwrap(),
                false,
            )
            .unwrap_err();
        assert_eq!(d.reason, "denied-by-rule");
    }
}
