//! Forwarding one HTTP request upstream, and dialing upstream.
//!
//! Owns: hop-by-hop header handling, placeholder injection into the
//! request target, header values (Basic auth decoded/re-encoded) and body,
//! refusal of placeholders bound elsewhere or headed out in cleartext,
//! `Content-Length` fix-up, response redaction (header names and values,
//! reason phrase, body, trailers), WebSocket/`Upgrade` pass-through,
//! upstream TLS, and chaining through a corporate proxy with `CONNECT`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::host::Host;
use super::log::{Decision, Kind, Record};
use super::policy::{Denial, Dest, Target};
use super::relay;
use super::secrets::{
    basic_auth, rewrite_headers, Forbidden, RedactPair, Refusal, ScanBody, Scanner,
};
use super::{BoxError, ProxyError, State};

pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const TLS_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for an upstream's response head (slow APIs think first).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bodies with a Content-Length up to this size are buffered when
/// injection/redaction may change their length, so the exact length can be
/// sent. Larger ones are streamed chunked.
pub const BUFFER_CAP: usize = 4 * 1024 * 1024;
const BUFFER_TIMEOUT: Duration = Duration::from_secs(120);

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A 403 for a refusal: `X-Zerobox-Denied: <reason>` and a short text body.
pub fn deny_response(d: &Denial) -> Response<Body> {
    let mut r = Response::new(full(d.message.clone()));
    *r.status_mut() = StatusCode::FORBIDDEN;
    let h = r.headers_mut();
    h.insert(
        "x-zerobox-denied",
        HeaderValue::from_str(&d.reason).unwrap_or(HeaderValue::from_static("denied")),
    );
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub fn error_response(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("zerobox: {msg}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(msg) {
        r.headers_mut().insert("x-zerobox-error", v);
    }
    r
}

/// The placeholder refusal, as a [`Denial`].
pub fn placeholder_denial(host: &Host, port: u16, f: &Forbidden) -> Denial {
    let a = host.authority();
    let name = &f.0;
    match f.1 {
        Refusal::Unbound => Denial {
            reason: "secret-placeholder-to-unbound-host".into(),
            message: format!(
                "zerobox: refused: the request to {a}:{port} carries the placeholder of secret {name}, \
                 which is not bound to this host. Bind it with --secret-host {name}={a} if that is intended.\n"
            ),
            key: format!("{a} (secret {name})"),
            host: a,
            port,
        },
        Refusal::Cleartext => Denial {
            reason: "secret-over-cleartext".into(),
            message: format!(
                "zerobox: refused: the request to {a}:{port} is plain HTTP and carries the placeholder of secret {name}, \
                 whose value goes to this host over TLS only (anyone on the path could read it). Use https://, \
                 or bind it with --secret-host {name}=http://{a}:{port} if cleartext is intended.\n"
            ),
            key: format!("{a} (secret {name} over plain HTTP)"),
            host: a,
            port,
        },
    }
}

/// `url` without a `user:pass@` part (for messages and `Debug`).
pub fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}{path}"),
        None => url.to_string(),
    }
}

/// `http://[user:pass@]host:port` to chain through. `Debug` hides the
/// credentials.
#[derive(Clone)]
pub struct UpstreamProxy {
    host: String,
    port: u16,
    /// Base64 `user:pass` for `Proxy-Authorization: Basic`.
    auth: Option<String>,
}

impl std::fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamProxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .finish()
    }
}

