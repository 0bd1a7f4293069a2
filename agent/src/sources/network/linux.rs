//! The network layout from `/proc/net/{route,arp,fib_trie}`, `/sys/class/net/<if>/` and
//! `/etc/resolv.conf`.

use std::fs;

use onshi_shared::Adapter;

use super::{AREA, parse};
use crate::sources::{Ctx, Notes, read_text, read_text_noted};

pub(super) fn layout(
    ctx: &Ctx,
    notes: &mut Notes,
) -> (Vec<Adapter>, Option<String>, Option<String>) {
    let routes = read_text_noted(&ctx.path("proc/net/route"), AREA, notes)
        .map(|text| {
            parse::routes(&text).unwrap_or_else(|e| {
                notes.push(AREA, e.to_string());
                Vec::new()
            })
        })
        .unwrap_or_default();
    let arp = read_text_noted(&ctx.path("proc/net/arp"), AREA, notes)
        .map(|t| parse::arp(&t))
        .unwrap_or_default();
    let local = read_text_noted(&ctx.path("proc/net/fib_trie"), AREA, notes)
        .map(|t| parse::local_addresses(&t))
        .unwrap_or_default();
    let nameservers = read_text_noted(&ctx.path("etc/resolv.conf"), AREA, notes)
        .map(|t| parse::nameservers(&t))
        .unwrap_or_default();
    let ifaces = interfaces(ctx, notes);

    let layout = parse::layout(&ifaces, &routes, &arp, &local, &nameservers);
    if !layout.unplaced.is_empty() {
        let list: Vec<String> = layout.unplaced.iter().map(|a| a.to_string()).collect();
        notes.push(
            AREA,
            format!("addresses on no known network: {}", list.join(", ")),
        );
    }
    (layout.adapters, layout.default_gateway, layout.gateway_mac)
}

fn interfaces(ctx: &Ctx, notes: &mut Notes) -> Vec<parse::Iface> {
    let dir = ctx.path("sys/class/net");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            notes.push(AREA, format!("cannot list {}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let read = |file: &str| read_text(&dir.join(&name).join(file)).ok().flatten();
            parse::Iface {
                mac: read("address").and_then(|m| parse::normalize_mac(&m)),
                up: is_up(read("operstate").as_deref(), read("flags").as_deref()),
                name,
            }
        })
        .collect()
}

/// `operstate` is `unknown` for drivers that do not track the link (tun, some virtual NICs);
/// then the administrative `IFF_UP` flag decides.
fn is_up(operstate: Option<&str>, flags: Option<&str>) -> bool {
    const IFF_UP: u32 = 0x1;
    match operstate.map(str::trim) {
        Some("up") => true,
        Some("unknown") => flags
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|f| f & IFF_UP != 0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_state() {
        assert!(is_up(Some("up\n"), None));
        assert!(!is_up(Some("down\n"), Some("0x1003")));
        assert!(is_up(Some("unknown\n"), Some("0x1091\n")));
        assert!(!is_up(Some("unknown"), Some("0x1090")));
        assert!(!is_up(None, None));
    }
}
