//! Secrets: the [`Secret`] type, placeholder generation, and the streaming
//! scanner that swaps placeholders for real values on the way out, refuses
//! placeholders headed to hosts they are not bound to, and swaps real values
//! back to placeholders on the way in (response redaction).
//!
//! Owns: everything that touches a real secret value, and a secret's
//! bindings (host pattern; TLS only, or cleartext allowed with `http://`). Values live in
//! `Zeroizing` buffers (wiped on drop); `Debug` never prints them; errors
//! name secrets, never values. Bytes handed to hyper for the upstream request
//! necessarily contain the value and are not wiped (documented limit).

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, SizeHint};
use zeroize::Zeroizing;

use super::host::{Host, HostPattern};
use super::placeholder_key::PlaceholderKey;
use super::{BoxError, ProxyError};

/// Prefix of every placeholder.
pub const PLACEHOLDER_PREFIX: &str = "ZEROBOX_SECRET_";
/// Shortest secret value accepted: shorter values would make response
/// redaction rewrite ordinary text.
pub const MIN_SECRET_LEN: usize = 4;
/// Largest `--secret NAME=@FILE` read (64 KiB: far above any token, key or
/// certificate bundle a header could carry).
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A secret the proxy injects: a name, the real value (wiped on drop), the
/// placeholder the sandbox sees instead (stable per user, name and
/// bindings; see [`Secret::use_stable_placeholder`]), and the hosts the
/// value may be sent to.
pub struct Secret {
    name: String,
    value: Zeroizing<Vec<u8>>,
    placeholder: String,
    hosts: Vec<Binding>,
}

/// One host a secret is bound to, and whether the value may travel there
/// in cleartext.
///
/// `HOST[:PORT]` and `https://HOST[:PORT]`: the value is injected only when
/// zerobox's leg to the upstream is TLS (an intercepted HTTPS request). A
/// plain `http://` request, or plaintext HTTP sent inside a `CONNECT`, that
/// carries the placeholder is refused: anyone on the path would read the
/// real value. `http://HOST[:PORT]` says cleartext is intended (a local
/// test server, a plain-HTTP internal API) and allows both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub pattern: HostPattern,
    pub cleartext: bool,
}

impl Binding {
    /// The grammar is `policy::net::SecretHost`'s (the policy checked it
    /// already; this is the same parse).
    pub fn parse(text: &str) -> Result<Binding, ProxyError> {
        let h = crate::policy::net::SecretHost::parse(text)
            .map_err(|e| ProxyError::Pattern(e.to_string()))?;
        Ok(Binding {
            pattern: h.pattern,
            cleartext: h.cleartext,
        })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("placeholder", &self.placeholder)
            .field(
                "hosts",
                &self
                    .hosts
                    .iter()
                    .map(|h| h.pattern.text.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn validate_name(name: &str) -> Result<(), ProxyError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ProxyError::Secret(format!(
            "invalid secret name {name:?} (letters, digits, '_'; not starting with a digit)"
        )))
    }
}

fn new_placeholder() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("{PLACEHOLDER_PREFIX}{}", hex::encode_upper(bytes))
}

/// Domain separation for [`derived_placeholder`]: a new scheme gets a new
/// tag, never a reuse of this one.
const PLACEHOLDER_TAG: &[u8] = b"zerobox placeholder v1";

/// `ZEROBOX_SECRET_` + the first 128 bits of
/// HMAC-SHA256(user key, tag, name, sorted bindings), uppercase hex: the
/// same shape as a random placeholder. The value is not an input, so the
/// placeholder says nothing about it; without the key (read-denied inside
/// the sandbox) it cannot be computed for another name or binding.
/// Every field is length-prefixed, so no two bindings share an input.
fn derived_placeholder(key: &PlaceholderKey, name: &str, hosts: &[Binding]) -> String {
    use hmac::{Mac, SimpleHmac};
    let mut bindings: Vec<String> = hosts
        .iter()
        .map(|b| {
            let scheme = if b.cleartext { "http://" } else { "https://" };
            format!("{scheme}{}", b.pattern.text.to_ascii_lowercase())
        })
        .collect();
    bindings.sort();
    bindings.dedup();
    // Proof: HMAC accepts a key of any length (RFC 2104 hashes a long one,
    // pads a short one); `new_from_slice` only fails for fixed-key MACs.
    #[allow(clippy::expect_used)]
    let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key.bytes())
        .expect("HMAC accepts keys of any length");
    let mut field = |b: &[u8]| {
        mac.update(&(b.len() as u64).to_be_bytes());
        mac.update(b);
    };
    field(PLACEHOLDER_TAG);
    field(name.as_bytes());
    for b in &bindings {
        field(b.as_bytes());
    }
    let tag = mac.finalize().into_bytes();
    format!("{PLACEHOLDER_PREFIX}{}", hex::encode_upper(&tag[..16]))
}

impl Secret {
    /// `--secret NAME`: the value is zerobox's own environment variable NAME.
    pub fn from_env(name: &str, hosts: Vec<String>) -> Result<Secret, ProxyError> {
        validate_name(name)?;
        let v = std::env::var_os(name).ok_or_else(|| {
            ProxyError::Secret(format!("secret {name}: environment variable is not set"))
        })?;
        let v = v.into_string().map_err(|_| {
            ProxyError::Secret(format!("secret {name}: environment value is not UTF-8"))
        })?;
        Secret::from_value(name, v, hosts)
    }