impl UpstreamProxy {
    pub fn parse(s: &str) -> Result<UpstreamProxy, ProxyError> {
        let bad = || ProxyError::Io("upstream proxy: expected http://[user:pass@]host:port".into());
        let rest = s
            .trim()
            .strip_prefix("http://")
            .or_else(|| s.trim().strip_prefix("HTTP://"))
            .unwrap_or(s.trim());
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_string(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (hostport.to_string(), 80),
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let host = host.trim_matches(|c| c == '[' || c == ']').to_string();
        let auth = auth.map(|a| base64::engine::general_purpose::STANDARD.encode(a.as_bytes()));
        Ok(UpstreamProxy { host, port, auth })
    }

    async fn connect(&self, target: &Target) -> io::Result<TcpStream> {
        let mut s = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream proxy connect timeout"))??;
        let auth = format!("{}:{}", target.host.authority(), target.port);
        let mut req = format!("CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n");
        if let Some(a) = &self.auth {
            req.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        // Read the response head byte by byte (nothing follows until we speak).
        let mut head = Vec::new();
        let read = async {
            while !head.ends_with(b"\r\n\r\n") {
                if head.len() > 16 * 1024 {
                    return Err(io::Error::other("upstream proxy: response head too large"));
                }
                let b = s.read_u8().await?;
                head.push(b);
            }
            Ok(())
        };
        tokio::time::timeout(CONNECT_TIMEOUT, read)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream proxy timeout"))??;
        let line = String::from_utf8_lossy(&head);
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(0);
        if status != 200 {
            return Err(io::Error::other(format!(
                "upstream proxy refused CONNECT ({status})"
            )));
        }
        Ok(s)
    }
}

/// Open a TCP connection to a checked target (never re-resolving).
pub async fn dial(state: &State, target: &Target) -> Result<TcpStream, ProxyError> {
    let host = target.host.authority();
    let port = target.port;
    match &target.dest {
        Dest::ViaProxy => match &state.upstream_proxy {
            Some(p) => p
                .connect(target)
                .await
                .map_err(|source| ProxyError::UpstreamProxy { host, port, source }),
            None => Err(ProxyError::UpstreamProxy {
                host,
                port,
                source: io::Error::other("no upstream proxy configured"),
            }),
        },
        Dest::Direct(addrs) => {
            let mut last = io::Error::other("no address");
            for a in addrs {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        return Ok(s);
                    }
                    Ok(Err(e)) => last = e,
                    Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connect timeout"),
                }
            }
            Err(ProxyError::Connect {
                host,
                port,
                source: last,
            })
        }
    }
}

/// Most upstream connections kept for reuse at once, proxy-wide. Each
/// costs ≈ 25–30 KiB (a heap profile: its TLS session, hyper's read and
/// write buffers and request channel, its task), and 1,000 held
/// intercepted client connections kept 1,000 of them. Past this many, an
/// upstream connection closes when its response ends, and the next
/// request on that client connection opens a new one (a TLS handshake,
/// ≈ 0.5 ms). A coding agent keeps a few connections per host; every
/// ordinary run stays under the cap and keeps its reuse.
pub const MAX_PARKED: usize = 64;

/// An upstream connection kept for the next request of its client
/// connection, holding one of the [`MAX_PARKED`] places until it is
/// taken back or dropped.
pub struct Parked {
    sender: Sender,
    _place: ParkPlace,
}

impl Parked {
    /// Park `sender` if a place is free; `None` (the connection is
    /// dropped, and closes when its response ends) otherwise.
    fn new(sender: Sender, count: &Arc<AtomicUsize>) -> Option<Parked> {
        Some(Parked {
            sender,
            _place: ParkPlace::take(count)?,
        })
    }

    /// The connection, unparked (its place freed).
    fn take(self) -> Sender {
        self.sender
    }
}

/// One of the [`MAX_PARKED`] places, freed on drop.
struct ParkPlace(Arc<AtomicUsize>);

impl ParkPlace {
    fn take(count: &Arc<AtomicUsize>) -> Option<ParkPlace> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PARKED).then_some(n + 1)
            })
            .ok()?;
        Some(ParkPlace(count.clone()))
    }
}

impl Drop for ParkPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The upstream connection a client connection opened before its first
/// request (by CONNECT, or a captured connection's dial).
pub enum Spare {
    /// Connected; TLS, if any, is left to the first request.
    Tcp(TcpStream),
    /// Its TLS handshake already under way, begun with the client's.
    Tls(EarlyTls),
}

