//! Parsers for `/proc/net/route`, `/proc/net/arp`, `/proc/net/fib_trie` and
//! `/etc/resolv.conf`, and the adapter layout built from them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use onshi_shared::Adapter;

use crate::error::AgentError;

const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;
const ATF_COM: u32 = 0x2;

/// One line of `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub destination: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub flags: u32,
    pub metric: u32,
    pub mask: Ipv4Addr,
}

impl Route {
    fn is_up(&self) -> bool {
        self.flags & RTF_UP != 0
    }

    fn is_default(&self) -> bool {
        self.is_up()
            && self.flags & RTF_GATEWAY != 0
            && self.destination.is_unspecified()
            && self.mask.is_unspecified()
    }

    /// A directly connected network (no gateway) that `addr` is in.
    fn connects(&self, addr: Ipv4Addr) -> bool {
        self.is_up()
            && self.gateway.is_unspecified()
            && !self.mask.is_unspecified()
            && u32::from(addr) & u32::from(self.mask) == u32::from(self.destination)
    }
}

/// One line of `/proc/net/arp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpEntry {
    pub ip: Ipv4Addr,
    pub flags: u32,
    pub mac: String,
    pub device: String,
}

/// An interface as `/sys/class/net/<if>/` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub mac: Option<String>,
    pub up: bool,
}

/// Parses `/proc/net/route`. Addresses there are the kernel's in-memory `u32`s printed in hex,
/// which on the little-endian machines this runs on reads as the address bytes reversed.
pub fn routes(text: &str) -> Result<Vec<Route>, AgentError> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .ok_or_else(|| AgentError::parse("/proc/net/route", "empty"))?;
    if !header.starts_with("Iface") {
        return Err(AgentError::parse("/proc/net/route", "no header line"));
    }
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Some(destination), Some(gateway), Some(flags), Ok(metric), Some(mask)) = (
            hex_addr(f[1]),
            hex_addr(f[2]),
            hex_u32(f[3]),
            f[6].parse(),
            hex_addr(f[7]),
        ) else {
            continue;
        };
        out.push(Route {
            iface: f[0].to_string(),
            destination,
            gateway,
            flags,
            metric,
            mask,
        });
    }
    Ok(out)
}

/// Parses `/proc/net/arp`.
pub fn arp(text: &str) -> Vec<ArpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            Some(ArpEntry {
                ip: f[0].parse().ok()?,
                flags: hex_u32(f[2])?,
                mac: f[3].to_ascii_lowercase(),
                device: f[5].to_string(),
            })
        })
        .collect()
}

/// The local IPv4 addresses in `/proc/net/fib_trie`: leaves followed by a `/32 host LOCAL`
/// line. Sorted, without duplicates (the file lists the main and the local table).
pub fn local_addresses(text: &str) -> Vec<Ipv4Addr> {
    let mut out = BTreeSet::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            leaf = addr.trim().parse().ok();
        } else if t.starts_with("+-- ") {
            leaf = None;
        } else if t.starts_with("/32 ")
            && t.ends_with(" LOCAL")
            && let Some(addr) = leaf
        {
            out.insert(addr);
        }
    }
    out.into_iter().collect()
}

/// `nameserver` entries of `/etc/resolv.conf`, in order.
pub fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            (f.next() == Some("nameserver")).then(|| f.next()).flatten()
        })
        .map(str::to_string)
        .collect()
}

/// A MAC address as the snapshot carries it: lower case, `None` for the all-zero address.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let mac = mac.trim().to_ascii_lowercase();
    if mac.is_empty() || mac.chars().all(|c| c == '0' || c == ':') {
        None
    } else {
        Some(mac)
    }
}

/// Adapters with their addresses, gateways and DNS, plus the default gateway and its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub adapters: Vec<Adapter>,
    pub default_gateway: Option<String>,
    pub gateway_mac: Option<String>,
    /// Local addresses on no known network (reported as a note).
    pub unplaced: Vec<Ipv4Addr>,
}

/// Builds the layout. Loopback is skipped. Each local address goes to the interface whose
/// connected network contains it (the longest such prefix), written `addr/prefix`. The
/// nameservers go to the adapters that have a default route.
pub fn layout(
    ifaces: &[Iface],
    routes: &[Route],
    arp: &[ArpEntry],
    local: &[Ipv4Addr],
    nameservers: &[String],
) -> Layout {
    let mut names: BTreeSet<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
    names.extend(routes.iter().map(|r| r.iface.as_str()));
    names.remove("lo");

    let mut adapters: Vec<Adapter> = names
        .iter()
        .map(|name| {
            let iface = ifaces.iter().find(|i| i.name == *name);
            Adapter {
                name: (*name).to_string(),
                mac: iface.and_then(|i| i.mac.clone()),
                up: iface.map_or_else(
                    || routes.iter().any(|r| r.iface == *name && r.is_up()),
                    |i| i.up,
                ),
                addresses: Vec::new(),
                gateways: Vec::new(),
                dns: Vec::new(),
            }
        })
        .collect();

    let mut unplaced = Vec::new();
    for addr in local.iter().filter(|a| !a.is_loopback()) {
        let network = routes
            .iter()
            .filter(|r| r.iface != "lo" && r.connects(*addr))
            .max_by_key(|r| u32::from(r.mask).count_ones());
        let adapter = network.and_then(|r| adapters.iter_mut().find(|a| a.name == r.iface));
        match (network, adapter) {
            (Some(r), Some(a)) => a
                .addresses
                .push(format!("{addr}/{}", u32::from(r.mask).count_ones())),
            _ => unplaced.push(*addr),
        }
    }

    for r in routes.iter().filter(|r| r.is_default()) {
        if let Some(a) = adapters.iter_mut().find(|a| a.name == r.iface) {
            let gw = r.gateway.to_string();
            if !a.gateways.contains(&gw) {
                a.gateways.push(gw);
            }
        }
    }
    for a in &mut adapters {
        a.addresses.sort();
        if !a.gateways.is_empty() {
            a.dns = nameservers.to_vec();
        }
    }

    let default = routes
        .iter()
        .filter(|r| r.is_default() && r.iface != "lo")
        .min_by_key(|r| r.metric);
    let gateway_mac = default.and_then(|d| {
        let complete = |e: &&ArpEntry| e.ip == d.gateway && e.flags & ATF_COM != 0;
        arp.iter()
            .filter(complete)
            .find(|e| e.device == d.iface)
            .or_else(|| arp.iter().find(complete))
            .and_then(|e| normalize_mac(&e.mac))
    });
    Layout {
        adapters,
        default_gateway: default.map(|d| d.gateway.to_string()),
        gateway_mac,
        unplaced,
    }
}