    /// `--secret NAME=@FILE`: the value is the file's content, minus one
    /// trailing newline (`\n` or `\r\n`). FILE must be a regular file of
    /// at most [`MAX_SECRET_FILE`] bytes (`@/dev/zero` once grew zerobox to
    /// 12 GB; a FIFO would block the run).
    pub fn from_file(name: &str, path: &Path, hosts: Vec<String>) -> Result<Secret, ProxyError> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        validate_name(name)?;
        let shown = path.display();
        let err = |e: std::io::Error| {
            ProxyError::Secret(format!("secret {name}: cannot read {shown}: {e}"))
        };
        // O_NONBLOCK: opening a FIFO must not wait for a writer.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(err)?;
        let meta = f.metadata().map_err(err)?;
        if !meta.is_file() {
            return Err(ProxyError::Secret(format!(
                "secret {name}: {shown} is not a regular file (give a file holding the value)"
            )));
        }
        // The sandbox denies reading the file by its path; another hard
        // link to it (anywhere readable inside) would read the value.
        // Checked on the descriptor the value is read from.
        if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
            return Err(ProxyError::Secret(format!(
                "secret {name}: {shown} has another hard link, which the sandbox could read; give a file of its own (cp it)"
            )));
        }
        let mut bytes = Zeroizing::new(Vec::new());
        f.take(MAX_SECRET_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(err)?;
        if bytes.len() as u64 > MAX_SECRET_FILE {
            return Err(ProxyError::Secret(format!(
                "secret {name}: {shown} is larger than {} KiB; a secret file holds one value",
                MAX_SECRET_FILE / 1024
            )));
        }
        let mut end = bytes.len();
        if bytes[..end].ends_with(b"\n") {
            end -= 1;
            if bytes[..end].ends_with(b"\r") {
                end -= 1;
            }
        }
        Secret::from_bytes(name, Zeroizing::new(bytes[..end].to_vec()), hosts)
    }

    /// `--secret NAME=VALUE`.
    /// Does the real value occur in `text`? (The launcher uses it to keep
    /// the value out of every other environment variable.)
    pub(crate) fn occurs_in(&self, text: &str) -> bool {
        let v: &[u8] = &self.value;
        !v.is_empty() && text.as_bytes().windows(v.len()).any(|w| w == v)
    }

    pub fn from_value(name: &str, value: String, hosts: Vec<String>) -> Result<Secret, ProxyError> {
        let value = Zeroizing::new(value.into_bytes());
        Secret::from_bytes(name, value, hosts)
    }

    fn from_bytes(
        name: &str,
        value: Zeroizing<Vec<u8>>,
        hosts: Vec<String>,
    ) -> Result<Secret, ProxyError> {
        validate_name(name)?;
        if value.len() < MIN_SECRET_LEN {
            return Err(ProxyError::Secret(format!(
                "secret {name}: value is shorter than {MIN_SECRET_LEN} bytes"
            )));
        }
        if value.contains(&b'\n') || value.contains(&b'\r') || value.contains(&0) {
            return Err(ProxyError::Secret(format!(
                "secret {name}: value contains a newline or NUL byte"
            )));
        }
        if hosts.is_empty() {
            return Err(ProxyError::Secret(format!(
                "secret {name}: no hosts given; a secret must be bound to at least one host"
            )));
        }
        let hosts = hosts
            .iter()
            .map(|h| Binding::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Secret {
            name: name.to_string(),
            value,
            placeholder: new_placeholder(),
            hosts,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Make the placeholder the stable one for this user (`key`), name
    /// and bindings (the launcher does this for every run; without it the
    /// placeholder is random, new for every run).
    pub fn use_stable_placeholder(&mut self, key: &PlaceholderKey) {
        self.placeholder = derived_placeholder(key, &self.name, &self.hosts);
    }

    /// What the sandbox sees instead of the value: `ZEROBOX_SECRET_` and 32
    /// uppercase hex digits (128 bits): derived from the user's placeholder
    /// key, the name and the bindings after [`Secret::use_stable_placeholder`],
    /// else random.
    pub fn placeholder(&self) -> &str {
        &self.placeholder
    }

    /// The host patterns this secret may be sent to.
    pub fn host_patterns(&self) -> Vec<HostPattern> {
        self.hosts.iter().map(|b| b.pattern.clone()).collect()
    }

    /// Is this secret bound to `host:port` (over TLS at least)? Such a
    /// destination is allowed and intercepted.
    pub fn bound_to(&self, host: &Host, port: u16) -> bool {
        self.hosts
            .iter()
            .any(|b| b.pattern.matches_host(host, port))
    }

    /// May the value go to `host:port` on this leg (`tls`: zerobox speaks
    /// TLS to the upstream)?
    pub fn injectable(&self, host: &Host, port: u16, tls: bool) -> bool {
        self.hosts
            .iter()
            .any(|b| (tls || b.cleartext) && b.pattern.matches_host(host, port))
    }

    #[cfg(test)]
    pub(crate) fn value(&self) -> &[u8] {
        &self.value
    }
}

/// What to do when a pattern is seen.
enum Action {
    Replace(Zeroizing<Vec<u8>>),
    /// A placeholder headed somewhere its secret may not go: stop.
    Forbid(Refusal),
}

/// Why a placeholder may not go where it is headed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The secret is not bound to this host:port.
    Unbound,
    /// Bound, but over TLS only, and this request is plain HTTP.
    Cleartext,
}

struct Rule {
    pat: Zeroizing<Vec<u8>>,
    action: Action,
    name: String,
}

/// Raised when a forbidden placeholder is seen. Names the secret only.
#[derive(Debug)]
pub struct Forbidden(pub String, pub Refusal);

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Refusal::Unbound => write!(
                f,
                "placeholder of secret {} sent to a host it is not bound to",
                self.0
            ),
            Refusal::Cleartext => write!(
                f,
                "placeholder of secret {} sent over plain HTTP (its binding is TLS only)",
                self.0
            ),
        }
    }
}
impl std::error::Error for Forbidden {}

/// A streaming multi-pattern replacer. Feed chunks; matches that straddle
/// chunk boundaries are found because a tail that could still become a
/// match is carried to the next chunk.
pub struct Scanner {
    rules: Vec<Rule>,
    carry: Zeroizing<Vec<u8>>,
    /// Names of secrets whose patterns fired (for the log).
    pub fired: Vec<String>,
    changes_length: bool,
    /// The distinct first bytes of all patterns: the scan jumps from one
    /// occurrence of these to the next with memchr instead of trying every
    /// pattern at every byte (bodies are mostly pattern-free).
    firsts: Vec<u8>,
}

