//! Connections: the accept loop, protocol sniffing, the HTTP front door
//! (forward requests and `CONNECT`), byte tunnels, and interception.
//!
//! Owns: one task per connection, the connection cap, every wait's
//! timeout, HTTP/1.1 header caps on the client side, and the choice
//! between tunnelling (no secret bound to the host) and intercepting
//! (some secret bound to it).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::http::{self, deny_response, error_response, Body, Ctx, Io};
use super::log::Record;
use super::policy::{self, Denial, Dest, Target};
use super::secrets::Scanner;
use super::State;

/// Most simultaneous client connections.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time for a new connection to send its first byte.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for an HTTP request head to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A tunnel with no bytes either way for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Client request head cap (bytes) and header count cap.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

pub async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let sem = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((sock, _peer)) => {
                let st = state.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    handle(st, sock).await;
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn handle(state: Arc<State>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let mut first = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, sock.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == 0x05 {
        super::socks::serve(state, sock).await;
    } else {
        serve_front(state, sock).await;
    }
}

async fn serve_front(state: Arc<State>, sock: TcpStream) {
    let svc = service_fn(move |req| {
        let st = state.clone();
        async move { Ok::<_, Infallible>(front(st, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        // A client may shut its write side after the request and wait for
        // the answer; hyper would otherwise drop the connection at EOF.
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(sock), svc)
        .with_upgrades()
        .await;
}

/// Log and count a refusal.
pub fn record_denial(state: &State, kind: &'static str, method: Option<String>, d: &Denial) {
    state.log.write(Record {
        kind,
        method,
        host: d.host.clone(),
        port: d.port,
        decision: "deny",
        reason: Some(d.reason.clone()),
        ..Default::default()
    });
    state.log.block(d);
}

/// Split `host[:port]` of an authority (IPv6 bracketed).
fn split_authority(a: &hyper::http::uri::Authority, default_port: u16) -> (String, u16) {
    (a.host().to_string(), a.port_u16().unwrap_or(default_port))
}

async fn front(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return connect(state, req).await;
    }
    let uri = req.uri().clone();
    let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "this is a proxy: send absolute-form requests (GET http://host/...) or CONNECT",
        );
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return error_response(
            StatusCode::BAD_REQUEST,
            "only http:// URLs are forwarded; use CONNECT for https",
        );
    }
    if auth.as_str().contains('@') {
        return error_response(
            StatusCode::BAD_REQUEST,
            "credentials in the proxy URL are not supported",
        );
    }
    let (host, port) = split_authority(auth, 80);
    let target = match policy::authorize(&state, &host, port).await {
        Ok(t) => t,
        Err(d) => {
            record_denial(&state, "http", Some(req.method().to_string()), &d);
            return deny_response(&d);
        }
    };
    let ctx = Arc::new(Ctx {
        target,
        upstream_tls: false,
        kind: "http",
        spare: Mutex::new(None),
        idle: Mutex::new(None),
    });
    http::forward_boxed(state, ctx, req).await
}

fn intercepts(state: &State, t: &Target) -> bool {
    state.secrets.iter().any(|s| s.bound_to(&t.host, t.port))
}

async fn connect(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let Some(auth) = req.uri().authority().cloned() else {
        return error_response(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let (host, port) = split_authority(&auth, 443);
    let target = match policy::authorize(&state, &host, port).await {
        Ok(t) => t,
        Err(d) => {
            record_denial(&state, "connect", Some("CONNECT".into()), &d);
            return deny_response(&d);
        }
    };
    let upstream = match http::dial(&state, &target).await {
        Ok(s) => s,
        Err(e) => {
            state.log.write(Record {
                kind: "connect",
                method: Some("CONNECT".into()),
                host: target.host.authority(),
                port,
                decision: "allow",
                rule: Some(target.rule.clone()),
                reason: Some(format!("upstream: {e}")),
                status: Some(502),
                ..Default::default()
            });
            return error_response(
                StatusCode::BAD_GATEWAY,
                &format!("cannot connect to {host}:{port}: {e}"),
            );
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(up) = on_upgrade.await {
            let client = TokioIo::new(up);
            after_handshake(state, target, upstream, client, "connect").await;
        }
    });
    Response::new(http::empty())
}

/// A tunnel is established (CONNECT answered 200, or SOCKS5 succeeded):
/// intercept if a secret is bound to the target, else splice bytes.
pub async fn after_handshake<C: Io>(
    state: Arc<State>,
    target: Target,
    upstream: TcpStream,
    client: C,
    kind: &'static str,
) {
    if intercepts(&state, &target) {
        intercept(state, target, upstream, client).await;
    } else {
        tunnel(state, target, client, upstream, kind).await;
    }
}

/// Serve HTTP (over TLS if the client starts a TLS handshake) on the
/// client side of a tunnel to a host a secret is bound to.
async fn intercept<C: Io>(state: Arc<State>, target: Target, upstream: TcpStream, mut client: C) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, client.read(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    let client = Rewind {
        pre: Some(Bytes::copy_from_slice(&first)),
        inner: client,
    };
    let is_tls = first[0] == 0x16;
    let ctx = Arc::new(Ctx {
        target: target.clone(),
        upstream_tls: is_tls,
        kind: "intercept",
        spare: Mutex::new(Some(upstream)),
        idle: Mutex::new(None),
    });
    let st = state.clone();
    let svc = service_fn(move |req| {
        let st = st.clone();
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(http::forward_boxed(st, ctx, req).await) }
    });
    if !is_tls {
        let _ = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .serve_connection(TokioIo::new(client), svc)
            .with_upgrades()
            .await;
        return;
    }
    let cfg = match state.tls.server_config(&target.host) {
        Ok(c) => c,
        Err(_) => return,
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let tls = match tokio::time::timeout(http::TLS_TIMEOUT, acceptor.accept(client)).await {
        Ok(Ok(t)) => t,
        _ => return,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .serve_connection(TokioIo::new(tls), svc)
            .with_upgrades()
            .await;
    }
}

/// Splice bytes both ways, with an idle timeout. Bytes from the client are
/// watched for placeholders (visible only if the tunnel carries plaintext);
/// one seen closes the tunnel.
pub async fn tunnel<C: Io>(
    state: Arc<State>,
    target: Target,
    client: C,
    upstream: TcpStream,
    kind: &'static str,
) {
    let up_bytes = AtomicU64::new(0);
    let down_bytes = AtomicU64::new(0);
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = upstream.into_split();
    let detector = if state.secrets.is_empty() {
        None
    } else {
        Some(Scanner::forbid_all(&state.secrets))
    };
    let up = pump(cr, uw, detector, &up_bytes, &last, start);
    let down = pump(ur, cw, None, &down_bytes, &last, start);
    tokio::pin!(up, down);
    let mut up_done = false;
    let mut down_done = false;
    let mut forbidden = None;
    loop {
        let idle_for = Duration::from_millis(
            (start.elapsed().as_millis() as u64).saturating_sub(last.load(Ordering::Relaxed)),
        );
        if idle_for >= IDLE_TIMEOUT {
            break;
        }
        let wake = IDLE_TIMEOUT - idle_for;
        tokio::select! {
            r = &mut up, if !up_done => {
                up_done = true;
                if let Ok(Some(f)) = r { forbidden = Some(f); break; }
                if r.is_err() { break; }
            }
            r = &mut down, if !down_done => {
                down_done = true;
                if r.is_err() { break; }
            }
            _ = tokio::time::sleep(wake) => {}
        }
        if up_done && down_done {
            break;
        }
    }
    let mut rec = Record {
        kind,
        method: (kind == "connect").then(|| "CONNECT".to_string()),
        host: target.host.authority(),
        port: target.port,
        decision: "allow",
        rule: Some(target.rule.clone()),
        bytes_up: up_bytes.load(Ordering::Relaxed),
        bytes_down: down_bytes.load(Ordering::Relaxed),
        ..Default::default()
    };
    if let Dest::Direct(a) = &target.dest {
        rec.addr = a.first().map(|a| a.to_string());
    }
    if let Some(f) = forbidden {
        let d = http::placeholder_denial(&target.host, target.port, &f);
        rec.decision = "deny";
        rec.reason = Some(d.reason.clone());
        state.log.block(&d);
    }
    state.log.write(rec);
}

const PUMP_MIN: usize = 4 * 1024;
const PUMP_MAX: usize = 64 * 1024;

/// Copy `r` → `w`. Returns the refusal if a placeholder was seen.
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    mut detector: Option<Scanner>,
    count: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> io::Result<Option<super::secrets::Forbidden>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Start small (most tunnels sit idle: 1,000 of them must fit in a few
    // MB) and double while reads fill the buffer, up to 64 KiB for bulk
    // transfers (fewer syscalls per byte).
    let mut buf = vec![0u8; PUMP_MIN];
    loop {
        let n = r.read(&mut buf).await?;
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(None);
        }
        if let Some(d) = &mut detector {
            if let Err(f) = d.detect(&buf[..n]) {
                return Ok(Some(f));
            }
        }
        w.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        if n == buf.len() && buf.len() < PUMP_MAX {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// A reader that first yields bytes already read (the sniffed first byte).
pub struct Rewind<T> {
    pub pre: Option<Bytes>,
    pub inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut pre) = self.pre.take() {
            let n = pre.len().min(buf.remaining());
            buf.put_slice(&pre.split_to(n));
            if !pre.is_empty() {
                self.pre = Some(pre);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
