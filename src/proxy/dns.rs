//! The sandbox's DNS: answers for allowed names only, from a synthetic
//! range, never forwarded anywhere.
//!
//! Owns: the synthetic address table (name ↔ address, for this run), the
//! DNS wire format of one question and its answer, and the UDP responder
//! task.
//!
//! An allowed name (the proxy's own decision, [`super::policy::Policy::check_name`],
//! on any captured port) gets an address from [`SYNTH_NET`]/15 (A) and,
//! when the sandbox has IPv6, the address with the same index in
//! [`SYNTH_NET6`]/48 (AAAA), both stable for the run; [`super::capture`]
//! maps a connection to either back to the name. A refused name gets
//! NXDOMAIN and a net-log line per question, and one refusal in the
//! end-of-run summary however often it is asked (`getent hosts` asks A and
//! AAAA). Nothing is resolved here:
//! the real resolution happens when the captured connection is authorized,
//! exactly as for `CONNECT`, so a query alone never leaves the machine
//! (there is no DNS exfiltration channel).
//!
//! The wire format is hand-written on purpose: only a single question is
//! read (header, one name of plain labels, type, class) and one fixed shape
//! of answer is written; every read is bounds-checked and any malformed
//! packet is answered FORMERR or dropped, never a panic. A full DNS crate
//! would parse far more attacker input than this needs.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::host::Host;
use super::log::Kind;
use super::tunnel::record_denial;
use super::State;

/// The synthetic range (RFC 2544 benchmarking space, never routed).
pub const SYNTH_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Its prefix length.
pub const SYNTH_LEN: u8 = 15;
/// The IPv6 synthetic range: RFC 5180's benchmarking space (2001:2::/48,
/// IANA special-purpose, not globally routable), the IPv6 twin of
/// 198.18.0.0/15. Name number `n` is `2001:2::n` (the low 32 bits).
pub const SYNTH_NET6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0);
/// Its prefix length.
pub const SYNTH_LEN6: u8 = 48;
/// Names one run can be given addresses for (a wildcard allow could
/// otherwise grow the table without bound).
const MAX_NAMES: u32 = 65_000;
/// TTL of an answer: the mapping lives as long as the run.
const TTL: u32 = 300;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;

/// Name ↔ synthetic address, for this run.
#[derive(Default)]
pub struct Synth {
    inner: Mutex<Table>,
}

/// Name number `n` (from 1) is `SYNTH_NET + n` and `SYNTH_NET6 + n`.
#[derive(Default)]
struct Table {
    by_name: HashMap<String, u32>,
    /// `names[n - 1]`.
    names: Vec<String>,
    /// Names DNS refused this run: each is counted once in the summary.
    refused: HashSet<String>,
}

/// The synthetic addresses of one allowed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

impl Synthetic {
    fn of(n: u32) -> Self {
        Synthetic {
            // .0.0 is the network's own address: numbers start at 1.
            v4: Ipv4Addr::from(u32::from(SYNTH_NET) + n),
            v6: Ipv6Addr::from(u128::from(SYNTH_NET6) + u128::from(n)),
        }
    }
}

impl Synth {
    /// The addresses for `name` (normalised), allocated on first use;
    /// `None` once the table is full.
    pub fn addr_for(&self, name: &str) -> Option<Synthetic> {
        let mut t = self.inner.lock().ok()?;
        if let Some(n) = t.by_name.get(name) {
            return Some(Synthetic::of(*n));
        }
        let n = u32::try_from(t.names.len()).ok()? + 1;
        if n > MAX_NAMES {
            return None;
        }
        t.names.push(name.to_string());
        t.by_name.insert(name.to_string(), n);
        Some(Synthetic::of(n))
    }

    /// The name `addr` (either family) was handed out for.
    pub fn name_of(&self, addr: IpAddr) -> Option<String> {
        let n = synthetic_number(addr)?;
        let t = self.inner.lock().ok()?;
        t.names
            .get(usize::try_from(n).ok()?.checked_sub(1)?)
            .cloned()
    }

