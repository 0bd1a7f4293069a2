//! Clinics as the rules, the mails and the desk know them.

use onshi_shared::AccountSpec;

use crate::calendar::BusinessHours;

/// A clinic as enrollment names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clinic {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// A clinic as the rules and the mails need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicSettings {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub hours: BusinessHours,
    /// The clinic's own support desk, named first in e-mails.
    pub desk_name: Option<String>,
    pub desk_phone: Option<String>,
    pub prefecture: Option<String>,
    /// The names of the accounts at this clinic's terminals, by role (a role left out takes
    /// the server's `[policy]`; a terminal may have its own).
    pub accounts: Vec<AccountSpec>,
    /// The rule settings this clinic has over the server's.
    pub rules: ClinicRules,
}

/// A clinic's own rule settings: `None` takes the server's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClinicRules {
    pub restart_warning_hours: Option<u32>,
    pub restart_critical_hours: Option<u32>,
    pub offline_after_intervals: Option<u32>,
    /// Open days without a report before the offline alert is critical.
    pub offline_critical_days: Option<u32>,
    /// A pending file rename (`PendingFileRenameOperations`) alone counts as a pending reboot.
    /// Security software keeps it set on many PCs, so by default it is shown, not alerted.
    pub file_rename_counts: bool,
}

/// A clinic with everything the clinic page edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicDetail {
    pub settings: ClinicSettings,
    /// 医療機関コード (10 digits).
    pub code: Option<String>,
    pub phone: Option<String>,
    pub notes: String,
}

/// Someone at a clinic the desk can call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: i64,
    pub clinic_id: i64,
    pub name: String,
    pub role: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The 47 prefectures, in the usual north-to-south order.
pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];
