//! Adapters, addresses, gateways, DNS, the gateway's MAC, a fingerprint of all of it, and the
//! reachability of the policy's probe targets.

#[cfg(unix)]
mod linux;
#[cfg(unix)]
pub mod parse;
#[cfg(windows)]
mod windows;

use std::time::{Duration, Instant};

use onshi_shared::{Adapter, Network, ProbeResult};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use super::{Ctx, Notes};

const AREA: &str = "network";

/// Reads the network area and runs the probes.
pub async fn collect(ctx: &Ctx, notes: &mut Notes) -> Network {
    #[cfg(unix)]
    let (adapters, default_gateway, gateway_mac) = linux::layout(ctx, notes);
    #[cfg(windows)]
    let (adapters, default_gateway, gateway_mac) = windows::layout(ctx, notes);
    #[cfg(not(any(unix, windows)))]
    let (adapters, default_gateway, gateway_mac) = {
        notes.push(AREA, "not implemented on this platform");
        (Vec::new(), None, None)
    };
    let fingerprint = fingerprint(
        &adapters,
        default_gateway.as_deref(),
        gateway_mac.as_deref(),
    );
    let probes = probe_all(&ctx.policy.probe_targets, ctx.probe_timeout).await;
    Network {
        adapters,
        default_gateway,
        gateway_mac,
        fingerprint,
        probes,
    }
}

/// The first 16 hex digits of a SHA-256 over a canonical rendering of the layout: adapters by
/// name with sorted addresses, gateways and DNS servers, then the default gateway and its MAC.
/// Link state (`up`) is left out: a cable pulled and put back is not a network change.
pub fn fingerprint(
    adapters: &[Adapter],
    default_gateway: Option<&str>,
    gateway_mac: Option<&str>,
) -> String {
    let sorted = |list: &[String]| {
        let mut v = list.to_vec();
        v.sort();
        v.join(",")
    };
    let mut adapters: Vec<&Adapter> = adapters.iter().collect();
    adapters.sort_by(|a, b| a.name.cmp(&b.name));
    let mut canonical = String::new();
    for a in adapters {
        canonical.push_str(&format!(
            "adapter={}|mac={}|addr={}|gw={}|dns={}\n",
            a.name,
            a.mac.as_deref().unwrap_or("-"),
            sorted(&a.addresses),
            sorted(&a.gateways),
            sorted(&a.dns),
        ));
    }
    canonical.push_str(&format!(
        "default_gateway={}\ngateway_mac={}\n",
        default_gateway.unwrap_or("-"),
        gateway_mac.unwrap_or("-")
    ));
    let digest = Sha256::digest(canonical.as_bytes());
    hex::encode(digest)[..16].to_string()
}

/// Probes every target at once; results in the order of `targets`.
pub async fn probe_all(targets: &[String], timeout: Duration) -> Vec<ProbeResult> {
    let mut set = tokio::task::JoinSet::new();
    for (i, target) in targets.iter().enumerate() {
        let target = target.clone();
        set.spawn(async move { (i, probe(&target, timeout).await) });
    }
    let mut results: Vec<Option<ProbeResult>> = vec![None; targets.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, result)) = joined {
            results[i] = Some(result);
        }
    }
    results
        .into_iter()
        .zip(targets)
        .map(|(r, target)| {
            r.unwrap_or_else(|| ProbeResult {
                target: target.clone(),
                reachable: false,
                latency_ms: None,
                error: Some("probe task failed".into()),
            })
        })
        .collect()
}

/// A TCP connect to `host:port` within `timeout`.
pub async fn probe(target: &str, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, TcpStream::connect(target)).await;
    let elapsed = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let (reachable, latency_ms, error) = match outcome {
        Ok(Ok(_stream)) => (true, Some(elapsed), None),
        Ok(Err(e)) => (false, None, Some(e.to_string())),
        Err(_) => (
            false,
            None,
            Some(format!("no answer within {} ms", timeout.as_millis())),
        ),
    };
    ProbeResult {
        target: target.to_string(),
        reachable,
        latency_ms,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, addr: &str) -> Adapter {
        Adapter {
            name: name.into(),
            mac: Some("00:11:22:33:44:55".into()),
            up: true,
            addresses: vec![addr.into()],
            gateways: vec!["192.168.10.1".into()],
            dns: vec!["192.168.10.1".into()],
        }
    }

    #[test]
    fn fingerprint_ignores_order_and_link_state_but_not_content() {
        let a = vec![
            adapter("eth0", "192.168.10.21/24"),
            adapter("eth1", "10.0.0.2/8"),
        ];
        let mut b = vec![a[1].clone(), a[0].clone()];
        b[0].up = false;
        let fa = fingerprint(&a, Some("192.168.10.1"), Some("00:aa:bb:cc:dd:ee"));
        assert_eq!(fa.len(), 16);
        assert_eq!(
            fa,
            fingerprint(&b, Some("192.168.10.1"), Some("00:aa:bb:cc:dd:ee"))
        );
        assert_ne!(
            fa,
            fingerprint(&a, Some("192.168.10.1"), Some("00:aa:bb:cc:dd:ef"))
        );
        assert_ne!(
            fa,
            fingerprint(&a, Some("192.168.10.254"), Some("00:aa:bb:cc:dd:ee"))
        );
        let mut c = a.clone();
        c[0].dns.push("8.8.8.8".into());
        assert_ne!(
            fa,
            fingerprint(&c, Some("192.168.10.1"), Some("00:aa:bb:cc:dd:ee"))
        );
    }

    #[tokio::test]
    async fn probes_report_reachable_and_unreachable_targets_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().to_string();
        // A port that was free a moment ago: bind, note it, close it.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let targets = vec![closed.clone(), open.clone(), "not a target".to_string()];
        let results = probe_all(&targets, Duration::from_secs(2)).await;
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].target, closed);
        assert!(!results[0].reachable);
        assert!(results[0].error.is_some());
        assert_eq!(results[1].target, open);
        assert!(results[1].reachable, "{:?}", results[1]);
        assert!(results[1].latency_ms.is_some());
        assert!(!results[2].reachable);
    }
}
