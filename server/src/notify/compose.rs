//! Composing the Japanese notices: one critical alert, a clinic's daily digest, a test mail;
//! each to the clinic and (with terminal details) to the desk, as text and HTML (askama).

use askama::Template;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::NATIONAL_CALL_CENTRE;
use super::steps::{StepGroup, steps_for};
use crate::config::SmtpSettings;
use crate::domain::{Alert, ClinicSettings, MailKind, NewMail, RuleKey};
use crate::jst::{offset, time_ja};

struct Item {
    severity: &'static str,
    title: &'static str,
    hostname: String,
    detail: String,
    terminal_id: String,
    rule: RuleKey,
    rule_label: &'static str,
    opened_at: String,
}

#[derive(Template)]
#[template(path = "mail/notice.txt")]
struct NoticeText<'a> {
    clinic_name: &'a str,
    clinic_id: i64,
    clinic_email: &'a str,
    intro: &'a str,
    items: &'a [Item],
    steps: &'a [StepGroup],
    desk_line: &'a str,
    national: &'a str,
    desk: bool,
}

#[derive(Template)]
#[template(path = "mail/notice.html")]
struct NoticeHtml<'a> {
    subject: &'a str,
    clinic_name: &'a str,
    clinic_id: i64,
    clinic_email: &'a str,
    intro: &'a str,
    items: &'a [Item],
    steps: &'a [StepGroup],
    desk_line: &'a str,
    national: &'a str,
    desk: bool,
}

/// Takes CR, LF and other control characters out of text that goes into a header.
pub(super) fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Builds the outbox rows for clinic mails and the desk's copies.
#[derive(Debug, Clone)]
pub struct Composer {
    config: SmtpSettings,
}

impl Composer {
    pub fn new(config: SmtpSettings) -> Self {
        Composer { config }
    }

    fn desk_line(&self, clinic: &ClinicSettings) -> String {
        match (&clinic.desk_name, &clinic.desk_phone) {
            (Some(name), Some(phone)) => format!("{name}（{phone}）"),
            (Some(name), None) => name.clone(),
            _ => match &self.config.desk_phone {
                Some(phone) => format!("{}（{phone}）", self.config.desk_name),
                None => self.config.desk_name.clone(),
            },
        }
    }

