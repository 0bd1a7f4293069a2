//! What the rules find: the rule keys (one alert per terminal and key) and severities.

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Severity::Info => "お知らせ",
            Severity::Warning => "注意",
            Severity::Critical => "緊急",
        }
    }
}

/// A rule: with the terminal, the key of one alert. The discriminant is the rule's bit in
/// [`crate::domain::OverviewLine::open_rules`] (stored: keep the order, add at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleKey {
    Offline = 0,
    ProtectedAccountWindows = 1,
    ProtectedAccountFaceAuth = 2,
    ProtectedAccountLinkage = 3,
    CertMissing = 4,
    CertExpiry = 5,
    CertNoPrivateKey = 6,
    CertOldLeft = 7,
    BackupMissing = 8,
    BackupOutdated = 9,
    WindowsPasswordExpiry = 10,
    NoDailyRestart = 11,
    UpdatesBehind = 12,
    PendingReboot = 13,
    ProbeUnreachable = 14,
    NetworkChanged = 15,
    /// A protected account the terminal should have was not found when it was first seen:
    /// the names need confirming (for the desk only; no clinic mail).
    AccountsUnconfirmed = 16,
}

impl RuleKey {
    /// Every rule, in the order the dashboard lists them.
    pub const ALL: [RuleKey; 17] = [
        RuleKey::Offline,
        RuleKey::ProtectedAccountWindows,
        RuleKey::ProtectedAccountFaceAuth,
        RuleKey::ProtectedAccountLinkage,
        RuleKey::CertMissing,
        RuleKey::CertExpiry,
        RuleKey::CertNoPrivateKey,
        RuleKey::CertOldLeft,
        RuleKey::BackupMissing,
        RuleKey::BackupOutdated,
        RuleKey::WindowsPasswordExpiry,
        RuleKey::NoDailyRestart,
        RuleKey::UpdatesBehind,
        RuleKey::PendingReboot,
        RuleKey::ProbeUnreachable,
        RuleKey::NetworkChanged,
        RuleKey::AccountsUnconfirmed,
    ];