/// The upstream TLS session of an intercepted client connection, a TLS
/// connection that is negotiated *while* the client negotiates with the
/// proxy, so the first request does not wait for two handshakes in a row:
/// on its own task, so the two can use both of the runtime's threads.
///
/// Started only once the target is allowed (at `CONNECT` or capture time,
/// its SNI checked) and the client's first byte says TLS; it sends what
/// the first request's own handshake would (SNI: the target; ALPN: h2 and
/// http/1.1, as for any request but an upgrade). Dropped unused (the
/// client's handshake failed, the client left): the task is aborted and the
/// connection closed. A handshake failure reaches the first request, which
/// answers 502 and logs it, as when the request made the handshake itself.
pub struct EarlyTls(tokio::task::JoinHandle<Result<UpstreamTls, ProxyError>>);

/// A TLS session to the upstream and whether it negotiated h2.
pub struct UpstreamTls {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    h2: bool,
}

impl EarlyTls {
    /// Begin the handshake over `tcp` (on the current runtime).
    pub fn start(state: Arc<State>, target: Target, tcp: TcpStream) -> EarlyTls {
        EarlyTls(tokio::spawn(async move {
            upstream_tls(&state, &target, tcp, false).await
        }))
    }

    async fn finish(mut self) -> Result<UpstreamTls, ProxyError> {
        match (&mut self.0).await {
            Ok(r) => r,
            // Only a panic or a runtime shutting down ends the task early.
            Err(e) => Err(ProxyError::Tls(format!("upstream handshake: {e}"))),
        }
    }
}

impl Drop for EarlyTls {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Per-connection context for forwarded requests.
pub struct Ctx {
    pub target: Target,
    /// Speak TLS to the upstream.
    pub upstream_tls: bool,
    /// `Http` (forward proxy) or `Intercept`.
    pub kind: Kind,
    /// A connection already opened (e.g. by CONNECT) for the first request.
    pub spare: Mutex<Option<Spare>>,
    /// The upstream connection of the previous request on this client
    /// connection, kept for the next one: without it every intercepted
    /// request paid a new TCP connect and TLS handshake (≈0.5 ms here).
    pub idle: Mutex<Option<Parked>>,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<String> = h
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .filter(|s| !s.is_empty())
        .collect();
    let upgrade = h.get("upgrade").cloned();
    for n in HOP_BY_HOP {
        h.remove(*n);
    }
    for n in named {
        if n != "upgrade" {
            h.remove(n.as_str());
        }
    }
    if keep_upgrade {
        if let Some(u) = upgrade {
            h.insert("upgrade", u);
            h.insert("connection", HeaderValue::from_static("upgrade"));
        }
    }
}

fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key("upgrade")
        && h.get_all("connection").iter().any(|v| {
            v.to_str()
                .map(|s| {
                    s.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                })
                .unwrap_or(false)
        })
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get("content-length")?.to_str().ok()?.trim().parse().ok()
}

/// Why header injection failed.
#[derive(Debug)]
enum HeaderFail {
    Forbidden(Forbidden),
    /// The substituted value is not a valid value of this header.
    Invalid(String),
}

/// Substitute in headers (in place). Returns extra redaction pairs.
fn inject_headers(h: &mut HeaderMap, scanner: &mut Scanner) -> Result<Vec<RedactPair>, HeaderFail> {
    // A placeholder in a header *name* (lowercased by hyper) is never
    // substituted, but one headed where it may not go is still refused.
    let mut names = scanner.lowercased();
    for name in h.keys() {
        names
            .apply(name.as_str().as_bytes())
            .map_err(HeaderFail::Forbidden)?;
    }
    let mut extra = Vec::new();
    let names: Vec<HeaderName> = h.keys().cloned().collect();
    for name in names {
        let values: Vec<HeaderValue> = h.get_all(&name).iter().cloned().collect();
        let mut changed = false;
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let mut bytes = v.as_bytes().to_vec();
            if name == "authorization" {
                if let Some((newv, pair)) =
                    basic_auth(&bytes, scanner).map_err(HeaderFail::Forbidden)?
                {
                    bytes = newv;
                    extra.push(pair);
                    changed = true;
                }
            }
            let replaced = scanner.apply(&bytes).map_err(HeaderFail::Forbidden)?;
            if replaced[..] != bytes[..] {
                changed = true;
            }
            let hv = HeaderValue::from_bytes(&replaced)
                .map_err(|_| HeaderFail::Invalid(name.to_string()))?;
            out.push(hv);
        }
        if changed {
            h.remove(&name);
            for v in out {
                h.append(name.clone(), v);
            }
        }
    }
    Ok(extra)
}

