//! Staff actions on clinics: details, calendar (week, closures), account names, rule
//! settings and backup password, contacts, enrollment codes.

use chrono::{DateTime, Datelike, Duration, Utc};
use onshi_shared::AccountSpec;

use super::{Desk, created_id, validate};
use crate::Error;
use crate::calendar::{
    BusinessHours, Closure, Window, format_day, format_week, parse_closures_csv,
};
use crate::domain::{
    Actor, AuditRecord, Clinic, ClinicDetail, ClinicRules, ClinicSettings, Contact, PREFECTURES,
};
use crate::enroll::{hash_code, new_code, normalize_code};
use crate::secrets::backup_password_context;
use crate::store::StaffChange;

/// Checks a clinic and returns it tidied (trimmed, the institution code without dashes).
pub fn check_clinic(c: &ClinicDetail) -> Result<ClinicDetail, Error> {
    let mut c = c.clone();
    let s = &mut c.settings;
    s.name = s.name.trim().to_string();
    validate::required_line("医療機関名", &s.name, 200)?;
    s.email = s.email.trim().to_string();
    validate::email(&s.email)?;
    c.code = c
        .code
        .as_deref()
        .and_then(validate::opt)
        .map(|code| validate::institution_code(&code))
        .transpose()?;
    let s = &mut c.settings;
    s.prefecture = s.prefecture.as_deref().and_then(validate::opt);
    if let Some(p) = &s.prefecture
        && !PREFECTURES.contains(&p.as_str())
    {
        return Err(Error::Invalid("都道府県を選んでください".into()));
    }
    check_week(&s.hours.week)?;
    check_accounts(&mut s.accounts)?;
    check_rules(&s.rules)?;
    s.desk_name = s.desk_name.as_deref().and_then(validate::opt);
    s.desk_phone = s.desk_phone.as_deref().and_then(validate::opt);
    c.phone = c.phone.as_deref().and_then(validate::opt);
    for (label, value) in [
        ("電話番号", &c.phone),
        ("担当サポート窓口", &c.settings.desk_name),
        ("窓口の電話番号", &c.settings.desk_phone),
    ] {
        validate::single_line(label, value.as_deref().unwrap_or(""), 100)?;
    }
    c.notes = c.notes.trim().to_string();
    validate::text("メモ", &c.notes, 4000)?;
    Ok(c)
}

/// Each day's windows: opening before closing, in order, not overlapping.
fn check_week(week: &[Vec<Window>; 7]) -> Result<(), Error> {
    const DAYS: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
    for (day, windows) in DAYS.iter().zip(week) {
        for w in windows {
            if w.close <= w.open {
                return Err(Error::Invalid(format!(
                    "{day}曜日: 診療終了は診療開始より後にしてください ({})",
                    format_day(std::slice::from_ref(w))
                )));
            }
        }
        if windows.windows(2).any(|p| p[1].open < p[0].close) {
            return Err(Error::Invalid(format!(
                "{day}曜日: 時間帯が重なっているか、順番になっていません ({})",
                format_day(windows)
            )));
        }
        if windows.len() > 4 {
            return Err(Error::Invalid(format!("{day}曜日: 時間帯は4つまでです")));
        }
    }
    Ok(())
}

/// Account names: protected roles, one name each, on one line.
fn check_accounts(accounts: &mut Vec<AccountSpec>) -> Result<(), Error> {
    for a in accounts.iter_mut() {
        a.name = a.name.trim().to_string();
    }
    accounts.retain(|a| !a.name.is_empty());
    accounts.sort_by_key(|a| a.role);
    if accounts.windows(2).any(|p| p[0].role == p[1].role) {
        return Err(Error::Invalid(
            "同じ役割のアカウント名が二つ指定されています".into(),
        ));
    }
    for a in accounts.iter() {
        validate::single_line(a.role.label_ja(), &a.name, 100)?;
        if a.name.chars().any(|c| "\\/[]:;|=,+*?<>\"".contains(c)) {
            return Err(Error::Invalid(format!(
                "{}の名前「{}」に Windows のアカウント名に使えない文字があります",
                a.role.label_ja(),
                a.name
            )));
        }
    }
    Ok(())
}

