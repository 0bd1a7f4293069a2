//! The network layout from `GetAdaptersAddresses` (adapters, addresses, gateways, DNS), the
//! default route from `GetIpForwardTable2`, and the gateway's MAC from `GetIpNetTable2`.
//!
//! IPv4 only, like the Linux source: IPv6 temporary addresses change daily and would make the
//! fingerprint change with them.

use std::net::Ipv4Addr;
use std::ptr;

use onshi_shared::Adapter;
use windows_sys::Win32::Foundation::{ERROR_BUFFER_OVERFLOW, ERROR_SUCCESS};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    FreeMibTable, GAA_FLAG_INCLUDE_GATEWAYS, GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_MULTICAST,
    GetAdaptersAddresses, GetIpForwardTable2, GetIpNetTable2, IF_TYPE_SOFTWARE_LOOPBACK,
    IP_ADAPTER_ADDRESSES_LH, MIB_IPFORWARD_TABLE2, MIB_IPNET_TABLE2,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Networking::WinSock::{AF_INET, SOCKADDR, SOCKADDR_IN};

use super::AREA;
use crate::sources::{Ctx, Notes, win32};

pub(super) fn layout(
    _ctx: &Ctx,
    notes: &mut Notes,
) -> (Vec<Adapter>, Option<String>, Option<String>) {
    let mut adapters = match adapters() {
        Ok(adapters) => adapters,
        Err(rc) => {
            notes.push(AREA, format!("GetAdaptersAddresses failed: error {rc}"));
            Vec::new()
        }
    };
    adapters.sort_by(|a, b| a.name.cmp(&b.name));
    let default_gateway = match default_route() {
        Ok(gw) => gw,
        Err(rc) => {
            notes.push(
                AREA,
                format!(
                    "GetIpForwardTable2 failed (error {rc}); default gateway from the adapters"
                ),
            );
            None
        }
    }
    .or_else(|| {
        adapters
            .iter()
            .filter(|a| a.up)
            .find_map(|a| a.gateways.first())
            .and_then(|g| g.parse().ok())
    });
    let gateway_mac = match default_gateway {
        Some(gw) => match neighbor_mac(gw) {
            Ok(mac) => mac,
            Err(rc) => {
                notes.push(
                    AREA,
                    format!("GetIpNetTable2 failed (error {rc}): gateway MAC unknown"),
                );
                None
            }
        },
        None => None,
    };
    (
        adapters,
        default_gateway.map(|g| g.to_string()),
        gateway_mac,
    )
}

fn adapters() -> Result<Vec<Adapter>, u32> {
    let flags = GAA_FLAG_INCLUDE_GATEWAYS | GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST;
    // u64s for the structure's alignment; Microsoft suggests starting at 15 KB.
    let mut buf: Vec<u64> = vec![0; 15 * 1024 / 8];
    for _ in 0..4 {
        let mut size = u32::try_from(buf.len() * 8).unwrap_or(u32::MAX);
        // SAFETY: `buf` has `size` writable bytes, suitably aligned.
        let rc = unsafe {
            GetAdaptersAddresses(
                u32::from(AF_INET),
                flags,
                ptr::null(),
                buf.as_mut_ptr().cast(),
                &mut size,
            )
        };
        match rc {
            ERROR_SUCCESS => {
                // SAFETY: on success the buffer holds a linked list of adapters.
                return Ok(unsafe { walk(buf.as_ptr().cast()) });
            }
            ERROR_BUFFER_OVERFLOW => buf = vec![0; (size as usize).div_ceil(8) + 64],
            rc => return Err(rc),
        }
    }
    Err(ERROR_BUFFER_OVERFLOW)
}

