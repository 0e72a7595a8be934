//! Transparent egress end to end (docs/network.md, "Transparent egress"):
//! clients that ignore the proxy variables (`curl --noproxy '*'`, Node 20's
//! `fetch`, `getent`, a raw socket) reach allowed hosts through the
//! sandbox's DNS and the capture listeners, with the same allowlist,
//! secret injection and net log; everything else still fails. The
//! upstream is a python3 HTTPS server on 127.0.0.1 with a test CA, reached
//! through `--resolve`; nothing here talks to any other address.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{scratch, zerobox, Run};

const ALLOWED: &str = "api.egress.test";
const DENIED: &str = "denied.egress.test";

/// An HTTPS upstream answering `ok auth=match|other` (whether the
/// Authorization header carried `EXPECTED`, never echoing it).
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

const SERVER_PY: &str = r#"
import http.server, ssl, sys, os
want = os.environ["EXPECTED"]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        auth = "match" if want in str(self.headers.get("Authorization")) else "other"
        out = ("ok auth=%s\n" % auth).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

struct Fixture {
    dir: tempfile::TempDir,
    ca: PathBuf,
    up: Upstream,
}

fn fixture() -> Fixture {
    let dir = scratch();
    let (ca, cert, key) = common::test_pki_for(dir.path(), &[ALLOWED, DENIED]);
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER_PY).unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&cert)
        .arg(&key)
        .env("EXPECTED", "sk-egress-value-42")
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("upstream port");
    Fixture {
        dir,
        ca,
        up: Upstream { child, port },
    }
}

impl Fixture {
    fn log(&self) -> PathBuf {
        self.dir.path().join("net.jsonl")
    }

    /// `zerobox --allow-net=ALLOWED:PORT` with both names pinned to the
    /// upstream, then `sh -c script`.
    fn run(&self, extra: &[&str], env: &[(&str, &str)], script: &str) -> Run {
        let port = self.up.port;
        let mut cmd = zerobox();
        cmd.current_dir(self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg(format!("--allow-net={ALLOWED}:{port}"))
            .args(["--resolve", &format!("{ALLOWED}:{port}:127.0.0.1")])
            .args(["--resolve", &format!("{DENIED}:{port}:127.0.0.1")])
            .args(["--ca-cert", &self.ca.display().to_string()])
            .args(["--net-log", &self.log().display().to_string()])
            .args(extra)
            .args(["--", "sh", "-c", script]);
        Run::from(cmd.output().expect("spawn zerobox"))
    }

    fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("net log line"))
            .collect()
    }
}

fn need(tool: &str) -> bool {
    if common::have(tool) {
        return true;
    }
    common::skip(&format!("{tool} is not installed"));
    false
}

/// Whether a `getent hosts` line starts with a synthetic address.
fn synthetic(line: &str) -> bool {
    line.starts_with("198.18.") || line.starts_with("2001:2::")
}

fn lines_of<'a>(
    log: &'a [serde_json::Value],
    kind: &str,
    host: &str,
) -> Vec<&'a serde_json::Value> {
    log.iter()
        .filter(|l| l["kind"] == kind && l["host"] == host)
        .collect()
}

/// Whether the net log has a `kind` line for `host` refused as `reason`.
fn refused(log: &[serde_json::Value], kind: &str, host: &str, reason: &str) -> bool {
    log.iter()
        .any(|l| l["kind"] == kind && l["host"] == host && l["reason"] == reason)
}

/// Node's `fetch`, no proxy setting, after `prelude`: prints `prelude`'s
/// own lines, then the allowed host's answer (sending the secret's
/// placeholder) and the denied host's error code. The secret is bound to
/// the allowed host.
fn node_fetch(f: &Fixture, prelude: &str) -> Run {
    let port = f.up.port;
    let js = format!(
        "const go = (u, h) => fetch(u, {{headers: h}}).then(r => r.text()).catch(e => 'failed ' + (e.cause && e.cause.code));\n\
         (async () => {{\n\
           {prelude}\n\
           console.log(await go('https://{ALLOWED}:{port}/', {{authorization: 'Bearer ' + process.env.EGRESS_TOKEN}}));\n\
           console.log(await go('https://{DENIED}:{port}/', {{}}));\n\
         }})();"
    );
    std::fs::write(f.dir.path().join("f.js"), js).unwrap();
    f.run(
        &[
            "--secret",
            "EGRESS_TOKEN",
            "--secret-host",
            &format!("EGRESS_TOKEN={ALLOWED}:{port}"),
        ],
        &[("EGRESS_TOKEN", "sk-egress-value-42")],
        "unset HTTPS_PROXY https_proxy HTTP_PROXY http_proxy ALL_PROXY all_proxy NODE_USE_ENV_PROXY; node f.js",
    )
}

