//! Clinic and desk e-mail: composing the Japanese notices (askama, text + HTML), and the
//! outbox sender that delivers them over SMTP (lettre, rustls) or into a folder of `.eml` files.
//!
//! Delivery is at least once with a stable Message-ID: a row is marked sent (and flushed) right
//! after the server accepted it, so only a crash inside that instant can send it again, and the
//! receiver sees the same Message-ID both times. Everything else never sends a row twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use askama::Template;
use chrono::{DateTime, Duration, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::Error;
use crate::calendar::{jst, time_ja};
use crate::rules::{key, title_ja};
use crate::store::Store;
use crate::store::alerts::{Alert, ClinicSettings, NewMail, OutboxMail};

/// The national call centre for online qualification confirmation.
pub const NATIONAL_CALL_CENTRE: &str = "0800-080-4583";

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (a relay on the same host or a test receiver).
    None,
    /// STARTTLS on the submission port (587).
    #[default]
    Starttls,
    /// Implicit TLS (465).
    Tls,
}

/// `[smtp]` settings. The password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// SMTP server; empty means no SMTP.
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    pub password: Option<String>,
    pub from: String,
    /// The support desk's address: it gets a copy of every mail, with terminal details.
    pub desk: Option<String>,
    /// Named first in clinic mails when the clinic has no desk of its own.
    pub desk_name: String,
    pub desk_phone: Option<String>,
    /// Write mails as `.eml` files into this folder instead of sending them.
    pub file_dir: Option<PathBuf>,
    /// First retry delay; doubles per attempt up to an hour, with ±20 % jitter.
    pub retry_base: StdDuration,
    pub max_attempts: i64,
    /// How long to wait for the SMTP server at each step.
    pub timeout: StdDuration,
    /// How long a claimed mail stays claimed (see [`Sender`]).
    pub lease: StdDuration,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            host: String::new(),
            port: 587,
            tls: TlsMode::Starttls,
            user: None,
            password: None,
            from: "Onshi Watch <onshi-watch@localhost>".into(),
            desk: None,
            desk_name: "サポート窓口".into(),
            desk_phone: None,
            file_dir: None,
            retry_base: StdDuration::from_secs(30),
            max_attempts: 20,
            timeout: StdDuration::from_secs(30),
            lease: StdDuration::from_secs(120),
        }
    }
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("desk", &self.desk)
            .field("file_dir", &self.file_dir)
            .finish()
    }
}

impl MailConfig {
    /// Whether mails leave the outbox at all.
    pub fn enabled(&self) -> bool {
        !self.host.is_empty() || self.file_dir.is_some()
    }

    /// The domain of the From address, for Message-IDs.
    fn domain(&self) -> String {
        self.from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim().to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "onshi-watch.invalid".into())
    }
}

/// Takes CR, LF and other control characters out of text that goes into a header.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

struct Item {
    severity: &'static str,
    title: &'static str,
    hostname: String,
    detail: String,
    terminal_id: String,
    rule: String,
    opened_at: String,
}