fn check_rules(r: &ClinicRules) -> Result<(), Error> {
    for (label, v, max) in [
        ("再起動の注意 (時間)", r.restart_warning_hours, 24 * 30),
        ("再起動の緊急 (時間)", r.restart_critical_hours, 24 * 60),
        ("オフラインとみなす回数", r.offline_after_intervals, 1440),
        (
            "オフラインを緊急とする診療日数",
            r.offline_critical_days,
            60,
        ),
    ] {
        if let Some(v) = v
            && !(1..=max).contains(&v)
        {
            return Err(Error::Invalid(format!(
                "{label}は 1〜{max} で指定してください"
            )));
        }
    }
    if let (Some(w), Some(c)) = (r.restart_warning_hours, r.restart_critical_hours)
        && c <= w
    {
        return Err(Error::Invalid(
            "再起動の緊急は注意より長い時間にしてください".into(),
        ));
    }
    Ok(())
}

/// A clinic's own backup password: the vendor sheet's お客様「4桁の半角数字」.
pub fn check_backup_password(p: &str) -> Result<(), Error> {
    if p.len() == 4 && p.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::Invalid(
            "バックアップのパスワードは4桁の半角数字です".into(),
        ))
    }
}

/// Checks dated closures: the end on or after the start, within sensible years, a short
/// reason.
fn check_closures(closures: &mut [Closure]) -> Result<(), Error> {
    if closures.is_empty() {
        return Err(Error::Invalid("休診日がありません".into()));
    }
    if closures.len() > 1000 {
        return Err(Error::Invalid(
            "一度に登録できる休診日は 1000 件までです".into(),
        ));
    }
    for c in closures.iter_mut() {
        c.reason = c.reason.trim().to_string();
        validate::single_line("休診の理由", &c.reason, 200)?;
        if c.to < c.from {
            return Err(Error::Invalid(format!(
                "{}: 終わりの日が始まりの日より前です",
                c.from
            )));
        }
        if c.from.year() < 2000 || c.to.year() > 2100 || (c.to - c.from).num_days() > 366 {
            return Err(Error::Invalid(format!(
                "{} 〜 {}: 日付を確かめてください (1年以内の期間)",
                c.from, c.to
            )));
        }
    }
    Ok(())
}

/// A new clinic with the default hours (Monday–Saturday 9–18; Sundays, public holidays and
/// 年末年始 closed).
pub fn new_clinic(name: &str, email: &str) -> ClinicDetail {
    ClinicDetail {
        settings: ClinicSettings {
            id: 0,
            name: name.to_string(),
            email: email.to_string(),
            hours: BusinessHours::default(),
            desk_name: None,
            desk_phone: None,
            prefecture: None,
            accounts: Vec::new(),
            rules: ClinicRules::default(),
        },
        code: None,
        phone: None,
        notes: String::new(),
    }
}

