//! End-to-end tests of the egress proxy: real upstream servers on
//! 127.0.0.1 (plain HTTP and HTTPS with a test CA made here), the proxy on
//! 127.0.0.1:0, and real clients (`curl`, `python3`, raw sockets). Names
//! like `api.example.test` reach the loopback upstreams only through the
//! proxy's `--resolve` pins; nothing else is ever contacted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zerobox::policy::{HostPattern, Portless};
use zerobox::proxy::{self, ProxyConfig, ProxyHandle, Secret};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;
type RespBody = BoxBody<Bytes, BoxErr>;

const SECRET_VALUE: &str = "real-token-9f8e7d6c5b4a";
const OTHER_VALUE: &str = "other-secret-0a1b2c3d4e";

/// What an upstream received.
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, n: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    }
    fn all_text(&self) -> String {
        format!(
            "{} {:?} {}",
            self.uri,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<tokio::sync::Notify>,
}

/// Body fed from a channel (for SSE).
struct ChanBody(tokio::sync::mpsc::Receiver<Bytes>);
impl Body for ChanBody {
    type Data = Bytes;
    type Error = BoxErr;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxErr>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn text(s: String) -> RespBody {
    Full::new(Bytes::from(s)).map_err(|e| match e {}).boxed()
}

async fn upstream_service(
    mut req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<tokio::sync::Notify>,
) -> Result<Response<RespBody>, Infallible> {
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if req.uri().path() == "/ws" {
        let up = hyper::upgrade::on(&mut req);
        seen.lock().unwrap().push(Seen {
            uri,
            headers,
            body: vec![],
        });
        tokio::spawn(async move {
            if let Ok(u) = up.await {
                let mut io = TokioIo::new(u);
                let mut buf = [0u8; 64];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(text(String::new()));
        *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut().insert("upgrade", "echo".parse().unwrap());
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        return Ok(r);
    }
    if req.uri().path() == "/sse" {
        seen.lock().unwrap().push(Seen {
            uri,
            headers,
            body: vec![],
        });
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"data: one\n\n")).await;
            // Hold the rest until the client proves it saw the first event.
            let _ = tokio::time::timeout(Duration::from_secs(10), gate.notified()).await;
            let (a, b) = SECRET_VALUE.split_at(7);
            let _ = tx.send(Bytes::from(format!("data: {a}"))).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Bytes::from(format!("{b}\n\n"))).await;
            let _ = tx.send(Bytes::from_static(b"data: done\n\n")).await;
        });
        let mut r = Response::new(ChanBody(rx).boxed());
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(r);
    }
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    let s = Seen { uri, headers, body };
    // Echo everything back (this is what makes reflection redaction testable).
    let echo = s.all_text();
    seen.lock().unwrap().push(s);
    Ok(Response::new(text(format!("echo: {echo}\n"))))
}

async fn start_upstream(tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Notify::new());
    let (s2, g2) = (seen.clone(), gate.clone());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                break;
            };
            let (seen, gate, tls) = (s2.clone(), g2.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    upstream_service(req, seen.clone(), gate.clone())
                });
                let mut b = hyper::server::conn::http1::Builder::new();
                // Answer half-closed requests, as real servers do: a byte
                // tunnel passes the client's half-close on to it.
                b.half_close(true);
                match tls {
                    None => {
                        let _ = b
                            .serve_connection(TokioIo::new(sock), svc)
                            .with_upgrades()
                            .await;
                    }
                    Some(cfg) => {
                        let Ok(t) = tokio_rustls::TlsAcceptor::from(cfg).accept(sock).await else {
                            return;
                        };
                        let _ = b
                            .serve_connection(TokioIo::new(t), svc)
                            .with_upgrades()
                            .await;
                    }
                }
            });
        }
    });
    Upstream { port, seen, gate }
}

