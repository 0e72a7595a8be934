//! SOCKS5 (RFC 1928): no-auth method only, `CONNECT` command only, address
//! types domain / IPv4 / IPv6. After the handshake the connection is
//! treated exactly like an accepted HTTP `CONNECT`.
//!
//! Owns: the handshake bytes and reply codes (0x02 "not allowed by
//! ruleset" for every policy refusal).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::log::{Kind, Record};
use super::tunnel::{after_handshake, record_denial};
use super::{error_chain, http, policy, ProxyError, State};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

const REP_OK: u8 = 0x00;
const REP_FAILURE: u8 = 0x01;
const REP_NOT_ALLOWED: u8 = 0x02;
const REP_HOST_UNREACHABLE: u8 = 0x04;
const REP_REFUSED: u8 = 0x05;
const REP_CMD_UNSUPPORTED: u8 = 0x07;
const REP_ATYP_UNSUPPORTED: u8 = 0x08;

async fn reply(s: &mut TcpStream, code: u8) -> std::io::Result<()> {
    // BND.ADDR 0.0.0.0:0: clients do not need it for CONNECT.
    s.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

/// Read the greeting and request. `Ok(None)` means a reply was already sent.
async fn handshake(s: &mut TcpStream) -> std::io::Result<Option<(String, u16)>> {
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).await?;
    if hdr[0] != 5 {
        return Ok(None);
    }
    let mut methods = vec![0u8; hdr[1] as usize];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        s.write_all(&[5, 0xff]).await?;
        return Ok(None);
    }
    s.write_all(&[5, 0]).await?;
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await?;
    if req[0] != 5 {
        return Ok(None);
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            Ipv4Addr::from(a).to_string()
        }
        3 => {
            let len = s.read_u8().await? as usize;
            let mut d = vec![0u8; len];
            s.read_exact(&mut d).await?;
            match String::from_utf8(d) {
                Ok(d) => d,
                Err(_) => {
                    reply(s, REP_NOT_ALLOWED).await?;
                    return Ok(None);
                }
            }
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            format!("[{}]", Ipv6Addr::from(a))
        }
        _ => {
            reply(s, REP_ATYP_UNSUPPORTED).await?;
            return Ok(None);
        }
    };
    let port = s.read_u16().await?;
    if req[1] != 1 {
        reply(s, REP_CMD_UNSUPPORTED).await?;
        return Ok(None);
    }
    Ok(Some((host, port)))
}

pub async fn serve(state: Arc<State>, mut sock: TcpStream) {
    let (host, port) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut sock)).await {
        Ok(Ok(Some(hp))) => hp,
        _ => return,
    };
    let target = match policy::authorize(&state, &host, port).await {
        Ok(t) => t,
        Err(d) => {
            record_denial(&state, Kind::Socks5, None, &d);
            let _ = reply(&mut sock, REP_NOT_ALLOWED).await;
            return;
        }
    };
    let started = std::time::Instant::now();
    let upstream = match http::dial(&state, &target).await {
        Ok(u) => u,
        Err(e) => {
            let code = match &e {
                ProxyError::Connect { source, .. } => match source.kind() {
                    std::io::ErrorKind::ConnectionRefused => REP_REFUSED,
                    std::io::ErrorKind::TimedOut => REP_HOST_UNREACHABLE,
                    _ => REP_FAILURE,
                },
                _ => REP_FAILURE,
            };
            let mut rec = Record::allowed(Kind::Socks5, &target);
            rec.reason = Some(error_chain(&e));
            rec.duration_ms = started.elapsed().as_millis() as u64;
            state.log.write(rec);
            let _ = reply(&mut sock, code).await;
            return;
        }
    };
    if reply(&mut sock, REP_OK).await.is_err() {
        return;
    }
    after_handshake(
        state,
        target,
        upstream,
        sock,
        bytes::Bytes::new(),
        Kind::Socks5,
    )
    .await;
}