    /// Whether this is the first time DNS refuses `name` this run (the
    /// set is bounded like the table: past it, every refusal counts).
    fn first_refusal(&self, name: &str) -> bool {
        let Ok(mut t) = self.inner.lock() else {
            return true;
        };
        if t.refused.contains(name) {
            return false;
        }
        if t.refused.len() < MAX_NAMES as usize {
            t.refused.insert(name.to_string());
        }
        true
    }
}

/// Whether `a` is in either synthetic range.
pub fn is_synthetic(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            u32::from(a) >> (32 - SYNTH_LEN) == u32::from(SYNTH_NET) >> (32 - SYNTH_LEN)
        }
        IpAddr::V6(a) => {
            u128::from(a) >> (128 - SYNTH_LEN6) == u128::from(SYNTH_NET6) >> (128 - SYNTH_LEN6)
        }
    }
}

/// The name number of a synthetic address (not checked against the table).
fn synthetic_number(a: IpAddr) -> Option<u32> {
    if !is_synthetic(a) {
        return None;
    }
    match a {
        IpAddr::V4(a) => Some(u32::from(a) - u32::from(SYNTH_NET)),
        IpAddr::V6(a) => u32::try_from(u128::from(a) - u128::from(SYNTH_NET6)).ok(),
    }
}

/// One parsed question.
#[derive(Debug, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    pub rd: bool,
    /// Lowercase, no trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question's bytes (name, type, class), echoed in the answer.
    raw: Vec<u8>,
}