/// Redact everything of a response head that reaches the client: header
/// names (case-insensitively: hyper lowercases them) and values, and the
/// HTTP/1.1 reason phrase (hyper keeps a non-standard one in the
/// extensions and writes it back out). Every other extension is dropped:
/// none of them is meant for the client.
fn redact_head(parts: &mut hyper::http::response::Parts, redactor: &mut Scanner) {
    let mut names = redactor.lowercased();
    // The redactor never forbids; an error cannot happen here.
    let _ = rewrite_headers(&mut parts.headers, redactor, &mut names);
    let reason = parts
        .extensions
        .remove::<hyper::ext::ReasonPhrase>()
        .and_then(|r| redactor.apply(r.as_bytes()).ok())
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(&r[..]).ok());
    parts.extensions.clear();
    if let Some(r) = reason {
        parts.extensions.insert(r);
    }
}

#[cfg(test)]
fn redact_headers(h: &mut HeaderMap, redactor: &mut Scanner) {
    let mut names = redactor.lowercased();
    let _ = rewrite_headers(h, redactor, &mut names);
}

async fn buffer(mut body: Body, cap: usize) -> Result<Bytes, BoxError> {
    let read = async {
        let mut out = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if out.len() + data.len() > cap {
                    return Err(Box::new(io::Error::other("body too large")) as BoxError);
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out.freeze())
    };
    match tokio::time::timeout(BUFFER_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(Box::new(io::Error::new(
            io::ErrorKind::TimedOut,
            "body read timed out",
        ))),
    }
}

/// Connect, TLS if needed, and hand back an HTTP sender.
pub enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

impl Sender {
    /// Wait until the connection can take a request (the previous response
    /// finished); false if it closed meanwhile.
    async fn ready(&mut self) -> bool {
        let r = match self {
            Sender::H1(s) => tokio::time::timeout(Duration::from_secs(5), s.ready()).await,
            Sender::H2(s) => tokio::time::timeout(Duration::from_secs(5), s.ready()).await,
        };
        matches!(r, Ok(Ok(())))
    }
}

/// TLS to `target` over `tcp`, verified against the upstream roots,
/// offering h2 and http/1.1 (`h1_only`: http/1.1 alone, for an upgrade).
async fn upstream_tls(
    state: &State,
    target: &Target,
    tcp: TcpStream,
    h1_only: bool,
) -> Result<UpstreamTls, ProxyError> {
    let tls_fail = |source: io::Error| ProxyError::TlsUpstream {
        host: target.host.authority(),
        port: target.port,
        source,
    };
    // The start-up warm-up may still be building the root store.
    drop(state.tls.warming.read().await);
    let cfg = state
        .tls
        .client_config(h1_only)
        .map_err(|e| tls_fail(io::Error::other(e.to_string())))?;
    let name = match &target.host {
        Host::Name(n) => rustls_pki_types::ServerName::try_from(n.clone())
            .map_err(|e| tls_fail(io::Error::other(e.to_string())))?,
        Host::Ip(a) => rustls_pki_types::ServerName::IpAddress((*a).into()),
    };
    let conn = tokio_rustls::TlsConnector::from(cfg);
    let tls = tokio::time::timeout(TLS_TIMEOUT, conn.connect(name, tcp))
        .await
        .map_err(|_| tls_fail(io::Error::new(io::ErrorKind::TimedOut, "timed out")))?
        .map_err(tls_fail)?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    Ok(UpstreamTls { tls, h2 })
}