/// `curl -4 --noproxy '*'` (it dials the address itself) reaches the
/// allowed host through DNS + capture, and cannot reach the denied one,
/// whose name does not even resolve. (IPv6: the next test.)
#[test]
fn curl_without_the_proxy_reaches_only_allowed_hosts() {
    if !need("curl") {
        return;
    }
    let f = fixture();
    let port = f.up.port;
    let r = f.run(
        &[],
        &[],
        &format!(
            "curl -4 -sS --cacert ca.pem --noproxy '*' -w ' ip=%{{remote_ip}}\\n' https://{ALLOWED}:{port}/; \
             curl -sS --cacert ca.pem --noproxy '*' -m 5 https://{DENIED}:{port}/ || echo denied-rc=$?"
        ),
    );
    assert!(
        r.stdout.contains("ok auth=other\n ip=198.18."),
        "allowed host through capture: {r:?}"
    );
    assert!(
        r.stdout.contains("denied-rc=6"),
        "denied name unresolved: {r:?}"
    );
    let log = f.log_lines();
    let cap = lines_of(&log, "capture", ALLOWED);
    assert_eq!(cap.len(), 1, "{log:?}");
    assert_eq!(cap[0]["decision"], "allow");
    assert_eq!(cap[0]["addr"], format!("127.0.0.1:{port}"));
    assert!(lines_of(&log, "dns", DENIED)
        .iter()
        .all(|l| l["decision"] == "deny"));
    assert!(!lines_of(&log, "dns", DENIED).is_empty(), "{log:?}");
    assert!(r.stderr.contains(DENIED), "in the summary: {r:?}");
}

/// `getent hosts` (the libc resolver, /etc/resolv.conf) resolves an
/// allowed name to a synthetic address and not a denied one. No query is
/// forwarded: an allowed name that nothing pins and that exists nowhere
/// still gets its synthetic answer (nothing was asked upstream; the real
/// lookup would only happen on a connection), and a refused name gets
/// NXDOMAIN and a `dns` deny line in the net log.
#[test]
fn getent_resolves_allowed_names_only_and_nothing_is_forwarded() {
    let f = fixture();
    // The same question over TCP (RFC 7766 framing).
    let name: String = ALLOWED
        .split('.')
        .map(|l| format!("\\x{:02x}{l}", l.len()))
        .collect();
    std::fs::write(
        f.dir.path().join("tcp_dns.py"),
        format!(
            "import socket, struct\n\
             q = b'\\x12\\x34\\x01\\x00\\x00\\x01' + bytes(6) + b'{name}\\x00\\x00\\x01\\x00\\x01'\n\
             s = socket.create_connection(('127.0.0.1', 53), timeout=5)\n\
             s.sendall(struct.pack('>H', len(q)) + q)\n\
             r = s.recv(512)\n\
             print('tcp-dns', socket.inet_ntoa(r[-4:]))\n"
        ),
    )
    .unwrap();
    let r = f.run(
        &["--allow-net=nowhere.invalid"],
        &[],
        &format!(
            "getent hosts {ALLOWED}; getent hosts nowhere.invalid; \
             getent hosts {DENIED} || echo denied-rc=$?; \
             getent hosts unknown.example || echo unknown-rc=$?; cat /etc/resolv.conf; \
             python3 tcp_dns.py"
        ),
    );
    assert!(r.stdout.contains("tcp-dns 198.18."), "DNS over TCP: {r:?}");
    // `getent hosts` asks AAAA first: the IPv6 twin when the sandbox has
    // IPv6, else the IPv4 address.
    let out: Vec<&str> = r.stdout.lines().collect();
    assert!(synthetic(out[0]) && out[0].ends_with(ALLOWED), "{r:?}");
    assert!(
        synthetic(out[1]) && out[1].ends_with("nowhere.invalid"),
        "{r:?}"
    );
    assert_ne!(
        out[0].split_whitespace().next(),
        out[1].split_whitespace().next()
    );
    assert!(
        r.stdout.contains("denied-rc=2") && r.stdout.contains("unknown-rc=2"),
        "{r:?}"
    );
    assert!(r.stdout.contains("nameserver 127.0.0.1"), "{r:?}");
    let log = f.log_lines();
    assert!(
        !lines_of(&log, "dns", "unknown.example").is_empty(),
        "{log:?}"
    );
    // Answering a query is not a connection: nothing was resolved or
    // connected for the allowed names.
    assert!(lines_of(&log, "capture", ALLOWED).is_empty(), "{log:?}");
    assert_eq!(r.code, 0, "{r:?}");
}

