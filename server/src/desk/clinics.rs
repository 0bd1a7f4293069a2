//! Staff actions on clinics: details and business hours, contacts, enrollment codes.

use chrono::{DateTime, Duration, Utc};

use super::{Desk, created_id, validate};
use crate::Error;
use crate::calendar::BusinessHours;
use crate::domain::{
    Actor, AuditRecord, Clinic, ClinicDetail, ClinicSettings, Contact, PREFECTURES,
};
use crate::enroll::{hash_code, new_code, normalize_code};
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
    if s.hours.close <= s.hours.open {
        return Err(Error::Invalid(
            "診療終了は診療開始より後にしてください".into(),
        ));
    }
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

/// A new clinic with the default hours (Sundays and public holidays closed).
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
        },
        code: None,
        phone: None,
        notes: String::new(),
    }
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
        let what = format!(
            "医療機関「{}」を{}",
            detail.settings.name,
            if id == 0 { "登録" } else { "更新" }
        );
        let applied = self
            .apply(
                StaffChange::SaveClinic(detail),
                AuditRecord::new(actor, now, what),
                "この医療機関は見つかりません",
                "この医療機関コードは別の医療機関で使われています",
            )
            .await?;
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
            .desk()
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

    /// Sets a clinic's business hours and, when given, its own support desk.
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
        detail.settings.hours = hours;
        if desk_name.is_some() {
            detail.settings.desk_name = desk_name;
        }
        if desk_phone.is_some() {
            detail.settings.desk_phone = desk_phone;
        }
        let detail = check_clinic(&detail)?;
        let what = format!("医療機関「{}」の診療時間を変更", detail.settings.name);
        self.apply(
            StaffChange::SaveClinic(detail),
            AuditRecord::new(actor, now, what),
            "この医療機関は見つかりません",
            "この医療機関コードは別の医療機関で使われています",
        )
        .await?;
        Ok(())
    }

    /// A new enrollment code for the clinic, returned in clear: the only time it is shown.
    pub async fn issue_code(
        &self,
        actor: &Actor,
        clinic_id: i64,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let code = new_code();
        let normalized = normalize_code(&code);
        let last = &normalized[normalized.len().saturating_sub(4)..];
        self.apply(
            StaffChange::AddEnrollmentCode {
                clinic_id,
                code_hash: hash_code(&code),
                expires_at: now + Duration::days(i64::from(self.code_days)),
            },
            AuditRecord::new(actor, now, format!("登録コード (…{last}) を発行")),
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
        let short: String = code_hash.chars().take(8).collect();
        self.apply(
            StaffChange::RevokeEnrollmentCode {
                clinic_id,
                code_hash: code_hash.to_string(),
            },
            AuditRecord::new(actor, now, format!("登録コード {short}… を無効化")),
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
                Box::new(|c| c.settings.hours.close = c.settings.hours.open),
                "より後",
            ),
        ];
        for (change, expected) in cases {
            let mut bad = c.clone();
            change(&mut bad);
            let e = check_clinic(&bad).unwrap_err().to_string();
            assert!(e.contains(expected), "{e} should mention {expected}");
        }
    }
}
