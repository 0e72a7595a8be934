//! The network path end to end: the real binary, the proxy serving the
//! listener handed out of the sandbox's network namespace, real clients
//! inside (curl, python3), and stand-in upstreams on 127.0.0.1 reached
//! through `--resolve`. Nothing here talks to any other address.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{scratch, zerobox, Run};

/// A stand-in upstream: python3's http.server (HTTPS when given a cert).
/// It answers every request with what it saw of the secret, without ever
/// echoing a value: `key=match`, `key=placeholder`, or `key=other`.
struct Upstream {
    child: Child,
    port: u16,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UPSTREAM_PY: &str = r#"
import http.server, ssl, sys, os
expected = os.environ["EXPECTED"]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def judge(self, text):
        if expected in text: return "match"
        if "ZEROBOX_SECRET_" in text: return "placeholder"
        return "other"
    def reply(self, body):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n).decode() if n else ""
        out = "header=%s path=%s body=%s\n" % (
            self.judge(str(self.headers.get("Authorization"))),
            self.judge(self.path), self.judge(data))
        out = out.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def do_GET(self):
        if self.path == "/conn":
            # which upstream connection served this (its client port)
            out = ("conn=%d\n" % self.client_address[1]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self.reply("")
    def do_POST(self): self.reply("")
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

fn upstream(dir: &Path, expected: &str, tls: Option<(&Path, &Path)>) -> Upstream {
    let script = dir.join("upstream.py");
    std::fs::write(&script, UPSTREAM_PY).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).env("EXPECTED", expected);
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("upstream port");
    Upstream { child, port }
}

fn run(cwd: &Path, env: &[(&str, &str)], args: &[String]) -> Run {
    let mut cmd = zerobox();
    cmd.current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.args(args).output().unwrap())
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The issue's acceptance case: the command sees a placeholder; the real
/// value reaches only the bound host (HTTPS, intercepted with the zerobox
/// CA, upstream verified against --ca-cert).
#[test]
fn secret_is_a_placeholder_inside_and_real_at_the_bound_host() {
    let d = scratch();
    let (ca, cert, key) = common::test_pki(d.path(), "api.openai.com");
    let up = upstream(d.path(), "sk-test-value-123", Some((&cert, &key)));
    let port = up.port.to_string();
    let script = format!(
        "echo $OPENAI_API_KEY; \
         curl -sS -H \"Authorization: Bearer $OPENAI_API_KEY\" \"https://api.openai.com:{port}/v1/x?k=$OPENAI_API_KEY\"; \
         curl -sS -X POST --data \"key=$OPENAI_API_KEY\" -H 'Content-Type: text/plain' https://api.openai.com:{port}/; \
         cat /proc/self/environ | tr '\\0' '\\n' | grep -c sk-test-value-123"
    );
    let r = run(
        d.path(),
        &[("OPENAI_API_KEY", "sk-test-value-123")],
        &[
            "--secret".into(),
            "OPENAI_API_KEY".into(),
            "--secret-host".into(),
            format!("OPENAI_API_KEY=api.openai.com:{port}"),
            "--resolve".into(),
            format!("api.openai.com:{port}:127.0.0.1"),
            "--ca-cert".into(),
            ca.display().to_string(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            script,
        ],
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("ZEROBOX_SECRET_")),
        "{r:?}"
    );
    assert_eq!(
        lines.get(1),
        Some(&"header=match path=match body=other"),
        "{r:?}"
    );
    assert_eq!(
        lines.get(2),
        Some(&"header=other path=other body=match"),
        "{r:?}"
    );
    assert_eq!(lines.get(3), Some(&"0"), "real value in the environ: {r:?}");
    assert!(!r.stdout.contains("sk-test-value-123") && !r.stderr.contains("sk-test-value-123"));
}

/// A placeholder sent to a host its secret is not bound to is refused,
/// never forwarded.
#[test]
fn placeholder_to_an_unbound_host_is_refused() {
    let d = scratch();
    let up = upstream(d.path(), "sk-test-value-456", None);
    let port = up.port.to_string();
    let r = run(
        d.path(),
        &[("MY_KEY", "sk-test-value-456")],
        &args(&[
            "--secret", "MY_KEY",
            "--secret-host", "MY_KEY=api.bound.test",
            &format!("--allow-net=other.test:{port}"),
            "--resolve", &format!("other.test:{port}:127.0.0.1"),
            "--", "sh", "-c",
            &format!("curl -s -o /dev/null -w '%{{http_code}}\\n' -H \"X-Key: $MY_KEY\" http://other.test:{port}/; curl -s http://other.test:{port}/plain"),
        ]),
    );
    assert_eq!(
        r.stdout, "403\nheader=other path=other body=other\n",
        "{r:?}"
    );
}