async fn open_upstream(state: &State, ctx: &Ctx, h1_only: bool) -> Result<Sender, ProxyError> {
    let t = &ctx.target;
    let spare = ctx.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
    let tcp = match spare {
        Some(Spare::Tls(early)) => match early.finish().await? {
            // An upgrade cannot go over h2 here: that session is dropped
            // and the upgrade gets its own http/1.1 one, as it would have.
            UpstreamTls { h2: true, .. } if h1_only => dial(state, t).await?,
            up => return handshake_http(Box::new(up.tls), up.h2, t).await,
        },
        Some(Spare::Tcp(tcp)) => tcp,
        None => dial(state, t).await?,
    };
    if ctx.upstream_tls {
        let up = upstream_tls(state, t, tcp, h1_only).await?;
        handshake_http(Box::new(up.tls), up.h2, t).await
    } else {
        handshake_http(Box::new(tcp), false, t).await
    }
}

/// The HTTP client connection (h2 if negotiated, else HTTP/1.1) over `io`,
/// its driver spawned.
async fn handshake_http(io: Box<dyn IoBox>, h2: bool, t: &Target) -> Result<Sender, ProxyError> {
    let io = TokioIo::new(io);
    let hs_fail = |source| ProxyError::Handshake {
        host: t.host.authority(),
        port: t.port,
        source,
    };
    if h2 {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(hs_fail)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await
            .map_err(hs_fail)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(Sender::H1(sender))
    }
}

/// Object-safe Io for boxing.
pub trait IoBox: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> IoBox for T {}

fn authority(t: &Target, tls: bool) -> String {
    let default = if tls { 443 } else { 80 };
    if t.port == default {
        t.host.authority()
    } else {
        format!("{}:{}", t.host.authority(), t.port)
    }
}

