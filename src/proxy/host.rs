//! Hosts that clients ask for, normalised (lowercase, no trailing dot,
//! IDNA → punycode, brackets stripped), and matching them against the
//! policy's host patterns. The pattern grammar itself is `policy::net`'s
//! (one grammar for the CLI and presets); it is re-exported here. Knows
//! nothing about DNS or connections.
//!
//! Port rule: a pattern without a port matches ports 80 and 443 only
//! (`HOST:*` matches every port). For `--deny-net` the policy reads a
//! port-less pattern as `PortRule::Any` instead, so a deny is never
//! narrower than it reads.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

pub use crate::policy::net::{HostKind, HostPattern, Portless};

use super::ProxyError;

/// A requested host after normalisation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lowercase ASCII (punycode), no trailing dot.
    Name(String),
    /// An IP literal (brackets stripped for IPv6).
    Ip(IpAddr),
}

impl Host {
    /// Normalise a host as a client sent it (URL host, CONNECT authority,
    /// SOCKS domain). Rejects anything that is not a plausible DNS name or
    /// IP literal.
    pub fn parse(raw: &str) -> Result<Host, ProxyError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(ProxyError::Pattern("empty host".into()));
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| ProxyError::Pattern(format!("bad IPv6 literal: {raw}")))?;
            // Zone ids (fe80::1%eth0) are refused: they name an interface.
            return inner
                .parse::<Ipv6Addr>()
                .map(|a| Host::Ip(IpAddr::V6(a)))
                .map_err(|_| ProxyError::Pattern(format!("bad IPv6 literal: {raw}")));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        Ok(Host::Name(normalise_name(s)?))
    }

    /// The host as written in a URL authority (IPv6 bracketed).
    pub fn authority(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(IpAddr::V4(a)) => a.to_string(),
            Host::Ip(IpAddr::V6(a)) => format!("[{a}]"),
        }
    }

    /// The bare host, for TLS SNI and certificates.
    pub fn bare(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(a) => a.to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())
    }
}

/// [`net::normalise_name`](crate::policy::net::normalise_name) as the
/// proxy's error.
pub fn normalise_name(s: &str) -> Result<String, ProxyError> {
    crate::policy::net::normalise_name(s)
        .ok_or_else(|| ProxyError::Pattern(format!("invalid host name: {s:?}")))
}

/// Matching: the grammar is `policy::net`'s; what a pattern covers is
/// decided here, where requested hosts are normalised.
impl HostPattern {
    /// Does this pattern cover the requested host (by its name or literal)?
    pub fn matches_host(&self, host: &Host, port: u16) -> bool {
        if !self.ports.matches(port) {
            return false;
        }
        match (&self.kind, host) {
            (HostKind::Exact(p), Host::Name(n)) => p == n,
            (HostKind::Subdomains(s), Host::Name(n)) => {
                n.len() > s.len() + 1
                    && n.ends_with(s.as_str())
                    && n.as_bytes()[n.len() - s.len() - 1] == b'.'
            }
            (HostKind::Ip(_) | HostKind::Cidr(_), Host::Ip(a)) => self.matches_addr(*a, port),
            _ => false,
        }
    }

    /// Does this (address or CIDR) pattern cover a resolved address?
    /// Name patterns never match addresses.
    pub fn matches_addr(&self, addr: IpAddr, port: u16) -> bool {
        if !self.ports.matches(port) {
            return false;
        }
        let addr = super::addr::canonical(addr);
        match &self.kind {
            HostKind::Ip(p) => super::addr::canonical(*p) == addr,
            HostKind::Cidr(net) => match (net, addr) {
                (IpNet::V4(n), IpAddr::V4(a)) => n.contains(&a),
                (IpNet::V6(n), IpAddr::V6(a)) => n.contains(&a),
                _ => false,
            },
            _ => false,
        }
    }

    /// Is this an address/CIDR pattern (one that names addresses on purpose)?
    pub fn is_address(&self) -> bool {
        matches!(self.kind, HostKind::Ip(_) | HostKind::Cidr(_))
    }
}