/// Node 20's `fetch` ignores the proxy variables. With transparent egress
/// it reaches the allowed host, gets the secret swapped in at a bound
/// host (intercepted: the zerobox CA is trusted through
/// NODE_EXTRA_CA_CERTS), and fails for a denied one.
#[test]
fn node_fetch_without_proxy_settings_works_for_allowed_hosts() {
    if !need("node") {
        return;
    }
    let f = fixture();
    let r = node_fetch(&f, "");
    assert_eq!(
        r.stdout, "ok auth=match\n\nfailed ENOTFOUND\n",
        "secret injected at the bound host, denied host unresolved: {r:?}"
    );
    let log = f.log_lines();
    let hit = log
        .iter()
        .find(|l| l["host"] == ALLOWED && l["kind"] == "intercept")
        .unwrap_or_else(|| panic!("intercepted request logged: {log:?}"));
    assert_eq!(hit["secrets"][0], "EGRESS_TOKEN");
}

/// A raw socket to a synthetic address nobody resolved gets nothing, a
/// captured port on the sandbox's own loopback gets nothing, an
/// uncaptured port is refused; the proxy-variable path still works in
/// the same run.
#[test]
fn raw_sockets_to_unknown_addresses_fail_and_the_proxy_still_works() {
    if !need("curl") {
        return;
    }
    let f = fixture();
    let port = f.up.port;
    let py = format!(
        "import socket\n\
         for h, p in [('198.18.0.200', {port}), ('127.0.0.1', {port}), ('198.18.0.1', 9)]:\n\
         \x20 s = socket.socket(); s.settimeout(3)\n\
         \x20 try:\n\
         \x20   s.connect((h, p)); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(h, p, 'got', len(s.recv(100)))\n\
         \x20 except OSError as e:\n\
         \x20   print(h, p, 'failed')\n"
    );
    std::fs::write(f.dir.path().join("raw.py"), py).unwrap();
    let r = f.run(
        &[],
        &[],
        &format!(
            "getent hosts {ALLOWED} >/dev/null; python3 raw.py; \
             curl -sS --cacert ca.pem https://{ALLOWED}:{port}/"
        ),
    );
    let got: Vec<&str> = r.stdout.lines().collect();
    for l in &got[..3] {
        assert!(l.ends_with("got 0") || l.ends_with("failed"), "{r:?}");
    }
    assert_eq!(
        got.get(3).copied(),
        Some("ok auth=other"),
        "proxy path: {r:?}"
    );
    let log = f.log_lines();
    assert!(log
        .iter()
        .any(|l| l["kind"] == "capture" && l["host"] == "198.18.0.200" && l["decision"] == "deny"));
    assert!(log
        .iter()
        .any(|l| l["kind"] == "connect" && l["host"] == ALLOWED));
}

/// The name dialled is the name TLS must be for: a ClientHello for
/// another name sent to an allowed host's synthetic address (domain
/// fronting) is refused and logged; the right name passes.
#[test]
fn tls_for_another_name_on_a_captured_connection_is_refused() {
    let f = fixture();
    let port = f.up.port;
    let py = format!(
        "import socket, ssl\n\
         addr = socket.gethostbyname('{ALLOWED}')\n\
         for sni in ['{DENIED}', '{ALLOWED}']:\n\
         \x20 ctx = ssl.create_default_context(cafile='ca.pem')\n\
         \x20 try:\n\
         \x20   s = ctx.wrap_socket(socket.create_connection((addr, {port}), timeout=5), server_hostname=sni)\n\
         \x20   s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(sni, s.recv(100).split(b'\\r\\n')[0].decode())\n\
         \x20 except OSError as e:\n\
         \x20   print(sni, 'failed')\n"
    );
    std::fs::write(f.dir.path().join("sni.py"), py).unwrap();
    let r = f.run(&[], &[], "python3 sni.py");
    assert_eq!(
        r.stdout,
        format!("{DENIED} failed\n{ALLOWED} HTTP/1.1 200 OK\n"),
        "{r:?}"
    );
    let log = f.log_lines();
    assert!(refused(&log, "capture", ALLOWED, "sni-mismatch"), "{log:?}");
}

