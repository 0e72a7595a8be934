//! The `--net-log` file: one JSON object per line, per request or
//! connection. Also keeps the in-memory tally of blocked destinations for
//! [`super::ProxySummary`], and applies the quiet list: a host a preset
//! names as optional (`network.quiet`) that is refused because it is not
//! allowed is logged with `"quiet": true` and counted apart, so the
//! end-of-run line does not name it at every exit. Only the `not-allowed`
//! refusal is ever quiet: a host that was allowed (an allow wins over
//! quiet) and then failed, a deny rule, or a placeholder refusal is always
//! reported.
//!
//! Owns: the record shape, opening the file safely, and write failures.
//! Records carry secret *names* only; paths and query strings are never
//! logged (they may carry values after injection).
//!
//! The log path is attacker input: an earlier run may have replaced the
//! file with a symlink to `~/.bashrc`. The file is opened `O_NOFOLLOW`
//! (a symlink as the last component is refused, not followed),
//! `O_APPEND | O_CLOEXEC`, created 0600, and must be a regular file (checked
//! on the open descriptor, so nothing can swap it in between). The launcher
//! also refuses a log path the sandbox could write to.
//!
//! A record that cannot be written (full disk, quota, I/O error) is counted,
//! not lost silently: the first failure prints one warning on stderr, the
//! end-of-run summary says how many records were lost, and the next record
//! that does get written starts on a fresh line (a torn line stays one bad
//! line, never glued to the next record).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::host::{Host, HostPattern};
use super::policy::{Denial, Dest, Target};
use super::summary::{Blocked, Why};
use super::ProxyError;

/// What a line is about.
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A forward-proxy request (`GET http://…`).
    #[default]
    Http,
    /// A `CONNECT` tunnel (the line is written when it closes).
    Connect,
    /// A SOCKS5 tunnel.
    Socks5,
    /// A request inside an intercepted tunnel.
    Intercept,
    /// A DNS question inside the sandbox (refusals only; see `dns.rs`).
    Dns,
    /// A connection captured on a synthetic address (`capture.rs`).
    Capture,
}

impl Kind {
    /// The method column of a tunnel line.
    pub fn tunnel_method(self) -> Option<String> {
        (self == Kind::Connect).then(|| "CONNECT".to_string())
    }
}

/// The policy's answer.
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    #[default]
    Allow,
    Deny,
}

/// One line of the log.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Record {
    /// RFC 3339 UTC.
    pub time: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub host: String,
    pub port: u16,
    pub decision: Decision,
    /// Why, for `deny` (the same text as the `X-Zerobox-Denied` header);
    /// for an allowed exchange that failed, what failed (`upstream: …`,
    /// `idle-timeout`, `client: …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule that allowed it (`--allow-net=…`, `--secret NAME`, `--allow-net`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The address connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Names of secrets injected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The status the client was answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Bytes client → upstream, upstream → client (tunnels and upgrades:
    /// exact byte counts; HTTP: bodies as far as known when the line is
    /// written).
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Wall time from the decision to the line (tunnels: until closed;
    /// HTTP: until the response head was answered).
    pub duration_ms: u64,
    /// Whether the TLS tunnel was intercepted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intercepted: bool,
    /// A refusal of a host the policy names as optional (`network.quiet`):
    /// left out of the end-of-run summary.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

impl Record {
    /// The line of an exchange the policy allowed to `t`.
    pub fn allowed(kind: Kind, t: &Target) -> Record {
        Record {
            kind,
            method: kind.tunnel_method(),
            host: t.host.authority(),
            port: t.port,
            rule: Some(t.rule.clone()),
            addr: match &t.dest {
                Dest::Direct(a) => a.first().map(|a| a.to_string()),
                Dest::ViaProxy => None,
            },
            intercepted: kind == Kind::Intercept,
            ..Default::default()
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The open log file and what went wrong writing it.
struct Sink {
    file: std::fs::File,
    /// The last write failed part-way or entirely: the next record starts
    /// with a newline so a torn line never swallows it.
    torn: bool,
    /// The one stderr warning has been printed.
    warned: bool,
}

/// The log sink and blocked tally.
pub struct NetLog {
    sink: Option<Mutex<Sink>>,
    /// By tally key (`host`, `host:port`, `host (secret NAME)`) and why.
    blocked: Mutex<BTreeMap<(String, Why), Blocked>>,
    /// Refusals of quiet hosts (not in `blocked`).
    quiet_refused: AtomicU64,
    /// `network.quiet` patterns.
    quiet: Vec<HostPattern>,
    /// Records that could not be written.
    lost: AtomicU64,
}

/// Open `path` for appending, refusing anything but a regular file and
/// never following a symlink in the last component.
pub fn open_log(path: &Path) -> Result<std::fs::File, ProxyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        // std already adds O_CLOEXEC; say it anyway: the sandboxed child
        // must never inherit the log.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                ProxyError::NetLog(format!(
                    "--net-log {shown}: is a symbolic link; refusing to follow it (a sandboxed command may have planted it): remove it or log elsewhere"
                ))
            } else {
                ProxyError::NetLog(format!("--net-log {shown}: {e}"))
            }
        })?;
    let meta = f
        .metadata()
        .map_err(|e| ProxyError::NetLog(format!("--net-log {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(ProxyError::NetLog(format!(
            "--net-log {shown}: not a regular file (a FIFO, device or directory could block or redirect the log): give a plain file"
        )));
    }
    // A file with another name elsewhere (a hard link made before the run,
    // e.g. to a shell startup file) would have the log appended there too:
    // refuse it, as secret files with more than one link are.
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(ProxyError::NetLog(format!(
                "--net-log {shown}: has {} hard links (the log would also be written under its other names): give a file of its own",
                meta.nlink()
            )));
        }
    }
    // An existing log made before (or by hand) is made private too: it
    // names every host the command talked to. fchmod, on the descriptor.
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| {
                ProxyError::NetLog(format!(
                    "--net-log {shown}: cannot make it private (chmod 600): {e}"
                ))
            })?;
    }
    Ok(f)
}

