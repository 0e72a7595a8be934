//! Connections: the accept loop, protocol sniffing, and the HTTP front
//! door (forward requests and `CONNECT`).
//!
//! Owns: one task per connection, the connection cap, and the first-byte
//! wait. What a tunnel does once open is `tunnel.rs`'s.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::http::{self, deny_response, error_response, Body, Ctx};
use super::log::{Decision, Kind, Record};
use super::policy;
use super::tunnel::{after_handshake, http1_server, record_denial, FIRST_BYTE_TIMEOUT};
use super::{ProxyError, State};

/// Most simultaneous client connections.
pub const MAX_CONNECTIONS: usize = 4096;

pub async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: watch::Receiver<bool>) {
    let sem = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    accept_with(listener, state, sem, stop, handle).await;
}

/// Accept on `listener` until `stop`, at most as many connections at once
/// as `sem` has permits (shared by listeners that share a cap), each
/// served by `serve` on its own task. Used by the proxy's front door and
/// by the capture listeners.
pub async fn accept_with<F, Fut>(
    listener: TcpListener,
    state: Arc<State>,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Arc<State>, TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
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
                let conn = serve(state.clone(), sock);
                tokio::spawn(async move {
                    let _permit = permit;
                    conn.await;
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
    let _ = http1_server()
        .serve_connection(TokioIo::new(sock), svc)
        .with_upgrades()
        .await;
}

/// Split `host[:port]` of an authority (IPv6 bracketed).
fn split_authority(a: &hyper::http::uri::Authority, default_port: u16) -> (String, u16) {
    (a.host().to_string(), a.port_u16().unwrap_or(default_port))
}

/// A request the front door cannot forward as sent: answered 400, and
/// logged (host as far as the request names one; no tally: it is not a
/// destination to allow).
fn bad_request(state: &State, req: &Request<Incoming>, what: &'static str) -> Response<Body> {
    let kind = if req.method() == Method::CONNECT {
        Kind::Connect
    } else {
        Kind::Http
    };
    let (host, port) = match req.uri().authority() {
        // Never the userinfo part: it may carry credentials.
        Some(a) => split_authority(a, 80),
        None => (String::new(), 0),
    };
    let err = ProxyError::ParseRequest { what };
    state.log.write(Record {
        kind,
        method: Some(req.method().to_string()),
        host,
        port,
        decision: Decision::Deny,
        reason: Some(err.to_string()),
        status: Some(StatusCode::BAD_REQUEST.as_u16()),
        ..Default::default()
    });
    error_response(StatusCode::BAD_REQUEST, what)
}

async fn front(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return connect(state, req).await;
    }
    let uri = req.uri().clone();
    let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
        return bad_request(
            &state,
            &req,
            "this is a proxy: send absolute-form requests (GET http://host/...) or CONNECT",
        );
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return bad_request(
            &state,
            &req,
            "only http:// URLs are forwarded; use CONNECT for https",
        );
    }
    if auth.as_str().contains('@') {
        return bad_request(
            &state,
            &req,
            "credentials in the proxy URL are not supported",
        );
    }
    let (host, port) = split_authority(auth, 80);
    let target = match policy::authorize(&state, &host, port).await {
        Ok(t) => t,
        Err(d) => {
            record_denial(&state, Kind::Http, Some(req.method().to_string()), &d);
            return deny_response(&d);
        }
    };
    let ctx = Arc::new(Ctx {
        target,
        upstream_tls: false,
        kind: Kind::Http,
        spare: Mutex::new(None),
        idle: Mutex::new(None),
    });
    http::forward_boxed(state, ctx, req).await
}

async fn connect(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let Some(auth) = req.uri().authority().cloned() else {
        return bad_request(&state, &req, "CONNECT needs host:port");
    };
    let (host, port) = split_authority(&auth, 443);
    let target = match policy::authorize(&state, &host, port).await {
        Ok(t) => t,
        Err(d) => {
            record_denial(&state, Kind::Connect, Some("CONNECT".into()), &d);
            return deny_response(&d);
        }
    };
    let started = std::time::Instant::now();
    let upstream = match http::dial(&state, &target).await {
        Ok(s) => s,
        Err(e) => {
            let mut rec = Record::allowed(Kind::Connect, &target);
            rec.reason = Some(format!("upstream: {e}"));
            rec.status = Some(502);
            rec.duration_ms = started.elapsed().as_millis() as u64;
            state.log.write(rec);
            return error_response(
                StatusCode::BAD_GATEWAY,
                &format!("cannot connect to {host}:{port}: {e}"),
            );
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else {
            // The client went away before the 200 reached it.
            let mut rec = Record::allowed(Kind::Connect, &target);
            rec.reason = Some("client: closed before the tunnel opened".into());
            state.log.write(rec);
            return;
        };
        // The front door serves `TokioIo<TcpStream>`, so this always gets
        // the socket back (and hyper's read-ahead, which belongs to the
        // tunnel): the relay can then splice socket to socket.
        match up.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let client = parts.io.into_inner();
                // Copied out (it is almost always empty): the Bytes hyper
                // hands over, even empty, keeps the front connection's
                // whole read buffer (8 KiB) alive for as long as it is
                // held, which was the tunnel's lifetime.
                let pre = Bytes::copy_from_slice(&parts.read_buf);
                drop(parts.read_buf);
                after_handshake(state, target, upstream, client, pre, Kind::Connect).await;
            }
            Err(_) => {
                let mut rec = Record::allowed(Kind::Connect, &target);
                rec.reason = Some("internal: upgraded connection is not a socket".into());
                state.log.write(rec);
            }
        }
    });
    Response::new(http::empty())
}