/// A test CA and a server config for the test names, signed by it.
fn test_tls(dir: &Path) -> (PathBuf, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_p = CertificateParams::default();
    ca_p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_p.distinguished_name
        .push(DnType::CommonName, "upstream test CA");
    let ca_cert = ca_p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_p, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_p = CertificateParams::new(vec![
        "api.example.test".to_string(),
        "plain.example.test".to_string(),
        "other.example.test".to_string(),
    ])
    .unwrap();
    let leaf = leaf_p.signed_by(&leaf_key, &issuer).unwrap();
    let ca_path = dir.join("upstream-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_path, Arc::new(cfg))
}

struct Proxy {
    handle: ProxyHandle,
    port: u16,
    bundle: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Allow patterns as `policy::resolve` would parse them.
fn allow_patterns(texts: Vec<String>) -> Vec<HostPattern> {
    texts
        .iter()
        .map(|t| HostPattern::parse(t, Portless::Web).unwrap())
        .collect()
}

/// Deny patterns as `policy::resolve` would parse them (port-less: every port).
fn deny_patterns(texts: Vec<String>) -> Vec<HostPattern> {
    texts
        .iter()
        .map(|t| HostPattern::parse(t, Portless::Any).unwrap())
        .collect()
}

fn start_proxy(mut cfg: ProxyConfig) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    cfg.ca_dir = dir.path().join("ca");
    let log = dir.path().join("net.log");
    cfg.net_log = Some(log.clone());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let handle = proxy::start(l, cfg).unwrap();
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, handle.ca_bundle_pem()).unwrap();
    Proxy {
        handle,
        port,
        bundle,
        log,
        _dir: dir,
    }
}

fn resolve(name: &str, port: u16) -> proxy::ResolveOverride {
    proxy::parse_resolve(&format!("{name}:{port}:127.0.0.1")).unwrap()
}

struct Out {
    ok: bool,
    stdout: String,
}

