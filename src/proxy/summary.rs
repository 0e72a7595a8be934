//! The end-of-run report of what the proxy refused: one stderr line per
//! kind of refusal, each with the fix that matches it.
//!
//! A host that was not allowed gets `--allow-net=…`; a deny rule, a
//! name that resolved to a local address, a name that did not resolve and
//! an invalid request each get their own explanation, because allowing the
//! host would not help (or is already done). A suggested flag is checked
//! with the same grammar the command line uses, so the hint never proposes
//! a flag zerobox would then reject. Hosts the policy names as optional
//! (`network.quiet`) never appear here (see `log.rs`).
//!
//! Every host name here comes from the sandboxed command: the launcher
//! prints each line through `output::one_line`.

use super::host::{HostPattern, Portless};

/// Why a destination was refused, for the summary (the net log keeps the
/// exact reason string).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// No allow rule (or secret binding) covers it.
    NotAllowed,
    /// A `--deny-net` / `network.deny` rule matched the name or an address.
    DeniedByRule,
    /// The name resolved only to refused addresses; the class (`loopback`,
    /// `private`, …) is kept.
    LocalAddress(String),
    /// Allowed, but no address could be found.
    ResolveFailed,
    /// The request named an invalid host or port 0.
    Invalid,
    /// A secret's placeholder was sent where it may not go.
    Placeholder,
    /// A reason this summary has no advice for.
    Other(String),
}

impl Why {
    /// From a net-log `reason`.
    pub fn from_reason(reason: &str) -> Why {
        match reason {
            "not-allowed" => Why::NotAllowed,
            "denied-by-rule" => Why::DeniedByRule,
            "resolve-failed" => Why::ResolveFailed,
            "invalid-host" | "invalid-port" => Why::Invalid,
            r if r.starts_with("secret-") => Why::Placeholder,
            r => match r.strip_prefix("address-refused:") {
                Some(class) => Why::LocalAddress(class.to_string()),
                None => Why::Other(r.to_string()),
            },
        }
    }

    /// Lines are printed in this order; refusals of one group share a line.
    fn group(&self) -> u8 {
        match self {
            Why::NotAllowed => 0,
            Why::DeniedByRule => 1,
            Why::LocalAddress(_) => 2,
            Why::ResolveFailed => 3,
            Why::Invalid => 4,
            Why::Placeholder => 5,
            Why::Other(_) => 6,
        }
    }
}

/// One refused destination and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// As shown: `host`, `host:port` off 80/443, or `host (secret NAME)`.
    pub what: String,
    /// The host as the command asked for it (an authority).
    pub host: String,
    pub port: u16,
    pub count: u64,
    pub why: Why,
}

/// What was blocked during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySummary {
    /// Most-blocked first, then by name.
    pub blocked: Vec<Blocked>,
    /// Refusals of hosts the policy names as optional (not in `blocked`).
    pub quiet: u64,
    /// `--net-log` records that could not be written (full disk, I/O error).
    pub log_lost: u64,
}

/// How many entries a line names.
const SHOWN: usize = 5;

impl ProxySummary {
    /// The lines to print on stderr at the end of a run: one per kind of
    /// refusal, then lost log records. Empty if there is nothing to say.
    pub fn stderr_lines(&self) -> Vec<String> {
        let mut out = self.blocked_lines();
        out.extend(self.lost_line());
        out
    }

    /// One line per kind of refusal (a notice: `--quiet` hides it).
    pub fn blocked_lines(&self) -> Vec<String> {
        let mut groups: Vec<u8> = self.blocked.iter().map(|b| b.why.group()).collect();
        groups.sort_unstable();
        groups.dedup();
        groups
            .into_iter()
            .map(|g| {
                let of: Vec<&Blocked> =
                    self.blocked.iter().filter(|b| b.why.group() == g).collect();
                group_line(&of)
            })
            .collect()
    }