/// Why a packet gets no normal answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not even a header, or a response: dropped silently.
    Drop,
    /// A header we can answer with this rcode (echoing the id).
    Answer { id: u16, rcode: u8 },
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse a query with exactly one question of plain labels.
pub fn parse(pkt: &[u8]) -> Result<Question, Bad> {
    let id = be16(pkt, 0).ok_or(Bad::Drop)?;
    let flags = be16(pkt, 2).ok_or(Bad::Drop)?;
    let qdcount = be16(pkt, 4).ok_or(Bad::Drop)?;
    if pkt.len() < 12 || flags & 0x8000 != 0 {
        return Err(Bad::Drop);
    }
    let formerr = Bad::Answer {
        id,
        rcode: RCODE_FORMERR,
    };
    if (flags >> 11) & 0xf != 0 {
        return Err(Bad::Answer {
            id,
            rcode: RCODE_NOTIMP,
        });
    }
    if qdcount != 1 {
        return Err(formerr);
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut name_len = 0usize;
    loop {
        let len = usize::from(*pkt.get(at).ok_or(Bad::Answer {
            id,
            rcode: RCODE_FORMERR,
        })?);
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (and the reserved 0x40/0x80 forms) have no
        // place in a question.
        if len > 63 {
            return Err(formerr);
        }
        name_len += len + 1;
        if name_len > 255 {
            return Err(formerr);
        }
        let label = pkt.get(at..at + len).ok_or(Bad::Answer {
            id,
            rcode: RCODE_FORMERR,
        })?;
        // Only host-name bytes; anything else cannot be allowed anyway.
        if !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return Err(Bad::Answer {
                id,
                rcode: RCODE_NXDOMAIN,
            });
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let qtype = be16(pkt, at).ok_or(Bad::Answer {
        id,
        rcode: RCODE_FORMERR,
    })?;
    let qclass = be16(pkt, at + 2).ok_or(Bad::Answer {
        id,
        rcode: RCODE_FORMERR,
    })?;
    at += 4;
    Ok(Question {
        id,
        rd: flags & 0x0100 != 0,
        name: labels.join("."),
        qtype,
        qclass,
        raw: pkt[12..at].to_vec(),
    })
}

/// The answer to `q`: for an allowed name, its A record if asked for A,
/// its AAAA record if asked for AAAA and `v6` (the sandbox captures IPv6),
/// no record otherwise (NODATA); NXDOMAIN for `None`.
pub fn answer(q: &Question, addr: Option<Synthetic>, v6: bool) -> Vec<u8> {
    let rcode = if addr.is_some() { 0 } else { RCODE_NXDOMAIN };
    let record: Option<(u16, Vec<u8>)> = match addr {
        Some(a) if q.qclass == CLASS_IN && q.qtype == TYPE_A => {
            Some((TYPE_A, a.v4.octets().to_vec()))
        }
        Some(a) if q.qclass == CLASS_IN && q.qtype == TYPE_AAAA && v6 => {
            Some((TYPE_AAAA, a.v6.octets().to_vec()))
        }
        _ => None,
    };
    let mut out = header(q.id, q.rd, rcode, true, u16::from(record.is_some()));
    out.extend_from_slice(&q.raw);
    if let Some((ty, data)) = record {
        out.extend_from_slice(&[0xc0, 12]); // the name: a pointer to the question's
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        // 4 or 16 bytes: always fits.
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// A bare answer with `rcode` (no question echoed).
pub fn error(id: u16, rcode: u8) -> Vec<u8> {
    header(id, false, rcode, false, 0)
}

fn header(id: u16, rd: bool, rcode: u8, has_question: bool, ancount: u16) -> Vec<u8> {
    // QR, AA, RD as asked, RA (we "recurse": nobody else will).
    let flags: u16 = 0x8000 | 0x0400 | if rd { 0x0100 } else { 0 } | 0x0080 | u16::from(rcode);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::from(has_question).to_be_bytes());
    out.extend_from_slice(&ancount.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out
}

/// What the DNS answers for: the captured ports, and whether the
/// sandbox captures IPv6 (its capture listeners are dual-stack).
#[derive(Debug, Clone, Default)]
pub struct Served {
    pub ports: Vec<u16>,
    pub v6: bool,
}

/// Decide a name: its synthetic addresses if the proxy would let a
/// connection to it through on any of `ports`, else `None` (logged on
/// every question, counted in the summary on the first).
pub fn decide(state: &State, name: &str, ports: &[u16]) -> Option<Synthetic> {
    let host = match Host::parse(name) {
        Ok(h @ Host::Name(_)) => h,
        _ => return None,
    };
    match state.policy.check_name_any(&host, ports) {
        Ok(_) => state.synth.addr_for(&host.authority()),
        Err(d) => {
            if state.synth.first_refusal(&host.authority()) {
                record_denial(state, Kind::Dns, None, &d);
            } else {
                record_denial_log_only(state, &d);
            }
            None
        }
    }
}

/// The net-log line of a refusal already counted in the summary.
fn record_denial_log_only(state: &State, d: &super::policy::Denial) {
    state.log.write(super::log::Record {
        kind: Kind::Dns,
        host: d.host.clone(),
        port: d.port,
        decision: super::log::Decision::Deny,
        reason: Some(d.reason.clone()),
        ..Default::default()
    });
}

/// Answer one packet (`None`: drop it).
pub fn respond(state: &State, pkt: &[u8], served: &Served) -> Option<Vec<u8>> {
    match parse(pkt) {
        Ok(q) => {
            if q.qclass != CLASS_IN {
                return Some(error(q.id, RCODE_REFUSED));
            }
            let addr = decide(state, &q.name, &served.ports);
            // Other types of an allowed name (and AAAA without IPv6 in
            // the sandbox): NODATA; clients use the records they got.
            Some(answer(&q, addr, served.v6))
        }
        Err(Bad::Answer { id, rcode }) => Some(error(id, rcode)),
        Err(Bad::Drop) => None,
    }
}

/// Serve DNS on `sock` (127.0.0.1:53 inside the sandbox) until `stop`.
pub async fn serve_udp(
    sock: UdpSocket,
    state: Arc<State>,
    served: Arc<Served>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 1500];
    loop {
        let got = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = stop.changed() => break,
        };
        let Ok((n, peer)) = got else { continue };
        if let Some(out) = respond(&state, &buf[..n], &served) {
            let _ = sock.send_to(&out, peer).await;
        }
    }
}

/// Time a DNS-over-TCP client has for each message.
const TCP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve DNS over TCP (RFC 7766: each message behind its 2-byte length)
/// on `listener` until `stop`; connections share the capture cap.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    served: Arc<Served>,
    sem: Arc<tokio::sync::Semaphore>,
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
        let Ok((mut sock, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (st, served) = (state.clone(), served.clone());
        tokio::spawn(async move {
            let _permit = permit;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let read = async {
                    let len = usize::from(sock.read_u16().await?);
                    let mut msg = vec![0u8; len];
                    sock.read_exact(&mut msg).await?;
                    Ok::<_, std::io::Error>(msg)
                };
                let Ok(Ok(msg)) = tokio::time::timeout(TCP_TIMEOUT, read).await else {
                    return;
                };
                let Some(out) = respond(&st, &msg, &served) else {
                    return;
                };
                let Ok(len) = u16::try_from(out.len()) else {
                    return;
                };
                let mut framed = len.to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                if sock.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    #[test]
    fn a_query_parses_and_answers() {
        let q = parse(&query("API.Example.test", TYPE_A)).unwrap();
        assert_eq!(q.name, "api.example.test");
        assert_eq!((q.id, q.qtype, q.rd), (0x1234, TYPE_A, true));
        let one = Some(Synthetic::of(1));
        let a = answer(&q, one, true);
        assert_eq!(&a[0..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0xf, 0, "NOERROR");
        assert_eq!(be16(&a, 6), Some(1), "one answer");
        assert_eq!(&a[a.len() - 6..], &[0, 4, 198, 18, 0, 1]);
        let nx = answer(&q, None, true);
        assert_eq!(nx[3] & 0xf, RCODE_NXDOMAIN);
        assert_eq!(be16(&nx, 6), Some(0));
        // AAAA: the IPv6 twin when the sandbox has IPv6, else NODATA.
        let q6 = parse(&query("a.test", TYPE_AAAA)).unwrap();
        let aaaa = answer(&q6, one, true);
        assert_eq!(be16(&aaaa, 6), Some(1));
        assert_eq!(be16(&aaaa, aaaa.len() - 18), Some(16), "rdlength");
        let mut want = [0u8; 16];
        want[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
        want[15] = 1;
        assert_eq!(&aaaa[aaaa.len() - 16..], &want);
        let nodata = answer(&q6, one, false);
        assert_eq!((nodata[3] & 0xf, be16(&nodata, 6)), (0, Some(0)));
        // Other types of an allowed name: NODATA.
        let mx = parse(&query("a.test", 15)).unwrap();
        let nodata = answer(&mx, one, true);
        assert_eq!((nodata[3] & 0xf, be16(&nodata, 6)), (0, Some(0)));
    }

    #[test]
    fn malformed_packets_never_panic() {
        let good = query("a.example.test", TYPE_A);
        // Every truncation, and every single-byte corruption.
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
        }
        for i in 0..good.len() {
            for v in [0u8, 0x3f, 0x40, 0xc0, 0xff] {
                let mut p = good.clone();
                p[i] = v;
                if let Ok(q) = parse(&p) {
                    let _ = answer(&q, None, true);
                }
            }
        }
        assert_eq!(parse(&[]), Err(Bad::Drop));
        assert_eq!(parse(&[0; 11]), Err(Bad::Drop));
        // A response is never answered.
        let mut resp = good.clone();
        resp[2] |= 0x80;
        assert_eq!(parse(&resp), Err(Bad::Drop));
        // A compression pointer in the question, two questions, a name too long.
        let mut ptr = good[..12].to_vec();
        ptr.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(parse(&ptr), Err(Bad::Answer { rcode: 1, .. })));
        let mut two = good.clone();
        two[5] = 2;
        assert!(matches!(parse(&two), Err(Bad::Answer { rcode: 1, .. })));
        let long = vec!["a".repeat(63); 5].join(".");
        assert!(matches!(
            parse(&query(&long, TYPE_A)),
            Err(Bad::Answer { rcode: 1, .. })
        ));
        // Odd bytes in a label: NXDOMAIN, not an allowed name.
        assert!(matches!(
            parse(&query("a b.test", TYPE_A)),
            Err(Bad::Answer { rcode: 3, .. })
        ));
    }

    /// DNS answers exactly what a connection would be allowed: any
    /// captured port counts, deny wins, and the captured ports are the
    /// ones the rules name.
    #[test]
    fn the_dns_decision_is_the_proxy_decision() {
        use super::super::host::{HostPattern, Portless};
        use super::super::policy::Policy;
        let pat = |p: &str, how| HostPattern::parse(p, how).unwrap();
        let cfg = super::super::ProxyConfig {
            allow: vec![
                pat("*.ok.test", Portless::Web),
                pat("db.test:5432", Portless::Web),
            ],
            deny: vec![pat("bad.ok.test", Portless::Any)],
            ..Default::default()
        };
        let p = Policy::new(&cfg).unwrap();
        let ports = p.capture_ports();
        assert_eq!(ports, vec![80, 443, 5432]);
        let name = |n: &str| Host::parse(n).unwrap();
        assert!(p.check_name_any(&name("api.ok.test"), &ports).is_ok());
        assert!(p.check_name_any(&name("db.test"), &ports).is_ok());
        assert!(p.check_name_any(&name("db.test"), &[80, 443]).is_err());
        let d = p.check_name_any(&name("bad.ok.test"), &ports).unwrap_err();
        assert_eq!(d.reason, "denied-by-rule");
        let d = p.check_name_any(&name("other.test"), &ports).unwrap_err();
        assert_eq!(d.reason, "not-allowed");
    }

    #[test]
    fn synthetic_addresses_are_stable_and_bounded() {
        let s = Synth::default();
        let a = s.addr_for("a.test").unwrap();
        assert_eq!(a.v4, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(a.v6, "2001:2::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(s.addr_for("a.test"), Some(a));
        let b = s.addr_for("b.test").unwrap();
        assert_ne!(a, b);
        assert_eq!(s.name_of(b.v4.into()).as_deref(), Some("b.test"));
        assert_eq!(s.name_of(b.v6.into()).as_deref(), Some("b.test"));
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        assert!(is_synthetic(v4(198, 19, 255, 254)));
        assert!(is_synthetic(v6("2001:2:0:ffff::1")));
        assert!(!is_synthetic(v4(198, 20, 0, 1)));
        assert!(!is_synthetic(v4(127, 0, 0, 1)));
        assert!(!is_synthetic(v6("2001:3::1")));
        assert!(!is_synthetic(v6("::1")));
        assert!(
            !is_synthetic(v6("::ffff:198.18.0.1")),
            "mapped: unmapped first"
        );
        // Unknown numbers, the network address, numbers past 32 bits.
        assert_eq!(s.name_of(v4(198, 18, 9, 9)), None);
        assert_eq!(s.name_of(v4(198, 18, 0, 0)), None);
        assert_eq!(s.name_of(v6("2001:2::")), None);
        assert_eq!(s.name_of(v6("2001:2::1:0:0:1")), None);
        assert_eq!(s.name_of(v6("2001:2::9999")), None);
        // One refusal per name per run.
        assert!(s.first_refusal("x.test"));
        assert!(!s.first_refusal("x.test"));
        assert!(s.first_refusal("y.test"));
    }
}
