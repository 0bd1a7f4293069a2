//! How the desk's pages word things: JST times, durations, query strings, event descriptions
//! and the header every page shares. Pure functions, tested here.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use onshi_shared::{AccountChange, Event, EventKind};

use super::session::{Staff, url_encode};
use crate::calendar::jst;

/// The header: who is signed in, their CSRF token for the logout form, which tab is active.
#[derive(Debug, Clone)]
pub struct Nav {
    pub user: String,
    pub admin: bool,
    pub csrf: String,
    pub active: &'static str,
}

impl Nav {
    pub fn new(staff: &Staff, active: &'static str) -> Nav {
        Nav {
            user: staff.user.name.clone(),
            admin: staff.is_admin(),
            csrf: staff.user.csrf.clone(),
            active,
        }
    }
}

/// "3日 4時間", "5時間 12分", "8分".
pub fn duration_ja(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    if days > 0 {
        format!("{days}日 {hours}時間")
    } else if hours > 0 {
        format!("{hours}時間 {mins}分")
    } else {
        format!("{mins}分")
    }
}

pub fn time_ja(t: DateTime<Utc>) -> String {
    t.with_timezone(&jst()).format("%Y-%m-%d %H:%M").to_string()
}

pub fn opt_time_ja(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".into(), time_ja)
}

/// The value a `datetime-local` input shows for `t` (JST).
pub fn datetime_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&jst()).format("%Y-%m-%dT%H:%M").to_string()
}

/// Reads a `datetime-local` value (JST); empty means none.
pub fn parse_datetime_local(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| format!("日時の形式が正しくありません: {s}"))?;
    jst()
        .from_local_datetime(&naive)
        .single()
        .map(|t| Some(t.with_timezone(&Utc)))
        .ok_or_else(|| format!("日時が正しくありません: {s}"))
}

/// Builds `?k=v&...` from the pairs whose value is not empty, percent-encoded.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn start_kind_ja(kind: &str) -> &'static str {
    match kind {
        "cold_boot" => "再起動",
        "fast_startup" => "高速スタートアップ",
        "resume" => "休止状態から復帰",
        _ => "不明",
    }
}

fn account_change_ja(change: &AccountChange) -> String {
    match change {
        AccountChange::Created => "作成".into(),
        AccountChange::Deleted => "削除".into(),
        AccountChange::Renamed { from, to } => format!("名前の変更 {from} → {to}"),
        AccountChange::PasswordChanged => "パスワードの変更".into(),
        AccountChange::Disabled => "無効化".into(),
        AccountChange::Enabled => "有効化".into(),
        AccountChange::Locked => "ロックアウト".into(),
        AccountChange::Unlocked => "ロック解除".into(),
    }
}

/// One line of Japanese for a stored event.
pub fn describe_event(e: &Event) -> String {
    match &e.kind {
        EventKind::AgentStarted { version } => format!("エージェント起動 (v{version})"),
        EventKind::Rebooted { start_kind, .. } => {
            format!(
                "起動: {}",
                start_kind_ja(crate::ingest::start_kind_name(*start_kind))
            )
        }
        EventKind::AccountChanged { role, name, change } => {
            format!("{} {name}: {}", role.label_ja(), account_change_ja(change))
        }
        EventKind::NetworkChanged { changes, .. } => {
            format!("ネットワーク変更: {}", changes.join(" / "))
        }
        EventKind::AppUpdated { name, from, to } => format!(
            "アプリ更新 {name}: {} → {}",
            from.as_deref().unwrap_or("なし"),
            to.as_deref().unwrap_or("なし")
        ),
        EventKind::CertChanged {
            subject,
            not_after,
            added,
            ..
        } => format!(
            "証明書{} {subject} (有効期限 {})",
            if *added { "追加" } else { "削除" },
            time_ja(*not_after)
        ),
        EventKind::BackupVerified {
            matches_current, ..
        } => if *matches_current {
            "バックアップ確認 (現在の証明書)"
        } else {
            "バックアップ確認 (古い証明書)"
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ja(Duration::minutes(8)), "8分");
        assert_eq!(duration_ja(Duration::minutes(5 * 60 + 12)), "5時間 12分");
        assert_eq!(duration_ja(Duration::hours(76)), "3日 4時間");
        assert_eq!(duration_ja(Duration::minutes(-5)), "0分");
    }

    #[test]
    fn times_show_and_parse_in_jst() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T15:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time_ja(t), "2026-11-26 00:30");
        assert_eq!(datetime_local(t), "2026-11-26T00:30");
        assert_eq!(parse_datetime_local("2026-11-26T00:30").unwrap(), Some(t));
        assert_eq!(parse_datetime_local(" ").unwrap(), None);
        assert!(parse_datetime_local("tomorrow").is_err());
    }

    #[test]
    fn query_strings_skip_empty_values_and_encode() {
        assert_eq!(query_string(&[("a", String::new())]), "");
        assert_eq!(
            query_string(&[
                ("q", "山田 医院".into()),
                ("state", "ok".into()),
                ("x", "".into())
            ]),
            "?q=%E5%B1%B1%E7%94%B0%20%E5%8C%BB%E9%99%A2&state=ok"
        );
    }

    #[test]
    fn events_are_described_in_japanese() {
        let e = Event {
            id: uuid::Uuid::now_v7(),
            at: Utc::now(),
            kind: EventKind::AccountChanged {
                role: onshi_shared::AccountRole::Linkage,
                name: "renkei".into(),
                change: AccountChange::Renamed {
                    from: "renkei".into(),
                    to: "renkei2".into(),
                },
            },
        };
        assert_eq!(
            describe_event(&e),
            "連携アカウント renkei: 名前の変更 renkei → renkei2"
        );
    }
}