/// What a save changed, field by field, as 「電話番号: 03-1111-2222 → 03-1111-3333」 (the audit
/// log's "before → after"; long values shortened).
pub fn clinic_changes(old: &ClinicDetail, new: &ClinicDetail) -> Vec<String> {
    fn short(s: &str) -> String {
        let s = if s.is_empty() { "(なし)" } else { s };
        let mut out: String = s.chars().take(60).collect();
        if s.chars().count() > 60 {
            out.push('…');
        }
        out
    }
    fn opt(s: &Option<String>) -> String {
        s.clone().unwrap_or_default()
    }
    fn num(n: Option<u32>) -> String {
        n.map(|n| n.to_string())
            .unwrap_or_else(|| "サーバーの設定".into())
    }
    fn yes(b: bool) -> String {
        if b { "はい" } else { "いいえ" }.to_string()
    }
    let (o, n) = (&old.settings, &new.settings);
    let names = |s: &crate::domain::ClinicSettings| {
        s.accounts
            .iter()
            .map(|a| format!("{}={}", a.role.label_ja(), a.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fields: [(&str, String, String); 18] = [
        ("名前", o.name.clone(), n.name.clone()),
        ("メール", o.email.clone(), n.email.clone()),
        ("医療機関コード", opt(&old.code), opt(&new.code)),
        ("電話番号", opt(&old.phone), opt(&new.phone)),
        ("都道府県", opt(&o.prefecture), opt(&n.prefecture)),
        (
            "診療時間",
            format_week(&o.hours.week),
            format_week(&n.hours.week),
        ),
        (
            "祝日は休診",
            yes(o.hours.closed_on_holidays),
            yes(n.hours.closed_on_holidays),
        ),
        (
            "年末年始は休診",
            yes(o.hours.closed_new_year),
            yes(n.hours.closed_new_year),
        ),
        (
            "お盆は休診",
            yes(o.hours.closed_obon),
            yes(n.hours.closed_obon),
        ),
        ("担当サポート窓口", opt(&o.desk_name), opt(&n.desk_name)),
        ("窓口の電話番号", opt(&o.desk_phone), opt(&n.desk_phone)),
        ("保護アカウントの名前", names(o), names(n)),
        (
            "再起動なしで注意 (時間)",
            num(o.rules.restart_warning_hours),
            num(n.rules.restart_warning_hours),
        ),
        (
            "再起動なしで緊急 (時間)",
            num(o.rules.restart_critical_hours),
            num(n.rules.restart_critical_hours),
        ),
        (
            "オフラインとみなす回数",
            num(o.rules.offline_after_intervals),
            num(n.rules.offline_after_intervals),
        ),
        (
            "オフラインを緊急とする診療日数",
            num(o.rules.offline_critical_days),
            num(n.rules.offline_critical_days),
        ),
        (
            "ファイル置き換えだけでも再起動待ちとする",
            yes(o.rules.file_rename_counts),
            yes(n.rules.file_rename_counts),
        ),
        ("メモ", old.notes.clone(), new.notes.clone()),
    ];
    fields
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(label, a, b)| format!("{label}: {} → {}", short(a), short(b)))
        .collect()
}

impl Desk {
    /// Creates (id 0) or updates a clinic; returns its id.
    pub async fn save_clinic(
        &self,
        actor: &Actor,
        detail: &ClinicDetail,
        now: DateTime<Utc>,
    ) -> Result<i64, Error> {
        let detail = check_clinic(detail)?;
        let id = detail.settings.id;
        let what = if id == 0 {
            format!("医療機関「{}」を登録", detail.settings.name)
        } else {
            let changes = match self.store.fleet().clinic_detail(id).await? {
                Some(old) => clinic_changes(&old, &detail),
                None => Vec::new(),
            };
            if changes.is_empty() {
                format!("医療機関「{}」を保存 (変更なし)", detail.settings.name)
            } else {
                format!(
                    "医療機関「{}」を更新: {}",
                    detail.settings.name,
                    changes.join("; ")
                )
            }
        };
        let applied = self
            .apply(
                StaffChange::SaveClinic(Box::new(detail)),
                AuditRecord::new(actor, now, what),
                "この医療機関は見つかりません",
                "この医療機関コードは別の医療機関で使われています",
            )
            .await?;
        self.refresh_policies().await;
        if id == 0 { created_id(applied) } else { Ok(id) }
    }

    /// Creates a clinic from its name and mail address, with the default hours.
    pub async fn add_clinic(
        &self,
        actor: &Actor,
        name: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Clinic, Error> {
        let id = self
            .save_clinic(actor, &new_clinic(name, email), now)
            .await?;
        Ok(Clinic {
            id,
            name: name.trim().to_string(),
            email: email.trim().to_string(),
        })
    }

    /// The clinic's detail, or `NotFound`.
    pub async fn clinic(&self, id: i64) -> Result<ClinicDetail, Error> {
        self.store
            .fleet()
            .clinic_detail(id)
            .await?
            .ok_or_else(|| Error::NotFound("この医療機関は見つかりません".into()))
    }

    /// A clinic by its exact name (the command line names clinics so).
    pub async fn clinic_named(&self, name: &str) -> Result<ClinicDetail, Error> {
        let clinic = self
            .store
            .clinic_by_name(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("医療機関「{name}」は見つかりません")))?;
        self.clinic(clinic.id).await
    }

    /// Sets a clinic's week and closed seasons (its dated closures stay) and, when given, its
    /// own support desk.
    pub async fn set_hours(
        &self,
        actor: &Actor,
        clinic_id: i64,
        hours: BusinessHours,
        desk_name: Option<String>,
        desk_phone: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut detail = self.clinic(clinic_id).await?;
        let closures = std::mem::take(&mut detail.settings.hours.closures);
        detail.settings.hours = BusinessHours { closures, ..hours };
        if desk_name.is_some() {
            detail.settings.desk_name = desk_name;
        }
        if desk_phone.is_some() {
            detail.settings.desk_phone = desk_phone;
        }
        let detail = check_clinic(&detail)?;
        let what = format!("医療機関「{}」の診療時間を変更", detail.settings.name);
        self.apply(
            StaffChange::SaveClinic(Box::new(detail)),
            AuditRecord::new(actor, now, what),
            "この医療機関は見つかりません",
            "この医療機関コードは別の医療機関で使われています",
        )
        .await?;
        Ok(())
    }

    /// Adds dated closures (臨時休診 and the like) to a clinic's calendar; returns how many.
    pub async fn add_closures(
        &self,
        actor: &Actor,
        clinic_id: i64,
        mut closures: Vec<Closure>,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        check_closures(&mut closures)?;
        let n = closures.len();
        let what = match closures.as_slice() {
            [one] if one.from == one.to => {
                format!("休診日 {} を追加 ({})", one.from, one.reason)
            }
            [one] => format!("休診 {} 〜 {} を追加 ({})", one.from, one.to, one.reason),
            _ => format!("休診日 {n} 件を取り込み"),
        };
        self.apply(
            StaffChange::AddClosures {
                clinic_id,
                closures,
            },
            AuditRecord::new(actor, now, what),
            "この医療機関は見つかりません",
            "",
        )
        .await?;
        Ok(n)
    }

    /// Imports closures from CSV (`開始日,終了日,理由`, one per line); returns how many.
    pub async fn import_closures(
        &self,
        actor: &Actor,
        clinic_id: i64,
        csv: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        let closures = parse_closures_csv(csv).map_err(Error::Invalid)?;
        self.add_closures(actor, clinic_id, closures, now).await
    }

    pub async fn delete_closure(
        &self,
        actor: &Actor,
        clinic_id: i64,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.apply(
            StaffChange::DeleteClosure { clinic_id, id },
            AuditRecord::new(actor, now, format!("休診日 #{id} を削除")),
            "この休診日は見つかりません",
            "",
        )
        .await?;
        Ok(())
    }

    /// Sets (or with `None` clears) the password the clinic chose for its certificate
    /// backups instead of 1357. It is sealed with the server's key and sent only to the
    /// clinic's own agents, so their backup check can open the .pfx; it never appears in the
    /// audit log, the pages or the mails.
    pub async fn set_backup_password(
        &self,
        actor: &Actor,
        clinic_id: i64,
        password: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let sealed = match password.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                check_backup_password(p)?;
                let key = self.secrets.as_ref().ok_or_else(|| {
                    Error::Invalid(
                        "サーバーの鍵 (secret_key_file) が読めないため、パスワードを保存できません"
                            .into(),
                    )
                })?;
                Some(key.seal(p, &backup_password_context(clinic_id))?)
            }
            None => None,
        };
        let what = if sealed.is_some() {
            "証明書バックアップのパスワードを設定 (1357 以外)".to_string()
        } else {
            "証明書バックアップのパスワードを既定 (1357) に戻す".to_string()
        };
        self.apply(
            StaffChange::SetBackupPassword { clinic_id, sealed },
            AuditRecord::new(actor, now, what),
            "この医療機関は見つかりません",
            "",
        )
        .await?;
        self.refresh_policies().await;
        Ok(())
    }

    /// A new enrollment code for the clinic, returned in clear: the only time it is shown.
    pub async fn issue_code(
        &self,
        actor: &Actor,
        clinic_id: i64,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        self.issue_labelled_code(actor, clinic_id, "", now).await
    }

    /// [`Desk::issue_code`] with a label (who it is read out to), kept with the code's last
    /// four characters so staff can find it again.
    pub async fn issue_labelled_code(
        &self,
        actor: &Actor,
        clinic_id: i64,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let label = label.trim();
        validate::single_line("ラベル", label, 100)?;
        let code = new_code();
        let normalized = normalize_code(&code);
        let last = normalized[normalized.len().saturating_sub(4)..].to_string();
        let named = if label.is_empty() {
            String::new()
        } else {
            format!("「{label}」")
        };
        self.apply(
            StaffChange::AddEnrollmentCode {
                clinic_id,
                code_hash: hash_code(&code),
                expires_at: now + Duration::days(i64::from(self.code_days)),
                label: label.to_string(),
                last_chars: last.clone(),
            },
            AuditRecord::new(actor, now, format!("登録コード{named} (…{last}) を発行")),
            "この医療機関は見つかりません",
            "",
        )
        .await?;
        Ok(code)
    }

    /// Days a new code stays valid.
    pub fn code_days(&self) -> u32 {
        self.code_days
    }

    /// Revokes an active enrollment code, given in clear or as its hash; with `clinic_id`,
    /// only a code of that clinic.
    pub async fn revoke_code(
        &self,
        actor: &Actor,
        clinic_id: Option<i64>,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        // Named the way staff see it: its label and last characters.
        let shown = match clinic_id {
            Some(c) => self
                .store
                .fleet()
                .enrollment_codes(c)
                .await?
                .into_iter()
                .find(|r| r.code_hash == code_hash)
                .map(|r| match r.label.as_str() {
                    "" => format!("…{}", r.last_chars),
                    l => format!("「{l}」 (…{})", r.last_chars),
                }),
            None => None,
        }
        .unwrap_or_else(|| format!("{}…", code_hash.chars().take(8).collect::<String>()));
        self.apply(
            StaffChange::RevokeEnrollmentCode {
                clinic_id,
                code_hash: code_hash.to_string(),
            },
            AuditRecord::new(actor, now, format!("登録コード {shown} を無効化")),
            "この登録コードは見つからないか、無効になっています",
            "",
        )
        .await?;
        Ok(())
    }

    /// Adds someone the desk can call at the clinic; returns the contact's id.
    pub async fn add_contact(
        &self,
        actor: &Actor,
        contact: &Contact,
        now: DateTime<Utc>,
    ) -> Result<i64, Error> {
        let mut c = contact.clone();
        c.name = c.name.trim().to_string();
        if c.name.is_empty() {
            return Err(Error::Invalid("連絡先の名前を入力してください".into()));
        }
        c.role = c.role.trim().to_string();
        c.email = c.email.as_deref().and_then(validate::opt);
        c.phone = c.phone.as_deref().and_then(validate::opt);
        if let Some(e) = &c.email {
            validate::email(e)?;
        }
        for (label, value) in [
            ("名前", c.name.as_str()),
            ("役割", c.role.as_str()),
            ("電話番号", c.phone.as_deref().unwrap_or("")),
        ] {
            validate::single_line(label, value, 100)?;
        }
        let what = format!("連絡先「{}」を追加", c.name);
        let applied = self
            .apply(
                StaffChange::AddContact(c),
                AuditRecord::new(actor, now, what),
                "この医療機関は見つかりません",
                "",
            )
            .await?;
        created_id(applied)
    }

    pub async fn delete_contact(
        &self,
        actor: &Actor,
        clinic_id: i64,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.apply(
            StaffChange::DeleteContact { clinic_id, id },
            AuditRecord::new(actor, now, format!("連絡先 #{id} を削除")),
            "この連絡先は見つかりません",
            "",
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinics_are_checked_and_tidied() {
        let mut c = new_clinic(" 山田内科クリニック ", "info@yamada.example.jp");
        c.code = Some("13-1 2345678".into());
        c.settings.prefecture = Some("東京都".into());
        let tidy = check_clinic(&c).unwrap();
        assert_eq!(tidy.settings.name, "山田内科クリニック");
        assert_eq!(tidy.code.as_deref(), Some("1312345678"));
        type Change = Box<dyn Fn(&mut ClinicDetail)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|c| c.settings.name = " ".into()),
                "医療機関名を入力",
            ),
            (
                Box::new(|c| c.settings.name = "A\r\nBcc: x@y.z".into()),
                "改行",
            ),
            (
                Box::new(|c| c.settings.email = "x".into()),
                "メールアドレス",
            ),
            (Box::new(|c| c.code = Some("12345".into())), "10桁"),
            (
                Box::new(|c| c.settings.prefecture = Some("火星".into())),
                "都道府県",
            ),
            (
                Box::new(|c| {
                    let w = c.settings.hours.week[0][0];
                    c.settings.hours.week[0][0] = Window::new(w.close, w.open);
                }),
                "月曜日: 診療終了は診療開始より後",
            ),
            (
                Box::new(|c| {
                    let t = |h| chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap();
                    c.settings.hours.week[5] =
                        vec![Window::new(t(9), t(13)), Window::new(t(12), t(18))];
                }),
                "土曜日: 時間帯が重なって",
            ),
            (
                Box::new(|c| {
                    c.settings.accounts = vec![
                        AccountSpec {
                            role: onshi_shared::AccountRole::Linkage,
                            name: "a".into(),
                        },
                        AccountSpec {
                            role: onshi_shared::AccountRole::Linkage,
                            name: "b".into(),
                        },
                    ]
                }),
                "二つ",
            ),
            (
                Box::new(|c| {
                    c.settings.accounts = vec![AccountSpec {
                        role: onshi_shared::AccountRole::Windows,
                        name: "受付/1".into(),
                    }]
                }),
                "使えない文字",
            ),
            (
                Box::new(|c| {
                    c.settings.rules.restart_warning_hours = Some(48);
                    c.settings.rules.restart_critical_hours = Some(30);
                }),
                "注意より長い",
            ),
            (
                Box::new(|c| c.settings.rules.offline_after_intervals = Some(0)),
                "1〜1440",
            ),
        ];
        for (change, expected) in cases {
            let mut bad = c.clone();
            change(&mut bad);
            let e = check_clinic(&bad).unwrap_err().to_string();
            assert!(e.contains(expected), "{e} should mention {expected}");
        }
    }

    #[test]
    fn backup_passwords_are_four_half_width_digits() {
        assert!(check_backup_password("2468").is_ok());
        for bad in ["135", "13579", "１３５７", "12a4", ""] {
            assert!(check_backup_password(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn closures_are_checked() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let closure = |from: &str, to: &str| Closure {
            id: 0,
            from: d(from),
            to: d(to),
            reason: " 院長学会 ".into(),
        };
        let mut ok = vec![closure("2026-12-24", "2026-12-25")];
        check_closures(&mut ok).unwrap();
        assert_eq!(ok[0].reason, "院長学会");
        for (mut bad, want) in [
            (vec![closure("2026-12-25", "2026-12-24")], "前です"),
            (vec![closure("1999-12-25", "2000-01-02")], "日付を確かめて"),
            (vec![closure("2026-01-01", "2027-06-01")], "1年以内"),
            (vec![], "ありません"),
        ] {
            let e = check_closures(&mut bad).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