struct StepGroup {
    title: &'static str,
    steps: Vec<String>,
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

/// The steps a clinic can take for a rule, grouped so that a mail lists each group once.
fn steps_for(rule: &str) -> (&'static str, StepGroup) {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match rule {
        key::NO_DAILY_RESTART => (
            "restart",
            StepGroup {
                title: "毎日の再起動",
                steps: s(&[
                    "端末は1日1回、電源を切って入れ直すか、再起動してください。",
                    "自動電源設定をお使いの場合は、午前4時（初期設定）に再起動されます。自動電源設定が有効かどうかをご確認ください。",
                ]),
            },
        ),
        key::UPDATES_BEHIND | key::PENDING_REBOOT => (
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
        key::CERT_EXPIRY | key::CERT_MISSING | key::CERT_NO_PRIVATE_KEY => (
            "renew",
            StepGroup {
                title: "電子証明書の更新",
                steps: s(&[
                    "電子証明書の更新（または再発行）の手続きを進めてください。手順が分からない場合はサポート窓口にご相談ください。",
                    "更新が済んだら、更新前の古い電子証明書を削除し、更新後の電子証明書をバックアップしてください（下の「電子証明書のバックアップ」の手順）。",
                ]),
            },
        ),
        key::CERT_OLD_LEFT => (
            "old_cert",
            StepGroup {
                title: "古い電子証明書の削除",
                steps: s(&[
                    "「certmgr.msc」の「個人」→「証明書」に、更新前の古い電子証明書が残っています。削除してよいかサポート窓口に確認のうえ、古い方を削除してください。",
                    "更新後の電子証明書をバックアップしてください（下の「電子証明書のバックアップ」の手順）。",
                ]),
            },
        ),
        key::BACKUP_MISSING | key::BACKUP_OUTDATED => (
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
        key::WINDOWS_PASSWORD_EXPIRY => (
            "password",
            StepGroup {
                title: "Windowsアカウントのパスワード",
                steps: s(&[
                    "有効期限が切れる前にサポート窓口へご連絡ください。",
                    "パスワードをご自身で変更しないでください。変更すると各アプリの自動更新やレセプトコンピュータ等との連携が止まります。",
                ]),
            },
        ),
        key::PROTECTED_ACCOUNT_WINDOWS
        | key::PROTECTED_ACCOUNT_FACE_AUTH
        | key::PROTECTED_ACCOUNT_LINKAGE => (
            "accounts",
            StepGroup {
                title: "変更してはいけないアカウント",
                steps: s(&[
                    "Windowsアカウント・顔認証アカウント・連携アカウントは、名前もパスワードも変更しないでください。",
                    "元に戻そうとしてご自身で変更し直さず、まずサポート窓口へご連絡ください。復旧には再設定の作業が必要になることがあります。",
                ]),
            },
        ),
        key::NETWORK_CHANGED | key::PROBE_UNREACHABLE => (
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

/// Builds the outbox rows for clinic mails and the desk's copies.
#[derive(Debug, Clone)]
pub struct Composer {
    config: MailConfig,
}

impl Composer {
    pub fn new(config: MailConfig) -> Self {
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
        kind: &str,
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
            let (group, s) = steps_for(&item.rule);
            if !seen.contains(&group) {
                seen.push(group);
                steps.push(s);
            }
        }
        // Renewing or cleaning up a certificate ends with backing up the renewed one.
        if (seen.contains(&"renew") || seen.contains(&"old_cert")) && !seen.contains(&"backup") {
            steps.push(steps_for(key::BACKUP_MISSING).1);
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
                tracing::error!(kind, clinic = clinic.id, "rendering a mail failed");
                continue;
            };
            let who = if desk { "desk" } else { "clinic" };
            let mut parts = id_parts.to_vec();
            parts.push(who);
            out.push(NewMail {
                kind: if desk {
                    format!("{kind}-desk")
                } else {
                    kind.to_string()
                },
                clinic_id: Some(clinic.id),
                recipient,
                subject,
                message_id: self.message_id(&parts),
                body_text,
                body_html,
                dedupe_key: dedupe.as_ref().map(|d| format!("{d}:{who}")),
            });
        }
        out
    }

    fn item(hostname: &str, a: &Alert) -> Item {
        Item {
            severity: a.severity.label_ja(),
            title: title_ja(&a.rule),
            hostname: hostname.to_string(),
            detail: a.detail.clone(),
            terminal_id: a.terminal_id.to_string(),
            rule: a.rule.clone(),
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
            title_ja(&alert.rule)
        );
        let opened = alert.opened_at.timestamp_millis().to_string();
        let terminal = alert.terminal_id.to_string();
        let occurrence = alert.occurrence.clone().unwrap_or_default();
        self.render(
            "critical",
            clinic,
            &subject,
            "オンライン資格確認端末に、すぐに対応が必要な問題が見つかりました。下の手順をご確認ください。",
            &[Self::item(hostname, alert)],
            &[&terminal, &alert.rule, &opened, &occurrence],
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
                .then_with(|| {
                    key::ALL
                        .iter()
                        .position(|k| *k == a.rule)
                        .cmp(&key::ALL.iter().position(|k| *k == b.rule))
                })
                .then_with(|| ha.cmp(hb))
        });
        let items: Vec<Item> = sorted.iter().map(|(h, a)| Self::item(h, a)).collect();
        let date = now.with_timezone(&jst()).format("%Y-%m-%d").to_string();
        let subject = format!(
            "【オンライン資格確認端末】{} 本日の確認事項（{}件）",
            clinic.name,
            items.len()
        );
        let clinic_id = clinic.id.to_string();
        self.render(
            "digest",
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
            kind: "test".into(),
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
        }
    }
}

/// Builds the lettre message for an outbox row. Every header is typed: names and subjects are
/// encoded (RFC 2047), never pasted into the header block.
pub fn build_message(from: &str, mail: &OutboxMail) -> Result<Message, String> {
    let from: Mailbox = from.parse().map_err(|e| format!("from address: {e}"))?;
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|e| format!("recipient {:?}: {e}", mail.recipient))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(header_safe(&mail.subject))
        .message_id(Some(mail.message_id.clone()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.body_text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.body_html.clone()),
                ),
        )
        .map_err(|e| format!("building the message: {e}"))
}