/// `explain` says what transparent egress does in namespace mode (which
/// ports are captured), and that the Landlock-only fallback has none.
#[test]
fn explain_says_where_transparent_egress_exists() {
    let d = scratch();
    let ns = common::run_in(
        d.path(),
        &[
            "explain",
            "--allow-net=a.test,db.test:5432,any.test:*,dns.test:53",
            "--",
            "true",
        ],
    );
    assert!(
        ns.stdout
            .contains("transparent egress: allowed names resolve inside"),
        "{ns:?}"
    );
    // The captured ports: 80 and 443, and each port a rule names (not 53,
    // DNS's own); `:*` adds none.
    assert!(
        ns.stdout.contains(
            "198.18.0.0/15 and 2001:2::/48, nothing forwarded upstream); connections to them on TCP ports 80, 443, 5432 are captured"
        ),
        "{ns:?}"
    );
    assert!(
        ns.stdout.contains(
            "other ports (host:* or a bare --allow-net) only through the proxy variables"
        ),
        "{ns:?}"
    );
    let out = zerobox()
        .current_dir(d.path())
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .args([
            "explain",
            "--allow-weak-net",
            "--allow-net=a.test",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let fb = Run::from(out);
    assert!(
        fb.stdout
            .contains("transparent egress: not available without a network namespace"),
        "{fb:?}"
    );
}

/// An allow rule on port 53 (or the proxy's port) is not captured: the
/// DNS listener already holds 53 on loopback, and the run must not fail
/// on the clash; the other captured names still work.
#[test]
fn a_rule_on_port_53_does_not_clash_with_the_dns_listener() {
    if !need("curl") {
        return;
    }
    let f = fixture();
    let port = f.up.port;
    let r = f.run(
        &["--allow-net=dns.egress.test:53"],
        &[],
        &format!("curl -sS --cacert ca.pem --noproxy '*' https://{ALLOWED}:{port}/"),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "ok auth=other\n"), "{r:?}");
}

/// What zerobox says when the sandbox has no IPv6 (see docs/network.md).
const NO_V6: &str = "transparent egress: IPv6 is disabled inside the sandbox";

/// The sandbox has IPv6 capture in this run, or the test skips (which
/// fails under ZEROBOX_REQUIRE_ALL=1: CI has IPv6 in new namespaces).
fn had_v6(r: &Run) -> bool {
    if r.stderr.contains(NO_V6) {
        common::skip("no IPv6 inside the sandbox on this machine");
        return false;
    }
    true
}

/// IPv6 clients get the allowed name's IPv6 twin (2001:2::/48) and are
/// captured exactly like IPv4 ones: `getent ahostsv6`, `curl -6
/// --noproxy '*'` reach the allowed host, the denied name does not
/// resolve, a ClientHello for another name is refused, and raw sockets
/// to a synthetic address nobody resolved, to `::1` on a captured port,
/// or to any other IPv6 address get nothing.
#[test]
fn ipv6_clients_reach_allowed_hosts_and_nothing_else() {
    if !need("curl") {
        return;
    }
    let f = fixture();
    let port = f.up.port;
    let py = format!(
        "import socket, ssl\n\
         addr = socket.getaddrinfo('{ALLOWED}', {port}, socket.AF_INET6)[0][4][0]\n\
         print('aaaa', addr)\n\
         for h, p in [('2001:2::4242', {port}), ('::1', {port}), ('2001:db8::1', {port}), (addr, 9)]:\n\
         \x20 s = socket.socket(socket.AF_INET6); s.settimeout(3)\n\
         \x20 try:\n\
         \x20   s.connect((h, p)); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(h, p, 'got', len(s.recv(100)))\n\
         \x20 except OSError as e:\n\
         \x20   print(h, p, 'failed')\n\
         ctx = ssl.create_default_context(cafile='ca.pem')\n\
         try:\n\
         \x20 s = ctx.wrap_socket(socket.create_connection((addr, {port}), timeout=5), server_hostname='{DENIED}')\n\
         \x20 s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print('fronted', s.recv(100))\n\
         except OSError as e:\n\
         \x20 print('fronted failed')\n"
    );
    std::fs::write(f.dir.path().join("raw6.py"), py).unwrap();
    let r = f.run(
        &[],
        &[],
        &format!(
            "getent ahostsv6 {ALLOWED} | head -1; \
             getent ahostsv6 {DENIED} || echo denied-ahostsv6-rc=$?; \
             curl -6 -sS --cacert ca.pem --noproxy '*' -w ' ip=%{{remote_ip}}\\n' https://{ALLOWED}:{port}/; \
             curl -6 -sS --cacert ca.pem --noproxy '*' -m 5 https://{DENIED}:{port}/ || echo denied-rc=$?; \
             python3 raw6.py"
        ),
    );
    if !had_v6(&r) {
        return;
    }
    let out: Vec<&str> = r.stdout.lines().collect();
    assert!(
        out[0].starts_with("2001:2::") && out[0].contains(ALLOWED),
        "{r:?}"
    );
    assert_eq!(out[1], "denied-ahostsv6-rc=2", "{r:?}");
    assert!(
        r.stdout.contains("ok auth=other\n ip=2001:2::"),
        "curl -6 through capture: {r:?}"
    );
    assert!(r.stdout.contains("denied-rc=6"), "{r:?}");
    let aaaa = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("aaaa "))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(aaaa.starts_with("2001:2::"), "{r:?}");
    for (h, p) in [
        ("2001:2::4242", port),
        ("::1", port),
        ("2001:db8::1", port),
        (aaaa, 9),
    ] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{h} {p} ")))
            .unwrap_or_else(|| panic!("{h}: {r:?}"));
        assert!(
            line.ends_with("got 0") || line.ends_with("failed"),
            "{h}: {r:?}"
        );
    }
    assert!(r.stdout.contains("fronted failed"), "{r:?}");
    let log = f.log_lines();
    let cap: Vec<_> = lines_of(&log, "capture", ALLOWED)
        .into_iter()
        .filter(|l| l["decision"] == "allow")
        .collect();
    assert_eq!(cap.len(), 1, "curl -6 only: {log:?}");
    assert_eq!(cap[0]["addr"], format!("127.0.0.1:{port}"));
    for h in ["2001:2::4242", "::1"] {
        assert!(
            refused(&log, "capture", h, "not-a-resolved-name"),
            "{h}: {log:?}"
        );
    }
    assert!(refused(&log, "capture", ALLOWED, "sni-mismatch"), "{log:?}");
}

