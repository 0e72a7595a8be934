//! Address classes the proxy refuses to connect to unless the policy names
//! them on purpose (see `docs/network.md`, "Address checks").
//!
//! Owns: classifying an `IpAddr` (loopback, private, link-local, metadata,
//! CGNAT, multicast, …, including IPv4 embedded in IPv6 forms) and listing
//! this host's own addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Unwrap IPv4-mapped IPv6 (`::ffff:a.b.c.d`) to plain IPv4, so one address
/// has one spelling for comparisons.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => a,
        },
        v4 => v4,
    }
}

/// Why an address is refused, or `None` if it is an ordinary public address.
pub fn refused_class(a: IpAddr) -> Option<&'static str> {
    match a {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    let in_net = |base: [u8; 4], bits: u32| {
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        (u32::from(a) & mask) == (u32::from_be_bytes(base) & mask)
    };
    if a == Ipv4Addr::new(169, 254, 169, 254) || a == Ipv4Addr::new(169, 254, 170, 2) {
        return Some("metadata");
    }
    if in_net([0, 0, 0, 0], 8) {
        return Some("unspecified");
    }
    if o[0] == 127 {
        return Some("loopback");
    }
    if in_net([10, 0, 0, 0], 8) || in_net([172, 16, 0, 0], 12) || in_net([192, 168, 0, 0], 16) {
        return Some("private");
    }
    if in_net([169, 254, 0, 0], 16) {
        return Some("link-local");
    }
    if in_net([100, 64, 0, 0], 10) {
        return Some("cgnat");
    }
    if in_net([224, 0, 0, 0], 4) {
        return Some("multicast");
    }
    if a == Ipv4Addr::BROADCAST {
        return Some("broadcast");
    }
    if in_net([240, 0, 0, 0], 4) {
        return Some("reserved");
    }
    if in_net([192, 0, 0, 0], 24) || in_net([198, 18, 0, 0], 15) {
        return Some("reserved");
    }
    None
}

fn v6_class(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if a.is_loopback() {
        return Some("loopback");
    }
    // Embedded IPv4 forms: judge the IPv4 inside.
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4_class(v4);
    }
    let low32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    // NAT64 well-known prefix 64:ff9b::/96 and local-use 64:ff9b:1::/48.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return v4_class(low32);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("nat64-local");
    }
    // Deprecated IPv4-compatible ::a.b.c.d.
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        return v4_class(low32).or(Some("reserved"));
    }
    // 6to4 2002:AABB:CCDD::/48 embeds an IPv4 address.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        if let Some(c) = v4_class(v4) {
            return Some(c);
        }
    }
    if a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("metadata");
    }
    if (s[0] & 0xfe00) == 0xfc00 {
        return Some("private");
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return Some("link-local");
    }
    if (s[0] & 0xffc0) == 0xfec0 {
        return Some("site-local");
    }
    if (s[0] & 0xff00) == 0xff00 {
        return Some("multicast");
    }
    // Documentation 2001:db8::/32 is never a real destination.
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return Some("reserved");
    }
    None
}

/// This machine's own addresses (every interface): the union of
/// `getifaddrs(3)` (glibc asks the kernel over netlink; the `if-addrs`
/// crate wraps it, so no `unsafe` here) and `/proc/net`. Either source
/// alone is enough; the guard is never silently off: when neither answers,
/// this is an error and the proxy does not start.
pub fn local_addresses() -> Result<Vec<IpAddr>, String> {
    local_addresses_with(std::path::Path::new("/proc/net"))
}

/// [`local_addresses`] reading `/proc/net` files from `proc_net` (tests
/// point it at a directory that does not exist).
pub fn local_addresses_with(proc_net: &std::path::Path) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    let ifaddrs = if_addrs::get_if_addrs();
    if let Ok(ifs) = &ifaddrs {
        for i in ifs {
            push_unique(&mut out, i.ip());
        }
    }
    let from_proc = proc_addresses(proc_net);
    let proc_ok = from_proc.is_some();
    for a in from_proc.unwrap_or_default() {
        push_unique(&mut out, a);
    }
    match (&ifaddrs, proc_ok) {
        (Err(e), false) => Err(format!(
            "cannot list this machine's own addresses (getifaddrs: {e}; {} unreadable), so the proxy could not refuse them: refusing to start",
            proc_net.display()
        )),
        _ if out.is_empty() => Err(
            "this machine reports no addresses at all (not even loopback): refusing to start the proxy"
                .to_string(),
        ),
        _ => Ok(out),
    }
}

