//! Transparent egress: connections to a synthetic address (handed out by
//! [`super::dns`]) are accepted on listeners inside the sandbox's network
//! namespace and handled as `CONNECT name:port`.
//!
//! Owns: the accept loops of the capture listeners and the mapping of one
//! accepted socket back to its name. Everything after that is the proxy's
//! ordinary path: [`policy::authorize`] (the same decision, resolution and
//! address checks), [`http::dial`], then [`after_handshake`] (TLS
//! interception only for secret-bound hosts, the same net log and
//! summary).
//!
//! A connection whose local address is not a synthetic address handed out
//! in this run (e.g. to 127.0.0.1 on a captured port) is closed at once.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::conn::MAX_CONNECTIONS;
use super::log::{Decision, Kind, Record};
use super::policy;
use super::tunnel::{after_handshake, record_denial};
use super::{error_chain, http, State};

/// Accept on one capture listener until `stop`.
pub async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    sem: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
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
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

/// One semaphore for all capture listeners (the same cap as the proxy's).
pub fn semaphore() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_CONNECTIONS))
}

/// The name and port a captured socket was meant for.
fn destination(state: &State, sock: &TcpStream) -> Option<(String, u16)> {
    let SocketAddr::V4(local) = sock.local_addr().ok()? else {
        return None;
    };
    if !super::dns::is_synthetic(*local.ip()) {
        return None;
    }
    Some((state.synth.name_of(*local.ip())?, local.port()))
}

async fn handle(state: Arc<State>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let Some((host, port)) = destination(&state, &sock) else {
        // Not an address zerobox handed out: nothing to connect to. Only
        // logged: an address has no `--allow-net` that would fix it.
        let local = sock.local_addr().ok();
        state.log.write(Record {
            kind: Kind::Capture,
            host: local.map(|a| a.ip().to_string()).unwrap_or_default(),
            port: local.map(|a| a.port()).unwrap_or(0),
            decision: Decision::Deny,
            reason: Some("not-a-resolved-name".into()),
            ..Default::default()
        });
        return;
    };
    let target = match policy::authorize(&state, &host, port).await {
        Ok(t) => t,
        Err(d) => {
            record_denial(&state, Kind::Capture, None, &d);
            return;
        }
    };
    let started = std::time::Instant::now();
    let upstream = match http::dial(&state, &target).await {
        Ok(u) => u,
        Err(e) => {
            let mut rec = Record::allowed(Kind::Capture, &target);
            rec.reason = Some(error_chain(&e));
            rec.duration_ms = started.elapsed().as_millis() as u64;
            state.log.write(rec);
            return;
        }
    };
    after_handshake(
        state,
        target,
        upstream,
        sock,
        bytes::Bytes::new(),
        Kind::Capture,
    )
    .await;
}