impl Scanner {
    /// Outbound scanner for a request to `host:port` (`tls`: the upstream
    /// leg is TLS): placeholders of secrets that may go there on this leg
    /// become values; placeholders of all other secrets are forbidden.
    pub fn outbound(
        secrets: &[std::sync::Arc<Secret>],
        host: &Host,
        port: u16,
        tls: bool,
    ) -> Scanner {
        let mut rules = Vec::new();
        let mut changes_length = false;
        for s in secrets {
            let action = if s.injectable(host, port, tls) {
                changes_length |= s.value.len() != s.placeholder.len();
                Action::Replace(Zeroizing::new(s.value.to_vec()))
            } else if s.bound_to(host, port) {
                Action::Forbid(Refusal::Cleartext)
            } else {
                Action::Forbid(Refusal::Unbound)
            };
            rules.push(Rule {
                pat: Zeroizing::new(s.placeholder.as_bytes().to_vec()),
                action,
                name: s.name.clone(),
            });
        }
        Scanner::new(rules, changes_length)
    }

    /// Forbid-only scanner (a tunnel we do not intercept): any placeholder
    /// at all stops the stream.
    pub fn forbid_all(secrets: &[std::sync::Arc<Secret>]) -> Scanner {
        let rules = secrets
            .iter()
            .map(|s| Rule {
                pat: Zeroizing::new(s.placeholder.as_bytes().to_vec()),
                action: Action::Forbid(Refusal::Unbound),
                name: s.name.clone(),
            })
            .collect();
        Scanner::new(rules, false)
    }

    /// Inbound (response) scanner: every real value becomes its placeholder.
    /// `extra` adds (real, shown) pairs, e.g. the re-encoded Basic header.
    pub fn redactor(secrets: &[std::sync::Arc<Secret>], extra: &[RedactPair]) -> Scanner {
        let mut rules: Vec<Rule> = secrets
            .iter()
            .map(|s| Rule {
                pat: Zeroizing::new(s.value.to_vec()),
                action: Action::Replace(Zeroizing::new(s.placeholder.as_bytes().to_vec())),
                name: s.name.clone(),
            })
            .collect();
        for (real, shown) in extra {
            if real.len() >= MIN_SECRET_LEN {
                rules.push(Rule {
                    pat: Zeroizing::new(real.clone()),
                    action: Action::Replace(Zeroizing::new(shown.clone())),
                    name: "basic-auth".into(),
                });
            }
        }
        let n = rules.len();
        Scanner::new(rules, n > 0)
    }

    /// The same rules for ASCII-lowercased text (patterns and replacements
    /// lowercased): header names arrive lowercased from hyper, so a value
    /// `sk-ABC` in a name reads `sk-abc` and would slip past the exact rules.
    pub fn lowercased(&self) -> Scanner {
        let rules = self
            .rules
            .iter()
            .map(|r| Rule {
                pat: Zeroizing::new(r.pat.to_ascii_lowercase()),
                action: match &r.action {
                    Action::Replace(v) => Action::Replace(Zeroizing::new(v.to_ascii_lowercase())),
                    Action::Forbid(why) => Action::Forbid(*why),
                },
                name: r.name.clone(),
            })
            .collect();
        Scanner::new(rules, self.changes_length)
    }

    fn new(mut rules: Vec<Rule>, changes_length: bool) -> Scanner {
        // Longest first, so a value that contains another value wins.
        rules.sort_by_key(|r| std::cmp::Reverse(r.pat.len()));
        rules.retain(|r| !r.pat.is_empty());
        let mut firsts: Vec<u8> = rules.iter().map(|r| r.pat[0]).collect();
        firsts.sort_unstable();
        firsts.dedup();
        Scanner {
            rules,
            carry: Zeroizing::new(Vec::new()),
            fired: Vec::new(),
            changes_length,
            firsts,
        }
    }

    /// The first position at or after `from` where a pattern could start.
    fn next_candidate(&self, buf: &[u8], from: usize) -> usize {
        let hay = &buf[from..];
        let found = match self.firsts.as_slice() {
            [] => None,
            [a] => memchr::memchr(*a, hay),
            [a, b] => memchr::memchr2(*a, *b, hay),
            [a, b, c] => memchr::memchr3(*a, *b, *c, hay),
            many => hay.iter().position(|x| many.binary_search(x).is_ok()),
        };
        found.map_or(buf.len(), |p| from + p)
    }

    /// Can output length differ from input length?
    pub fn changes_length(&self) -> bool {
        self.changes_length
    }

    fn note(&mut self, i: usize) {
        let name = &self.rules[i].name;
        if !self.fired.iter().any(|n| n == name) {
            self.fired.push(name.clone());
        }
    }

