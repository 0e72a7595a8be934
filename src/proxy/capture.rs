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
//! The listeners are on `[::]` with IPv4 accepted too (one per captured
//! port, both synthetic ranges local on `lo`), or on `0.0.0.0` when the
//! sandbox has no IPv6. A connection whose local address is not a
//! synthetic address handed out in this run (e.g. to 127.0.0.1 or `::1`
//! on a captured port) is closed at once.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::conn::MAX_CONNECTIONS;
use super::log::{Decision, Kind, Record};
use super::policy;
use super::tunnel::{after_handshake, record_denial, FIRST_BYTE_TIMEOUT};
use super::HostPattern;
use super::{error_chain, http, State};
use crate::policy::net::PortRule;

/// Accept on one capture listener until `stop`.
pub async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    sem: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) {
    super::conn::accept_with(listener, state, sem, stop, handle).await;
}

/// The TCP ports transparent egress captures for these allow and secret
/// patterns: 80 and 443 always (what a port-less pattern means), plus
/// every port a pattern names (`db.example:5432`). A `:*` pattern or a
/// bare `--allow-net` adds no port: capturing every port would take a
/// listener per port (65535 sockets) or a TUN device with a userspace TCP
/// stack, so their other ports stay reachable through the proxy
/// variables only (`explain` lists the captured ports). Sorted, no
/// duplicates; the sandbox leaves out 53 and the proxy's own port.
pub fn capture_ports_for<'a>(pats: impl IntoIterator<Item = &'a HostPattern>) -> Vec<u16> {
    let mut out = vec![80, 443];
    for p in pats {
        if let PortRule::One(n) = p.ports {
            out.push(n);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One semaphore for all capture listeners (the same cap as the proxy's).
pub fn semaphore() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_CONNECTIONS))
}

/// The address a captured socket was dialled at. The listeners are
/// dual-stack when the sandbox has IPv6, so an IPv4 connection shows as
/// `::ffff:a.b.c.d`: it is unmapped here.
fn dialled(sock: &TcpStream) -> Option<(IpAddr, u16)> {
    let local = sock.local_addr().ok()?;
    let ip = match local.ip() {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    };
    Some((ip, local.port()))
}

/// The name and port a captured socket was meant for (either synthetic
/// range).
fn destination(state: &State, sock: &TcpStream) -> Option<(String, u16)> {
    let (ip, port) = dialled(sock)?;
    Some((state.synth.name_of(ip)?, port))
}

async fn handle(state: Arc<State>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let Some((host, port)) = destination(&state, &sock) else {
        // Not an address zerobox handed out: nothing to connect to. Only
        // logged: an address has no `--allow-net` that would fix it.
        let local = dialled(&sock);
        state.log.write(Record {
            kind: Kind::Capture,
            host: local.map(|a| a.0.to_string()).unwrap_or_default(),
            port: local.map(|a| a.1).unwrap_or(0),
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
    let mut sock = sock;
    let pre = match first_bytes(&mut sock, &upstream).await {
        Opening::ServerFirst => bytes::Bytes::new(),
        Opening::Gone => return,
        Opening::Plain(b) => b,
        Opening::Tls { bytes, sni } => {
            // The name the client dialled is the name it must speak TLS
            // to: a ClientHello for another name (domain fronting through
            // an allowed host's address) is refused. No SNI (an address,
            // or a client that sends none) is left to the certificate.
            if let Some(sni) = sni.filter(|n| !n.eq_ignore_ascii_case(&target.host.bare())) {
                let d = policy::Denial {
                    reason: "sni-mismatch".into(),
                    message: String::new(),
                    key: format!("{} (TLS for {})", target.host.authority(), shown(&sni)),
                    host: target.host.authority(),
                    port,
                };
                record_denial(&state, Kind::Capture, None, &d);
                return;
            }
            bytes
        }
    };
    after_handshake(state, target, upstream, sock, pre, Kind::Capture).await;
}

/// How a captured connection opens.
enum Opening {
    /// The upstream speaks first (SMTP, SSH banners…): nothing to inspect.
    ServerFirst,
    /// The client hung up or sent nothing in time.
    Gone,
    /// The client's first bytes, not TLS.
    Plain(bytes::Bytes),
    /// A whole TLS ClientHello (all bytes read so far) and its SNI.
    Tls {
        bytes: bytes::Bytes,
        sni: Option<String>,
    },
}

/// Most bytes read while waiting for a whole ClientHello (a hello with
/// post-quantum key shares is under 2 KiB; the record cap is 16 KiB).
const MAX_HELLO: usize = 20 * 1024;

/// Wait for whoever speaks first; if the client sends a TLS record, read
/// until its ClientHello is complete (parsed by rustls, not by hand) and
/// return the bytes read, which belong to the tunnel.
async fn first_bytes(sock: &mut TcpStream, upstream: &TcpStream) -> Opening {
    use tokio::io::AsyncReadExt;
    let first = async {
        tokio::select! {
            r = sock.readable() => r.map(|_| true),
            r = upstream.readable() => r.map(|_| false),
        }
    };
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, first).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Opening::ServerFirst,
        _ => return Opening::Gone,
    }
    let mut buf = Vec::with_capacity(2048);
    let mut acceptor = rustls::server::Acceptor::default();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            if buf[0] != 0x16 {
                return Some(None);
            }
            if acceptor.read_tls(&mut &chunk[..n]).is_err() {
                return Some(Some(None));
            }
            match acceptor.accept() {
                Ok(Some(hello)) => {
                    let sni = hello.client_hello().server_name().map(str::to_string);
                    return Some(Some(Some(sni)));
                }
                Ok(None) if buf.len() < MAX_HELLO => continue,
                // Not a ClientHello rustls can read (or too long): its
                // name cannot be checked, so the connection is closed.
                Ok(None) | Err(_) => return Some(Some(None)),
            }
        }
    };
    let got = match tokio::time::timeout(FIRST_BYTE_TIMEOUT, read).await {
        Ok(Some(g)) => g,
        _ => return Opening::Gone,
    };
    let bytes = bytes::Bytes::from(buf);
    match got {
        None => Opening::Plain(bytes),
        Some(None) => Opening::Gone,
        Some(Some(sni)) => Opening::Tls { bytes, sni },
    }
}

/// A client-sent name, safe to print.
fn shown(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect()
}
