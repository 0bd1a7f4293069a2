//! What a clinic can do about each rule, in Japanese, quoting the vendor's screens and buttons
//! exactly as its operating notes name them.

use crate::domain::RuleKey;

/// A titled list of steps; a mail lists each group once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepGroup {
    pub title: &'static str,
    pub steps: Vec<String>,
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
                    "端末は1日1回、電源を切って入れ直すか、再起動してください。",
                    "自動電源設定をお使いの場合は、午前4時（初期設定）に再起動されます。自動電源設定が有効かどうかをご確認ください。",
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
        RuleKey::CertExpiry | RuleKey::CertMissing | RuleKey::CertNoPrivateKey => (
            "renew",
            StepGroup {
                title: "電子証明書の更新",
                steps: s(&[
                    "電子証明書の更新（または再発行）の手続きを進めてください。手順が分からない場合はサポート窓口にご相談ください。",
                    "更新が済んだら、更新前の古い電子証明書を削除し、更新後の電子証明書をバックアップしてください（下の「電子証明書のバックアップ」の手順）。",
                ]),
            },
        ),
        RuleKey::CertOldLeft => (
            "old_cert",
            StepGroup {
                title: "古い電子証明書の削除",
                steps: s(&[
                    "「certmgr.msc」の「個人」→「証明書」に、更新前の古い電子証明書が残っています。削除してよいかサポート窓口に確認のうえ、古い方を削除してください。",
                    "更新後の電子証明書をバックアップしてください（下の「電子証明書のバックアップ」の手順）。",
                ]),
            },
        ),
        RuleKey::BackupMissing | RuleKey::BackupOutdated => (
            "backup",
            StepGroup {
                title: "電子証明書のバックアップ",
                steps: s(&[
                    "画面左下のWindowsボタンを右クリックし、「ファイル名を指定して実行（R）」を開きます。",
                    "「certmgr.msc」と入力して「OK」ボタンをクリックします。",
                    "「個人」→「証明書」を開き、発行者が「Online Billing NW Common Root CA」で有効期限が切れていない証明書を右クリックして、「すべてのタスク」→「エクスポート」を選びます。",
                    "「はい、秘密キーをエクスポートします」を選び、「Personal Information Exchange - PKCS#12(.PFX)」の形式で、パスワードを付けて保存します。パスワードは端末に設定し直すときに必要なので、大切に管理してください。",
                    "保存した .pfx ファイルをUSBメモリ等の外部媒体に入れ、大切に保管してください。",
                ]),
            },
        ),
        RuleKey::WindowsPasswordExpiry => (
            "password",
            StepGroup {
                title: "Windowsアカウントのパスワード",
                steps: s(&[
                    "有効期限が切れる前にサポート窓口へご連絡ください。",
                    "パスワードをご自身で変更しないでください。変更すると各アプリの自動更新やレセプトコンピュータ等との連携が止まります。",
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
                    "Windowsアカウント・顔認証アカウント・連携アカウントは、名前もパスワードも変更しないでください。",
                    "元に戻そうとしてご自身で変更し直さず、まずサポート窓口へご連絡ください。復旧には再設定の作業が必要になることがあります。",
                ]),
            },
        ),
        RuleKey::NetworkChanged | RuleKey::ProbeUnreachable => (
            "network",
            StepGroup {
                title: "ネットワーク",
                steps: s(&[
                    "配線・回線・ルーターなど院内のネットワーク構成を変えると、オンライン資格確認が使えなくなることがあります。",
                    "ネットワークの変更には業者の対応が必要です。サポート窓口へご連絡ください。",
                ]),
            },
        ),
        _ => (
            "offline",
            StepGroup {
                title: "端末の電源と接続",
                steps: s(&[
                    "端末の電源が入っているか、LANケーブルが外れていないかを確認してください。",
                    "電源も接続も問題ないのに続く場合は、サポート窓口へご連絡ください。",
                ]),
            },
        ),
    }
}
