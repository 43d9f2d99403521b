//! Which network addresses a step's HTTP request may connect to, and the
//! resolver that makes sure it connects only to an address that was checked.
//!
//! Grants name hosts, but a name says nothing about where it leads: a
//! granted (or wildcard-granted) name may resolve, or rebind between two
//! look-ups, to 127.0.0.1, to the cloud metadata service at 169.254.169.254
//! or to a private network. So the host resolves every name itself
//! ([`CheckedResolver`], installed as reqwest's resolver), checks *every*
//! address the name resolves to with [`special_range`], and hands reqwest
//! only those checked addresses to connect to: there is no second look-up
//! an attacker's DNS server could answer differently. A name with any
//! private, loopback or otherwise special address is refused as a whole.
//!
//! IP-literal URLs never reach a resolver; `http.rs` checks them with the
//! same [`special_range`]. A special address is reachable only when the
//! step's grant names that address literally (`http: ["127.0.0.1:8080"]`),
//! and loopback through `localhost` only when the grant names `localhost`:
//! this resolver answers `localhost` with 127.0.0.1 and ::1 itself and
//! relies on `http.rs` to have checked that grant first.
//!
//! This module must never let a name through without checking every one of
//! its addresses, and never look a name up twice.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The name of the special range `ip` lies in (`loopback 127.0.0.0/8`), or
/// `None` for an ordinary public address.
///
/// IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
/// judged by the IPv4 address they lead to.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

/// Whether `ip` is a loopback address (127.0.0.0/8, ::1, or an IPv6 form of 127.0.0.0/8).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || embedded_v4(v6).is_some_and(|v4| v4.is_loopback()),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        (0, ..) => "\"this network\" 0.0.0.0/8",
        (10, ..) => "private 10.0.0.0/8",
        (100, 64..=127, ..) => "shared (carrier-grade NAT) 100.64.0.0/10",
        (127, ..) => "loopback 127.0.0.0/8",
        (169, 254, ..) => "link-local 169.254.0.0/16 (cloud metadata services live here)",
        (172, 16..=31, ..) => "private 172.16.0.0/12",
        (192, 0, 0, _) => "IETF protocol assignments 192.0.0.0/24",
        (192, 0, 2, _) => "documentation 192.0.2.0/24",
        (192, 88, 99, _) => "6to4 relay anycast 192.88.99.0/24",
        (192, 168, ..) => "private 192.168.0.0/16",
        (198, 18..=19, ..) => "benchmarking 198.18.0.0/15",
        (198, 51, 100, _) => "documentation 198.51.100.0/24",
        (203, 0, 113, _) => "documentation 203.0.113.0/24",
        (224..=239, ..) => "multicast 224.0.0.0/4",
        (255, 255, 255, 255) => "broadcast 255.255.255.255",
        (240..=255, ..) => "reserved 240.0.0.0/4",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for, in the forms that carry one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d (deprecated).
        [0, 0, 0, 0, 0, 0xffff | 0, ..] if !ip.is_loopback() && !ip.is_unspecified() => Some(low(s[6], s[7])),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(low(s[6], s[7])),
        // 6to4 2002:aabb:ccdd::/48.
        [0x2002, ..] => Some(low(s[1], s[2])),
        _ => None,
    }
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified ::");
    }
    if ip.is_loopback() {
        return Some("loopback ::1");
    }
    if let Some(v4) = embedded_v4(ip) {
        let s = ip.segments();
        // The deprecated IPv4-compatible form is never a real destination.
        if s[5] == 0 && s[0] == 0 {
            return Some(v4_range(v4).unwrap_or("IPv4-compatible ::/96 (deprecated)"));
        }
        return v4_range(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        0x0064 if s[1] == 0xff9b && s[2] == 1 => "local-use NAT64 64:ff9b:1::/48",
        0x0100 if s[1..4] == [0, 0, 0] => "discard 100::/64",
        0x2001 if s[1] == 0x0db8 => "documentation 2001:db8::/32",
        0x2001 if s[1] < 0x0200 => "IETF protocol assignments 2001::/23 (Teredo, ORCHID, ...)",
        0x3fff if s[1] < 0x1000 => "documentation 3fff::/20",
        0xfc00..=0xfdff => "unique local fc00::/7",
        0xfe80..=0xfebf => "link-local fe80::/10",
        0xfec0..=0xfeff => "site-local fec0::/10 (deprecated)",
        0xff00..=0xffff => "multicast ff00::/8",
        first if first & 0xe000 != 0x2000 => "reserved (outside global unicast 2000::/3)",
        _ => return None,
    })
}

/// A name resolved to a special address: the connection was refused before
/// anything was sent. Found in a reqwest error's source chain by [`blocked_in`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` resolves to {address}, in {range}")]
pub struct BlockedAddress {
    /// The name that was looked up.
    pub name: String,
    /// The first special address it resolved to.
    pub address: IpAddr,
    /// The range that address lies in.
    pub range: &'static str,
}