    /// The stored key (`alerts.rule`, links, the CLI).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKey::Offline => "offline",
            RuleKey::ProtectedAccountWindows => "protected_account.windows",
            RuleKey::ProtectedAccountFaceAuth => "protected_account.face_auth",
            RuleKey::ProtectedAccountLinkage => "protected_account.linkage",
            RuleKey::CertMissing => "cert_missing",
            RuleKey::CertExpiry => "cert_expiry",
            RuleKey::CertNoPrivateKey => "cert_no_private_key",
            RuleKey::CertOldLeft => "cert_old_left",
            RuleKey::BackupMissing => "backup_missing",
            RuleKey::BackupOutdated => "backup_outdated",
            RuleKey::WindowsPasswordExpiry => "windows_password_expiry",
            RuleKey::NoDailyRestart => "no_daily_restart",
            RuleKey::UpdatesBehind => "updates_behind",
            RuleKey::PendingReboot => "pending_reboot",
            RuleKey::ProbeUnreachable => "probe_unreachable",
            RuleKey::NetworkChanged => "network_changed",
            RuleKey::AccountsUnconfirmed => "accounts_unconfirmed",
        }
    }

    pub fn parse(s: &str) -> Option<RuleKey> {
        RuleKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The rule's title for the dashboard and the e-mails.
    pub fn title_ja(self) -> &'static str {
        match self {
            RuleKey::NoDailyRestart => "毎日の再起動が行われていません",
            RuleKey::UpdatesBehind => "アプリが最新版に更新されていません",
            RuleKey::PendingReboot => "更新のための再起動が保留されています",
            RuleKey::CertExpiry => "電子証明書の有効期限",
            RuleKey::CertMissing => "電子証明書が見つかりません",
            RuleKey::CertNoPrivateKey => "電子証明書に秘密キーがありません",
            RuleKey::CertOldLeft => "更新前の古い電子証明書が残っています",
            RuleKey::BackupMissing => "電子証明書のバックアップが確認できません",
            RuleKey::BackupOutdated => "バックアップが更新前の電子証明書のものです",
            RuleKey::WindowsPasswordExpiry => "Windowsアカウントのパスワードの有効期限",
            RuleKey::ProtectedAccountWindows => "Windowsアカウントが変更されました",
            RuleKey::ProtectedAccountFaceAuth => "顔認証アカウントが変更されました",
            RuleKey::ProtectedAccountLinkage => "連携アカウントが変更されました",
            RuleKey::NetworkChanged => "ネットワーク構成が変わりました",
            RuleKey::ProbeUnreachable => "接続先に到達できません",
            RuleKey::Offline => "端末から報告が届いていません",
            RuleKey::AccountsUnconfirmed => "保護アカウントの名前の確認が必要です",
        }
    }

    /// Findings for the desk only: never mailed to a clinic.
    pub fn desk_only(self) -> bool {
        matches!(self, RuleKey::AccountsUnconfirmed)
    }

    /// A short label for lists and filters.
    pub fn short_ja(self) -> &'static str {
        match self {
            RuleKey::Offline => "報告なし",
            RuleKey::ProtectedAccountWindows => "Windowsアカウント",
            RuleKey::ProtectedAccountFaceAuth => "顔認証アカウント",
            RuleKey::ProtectedAccountLinkage => "連携アカウント",
            RuleKey::CertMissing => "証明書なし",
            RuleKey::CertExpiry => "証明書期限",
            RuleKey::CertNoPrivateKey => "秘密キーなし",
            RuleKey::CertOldLeft => "古い証明書",
            RuleKey::BackupMissing => "バックアップなし",
            RuleKey::BackupOutdated => "古いバックアップ",
            RuleKey::WindowsPasswordExpiry => "パスワード期限",
            RuleKey::NoDailyRestart => "再起動なし",
            RuleKey::UpdatesBehind => "更新遅れ",
            RuleKey::PendingReboot => "再起動待ち",
            RuleKey::ProbeUnreachable => "接続不可",
            RuleKey::NetworkChanged => "ネットワーク変更",
            RuleKey::AccountsUnconfirmed => "設定確認が必要",
        }
    }

    /// The rule's bit in a set of rules.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The rules whose bits are set in `bits`, in dashboard order.
    pub fn from_bits(bits: u32) -> impl Iterator<Item = RuleKey> {
        RuleKey::ALL
            .into_iter()
            .filter(move |k| bits & k.bit() != 0)
    }

    /// The protected-account rule of a role, if the role is protected.
    pub fn protected_account(role: onshi_shared::AccountRole) -> Option<RuleKey> {
        use onshi_shared::AccountRole;
        match role {
            AccountRole::Windows => Some(RuleKey::ProtectedAccountWindows),
            AccountRole::FaceAuth => Some(RuleKey::ProtectedAccountFaceAuth),
            AccountRole::Linkage => Some(RuleKey::ProtectedAccountLinkage),
            _ => None,
        }
    }
}

impl std::fmt::Display for RuleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bits_are_distinct() {
        let mut seen = 0u32;
        for (i, k) in RuleKey::ALL.into_iter().enumerate() {
            assert_eq!(RuleKey::parse(k.as_str()), Some(k));
            assert_eq!(k.bit(), 1 << i, "the bit is the dashboard position: {k:?}");
            assert_eq!(seen & k.bit(), 0);
            seen |= k.bit();
        }
        assert_eq!(
            RuleKey::from_bits(RuleKey::Offline.bit() | RuleKey::CertExpiry.bit())
                .collect::<Vec<_>>(),
            vec![RuleKey::Offline, RuleKey::CertExpiry]
        );
        assert_eq!(RuleKey::parse("made_up"), None);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
    }
}