    /// Process one chunk. Returns the bytes that are final.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, Forbidden> {
        if self.rules.is_empty() {
            return Ok(Bytes::copy_from_slice(chunk));
        }
        let mut buf = Zeroizing::new(std::mem::take(&mut *self.carry));
        buf.extend_from_slice(chunk);
        let (out, keep_from) = self.scan(&buf, false)?;
        self.carry.extend_from_slice(&buf[keep_from..]);
        Ok(out)
    }

    /// End of stream: flush whatever is carried.
    pub fn finish(&mut self) -> Result<Bytes, Forbidden> {
        let buf = Zeroizing::new(std::mem::take(&mut *self.carry));
        let (out, _) = self.scan(&buf, true)?;
        Ok(out)
    }

    /// Detect-only (tunnels): the caller forwards `chunk` as is, nothing is
    /// held back, but a tail is remembered so a placeholder split across
    /// chunks is still seen. The chunk itself is scanned in place; only
    /// the seam (the carried tail and the chunk's first bytes) is copied.
    pub fn detect(&mut self, chunk: &[u8]) -> Result<(), Forbidden> {
        let Some(maxlen) = self.rules.iter().map(|r| r.pat.len()).max() else {
            return Ok(());
        };
        if !self.carry.is_empty() {
            let mut seam = Zeroizing::new(self.carry.to_vec());
            seam.extend_from_slice(&chunk[..chunk.len().min(maxlen - 1)]);
            self.forbid_first(&seam)?;
        }
        self.forbid_first(chunk)?;
        let keep = maxlen - 1;
        if chunk.len() >= keep {
            self.carry.clear();
            self.carry.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.carry.extend_from_slice(chunk);
            let extra = self.carry.len().saturating_sub(keep);
            self.carry.drain(..extra);
        }
        Ok(())
    }

    /// The first full match in `buf` (the longest pattern at the earliest
    /// position), as (position, rule).
    fn first_match(&self, buf: &[u8]) -> Option<(usize, usize)> {
        if let [r] = self.rules.as_slice() {
            // One pattern (the common case: one secret): memchr's SIMD
            // substring search. The needle is borrowed, never copied.
            return memchr::memmem::find(buf, &r.pat).map(|p| (p, 0));
        }
        let mut i = 0;
        while i < buf.len() {
            i = self.next_candidate(buf, i);
            if i >= buf.len() {
                break;
            }
            let rest = &buf[i..];
            if let Some(r) = self.rules.iter().position(|r| rest.starts_with(&r.pat)) {
                return Some((i, r));
            }
            i += 1;
        }
        None
    }

    /// Refuse `buf` if any pattern occurs whole in it (names the secret).
    fn forbid_first(&mut self, buf: &[u8]) -> Result<(), Forbidden> {
        let Some((_, r)) = self.first_match(buf) else {
            return Ok(());
        };
        self.note(r);
        match &self.rules[r].action {
            Action::Forbid(why) => Err(Forbidden(self.rules[r].name.clone(), *why)),
            // Detect-only scanners are built of Forbid rules; a Replace
            // rule seen by `detect` is a placeholder headed out as is.
            Action::Replace(_) => Err(Forbidden(self.rules[r].name.clone(), Refusal::Unbound)),
        }
    }

    /// Where a possible start of a pattern begins in the last bytes of
    /// `buf` (a prefix of some pattern runs to the end), or `buf.len()`.
    fn tail_partial(&self, buf: &[u8]) -> usize {
        let maxlen = self.rules.iter().map(|r| r.pat.len()).max().unwrap_or(0);
        let from = buf.len().saturating_sub(maxlen.saturating_sub(1));
        (from..buf.len())
            .find(|&i| {
                let rest = &buf[i..];
                self.rules
                    .iter()
                    .any(|r| r.pat.len() > rest.len() && r.pat.starts_with(rest))
            })
            .unwrap_or(buf.len())
    }

    /// [`Scanner::feed`] for an owned chunk: when nothing is carried and
    /// the chunk holds no pattern, the chunk is passed on as is (no copy;
    /// bodies are almost always pattern-free), holding back only a tail
    /// that may begin a pattern.
    pub fn feed_bytes(&mut self, chunk: Bytes) -> Result<Bytes, Forbidden> {
        if self.rules.is_empty() {
            return Ok(chunk);
        }
        if self.carry.is_empty() && self.first_match(&chunk).is_none() {
            let keep_from = self.tail_partial(&chunk);
            self.carry.extend_from_slice(&chunk[keep_from..]);
            return Ok(chunk.slice(..keep_from));
        }
        self.feed(&chunk)
    }

    /// Whole-buffer convenience (headers, URIs, buffered bodies).
    pub fn apply(&mut self, data: &[u8]) -> Result<Bytes, Forbidden> {
        let mut out = BytesMut::from(&self.feed(data)?[..]);
        out.extend_from_slice(&self.finish()?);
        Ok(out.freeze())
    }

    /// Scan `buf`; returns output and the index from which bytes must be
    /// carried (a possible prefix of a pattern at the end).
    fn scan(&mut self, buf: &[u8], last: bool) -> Result<(Bytes, usize), Forbidden> {
        let mut out = BytesMut::with_capacity(buf.len());
        let mut i = 0;
        let mut emitted = 0;
        'outer: while i < buf.len() {
            i = self.next_candidate(buf, i);
            if i >= buf.len() {
                break;
            }
            let rest = &buf[i..];
            let mut partial = false;
            for r in 0..self.rules.len() {
                let pat = &self.rules[r].pat;
                if pat[0] != rest[0] {
                    continue;
                }
                if rest.len() >= pat.len() {
                    if rest[..pat.len()] == pat[..] {
                        out.extend_from_slice(&buf[emitted..i]);
                        let plen = pat.len();
                        self.note(r);
                        match &self.rules[r].action {
                            Action::Replace(v) => out.extend_from_slice(v),
                            Action::Forbid(why) => {
                                return Err(Forbidden(self.rules[r].name.clone(), *why));
                            }
                        }
                        i += plen;
                        emitted = i;
                        continue 'outer;
                    }
                } else if !last && pat.starts_with(rest) {
                    partial = true;
                }
            }
            if partial {
                // Everything from i on might be the start of a match.
                out.extend_from_slice(&buf[emitted..i]);
                return Ok((out.freeze(), i));
            }
            i += 1;
        }
        out.extend_from_slice(&buf[emitted..]);
        Ok((out.freeze(), buf.len()))
    }
}

/// `(real bytes, what the client should see instead)` for redaction.
pub type RedactPair = (Vec<u8>, Vec<u8>);