/// The [`BlockedAddress`] behind `error`, if the resolver refused a name.
pub(crate) fn blocked_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BlockedAddress> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(blocked) = error.downcast_ref::<BlockedAddress>() {
            return Some(blocked);
        }
        current = error.source();
    }
    None
}

/// reqwest's resolver for step requests: looks each name up once (or takes
/// the operator's static override), refuses the name if any address is
/// special, and returns exactly the addresses it checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct CheckedResolver {
    overrides: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl CheckedResolver {
    /// A resolver that answers the names in `overrides` with the given
    /// addresses instead of asking DNS (the addresses are checked all the same).
    pub(crate) fn new(overrides: &[(String, IpAddr)]) -> Self {
        let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, address) in overrides {
            map.entry(name.to_ascii_lowercase()).or_default().push(*address);
        }
        CheckedResolver { overrides: Arc::new(map) }
    }

    /// The checked addresses of `name`.
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let name = name.to_ascii_lowercase();
        if name == "localhost" {
            // `http.rs` lets a request to `localhost` through only when the
            // grant names it; it never goes to DNS or the hosts file.
            return Ok(vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]);
        }
        let addresses: Vec<IpAddr> = match self.overrides.get(&name) {
            Some(addresses) => addresses.clone(),
            None => tokio::net::lookup_host((name.as_str(), 0)).await?.map(|a| a.ip()).collect(),
        };
        if let Some((address, range)) = addresses.iter().find_map(|a| special_range(*a).map(|r| (*a, r))) {
            return Err(Box::new(BlockedAddress { name, address, range }));
        }
        if addresses.is_empty() {
            return Err(format!("`{name}` resolves to no address").into());
        }
        Ok(addresses)
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = resolver.lookup(name.as_str()).await?;
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn range(text: &str) -> Option<&'static str> {
        special_range(text.parse().unwrap())
    }

    #[test]
    fn private_loopback_and_special_ipv4_ranges_are_special() {
        for (address, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private 10."),
            ("172.16.0.1", "private 172.16."),
            ("172.31.255.255", "private 172.16."),
            ("192.168.1.1", "private 192.168."),
            ("169.254.169.254", "metadata"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.255", "100.64.0.0/10"),
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.1.2.3", "0.0.0.0/8"),
            ("192.0.0.8", "192.0.0.0/24"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.7", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            let found = range(address).unwrap_or_else(|| panic!("{address} should be special"));
            assert!(found.contains(expected), "{address}: {found}");
        }
        for public in
            ["8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1", "11.0.0.1"]
        {
            assert_eq!(range(public), None, "{public} is public");
        }
    }

    #[test]
    fn ipv6_ranges_and_ipv4_carried_in_ipv6_are_judged_by_where_they_lead() {
        for (address, expected) in [
            ("::1", "loopback ::1"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback 127"),
            ("::ffff:10.0.0.1", "private 10."),
            ("::ffff:169.254.169.254", "metadata"),
            ("::127.0.0.1", "loopback 127"),
            ("::8.8.8.8", "IPv4-compatible"),
            ("64:ff9b::7f00:1", "loopback 127"),
            ("2002:7f00:1::", "loopback 127"),
            ("2002:c0a8:101::1", "private 192.168."),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "Teredo"),
            ("100::1", "discard"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("::2:0:0:1", "reserved"),
        ] {
            let found = range(address).unwrap_or_else(|| panic!("{address} should be special"));
            assert!(found.contains(expected), "{address}: {found}");
        }
        for public in ["2606:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]
        {
            assert_eq!(range(public), None, "{public} is public");
        }
    }

    #[test]
    fn loopback_includes_its_ipv6_forms() {
        for address in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(address.parse().unwrap()), "{address}");
        }
        for address in ["10.0.0.1", "::ffff:10.0.0.1", "8.8.8.8", "::"] {
            assert!(!is_loopback(address.parse().unwrap()), "{address}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_if_any_address_is_special() {
        let resolver = CheckedResolver::new(&[
            ("victim.test".into(), "127.0.0.1".parse().unwrap()),
            ("mixed.test".into(), "93.184.216.34".parse().unwrap()),
            ("mixed.test".into(), "::ffff:192.168.0.1".parse().unwrap()),
            ("public.test".into(), "93.184.216.34".parse().unwrap()),
        ]);
        let error = resolver.lookup("Victim.test").await.unwrap_err();
        let blocked = blocked_in(&*error).unwrap();
        assert_eq!(blocked.address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(error.to_string(), "`victim.test` resolves to 127.0.0.1, in loopback 127.0.0.0/8");
        let error = resolver.lookup("mixed.test").await.unwrap_err();
        assert!(error.to_string().contains("::ffff:192.168.0.1"), "{error}");
        assert_eq!(resolver.lookup("public.test").await.unwrap(), vec!["93.184.216.34".parse::<IpAddr>().unwrap()]);
        assert_eq!(resolver.lookup("localhost").await.unwrap().len(), 2);
    }
}
