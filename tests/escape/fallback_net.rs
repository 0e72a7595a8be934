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
const NET: &[&str] = &["--allow-net=example.com"];

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
