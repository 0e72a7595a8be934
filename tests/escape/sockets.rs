//! Socket attacks: host unix sockets (pathname and abstract), raw and
//! packet sockets, odd families, and the host's loopback (TCP, UDP).

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use crate::common::{real, scratch};
use crate::util::{expect, is_root, py, py_fallback, unique};

/// A host unix listener; `pending()` says whether anyone connected.
struct Listener {
    l: UnixListener,
    path: Option<std::path::PathBuf>,
}

impl Listener {
    fn bind(path: &Path) -> Listener {
        let l = UnixListener::bind(path).expect("bind unix socket");
        l.set_nonblocking(true).unwrap();
        Listener {
            l,
            path: Some(path.to_path_buf()),
        }
    }
    fn pending(&self) -> bool {
        match self.l.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn connect_script(path: &str) -> String {
    format!(
        r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
t("connect", lambda: s.connect({path:?}))
"#
    )
}

/// Threat: talk to a host daemon through its unix socket outside /run (an
/// agent socket in a project or home directory, ~/.docker/run/docker.sock
/// of Docker Desktop, an IDE or ssh-agent socket): a full escape when the
/// daemon runs commands. The host filesystem is read-only, but connect(2)
/// on a socket is not a write. Stopped by: zerobox reads the host's
/// listening sockets from /proc/net/unix before the run and masks each the
/// policy does not allow (ECONNREFUSED); Landlock's ResolveUnix right
/// (ABI >= 9) is the second wall where the kernel has it.
#[test]
fn host_unix_socket_outside_run_is_unreachable() {
    let sock_dir = scratch();
    let sock = real(sock_dir.path()).join("agent.sock");
    let l = Listener::bind(&sock);
    let cwd = scratch();
    let r = py(
        &real(cwd.path()),
        None,
        &[],
        &connect_script(sock.to_str().unwrap()),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.stdout.contains("connect=OK"),
        "the sandbox connected to a host unix socket:\n{r:?}"
    );
    expect(&r, "connect", "ECONNREFUSED");
    assert!(!l.pending(), "the host daemon got a connection");
    // A socket inside the project (cwd) the command may write: masked too.
    let proj = scratch();
    let p = real(proj.path());
    let inner = p.join("run/app.sock");
    std::fs::create_dir(p.join("run")).unwrap();
    let l2 = Listener::bind(&inner);
    let r = py(
        &p,
        None,
        &["--allow-write=."],
        &connect_script(inner.to_str().unwrap()),
    );
    expect(&r, "connect", "ECONNREFUSED");
    assert!(!l2.pending(), "the project's daemon got a connection");
}

/// Control for the case above and for `--allow-unix-socket`: a socket
/// named by the flag is reachable (so the failures above and below are the
/// sandbox's doing, not a broken client).
#[test]
fn allow_unix_socket_reaches_the_named_socket() {
    let sock_dir = scratch();
    let sock = real(sock_dir.path()).join("allowed.sock");
    let l = Listener::bind(&sock);
    let cwd = scratch();
    let flag = format!("--allow-unix-socket={}", sock.display());
    let r = py(
        &real(cwd.path()),
        None,
        &[&flag],
        &connect_script(sock.to_str().unwrap()),
    );
    expect(&r, "connect", "OK");
    assert!(l.pending());
}

/// Threat: reach a host daemon's socket under /run (docker.sock, dbus,
/// systemd, containerd). Stopped by: the mount layer masks every socket
/// found under /run with an empty file (ECONNREFUSED: not a socket).
/// Root only (creating /run/zb-test-*.sock needs it); with
/// `--allow-unix-socket` the same socket is reachable.
#[test]
fn host_unix_socket_under_run_is_masked() {
    if !is_root() {
        eprintln!("SKIP: only root can create a socket under /run");
        return;
    }
    let sock = format!("/run/zb-test-{}.sock", unique());
    let l = Listener::bind(Path::new(&sock));
    let cwd = scratch();
    let r = py(&real(cwd.path()), None, &[], &connect_script(&sock));
    expect(&r, "connect", "ECONNREFUSED");
    assert!(!l.pending(), "the host daemon got a connection");
    let flag = format!("--allow-unix-socket={sock}");
    let r = py(&real(cwd.path()), None, &[&flag], &connect_script(&sock));
    expect(&r, "connect", "OK");
    assert!(l.pending());
}

/// Threat: connect to a host listener on an abstract unix socket
/// (`\0name`: no file, so no mount can mask it; X11, dbus and some agents
/// use them). Stopped by: the network namespace (abstract names are per
/// netns: ECONNREFUSED); Landlock scoping (ABI >= 6) is the second wall.
#[test]
fn abstract_unix_socket_of_host_is_unreachable() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("zb-test-{}", unique());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = UnixListener::bind_addr(&addr).unwrap();
    l.set_nonblocking(true).unwrap();
    let l = Listener { l, path: None };
    // The primitive: the host can connect.
    let c = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    assert!(l.pending());
    drop(c);
    let cwd = scratch();
    let r = py(
        &real(cwd.path()),
        None,
        &[],
        &format!(
            r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
t("connect", lambda: s.connect("\0{name}"))
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
t("sendto", lambda: d.sendto(b"x", "\0{name}"))
"#
        ),
    );
    expect(&r, "connect", "ECONNREFUSED");
    expect(&r, "sendto", "ECONNREFUSED");
    assert!(!l.pending(), "the host listener got a connection");
}

/// Threat: the same abstract socket in the fallback mode (no network
/// namespace: the name is visible). Stopped by: Landlock abstract unix
/// socket scoping (ABI >= 6): EPERM.
#[test]
fn fallback_mode_abstract_socket_is_scoped() {
    if crate::util::landlock_abi() < 6 {
        crate::common::skip("Landlock ABI < 6 has no abstract socket scoping");
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = format!("zb-test-{}", unique());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = UnixListener::bind_addr(&addr).unwrap();
    l.set_nonblocking(true).unwrap();
    let l = Listener { l, path: None };
    let cwd = scratch();
    let r = py_fallback(
        &real(cwd.path()),
        &[],
        &format!(
            r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
t("connect", lambda: s.connect("\0{name}"))
"#
        ),
    );
    assert!(r.stderr.contains("Landlock + seccomp only"), "{r:?}");
    expect(&r, "connect", "EPERM");
    assert!(!l.pending(), "the host listener got a connection");
}

/// Threat: raw IP sockets (spoofing, sniffing), packet sockets (sniff or
/// inject frames), SOCK_PACKET, and netlink families other than route
/// (audit, uevent, sock_diag, xfrm, nf), plus rarely used families with a
/// history of kernel bugs (AF_ALG, AF_VSOCK, AF_BLUETOOTH, AF_KEY).
/// Stopped by: seccomp (EPERM for raw/packet types, EAFNOSUPPORT for the
/// families); NETLINK_ROUTE stays allowed (getaddrinfo needs it).
#[test]
fn raw_packet_and_exotic_sockets_are_refused() {
    let cwd = scratch();
    let r = py(
        &real(cwd.path()),
        None,
        &[],
        r#"
def mk(name, fam, typ, proto=0):
    t(name, lambda: socket.socket(fam, typ, proto).close())
mk("raw4", socket.AF_INET, socket.SOCK_RAW, 1)
mk("raw6", socket.AF_INET6, socket.SOCK_RAW, 58)
mk("raw4_tcp", socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 6)
mk("sock_packet", socket.AF_INET, 10, 0)
mk("packet", 17, socket.SOCK_RAW, 0x0300)
mk("packet_dgram", 17, socket.SOCK_DGRAM, 0x0300)
mk("nl_audit", 16, socket.SOCK_RAW, 9)
mk("nl_uevent", 16, socket.SOCK_DGRAM, 15)
mk("nl_diag", 16, socket.SOCK_RAW, 4)
mk("nl_xfrm", 16, socket.SOCK_RAW, 6)
mk("nl_netfilter", 16, socket.SOCK_RAW, 12)
mk("alg", 38, socket.SOCK_SEQPACKET, 0)
mk("vsock", 40, socket.SOCK_STREAM, 0)
mk("bluetooth", 31, socket.SOCK_RAW, 0)
mk("key", 15, socket.SOCK_RAW, 2)
mk("nl_route", 16, socket.SOCK_RAW, 0)
mk("unix", socket.AF_UNIX, socket.SOCK_STREAM, 0)
"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["raw4", "raw6", "raw4_tcp", "sock_packet"] {
        expect(&r, n, "EPERM");
    }
    for n in [
        "packet",
        "packet_dgram",
        "nl_audit",
        "nl_uevent",
        "nl_diag",
        "nl_xfrm",
        "nl_netfilter",
        "alg",
        "vsock",
        "bluetooth",
        "key",
    ] {
        expect(&r, n, "EAFNOSUPPORT");
    }
    expect(&r, "nl_route", "OK");
    expect(&r, "unix", "OK");
}

/// Threat: send UDP to a service listening on the host's 127.0.0.1 (DNS
/// resolvers, metrics agents, syslog). Stopped by: the network namespace
/// (its own lo: the datagram never reaches the host).
#[test]
fn udp_to_host_loopback_never_arrives() {
    let host = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    host.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // The primitive: from the host it arrives.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.send_to(b"probe", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(host.recv_from(&mut buf).unwrap().0, 5);
    let cwd = scratch();
    let r = py(
        &real(cwd.path()),
        None,
        &[],
        &format!(
            r#"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    try:
        u.sendto(b"zb-escape", ("127.0.0.1", {port}))
    except OSError:
        pass
p("sent", "done")
"#
        ),
    );
    expect(&r, "sent", "done");
    host.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    match host.recv_from(&mut buf) {
        Ok((n, from)) => panic!(
            "datagram from the sandbox reached the host: {:?} from {from}",
            &buf[..n]
        ),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        ),
    }
}

/// Threat: connect to a TCP service on the host's 127.0.0.1 (databases,
/// dev servers, cloud metadata proxies, the Docker API on tcp). Stopped
/// by: Landlock (TCP connect denied: EACCES) and the network namespace
/// (nothing listens on the sandbox's own lo).
#[test]
fn tcp_to_host_loopback_is_refused() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let cwd = scratch();
    let r = py(
        &real(cwd.path()),
        None,
        &[],
        &format!(
            r#"
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(2)
t("connect", lambda: s.connect(("127.0.0.1", {port})))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s6.settimeout(2)
t("connect6", lambda: s6.connect(("::1", {port})))
b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t("bind", lambda: b.bind(("127.0.0.1", 0)))
"#
        ),
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "connect", "EACCES");
    expect(&r, "connect6", "EACCES");
    expect(&r, "bind", "EACCES");
    match l.accept() {
        Ok((_, from)) => panic!("the sandbox reached the host listener from {from}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock),
    }
}

/// Threat: find a way out through another network interface (a host NIC, a
/// bridge, a VPN tunnel). Stopped by: the network namespace: only `lo`.
#[test]
fn only_loopback_interface_exists() {
    let cwd = scratch();
    let r = py(
        &real(cwd.path()),
        None,
        &[],
        r#"
p("ifaces", [n for _, n in socket.if_nameindex()])
p("sysfs", sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else ["lo"])
p("proc_dev", [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]])
"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    expect(&r, "ifaces", "['lo']");
    expect(&r, "sysfs", "['lo']");
    expect(&r, "proc_dev", "['lo']");
    if crate::common::have("ip") {
        let r = crate::util::sh(&real(cwd.path()), None, &[], "ip -o link | cut -d: -f2");
        assert_eq!(r.stdout.trim(), "lo", "{r:?}");
    }
}

/// Threat: in the fallback mode (no network namespace) use the host's
/// network directly, TCP or UDP. Stopped by: seccomp refusing AF_INET and
/// AF_INET6 sockets (EACCES) when no network was granted.
#[test]
fn fallback_mode_has_no_inet_sockets() {
    let host = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let cwd = scratch();
    let r = py_fallback(
        &real(cwd.path()),
        &[],
        &format!(
            r#"
t("tcp", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
t("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", {port})))
t("tcp6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
"#
        ),
    );
    assert!(r.stderr.contains("Landlock + seccomp only"), "{r:?}");
    for n in ["tcp", "udp", "tcp6"] {
        expect(&r, n, "EACCES");
    }
    host.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(host.recv_from(&mut buf).is_err(), "datagram arrived");
}

/// A daemon's socket directory full of listeners (here 12) is hidden as a
/// whole (one mount instead of twelve): every socket is unreachable.
#[test]
fn directory_of_host_sockets_is_unreachable() {
    let dir = scratch();
    let d = real(dir.path());
    let listeners: Vec<Listener> = (0..12)
        .map(|i| Listener::bind(&d.join(format!("s{i}.sock"))))
        .collect();
    let cwd = scratch();
    for i in [0, 7, 11] {
        let sock = d.join(format!("s{i}.sock"));
        let r = py(
            &real(cwd.path()),
            None,
            &[],
            &connect_script(sock.to_str().unwrap()),
        );
        assert!(!r.stdout.contains("connect=OK"), "{r:?}");
    }
    assert!(
        listeners.iter().all(|l| !l.pending()),
        "a host daemon got a connection"
    );
}

/// Not an attack but a refusal the machine could cause: a host program
/// whose listener comes and goes (a daemon restarting, another test's
/// stand-in closing) while a run masks it. The socket found at start is
/// unlinked between the plan and the mask (the bind onto the unlinked
/// entry fails) or just after the mask (the unlink detaches it and making
/// it read-only fails); both refused the run with exit 125 about 1 run in
/// 40 before. A socket that is gone has nothing to connect to, and one
/// bound again at the name is a socket made after the start (see
/// docs/threat-model.md), so the run goes on; every other failure of a
/// mask still refuses it.
#[test]
fn a_host_socket_that_comes_and_goes_does_not_refuse_the_run() {
    let s = scratch();
    let d = real(s.path());
    let path = d.join(format!("flip-{}.sock", unique()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&path);
                let l = UnixListener::bind(&path).expect("bind");
                std::thread::sleep(Duration::from_micros(500));
                drop(l);
                let _ = std::fs::remove_file(&path);
            }
        })
    };
    let mut refused = Vec::new();
    for _ in 0..120 {
        let r = crate::util::run(&d, None, &[], &["true"]);
        if r.code != 0 {
            refused.push(r);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(
        refused.is_empty(),
        "{} of 120 runs refused: {:?}",
        refused.len(),
        refused.first()
    );
}
