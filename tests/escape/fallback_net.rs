//! Network attacks on the Landlock-only fallback (user namespaces
//! simulated away), where the command shares the host's network stack and
//! only Landlock and seccomp stand between it and the host's loopback.

use std::io::ErrorKind;
use std::net::TcpListener;

use crate::common::{real, scratch};
use crate::util::{expect, py, py_fallback};

/// A host loopback listener standing in for "outside": anything the
/// sandbox connects to directly, not through the proxy.
fn outside() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[track_caller]
fn assert_not_reached(l: &TcpListener) {
    match l.accept() {
        Ok((_, from)) => panic!("the sandbox reached the outside listener from {from}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock),
    }
}

/// The flags that give the fallback a proxy: network granted, and the
/// weaker fallback network accepted explicitly (see
/// `weak_fallback_network_needs_the_flag`).
const NET: &[&str] = &["--allow-net=example.com", "--allow-weak-net"];

/// The script: MPTCP, SCTP and other protocols on inet sockets, each
/// connecting to the outside listener on `port`.
fn protocol_script(port: u16) -> String {
    format!(
        r#"
def conn(fam, typ, proto, addr):
    s = socket.socket(fam, typ, proto)
    s.settimeout(3)
    s.connect(addr)
t("mptcp", lambda: conn(socket.AF_INET, socket.SOCK_STREAM, 262, ("127.0.0.1", {port})))
t("mptcp6", lambda: conn(socket.AF_INET6, socket.SOCK_STREAM, 262, ("::ffff:127.0.0.1", {port})))
t("sctp_stream", lambda: conn(socket.AF_INET, socket.SOCK_STREAM, 132, ("127.0.0.1", {port})))
t("sctp_seqpacket", lambda: socket.socket(socket.AF_INET, socket.SOCK_SEQPACKET, 132))
t("udplite", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136))
t("tcp_proto", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 6).close())
"#
    )
}

/// Threat: in the fallback with network granted, Landlock lets TCP connect
/// only to the proxy's port, but its TCP rights cover IPPROTO_TCP sockets
/// only: an `IPPROTO_MPTCP` stream socket (which falls back to plain TCP
/// against a normal server) connects to any address and port, past the
/// proxy. SCTP and friends likewise. Stopped by: seccomp allows inet
/// stream sockets with protocol 0 or IPPROTO_TCP only (EPROTONOSUPPORT).
#[test]
fn fallback_mptcp_and_sctp_cannot_bypass_the_proxy() {
    let (l, port) = outside();
    let cwd = scratch();
    let r = py_fallback(&real(cwd.path()), NET, &protocol_script(port));
    assert!(r.stderr.contains("Landlock + seccomp only"), "{r:?}");
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["mptcp", "mptcp6", "sctp_stream"] {
        expect(&r, n, "EPROTONOSUPPORT");
    }
    expect(&r, "sctp_seqpacket", "EPERM");
    expect(&r, "udplite", "EPERM");
    expect(&r, "tcp_proto", "OK");
    assert_not_reached(&l);
}

/// The same protocols in the namespace mode: harmless there (only lo), and
/// refused all the same, so no program depends on them working.
#[test]
fn namespace_mode_refuses_the_same_protocols() {
    let (l, port) = outside();
    let cwd = scratch();
    let r = py(
        &real(cwd.path()),
        None,
        &["--allow-net=example.com"],
        &protocol_script(port),
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["mptcp", "mptcp6", "sctp_stream", "udplite"] {
        expect(&r, n, "EPROTONOSUPPORT");
    }
    expect(&r, "sctp_seqpacket", "EPERM");
    expect(&r, "tcp_proto", "OK");
    assert_not_reached(&l);
}

/// Threat: in the fallback, Landlock's TCP rule is per port, not per
/// address: with network granted the command connects directly to *any*
/// address on the proxy's port number (here: an outside listener made to
/// share the proxy's port, via SO_REUSEPORT-free means: the proxy's port
/// is learnt from the proxy variables and the outside listener binds the
/// same port on another loopback address). Stopped by: zerobox refuses
/// `--allow-net` and `--secret` in the fallback (exit 125, naming the
/// reason and `--allow-weak-net`) unless the user accepts the weaker mode
/// explicitly; `--strict` refuses that flag.
#[test]
fn weak_fallback_network_needs_the_flag() {
    let cwd = scratch();
    let d = real(cwd.path());
    for args in [
        &["--allow-net=example.com"][..],
        &["--allow-net"][..],
        &[
            "--secret",
            "ZB_TEST_TOKEN=not-a-real-value",
            "--secret-host",
            "ZB_TEST_TOKEN=example.com",
        ][..],
    ] {
        let r = crate::util::sh_fallback(&d, None, args, "echo RAN");
        assert_eq!(r.code, 125, "{args:?}: {r:?}");
        assert!(!r.stdout.contains("RAN"), "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("--allow-weak-net") && r.stderr.contains("per port"),
            "{args:?}: {r:?}"
        );
    }
    // --strict and the weak flag contradict each other: a usage error.
    let r = crate::util::sh_fallback(
        &d,
        None,
        &["--strict", "--allow-weak-net", "--allow-net=example.com"],
        "echo RAN",
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!r.stdout.contains("RAN"), "{r:?}");
    // Accepted explicitly: it runs, and says what it gave up.
    let r = crate::util::sh_fallback(&d, None, NET, "echo RAN");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("RAN"), "{r:?}");
    assert!(
        r.stderr.contains("any address on the proxy's port"),
        "{r:?}"
    );
    // Without network nothing changes: the fallback runs as before.
    let r = crate::util::sh_fallback(&d, None, &[], "echo RAN");
    assert_eq!(r.code, 0, "{r:?}");
    // The namespace mode needs no flag.
    let r = crate::util::sh(&d, None, &["--allow-net=example.com"], "echo RAN");
    assert_eq!(r.code, 0, "{r:?}");
}

/// The hole the flag accepts, shown (docs/network.md §1 says it; this
/// keeps the docs honest): with `--allow-weak-net` the command reaches an
/// outside listener on 127.0.0.2 bound to the proxy's port number, while
/// any other port stays refused.
#[test]
fn weak_fallback_network_reaches_any_address_on_the_proxy_port() {
    use std::io::{BufRead, BufReader, Write};
    let cwd = scratch();
    let script = format!(
        r#"{prelude}
import urllib.parse
port = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"]).port
s = socket.socket()
s.settimeout(3)
t("other_port", lambda: s.connect(("127.0.0.2", port - 1)))
p("port", port)
sys.stdin.readline()
s = socket.socket()
s.settimeout(3)
t("proxy_port_elsewhere", lambda: s.connect(("127.0.0.2", port)))
"#,
        prelude = crate::util::PRELUDE
    );
    let mut child = crate::common::zerobox()
        .current_dir(real(cwd.path()))
        .env("ZEROBOX_SIMULATE_MISSING", "userns")
        .args(NET)
        .args(["--", &crate::util::python(), "-B", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn zerobox");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let port: u16 = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no port: {lines:?}");
        if let Some(p) = line.trim().strip_prefix("port=") {
            break p.parse().unwrap();
        }
        lines.push(line);
    };
    assert!(
        lines.iter().any(|l| l.trim() == "other_port=EACCES"),
        "{lines:?}"
    );
    let l = TcpListener::bind(("127.0.0.2", port)).expect("bind 127.0.0.2 on the proxy port");
    l.set_nonblocking(true).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains("proxy_port_elsewhere=OK"), "{rest}");
    assert!(l.accept().is_ok(), "the outside listener saw nothing");
}