/// Run curl with the given args (no proxy variables from our environment).
async fn curl(args: Vec<String>) -> Out {
    tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new("curl");
        for v in [
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            c.env_remove(v);
        }
        let o = c
            .args(["-sS", "-i", "--max-time", "15"])
            .args(&args)
            .output()
            .unwrap();
        Out {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr),
        }
    })
    .await
    .unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn log_lines(p: &Proxy) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&p.log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_denied_and_no_dns_for_denied() {
    let up = start_upstream(None).await;
    let p = start_proxy(ProxyConfig {
        allow: allow_patterns(vec![format!("api.example.test:{}", up.port)]),
        resolve: vec![resolve("api.example.test", up.port)],
        ..Default::default()
    });
    let px = format!("http://127.0.0.1:{}", p.port);

    let o = curl(s(&[
        "-x",
        &px,
        &format!("http://api.example.test:{}/hello?x=1", up.port),
    ]))
    .await;
    assert!(o.ok && o.stdout.contains("200"), "{}", o.stdout);
    assert!(o.stdout.contains("echo: /hello?x=1"), "{}", o.stdout);
    assert_eq!(p.handle.resolutions(), 1);

    // Denied names: 403 + header + hint, and never resolved.
    for url in [
        "http://evil.example/".to_string(),
        format!("http://evilapi.example.test:{}/", up.port),
        format!("http://api.example.test.evil.net:{}/", up.port),
        "http://api.example.test/".to_string(), // allowed on one port only
    ] {
        let o = curl(s(&["-x", &px, &url])).await;
        assert!(o.stdout.contains("403"), "{url}: {}", o.stdout);
        assert!(
            o.stdout.contains("X-Zerobox-Denied: not-allowed")
                || o.stdout.contains("x-zerobox-denied: not-allowed"),
            "{url}: {}",
            o.stdout
        );
        assert!(o.stdout.contains("--allow-net="), "{}", o.stdout);
    }
    // CONNECT to a denied host: refused before any tunnel.
    let o = curl(s(&["-x", &px, "https://evil.example/"])).await;
    assert!(!o.ok);
    assert!(o.stdout.contains("403"), "{}", o.stdout);
    assert_eq!(p.handle.resolutions(), 1, "a denied name was resolved");
    assert_eq!(p.handle.dns_queries(), 0);

    let lines = log_lines(&p);
    assert!(lines
        .iter()
        .any(|l| l["decision"] == "allow" && l["status"] == 200));
    assert!(lines
        .iter()
        .any(|l| l["decision"] == "deny" && l["host"] == "evil.example" && l["kind"] == "connect"));

    let summary = p.handle.summary();
    let line = summary.stderr_line().unwrap();
    assert!(
        line.starts_with("zerobox: blocked 5 connections: evil.example (2)"),
        "{line}"
    );
    assert!(
        line.contains("allow with --allow-net=evil.example,"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_checks() {
    let up = start_upstream(None).await;
    // Bare --allow-net: any name, but loopback addresses are still refused
    // unless named on purpose.
    let p = start_proxy(ProxyConfig {
        allow_any: true,
        allow: allow_patterns(vec![format!("127.0.0.2:{}", up.port)]),
        deny: deny_patterns(vec!["blocked.example.test".into()]),
        ..Default::default()
    });
    let px = format!("http://127.0.0.1:{}", p.port);
    for url in [
        format!("http://127.0.0.1:{}/", up.port),
        format!("http://[::ffff:127.0.0.1]:{}/", up.port),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
    ] {
        let o = curl(s(&["-x", &px, &url])).await;
        assert!(o.stdout.contains("403"), "{url}: {}", o.stdout);
        assert!(
            o.stdout
                .to_lowercase()
                .contains("x-zerobox-denied: address-refused"),
            "{url}: {}",
            o.stdout
        );
    }
    // Named explicitly: allowed (127.0.0.2 is loopback too on Linux).
    let o = curl(s(&["-x", &px, &format!("http://127.0.0.2:{}/ok", up.port)])).await;
    if std::net::TcpStream::connect(("127.0.0.2", up.port)).is_ok() {
        assert!(o.stdout.contains("200"), "{}", o.stdout);
    }
    // Deny wins over bare allow.
    let o = curl(s(&["-x", &px, "http://blocked.example.test/"])).await;
    assert!(
        o.stdout
            .to_lowercase()
            .contains("x-zerobox-denied: denied-by-rule"),
        "{}",
        o.stdout
    );
    assert_eq!(p.handle.dns_queries(), 0);
    // A name resolving to loopback without a pin, via /etc/hosts: refused.
    let o = curl(s(&["-x", &px, &format!("http://localhost:{}/", up.port)])).await;
    assert!(o.stdout.contains("403"), "{}", o.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnel_is_not_intercepted() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = test_tls(dir.path());
    let up = start_upstream(Some(tls)).await;
    let p = start_proxy(ProxyConfig {
        allow: allow_patterns(vec![format!("plain.example.test:{}", up.port)]),
        resolve: vec![resolve("plain.example.test", up.port)],
        ..Default::default()
    });
    let px = format!("http://127.0.0.1:{}", p.port);
    // Trusting ONLY the upstream's own CA works: the client saw the real cert.
    let o = curl(s(&[
        "-x",
        &px,
        "--cacert",
        ca.to_str().unwrap(),
        &format!("https://plain.example.test:{}/tunnel", up.port),
    ]))
    .await;
    assert!(o.ok && o.stdout.contains("echo: /tunnel"), "{}", o.stdout);
    // Trusting only the zerobox bundle fails: nobody forged a certificate.
    let o = curl(s(&[
        "-x",
        &px,
        "--cacert",
        p.bundle.to_str().unwrap(),
        &format!("https://plain.example.test:{}/tunnel", up.port),
    ]))
    .await;
    assert!(!o.ok, "{}", o.stdout);
    drop(p.handle.shutdown());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&p.log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["kind"] == "connect" && l["bytes_down"].as_u64().unwrap_or(0) > 0));
}

fn secrets_cfg(up_port: u16, ca: &Path) -> (ProxyConfig, String, String) {
    let a = Secret::from_value(
        "TOKEN",
        SECRET_VALUE.into(),
        vec![format!("api.example.test:{up_port}")],
    )
    .unwrap();
    let b = Secret::from_value(
        "OTHER",
        OTHER_VALUE.into(),
        vec![format!("other.example.test:{up_port}")],
    )
    .unwrap();
    let (pa, pb) = (a.placeholder().to_string(), b.placeholder().to_string());
    let cfg = ProxyConfig {
        allow: allow_patterns(vec![
            format!("plain.example.test:{up_port}"),
            format!("other.example.test:{up_port}"),
        ]),
        secrets: vec![a, b],
        resolve: vec![
            resolve("api.example.test", up_port),
            resolve("plain.example.test", up_port),
            resolve("other.example.test", up_port),
        ],
        extra_ca_certs: vec![ca.to_path_buf()],
        ..Default::default()
    };
    (cfg, pa, pb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_injection_over_intercepted_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = test_tls(dir.path());
    let up = start_upstream(Some(tls)).await;
    let (cfg, ph, _) = secrets_cfg(up.port, &ca);
    let p = start_proxy(cfg);
    assert_eq!(p.handle.placeholder("TOKEN").as_deref(), Some(ph.as_str()));
    let px = format!("http://127.0.0.1:{}", p.port);
    let base = format!("https://api.example.test:{}", up.port);
    let bundle = p.bundle.to_str().unwrap().to_string();

    // Header, path, query, fixed-length body; over HTTP/2 to the proxy.
    let body_file = dir.path().join("body.txt");
    std::fs::write(&body_file, format!("{{\"key\":\"{ph}\",\"pad\":\"xyz\"}}")).unwrap();
    let o = curl(vec![
        "--http2".into(),
        "-x".into(),
        px.clone(),
        "--cacert".into(),
        bundle.clone(),
        "-H".into(),
        format!("Authorization: Bearer {ph}"),
        "--data-binary".into(),
        format!("@{}", body_file.display()),
        format!("{base}/v1/{ph}/x?key={ph}"),
    ])
    .await;
    assert!(o.ok, "{}", o.stdout);
    assert!(
        o.stdout.contains("HTTP/2 200"),
        "client spoke h2 to the proxy: {}",
        o.stdout
    );
    {
        let seen = up.seen.lock().unwrap();
        let r = seen.last().unwrap();
        assert_eq!(r.uri, format!("/v1/{SECRET_VALUE}/x?key={SECRET_VALUE}"));
        assert_eq!(
            r.header("authorization").unwrap(),
            format!("Bearer {SECRET_VALUE}")
        );
        let want_body = format!("{{\"key\":\"{SECRET_VALUE}\",\"pad\":\"xyz\"}}");
        assert_eq!(String::from_utf8_lossy(&r.body), want_body);
        assert_eq!(
            r.header("content-length").unwrap(),
            want_body.len().to_string(),
            "Content-Length fixed up"
        );
        assert!(!r.all_text().contains(&ph), "placeholder leaked upstream");
    }
    // The upstream echoed the real value: the client sees the placeholder.
    assert!(
        !o.stdout.contains(SECRET_VALUE),
        "reflected secret not redacted: {}",
        o.stdout
    );
    assert!(o.stdout.contains(&ph));

    // Basic auth (user:PLACEHOLDER), HTTP/1.1.
    let o = curl(vec![
        "--http1.1".into(),
        "-x".into(),
        px.clone(),
        "--cacert".into(),
        bundle.clone(),
        "-u".into(),
        format!("alice:{ph}"),
        format!("{base}/basic"),
    ])
    .await;
    assert!(o.ok, "{}", o.stdout);
    {
        let seen = up.seen.lock().unwrap();
        let r = seen.last().unwrap();
        let v = r.header("authorization").unwrap();
        let dec = base64::engine::general_purpose::STANDARD
            .decode(v.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(dec).unwrap(),
            format!("alice:{SECRET_VALUE}")
        );
    }
    // The echoed Basic header comes back in its placeholder form.
    let real_b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{SECRET_VALUE}"));
    assert!(!o.stdout.contains(&real_b64), "{}", o.stdout);

    // Chunked body with the placeholder.
    let o = curl(vec![
        "--http1.1".into(),
        "-x".into(),
        px.clone(),
        "--cacert".into(),
        bundle.clone(),
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
        "--data-binary".into(),
        format!("@{}", body_file.display()),
        format!("{base}/chunked"),
    ])
    .await;
    assert!(o.ok, "{}", o.stdout);
    {
        let seen = up.seen.lock().unwrap();
        let r = seen.last().unwrap();
        assert_eq!(r.uri, "/chunked");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("{{\"key\":\"{SECRET_VALUE}\",\"pad\":\"xyz\"}}")
        );
    }

    // Python urllib with the sandbox environment.
    let env = proxy::sandbox_env(&format!("127.0.0.1:{}", p.port), &p.bundle);
    let url = format!("{base}/py?k={ph}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1]).read().decode())")
            .arg(url)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("echo: /py?k="), "{stdout}");
    assert!(!stdout.contains(SECRET_VALUE));
    assert_eq!(
        up.seen.lock().unwrap().last().unwrap().uri,
        format!("/py?k={SECRET_VALUE}")
    );

    // The net log names the secret, never its value.
    let text = std::fs::read_to_string(&p.log).unwrap();
    assert!(!text.contains(SECRET_VALUE), "secret value in the net log");
    let lines = log_lines(&p);
    assert!(lines
        .iter()
        .any(|l| l["kind"] == "intercept" && l["secrets"][0] == "TOKEN"));
    assert!(p.handle.summary().stderr_line().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_to_unbound_hosts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = test_tls(dir.path());
    let up = start_upstream(Some(tls)).await;
    let plain_up = start_upstream(None).await;
    let (mut cfg, pa, pb) = secrets_cfg(up.port, &ca);
    cfg.allow.extend(allow_patterns(vec![format!(
        "plain.example.test:{}",
        plain_up.port
    )]));
    cfg.resolve
        .push(resolve("plain.example.test", plain_up.port));
    let p = start_proxy(cfg);
    let px = format!("http://127.0.0.1:{}", p.port);
    let bundle = p.bundle.to_str().unwrap().to_string();

    // Plain HTTP to an allowed host no secret is bound to: header, query, body.
    let plain = format!("http://plain.example.test:{}", plain_up.port);
    for args in [
        vec![
            "-H".to_string(),
            format!("X-Key: {pa}"),
            format!("{plain}/h"),
        ],
        vec![format!("{plain}/q?k={pa}")],
        vec![
            "--data-binary".into(),
            format!("k={pa}"),
            format!("{plain}/b"),
        ],
        vec![
            "-H".into(),
            "Transfer-Encoding: chunked".into(),
            "--data-binary".into(),
            format!("k={pa}"),
            format!("{plain}/c"),
        ],
    ] {
        let mut a = vec!["-x".to_string(), px.clone()];
        a.extend(args);
        let o = curl(a).await;
        assert!(o.stdout.contains("403"), "{}", o.stdout);
        assert!(
            o.stdout
                .to_lowercase()
                .contains("x-zerobox-denied: secret-placeholder-to-unbound-host"),
            "{}",
            o.stdout
        );
    }
    for r in plain_up.seen.lock().unwrap().iter() {
        assert!(
            !r.all_text().contains(&pa),
            "placeholder reached an unbound host: {r:?}"
        );
    }

    // Cross-secret laundering: TOKEN's placeholder sent to OTHER's host.
    let o = curl(vec![
        "-x".into(),
        px.clone(),
        "--cacert".into(),
        bundle.clone(),
        "-H".into(),
        format!("Authorization: Bearer {pa}"),
        format!("https://other.example.test:{}/launder", up.port),
    ])
    .await;
    assert!(o.stdout.contains("403"), "{}", o.stdout);
    // OTHER's own placeholder to its own host works.
    let o = curl(vec![
        "-x".into(),
        px.clone(),
        "--cacert".into(),
        bundle.clone(),
        "-H".into(),
        format!("Authorization: Bearer {pb}"),
        format!("https://other.example.test:{}/mine", up.port),
    ])
    .await;
    assert!(o.ok && o.stdout.contains("200"), "{}", o.stdout);
    {
        let seen = up.seen.lock().unwrap();
        assert!(seen.iter().all(|r| r.uri != "/launder"));
        assert!(seen
            .iter()
            .all(|r| !r.all_text().contains(&pa) && !r.all_text().contains(SECRET_VALUE)));
        assert_eq!(
            seen.last().unwrap().header("authorization").unwrap(),
            format!("Bearer {OTHER_VALUE}")
        );
    }
    let text = std::fs::read_to_string(&p.log).unwrap();
    assert!(!text.contains(SECRET_VALUE) && !text.contains(OTHER_VALUE));
    assert!(text.contains("secret-placeholder-to-unbound-host"));

    // A plaintext tunnel (SOCKS5 to the plain host) carrying a placeholder is cut.
    let mut sock = socks_connect(p.port, "plain.example.test", plain_up.port)
        .await
        .unwrap();
    let req = format!(
        "GET /socks?k={pa} HTTP/1.1\r\nHost: plain.example.test\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    assert!(plain_up
        .seen
        .lock()
        .unwrap()
        .iter()
        .all(|r| !r.uri.starts_with("/socks")));
}

/// SOCKS5 CONNECT by domain name; returns the stream after a success reply.
async fn socks_connect(proxy_port: u16, host: &str, port: u16) -> Result<TcpStream, u8> {
    let mut s = TcpStream::connect(("127.0.0.1", proxy_port)).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.unwrap();
    assert_eq!(r, [5, 0]);
    let mut req = vec![5, 1, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).await.unwrap();
    if rep[1] == 0 {
        Ok(s)
    } else {
        Err(rep[1])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_allowed_and_denied() {
    let up = start_upstream(None).await;
    let p = start_proxy(ProxyConfig {
        allow: allow_patterns(vec![format!("api.example.test:{}", up.port)]),
        resolve: vec![resolve("api.example.test", up.port)],
        ..Default::default()
    });
    let sx = format!("127.0.0.1:{}", p.port);
    let o = curl(s(&[
        "--socks5-hostname",
        &sx,
        &format!("http://api.example.test:{}/socks", up.port),
    ]))
    .await;
    assert!(o.ok && o.stdout.contains("echo: /socks"), "{}", o.stdout);
    let o = curl(s(&["--socks5-hostname", &sx, "http://evil.example/"])).await;
    assert!(!o.ok, "{}", o.stdout);
    // Raw: reply code 0x02 (not allowed by ruleset), for names and for IPs.
    assert_eq!(
        socks_connect(p.port, "evil.example", 443).await.err(),
        Some(2)
    );
    assert_eq!(
        socks_connect(p.port, "127.0.0.1", up.port).await.err(),
        Some(2)
    );
    assert_eq!(p.handle.resolutions(), 1);
    let lines = log_lines(&p);
    assert!(lines
        .iter()
        .any(|l| l["kind"] == "socks5" && l["decision"] == "deny" && l["host"] == "evil.example"));
    assert!(lines
        .iter()
        .any(|l| l["kind"] == "socks5" && l["decision"] == "allow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_without_buffering_and_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _tls) = test_tls(dir.path());
    let up = start_upstream(None).await;
    let (mut cfg, pa, _) = secrets_cfg(up.port, &ca);
    cfg.secrets.remove(1);
    let p = start_proxy(cfg);
    // Plain HTTP to the bound host: goes through injection and redaction.
    let mut c = TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
    let req = format!(
        "GET http://api.example.test:{}/sse HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
        up.port
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The first event must arrive while the upstream is still holding the rest.
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains("data: one") {
                break;
            }
        }
    })
    .await;
    assert!(
        first.is_ok(),
        "first event was buffered: {}",
        String::from_utf8_lossy(&got)
    );
    up.gate.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("data: done"), "{text}");
    assert!(!text.contains(SECRET_VALUE), "{text}");
    assert!(text.contains(&pa), "split secret redacted: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_passes_through() {
    let up = start_upstream(None).await;
    let p = start_proxy(ProxyConfig {
        allow: allow_patterns(vec![format!("api.example.test:{}", up.port)]),
        resolve: vec![resolve("api.example.test", up.port)],
        ..Default::default()
    });
    let mut c = TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
    let req = format!(
        "GET http://api.example.test:{}/ws HTTP/1.1\r\nHost: api.example.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        up.port
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        head.push(b[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    c.write_all(b"ping-frame").await.unwrap();
    let mut echo = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping-frame");
}

#[test]
fn shutdown_from_sync_code_and_ca_persists() {
    let dir = tempfile::tempdir().unwrap();
    let mk = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        proxy::start(
            l,
            ProxyConfig {
                ca_dir: dir.path().join("ca"),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let a = mk();
    let pem = a.ca_cert_pem();
    assert!(a.ca_bundle_pem().contains(&pem));
    let addr: SocketAddr = a.local_addr();
    let summary = a.shutdown();
    assert!(summary.stderr_line().is_none());
    // Stopped: nothing answers any more.
    std::thread::sleep(Duration::from_millis(100));
    let still = std::net::TcpStream::connect(addr)
        .and_then(|mut s| {
            use std::io::{Read, Write};
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET http://x.example/ HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut b = [0u8; 1];
            s.read(&mut b)
        })
        .unwrap_or(0);
    assert_eq!(still, 0);
    let b = mk();
    assert_eq!(b.ca_cert_pem(), pem, "CA reused across runs");
}

/// A secret with upper- and lowercase letters: header names arrive
/// lowercased, so redaction there must ignore case.
const MIXED_VALUE: &str = "Real-Token-MiXeD-77aa";

/// An HTTP/2 upstream (TLS, ALPN h2) that reflects the real value in every
/// part of its response: a header value, a header name, the body, a
/// trailer value and a trailer name.
async fn start_h2_reflector(mut cfg: rustls::ServerConfig) -> u16 {
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    let lower = MIXED_VALUE.to_ascii_lowercase();
                    let (tx, rx) = tokio::sync::mpsc::channel::<Frame<Bytes>>(4);
                    let lower2 = lower.clone();
                    tokio::spawn(async move {
                        let lower = lower2;
                        let _ = tx
                            .send(Frame::data(Bytes::from(format!("body {MIXED_VALUE}\n"))))
                            .await;
                        let mut t = hyper::HeaderMap::new();
                        t.insert("x-trailer", MIXED_VALUE.parse().unwrap());
                        t.insert(
                            hyper::header::HeaderName::from_bytes(
                                format!("x-t-{lower}").as_bytes(),
                            )
                            .unwrap(),
                            "1".parse().unwrap(),
                        );
                        let _ = tx.send(Frame::trailers(t)).await;
                    });
                    let body = FrameBody(rx).boxed();
                    let mut r = Response::new(body);
                    r.headers_mut()
                        .insert("x-echo", MIXED_VALUE.parse().unwrap());
                    r.headers_mut().insert(
                        hyper::header::HeaderName::from_bytes(format!("x-h-{lower}").as_bytes())
                            .unwrap(),
                        "1".parse().unwrap(),
                    );
                    Ok::<_, Infallible>(r)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
            });
        }
    });
    port
}

/// Body fed frame by frame (data and trailers) from a channel.
struct FrameBody(tokio::sync::mpsc::Receiver<Frame<Bytes>>);
impl Body for FrameBody {
    type Data = Bytes;
    type Error = BoxErr;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxErr>>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// A raw HTTP/1.1 upstream over TLS that reflects the value in a 103
/// informational response and in the reason phrase of the final one.
async fn start_h1_reason_reflector(cfg: Arc<rustls::ServerConfig>) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let body = "ok\n";
                let resp = format!(
                    "HTTP/1.1 103 Early {MIXED_VALUE}\r\nLink: <{MIXED_VALUE}>\r\n\r\n\
                     HTTP/1.1 200 Fine {MIXED_VALUE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// Hardening II #6: the bound host's real value never reaches the client,
/// whatever part of the response reflects it: HTTP/2 header values and
/// names, body, trailer values and names; an HTTP/1.1 reason phrase and
/// informational (1xx) responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_covers_names_trailers_reason_and_informational() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = test_tls(dir.path());
    let h2_port = start_h2_reflector((*tls).clone()).await;
    let h1_port = start_h1_reason_reflector(tls).await;
    let secret = Secret::from_value(
        "MIXED",
        MIXED_VALUE.into(),
        vec![
            format!("api.example.test:{h2_port}"),
            format!("api.example.test:{h1_port}"),
        ],
    )
    .unwrap();
    let ph = secret.placeholder().to_string();
    let p = start_proxy(ProxyConfig {
        secrets: vec![secret],
        resolve: vec![
            resolve("api.example.test", h2_port),
            resolve("api.example.test", h1_port),
        ],
        extra_ca_certs: vec![ca],
        ..Default::default()
    });

    // HTTP/2 end to end: our own client, through CONNECT, trusting only
    // the zerobox CA, ALPN h2; the proxy speaks h2 upstream.
    let mut sock = TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
    let auth = format!("api.example.test:{h2_port}");
    sock.write_all(format!("CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(p.handle.ca_cert_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut ccfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    ccfg.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("api.example.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(ccfg))
        .connect(name, sock)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(format!("https://{auth}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    let body = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
    let show = |h: &hyper::HeaderMap| {
        h.iter()
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect::<String>()
    };
    let everything = format!("{}{}{body}", show(&parts.headers), show(&trailers));
    let lower_value = MIXED_VALUE.to_ascii_lowercase();
    for leak in [MIXED_VALUE, lower_value.as_str()] {
        assert!(
            !everything.contains(leak),
            "value reached the client:\n{everything}"
        );
    }
    assert_eq!(parts.headers["x-echo"], ph.as_str());
    assert_eq!(trailers["x-trailer"], ph.as_str());
    assert!(body.contains(&ph), "{body}");
    let lower_ph = ph.to_ascii_lowercase();
    assert!(
        parts
            .headers
            .contains_key(format!("x-h-{lower_ph}").as_str()),
        "{everything}"
    );
    assert!(
        trailers.contains_key(format!("x-t-{lower_ph}").as_str()),
        "{everything}"
    );

    // HTTP/1.1: reason phrase and a 103 informational response (curl -i
    // prints every status line and header it gets).
    let o = curl(s(&[
        "-x",
        &format!("http://127.0.0.1:{}", p.port),
        "--cacert",
        p.bundle.to_str().unwrap(),
        "--http1.1",
        &format!("https://api.example.test:{h1_port}/"),
    ]))
    .await;
    assert!(o.ok, "{}", o.stdout);
    assert!(o.stdout.contains("ok"), "{}", o.stdout);
    assert!(
        !o.stdout.contains(MIXED_VALUE),
        "value reached the client:\n{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!("HTTP/1.1 200 Fine {ph}")),
        "{}",
        o.stdout
    );
}

/// Write `first`, half-close (shutdown the write side), read to the end.
async fn half_closed_exchange(mut s: TcpStream, first: &[u8]) -> String {
    s.write_all(first).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Read an HTTP head (up to the blank line) byte by byte.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Hardening II #11: a client that sends its request and then shuts down
/// its write side (as `nc -N`, some scripts and HTTP/1.0 clients do) still
/// gets the answer: forward requests, CONNECT tunnels (request sent after
/// the 200, or pipelined with the CONNECT itself), intercepted tunnels and
/// SOCKS5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_still_gets_the_answer() {
    let up = start_upstream(None).await;
    let bound = Secret::from_value(
        "HC",
        "half-close-secret-1".into(),
        vec![format!("http://bound.example.test:{}", up.port)],
    )
    .unwrap();
    let p = start_proxy(ProxyConfig {
        allow: allow_patterns(vec![format!("plain.example.test:{}", up.port)]),
        secrets: vec![bound],
        resolve: vec![
            resolve("plain.example.test", up.port),
            resolve("bound.example.test", up.port),
        ],
        ..Default::default()
    });
    let px = ("127.0.0.1", p.port);
    let req = |host: &str, path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\n\r\n",
            up.port
        )
    };

    // Forward request.
    let s = TcpStream::connect(px).await.unwrap();
    let abs = format!("http://plain.example.test:{}/fwd", up.port);
    let out = half_closed_exchange(s, req("plain.example.test", &abs).as_bytes()).await;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("echo: /fwd"),
        "forward: {out:?}"
    );

    for host in ["plain.example.test", "bound.example.test"] {
        let connect = format!(
            "CONNECT {host}:{0} HTTP/1.1\r\nHost: {host}:{0}\r\n\r\n",
            up.port
        );
        // CONNECT, 200, then request + half-close.
        let mut s = TcpStream::connect(px).await.unwrap();
        s.write_all(connect.as_bytes()).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{host}: {head:?}");
        let out = half_closed_exchange(s, req(host, "/after").as_bytes()).await;
        assert!(
            out.contains("echo: /after"),
            "{host} CONNECT then request: {out:?}"
        );
        // CONNECT and the request in one write, then half-close at once.
        let s = TcpStream::connect(px).await.unwrap();
        let both = format!("{connect}{}", req(host, "/pipelined"));
        let out = half_closed_exchange(s, both.as_bytes()).await;
        assert!(
            out.contains("echo: /pipelined"),
            "{host} pipelined CONNECT: {out:?}"
        );
    }

    // SOCKS5: greeting, CONNECT by name, then request + half-close.
    for host in ["plain.example.test", "bound.example.test"] {
        let mut s = TcpStream::connect(px).await.unwrap();
        s.write_all(&[5, 1, 0]).await.unwrap();
        let mut rep = [0u8; 2];
        s.read_exact(&mut rep).await.unwrap();
        let mut c = vec![5, 1, 0, 3, host.len() as u8];
        c.extend_from_slice(host.as_bytes());
        c.extend_from_slice(&up.port.to_be_bytes());
        s.write_all(&c).await.unwrap();
        let mut rep = [0u8; 10];
        s.read_exact(&mut rep).await.unwrap();
        assert_eq!(rep[1], 0, "socks reply {rep:?}");
        let out = half_closed_exchange(s, req(host, "/socks").as_bytes()).await;
        assert!(out.contains("echo: /socks"), "socks5 {host}: {out:?}");
    }
}
