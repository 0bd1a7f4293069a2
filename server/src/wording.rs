//! Japanese for what terminals report in English (network changes, probe errors, notes of the
//! sources): the desk's pages and the clinics' mails never show the agent's own wording.

/// One network change as the agent words it (`gateway 192.168.1.1 -> 192.168.2.1`), in
/// Japanese. Anything unknown is said to be a change, with the agent's text after it.
pub fn network_change_ja(change: &str) -> String {
    let none = |v: &str| {
        if v == "none" {
            "なし".to_string()
        } else {
            v.replace(',', "、")
        }
    };
    let arrow = |rest: &str| -> Option<(String, String)> {
        let (a, b) = rest.split_once(" -> ")?;
        Some((none(a.trim()), none(b.trim())))
    };
    if let Some(rest) = change.strip_prefix("gateway MAC ")
        && let Some((a, b)) = arrow(rest)
    {
        return format!("ゲートウェイのMACアドレス {a} → {b}");
    }
    if let Some(rest) = change.strip_prefix("gateway ")
        && let Some((a, b)) = arrow(rest)
    {
        return format!("デフォルトゲートウェイ {a} → {b}");
    }
    if let Some(rest) = change.strip_prefix("gateways on ")
        && let Some((name, values)) = rest.split_once(' ')
        && let Some((a, b)) = arrow(values)
    {
        return format!("{name} のゲートウェイ {a} → {b}");
    }
    if let Some(rest) = change.strip_prefix("DNS on ")
        && let Some((name, values)) = rest.split_once(' ')
        && let Some((a, b)) = arrow(values)
    {
        return format!("{name} のDNSサーバー {a} → {b}");
    }
    if let Some(rest) = change.strip_prefix("MAC of ")
        && let Some((name, values)) = rest.split_once(' ')
        && let Some((a, b)) = arrow(values)
    {
        return format!("{name} のMACアドレス {a} → {b}");
    }
    if let Some(name) = change
        .strip_prefix("adapter ")
        .and_then(|r| r.strip_suffix(" removed"))
    {
        return format!("ネットワークアダプター {name} がなくなりました");
    }
    if let Some(name) = change
        .strip_prefix("adapter ")
        .and_then(|r| r.strip_suffix(" added"))
    {
        return format!("ネットワークアダプター {name} が追加されました");
    }
    if let Some((address, name)) = change
        .strip_prefix("address ")
        .and_then(|r| r.split_once(" removed from "))
    {
        return format!("{name} のアドレス {address} がなくなりました");
    }
    if let Some((address, name)) = change
        .strip_prefix("address ")
        .and_then(|r| r.split_once(" added on "))
    {
        return format!("{name} にアドレス {address} が追加されました");
    }
    if change == "network layout changed" {
        return "ネットワークの構成".to_string();
    }
    if let Some(n) = change.strip_suffix(" more changes") {
        return format!("ほか {n} 件の変更");
    }
    format!("変更 ({change})")
}

/// Why a probe failed, in Japanese (the agent reports the operating system's English).
pub fn probe_error_ja(error: &str) -> String {
    let lower = error.to_lowercase();
    if let Some(ms) = lower
        .strip_prefix("no answer within ")
        .and_then(|r| r.strip_suffix(" ms"))
    {
        return format!("{ms} ミリ秒以内に応答がありません");
    }
    if lower.contains("timed out") {
        "応答がありません（タイムアウト）".into()
    } else if lower.contains("refused") {
        "接続を拒否されました（相手が受け付けていません）".into()
    } else if lower.contains("unreachable") {
        "相手に届きません（経路がありません）".into()
    } else if lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
    {
        "名前を解決できません（DNS）".into()
    } else {
        "接続できませんでした".into()
    }
}

/// A note of a source that could not read something (`area: detail`), in Japanese: the area by
/// name, the agent's own detail left out of the page (it is in the stored report).
pub fn source_area_ja(area: &str) -> &'static str {
    match area {
        a if a.starts_with("cert") => "電子証明書",
        a if a.starts_with("account") => "アカウント",
        a if a.starts_with("app") => "アプリ",
        a if a.starts_with("network") || a.starts_with("probe") => "ネットワーク",
        a if a.starts_with("uptime") || a.starts_with("boot") => "起動の記録",
        a if a.starts_with("backup") => "バックアップ",
        _ => "その他",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_changes_read_in_japanese() {
        for (agent, want) in [
            (
                "gateway 192.168.10.1 -> 192.168.20.1",
                "デフォルトゲートウェイ 192.168.10.1 → 192.168.20.1",
            ),
            (
                "gateway MAC 00:aa:bb:cc:dd:ee -> none",
                "ゲートウェイのMACアドレス 00:aa:bb:cc:dd:ee → なし",
            ),
            (
                "adapter wlp2s0 removed",
                "ネットワークアダプター wlp2s0 がなくなりました",
            ),
            (
                "adapter eth1 added",
                "ネットワークアダプター eth1 が追加されました",
            ),
            (
                "address 192.168.10.5/24 added on enp3s0",
                "enp3s0 にアドレス 192.168.10.5/24 が追加されました",
            ),
            (
                "DNS on enp3s0 192.168.10.1 -> 8.8.8.8,8.8.4.4",
                "enp3s0 のDNSサーバー 192.168.10.1 → 8.8.8.8、8.8.4.4",
            ),
            ("3 more changes", "ほか 3 件の変更"),
            ("something new", "変更 (something new)"),
        ] {
            assert_eq!(network_change_ja(agent), want, "{agent}");
        }
        assert_eq!(
            probe_error_ja("no answer within 3000 ms"),
            "3000 ミリ秒以内に応答がありません"
        );
        assert_eq!(
            probe_error_ja("connection timed out"),
            "応答がありません（タイムアウト）"
        );
        assert!(probe_error_ja("Connection refused (os error 111)").contains("拒否"));
    }
}