    /// The warning about lost `--net-log` records (always printed).
    pub fn lost_line(&self) -> Option<String> {
        (self.log_lost > 0).then(|| {
            format!(
                "zerobox: warning: --net-log lost {} record{} (could not write the log file)",
                self.log_lost,
                if self.log_lost == 1 { "" } else { "s" }
            )
        })
    }

    /// [`Self::stderr_lines`] joined by newlines, or `None`.
    pub fn stderr_line(&self) -> Option<String> {
        let lines = self.stderr_lines();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// `zerobox: blocked N connections: a (2), b (1) — hint` for refusals of
/// one kind (`of` is not empty, most-blocked first).
fn group_line(of: &[&Blocked]) -> String {
    let total: u64 = of.iter().map(|b| b.count).sum();
    let shown = |b: &Blocked| {
        if b.what.is_empty() || b.why == Why::Invalid {
            format!("{:?}", b.what)
        } else {
            b.what.clone()
        }
    };
    let list: Vec<String> = of
        .iter()
        .take(SHOWN)
        .map(|b| format!("{} ({})", shown(b), b.count))
        .collect();
    let more = if of.len() > SHOWN {
        format!(", and {} more", of.len() - SHOWN)
    } else {
        String::new()
    };
    let noun = if total == 1 {
        "connection"
    } else {
        "connections"
    };
    let hint = hint(of);
    let dash = if hint.is_empty() { "" } else { " — " };
    format!(
        "zerobox: blocked {total} {noun}: {}{more}{dash}{hint}",
        list.join(", ")
    )
}

/// The advice for refusals of one kind.
fn hint(of: &[&Blocked]) -> String {
    let Some(first) = of.first() else {
        return String::new();
    };
    match &first.why {
        Why::NotAllowed => {
            // Only what `--allow-net` itself accepts is suggested.
            let mut ok = Vec::new();
            let mut bad = Vec::new();
            for b in of.iter().take(SHOWN) {
                match HostPattern::parse(&b.what, Portless::Web) {
                    Ok(_) => ok.push(b.what.as_str()),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            let mut parts = Vec::new();
            if !ok.is_empty() {
                parts.push(format!("allow with --allow-net={}", ok.join(",")));
            }
            if !bad.is_empty() {
                parts.push(format!(
                    "not expressible as --allow-net ({})",
                    bad.join("; ")
                ));
            }
            parts.join("; ")
        }
        Why::DeniedByRule => "denied by a rule (--deny-net or a preset's network.deny), which wins over any allow; `zerobox explain` shows the rules and where each comes from".into(),
        Why::LocalAddress(_) => {
            let mut classes: Vec<&str> = of
                .iter()
                .filter_map(|b| match &b.why {
                    Why::LocalAddress(c) => Some(c.as_str()),
                    _ => None,
                })
                .collect();
            classes.sort_unstable();
            classes.dedup();
            let fix = if first.host.parse::<std::net::IpAddr>().is_ok()
                || first.host.starts_with('[')
            {
                // A literal: naming the address (with its port) is the fix.
                let addr = format!("{}:{}", first.host, first.port);
                if HostPattern::parse(&addr, Portless::Web).is_ok() {
                    format!("allow that address on purpose with --allow-net={addr}")
                } else {
                    "name the address on purpose with --allow-net=ADDR:PORT".to_string()
                }
            } else {
                format!(
                    "to reach it on purpose, pin the name with --resolve {}:{}:ADDR or allow the address with --allow-net=ADDR:PORT",
                    first.host, first.port
                )
            };
            format!(
                "the name resolves to a local or private address ({}), which the proxy refuses; {fix}",
                classes.join(", ")
            )
        }
        Why::ResolveFailed => format!(
            "allowed, but did not resolve (no DNS answer); check the name, or pin an address with --resolve {}:{}:ADDR",
            first.host, first.port
        ),
        Why::Invalid => "the command asked for an invalid host or port; there is nothing to allow".into(),
        // The refusal message the command received names the secret and
        // the binding flag; allowing the host would not help.
        Why::Placeholder | Why::Other(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(what: &str, count: u64, reason: &str) -> Blocked {
        let (host, port) = match what.rsplit_once(':') {
            Some((h, p)) if !what.starts_with('[') || h.ends_with(']') => {
                (h.to_string(), p.parse().unwrap_or(0))
            }
            _ => (what.to_string(), 443),
        };
        Blocked {
            what: what.into(),
            host,
            port,
            count,
            why: Why::from_reason(reason),
        }
    }

    fn lines(blocked: Vec<Blocked>) -> Vec<String> {
        ProxySummary {
            blocked,
            ..Default::default()
        }
        .stderr_lines()
    }

    #[test]
    fn not_allowed() {
        assert_eq!(
            lines(vec![b("evil.example", 2, "not-allowed"), b("10.0.0.1:22", 1, "not-allowed")]),
            ["zerobox: blocked 3 connections: evil.example (2), 10.0.0.1:22 (1) — allow with --allow-net=evil.example,10.0.0.1:22"]
        );
        assert!(ProxySummary::default().stderr_line().is_none());
        let s = ProxySummary {
            log_lost: 3,
            ..Default::default()
        };
        assert_eq!(
            s.stderr_line().unwrap(),
            "zerobox: warning: --net-log lost 3 records (could not write the log file)"
        );
    }

    #[test]
    fn each_refusal_gets_its_own_hint() {
        let got = lines(vec![
            b("evil.example", 1, "not-allowed"),
            b("bad.example", 1, "denied-by-rule"),
            b("internal.example", 1, "address-refused:loopback"),
            b("10.1.2.3:8080", 1, "address-refused:private"),
            b("nx.example:8443", 1, "resolve-failed"),
            b("", 1, "invalid-host"),
            b(
                "api.example (secret K)",
                1,
                "secret-placeholder-to-unbound-host",
            ),
        ]);
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(
            got[0],
            "zerobox: blocked 1 connection: evil.example (1) — allow with --allow-net=evil.example"
        );
        assert!(
            got[1].starts_with(
                "zerobox: blocked 1 connection: bad.example (1) — denied by a rule (--deny-net"
            ),
            "{}",
            got[1]
        );
        assert!(!got[1].contains("--allow-net"), "{}", got[1]);
        assert!(got[2].contains("internal.example (1), 10.1.2.3:8080 (1) — the name resolves to a local or private address (loopback, private)"), "{}", got[2]);
        assert!(
            got[2].contains("--resolve internal.example:443:ADDR"),
            "{}",
            got[2]
        );
        assert!(
            got[3].contains("nx.example:8443 (1) — allowed, but did not resolve"),
            "{}",
            got[3]
        );
        assert!(
            got[3].contains("--resolve nx.example:8443:ADDR"),
            "{}",
            got[3]
        );
        assert!(!got[3].contains("--allow-net"), "{}", got[3]);
        assert_eq!(got[4], "zerobox: blocked 1 connection: \"\" (1) — the command asked for an invalid host or port; there is nothing to allow");
        assert_eq!(
            got[5],
            "zerobox: blocked 1 connection: api.example (secret K) (1)"
        );
    }

    /// The hint never proposes a flag the command line would reject.
    #[test]
    fn never_an_invalid_flag() {
        let got = lines(vec![b("host:0", 1, "not-allowed")]);
        assert!(!got[0].contains("--allow-net=host:0"), "{got:?}");
        assert!(got[0].contains("not expressible as --allow-net"), "{got:?}");
        let got = lines(vec![
            b("host:0", 1, "invalid-port"),
            b("", 1, "invalid-host"),
        ]);
        assert_eq!(got.len(), 1);
        assert!(!got[0].contains("--allow-net"), "{got:?}");
        // A literal resolving nowhere else: the address itself is the fix.
        let got = lines(vec![b("127.0.0.1:5432", 1, "address-refused:loopback")]);
        assert!(
            got[0].ends_with("allow that address on purpose with --allow-net=127.0.0.1:5432"),
            "{got:?}"
        );
    }
}