/// [`forward`], boxed so the future's `Send` bound is checked here (the
/// HTTP/2 server spawns it on the executor).
pub fn forward_boxed(
    state: Arc<State>,
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>> {
    Box::pin(forward(state, ctx, req))
}

/// Why an exchange stopped before an upstream answer reached the client.
pub enum Stop {
    /// Refused by policy (a placeholder headed where it may not go): 403,
    /// counted in the blocked summary.
    Denied(Denial),
    /// A step failed: answered with `status`.
    Failed(StatusCode, ProxyError),
}

impl From<Denial> for Stop {
    fn from(d: Denial) -> Stop {
        Stop::Denied(d)
    }
}

/// What a successful exchange hands back to [`forward`].
pub enum Answer {
    /// A response to pass on.
    Response(Response<Body>),
    /// The upstream switched protocols (WebSocket): pass on the 101 head,
    /// then relay the two upgraded connections.
    Upgrade {
        head: Response<Body>,
        client: hyper::upgrade::OnUpgrade,
        server: hyper::upgrade::OnUpgrade,
    },
}

/// The client's request body failed (it hung up mid-body, or stalled):
/// tagged so the failure is told apart from the upstream's.
#[derive(Debug)]
struct ClientBodyError(BoxError);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client request body: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Find the first error of type `T` in a chain.
fn find_in_chain<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// The net-log line of one exchange, written exactly once: by
/// [`LogLine::write`], or, if the exchange's task is dropped first (the
/// client hung up and hyper cancelled the request, or the proxy stopped),
/// on drop, saying so.
pub struct LogLine {
    state: Arc<State>,
    pub rec: Record,
    /// The client has its answer (a status, or an open tunnel): a drop
    /// now means the proxy stopped, not that the client left.
    pub answered: bool,
    started: Instant,
    written: bool,
}

impl LogLine {
    pub fn new(state: Arc<State>, rec: Record) -> LogLine {
        LogLine {
            state,
            rec,
            answered: false,
            started: Instant::now(),
            written: false,
        }
    }

    pub fn write(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if self.written {
            return;
        }
        self.written = true;
        let mut rec = std::mem::take(&mut self.rec);
        rec.duration_ms = self.started.elapsed().as_millis() as u64;
        self.state.log.write(rec);
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.written && self.rec.reason.is_none() {
            self.rec.reason = Some(if !self.answered && self.rec.status.is_none() {
                "client: went away before the answer".into()
            } else {
                "stopped: the proxy shut down".into()
            });
        }
        self.flush();
    }
}

/// Forward one request to `ctx.target` (already authorized). The one exit:
/// whatever happens in [`exchange`], exactly one net-log line is written
/// for the request: here, or, for a protocol switch, when the relay of the
/// upgraded connections ends (with its byte counts), or by [`LogLine`]'s
/// drop if the request is cancelled.
pub async fn forward(state: Arc<State>, ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    let mut line = LogLine::new(state.clone(), Record::allowed(ctx.kind, &ctx.target));
    line.rec.method = Some(req.method().to_string());
    let answer = exchange(&state, &ctx, req, &mut line.rec).await;
    match answer {
        Ok(Answer::Response(resp)) => {
            line.rec.status = Some(resp.status().as_u16());
            line.write();
            resp
        }
        Ok(Answer::Upgrade {
            head,
            client,
            server,
        }) => {
            line.rec.status = Some(head.status().as_u16());
            let idle = state.idle_timeout;
            tokio::spawn(async move {
                match (client.await, server.await) {
                    (Ok(c), Ok(s)) => {
                        let done = relay::relay(TokioIo::new(c), TokioIo::new(s), None, idle).await;
                        line.rec.bytes_up += done.up;
                        line.rec.bytes_down += done.down;
                        line.rec.reason = done.end.reason();
                    }
                    _ => line.rec.reason = Some("upgrade: a side closed before switching".into()),
                }
                line.write();
            });
            head
        }
        Err(Stop::Denied(d)) => {
            line.rec.decision = Decision::Deny;
            line.rec.reason = Some(d.reason.clone());
            line.rec.status = Some(StatusCode::FORBIDDEN.as_u16());
            line.write();
            state.log.block(&d);
            deny_response(&d)
        }
        Err(Stop::Failed(status, e)) => {
            let why = super::error_chain(&e);
            line.rec.reason = Some(why.clone());
            line.rec.status = Some(status.as_u16());
            line.write();
            error_response(status, &why)
        }
    }
}

/// The steps of one forwarded request: rewrite the target and headers
/// (injection), prepare the body, get an upstream connection, send, and
/// prepare the response (redaction). Every early stop is an `Err`.
async fn exchange(
    state: &State,
    ctx: &Ctx,
    mut req: Request<Incoming>,
    rec: &mut Record,
) -> Result<Answer, Stop> {
    let t = &ctx.target;
    let (host, port) = (t.host.authority(), t.port);
    let method = req.method().clone();
    let have_secrets = !state.secrets.is_empty();
    let mut scanner = Scanner::outbound(&state.secrets, &t.host, t.port, ctx.upstream_tls);
    let bound_here = state.secrets.iter().any(|s| s.bound_to(&t.host, t.port));
    let refused = |f: &Forbidden| Stop::Denied(placeholder_denial(&t.host, t.port, f));

    // Request target (path + query).
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let pq = if have_secrets {
        let b = scanner.apply(pq.as_bytes()).map_err(|f| refused(&f))?;
        String::from_utf8_lossy(&b).into_owned()
    } else {
        pq
    };
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, upgrade);
    headers.remove("host");
    let mut extra_redact = Vec::new();
    if have_secrets {
        extra_redact = inject_headers(&mut headers, &mut scanner).map_err(|e| match e {
            HeaderFail::Forbidden(f) => refused(&f),
            HeaderFail::Invalid(header) => {
                Stop::Failed(StatusCode::BAD_GATEWAY, ProxyError::Inject { header })
            }
        })?;
    }
    if bound_here {
        // Redaction needs to read responses: ask for them uncompressed.
        headers.insert("accept-encoding", HeaderValue::from_static("identity"));
    }

    // Body. Its errors are tagged as the client's.
    let body: Body = body
        .map_err(|e| Box::new(ClientBodyError(Box::new(e))) as BoxError)
        .boxed();
    let body = if !have_secrets {
        body
    } else if scanner.changes_length()
        && content_length(&headers).is_some_and(|n| n as usize <= BUFFER_CAP)
    {
        let data = buffer(body, BUFFER_CAP)
            .await
            .map_err(|e| Stop::Failed(StatusCode::BAD_REQUEST, ProxyError::ClientBody(e)))?;
        let out = scanner.apply(&data).map_err(|f| refused(&f))?;
        headers.insert("content-length", HeaderValue::from(out.len()));
        full(out)
    } else {
        let body_scanner = Scanner::outbound(&state.secrets, &t.host, t.port, ctx.upstream_tls);
        if body_scanner.changes_length() {
            headers.remove("content-length");
        }
        ScanBody::new(body, body_scanner).boxed()
    };
    rec.secrets = scanner.fired.clone();
    rec.bytes_up = content_length(&headers).unwrap_or(0);

    // Upstream. Reuse the previous request's connection when it is still
    // good (never for an upgrade, which takes the connection over).
    let idle = if upgrade {
        None
    } else {
        let parked = ctx.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
        parked.map(Parked::take)
    };
    let reused = match idle {
        Some(mut s) => s.ready().await.then_some(s),
        None => None,
    };
    let sender = match reused {
        Some(s) => s,
        None => open_upstream(state, ctx, upgrade)
            .await
            .map_err(|e| Stop::Failed(StatusCode::BAD_GATEWAY, e))?,
    };
    let auth = authority(t, ctx.upstream_tls);
    let scheme = if ctx.upstream_tls { "https" } else { "http" };
    let uri = match &sender {
        Sender::H1(_) => {
            headers.insert(
                "host",
                HeaderValue::from_str(&auth).unwrap_or(HeaderValue::from_static("")),
            );
            pq.parse::<Uri>()
        }
        Sender::H2(_) => format!("{scheme}://{auth}{pq}").parse::<Uri>(),
    };
    let bad = |what| Stop::Failed(StatusCode::BAD_GATEWAY, ProxyError::ParseRequest { what });
    let uri = uri.map_err(|_| bad("the request target is not a valid URI after injection"))?;
    let mut out_req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .body(body)
        .map_err(|_| bad("the request cannot be rebuilt"))?;
    *out_req.headers_mut() = headers;

    let send = async {
        match sender {
            Sender::H1(mut s) => {
                let r = s.send_request(out_req).await;
                (r, Sender::H1(s))
            }
            Sender::H2(mut s) => {
                let r = s.send_request(out_req).await;
                (r, Sender::H2(s))
            }
        }
    };
    let mut resp = match tokio::time::timeout(RESPONSE_TIMEOUT, send).await {
        Ok((Ok(r), sender)) => {
            if !upgrade {
                let parked = Parked::new(sender, &state.parked);
                *ctx.idle.lock().unwrap_or_else(|e| e.into_inner()) = parked;
            }
            r
        }
        Ok((Err(e), _)) => {
            if let Some(f) = find_in_chain::<Forbidden>(&e) {
                return Err(refused(f));
            }
            if let Some(c) = find_in_chain::<ClientBodyError>(&e) {
                let err = ProxyError::ClientBody(c.0.to_string().into());
                return Err(Stop::Failed(StatusCode::BAD_REQUEST, err));
            }
            let source = Box::new(e);
            return Err(Stop::Failed(
                StatusCode::BAD_GATEWAY,
                ProxyError::Request { host, port, source },
            ));
        }
        Err(_) => {
            let secs = RESPONSE_TIMEOUT.as_secs();
            let err = ProxyError::ResponseTimeout { host, port, secs };
            return Err(Stop::Failed(StatusCode::GATEWAY_TIMEOUT, err));
        }
    };

    // Protocol switch (WebSocket): the two upgraded streams are relayed.
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_upgrade {
            let server = hyper::upgrade::on(&mut resp);
            let (mut parts, _) = resp.into_parts();
            if have_secrets {
                redact_head(
                    &mut parts,
                    &mut Scanner::redactor(&state.secrets, &extra_redact),
                );
            }
            let head = Response::from_parts(parts, empty());
            return Ok(Answer::Upgrade {
                head,
                client,
                server,
            });
        }
    }

    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    let body: Body = body.map_err(|e| Box::new(e) as BoxError).boxed();
    let body = if have_secrets {
        let mut redactor = Scanner::redactor(&state.secrets, &extra_redact);
        redact_head(&mut parts, &mut redactor);
        let no_body = method == Method::HEAD
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED
            || parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if no_body {
            body
        } else if content_length(&parts.headers).is_some_and(|n| n as usize <= BUFFER_CAP) {
            let d = buffer(body, BUFFER_CAP).await.map_err(|source| {
                let err = ProxyError::ResponseBody { host, port, source };
                Stop::Failed(StatusCode::BAD_GATEWAY, err)
            })?;
            let out = redactor.apply(&d).unwrap_or_default();
            parts
                .headers
                .insert("content-length", HeaderValue::from(out.len()));
            full(out)
        } else {
            parts.headers.remove("content-length");
            ScanBody::new(body, Scanner::redactor(&state.secrets, &extra_redact)).boxed()
        }
    } else {
        body
    };
    rec.bytes_down = content_length(&parts.headers).unwrap_or(0);
    Ok(Answer::Response(Response::from_parts(parts, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most MAX_PARKED upstream connections are kept; a place comes
    /// back when a kept one is taken or dropped.
    #[test]
    fn parked_places_are_capped_and_given_back() {
        let count = Arc::new(AtomicUsize::new(0));
        let places: Vec<ParkPlace> = (0..MAX_PARKED)
            .map(|_| ParkPlace::take(&count).unwrap())
            .collect();
        assert_eq!(count.load(Ordering::Acquire), MAX_PARKED);
        assert!(ParkPlace::take(&count).is_none(), "over the cap");
        assert_eq!(count.load(Ordering::Acquire), MAX_PARKED);
        drop(places);
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert!(ParkPlace::take(&count).is_some());
    }

    #[test]
    fn hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-foo"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-foo").is_none());
        assert!(h.get("proxy-authorization").is_none());
        assert!(h.get("x-keep").is_some());
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
    }

    #[test]
    fn upstream_proxy_parse() {
        let p = UpstreamProxy::parse("http://user:pw@proxy.corp:3128/").unwrap();
        assert_eq!(p.host, "proxy.corp");
        assert_eq!(p.port, 3128);
        assert_eq!(p.auth.as_deref(), Some("dXNlcjpwdw=="));
        let p = UpstreamProxy::parse("proxy.corp").unwrap();
        assert_eq!(p.port, 80);
        let p = UpstreamProxy::parse("http://[::1]:8080").unwrap();
        assert_eq!(p.host, "::1");
    }

    #[test]
    fn header_injection_and_content_length() {
        use std::sync::Arc;
        let s = Arc::new(
            super::super::Secret::from_value(
                "K",
                "real-key-value".into(),
                vec!["a.example".into()],
            )
            .unwrap(),
        );
        let all = vec![s.clone()];
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_str(s.placeholder()).unwrap());
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(format!("u:{}", s.placeholder()));
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Basic {b64}")).unwrap(),
        );
        let host = Host::parse("a.example").unwrap();
        let mut sc = Scanner::outbound(&all, &host, 443, true);
        let extra = inject_headers(&mut h, &mut sc).unwrap();
        assert_eq!(h.get("x-api-key").unwrap(), "real-key-value");
        let want = base64::engine::general_purpose::STANDARD.encode("u:real-key-value");
        assert_eq!(
            h.get("authorization").unwrap().to_str().unwrap(),
            format!("Basic {want}")
        );
        assert_eq!(extra.len(), 1);
        // Redaction of an echoed Authorization header restores the placeholder form.
        let mut r = Scanner::redactor(&all, &extra);
        let mut echoed = HeaderMap::new();
        echoed.insert(
            "x-echo",
            HeaderValue::from_str(&format!("Basic {want}")).unwrap(),
        );
        redact_headers(&mut echoed, &mut r);
        assert_eq!(
            echoed.get("x-echo").unwrap().to_str().unwrap(),
            format!("Basic {b64}")
        );
        // Unbound host: refused.
        let mut h2 = HeaderMap::new();
        h2.insert("x-api-key", HeaderValue::from_str(s.placeholder()).unwrap());
        let mut sc = Scanner::outbound(&all, &Host::parse("evil.example").unwrap(), 443, true);
        assert!(matches!(
            inject_headers(&mut h2, &mut sc),
            Err(HeaderFail::Forbidden(_))
        ));
    }
}