    fn message_id(&self, parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0]);
        }
        let digest = hex::encode(&h.finalize()[..16]);
        format!("<{digest}@{}>", self.config.domain())
    }

    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        kind: MailKind,
        clinic: &ClinicSettings,
        subject: &str,
        intro: &str,
        items: &[Item],
        id_parts: &[&str],
        dedupe: Option<String>,
    ) -> Vec<NewMail> {
        let mut seen = Vec::new();
        let mut steps = Vec::new();
        for item in items {
            let (group, s) = steps_for(item.rule);
            if !seen.contains(&group) {
                seen.push(group);
                steps.push(s);
            }
        }
        // Renewing, restoring or cleaning up a certificate ends with backing it up.
        if ["renew", "restore", "old_cert"]
            .iter()
            .any(|g| seen.contains(g))
            && !seen.contains(&"backup")
        {
            steps.push(steps_for(RuleKey::BackupMissing).1);
        }
        let desk_line = self.desk_line(clinic);
        let mut out = Vec::new();
        let mut recipients = vec![(false, clinic.email.clone())];
        if let Some(desk) = &self.config.desk {
            recipients.push((true, desk.clone()));
        }
        for (desk, recipient) in recipients {
            let subject = if desk {
                header_safe(&format!("[控え] {subject}"))
            } else {
                header_safe(subject)
            };
            let text = NoticeText {
                clinic_name: &clinic.name,
                clinic_id: clinic.id,
                clinic_email: &clinic.email,
                intro,
                items,
                steps: &steps,
                desk_line: &desk_line,
                national: NATIONAL_CALL_CENTRE,
                desk,
            };
            let html = NoticeHtml {
                subject: &subject,
                clinic_name: &clinic.name,
                clinic_id: clinic.id,
                clinic_email: &clinic.email,
                intro,
                items,
                steps: &steps,
                desk_line: &desk_line,
                national: NATIONAL_CALL_CENTRE,
                desk,
            };
            let (Ok(body_text), Ok(body_html)) = (text.render(), html.render()) else {
                tracing::error!(
                    kind = kind.as_str(),
                    clinic = clinic.id,
                    "rendering a mail failed"
                );
                continue;
            };
            let who = if desk { "desk" } else { "clinic" };
            let mut parts = id_parts.to_vec();
            parts.push(who);
            out.push(NewMail {
                kind: if desk { kind.desk_copy() } else { kind },
                clinic_id: Some(clinic.id),
                recipient,
                subject,
                message_id: self.message_id(&parts),
                body_text,
                body_html,
                dedupe_key: dedupe.as_ref().map(|d| format!("{d}:{who}")),
                alert_id: None,
            });
        }
        out
    }

    fn item(hostname: &str, a: &Alert) -> Item {
        Item {
            severity: a.severity.label_ja(),
            title: a.rule.title_ja(),
            hostname: hostname.to_string(),
            detail: a.detail.clone(),
            terminal_id: a.terminal_id.to_string(),
            rule: a.rule,
            rule_label: a.rule.short_ja(),
            opened_at: time_ja(a.opened_at),
        }
    }

    /// The mail for one critical alert, to the clinic and to the desk.
    pub fn critical(
        &self,
        clinic: &ClinicSettings,
        hostname: &str,
        alert: &Alert,
        _now: DateTime<Utc>,
    ) -> Vec<NewMail> {
        let subject = format!(
            "【緊急】{} {}: {}",
            clinic.name,
            hostname,
            alert.rule.title_ja()
        );
        let opened = alert.opened_at.timestamp_millis().to_string();
        let terminal = alert.terminal_id.to_string();
        let occurrence = alert.occurrence.clone().unwrap_or_default();
        self.render(
            MailKind::Critical,
            clinic,
            &subject,
            "オンライン資格確認端末に、すぐに対応が必要な問題が見つかりました。下の手順をご確認ください。",
            &[Self::item(hostname, alert)],
            &[&terminal, alert.rule.as_str(), &opened, &occurrence],
            None,
        )
    }

    /// One digest per clinic per day: every open problem, the most severe first.
    pub fn digest(
        &self,
        clinic: &ClinicSettings,
        alerts: &[(String, Alert)],
        now: DateTime<Utc>,
    ) -> Vec<NewMail> {
        let mut sorted: Vec<&(String, Alert)> = alerts.iter().collect();
        sorted.sort_by(|(ha, a), (hb, b)| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.rule.cmp(&b.rule))
                .then_with(|| ha.cmp(hb))
        });
        let items: Vec<Item> = sorted.iter().map(|(h, a)| Self::item(h, a)).collect();
        let date = now.with_timezone(&offset()).format("%Y-%m-%d").to_string();
        let subject = format!(
            "【オンライン資格確認端末】{} 本日の確認事項（{}件）",
            clinic.name,
            items.len()
        );
        let clinic_id = clinic.id.to_string();
        self.render(
            MailKind::Digest,
            clinic,
            &subject,
            "オンライン資格確認端末で、対応をお願いしたい事項があります。重要なものから順に並べています。",
            &items,
            &["digest", &clinic_id, &date],
            Some(format!("digest:{}:{date}", clinic.id)),
        )
    }

    /// A test mail for `send-test-email`.
    pub fn test_mail(&self, to: &str, now: DateTime<Utc>) -> NewMail {
        let stamp = now.timestamp_millis().to_string();
        NewMail {
            kind: MailKind::Test,
            clinic_id: None,
            recipient: to.to_string(),
            subject: "【Onshi Watch】テストメール".into(),
            message_id: self.message_id(&["test", to, &stamp]),
            body_text: format!(
                "Onshi Watch からのテストメールです（{}）。\nこのメールが届いていれば、メールの設定は正しく動いています。\n",
                time_ja(now)
            ),
            body_html: format!(
                "<p>Onshi Watch からのテストメールです（{}）。</p><p>このメールが届いていれば、メールの設定は正しく動いています。</p>",
                time_ja(now)
            ),
            dedupe_key: None,
            alert_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::BusinessHours;
    use crate::domain::{AlertStatus, OutboxMail, Severity};
    use crate::notify::build_message;
    use uuid::Uuid;

    fn clinic(name: &str) -> ClinicSettings {
        ClinicSettings {
            id: 4,
            name: name.into(),
            email: "clinic@example.jp".into(),
            hours: BusinessHours::default(),
            desk_name: Some("ABCサポートデスク".into()),
            desk_phone: Some("03-1234-5678".into()),
            prefecture: None,
            accounts: Vec::new(),
            rules: Default::default(),
        }
    }

    fn alert(rule: RuleKey, severity: Severity) -> Alert {
        let now = Utc::now();
        Alert {
            id: 1,
            terminal_id: Uuid::nil(),
            clinic_id: 4,
            rule,
            severity,
            status: AlertStatus::Open,
            detail: "詳細".into(),
            occurrence: Some("x".into()),
            opened_at: now,
            updated_at: now,
            clear_since: None,
            ack_by: None,
            ack_note: None,
            ack_until: None,
            resolved_at: None,
            resolved_by: None,
            mail_held: false,
        }
    }

    fn composer() -> Composer {
        Composer::new(SmtpSettings {
            from: "Onshi Watch <watch@example.jp>".into(),
            desk: Some("desk@example.jp".into()),
            ..SmtpSettings::default()
        })
    }

    fn outbox(m: &NewMail) -> OutboxMail {
        OutboxMail::unsent(m.clone())
    }

    #[test]
    fn critical_mail_has_steps_desk_first_and_a_desk_copy() {
        let c = composer();
        let mails = c.critical(
            &clinic("さくら内科"),
            "受付PC",
            &alert(RuleKey::ProtectedAccountWindows, Severity::Critical),
            Utc::now(),
        );
        assert_eq!(mails.len(), 2);
        let (clinic_mail, desk_mail) = (&mails[0], &mails[1]);
        assert_eq!(clinic_mail.recipient, "clinic@example.jp");
        assert_eq!(
            clinic_mail.subject,
            "【緊急】さくら内科 受付PC: Windowsアカウントが変更されました"
        );
        let text = &clinic_mail.body_text;
        assert!(text.contains("ABCサポートデスク（03-1234-5678）"));
        assert!(text.find("ABCサポートデスク") < text.find("0800-080-4583"));
        assert!(text.contains("変更し直さず"));
        assert!(
            !text.contains("端末ID"),
            "terminal details are for the desk"
        );
        assert!(desk_mail.body_text.contains("端末ID"));
        assert_eq!(desk_mail.recipient, "desk@example.jp");
        assert_ne!(clinic_mail.message_id, desk_mail.message_id);
        // stable: composing again gives the same Message-ID
        let again = c.critical(
            &clinic("さくら内科"),
            "受付PC",
            &alert(RuleKey::ProtectedAccountWindows, Severity::Critical),
            Utc::now(),
        );
        assert_eq!(again[0].message_id.len(), clinic_mail.message_id.len());
        assert!(clinic_mail.message_id.ends_with("@example.jp>"));
    }

    #[test]
    fn steps_quote_the_vendor_screens() {
        let c = composer();
        let alerts: Vec<(String, Alert)> = [
            RuleKey::UpdatesBehind,
            RuleKey::BackupMissing,
            RuleKey::NoDailyRestart,
            RuleKey::CertExpiry,
        ]
        .iter()
        .map(|r| ("PC-1".to_string(), alert(*r, Severity::Warning)))
        .collect();
        let mails = c.digest(&clinic("さくら内科"), &alerts, Utc::now());
        let text = &mails[0].body_text;
        for quote in [
            "「オンライン資格確認配信アプリケーション管理ツール」",
            "「今すぐダウンロード」",
            "「確認しました」",
            "「certmgr.msc」",
            "「Online Billing NW Common Root CA」",
            "「はい、秘密キーをエクスポートします」",
            ".pfx",
            "USBメモリ",
            "AM4:00",
            "「次へ」",
            "「証明書のプライバシーを有効にする」",
            "「正しくエクスポートされました。」",
            "「1357」",
        ] {
            assert!(text.contains(quote), "missing {quote}");
        }
        assert!(mails[0].subject.contains("本日の確認事項（4件）"));
        assert!(
            mails[0]
                .dedupe_key
                .as_deref()
                .is_some_and(|k| k.starts_with("digest:4:"))
        );
        assert!(mails[0].body_html.contains("<ol>"));
    }

    #[test]
    fn renewal_comes_with_the_backup_steps() {
        let mails = composer().critical(
            &clinic("さくら内科"),
            "PC-1",
            &alert(RuleKey::CertExpiry, Severity::Critical),
            Utc::now(),
        );
        let text = &mails[0].body_text;
        assert!(text.contains("電子証明書の更新"));
        assert!(text.contains("「はい、秘密キーをエクスポートします」"));
        assert!(text.contains("USBメモリ"));
    }

    #[test]
    fn names_cannot_inject_headers() {
        let c = composer();
        let evil = clinic("悪い医院\r\nBcc: victim@example.com\r\nX-Evil: 1");
        let mails = c.critical(
            &evil,
            "PC\nBcc: x@example.com",
            &alert(RuleKey::Offline, Severity::Critical),
            Utc::now(),
        );
        let message = build_message("Onshi Watch <watch@example.jp>", &outbox(&mails[0])).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        for line in head.lines() {
            assert!(!line.starts_with("Bcc:"), "{head}");
            assert!(!line.starts_with("X-Evil"), "{head}");
        }
        assert!(
            head.contains("Subject: =?utf-8?"),
            "RFC 2047 subject: {head}"
        );
        assert!(head.contains(&format!("Message-ID: {}", mails[0].message_id)));
        // an address with a line break is refused, not sent
        let mut bad = outbox(&mails[0]);
        bad.recipient = "a@example.jp\r\nBcc: b@example.jp".into();
        assert!(build_message("watch@example.jp", &bad).is_err());
    }
}