fn push_unique(out: &mut Vec<IpAddr>, a: IpAddr) {
    let a = canonical(a);
    if !out.contains(&a) {
        out.push(a);
    }
}

/// Addresses from `if_inet6` and `fib_trie`; `None` if neither is readable.
fn proc_addresses(proc_net: &std::path::Path) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    let v6 = std::fs::read_to_string(proc_net.join("if_inet6")).ok();
    if let Some(text) = &v6 {
        for line in text.lines() {
            if let Some(hex32) = line.split_whitespace().next() {
                if hex32.len() == 32 {
                    if let Ok(n) = u128::from_str_radix(hex32, 16) {
                        out.push(IpAddr::V6(Ipv6Addr::from(n)));
                    }
                }
            }
        }
    }
    let v4 = std::fs::read_to_string(proc_net.join("fib_trie")).ok();
    if let Some(text) = &v4 {
        // Lines look like "|-- 192.168.1.5" followed by "/32 host LOCAL".
        let mut last: Option<Ipv4Addr> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("|-- ") {
                last = rest.parse().ok();
            } else if t.contains("host LOCAL") {
                if let Some(a) = last {
                    if !out.contains(&IpAddr::V4(a)) {
                        out.push(IpAddr::V4(a));
                    }
                }
            }
        }
    }
    (v6.is_some() || v4.is_some()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("loopback")),
            ("127.255.0.9", Some("loopback")),
            ("0.0.0.0", Some("unspecified")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("192.168.0.1", Some("private")),
            ("192.169.0.1", None),
            ("169.254.169.254", Some("metadata")),
            ("169.254.1.1", Some("link-local")),
            ("100.64.0.1", Some("cgnat")),
            ("100.127.255.255", Some("cgnat")),
            ("100.128.0.1", None),
            ("224.0.0.1", Some("multicast")),
            ("255.255.255.255", Some("broadcast")),
            ("240.0.0.1", Some("reserved")),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.216.34", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fc00::1", Some("private")),
            ("fd12:3456::1", Some("private")),
            ("fd00:ec2::254", Some("metadata")),
            ("fe80::1", Some("link-local")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:169.254.169.254", Some("metadata")),
            ("::ffff:10.0.0.1", Some("private")),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::7f00:1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("metadata")),
            ("64:ff9b::808:808", None),
            ("::127.0.0.1", Some("loopback")),
            ("2002:7f00:1::1", Some("loopback")),
            ("2002:0808:0808::1", None),
            ("2606:4700:4700::1111", None),
            ("2001:db8::1", Some("reserved")),
        ];
        for (a, want) in cases {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(refused_class(ip), *want, "{a}");
        }
    }

    #[test]
    fn canonical_unmaps() {
        assert_eq!(
            canonical("::ffff:1.2.3.4".parse().unwrap()),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn local_addresses_include_loopback() {
        let l = local_addresses().unwrap();
        assert!(l.contains(&"127.0.0.1".parse().unwrap()), "{l:?}");
    }

    /// Hardening II #11: with `/proc/net` unreadable the own-address list
    /// still holds every address of this machine (getifaddrs), the same
    /// set `/proc/net` gives when readable.
    #[test]
    fn local_addresses_without_proc_net() {
        let missing = std::path::Path::new("/nonexistent-zerobox-proc-net");
        let without = local_addresses_with(missing).unwrap();
        assert!(
            without.contains(&"127.0.0.1".parse().unwrap()),
            "{without:?}"
        );
        let from_proc = proc_addresses(std::path::Path::new("/proc/net")).unwrap_or_default();
        for a in from_proc {
            let a = canonical(a);
            // fib_trie lists whole local ranges' broadcast and 127.x
            // host routes too; every interface address must be there.
            if a.is_loopback() || refused_class(a) == Some("broadcast") {
                continue;
            }
            let is_iface = if_addrs::get_if_addrs()
                .unwrap()
                .iter()
                .any(|i| canonical(i.ip()) == a);
            if is_iface {
                assert!(without.contains(&a), "{a} missing: {without:?}");
            }
        }
        assert!(proc_addresses(missing).is_none());
    }
}