fn hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn hex_addr(s: &str) -> Option<Ipv4Addr> {
    hex_u32(s).map(|v| Ipv4Addr::from(v.to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/net")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_routes() {
        let r = routes(&fixture("route")).unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r[0].iface, "enp3s0");
        assert_eq!(r[0].gateway, ip("192.168.10.1"));
        assert!(r[0].is_default());
        assert_eq!(r[0].metric, 100);
        assert_eq!(r[2].destination, ip("192.168.10.0"));
        assert_eq!(r[2].mask, ip("255.255.255.0"));
        assert_eq!(r[4].destination, ip("172.17.0.0"));
        assert_eq!(r[4].mask, ip("255.255.0.0"));
        assert!(routes("").is_err());
        assert!(routes("garbage\n").is_err());
    }

    #[test]
    fn parses_arp() {
        let a = arp(&fixture("arp"));
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].ip, ip("192.168.10.1"));
        assert_eq!(a[0].mac, "00:aa:bb:cc:dd:ee");
        assert_eq!(a[1].flags, 0);
        assert_eq!(a[2].device, "wlp2s0");
    }

    #[test]
    fn finds_local_addresses_in_fib_trie() {
        assert_eq!(
            local_addresses(&fixture("fib_trie")),
            vec![
                ip("127.0.0.1"),
                ip("172.17.0.1"),
                ip("192.168.0.37"),
                ip("192.168.10.21")
            ]
        );
    }

    #[test]
    fn reads_nameservers() {
        assert_eq!(
            nameservers(&fixture("resolv.conf")),
            ["192.168.10.1", "8.8.8.8"]
        );
    }

    #[test]
    fn builds_the_layout() {
        let ifaces = vec![
            Iface {
                name: "lo".into(),
                mac: None,
                up: true,
            },
            Iface {
                name: "enp3s0".into(),
                mac: Some("00:11:22:33:44:55".into()),
                up: true,
            },
            Iface {
                name: "wlp2s0".into(),
                mac: Some("66:77:88:99:aa:bb".into()),
                up: true,
            },
            Iface {
                name: "docker0".into(),
                mac: Some("02:42:00:00:00:01".into()),
                up: false,
            },
        ];
        let l = layout(
            &ifaces,
            &routes(&fixture("route")).unwrap(),
            &arp(&fixture("arp")),
            &local_addresses(&fixture("fib_trie")),
            &nameservers(&fixture("resolv.conf")),
        );
        let names: Vec<_> = l.adapters.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["docker0", "enp3s0", "wlp2s0"]);
        assert_eq!(l.default_gateway.as_deref(), Some("192.168.10.1"));
        assert_eq!(l.gateway_mac.as_deref(), Some("00:aa:bb:cc:dd:ee"));
        let enp = &l.adapters[1];
        assert_eq!(enp.addresses, ["192.168.10.21/24"]);
        assert_eq!(enp.gateways, ["192.168.10.1"]);
        assert_eq!(enp.dns, ["192.168.10.1", "8.8.8.8"]);
        assert_eq!(l.adapters[2].gateways, ["192.168.0.1"]);
        assert_eq!(l.adapters[0].addresses, ["172.17.0.1/16"]);
        assert!(l.adapters[0].dns.is_empty());
        assert!(!l.adapters[0].up);
        assert!(l.unplaced.is_empty());
    }

    #[test]
    fn layout_without_sysfs_or_arp_still_has_routes() {
        let l = layout(
            &[],
            &routes(&fixture("route")).unwrap(),
            &[],
            &[ip("192.168.10.21"), ip("10.9.9.9")],
            &[],
        );
        assert_eq!(l.adapters.len(), 3);
        assert!(l.adapters.iter().all(|a| a.mac.is_none() && a.up));
        assert_eq!(l.gateway_mac, None);
        assert_eq!(l.unplaced, vec![ip("10.9.9.9")]);
    }

    #[test]
    fn zero_mac_is_none() {
        assert_eq!(normalize_mac("00:00:00:00:00:00"), None);
        assert_eq!(
            normalize_mac("00:AA:bb:cc:dd:ee\n").as_deref(),
            Some("00:aa:bb:cc:dd:ee")
        );
    }
}