impl NetLog {
    pub fn new(path: Option<&Path>) -> Result<NetLog, ProxyError> {
        let file = match path {
            None => None,
            Some(p) => Some(open_log(p)?),
        };
        Ok(NetLog::with_file(file))
    }

    /// Refuse these hosts quietly (see the module docs).
    pub(crate) fn with_quiet(mut self, quiet: Vec<HostPattern>) -> NetLog {
        self.quiet = quiet;
        self
    }

    /// Is this refusal of a quiet host? `host` is as logged (an authority).
    fn is_quiet(&self, reason: &str, host: &str, port: u16) -> bool {
        if reason != "not-allowed" || self.quiet.is_empty() {
            return false;
        }
        match Host::parse(host) {
            Ok(h) => self.quiet.iter().any(|p| p.matches_host(&h, port)),
            Err(_) => false,
        }
    }

    /// A log writing to an already opened file (tests use `/dev/full`).
    pub(crate) fn with_file(file: Option<std::fs::File>) -> NetLog {
        NetLog {
            sink: file.map(|file| {
                Mutex::new(Sink {
                    file,
                    torn: false,
                    warned: false,
                })
            }),
            blocked: Mutex::new(BTreeMap::new()),
            quiet_refused: AtomicU64::new(0),
            quiet: Vec::new(),
            lost: AtomicU64::new(0),
        }
    }

    pub fn write(&self, mut rec: Record) {
        if rec.time.is_empty() {
            rec.time = now_rfc3339();
        }
        if rec.decision == Decision::Deny {
            if let Some(reason) = &rec.reason {
                rec.quiet = self.is_quiet(reason, &rec.host, rec.port);
            }
        }
        let Some(sink) = &self.sink else {
            return;
        };
        let mut line = match serde_json::to_vec(&rec) {
            Ok(l) => l,
            Err(_) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        line.push(b'\n');
        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
        if sink.torn {
            line.insert(0, b'\n');
        }
        match sink.file.write_all(&line) {
            Ok(()) => sink.torn = false,
            Err(e) => {
                // Part of the line may be on disk: mark it torn either way.
                sink.torn = true;
                self.lost.fetch_add(1, Ordering::Relaxed);
                if !sink.warned {
                    sink.warned = true;
                    crate::warn!(
                        "--net-log: cannot write a record ({e}); further records may be lost, the end-of-run summary counts them"
                    );
                }
            }
        }
    }

    /// Records that could not be written so far.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Count a refusal (tally key: `host`, or `host:port` off 80/443),
    /// with why it was refused; a quiet host is only counted.
    pub fn block(&self, d: &Denial) {
        if self.is_quiet(&d.reason, &d.host, d.port) {
            self.quiet_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let why = Why::from_reason(&d.reason);
        let mut m = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((d.key.clone(), why.clone()))
            .or_insert_with(|| Blocked {
                what: d.key.clone(),
                host: d.host.clone(),
                port: d.port,
                count: 0,
                why,
            })
            .count += 1;
    }

    /// Most-blocked first, then by name.
    pub fn blocked(&self) -> Vec<Blocked> {
        let m = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Blocked> = m.values().cloned().collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.what.cmp(&b.what)));
        v
    }