/// Substitute in an `Authorization`/`Proxy-Authorization` style value that
/// uses the Basic scheme: decode, scan, re-encode. Returns the new header
/// value and, when it changed, `(real_b64, placeholder_b64)` so responses
/// that echo the header can be redacted.
pub fn basic_auth(
    value: &[u8],
    scanner: &mut Scanner,
) -> Result<Option<(Vec<u8>, RedactPair)>, Forbidden> {
    let s = match std::str::from_utf8(value) {
        Ok(s) => s.trim(),
        Err(_) => return Ok(None),
    };
    let Some((scheme, b64)) = s.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let b64 = b64.trim();
    let engine = base64::engine::general_purpose::STANDARD;
    let Ok(decoded) = engine.decode(b64) else {
        return Ok(None);
    };
    let decoded = Zeroizing::new(decoded);
    let replaced = scanner.apply(&decoded)?;
    if replaced[..] == decoded[..] {
        return Ok(None);
    }
    let enc = engine.encode(&replaced);
    let header = format!("{scheme} {enc}").into_bytes();
    Ok(Some((header, (enc.into_bytes(), b64.as_bytes().to_vec()))))
}

/// Run every header name (through `names`, the [`Scanner::lowercased`]
/// rules) and value (through `values`) of `h`, in place. A header whose
/// rewritten name or value is not valid HTTP is dropped (never passed on
/// unrewritten). Used for trailers, response heads and the 101 head.
pub fn rewrite_headers(
    h: &mut hyper::HeaderMap,
    values: &mut Scanner,
    names: &mut Scanner,
) -> Result<(), Forbidden> {
    use hyper::header::{HeaderName, HeaderValue};
    if values.rules.is_empty() {
        return Ok(());
    }
    let mut out = hyper::HeaderMap::with_capacity(h.len());
    let mut current: Option<HeaderName> = None;
    for (name, value) in std::mem::take(h).into_iter() {
        // `into_iter` yields the name only for the first value of each.
        let name = match name {
            Some(n) => {
                let new = names.apply(n.as_str().as_bytes())?;
                let n = if new[..] == *n.as_str().as_bytes() {
                    Some(n)
                } else {
                    HeaderName::from_bytes(&new).ok()
                };
                current = n.clone();
                n
            }
            None => current.clone(),
        };
        let new = values.apply(value.as_bytes())?;
        let value = if new[..] == *value.as_bytes() {
            Some(value)
        } else {
            HeaderValue::from_bytes(&new).ok()
        };
        if let (Some(n), Some(v)) = (name, value) {
            out.append(n, v);
        }
    }
    *h = out;
    Ok(())
}

/// A body whose data frames pass through a [`Scanner`]. Trailers (HTTP/2,
/// chunked HTTP/1.1) go through the same rules, names and values, after
/// any carried bytes are flushed.
pub struct ScanBody {
    inner: BoxBody<Bytes, BoxError>,
    scanner: Scanner,
    names: Scanner,
    pending_trailers: Option<Frame<Bytes>>,
    done: bool,
    preserve_hint: bool,
}

impl ScanBody {
    pub fn new(inner: BoxBody<Bytes, BoxError>, scanner: Scanner) -> ScanBody {
        let preserve_hint = !scanner.changes_length();
        let names = scanner.lowercased();
        ScanBody {
            inner,
            scanner,
            names,
            pending_trailers: None,
            done: false,
            preserve_hint,
        }
    }
}

