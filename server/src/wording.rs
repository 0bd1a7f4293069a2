//! Japanese for what terminals report in English (network changes, probe errors, notes of the
//! sources): the desk's pages and the clinics' mails never show the agent's own wording.

/// `<adapter name> <old> -> <new>`: adapter names may hold spaces (Windows' 「イーサネット 2」),
/// the values never do (lists are comma-joined).
fn on_adapter(rest: &str) -> Option<(&str, &str)> {
    let (left, _) = rest.split_once(" -> ")?;
    let (name, _) = left.rsplit_once(' ')?;
    Some((name, &rest[name.len() + 1..]))
}

/// One network change as the agent words it (`gateway 192.168.1.1 -> 192.168.2.1`), in
/// Japanese. A change this server does not know the words of is said to be one, without the
/// agent's English (it stays in the stored report).
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
        && let Some((name, values)) = on_adapter(rest)
        && let Some((a, b)) = arrow(values)
    {
        return format!("{name} のゲートウェイ {a} → {b}");
    }
    if let Some(rest) = change.strip_prefix("DNS on ")
        && let Some((name, values)) = on_adapter(rest)
        && let Some((a, b)) = arrow(values)
    {
        return format!("{name} のDNSサーバー {a} → {b}");
    }
    if let Some(rest) = change.strip_prefix("MAC of ")
        && let Some((name, values)) = on_adapter(rest)
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
    "その他のネットワーク設定の変更".to_string()
}

/// One account event as the agent's log reader words it (`password_reset`,
/// `renamed onshi -> onshi2`, `added_to_group Administrators`), in Japanese.
pub fn account_change_ja(what: &str) -> String {
    let (kind, rest) = what.split_once(' ').unwrap_or((what, ""));
    match kind {
        "created" => "作成".into(),
        "enabled" => "有効化".into(),
        "password_changed" => "パスワード変更".into(),
        "password_reset" => "パスワードのリセット".into(),
        "disabled" => "無効化".into(),
        "deleted" => "削除".into(),
        "changed" => "設定の変更".into(),
        "locked_out" => "ロックアウト".into(),
        "renamed" => match rest.split_once(" -> ") {
            Some((from, to)) => format!("名前の変更 (「{from}」→「{to}」)"),
            None => "名前の変更".into(),
        },
        "added_to_group" => format!("グループ「{rest}」に追加"),
        "removed_from_group" => format!("グループ「{rest}」から削除"),
        _ => "アカウントの変更".into(),
    }
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

/// Why a source could not read something, in Japanese, from the agent's English detail (the
/// detail itself stays in the stored report).
pub fn source_reason_ja(detail: &str) -> &'static str {
    let d = detail.to_lowercase();
    if d.contains("denied")
        || d.contains("permission")
        || d.contains("os error 5)")
        || d.contains("os error 13)")
    {
        "権限がありません"
    } else if d.contains("not found") || d.contains("no such") || d.contains("os error 2)") {
        "見つかりません"
    } else if d.contains("timed out") || d.contains("timeout") {
        "時間内に応答がありません"
    } else if d.contains("not supported")
        || d.contains("unsupported")
        || d.contains("code 124")
        || d.contains("code 2140")
    {
        "この端末では読めない項目です"
    } else if d.contains("corrupt") || d.contains("invalid") || d.contains("parse") {
        "内容を解釈できません"
    } else {
        "読み取り中のエラー"
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

/// A count with thousands separators, as Japanese pages write it: 275000 → 「275,000」.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        use super::thousands;
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(275_000), "275,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-50_000), "-50,000");
    }

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
            (
                "DNS on イーサネット 2 192.168.10.1 -> none",
                "イーサネット 2 のDNSサーバー 192.168.10.1 → なし",
            ),
            (
                "gateways on Wi-Fi 2 Home 192.168.1.1 -> 10.0.0.1,10.0.0.2",
                "Wi-Fi 2 Home のゲートウェイ 192.168.1.1 → 10.0.0.1、10.0.0.2",
            ),
            ("something new", "その他のネットワーク設定の変更"),
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

    #[test]
    fn source_failures_read_in_japanese() {
        assert_eq!(
            source_reason_ja("Access is denied. (os error 5)"),
            "権限がありません"
        );
        assert_eq!(
            source_reason_ja("NetUserGetInfo answered code 2140"),
            "この端末では読めない項目です"
        );
        assert_eq!(source_reason_ja("something odd"), "読み取り中のエラー");
    }

    #[test]
    fn account_events_read_in_japanese() {
        for (agent, want) in [
            ("password_reset", "パスワードのリセット"),
            ("locked_out", "ロックアウト"),
            (
                "renamed onshi -> onshi2",
                "名前の変更 (「onshi」→「onshi2」)",
            ),
            (
                "added_to_group Administrators",
                "グループ「Administrators」に追加",
            ),
            ("something_new", "アカウントの変更"),
        ] {
            assert_eq!(account_change_ja(agent), want, "{agent}");
        }
    }
}
