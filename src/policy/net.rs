//! Host patterns: the one grammar for every host a policy names
//! (`--allow-net`, `--deny-net`, `--secret-host`, a preset's `network` and
//! `secrets` hosts), parsed once in `policy::resolve` into the
//! [`NetworkPolicy`](super::NetworkPolicy) the proxy enforces.
//!
//! Owns: the syntax (`host`, `host:port`, `host:*`, `*.domain`, an IP
//! literal, `[v6]:port`, a CIDR) and the normalisation of names
//! (lowercase, no trailing dot, IDNA → punycode). Knows nothing of DNS or
//! connections: matching a requested host against a pattern is the
//! proxy's (`proxy::host`).
//!
//! Port rule: a pattern without a port matches ports 80 and 443 only
//! (`HOST:*` matches every port). A deny is read with [`Portless::Any`]
//! instead, so a deny is never narrower than it reads.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// A host pattern that does not parse: the text as written and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {text:?}: {why}")]
pub struct PatternError {
    pub text: String,
    pub why: String,
}

/// Lowercase, strip one trailing dot, IDNA to punycode, and check that the
/// result is a syntactically valid DNS name (LDH labels, `_` tolerated).
/// `None` when it is not one.
pub fn normalise_name(s: &str) -> Option<String> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return None;
    }
    let ascii = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).ok()?
    };
    if ascii.is_empty() || ascii.len() > 253 {
        return None;
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return None;
        }
        if label.starts_with('-') || label.ends_with('-') {
            return None;
        }
    }
    Some(ascii)
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
    pub fn parse(p: &str, portless: Portless) -> Result<HostPattern, PatternError> {
        let bad = |why: &str| PatternError {
            text: p.to_string(),
            why: why.to_string(),
        };
        let text = p.trim();
        if text.is_empty() {
            return Err(bad("empty"));
        }
        let default_ports = match portless {
            Portless::Web => PortRule::Web,
            Portless::Any => PortRule::Any,
        };
        let parse_port = |s: &str| -> Result<PortRule, PatternError> {
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
            let suffix = normalise_name(suffix).ok_or_else(|| bad("bad name"))?;
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
        let name = normalise_name(&host_part).ok_or_else(|| bad("bad name"))?;
        Ok(HostPattern {
            kind: HostKind::Exact(name),
            ports,
            text: text.to_string(),
        })
    }
}

/// A secret's host: a host pattern, optionally prefixed by `https://`
/// (the default: the value goes only over TLS) or `http://` (cleartext
/// intended: a local test server, a plain-HTTP internal API); a trailing
/// `/` is ignored. Matching and injection are the proxy's
/// (`proxy::secrets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretHost {
    pub pattern: HostPattern,
    pub cleartext: bool,
}

impl SecretHost {
    pub fn parse(text: &str) -> Result<SecretHost, PatternError> {
        let t = text.trim();
        let (rest, cleartext) = if let Some(r) = strip_scheme(t, "http://") {
            (r, true)
        } else if let Some(r) = strip_scheme(t, "https://") {
            (r, false)
        } else if t.contains("://") {
            return Err(PatternError {
                text: text.to_string(),
                why: "only http:// (cleartext allowed) or https:// (the default) may prefix a secret's host".into(),
            });
        } else {
            (t, false)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        Ok(SecretHost {
            pattern: HostPattern::parse(rest, Portless::Web)?,
            cleartext,
        })
    }
}

fn strip_scheme<'a>(t: &'a str, scheme: &str) -> Option<&'a str> {
    (t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme))
        .then(|| &t[scheme.len()..])
}

/// As written (what `explain --json` shows for `network.allow`).
impl serde::Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}
