//! Every way an exchange can end writes exactly one net-log line, with the
//! fields that say how it ended. In-crate (not in tests/) because the idle
//! timeout is shortened through the proxy's state, which is not public.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::host::{HostPattern, Portless};
use super::{parse_resolve, prepare, ProxyConfig, ProxyHandle, Secret};

const SECRET: &str = "exits-secret-value-1234";

/// An upstream that accepts and holds every connection, reading and
/// answering nothing (`garbage`: writes it, then holds).
async fn holding_upstream(garbage: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(garbage).await;
            held.push(s);
        }
    });
    port
}

/// A port that refuses every connection, for as long as the returned
/// socket lives: bound but never listening, so the kernel answers a
/// connect with a reset and no other test can bind the port meanwhile (a
/// port that is merely free can be taken by a parallel test's listener).
fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn start(log: &Path, ca: &Path, ports: &[(&str, u16)], secret_hosts: &[String]) -> ProxyHandle {
    let allow: Vec<String> = ports.iter().map(|(h, p)| format!("{h}:{p}")).collect();
    let resolve = allow
        .iter()
        .map(|hp| parse_resolve(&format!("{hp}:127.0.0.1")).unwrap())
        .collect();
    let cfg = ProxyConfig {
        allow: allow
            .iter()
            .map(|p| HostPattern::parse(p, Portless::Web).unwrap())
            .collect(),
        secrets: vec![Secret::from_value("K", SECRET.into(), secret_hosts.to_vec()).unwrap()],
        resolve,
        ca_dir: ca.into(),
        net_log: Some(log.into()),
        ..Default::default()
    };
    let mut p = prepare(cfg).unwrap();
    Arc::get_mut(&mut p.state).unwrap().idle_timeout = Duration::from_millis(400);
    p.serve(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap()
}

async fn send(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Wait until `host` has a line (or 10 s), then give late duplicates a
/// moment; return that host's lines.
async fn lines_for(log: &Path, host: &str) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        if lines(log).iter().any(|l| l["host"] == host) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    lines(log)
        .into_iter()
        .filter(|l| l["host"] == host)
        .collect()
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A TLS client for the proxy's interception CA.
fn client_tls(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_and_failure_writes_exactly_one_line() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("net.log");
    let hold = holding_upstream(b"").await;
    let not_tls = holding_upstream(b"HTTP/1.1 200 OK\r\n\r\nthis is not TLS").await;
    // Kept until the end of the test: the port is refused throughout.
    let (_refusing, refused) = refusing_port();
    let ports = [
        ("refused.test", refused),
        ("hangup.test", hold),
        ("idle.test", hold),
        ("notls.test", not_tls),
        ("badclient.test", hold),
    ];
    let bound = [
        format!("notls.test:{not_tls}"),
        format!("badclient.test:{hold}"),
    ];
    let h = start(&log, &d.path().join("ca"), &ports, &bound);
    let proxy = h.local_addr();

    // Denied host.
    let r = send(
        proxy,
        b"GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    let l = lines_for(&log, "evil.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["decision"], "deny");
    assert_eq!(l[0]["kind"], "http");
    assert!(l[0]["reason"].as_str().is_some_and(|r| !r.is_empty()));

    // Bad request: a proxy needs absolute-form targets. The only line
    // without a host.
    let r = send(
        proxy,
        b"GET /relative HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let l = lines_for(&log, "").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["status"], 400);
    assert!(
        l[0]["reason"].as_str().unwrap().starts_with("bad request"),
        "{l:?}"
    );

    // Upstream refuses the connection.
    let req = format!(
        "GET http://refused.test:{refused}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let r = send(proxy, req.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    let l = lines_for(&log, "refused.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(
        (l[0]["decision"].as_str(), l[0]["status"].as_u64()),
        (Some("allow"), Some(502))
    );
    let why = l[0]["reason"].as_str().unwrap();
    assert!(
        why.contains("connect to refused.test") && why.contains("refused"),
        "{why}"
    );

    // The upstream of an intercepted tunnel does not speak TLS.
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let head = format!("CONNECT notls.test:{not_tls} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let name = rustls_pki_types::ServerName::try_from("notls.test").unwrap();
    let mut tls = client_tls(&h.ca_cert_pem()).connect(name, s).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: notls.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    let l = lines_for(&log, "notls.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(
        (l[0]["kind"].as_str(), l[0]["status"].as_u64()),
        (Some("intercept"), Some(502))
    );
    assert!(
        l[0]["reason"]
            .as_str()
            .unwrap()
            .contains("TLS handshake with notls.test"),
        "{l:?}"
    );

    // The client of an intercepted tunnel fails its TLS handshake (a
    // handshake record that is not one): no request, still one line.
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let head = format!("CONNECT badclient.test:{hold} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello")
        .await
        .unwrap();
    let l = lines_for(&log, "badclient.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["intercepted"], true);
    let why = l[0]["reason"].as_str().unwrap();
    assert!(
        why.starts_with("client: TLS handshake for badclient.test"),
        "{why}"
    );
    drop(s);

    // The client hangs up in the middle of its request body.
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let head = format!(
        "POST http://hangup.test:{hold}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly ten b"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let l = lines_for(&log, "hangup.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0]["reason"].as_str().unwrap().starts_with("client"),
        "{l:?}"
    );

    // A tunnel nobody uses: closed by the idle timeout, logged once.
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let head = format!("CONNECT idle.test:{hold} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "idle tunnel still open");
    let l = lines_for(&log, "idle.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["kind"], "connect");
    assert_eq!(l[0]["reason"], "idle-timeout");
    assert_eq!(
        (l[0]["bytes_up"].as_u64(), l[0]["bytes_down"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(l[0]["duration_ms"].as_u64().unwrap() >= 400, "{l:?}");

    // Nothing else was logged: one line per exchange above.
    drop(h);
    assert_eq!(lines(&log).len(), 7, "{:#?}", lines(&log));
}

/// What an upstream saw of one connection.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Its first bytes (the early handshake's ClientHello starts 0x16).
    First(u8),
    /// Closed by the proxy (end of stream or reset).
    Closed,
}

/// An upstream that never answers and reports, per connection, its first
/// byte and its close on the channel.
async fn watching_upstream() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut first = true;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) if first => {
                            first = false;
                            let _ = tx.send(Seen::First(buf[0]));
                        }
                        Ok(_) => {}
                    }
                }
                let _ = tx.send(Seen::Closed);
            });
        }
    });
    (port, rx)
}

/// The next thing the upstream saw, waiting at most `within`.
async fn next_seen(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
    within: Duration,
) -> Option<Seen> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

/// The early upstream handshake (`EarlyTls`) of a tunnel whose client
/// never completes its own is closed with it, not left to its own 15 s
/// handshake timeout: no task, socket or fd outlives the client's
/// connection. The wait for the close is shorter than that timeout, so a
/// leaked session fails the test (the bound is the proxy's own timeout,
/// not a speed claim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_client_handshake_closes_the_early_upstream_one() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("net.log");
    let (port, mut seen) = watching_upstream().await;
    let ports = [("earlybad.test", port), ("earlyleft.test", port)];
    let bound = [
        format!("earlybad.test:{port}"),
        format!("earlyleft.test:{port}"),
    ];
    let h = start(&log, &d.path().join("ca"), &ports, &bound);
    let proxy = h.local_addr();
    let before_timeout = super::http::TLS_TIMEOUT - Duration::from_secs(5);

    // 1. The client leaves after the first byte of its handshake, once the
    // upstream handshake is under way (the upstream saw its ClientHello).
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let head = format!("CONNECT earlyleft.test:{port} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    s.write_all(b"\x16").await.unwrap();
    assert_eq!(
        next_seen(&mut seen, Duration::from_secs(10)).await,
        Some(Seen::First(0x16)),
        "the upstream handshake did not start with the client's"
    );
    drop(s);
    assert_eq!(
        next_seen(&mut seen, before_timeout).await,
        Some(Seen::Closed),
        "the early upstream session outlived its client"
    );
    let l = lines_for(&log, "earlyleft.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0]["reason"].as_str().unwrap().starts_with("client: TLS"),
        "{l:?}"
    );

    // 2. The client's handshake record is not a ClientHello: the proxy's
    // handshake fails at once; the upstream one (started or not yet) is
    // closed with it.
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let head = format!("CONNECT earlybad.test:{port} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    s.write_all(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello")
        .await
        .unwrap();
    let l = lines_for(&log, "earlybad.test").await;
    assert_eq!(l.len(), 1, "{l:?}");
    // The task may have been aborted before it sent anything.
    let mut got = next_seen(&mut seen, before_timeout).await;
    if got == Some(Seen::First(0x16)) {
        got = next_seen(&mut seen, before_timeout).await;
    }
    assert_eq!(
        got,
        Some(Seen::Closed),
        "the early upstream session was left open"
    );
    drop(s);

    drop(h);
    assert_eq!(lines(&log).len(), 2, "{:#?}", lines(&log));
}
