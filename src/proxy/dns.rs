//! The sandbox's DNS: answers for allowed names only, from a synthetic
//! range, never forwarded anywhere.
//!
//! Owns: the synthetic address table (name ↔ address, for this run), the
//! DNS wire format of one question and its answer, and the UDP responder
//! task.
//!
//! An allowed name (the proxy's own decision, [`super::policy::Policy::check_name`],
//! on any captured port) gets an address from [`SYNTH_NET`]/15, stable for
//! the run; [`super::capture`] maps a connection to it back to the name. A
//! refused name gets NXDOMAIN and a net-log line. Nothing is resolved here:
//! the real resolution happens when the captured connection is authorized,
//! exactly as for `CONNECT`, so a query alone never leaves the machine
//! (there is no DNS exfiltration channel).
//!
//! The wire format is hand-written on purpose: only a single question is
//! read (header, one name of plain labels, type, class) and one fixed shape
//! of answer is written; every read is bounds-checked and any malformed
//! packet is answered FORMERR or dropped, never a panic. A full DNS crate
//! would parse far more attacker input than this needs.

use std::collections::HashMap;
use std::net::Ipv4Addr;
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
/// Names one run can be given addresses for (a wildcard allow could
/// otherwise grow the table without bound).
const MAX_NAMES: u32 = 65_000;
/// TTL of an answer: the mapping lives as long as the run.
const TTL: u32 = 300;

const TYPE_A: u16 = 1;
#[cfg(test)]
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

#[derive(Default)]
struct Table {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
    next: u32,
}

impl Synth {
    /// The address for `name` (normalised), allocated on first use;
    /// `None` once the table is full.
    pub fn addr_for(&self, name: &str) -> Option<Ipv4Addr> {
        let mut t = self.inner.lock().ok()?;
        if let Some(a) = t.by_name.get(name) {
            return Some(*a);
        }
        if t.next >= MAX_NAMES {
            return None;
        }
        t.next += 1;
        // .0.0 is the network's own address: start at .0.1.
        let a = Ipv4Addr::from(u32::from(SYNTH_NET) + t.next);
        t.by_name.insert(name.to_string(), a);
        t.by_addr.insert(a, name.to_string());
        Some(a)
    }

    /// The name `addr` was handed out for.
    pub fn name_of(&self, addr: Ipv4Addr) -> Option<String> {
        self.inner.lock().ok()?.by_addr.get(&addr).cloned()
    }
}

/// Whether `a` is in the synthetic range.
pub fn is_synthetic(a: Ipv4Addr) -> bool {
    u32::from(a) >> (32 - SYNTH_LEN) == u32::from(SYNTH_NET) >> (32 - SYNTH_LEN)
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

/// The answer to `q`: `addr` for an allowed name (an A record if asked
/// for A, no record otherwise), NXDOMAIN for `None`.
pub fn answer(q: &Question, addr: Option<Ipv4Addr>) -> Vec<u8> {
    let rcode = if addr.is_some() { 0 } else { RCODE_NXDOMAIN };
    let with_a = addr.filter(|_| q.qtype == TYPE_A && q.qclass == CLASS_IN);
    let mut out = header(q.id, q.rd, rcode, true, u16::from(with_a.is_some()));
    out.extend_from_slice(&q.raw);
    if let Some(a) = with_a {
        out.extend_from_slice(&[0xc0, 12]); // the name: a pointer to the question's
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&a.octets());
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

/// Decide a name: its synthetic address if the proxy would let a
/// connection to it through on any of `ports`, else `None` (logged).
pub fn decide(state: &State, name: &str, ports: &[u16]) -> Option<Ipv4Addr> {
    let host = match Host::parse(name) {
        Ok(h @ Host::Name(_)) => h,
        _ => return None,
    };
    match state.policy.check_name_any(&host, ports) {
        Ok(_) => state.synth.addr_for(&host.authority()),
        Err(d) => {
            record_denial(state, Kind::Dns, None, &d);
            None
        }
    }
}

/// Answer one packet (`None`: drop it).
pub fn respond(state: &State, pkt: &[u8], ports: &[u16]) -> Option<Vec<u8>> {
    match parse(pkt) {
        Ok(q) => {
            if q.qclass != CLASS_IN {
                return Some(error(q.id, RCODE_REFUSED));
            }
            let addr = decide(state, &q.name, ports);
            // AAAA and other types of an allowed name: NODATA (no IPv6
            // capture yet); clients fall back to the A record.
            Some(answer(&q, addr))
        }
        Err(Bad::Answer { id, rcode }) => Some(error(id, rcode)),
        Err(Bad::Drop) => None,
    }
}

/// Serve DNS on `sock` (127.0.0.1:53 inside the sandbox) until `stop`.
pub async fn serve_udp(
    sock: UdpSocket,
    state: Arc<State>,
    ports: Arc<Vec<u16>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 1500];
    loop {
        let got = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = stop.changed() => break,
        };
        let Ok((n, peer)) = got else { continue };
        if let Some(out) = respond(&state, &buf[..n], &ports) {
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
    ports: Arc<Vec<u16>>,
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
        let (st, ports) = (state.clone(), ports.clone());
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
                let Some(out) = respond(&st, &msg, &ports) else {
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
        let a = answer(&q, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(&a[0..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0xf, 0, "NOERROR");
        assert_eq!(be16(&a, 6), Some(1), "one answer");
        assert_eq!(&a[a.len() - 4..], &[198, 18, 0, 1]);
        let nx = answer(&q, None);
        assert_eq!(nx[3] & 0xf, RCODE_NXDOMAIN);
        assert_eq!(be16(&nx, 6), Some(0));
        let q6 = parse(&query("a.test", TYPE_AAAA)).unwrap();
        let nodata = answer(&q6, Some(Ipv4Addr::new(198, 18, 0, 1)));
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
                    let _ = answer(&q, None);
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
        assert_eq!(a, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(s.addr_for("a.test"), Some(a));
        let b = s.addr_for("b.test").unwrap();
        assert_ne!(a, b);
        assert_eq!(s.name_of(b).as_deref(), Some("b.test"));
        assert!(is_synthetic(a) && is_synthetic(Ipv4Addr::new(198, 19, 255, 254)));
        assert!(!is_synthetic(Ipv4Addr::new(198, 20, 0, 1)));
        assert!(!is_synthetic(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(s.name_of(Ipv4Addr::new(198, 18, 9, 9)), None);
    }
}