/// # Safety
/// `first` must be the head of the list GetAdaptersAddresses filled, still alive.
unsafe fn walk(first: *const IP_ADAPTER_ADDRESSES_LH) -> Vec<Adapter> {
    let mut out = Vec::new();
    let mut p = first;
    // SAFETY: every pointer followed is one the API set, within the caller's buffer.
    unsafe {
        while !p.is_null() && out.len() < 256 {
            let a = &*p;
            p = a.Next;
            if a.IfType == IF_TYPE_SOFTWARE_LOOPBACK {
                continue;
            }
            let mut addresses = Vec::new();
            let mut u = a.FirstUnicastAddress;
            while !u.is_null() {
                if let Some(ip) = ipv4((*u).Address.lpSockaddr) {
                    addresses.push(format!("{ip}/{}", (*u).OnLinkPrefixLength));
                }
                u = (*u).Next;
            }
            let mut gateways = Vec::new();
            let mut g = a.FirstGatewayAddress;
            while !g.is_null() {
                if let Some(ip) = ipv4((*g).Address.lpSockaddr) {
                    gateways.push(ip.to_string());
                }
                g = (*g).Next;
            }
            let mut dns = Vec::new();
            let mut d = a.FirstDnsServerAddress;
            while !d.is_null() {
                if let Some(ip) = ipv4((*d).Address.lpSockaddr) {
                    dns.push(ip.to_string());
                }
                d = (*d).Next;
            }
            let mac_len = (a.PhysicalAddressLength as usize).min(a.PhysicalAddress.len());
            out.push(Adapter {
                name: win32::pwstr(a.FriendlyName),
                mac: mac(&a.PhysicalAddress[..mac_len]),
                up: a.OperStatus == IfOperStatusUp,
                addresses,
                gateways,
                dns,
            });
        }
    }
    out
}

/// # Safety
/// `sa` must be null or point to a socket address of its family's size.
unsafe fn ipv4(sa: *const SOCKADDR) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the family is read first; only an AF_INET address is read as SOCKADDR_IN.
    unsafe {
        if (*sa).sa_family != AF_INET {
            return None;
        }
        let sin = &*sa.cast::<SOCKADDR_IN>();
        Some(Ipv4Addr::from(sin.sin_addr.S_un.S_addr.to_ne_bytes()))
    }
}

/// `aa:bb:cc:dd:ee:ff`, lower case like the Linux source; `None` for no or an all-zero address.
fn mac(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 6 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// The next hop of the IPv4 default route with the lowest metric.
fn default_route() -> Result<Option<Ipv4Addr>, u32> {
    let mut table: *mut MIB_IPFORWARD_TABLE2 = ptr::null_mut();
    // SAFETY: the table is allocated by the API and freed with FreeMibTable.
    let rc = unsafe { GetIpForwardTable2(AF_INET, &mut table) };
    if rc != ERROR_SUCCESS || table.is_null() {
        return Err(rc);
    }
    let mut best: Option<(u32, Ipv4Addr)> = None;
    // SAFETY: `NumEntries` rows follow the header.
    unsafe {
        let rows =
            std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize);
        for row in rows {
            if row.DestinationPrefix.PrefixLength != 0 || row.NextHop.si_family != AF_INET {
                continue;
            }
            let hop = Ipv4Addr::from(row.NextHop.Ipv4.sin_addr.S_un.S_addr.to_ne_bytes());
            if hop.is_unspecified() {
                continue;
            }
            if best.is_none_or(|(m, _)| row.Metric < m) {
                best = Some((row.Metric, hop));
            }
        }
        FreeMibTable(table.cast());
    }
    Ok(best.map(|(_, hop)| hop))
}

/// The MAC of `ip` in the neighbor (ARP) table.
fn neighbor_mac(ip: Ipv4Addr) -> Result<Option<String>, u32> {
    let mut table: *mut MIB_IPNET_TABLE2 = ptr::null_mut();
    // SAFETY: the table is allocated by the API and freed with FreeMibTable.
    let rc = unsafe { GetIpNetTable2(AF_INET, &mut table) };
    if rc != ERROR_SUCCESS || table.is_null() {
        return Err(rc);
    }
    // SAFETY: `NumEntries` rows follow the header.
    unsafe {
        let rows =
            std::slice::from_raw_parts((*table).Table.as_ptr(), (*table).NumEntries as usize);
        let found = rows.iter().find_map(|row| {
            if row.Address.si_family != AF_INET {
                return None;
            }
            let addr = Ipv4Addr::from(row.Address.Ipv4.sin_addr.S_un.S_addr.to_ne_bytes());
            let len = (row.PhysicalAddressLength as usize).min(row.PhysicalAddress.len());
            (addr == ip)
                .then(|| mac(&row.PhysicalAddress[..len]))
                .flatten()
        });
        FreeMibTable(table.cast());
        Ok(found)
    }
}
