//! What a clinic can do about each rule, in Japanese, quoting the vendor's screens and buttons
//! exactly as its operating notes (`shared/seed/terminal-operations-ja.txt`) name them.

use crate::domain::RuleKey;

/// A titled list of steps; a mail lists each group once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepGroup {
    pub title: &'static str,
    pub steps: Vec<String>,
}

/// The password rule of the vendor's backup steps (step 8), said once for every mail that
/// needs it.
pub const BACKUP_PASSWORD_RULE: &str =
    "パスワードは「1357」、またはお客様が決めた「4桁の半角数字」です";

/// The one instruction for an old certificate left beside the renewed one, wherever a mail
/// mentions it.
const OLD_CERT: &str = "更新前の古い電子証明書は、削除してよいかサポート窓口に確認してから削除してください（「certmgr.msc」の「個人」から「証明書」を開くと表示されます）。";

/// The vendor's backup steps 1–10 and the storage advice, word for word where it names a
/// screen, a button or a check box.
fn backup_steps() -> Vec<String> {
    [
        "画面の左下のWindowsボタンを右クリックし「ファイル名を指定して実行（R）」をクリックします。",
        "「certmgr.msc」を入力し「OK」ボタンをクリックします。",
        "「個人」から「証明書」をクリックします。",
        "発行者が「Online Billing NW Common Root CA」の有効期限が切れていない証明書を選択し、右クリック後、「すべてのタスク」-「エクスポート」をクリックします。",
        "「次へ」をクリックします。",
        "「はい、秘密キーをエクスポートします」を選択し、「次へ」ボタンをクリックします。",
        "「Personal Information Exchange - PKCS#12(.PFX)」を選択し、「証明のパスにある証明書を可能であればすべて含む」と「証明書のプライバシーを有効にする」にチェックを入れて「次へ」ボタンをクリックします。",
        "「パスワード」と「パスワードの確認」を入力し、「次へ」ボタンをクリックします。パスワードは「1357」、またはお客様が決めた「4桁の半角数字」です。端末に設定し直すときに必要なので、お客様の方で管理してください。お客様が決めた4桁にした場合は、サポート窓口にもお知らせください（バックアップの自動確認に使います）。",
        "「参照」ボタンをクリックして、証明書をバックアップするフォルダを選択、ファイル名を入力し「保存」、「次へ」をクリックします（例: 参照先「ダウンロード」フォルダ、ファイル名「オン資PC_更新後の電子証明書_受付01」）。",
        "「完了」ボタンをクリックします。「正しくエクスポートされました。」が表示されたら「OK」をクリックします。",
        "USBメモリ等の外部媒体に、保存した電子証明書（例: オン資PC_更新後の電子証明書_受付01.pfx）を格納して大切に保管してください。",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The steps a clinic can take for a rule, grouped so that a mail lists each group once.
pub fn steps_for(rule: RuleKey) -> (&'static str, StepGroup) {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match rule {
        RuleKey::NoDailyRestart => (
            "restart",
            StepGroup {
                title: "毎日の再起動",
                steps: s(&[
                    "オンライン資格確認端末は、1日1回ON・OFF（または再起動）を行ってください。配信された更新ファイルは、電源のON・OFFまたは再起動でインストールされます。",
                    "自動電源設定の場合はAM4:00（デフォルト）に再起動します。自動電源設定の確認はヒアリングシートで確認できます。",
                    "長い間再起動していない場合は、下の「アプリの更新」の手順で各アプリを最新にしてください。",
                ]),
            },
        ),
        RuleKey::UpdatesBehind | RuleKey::PendingReboot => (
            "update",
            StepGroup {
                title: "アプリの更新",
                steps: s(&[
                    "まず端末を再起動してください。再起動で更新がインストールされます。",
                    "再起動しても更新されない場合は、デスクトップ画面から「オンライン資格確認配信アプリケーション管理ツール」を起動し、「今すぐダウンロード」ボタンをクリックします。",
                    "確認画面が表示されたら「確認しました」をクリックし、端末を再起動してください。",
                ]),
            },
        ),
        RuleKey::CertExpiry => (
            "renew",
            StepGroup {
                title: "電子証明書の更新",
                steps: s(&[
                    "電子証明書の更新の手続きを進めてください。手順が分からない場合はサポート窓口にご相談ください。",
                    OLD_CERT,
                    "更新後の電子証明書をバックアップしてください（下の「電子証明書のバックアップ」の手順）。",
                ]),
            },
        ),
        RuleKey::CertMissing | RuleKey::CertNoPrivateKey => (
            "restore",
            StepGroup {
                title: "電子証明書の復旧",
                steps: s(&[
                    "以前にバックアップした電子証明書（.pfx ファイル。USBメモリ等に保管したもの）があれば、それを使って復旧できます。まずサポート窓口にご連絡のうえ、案内に従って取り込んでください。",
                    "取り込みにはバックアップしたときのパスワードが必要です。パスワードは「1357」、またはお客様が決めた「4桁の半角数字」です。",
                    "バックアップがない場合は、再度「電子証明書発行申請（有料）」の手続きが必要です。サポート窓口にご相談ください。",
                    "復旧できたら、あらためてバックアップしてください（下の「電子証明書のバックアップ」の手順）。",
                ]),
            },
        ),
        RuleKey::CertOldLeft => (
            "old_cert",
            StepGroup {
                title: "古い電子証明書",
                steps: s(&[
                    OLD_CERT,
                    "更新後の電子証明書がまだバックアップされていなければ、バックアップしてください（下の「電子証明書のバックアップ」の手順）。",
                ]),
            },
        ),
        RuleKey::BackupMissing | RuleKey::BackupOutdated => (
            "backup",
            StepGroup {
                title: "電子証明書のバックアップ",
                steps: backup_steps(),
            },
        ),
        RuleKey::WindowsPasswordExpiry => (
            "password",
            StepGroup {
                title: "Windowsアカウントのパスワード",
                steps: s(&[
                    "有効期限が切れる前にサポート窓口へご連絡ください。",
                    "パスワードをご自身で変更しないでください。変更すると各アプリが自動アップデートしなくなり、レセプト等システムとも連携できなくなります。",
                ]),
            },
        ),
        RuleKey::ProtectedAccountWindows
        | RuleKey::ProtectedAccountFaceAuth
        | RuleKey::ProtectedAccountLinkage => (
            "accounts",
            StepGroup {
                title: "変更してはいけないアカウント",
                steps: s(&[
                    "Windowsアカウント・顔認証アカウント・連携アカウントは、IDもパスワードも変更しないでください。",
                    "元に戻そうとしてご自身で変更し直さず、まずサポート窓口へご連絡ください。変更した場合、復旧に再設定工事等の工事費用が発生することがあります。",
                ]),
            },
        ),
        RuleKey::NetworkChanged | RuleKey::ProbeUnreachable => (
            "network",
            StepGroup {
                title: "ネットワーク",
                steps: s(&[
                    "院内のネットワーク構成（物理配線の変更、回線の変更等）を変えると、オンライン資格確認システムに影響が出ることがあります。",
                    "ネットワーク構成を変更するときは、事前にサポート窓口へご相談ください。心当たりのない変更であれば、サポート窓口へご連絡ください。",
                ]),
            },
        ),
        RuleKey::Offline => (
            "offline",
            StepGroup {
                title: "端末の電源と接続",
                steps: s(&[
                    "診療時間中なのに端末から報告が届いていません。端末の電源が入っているか、LANケーブルが外れていないかを確認してください。",
                    "電源も接続も問題ないのに続く場合は、サポート窓口へご連絡ください。",
                ]),
            },
        ),
        RuleKey::AccountsUnconfirmed => (
            "desk",
            StepGroup {
                title: "サポート窓口での設定確認",
                steps: s(&[
                    "端末の画面で保護アカウントの実際の名前を確かめて、端末ページで確認してください（医療機関へは送りません）。",
                ]),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every screen, button and check box the vendor's backup sheet names, in its order.
    #[test]
    fn the_backup_steps_follow_the_vendor_sheet() {
        let text = backup_steps().join("\n");
        let quoted = [
            "「ファイル名を指定して実行（R）」",
            "「certmgr.msc」",
            "「OK」",
            "「個人」から「証明書」",
            "「Online Billing NW Common Root CA」",
            "「すべてのタスク」-「エクスポート」",
            "「次へ」",
            "「はい、秘密キーをエクスポートします」",
            "「Personal Information Exchange - PKCS#12(.PFX)」",
            "「証明のパスにある証明書を可能であればすべて含む」",
            "「証明書のプライバシーを有効にする」",
            "「パスワード」と「パスワードの確認」",
            "「4桁の半角数字」",
            "「参照」",
            "「保存」",
            "「完了」",
            "「正しくエクスポートされました。」",
            "USBメモリ等の外部媒体",
        ];
        let mut at = 0;
        for q in quoted {
            let found = text[at..].find(q).map(|i| i + at);
            assert!(found.is_some(), "{q} is missing or out of order");
            at = found.unwrap_or(at);
        }
        assert!(text.contains("1357"));
        assert_eq!(backup_steps().len(), 11, "steps 1–10 and the storage");
    }

    #[test]
    fn the_old_certificate_is_said_one_way_and_a_lost_key_offers_the_backup_first() {
        let (_, renew) = steps_for(RuleKey::CertExpiry);
        let (_, old) = steps_for(RuleKey::CertOldLeft);
        // Renew, then the old certificate, then the backup: the same order in both.
        for group in [&renew, &old] {
            let old_at = group.steps.iter().position(|s| s == OLD_CERT);
            let backup_at = group
                .steps
                .iter()
                .position(|s| s.contains("バックアップしてください"));
            assert!(
                matches!((old_at, backup_at), (Some(o), Some(b)) if o < b),
                "{}: {:?}",
                group.title,
                group.steps
            );
        }
        for rule in [RuleKey::CertNoPrivateKey, RuleKey::CertMissing] {
            let (group, steps) = steps_for(rule);
            assert_eq!(group, "restore");
            let restore = steps.steps.iter().position(|s| s.contains(".pfx"));
            let paid = steps.steps.iter().position(|s| s.contains("有料"));
            assert!(
                matches!((restore, paid), (Some(r), Some(p)) if r < p),
                "restoring the backup comes before the paid re-issue"
            );
            assert!(steps.steps.iter().any(|s| s.contains(BACKUP_PASSWORD_RULE)));
        }
    }
}
