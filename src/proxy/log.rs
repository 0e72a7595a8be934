//! The `--net-log` file: one JSON object per line, per request or
//! connection. Also keeps the in-memory tally of blocked destinations for
//! [`super::ProxySummary`].
//!
//! Owns: the record shape. Records carry secret *names* only; paths and
//! query strings are never logged (they may carry values after injection).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use super::ProxyError;

/// One line of the log.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Record {
    /// RFC 3339 UTC.
    pub time: String,
    /// `http` (forward), `connect`, `socks5`, `intercept` (a request inside
    /// an intercepted tunnel).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub host: String,
    pub port: u16,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// Why, for `deny` (the same text as the `X-Zerobox-Denied` header).
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Bytes client → upstream, upstream → client (tunnels: exact; HTTP:
    /// bodies as far as known when the line is written).
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Whether the TLS tunnel was intercepted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intercepted: bool,
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The log sink and blocked tally.
pub struct NetLog {
    file: Option<Mutex<std::fs::File>>,
    blocked: Mutex<BTreeMap<String, u64>>,
}

impl NetLog {
    pub fn new(path: Option<&Path>) -> Result<NetLog, ProxyError> {
        let file = match path {
            None => None,
            Some(p) => {
                use std::os::unix::fs::OpenOptionsExt;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(|e| ProxyError::Io(format!("--net-log {}: {e}", p.display())))?;
                Some(Mutex::new(f))
            }
        };
        Ok(NetLog {
            file,
            blocked: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn write(&self, mut rec: Record) {
        if rec.time.is_empty() {
            rec.time = now_rfc3339();
        }
        if let Some(f) = &self.file {
            if let Ok(mut line) = serde_json::to_vec(&rec) {
                line.push(b'\n');
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                let _ = f.write_all(&line);
            }
        }
    }

    /// Count a blocked destination (key: `host`, or `host:port` off 80/443).
    pub fn block(&self, key: String) {
        *self
            .blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(0) += 1;
    }

    /// Most-blocked first, then by name.
    pub fn blocked(&self) -> Vec<(String, u64)> {
        let m = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(String, u64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
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
            kind: "http",
            host: "a.example".into(),
            port: 80,
            decision: "allow",
            secrets: vec!["TOKEN".into()],
            ..Default::default()
        });
        log.write(Record {
            kind: "connect",
            host: "b.example".into(),
            port: 443,
            decision: "deny",
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
        log.block("x".into());
        log.block("y:22".into());
        log.block("y:22".into());
        assert_eq!(log.blocked(), vec![("y:22".into(), 2), ("x".into(), 1)]);
    }
}
