//! How the desk's pages word things: query strings, event descriptions and the header every
//! page shares (times and durations are [`crate::jst`]'s). Pure functions, tested here.

use onshi_shared::{Event, EventKind};

use super::session::{Staff, url_encode};
use crate::jst::time_ja;
use crate::wording::network_change_ja;

/// The header: who is signed in, their CSRF token for the logout form, which tab is active.
#[derive(Debug, Clone)]
pub struct Nav {
    pub user: String,
    pub admin: bool,
    /// An admin of the whole fleet (the users page).
    pub fleet_admin: bool,
    /// The staff member's scope in words, empty for the whole fleet.
    pub scope: String,
    pub csrf: String,
    pub active: &'static str,
}

impl Nav {
    pub fn new(staff: &Staff, active: &'static str) -> Nav {
        Nav {
            user: staff.user.name.clone(),
            admin: staff.is_admin(),
            fleet_admin: staff.is_fleet_admin(),
            scope: staff.user.scope.as_ref().map_or_else(String::new, |s| {
                let groups = if s.groups.is_empty() {
                    Vec::new()
                } else {
                    vec!["…"]
                };
                crate::desk::users::scope_words(&s.prefectures, &groups)
            }),
            csrf: staff.user.csrf.clone(),
            active,
        }
    }
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

/// One line of Japanese for a stored event.
pub fn describe_event(e: &Event) -> String {
    match &e.kind {
        EventKind::AgentStarted { version } => format!("エージェント起動 (v{version})"),
        EventKind::Rebooted { start_kind, .. } => format!("起動: {}", start_kind.label_ja()),
        EventKind::AccountChanged { role, name, change } => {
            format!("{} {name}: {}", role.label_ja(), change.label_ja())
        }
        EventKind::NetworkChanged { changes, .. } => {
            let changes: Vec<String> = changes.iter().map(|c| network_change_ja(c)).collect();
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
            at: chrono::Utc::now(),
            kind: EventKind::AccountChanged {
                role: onshi_shared::AccountRole::Linkage,
                name: "renkei".into(),
                change: onshi_shared::AccountChange::Renamed {
                    from: "renkei".into(),
                    to: "renkei2".into(),
                },
            },
        };
        assert_eq!(
            describe_event(&e),
            "連携アカウント renkei: 名前の変更 (renkei → renkei2)"
        );
    }
}