/// Hosts not allowed get 403 with the reason header, and the summary line.
#[test]
fn denied_host_gets_403_and_a_summary() {
    let d = scratch();
    let up = upstream(d.path(), "unused-value", None);
    let port = up.port.to_string();
    let r = run(
        d.path(),
        &[],
        &args(&[
            "--allow-weak-net",
            &format!("--allow-net=ok.test:{port}"),
            "--resolve", &format!("ok.test:{port}:127.0.0.1"),
            "--", "sh", "-c",
            &format!("curl -s -D - -o /dev/null http://evil.test:{port}/ | tr -d '\\r' | grep -i -E '^(HTTP|x-zerobox-denied)'; curl -s http://ok.test:{port}/"),
        ]),
    );
    assert!(r.stdout.starts_with("HTTP/1.1 403"), "{r:?}");
    assert!(
        r.stdout.to_lowercase().contains("x-zerobox-denied:"),
        "{r:?}"
    );
    assert!(
        r.stdout.ends_with("header=other path=other body=other\n"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("zerobox: blocked 1 connection: evil.test"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&format!("--allow-net=evil.test:{port}"))
            || r.stderr.contains("--allow-net=evil.test"),
        "{r:?}"
    );
}

/// A client that ignores the proxy variables cannot connect anywhere: the
/// namespace has only lo, and Landlock allows TCP connect to the proxy port
/// only.
#[test]
fn clients_ignoring_the_proxy_cannot_connect() {
    let d = scratch();
    let up = upstream(d.path(), "unused-value", None);
    let port = up.port;
    let py = format!(
        "import socket\nfor h,p in [('127.0.0.1',{port}),('10.0.2.2',80)]:\n  s=socket.socket(); s.settimeout(2)\n  try:\n    s.connect((h,p)); print('CONNECTED')\n  except OSError as e:\n    print('refused')"
    );
    for sim in ["", "userns"] {
        let mut env = vec![];
        if !sim.is_empty() {
            env.push(("ZEROBOX_SIMULATE_MISSING", sim));
        }
        // The fallback's network needs --allow-weak-net (docs/network.md §1).
        let weak: &[&str] = if sim.is_empty() {
            &[]
        } else {
            &["--allow-weak-net"]
        };
        let r = run(
            d.path(),
            &env,
            &args(&[weak, &["--allow-net", "--", "python3", "-c", &py]].concat()),
        );
        assert_eq!(r.stdout, "refused\nrefused\n", "mode {sim:?}: {r:?}");
    }
}

/// The fallback (no user namespaces) still routes through the proxy.
#[test]
fn fallback_mode_network_goes_through_the_proxy() {
    let d = scratch();
    let up = upstream(d.path(), "unused-value", None);
    let port = up.port.to_string();
    let r = run(
        d.path(),
        &[("ZEROBOX_SIMULATE_MISSING", "userns")],
        &args(&[
            "--allow-weak-net",
            &format!("--allow-net=ok.test:{port}"),
            "--resolve", &format!("ok.test:{port}:127.0.0.1"),
            "--", "sh", "-c",
            &format!("curl -s http://ok.test:{port}/; curl -s -o /dev/null -w '%{{http_code}}\\n' http://no.test:{port}/"),
        ]),
    );
    assert_eq!(
        r.stdout, "header=other path=other body=other\n403\n",
        "{r:?}"
    );
}

/// Secrets need a host binding; bad patterns are exit 2 with the value.
#[test]
fn network_flag_errors() {
    let d = scratch();
    let cases: &[(&[&str], &str)] = &[
        (&["--secret", "K", "--", "true"], "not bound to any host"),
        (
            &["--secret-host", "K=a.test", "--", "true"],
            "no secret K is declared",
        ),
        (&["--allow-net=*.com", "--", "true"], "*.com"),
        (&["--resolve", "nonsense", "--", "true"], "nonsense"),
        (
            &["--ca-cert", "/nonexistent-zb.pem", "--", "true"],
            "/nonexistent-zb.pem",
        ),
        (
            &[
                "--allow-net=a.test",
                "--net-log",
                "/nonexistent-zb/log.json",
                "--",
                "true",
            ],
            "/nonexistent-zb/log.json",
        ),
        (
            &[
                "--secret",
                "UNSET_ZB_VAR",
                "--secret-host",
                "UNSET_ZB_VAR=a.test",
                "--",
                "true",
            ],
            "UNSET_ZB_VAR",
        ),
    ];
    for (a, want) in cases {
        let r = run(d.path(), &[], &args(a));
        assert_eq!(r.code, 2, "{a:?}: {r:?}");
        assert!(r.stderr.contains(want), "{a:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{a:?}: {r:?}");
    }
}

/// A secret given on the command line works but warns; its value never
/// appears in the sandbox or in zerobox's messages.
#[test]
fn inline_secret_warns() {
    let d = scratch();
    let r = run(
        d.path(),
        &[],
        &args(&[
            "--secret",
            "K=inline-secret-789",
            "--secret-host",
            "K=a.test",
            "--",
            "sh",
            "-c",
            "echo $K; for f in /proc/[0-9]*/cmdline; do cat $f; done | tr '\\0' '\\n' | grep -c 'inline-secret-78[9]'",
        ]),
    );
    assert!(r.stdout.starts_with("ZEROBOX_SECRET_"), "{r:?}");
    // zerobox blanks the value out of its own command line before the
    // sandbox (whose PID 1 shares it) starts.
    assert!(r.stdout.ends_with("\n0\n"), "{r:?}");
    assert!(r.stderr.contains("visible to other users"), "{r:?}");
    assert!(!r.stderr.contains("inline-secret-789"), "{r:?}");
}

/// The sandboxed command cannot read zerobox's interception CA key. (A
/// secret is bound, so the run intercepts and makes the CA: a tunnel-only
/// run makes none, see `tunnel_only_run_makes_no_ca`.)
#[test]
fn ca_key_is_not_readable_inside() {
    let d = scratch();
    let data = d.path().join("data");
    let r = run(
        d.path(),
        &[
            ("XDG_DATA_HOME", data.to_str().unwrap()),
            ("CA_TEST_KEY", "ca-test-value-1234"),
        ],
        &args(&[
            "--allow-net=a.test",
            "--secret",
            "CA_TEST_KEY",
            "--secret-host",
            "CA_TEST_KEY=a.test",
            "--",
            "sh",
            "-c",
            "ls -A $0/zerobox/ca 2>&1 | wc -l; cat $0/zerobox/ca/* 2>&1 | grep -c PRIVATE",
            data.to_str().unwrap(),
        ]),
    );
    assert!(data.join("zerobox/ca").is_dir(), "CA not created: {r:?}");
    assert_eq!(r.stdout.lines().last(), Some("0"), "{r:?}");
    let _ = std::io::stdout().flush();
}

/// A run with no secret only tunnels: it reads and makes no CA (no TLS
/// state at all), and the bundle inside holds no zerobox certificate.
#[test]
fn tunnel_only_run_makes_no_ca() {
    let d = scratch();
    let data = d.path().join("data");
    let r = run(
        d.path(),
        &[("XDG_DATA_HOME", data.to_str().unwrap())],
        &args(&[
            "--allow-net=a.test",
            "--",
            "sh",
            "-c",
            "grep -c 'zerobox interception CA' \"$SSL_CERT_FILE\" || true",
        ]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "0", "{r:?}");
    assert!(!data.join("zerobox/ca").exists(), "CA made: {r:?}");
}

/// A minimal CONNECT proxy standing in for a corporate proxy: it logs each
/// CONNECT target to stdout and splices bytes.
const CORP_PROXY_PY: &str = r#"
import socket, threading, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(16)
print(srv.getsockname()[1], flush=True)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
def handle(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d: return
        head += d
    line = head.split(b"\r\n")[0].decode()
    method, target, _ = line.split(" ", 2)
    print("CONNECT " + target, flush=True)
    host, port = target.rsplit(":", 1)
    host = "127.0.0.1" if host.endswith(".test") else host
    u = socket.create_connection((host, int(port)))
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    pipe(u, c)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

/// When zerobox itself runs behind a corporate proxy (HTTPS_PROXY in its own
/// environment), its outbound connections chain through it; names are
/// handed to that proxy unresolved.
#[test]
fn outbound_chains_through_a_corporate_proxy() {
    let d = scratch();
    let up = upstream(d.path(), "unused-value", None);
    let script = d.path().join("corp.py");
    std::fs::write(&script, CORP_PROXY_PY).unwrap();
    let mut corp = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(corp.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let corp_port = line.trim().to_string();
    let port = up.port.to_string();
    let r = run(
        d.path(),
        &[("HTTPS_PROXY", &format!("http://127.0.0.1:{corp_port}"))],
        &args(&[
            &format!("--allow-net=intranet.test:{port}"),
            "--",
            "curl",
            "-s",
            &format!("http://intranet.test:{port}/via-corp"),
        ]),
    );
    let _ = corp.kill();
    let mut seen = String::new();
    let _ = out.read_line(&mut seen);
    let _ = corp.wait();
    assert_eq!(r.stdout, "header=other path=other body=other\n", "{r:?}");
    assert_eq!(
        seen.trim(),
        format!("CONNECT intranet.test:{port}"),
        "{r:?}"
    );
}

/// The real value is nowhere a sandboxed process can look: not in any
/// /proc/*/environ or cmdline it can read (zerobox's init, or zerobox itself
/// as the parent in the fallback), in both modes, with and without Landlock.
#[test]
fn secret_value_not_readable_through_proc() {
    let d = scratch();
    let script = "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat $f 2>/dev/null; done | tr '\\0' '\\n' | grep -c 'sk-proc-leak-tes[t]'; \
                  cat /proc/$PPID/environ 2>/dev/null | tr '\\0' '\\n' | grep -c 'sk-proc-leak-tes[t]'";
    for sim in ["", "userns", "landlock"] {
        let mut env = vec![("PROC_KEY", "sk-proc-leak-test")];
        if !sim.is_empty() {
            env.push(("ZEROBOX_SIMULATE_MISSING", sim));
        }
        let r = run(
            d.path(),
            &env,
            &args(
                &[
                    // The fallback's network needs the flag (docs/network.md §1).
                    if sim == "userns" {
                        &["--allow-weak-net"][..]
                    } else {
                        &[]
                    },
                    &[
                        "--secret",
                        "PROC_KEY",
                        "--secret-host",
                        "PROC_KEY=a.test",
                        "--",
                        "sh",
                        "-c",
                        script,
                    ],
                ]
                .concat(),
            ),
        );
        assert_eq!(r.stdout, "0\n0\n", "mode {sim:?}: {r:?}");
    }
}

/// A WebSocket echo server (RFC 6455 handshake and unmasked echo frames),
/// also reporting what it saw of the secret in the handshake.
const WS_PY: &str = r#"
import socket, threading, hashlib, base64, os
expected = os.environ["EXPECTED"]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
print(srv.getsockname()[1], flush=True)
def handle(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d: return
        head += d
    text = head.decode()
    key = [l.split(":", 1)[1].strip() for l in text.split("\r\n") if l.lower().startswith("sec-websocket-key:")][0]
    acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    seen = "match" if expected in text else ("placeholder" if "ZEROBOX_SECRET_" in text else "other")
    c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\nX-Seen: %s\r\n\r\n" % (acc, seen)).encode())
    while True:
        h = c.recv(2)
        if len(h) < 2: return
        n = h[1] & 0x7f
        mask = c.recv(4)
        data = b""
        while len(data) < n: data += c.recv(n - len(data))
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        c.sendall(bytes([0x81, len(payload)]) + payload)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

/// The client inside: a raw WebSocket over the HTTP proxy (absolute-form
/// GET with Upgrade), two echoed messages in one upgraded connection.
const WS_CLIENT_PY: &str = r#"
import os, socket, sys
proxy = os.environ["http_proxy"].split("//")[1]
ph, pp = proxy.rsplit(":", 1)
target = sys.argv[1]
s = socket.create_connection((ph, int(pp)))
s.sendall(("GET http://%s/chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           "Authorization: Bearer %s\r\n\r\n" % (target, target, os.environ["WS_KEY"])).encode())
head = b""
while b"\r\n\r\n" not in head: head += s.recv(1)
lines = head.decode().split("\r\n")
seen = [l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("x-seen:")]
print(lines[0].split(" ")[1], seen[0] if seen else "?")
for msg in (b"hello", b"world"):
    s.sendall(bytes([0x81, 0x80 | len(msg)]) + b"\x01\x02\x03\x04" + bytes(b ^ b"\x01\x02\x03\x04"[i % 4] for i, b in enumerate(msg)))
    h = s.recv(2); print(s.recv(h[1]).decode())
"#;

/// WebSocket upgrades pass through the proxy; on a host a secret is bound
/// to, the handshake's placeholder is replaced by the real value. (Plain
/// `ws://`: the binding says cleartext is intended with `http://`.)
#[test]
fn websocket_upgrade_passes_and_handshake_gets_the_secret() {
    let d = scratch();
    let server = d.path().join("ws.py");
    std::fs::write(&server, WS_PY).unwrap();
    let mut ws = Command::new("python3")
        .arg(&server)
        .env("EXPECTED", "sk-ws-secret-321")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(ws.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().to_string();
    let client = d.path().join("client.py");
    std::fs::write(&client, WS_CLIENT_PY).unwrap();
    let target = format!("ws.test:{port}");
    let r = run(
        d.path(),
        &[("WS_KEY", "sk-ws-secret-321")],
        &args(&[
            "--secret",
            "WS_KEY",
            "--secret-host",
            &format!("WS_KEY=http://{target}"),
            "--resolve",
            &format!("{target}:127.0.0.1"),
            "--",
            "python3",
            client.to_str().unwrap(),
            &target,
        ]),
    );
    let _ = ws.kill();
    let _ = ws.wait();
    assert_eq!(r.stdout, "101 match\nhello\nworld\n", "{r:?}");
}

/// Requests on one intercepted client connection reuse one upstream
/// connection (a new TLS handshake per request cost ~0.5 ms).
#[test]
fn intercepted_requests_reuse_the_upstream_connection() {
    let d = scratch();
    let (ca, cert, key) = common::test_pki(d.path(), "api.reuse.test");
    let up = upstream(d.path(), "sk-reuse-value", Some((&cert, &key)));
    let port = up.port.to_string();
    let url = format!("https://api.reuse.test:{port}/conn");
    let r = run(
        d.path(),
        &[("REUSE_KEY", "sk-reuse-value")],
        &[
            "--secret".into(),
            "REUSE_KEY".into(),
            "--secret-host".into(),
            format!("REUSE_KEY=api.reuse.test:{port}"),
            "--resolve".into(),
            format!("api.reuse.test:{port}:127.0.0.1"),
            "--ca-cert".into(),
            ca.display().to_string(),
            "--".into(),
            "curl".into(),
            "-sS".into(),
            "--http1.1".into(),
            url.clone(),
            url,
        ],
    );
    let conns: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(conns.len(), 2, "{r:?}");
    assert!(conns[0].starts_with("conn="), "{r:?}");
    assert_eq!(
        conns[0], conns[1],
        "a new upstream connection per request: {r:?}"
    );
}

/// `--secret-host` can bind a secret that a preset declares (here to a
/// loopback stand-in for the preset's API host), without `--secret`.
#[test]
fn secret_host_binds_a_preset_secret() {
    let d = scratch();
    let home = scratch();
    let (ca, cert, key) = common::test_pki(d.path(), "api.anthropic.com");
    let up = upstream(d.path(), "sk-ant-preset-value", Some((&cert, &key)));
    let port = up.port.to_string();
    let r = run(
        d.path(),
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-preset-value"),
            ("HOME", home.path().to_str().unwrap()),
        ],
        &[
            "--profile".into(),
            "claude".into(),
            "--secret-host".into(),
            format!("ANTHROPIC_API_KEY=api.anthropic.com:{port}"),
            "--resolve".into(),
            format!("api.anthropic.com:{port}:127.0.0.1"),
            "--ca-cert".into(),
            ca.display().to_string(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            format!("curl -sS -H \"Authorization: Bearer $ANTHROPIC_API_KEY\" https://api.anthropic.com:{port}/v1"),
        ],
    );
    assert_eq!(r.stdout, "header=match path=other body=other\n", "{r:?}");
}

/// `explain` names the network layer.
#[test]
fn explain_names_the_network_layer() {
    let d = scratch();
    let r = run(
        d.path(),
        &[],
        &args(&["explain", "--allow-net=a.test", "--", "true"]),
    );
    assert!(
        r.stdout.contains("network: only through zerobox's proxy"),
        "{r:?}"
    );
    let r = run(d.path(), &[], &args(&["explain", "--", "true"]));
    assert!(r.stdout.contains("network: none (only lo)"), "{r:?}");
}

/// `--share-net` is the one explicit way to the host's raw network: a host
/// loopback listener is reachable, and the run says so on stderr.
#[test]
fn share_net_gives_the_host_network_and_warns() {
    let d = scratch();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let py = format!(
        "import socket; s=socket.socket(); s.settimeout(2); print('connected' if s.connect_ex(('127.0.0.1',{port}))==0 else 'refused')"
    );
    let r = run(
        d.path(),
        &[],
        &args(&["--share-net", "--", "python3", "-c", &py]),
    );
    assert_eq!(r.stdout, "connected\n", "{r:?}");
    assert!(r.stderr.contains("--share-net"), "{r:?}");
    let r = run(d.path(), &[], &args(&["--", "python3", "-c", &py]));
    assert_eq!(r.stdout, "refused\n", "{r:?}");
}

/// zerobox is non-dumpable while it holds secrets: its /proc files belong
/// to root, so a process of the same user cannot read its environment.
#[test]
fn zerobox_is_not_dumpable() {
    let d = scratch();
    let mut child = zerobox()
        .current_dir(d.path())
        .env("DUMP_KEY", "sk-dump-test-value")
        .args([
            "--secret",
            "DUMP_KEY",
            "--secret-host",
            "DUMP_KEY=a.test",
            "--",
            "sleep",
            "3",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(format!("/proc/{}/environ", child.id()))
        .unwrap()
        .uid();
    let _ = child.kill();
    let _ = child.wait();
    if common::is_root() {
        eprintln!("NOTE: as root every /proc file is root's; the unprivileged run of this test is the one that can fail");
    }
    assert_eq!(
        owner, 0,
        "zerobox's /proc files are not root-owned: it is dumpable"
    );
}

/// Hardening II #4, multi-run: run 1 (granted its project) replaces the
/// net log there with a symlink to the user's `~/.bashrc`; run 2 (from
/// elsewhere, logging into that project) must not append to the link's
/// target. A log path the run itself could write to is refused outright.
#[test]
fn net_log_never_follows_a_planted_symlink() {
    let d = scratch();
    let project = d.path().join("project");
    let elsewhere = d.path().join("elsewhere");
    let home = d.path().join("home");
    for p in [&project, &elsewhere, &home] {
        std::fs::create_dir(p).unwrap();
    }
    let bashrc = home.join(".bashrc");
    std::fs::write(&bashrc, "# the user's rc\n").unwrap();
    let log = project.join("net.log");
    let log_s = log.display().to_string();

    // Run 1: the agent, granted its project, plants the link.
    let r = run(
        &project,
        &[],
        &args(&[
            &format!("--allow-write={}", project.display()),
            "--",
            "ln",
            "-sf",
            &bashrc.display().to_string(),
            &log_s,
        ]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(std::fs::symlink_metadata(&log)
        .unwrap()
        .file_type()
        .is_symlink());

    // Run 2: from elsewhere, with the network on and the log in the project.
    let r = run(
        &elsewhere,
        &[],
        &args(&[
            "--allow-net=a.test",
            "--net-log",
            &log_s,
            "--",
            "sh",
            "-c",
            "curl -s http://a.test/ >/dev/null; echo ran",
        ]),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&log_s) && r.stderr.contains("symbolic link"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("ran"), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&bashrc).unwrap(),
        "# the user's rc\n"
    );

    // A log the run could write to (the file, its directory, relative or
    // not) is refused before anything runs.
    std::fs::remove_file(&log).unwrap();
    for (cwd, log_arg) in [(&project, log_s.clone()), (&project, "net.log".to_string())] {
        let r = run(
            cwd,
            &[],
            &args(&[
                &format!("--allow-write={}", project.display()),
                "--allow-net=a.test",
                "--net-log",
                &log_arg,
                "--",
                "true",
            ]),
        );
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("writable inside the sandbox"), "{r:?}");
        assert!(r.stderr.contains(&log_arg), "{r:?}");
        assert!(!log.exists(), "{r:?}");
    }
    // A FIFO (would block the proxy) or a directory: refused.
    let fifo = elsewhere.join("fifo.log");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let r = run(
        &elsewhere,
        &[],
        &args(&[
            "--allow-net=a.test",
            "--net-log",
            &fifo.display().to_string(),
            "--",
            "true",
        ]),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not a regular file"), "{r:?}");

    // Outside every grant: it works, a private regular file.
    let good = elsewhere.join("net.log");
    let r = run(
        &project,
        &[],
        &args(&[
            &format!("--allow-write={}", project.display()),
            "--allow-net=a.test",
            "--net-log",
            &good.display().to_string(),
            "--",
            "true",
        ]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&good).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Hardening II #7: a secret's value travels only over TLS unless its
/// binding says `http://`. A plain `http://` request and plaintext HTTP
/// inside a `CONNECT` carrying the placeholder are refused (403, net log,
/// summary); the upstream never sees the value. With `http://HOST:PORT`
/// the same requests get it.
#[test]
fn secret_is_not_injected_over_cleartext_unless_bound_with_http() {
    let d = scratch();
    let up = upstream(d.path(), "sk-cleartext-value-1", None);
    let port = up.port.to_string();
    let log = d.path().join("logs");
    std::fs::create_dir(&log).unwrap();
    let log = log.join("net.log");
    let script = format!(
        "for p in '' '-p'; do curl -s $p -o /dev/null -w '%{{http_code}} ' -H \"Authorization: Bearer $K\" http://api.clear.test:{port}/; \
         curl -s $p -H \"Authorization: Bearer $K\" http://api.clear.test:{port}/; echo; done"
    );
    let go = |binding: String| {
        let _ = std::fs::remove_file(&log);
        run(
            d.path(),
            &[("K", "sk-cleartext-value-1")],
            &args(&[
                "--secret",
                "K",
                "--secret-host",
                &binding,
                "--resolve",
                &format!("api.clear.test:{port}:127.0.0.1"),
                "--net-log",
                &log.display().to_string(),
                "--",
                "sh",
                "-c",
                &script,
            ]),
        )
    };
    for binding in [
        format!("K=api.clear.test:{port}"),
        format!("K=https://api.clear.test:{port}"),
    ] {
        let r = go(binding);
        let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2, "{r:?}");
        for l in &lines {
            assert!(l.starts_with("403 "), "{r:?}");
            assert!(
                l.contains("plain HTTP") && l.contains("http://api.clear.test"),
                "{r:?}"
            );
            assert!(
                !l.contains("header=match"),
                "the value went out in cleartext: {r:?}"
            );
        }
        assert!(
            r.stderr
                .contains("api.clear.test (secret K over plain HTTP)"),
            "{r:?}"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.lines()
                .filter(|l| l.contains("\"reason\":\"secret-over-cleartext\""))
                .count()
                >= 4,
            "{text}"
        );
    }
    let r = go(format!("K=http://api.clear.test:{port}"));
    assert_eq!(
        r.stdout,
        "200 header=match path=other body=other\n\n200 header=match path=other body=other\n\n",
        "{r:?}"
    );
}

/// Hardening II #5: a secret's source file is unreadable inside and may not
/// sit where the command can replace it; a source is a regular file of at
/// most 64 KiB; `--allow-env='*'` is refused and no wildcard carries a
/// credential-looking variable.
#[test]
fn secret_sources_and_env_wildcards_are_hardened() {
    let d = scratch();
    let tokdir = d.path().join("tokens");
    std::fs::create_dir(&tokdir).unwrap();
    let tok = tokdir.join("k");
    std::fs::write(&tok, "sk-file-secret-555\n").unwrap();
    let tok_s = tok.display().to_string();
    let r = run(
        d.path(),
        &[],
        &args(&[
            "--secret",
            &format!("K=@{tok_s}"),
            "--secret-host",
            "K=a.test",
            "--",
            "sh",
            "-c",
            &format!("echo $K; cat {tok_s} || echo unreadable; cat tokens/k 2>/dev/null || echo unreadable"),
        ]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("ZEROBOX_SECRET_"), "{r:?}");
    assert_eq!(&lines[1..], ["unreadable", "unreadable"], "{r:?}");
    assert!(!r.stdout.contains("sk-file-secret-555"), "{r:?}");

    // A symlink to the secret file works; the target stays unreadable.
    let link = d.path().join("k-link");
    std::os::unix::fs::symlink(&tok, &link).unwrap();
    let r = run(
        d.path(),
        &[],
        &args(&[
            "--secret",
            "K=@k-link",
            "--secret-host",
            "K=a.test",
            "--",
            "sh",
            "-c",
            &format!("echo $K; cat k-link {tok_s} 2>/dev/null || echo unreadable"),
        ]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.ends_with("\nunreadable\n"), "{r:?}");
    assert!(!r.stdout.contains("sk-file-secret-555"), "{r:?}");

    // In a writable grant: refused before anything runs.
    let r = run(
        d.path(),
        &[],
        &args(&[
            &format!("--allow-write={}", tokdir.display()),
            "--secret",
            &format!("K=@{tok_s}"),
            "--secret-host",
            "K=a.test",
            "--",
            "true",
        ]),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("writable inside the sandbox"), "{r:?}");

    // Not a regular file, or too big: a clear error at once.
    let big = d.path().join("big");
    std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
    for (src, want) in [
        ("/dev/zero".to_string(), "not a regular file"),
        (big.display().to_string(), "larger than 64 KiB"),
    ] {
        let start = std::time::Instant::now();
        let r = run(
            d.path(),
            &[],
            &args(&[
                "--secret",
                &format!("K=@{src}"),
                "--secret-host",
                "K=a.test",
                "--",
                "true",
            ]),
        );
        assert_eq!(r.code, 2, "{src}: {r:?}");
        assert!(r.stderr.contains(want) && r.stderr.contains(&src), "{r:?}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{src}"
        );
    }

    // --allow-env='*': refused, naming the alternative.
    let r = run(d.path(), &[], &args(&["--allow-env=*", "--", "true"]));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--allow-env=PREFIX*"), "{r:?}");
    // A wildcard passes ordinary names, withholds credential-looking ones
    // with a warning naming each, and an exact name still passes.
    let env = [
        ("ZBT_REGION", "eu"),
        ("ZBT_API_TOKEN", "tok-1"),
        ("ZBT_SECRET_KEY", "key-1"),
        ("ZBT_DB_PASSWORD", "pw-1"),
    ];
    let r = run(
        d.path(),
        &env,
        &args(&[
            "--allow-env=ZBT_*",
            "--allow-env=ZBT_DB_PASSWORD",
            "--",
            "sh",
            "-c",
            "env | grep ^ZBT_ | sort",
        ]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "ZBT_DB_PASSWORD=pw-1\nZBT_REGION=eu\n", "{r:?}");
    for name in ["ZBT_API_TOKEN", "ZBT_SECRET_KEY"] {
        assert!(
            r.stderr
                .contains(&format!("warning: {name} matches an --allow-env wildcard")),
            "{r:?}"
        );
    }
    assert!(!r.stderr.contains("ZBT_DB_PASSWORD matches"), "{r:?}");
}

/// Hardening II #11: a net log that cannot grow (here RLIMIT_FSIZE, which
/// fails writes past the limit with EFBIG exactly as a full disk fails them
/// with ENOSPC, and works unprivileged) loses records loudly: one warning
/// on stderr, and the summary counts the lost records.
#[test]
fn net_log_write_failures_are_reported() {
    let d = scratch();
    let logs = d.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("net.log");
    // 600 blocks of 512 bytes is the limit; the log already holds all but
    // 40 bytes of it, so the first record is cut and the rest fail.
    let limit = 600 * 512;
    let pad = "{\"pad\":true}\n";
    let mut content = pad.repeat((limit - 40) / pad.len());
    content.push_str(&"x".repeat(limit - 40 - content.len()));
    std::fs::write(&log, &content).unwrap();
    let script = format!(
        "trap '' XFSZ; ulimit -f 600; exec \"$0\" --allow-net=ok.test --net-log {} -- sh -c 'for i in 1 2 3; do curl -s -o /dev/null http://denied.test/; done; echo done'",
        log.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(common::bin())
        .current_dir(d.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "done\n", "{r:?}");
    assert_eq!(
        r.stderr.matches("--net-log: cannot write a record").count(),
        1,
        "{r:?}"
    );
    assert!(r.stderr.contains("--net-log lost 3 records"), "{r:?}");
    assert!(
        r.stderr.contains("blocked 3 connections: denied.test"),
        "{r:?}"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().len() as usize, limit);
}

/// A run that binds a secret (so it may intercept, and loads or makes the
/// CA at start).
const SECRET_RUN: &[&str] = &[
    "--allow-net=a.test",
    "--secret",
    "CA_TEST_KEY",
    "--secret-host",
    "CA_TEST_KEY=a.test",
    "--",
    "true",
];

/// Hardening II #11: ten simultaneous first runs (no CA yet) agree on one
/// CA, and `ca.pem` is the certificate stored with the key.
#[test]
fn ten_simultaneous_first_runs_make_one_ca() {
    let d = scratch();
    let data = d.path().join("data");
    let children: Vec<Child> = (0..10)
        .map(|_| {
            zerobox()
                .current_dir(d.path())
                .env("XDG_DATA_HOME", &data)
                .env("CA_TEST_KEY", "ca-test-value-1234")
                .args(SECRET_RUN)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ca = data.join("zerobox/ca");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ca.join("ca.json")).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(ca.join("ca.pem")).unwrap(),
        stored["cert_pem"].as_str().unwrap(),
        "ca.pem does not match the CA key's certificate"
    );
    // The next run loads that pair (it verifies it) without complaint.
    let r = run(
        d.path(),
        &[
            ("XDG_DATA_HOME", data.to_str().unwrap()),
            ("CA_TEST_KEY", "ca-test-value-1234"),
        ],
        &args(SECRET_RUN),
    );
    assert_eq!(r.code, 0, "{r:?}");
}

/// Issue 9: a secret's placeholder is the same from run to run for one
/// user (data dir), name and binding, so an agent's "use this key?"
/// approval sticks; another binding or another user gets another one; the
/// key it is derived from cannot be read inside; a corrupt key is refused
/// (exit 125, naming the file and the fix), never replaced silently.
#[test]
fn placeholder_is_stable_per_user_name_and_binding() {
    let d = scratch();
    let data = d.path().join("data");
    let other_user = d.path().join("data2");
    let echo = |data: &Path, binding: &str, script: &str| {
        run(
            d.path(),
            &[
                ("XDG_DATA_HOME", data.to_str().unwrap()),
                ("X", "sk-real-stable-value"),
            ],
            &args(&[
                "--secret",
                "X",
                "--secret-host",
                binding,
                "--",
                "sh",
                "-c",
                script,
                data.to_str().unwrap(),
            ]),
        )
    };
    let first = echo(&data, "X=example.test", "echo $X");
    assert_eq!(first.code, 0, "{first:?}");
    let p = first.stdout.trim().to_string();
    assert!(
        p.starts_with("ZEROBOX_SECRET_") && p.len() == "ZEROBOX_SECRET_".len() + 32,
        "{first:?}"
    );
    assert!(!p.contains("sk-real"), "{first:?}");
    let second = echo(&data, "X=example.test", "echo $X");
    assert_eq!(
        second.stdout.trim(),
        p,
        "not stable across runs: {second:?}"
    );
    let other_host = echo(&data, "X=other.test", "echo $X");
    assert_eq!(other_host.code, 0, "{other_host:?}");
    assert_ne!(other_host.stdout.trim(), p, "{other_host:?}");
    let two_hosts = echo(&data, "X=example.test,other.test", "echo $X");
    assert_eq!(two_hosts.code, 0, "{two_hosts:?}");
    assert_ne!(two_hosts.stdout.trim(), p, "{two_hosts:?}");
    assert_ne!(two_hosts.stdout.trim(), other_host.stdout.trim());
    let user2 = echo(&other_user, "X=example.test", "echo $X");
    assert_eq!(user2.code, 0, "{user2:?}");
    assert_ne!(
        user2.stdout.trim(),
        p,
        "another user's placeholder: {user2:?}"
    );
    // The key: 32 bytes, owner-only, not readable inside.
    let key = data.join("zerobox/placeholder/key");
    let meta = std::fs::metadata(&key).expect("placeholder key created");
    assert_eq!(meta.len(), 32);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let inside = echo(
        &data,
        "X=example.test",
        "cat $0/zerobox/placeholder/key >/dev/null 2>&1 && echo READ || echo denied",
    );
    assert_eq!(inside.stdout, "denied\n", "{inside:?}");
    // Corrupt (wrong size): refused, the file and the fix named.
    std::fs::write(&key, b"truncated").unwrap();
    let bad = echo(&data, "X=example.test", "echo $X");
    assert_eq!(bad.code, 125, "{bad:?}");
    assert!(
        bad.stderr.contains(&key.display().to_string()) && bad.stderr.contains("delete it"),
        "{bad:?}"
    );
    assert!(bad.stdout.is_empty(), "{bad:?}");
}

/// The read deny zerobox puts on a `--secret NAME=@FILE` source is by
/// path: another hard link to the same file (made before the run, in the
/// project or anywhere readable) reads the real value inside. A source
/// file with more than one link is refused before anything runs.
#[test]
fn secret_file_with_another_hard_link_is_refused() {
    let d = scratch();
    let tokdir = d.path().join("tokens");
    std::fs::create_dir(&tokdir).unwrap();
    let tok = tokdir.join("k");
    std::fs::write(&tok, "sk-hardlink-secret-321\n").unwrap();
    std::fs::hard_link(&tok, d.path().join("visible")).unwrap();
    let r = run(
        d.path(),
        &[],
        &args(&[
            "--secret",
            &format!("K=@{}", tok.display()),
            "--secret-host",
            "K=a.test",
            "--",
            "sh",
            "-c",
            "cat visible",
        ]),
    );
    assert!(
        !r.stdout.contains("sk-hardlink-secret-321"),
        "the secret read through a hard link: {r:?}"
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("hard link"), "{r:?}");
}