/// What to suggest to the user to allow `host:port`.
pub fn allow_hint(host: &Host, port: u16) -> String {
    if port == 80 || port == 443 {
        host.authority()
    } else {
        format!("{}:{port}", host.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pat(p: &str) -> HostPattern {
        HostPattern::parse(p, Portless::Web).unwrap()
    }
    fn m(p: &str, h: &str, port: u16) -> bool {
        pat(p).matches_host(&Host::parse(h).unwrap(), port)
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str, u16, bool)] = &[
            ("example.com", "example.com", 443, true),
            ("example.com", "example.com", 80, true),
            ("example.com", "example.com", 8443, false),
            ("example.com", "EXAMPLE.COM.", 443, true),
            ("example.com", "www.example.com", 443, false),
            ("example.com", "evilexample.com", 443, false),
            ("example.com", "example.com.evil.net", 443, false),
            ("example.com", "example.co", 443, false),
            ("*.example.com", "a.example.com", 443, true),
            ("*.example.com", "a.b.c.example.com", 443, true),
            ("*.example.com", "example.com", 443, false),
            ("*.example.com", "evilexample.com", 443, false),
            ("*.example.com", "a.evilexample.com", 443, false),
            ("*.example.com", "example.com.evil.net", 443, false),
            ("*.example.com", "a.example.com.evil.net", 443, false),
            ("example.com:8443", "example.com", 8443, true),
            ("example.com:8443", "example.com", 443, false),
            ("example.com:*", "example.com", 22, true),
            ("*.example.com:*", "x.example.com", 22, true),
            ("10.0.0.1", "10.0.0.1", 443, true),
            ("10.0.0.1:22", "10.0.0.1", 22, true),
            ("10.0.0.1:22", "10.0.0.2", 22, false),
            ("10.0.0.0/8", "10.200.3.4", 443, true),
            ("10.0.0.0/8", "11.0.0.1", 443, false),
            ("10.0.0.0/8:*", "10.1.1.1", 5432, true),
            ("[::1]:8080", "[::1]", 8080, true),
            ("[::1]:8080", "[::1]", 8081, false),
            ("::1", "[::1]", 443, true),
            ("fc00::/7", "[fd12::1]", 443, true),
            ("fc00::/7", "[fe80::1]", 443, false),
            // Names never match address patterns and vice versa.
            ("10.0.0.1", "ten.example", 443, false),
            ("example.com", "93.184.216.34", 443, false),
            // IDNA.
            ("bücher.example", "xn--bcher-kva.example", 443, true),
            ("xn--bcher-kva.example", "BÜCHER.example", 443, true),
            // IPv4-mapped literal matches its v4 pattern.
            ("10.0.0.1", "[::ffff:10.0.0.1]", 443, true),
        ];
        for (p, h, port, want) in cases {
            assert_eq!(m(p, h, *port), *want, "{p} vs {h}:{port}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in [
            "",
            "*",
            "*.com",
            "a.*.com",
            "*example.com",
            "ex*ample.com",
            "example.com:0",
            "example.com:65536",
            "example.com:http",
            "exa mple.com",
            "[::1",
            "[::1]x",
            "[nothost]",
            "10.0.0.0/33",
            "-bad.example",
            "a..b",
            "*.1.2.3.4",
        ] {
            assert!(HostPattern::parse(p, Portless::Web).is_err(), "{p:?}");
        }
    }

    #[test]
    fn deny_portless_means_any() {
        let p = HostPattern::parse("evil.example", Portless::Any).unwrap();
        assert!(p.matches_host(&Host::parse("evil.example").unwrap(), 22));
    }

    #[test]
    fn host_parse() {
        assert_eq!(
            Host::parse("Example.COM.").unwrap(),
            Host::Name("example.com".into())
        );
        assert!(Host::parse("a b").is_err());
        assert!(Host::parse(".example.com").is_err());
        assert!(Host::parse("evil.com/x").is_err());
        assert!(Host::parse("evil.com@x").is_err());
        assert!(Host::parse("[fe80::1%eth0]").is_err());
        assert_eq!(
            Host::parse("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
        // A random name never matches `*.example.com` unless it really is a
        // strict subdomain, and never matches `example.com` unless equal.
        #[test]
        fn random_hosts(labels in proptest::collection::vec("[a-z0-9-]{1,8}", 1..5),
                        tail in prop::sample::select(vec!["example.com", "example.co", "xample.com",
                            "evilexample.com", "example.com.evil", "com", "example"])) {
            let mut name = labels.join(".");
            name.push('.');
            name.push_str(tail);
            if let Ok(h) = Host::parse(&name) {
                let n = match &h { Host::Name(n) => n.clone(), _ => return Ok(()) };
                let sub = n.ends_with(".example.com");
                prop_assert_eq!(pat("*.example.com").matches_host(&h, 443), sub);
                prop_assert_eq!(pat("example.com").matches_host(&h, 443), n == "example.com");
            }
        }

        #[test]
        fn any_string_never_panics(s in ".{0,40}") {
            let _ = HostPattern::parse(&s, Portless::Web);
            let _ = Host::parse(&s);
        }
    }
}
