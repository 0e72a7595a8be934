//! What happens once a client has a tunnel (CONNECT answered 200, or a
//! SOCKS5 handshake succeeded): intercept it when a secret is bound to the
//! target, else relay its bytes untouched.
//!
//! Owns: the choice between tunnelling and intercepting, the client-side
//! HTTP servers of an intercepted tunnel (one HTTP/1 builder, used by the
//! front door too), and the tunnel's net-log line.
//!
//! Both front doors (`conn.rs` for HTTP, `socks.rs`) call down into this
//! module; it calls neither of them.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::http::{self, Ctx, EarlyTls, Spare};
use super::log::{Decision, Kind, Record};
use super::policy::{Denial, Target};
use super::relay::{self, End};
use super::secrets::Scanner;
use super::{error_chain, ProxyError, State};

/// Time for a new connection to send its first byte.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for an HTTP request head to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Client request head cap (bytes) and header count cap.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// The one HTTP/1 server configuration for clients: the front door and
/// intercepted tunnels alike.
pub fn http1_server() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    // A client may shut its write side after the request and wait for
    // the answer; hyper would otherwise drop the connection at EOF.
    b.half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    b
}

/// Log and count a refusal.
pub fn record_denial(state: &State, kind: Kind, method: Option<String>, d: &Denial) {
    state.log.write(Record {
        kind,
        method,
        host: d.host.clone(),
        port: d.port,
        decision: Decision::Deny,
        reason: Some(d.reason.clone()),
        ..Default::default()
    });
    state.log.block(d);
}

fn intercepts(state: &State, t: &Target) -> bool {
    state.secrets.iter().any(|s| s.bound_to(&t.host, t.port))
}

/// A tunnel is established: intercept if a secret is bound to the target,
/// else relay bytes. `pre` are client bytes already read past the
/// handshake (they belong to the tunnel).
pub async fn after_handshake(
    state: Arc<State>,
    target: Target,
    upstream: TcpStream,
    client: TcpStream,
    pre: Bytes,
    kind: Kind,
) {
    // Each branch boxed: a task holds only the state of the one it takes
    // (an intercepted tunnel's HTTP and TLS servers are large, a relay
    // small; both sit in every held connection's task).
    if intercepts(&state, &target) {
        Box::pin(intercept(state, target, upstream, client, pre, kind)).await;
    } else {
        Box::pin(tunnel(state, target, client, pre, upstream, kind)).await;
    }
}

/// Serve HTTP (over TLS if the client starts a TLS handshake) on the
/// client side of a tunnel to a host a secret is bound to.
async fn intercept(
    state: Arc<State>,
    target: Target,
    upstream: TcpStream,
    mut client: TcpStream,
    pre: Bytes,
    kind: Kind,
) {
    // Requests inside log their own lines; a tunnel that ends before any
    // request could be read logs this one, naming why.
    let failed = |why: String| {
        let mut rec = Record::allowed(kind, &target);
        rec.intercepted = true;
        rec.reason = Some(why);
        state.log.write(rec);
    };
    let pre = if pre.is_empty() {
        let mut first = [0u8; 1];
        match tokio::time::timeout(FIRST_BYTE_TIMEOUT, client.read(&mut first)).await {
            Ok(Ok(1)) => Bytes::copy_from_slice(&first),
            Ok(Ok(_)) => return failed("client: closed the tunnel before a request".into()),
            Ok(Err(e)) => return failed(format!("client: {e}")),
            Err(_) => {
                let secs = FIRST_BYTE_TIMEOUT.as_secs();
                return failed(format!("client: sent nothing within {secs} s"));
            }
        }
    } else {
        pre
    };
    let is_tls = pre[0] == 0x16;
    let client = Rewind {
        pre: Some(pre),
        inner: client,
    };
    if is_tls {
        // The start-up warm-up may still be issuing this very leaf.
        drop(state.tls.warming.read().await);
    }
    // The upstream handshake runs alongside the client's (see `EarlyTls`).
    let spare = if is_tls {
        Spare::Tls(EarlyTls::start(state.clone(), target.clone(), upstream))
    } else {
        Spare::Tcp(upstream)
    };
    let ctx = Arc::new(Ctx {
        target: target.clone(),
        upstream_tls: is_tls,
        kind: Kind::Intercept,
        spare: Mutex::new(Some(spare)),
        idle: Mutex::new(None),
    });
    let st = state.clone();
    let svc = service_fn(move |req| {
        let st = st.clone();
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(http::forward_boxed(st, ctx, req).await) }
    });
    if !is_tls {
        let _ = http1_server()
            .serve_connection(TokioIo::new(client), svc)
            .with_upgrades()
            .await;
        return;
    }
    let cfg = match state.tls.server_config(&target.host) {
        Ok(c) => c,
        Err(e) => return failed(error_chain(&e)),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let tls = match tokio::time::timeout(http::TLS_TIMEOUT, acceptor.accept(client)).await {
        Ok(Ok(t)) => t,
        Ok(Err(source)) => {
            let host = target.host.authority();
            return failed(error_chain(&ProxyError::TlsClient { host, source }));
        }
        Err(_) => {
            let host = target.host.authority();
            let source = io::Error::new(io::ErrorKind::TimedOut, "timed out");
            return failed(error_chain(&ProxyError::TlsClient { host, source }));
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            .serve_connection(TokioIo::new(tls), svc)
            .await;
    } else {
        let _ = http1_server()
            .serve_connection(TokioIo::new(tls), svc)
            .with_upgrades()
            .await;
    }
}

/// Relay bytes both ways (see [`relay`]) and write the tunnel's one log
/// line. Bytes from the client are watched for placeholders when any
/// secret exists (visible only if the tunnel carries plaintext); one seen
/// closes the tunnel.
pub async fn tunnel(
    state: Arc<State>,
    target: Target,
    client: TcpStream,
    pre: Bytes,
    upstream: TcpStream,
    kind: Kind,
) {
    let mut line = http::LogLine::new(state.clone(), Record::allowed(kind, &target));
    line.answered = true;
    let watch = (!state.secrets.is_empty()).then(|| Scanner::forbid_all(&state.secrets));
    let done = relay::relay_tcp(client, pre, upstream, watch, state.idle_timeout).await;
    line.rec.bytes_up = done.up;
    line.rec.bytes_down = done.down;
    if let End::Forbidden(f) = &done.end {
        let d = http::placeholder_denial(&target.host, target.port, f);
        line.rec.decision = Decision::Deny;
        line.rec.reason = Some(d.reason.clone());
        state.log.block(&d);
    } else {
        line.rec.reason = done.end.reason();
    }
    line.write();
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