    /// Refusals of quiet hosts so far.
    pub fn quiet_refused(&self) -> u64 {
        self.quiet_refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("net.log");
        let log = NetLog::new(Some(&p)).unwrap();
        log.write(Record {
            kind: Kind::Http,
            host: "a.example".into(),
            port: 80,
            decision: Decision::Allow,
            secrets: vec!["TOKEN".into()],
            ..Default::default()
        });
        log.write(Record {
            kind: Kind::Connect,
            host: "b.example".into(),
            port: 443,
            decision: Decision::Deny,
            reason: Some("not-allowed".into()),
            ..Default::default()
        });
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["secrets"][0], "TOKEN");
        assert_eq!(lines[1]["decision"], "deny");
        assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));
        let denial = |host: &str, port: u16, reason: &str| Denial {
            reason: reason.into(),
            message: String::new(),
            key: if port == 443 {
                host.to_string()
            } else {
                format!("{host}:{port}")
            },
            host: host.into(),
            port,
        };
        log.block(&denial("x", 443, "not-allowed"));
        log.block(&denial("y", 22, "not-allowed"));
        log.block(&denial("y", 22, "not-allowed"));
        let got: Vec<(String, u64)> = log
            .blocked()
            .into_iter()
            .map(|b| (b.what, b.count))
            .collect();
        assert_eq!(got, vec![("y:22".into(), 2), ("x".into(), 1)]);
    }

    /// A quiet host refused as not allowed is logged with `quiet` and left
    /// out of the tally; any other refusal of it is reported as usual.
    #[test]
    fn quiet_hosts_are_counted_apart() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("net.log");
        let quiet = ["*.telemetry.example", "updates.example"]
            .iter()
            .map(|q| HostPattern::parse(q, super::super::host::Portless::Web).unwrap())
            .collect();
        let log = NetLog::new(Some(&p)).unwrap().with_quiet(quiet);
        let deny = |host: &str, port: u16, reason: &str| {
            let d = Denial {
                reason: reason.into(),
                message: String::new(),
                key: host.into(),
                host: host.into(),
                port,
            };
            log.write(Record {
                kind: Kind::Connect,
                host: d.host.clone(),
                port,
                decision: Decision::Deny,
                reason: Some(d.reason.clone()),
                ..Default::default()
            });
            log.block(&d);
        };
        deny("a.telemetry.example", 443, "not-allowed");
        deny("updates.example", 443, "not-allowed");
        // Off the web ports the pattern does not cover it: reported.
        deny("updates.example", 22, "not-allowed");
        // Not a "not allowed" refusal: reported.
        deny("updates.example", 443, "resolve-failed");
        deny("evil.example", 443, "not-allowed");
        assert_eq!(log.quiet_refused(), 2);
        let got: Vec<(String, Why)> = log.blocked().into_iter().map(|b| (b.what, b.why)).collect();
        assert_eq!(
            got,
            [
                ("evil.example".into(), Why::NotAllowed),
                ("updates.example".into(), Why::NotAllowed),
                ("updates.example".into(), Why::ResolveFailed),
            ]
        );
        let text = std::fs::read_to_string(&p).unwrap();
        let quiet: Vec<bool> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["quiet"] == true)
            .collect();
        assert_eq!(quiet, [true, true, false, false, false]);
    }

    #[test]
    fn symlink_and_non_regular_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("bashrc");
        std::fs::write(&target, "# rc\n").unwrap();
        let link = d.path().join("net.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = NetLog::new(Some(&link)).err().unwrap().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "# rc\n");
        // A dangling link is not followed to create its target either.
        let dangling = d.path().join("dangling.log");
        std::os::unix::fs::symlink(d.path().join("created"), &dangling).unwrap();
        assert!(NetLog::new(Some(&dangling)).is_err());
        assert!(!d.path().join("created").exists());
        // A FIFO would block the proxy: refused without blocking.
        let fifo = d.path().join("fifo.log");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(NetLog::new(Some(&fifo)).is_err());
        assert!(NetLog::new(Some(Path::new("/dev/null"))).is_err());
        // A hard link to another file (written under both names) is refused
        // and that file left as it was.
        let linked = d.path().join("linked.log");
        std::fs::hard_link(&target, &linked).unwrap();
        let e = NetLog::new(Some(&linked)).err().unwrap().to_string();
        assert!(e.contains("hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "# rc\n");
        // A new file is private, and so becomes an existing one.
        use std::os::unix::fs::PermissionsExt;
        let p = d.path().join("new.log");
        NetLog::new(Some(&p)).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        NetLog::new(Some(&p)).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// `/dev/full` fails every write with ENOSPC, as a full disk does.
    #[test]
    fn write_failures_are_counted() {
        let full = std::fs::OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap();
        let log = NetLog::with_file(Some(full));
        for _ in 0..3 {
            log.write(Record {
                kind: Kind::Http,
                host: "a.example".into(),
                port: 80,
                decision: Decision::Allow,
                ..Default::default()
            });
        }
        assert_eq!(log.lost(), 3);
        // After a failure the next record starts on a fresh line.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("net.log");
        let log = NetLog::new(Some(&p)).unwrap();
        std::fs::write(&p, "{\"cut").unwrap();
        if let Some(s) = &log.sink {
            s.lock().unwrap().torn = true;
        }
        log.write(Record {
            kind: Kind::Http,
            host: "b.example".into(),
            port: 80,
            decision: Decision::Allow,
            ..Default::default()
        });
        let text = std::fs::read_to_string(&p).unwrap();
        let last = text.lines().last().unwrap();
        let v: serde_json::Value = serde_json::from_str(last).unwrap();
        assert_eq!(v["host"], "b.example");
        assert_eq!(log.lost(), 0);
    }
}