/// A client that asks A and AAAA and prefers IPv6 works: Node's `fetch`
/// with IPv6 first and no fallback to the other family (so it dials the
/// AAAA answer only), no proxy setting, gets the secret swapped in at the
/// bound host; the denied host still fails. (Node's own order is the
/// resolver's, tested above with the default settings.)
#[test]
fn node_fetch_preferring_ipv6_reaches_allowed_hosts() {
    if !need("node") {
        return;
    }
    let f = fixture();
    let r = node_fetch(
        &f,
        &format!(
            "require('dns').setDefaultResultOrder('ipv6first');\n\
             require('net').setDefaultAutoSelectFamily(false);\n\
             console.log('first ' + (await require('dns').promises.lookup('{ALLOWED}')).address);"
        ),
    );
    if !had_v6(&r) {
        return;
    }
    assert_eq!(
        r.stdout, "first 2001:2::1\nok auth=match\n\nfailed ENOTFOUND\n",
        "{r:?}"
    );
    let log = f.log_lines();
    assert!(
        log.iter()
            .any(|l| l["host"] == ALLOWED && l["kind"] == "intercept"),
        "{log:?}"
    );
}

/// A denied name is one refusal in the end-of-run summary however many
/// questions ask for it (`getent hosts` asks AAAA then A; here three
/// lookups), while the net log keeps a line per question.
#[test]
fn a_denied_name_is_one_refusal_however_often_it_is_asked() {
    let f = fixture();
    let r = f.run(
        &[],
        &[],
        &format!(
            "getent hosts {DENIED}; getent hosts {DENIED}; getent ahosts {DENIED}; \
             python3 -c \"import socket
try: socket.getaddrinfo('{DENIED}', 443)
except OSError: print('gai failed')\""
        ),
    );
    assert!(r.stdout.contains("gai failed"), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("blocked 1 connection: {DENIED} (1)")),
        "{r:?}"
    );
    let log = f.log_lines();
    let dns = lines_of(&log, "dns", DENIED);
    assert!(dns.len() >= 4, "a line per question: {log:?}");
    assert!(dns.iter().all(|l| l["decision"] == "deny"), "{log:?}");
}