/// Where mails go.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Why one send failed.
#[derive(Debug)]
pub enum SendFailure {
    /// Try again later (4xx, connection refused, timeout).
    Transient(String),
    /// Will never succeed (5xx, a malformed address).
    Permanent(String),
}

impl Transport {
    pub fn from_config(config: &MailConfig) -> Result<Option<Transport>, Error> {
        if let Some(dir) = &config.file_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
            return Ok(Some(Transport::File(
                AsyncFileTransport::<Tokio1Executor>::new(dir),
            )));
        }
        if config.host.is_empty() {
            return Ok(None);
        }
        let builder = match config.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| Error::Config(format!("smtp: {e}")))?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| Error::Config(format!("smtp: {e}")))?,
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Some(Transport::Smtp(builder.build())))
    }

    pub async fn send(&self, message: Message) -> Result<(), SendFailure> {
        match self {
            Transport::Smtp(t) => match t.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendFailure::Permanent(e.to_string())),
                Err(e) => Err(SendFailure::Transient(e.to_string())),
            },
            Transport::File(t) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendFailure::Transient(e.to_string())),
        }
    }
}

/// The delay before attempt `attempts + 1`: doubling from `base`, at most an hour, ±20 %.
pub fn backoff(base: StdDuration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    let secs = (base.as_secs_f64() * f64::from(2u32.pow(exp))).min(3600.0);
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::milliseconds((secs * jitter * 1000.0) as i64)
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct MailStats {
    pub sent: std::sync::atomic::AtomicU64,
    pub retried: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// Delivers the outbox.
pub struct Sender {
    store: Arc<dyn Store>,
    transport: Transport,
    config: MailConfig,
    /// How long a claim lasts; a sender that dies leaves rows due again after it.
    pub lease: Duration,
    pub stats: Arc<MailStats>,
}

impl Sender {
    pub fn new(store: Arc<dyn Store>, transport: Transport, config: MailConfig) -> Self {
        Sender {
            store,
            transport,
            lease: Duration::from_std(config.lease).unwrap_or(Duration::minutes(2)),
            config,
            stats: Arc::new(MailStats::default()),
        }
    }

    /// Sends every due mail once; returns how many were accepted.
    pub async fn send_due(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let a = self.store.alerts();
        let mut sent = 0;
        loop {
            let batch = a.claim_mails(now, self.lease, 20).await?;
            if batch.is_empty() {
                return Ok(sent);
            }
            let mut batch = batch.into_iter();
            while let Some(mail) = batch.next() {
                let result = match build_message(&self.config.from, &mail) {
                    Ok(message) => self.transport.send(message).await,
                    Err(e) => Err(SendFailure::Permanent(e)),
                };
                match result {
                    Ok(()) => {
                        a.mark_mail_sent(mail.id, Utc::now()).await?;
                        self.stats.sent.fetch_add(1, Relaxed);
                        sent += 1;
                    }
                    Err(SendFailure::Permanent(e)) => {
                        tracing::error!(mail = mail.id, error = %e, "mail refused for good");
                        a.mark_mail_failed(mail.id, &e).await?;
                        self.stats.failed.fetch_add(1, Relaxed);
                    }
                    Err(SendFailure::Transient(e)) if mail.attempts >= self.config.max_attempts => {
                        tracing::error!(mail = mail.id, error = %e, "mail gave up after retries");
                        a.mark_mail_failed(mail.id, &e).await?;
                        self.stats.failed.fetch_add(1, Relaxed);
                    }
                    Err(SendFailure::Transient(e)) => {
                        let next = Utc::now() + backoff(self.config.retry_base, mail.attempts);
                        tracing::warn!(mail = mail.id, error = %e, %next, "mail will be retried");
                        a.mark_mail_retry(mail.id, next, &e).await?;
                        self.stats.retried.fetch_add(1, Relaxed);
                        // The server is likely down: hand the rest of the claim back for the
                        // next round instead of holding it until the lease ends.
                        for rest in batch {
                            a.mark_mail_retry(
                                rest.id,
                                next,
                                "not tried: the server was unavailable",
                            )
                            .await?;
                        }
                        return Ok(sent);
                    }
                }
            }
        }
    }

    /// Polls the outbox every `every` until `stop` fires.
    pub async fn run(self, every: StdDuration, stop: Arc<Notify>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.send_due(Utc::now()).await {
                        tracing::error!(error = %e, "mail sender failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::BusinessHours;
    use crate::rules::Severity;
    use crate::store::alerts::AlertStatus;
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
        }
    }

    fn alert(rule: &str, severity: Severity) -> Alert {
        let now = Utc::now();
        Alert {
            id: 1,
            terminal_id: Uuid::nil(),
            clinic_id: 4,
            rule: rule.into(),
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
        }
    }

    fn composer() -> Composer {
        Composer::new(MailConfig {
            from: "Onshi Watch <watch@example.jp>".into(),
            desk: Some("desk@example.jp".into()),
            ..MailConfig::default()
        })
    }

    fn outbox(m: &NewMail) -> OutboxMail {
        OutboxMail {
            id: 1,
            kind: m.kind.clone(),
            recipient: m.recipient.clone(),
            subject: m.subject.clone(),
            message_id: m.message_id.clone(),
            body_text: m.body_text.clone(),
            body_html: m.body_html.clone(),
            attempts: 1,
        }
    }

    #[test]
    fn critical_mail_has_steps_desk_first_and_a_desk_copy() {
        let c = composer();
        let mails = c.critical(
            &clinic("さくら内科"),
            "受付PC",
            &alert(key::PROTECTED_ACCOUNT_WINDOWS, Severity::Critical),
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
            &alert(key::PROTECTED_ACCOUNT_WINDOWS, Severity::Critical),
            Utc::now(),
        );
        assert_eq!(again[0].message_id.len(), clinic_mail.message_id.len());
        assert!(clinic_mail.message_id.ends_with("@example.jp>"));
    }

    #[test]
    fn steps_quote_the_vendor_screens() {
        let c = composer();
        let alerts: Vec<(String, Alert)> = [
            key::UPDATES_BEHIND,
            key::BACKUP_MISSING,
            key::NO_DAILY_RESTART,
            key::CERT_EXPIRY,
        ]
        .iter()
        .map(|r| ("PC-1".to_string(), alert(r, Severity::Warning)))
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
            "午前4時",
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
            &alert(key::CERT_EXPIRY, Severity::Critical),
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
            &alert(key::OFFLINE, Severity::Critical),
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

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = StdDuration::from_secs(30);
        for (attempts, secs) in [(1, 30.0), (2, 60.0), (3, 120.0), (20, 3600.0)] {
            let d = backoff(base, attempts).num_milliseconds() as f64 / 1000.0;
            assert!(d >= secs * 0.8 && d <= secs * 1.2, "{attempts}: {d}");
        }
    }

    #[test]
    fn password_never_prints() {
        let c = MailConfig {
            password: Some("hunter2".into()),
            ..MailConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
