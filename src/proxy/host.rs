//! Host patterns (`--allow-net`, `--deny-net`, a secret's hosts) and the
//! normalisation of hosts that clients ask for.
//!
//! Owns: parsing a pattern, normalising a requested host (lowercase, no
//! trailing dot, IDNA → punycode, brackets stripped), and matching one
//! against the other. Knows nothing about DNS or connections.
//!
//! Port rule: a pattern without a port matches ports 80 and 443 only
//! (`HOST:*` matches every port). For `--deny-net` the caller asks for
//! [`PortRule::Any`] on port-less patterns instead, so a deny is never
//! narrower than it reads.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

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

/// Lowercase, strip one trailing dot, IDNA to punycode, and check that the
/// result is a syntactically valid DNS name (LDH labels, `_` tolerated).
pub fn normalise_name(s: &str) -> Result<String, ProxyError> {
    let bad = || ProxyError::Pattern(format!("invalid host name: {s:?}"));
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return Err(bad());
    }
    let ascii = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).map_err(|_| bad())?
    };
    if ascii.is_empty() || ascii.len() > 253 {
        return Err(bad());
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad());
        }
    }
    Ok(ascii)
}

/// Which ports a pattern covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRule {
    /// No port written: 80 and 443 (allow and secret patterns).
    Web,
    /// `:*` written, or a port-less deny pattern.
    Any,
    /// `:N` written.
    One(u16),
}

impl PortRule {
    pub fn matches(self, port: u16) -> bool {
        match self {
            PortRule::Web => port == 80 || port == 443,
            PortRule::Any => true,
            PortRule::One(p) => p == port,
        }
    }
}

/// What a pattern names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// `example.com`: that name only.
    Exact(String),
    /// `*.example.com`: stored as `example.com`; strict subdomains only.
    Subdomains(String),
    /// `10.0.0.1`, `[::1]`.
    Ip(IpAddr),
    /// `10.0.0.0/8`, `fc00::/7`.
    Cidr(IpNet),
}

/// A parsed host pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    pub kind: HostKind,
    pub ports: PortRule,
    /// The pattern as the user wrote it, for messages and logs.
    pub text: String,
}

/// How a port-less pattern is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Portless {
    Web,
    Any,
}

impl HostPattern {
    /// Parse a pattern. `portless` says what a pattern without a port means.
    pub fn parse(p: &str, portless: Portless) -> Result<HostPattern, ProxyError> {
        let bad = |why: &str| ProxyError::Pattern(format!("invalid host pattern {p:?}: {why}"));
        let text = p.trim();
        if text.is_empty() {
            return Err(bad("empty"));
        }
        let default_ports = match portless {
            Portless::Web => PortRule::Web,
            Portless::Any => PortRule::Any,
        };
        let parse_port = |s: &str| -> Result<PortRule, ProxyError> {
            if s == "*" {
                return Ok(PortRule::Any);
            }
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 5 {
                return Err(bad("bad port"));
            }
            match s.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad("port out of range")),
                Ok(n) => Ok(PortRule::One(n)),
            }
        };

        // Split host part and port part.
        let (host_part, ports) = if let Some(rest) = text.strip_prefix('[') {
            let close = rest.find(']').ok_or_else(|| bad("missing ]"))?;
            let inner = &rest[..close];
            let after = &rest[close + 1..];
            let ports = if after.is_empty() {
                default_ports
            } else if let Some(port) = after.strip_prefix(':') {
                parse_port(port)?
            } else {
                return Err(bad("junk after ]"));
            };
            (inner.to_string(), ports)
        } else if text.matches(':').count() >= 2 {
            // A bare IPv6 address or CIDR: no port possible without brackets.
            (text.to_string(), default_ports)
        } else if let Some((h, port)) = text.rsplit_once(':') {
            (h.to_string(), parse_port(port)?)
        } else {
            (text.to_string(), default_ports)
        };

        if host_part.contains('/') {
            let net: IpNet = host_part.parse().map_err(|_| bad("bad CIDR"))?;
            return Ok(HostPattern {
                kind: HostKind::Cidr(net.trunc()),
                ports,
                text: text.to_string(),
            });
        }
        if let Ok(ip) = host_part.parse::<IpAddr>() {
            return Ok(HostPattern {
                kind: HostKind::Ip(ip),
                ports,
                text: text.to_string(),
            });
        }
        if text.starts_with('[') {
            return Err(bad("bad IPv6 literal"));
        }
        if let Some(suffix) = host_part.strip_prefix("*.") {
            if suffix.contains('*') {
                return Err(bad("only one leading '*.' is allowed"));
            }
            let suffix = normalise_name(suffix).map_err(|_| bad("bad name"))?;
            if !suffix.contains('.') {
                return Err(bad("'*.' needs at least two labels after it (no '*.com')"));
            }
            if suffix.parse::<Ipv4Addr>().is_ok() {
                return Err(bad("wildcards do not apply to addresses; use a CIDR"));
            }
            return Ok(HostPattern {
                kind: HostKind::Subdomains(suffix),
                ports,
                text: text.to_string(),
            });
        }
        if host_part.contains('*') {
            return Err(bad("'*' is only allowed as a leading '*.'"));
        }
        let name = normalise_name(&host_part).map_err(|_| bad("bad name"))?;
        Ok(HostPattern {
            kind: HostKind::Exact(name),
            ports,
            text: text.to_string(),
        })
    }

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