/// Without IPv6 in the sandbox (simulated: as on a kernel without it, or
/// with `disable_ipv6` inherited by new namespaces) the run says so, no
/// AAAA is answered, IPv4 capture works, and IPv6 reaches nothing.
#[test]
fn without_ipv6_the_run_says_so_and_captures_ipv4_only() {
    if !need("curl") {
        return;
    }
    let f = fixture();
    let port = f.up.port;
    let r = f.run(
        &[],
        &[("ZEROBOX_SIMULATE_MISSING", "ipv6")],
        &format!(
            "getent ahostsv6 {ALLOWED} || echo v6-rc=$?; getent hosts {ALLOWED}; \
             curl -sS --cacert ca.pem --noproxy '*' -w ' ip=%{{remote_ip}}\\n' https://{ALLOWED}:{port}/; \
             python3 -c \"import socket
s = socket.socket(socket.AF_INET6); s.settimeout(3)
try: s.connect(('2001:2::1', {port})); print('v6 got', len(s.recv(10)))
except OSError: print('v6 failed')\""
        ),
    );
    assert!(r.stderr.contains(NO_V6), "announced: {r:?}");
    assert!(r.stdout.contains("v6-rc=2"), "{r:?}");
    assert!(r.stdout.contains("ok auth=other\n ip=198.18."), "{r:?}");
    let hosts = r.stdout.lines().nth(1).unwrap_or_default();
    assert!(hosts.starts_with("198.18."), "{r:?}");
    assert!(r.stdout.contains("v6 failed"), "{r:?}");
}

/// `host:*` (like a bare `--allow-net`) captures only 80, 443 and the
/// ports rules name (docs/network.md): the name resolves, a direct
/// connection on another port is refused inside the sandbox, and the
/// proxy-variable path reaches the same port.
#[test]
fn a_wildcard_port_rule_captures_only_the_named_ports() {
    if !need("curl") {
        return;
    }
    let f = fixture();
    let port = f.up.port;
    let mut cmd = zerobox();
    cmd.current_dir(f.dir.path())
        .arg(format!("--allow-net={ALLOWED}:*"))
        .args(["--resolve", &format!("{ALLOWED}:{port}:127.0.0.1")])
        .args(["--ca-cert", &f.ca.display().to_string()])
        .args([
            "--",
            "sh",
            "-c",
            &format!(
                "getent ahostsv4 {ALLOWED} | head -1; \
                 curl -sS -m 5 --cacert ca.pem --noproxy '*' https://{ALLOWED}:{port}/ || echo direct-rc=$?; \
                 curl -sS -m 5 --cacert ca.pem https://{ALLOWED}:{port}/"
            ),
        ]);
    let r = Run::from(cmd.output().expect("spawn zerobox"));
    assert!(r.stdout.starts_with("198.18."), "the name resolves: {r:?}");
    assert!(r.stdout.contains("direct-rc=7"), "port not captured: {r:?}");
    assert!(r.stdout.ends_with("ok auth=other\n"), "proxy path: {r:?}");
}

/// `doctor` predicts IPv6 capture, and its prediction matches what a run
/// gets (the run announces a missing IPv6); simulated missing, it says no.
#[test]
fn doctor_says_whether_ipv6_is_captured_and_a_run_agrees() {
    let d = scratch();
    let doc = common::run_in(d.path(), &["doctor"]);
    let line = doc
        .stdout
        .lines()
        .find(|l| l.starts_with("transparent egress over IPv6"))
        .unwrap_or_else(|| panic!("{doc:?}"))
        .to_string();
    let run = common::run_in(d.path(), &["--allow-net=a.test", "--", "true"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        line.contains(" yes ("),
        !run.stderr.contains(NO_V6),
        "doctor: {line:?}, run: {run:?}"
    );
    let out = zerobox()
        .current_dir(d.path())
        .env("ZEROBOX_SIMULATE_MISSING", "ipv6")
        .arg("doctor")
        .output()
        .unwrap();
    let sim = Run::from(out);
    assert!(
        sim.stdout
            .contains("transparent egress over IPv6       no: disabled (simulated"),
        "{sim:?}"
    );
}