impl Body for ScanBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(t) = this.pending_trailers.take() {
                this.done = true;
                return Poll::Ready(Some(Ok(t)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match this.scanner.feed_bytes(data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(f) => {
                            this.done = true;
                            return Poll::Ready(Some(Err(Box::new(f))));
                        }
                    },
                    Err(frame) => {
                        // Flush the body's carried tail first: the trailer
                        // scan must not start with body bytes.
                        let tail = match this.scanner.finish() {
                            Ok(t) => t,
                            Err(f) => {
                                this.done = true;
                                return Poll::Ready(Some(Err(Box::new(f))));
                            }
                        };
                        let frame = match frame.into_trailers() {
                            Ok(mut t) => {
                                if let Err(f) =
                                    rewrite_headers(&mut t, &mut this.scanner, &mut this.names)
                                {
                                    this.done = true;
                                    return Poll::Ready(Some(Err(Box::new(f))));
                                }
                                Frame::trailers(t)
                            }
                            Err(other) => other,
                        };
                        if tail.is_empty() {
                            this.done = true;
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        this.pending_trailers = Some(frame);
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return match this.scanner.finish() {
                        Ok(tail) if tail.is_empty() => Poll::Ready(None),
                        Ok(tail) => Poll::Ready(Some(Ok(Frame::data(tail)))),
                        Err(f) => Poll::Ready(Some(Err(Box::new(f)))),
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending_trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.preserve_hint {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn secret(name: &str, value: &str, hosts: &[&str]) -> Arc<Secret> {
        Arc::new(
            Secret::from_value(
                name,
                value.to_string(),
                hosts.iter().map(|s| s.to_string()).collect(),
            )
            .unwrap(),
        )
    }
    fn h(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn placeholder_shape_and_freshness() {
        let a = secret("A", "value-a", &["a.example"]);
        let b = secret("A", "value-a", &["a.example"]);
        assert!(a.placeholder().starts_with(PLACEHOLDER_PREFIX));
        assert_eq!(a.placeholder().len(), PLACEHOLDER_PREFIX.len() + 32);
        assert_ne!(a.placeholder(), b.placeholder());
    }

    #[test]
    fn stable_placeholder_depends_on_key_name_and_bindings_only() {
        let key = PlaceholderKey::ephemeral();
        let mk = |name: &str, value: &str, hosts: &[&str], key: &PlaceholderKey| {
            let mut s = Secret::from_value(
                name,
                value.into(),
                hosts.iter().map(|h| h.to_string()).collect(),
            )
            .unwrap();
            s.use_stable_placeholder(key);
            s.placeholder().to_string()
        };
        let a = mk("K", "value-one", &["a.test", "b.test"], &key);
        assert!(a.starts_with(PLACEHOLDER_PREFIX));
        assert_eq!(a.len(), PLACEHOLDER_PREFIX.len() + 32);
        assert!(a[PLACEHOLDER_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        // Same binding, another value, another order or case: same.
        assert_eq!(a, mk("K", "value-two", &["B.test", "a.test"], &key));
        // Another name, host set, scheme or key: different.
        assert_ne!(a, mk("K2", "value-one", &["a.test", "b.test"], &key));
        assert_ne!(a, mk("K", "value-one", &["a.test"], &key));
        assert_ne!(a, mk("K", "value-one", &["a.test", "http://b.test"], &key));
        assert_ne!(
            a,
            mk(
                "K",
                "value-one",
                &["a.test", "b.test"],
                &PlaceholderKey::ephemeral()
            )
        );
    }

    #[test]
    fn debug_hides_value() {
        let a = secret("TOKEN", "hunter2-super-secret", &["a.example"]);
        let d = format!("{a:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("TOKEN"));
    }

    #[test]
    fn construction_errors() {
        assert!(Secret::from_value("A", "longvalue".into(), vec![]).is_err());
        assert!(Secret::from_value("A", "abc".into(), vec!["x.example".into()]).is_err());
        assert!(Secret::from_value("1A", "longvalue".into(), vec!["x.example".into()]).is_err());
        assert!(Secret::from_value("A-B", "longvalue".into(), vec!["x.example".into()]).is_err());
        assert!(Secret::from_value("A", "longvalue".into(), vec!["*".into()]).is_err());
        let e = Secret::from_value("A", "a\nb-long".into(), vec!["x.example".into()])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("a\nb-long"));
        assert!(
            Secret::from_env("ZEROBOX_TEST_SURELY_UNSET_VAR", vec!["x.example".into()]).is_err()
        );
    }

    #[test]
    fn from_file_trims_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "abcdef\n").unwrap();
        let s = Secret::from_file("T", &p, vec!["x.example".into()]).unwrap();
        assert_eq!(s.value(), b"abcdef");
        // Only one newline is trimmed; a value with a newline left is refused.
        std::fs::write(&p, "abcdef\n\n").unwrap();
        assert!(Secret::from_file("T", &p, vec!["x.example".into()]).is_err());
        std::fs::write(&p, "abcdef\r\n").unwrap();
        let s = Secret::from_file("T", &p, vec!["x.example".into()]).unwrap();
        assert_eq!(s.value(), b"abcdef");
    }

    #[test]
    fn from_file_is_capped_and_regular_only() {
        let hosts = || vec!["x.example".to_string()];
        let e = Secret::from_file("T", Path::new("/dev/zero"), hosts()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_FILE as usize + 1]).unwrap();
        let e = Secret::from_file("T", &big, hosts()).unwrap_err();
        assert!(e.to_string().contains("larger than 64 KiB"), "{e}");
        std::fs::write(&big, vec![b'a'; MAX_SECRET_FILE as usize]).unwrap();
        assert!(Secret::from_file("T", &big, hosts()).is_ok());
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let e = Secret::from_file("T", &fifo, hosts()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn outbound_replace_and_forbid() {
        let a = secret("A", "real-a-value", &["a.example"]);
        let b = secret("B", "real-b-value", &["b.example"]);
        let all = vec![a.clone(), b.clone()];
        let mut sc = Scanner::outbound(&all, &h("a.example"), 443, true);
        let input = format!("x={}&y=1", a.placeholder());
        assert_eq!(
            &sc.apply(input.as_bytes()).unwrap()[..],
            b"x=real-a-value&y=1"
        );
        assert_eq!(sc.fired, vec!["A".to_string()]);
        // B's placeholder to A's host: laundering refused.
        let mut sc = Scanner::outbound(&all, &h("a.example"), 443, true);
        let input = format!("x={}", b.placeholder());
        let err = sc.apply(input.as_bytes()).unwrap_err();
        assert_eq!(err.0, "B");
        // Port outside the binding (no port = 80/443).
        let mut sc = Scanner::outbound(&all, &h("a.example"), 8443, true);
        assert!(sc.apply(a.placeholder().as_bytes()).is_err());
    }

    /// A port-less binding covers 80 and 443, but the value goes out only
    /// when the upstream leg is TLS, unless the binding says `http://`.
    #[test]
    fn cleartext_needs_an_http_binding() {
        let tls_only = secret("A", "real-a-value", &["a.example"]);
        let clear = secret("B", "real-b-value", &["http://b.example:8080", "c.example"]);
        let all = vec![tls_only.clone(), clear.clone()];
        for port in [80, 443] {
            let mut sc = Scanner::outbound(&all, &h("a.example"), port, false);
            let e = sc.apply(tls_only.placeholder().as_bytes()).unwrap_err();
            assert_eq!((e.0.as_str(), e.1), ("A", Refusal::Cleartext));
            let mut sc = Scanner::outbound(&all, &h("a.example"), port, true);
            assert_eq!(
                &sc.apply(tls_only.placeholder().as_bytes()).unwrap()[..],
                b"real-a-value"
            );
        }
        let mut sc = Scanner::outbound(&all, &h("b.example"), 8080, false);
        assert_eq!(
            &sc.apply(clear.placeholder().as_bytes()).unwrap()[..],
            b"real-b-value"
        );
        // The http:// applies to its own pattern only.
        let mut sc = Scanner::outbound(&all, &h("c.example"), 80, false);
        assert_eq!(
            sc.apply(clear.placeholder().as_bytes()).unwrap_err().1,
            Refusal::Cleartext
        );
        // Unbound stays unbound on either leg.
        let mut sc = Scanner::outbound(&all, &h("b.example"), 8080, true);
        assert_eq!(
            sc.apply(tls_only.placeholder().as_bytes()).unwrap_err().1,
            Refusal::Unbound
        );
        assert!(Binding::parse("HTTPS://a.example/").is_ok_and(|b| !b.cleartext));
        assert!(Binding::parse("Http://a.example:81").is_ok_and(|b| b.cleartext));
        for bad in ["ftp://a.example", "http://", "http://*.com"] {
            assert!(Binding::parse(bad).is_err(), "{bad}");
        }
    }

    /// The memchr prefilter takes another path with more than three
    /// distinct first bytes; every value is still found, split or not.
    #[test]
    fn redaction_with_many_distinct_first_bytes() {
        let values = [
            "alpha-secret",
            "bravo-secret",
            "charlie-secret",
            "delta-secret",
            "echo-secret",
        ];
        let secrets: Vec<Arc<Secret>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| secret(&format!("S{i}"), v, &["x.example"]))
            .collect();
        let text = format!("x {} y {} z {}", values[4], values[0], values[3]);
        for split in 0..text.len() {
            let mut r = Scanner::redactor(&secrets, &[]);
            let mut out = r.feed(&text.as_bytes()[..split]).unwrap().to_vec();
            out.extend_from_slice(&r.feed(&text.as_bytes()[split..]).unwrap());
            out.extend_from_slice(&r.finish().unwrap());
            let out = String::from_utf8(out).unwrap();
            let want = format!(
                "x {} y {} z {}",
                secrets[4].placeholder(),
                secrets[0].placeholder(),
                secrets[3].placeholder()
            );
            assert_eq!(out, want, "split at {split}");
        }
    }

    #[test]
    fn redaction() {
        let a = secret("A", "real-a-value", &["a.example"]);
        let mut r = Scanner::redactor(std::slice::from_ref(&a), &[]);
        let out = r.apply(b"echo: real-a-value real-a-valu").unwrap();
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            format!("echo: {} real-a-valu", a.placeholder())
        );
    }

    #[test]
    fn basic_auth_roundtrip() {
        let a = secret("PW", "pa55word-real", &["a.example"]);
        let all = vec![a.clone()];
        let engine = base64::engine::general_purpose::STANDARD;
        let hdr = format!(
            "Basic {}",
            engine.encode(format!("user:{}", a.placeholder()))
        );
        let mut sc = Scanner::outbound(&all, &h("a.example"), 443, true);
        let (new, (real_b64, shown_b64)) = basic_auth(hdr.as_bytes(), &mut sc).unwrap().unwrap();
        let new = String::from_utf8(new).unwrap();
        let dec = engine.decode(new.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(dec, b"user:pa55word-real");
        assert_eq!(real_b64, new.strip_prefix("Basic ").unwrap().as_bytes());
        assert_eq!(shown_b64, hdr.strip_prefix("Basic ").unwrap().as_bytes());
        // Untouched when no placeholder; not Basic.
        let mut sc = Scanner::outbound(&all, &h("a.example"), 443, true);
        assert!(basic_auth(b"Basic dXNlcjpwdw==", &mut sc)
            .unwrap()
            .is_none());
        assert!(basic_auth(b"Bearer xyz", &mut sc).unwrap().is_none());
        // Unbound host: forbidden, even hidden in base64.
        let mut sc = Scanner::outbound(&all, &h("evil.example"), 443, true);
        assert!(basic_auth(hdr.as_bytes(), &mut sc).is_err());
    }

    fn run_chunks(sc: &mut Scanner, data: &[u8], cuts: &[usize]) -> Result<Vec<u8>, Forbidden> {
        let mut out = Vec::new();
        let mut prev = 0;
        for &c in cuts {
            let c = c.clamp(prev, data.len());
            // Alternate the two entry points: both must agree at any cut.
            let part = &data[prev..c];
            let got = if c % 2 == 0 {
                sc.feed_bytes(Bytes::copy_from_slice(part))?
            } else {
                sc.feed(part)?
            };
            out.extend_from_slice(&got);
            prev = c;
        }
        out.extend_from_slice(&sc.feed_bytes(Bytes::copy_from_slice(&data[prev..]))?);
        out.extend_from_slice(&sc.finish()?);
        Ok(out)
    }

    #[test]
    fn detect_across_chunks() {
        let a = secret("A", "VALUE-A-123", &["a.example"]);
        let all = vec![a.clone()];
        let data = format!("xx{}yy", a.placeholder());
        for i in 0..=data.len() {
            let mut d = Scanner::forbid_all(&all);
            let r1 = d.detect(&data.as_bytes()[..i]);
            let r2 = d.detect(&data.as_bytes()[i..]);
            assert!(r1.is_err() || r2.is_err(), "split {i}");
        }
        let mut d = Scanner::forbid_all(&all);
        assert!(d.detect(b"ZEROBOX_SECRET_").is_ok());
        assert!(d.detect(b"nothing").is_ok());
    }

    #[test]
    fn every_split_point() {
        let a = secret("A", "VALUE-A-123", &["a.example"]);
        let all = vec![a.clone()];
        let data = format!(
            "pre {} mid {}{} post ZEROBOX_SECRET_",
            a.placeholder(),
            a.placeholder(),
            a.placeholder()
        );
        let want = "pre VALUE-A-123 mid VALUE-A-123VALUE-A-123 post ZEROBOX_SECRET_";
        for i in 0..=data.len() {
            for j in i..=data.len() {
                let mut sc = Scanner::outbound(&all, &h("a.example"), 443, true);
                let out = run_chunks(&mut sc, data.as_bytes(), &[i, j]).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), want, "cuts {i},{j}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn split_anywhere(prefix in "[a-zA-Z0-9 _]{0,40}", suffix in "[a-zA-Z0-9 _]{0,40}",
                          cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let a = secret("A", "s3cr3t-VALUE", &["a.example"]);
            let all = vec![a.clone()];
            let data = format!("{prefix}{}{suffix}{}", a.placeholder(), a.placeholder());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort();
            let mut sc = Scanner::outbound(&all, &h("a.example"), 443, true);
            let out = run_chunks(&mut sc, data.as_bytes(), &cuts).unwrap();
            let want = data.replace(a.placeholder(), "s3cr3t-VALUE");
            prop_assert_eq!(String::from_utf8(out).unwrap(), want.clone());
            // Redaction is the inverse, at any split.
            let mut r = Scanner::redactor(&all, &[]);
            let back = run_chunks(&mut r, want.as_bytes(), &cuts).unwrap();
            prop_assert_eq!(String::from_utf8(back).unwrap(), data.clone());
            // Forbidden anywhere, at any split.
            let mut f = Scanner::forbid_all(&all);
            prop_assert!(run_chunks(&mut f, data.as_bytes(), &cuts).is_err());
        }

        #[test]
        /// The zero-copy entry point gives exactly what the copying one
        /// does, and the in-place detector refuses exactly where the
        /// copying scan would, with several secrets whose values share
        /// prefixes and with data made of their pieces (partial matches
        /// at every chunk end).
        fn feed_bytes_and_detect_agree_with_scan(
            pieces in proptest::collection::vec(0usize..6, 0..40),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let a = secret("A", "abcVALUE-1", &["a.example"]);
            let b = secret("B", "abcVAL-22", &["a.example"]);
            let all = vec![a.clone(), b.clone()];
            let words = ["abc", "VAL", "UE-1", "-22", "x", a.placeholder()];
            let data: String = pieces.iter().map(|&i| words[i]).collect();
            let data = format!("{data}abcVALUE-1 abcVAL-22 abcVA");
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort();
            let mut whole = Scanner::redactor(&all, &[]);
            let want = whole.apply(data.as_bytes()).unwrap();
            let mut r = Scanner::redactor(&all, &[]);
            let got = run_chunks(&mut r, data.as_bytes(), &cuts).unwrap();
            prop_assert_eq!(&got[..], &want[..]);
            let mut f = Scanner::forbid_all(&all);
            let mut refused = false;
            let mut prev = 0;
            for &c in cuts.iter().chain(std::iter::once(&data.len())) {
                refused |= f.detect(&data.as_bytes()[prev..c]).is_err();
                prev = c;
            }
            prop_assert_eq!(refused, data.contains(a.placeholder()));
        }

        #[test]
        fn passthrough_without_patterns(data in proptest::collection::vec(any::<u8>(), 0..300),
                                        cut in 0usize..300) {
            let a = secret("A", "s3cr3t-VALUE", &["a.example"]);
            let all = vec![a];
            let mut sc = Scanner::outbound(&all, &h("a.example"), 443, true);
            let cut = cut % (data.len() + 1);
            let out = run_chunks(&mut sc, &data, &[cut]).unwrap();
            // Random bytes cannot contain a 47-char placeholder.
            prop_assert_eq!(out, data);
        }
    }

    /// A body that yields the given frames, one per poll.
    pub(crate) struct Chunks(pub std::collections::VecDeque<Bytes>);
    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn scan_body_streams_and_flushes() {
        use http_body_util::BodyExt;
        let a = secret("A", "VALUE-A-123", &["a.example"]);
        let all = vec![a.clone()];
        let p = a.placeholder().as_bytes();
        let chunks = Chunks(
            vec![
                Bytes::copy_from_slice(&p[..10]),
                Bytes::copy_from_slice(&p[10..]),
                Bytes::from_static(b"!ZEROBOX"),
            ]
            .into(),
        );
        let body = ScanBody::new(
            chunks.boxed(),
            Scanner::outbound(&all, &h("a.example"), 443, true),
        );
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"VALUE-A-123!ZEROBOX");
    }

    struct Frames(std::collections::VecDeque<Frame<Bytes>>);
    impl Body for Frames {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }
    }

    fn trailers(pairs: &[(&str, &str)]) -> Frame<Bytes> {
        let mut t = hyper::HeaderMap::new();
        for (k, v) in pairs {
            t.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Frame::trailers(t)
    }

    /// Trailers go through the same rules as the body: redacted on the way
    /// in (names case-insensitively), injected or refused on the way out;
    /// a body tail held back for a possible match is flushed before them.
    #[tokio::test]
    async fn scan_body_trailers() {
        use http_body_util::BodyExt;
        let a = secret("A", "Value-A-Mixed", &["a.example"]);
        let all = vec![a.clone()];
        let name = format!("x-{}", "Value-A-Mixed".to_ascii_lowercase());
        let frames = Frames(
            vec![
                Frame::data(Bytes::from_static(b"tail Value-A")),
                trailers(&[("x-t", "Value-A-Mixed"), (&name, "1")]),
            ]
            .into(),
        );
        let got = ScanBody::new(frames.boxed(), Scanner::redactor(&all, &[]))
            .collect()
            .await
            .unwrap();
        let t = got.trailers().cloned().unwrap();
        assert_eq!(&got.to_bytes()[..], b"tail Value-A");
        assert_eq!(t["x-t"], a.placeholder());
        let lower = format!("x-{}", a.placeholder().to_ascii_lowercase());
        assert!(t.contains_key(lower.as_str()), "{t:?}");
        // Outbound: a placeholder in a trailer to an unbound host is refused.
        let frames = Frames(
            vec![
                Frame::data(Bytes::from_static(b"x")),
                trailers(&[("x-t", a.placeholder())]),
            ]
            .into(),
        );
        let r = ScanBody::new(
            frames.boxed(),
            Scanner::outbound(&all, &h("evil.example"), 443, true),
        )
        .collect()
        .await;
        assert!(r.is_err());
        // ... and injected for the bound host.
        let frames = Frames(vec![trailers(&[("x-t", a.placeholder())])].into());
        let got = ScanBody::new(
            frames.boxed(),
            Scanner::outbound(&all, &h("a.example"), 443, true),
        )
        .collect()
        .await
        .unwrap();
        assert_eq!(got.trailers().unwrap()["x-t"], "Value-A-Mixed");
    }
}
