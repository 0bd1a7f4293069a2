//! The desk's chat and webhook channels (`[[channels]]`): a generic signed webhook, Slack
//! incoming webhooks, Microsoft Teams workflows (Adaptive Cards) and LINE (the Messaging API's
//! push to a group).
//!
//! A channel message is an outbox row like a mail: the evaluator writes it in the alert
//! change's transaction, a sender of its own lane claims it (so two replicas never both send
//! it), retries it with backoff while the receiver is down and records the outcome. The row
//! keeps the event as JSON ([`ChannelEvent`]); the wire format of each kind is rendered when it
//! is sent ([`render`]), with the alert's id (known once stored) and a fresh signature.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use ring::hmac;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::transport::SendFailure;
use crate::Error;
use crate::domain::{Alert, AlertAction, AlertStatus, ClinicSettings, MailKind, NewMail, Severity};

/// The header that carries a generic webhook's signature: `t=<unix seconds>,v1=<hex>`, where
/// the hex is HMAC-SHA256 under the channel's secret of `<t>.<body>` (as Stripe signs).
pub const SIGNATURE_HEADER: &str = "Onshi-Signature";
/// The delivery's id: the same on every attempt, for receivers to drop a repeat.
pub const DELIVERY_HEADER: &str = "Onshi-Delivery";
/// The event's type (`alert.opened`, …).
pub const EVENT_HEADER: &str = "Onshi-Event";
/// How old a signature a receiver should still accept (its replay window), in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
/// The Messaging API's push endpoint.
pub const LINE_PUSH_URL: &str = "https://api.line.me/v2/bot/message/push";
/// LINE's limit on one text message.
const LINE_TEXT_MAX: usize = 5_000;

/// Where a channel posts, and in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Webhook,
    Slack,
    Teams,
    Line,
}

impl ChannelKind {
    pub fn mail_kind(self) -> MailKind {
        match self {
            ChannelKind::Webhook => MailKind::Webhook,
            ChannelKind::Slack => MailKind::Slack,
            ChannelKind::Teams => MailKind::Teams,
            ChannelKind::Line => MailKind::Line,
        }
    }

    pub fn of(kind: MailKind) -> Option<ChannelKind> {
        match kind {
            MailKind::Webhook => Some(ChannelKind::Webhook),
            MailKind::Slack => Some(ChannelKind::Slack),
            MailKind::Teams => Some(ChannelKind::Teams),
            MailKind::Line => Some(ChannelKind::Line),
            _ => None,
        }
    }
}

/// One `[[channels]]` entry. Secrets live in files of their own, never in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Shown on the outbox page and in logs; unique.
    pub name: String,
    pub kind: ChannelKind,
    /// Where to post: the receiver's URL, Slack's incoming webhook URL, the Teams workflow's
    /// URL ("When a Teams webhook request is received"); for LINE the push endpoint (by
    /// default the Messaging API's). `https://`, or `http://` to this machine only.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the webhook's signing secret, or LINE's channel access token.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// LINE: the group (or room, or user) id the bot pushes to.
    #[serde(default)]
    pub to: Option<String>,
    /// The channel's scope: alerts of clinics in these prefectures, and of clinics in these
    /// clinic groups (by name, as on the users page). Both empty: the whole fleet.
    #[serde(default)]
    pub prefectures: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The clinics of `groups`, read from the store ([`refresh_groups`]); clones of these
    /// settings share it, so a channel built from another's settings needs a new one.
    #[serde(skip)]
    pub group_clinics: GroupClinics,
    /// A critical alert nobody has acknowledged this many minutes after it opened is posted
    /// here again (`alert.reminder`); 0: never.
    #[serde(default = "default_remind")]
    pub remind_after_minutes: u32,
    /// … and after this many, posted to `escalate_to` (`alert.escalation`); 0: never.
    #[serde(default = "default_escalate")]
    pub escalate_after_minutes: u32,
    /// The second contact: another channel's name (a manager's LINE group, the vendor's
    /// ticket webhook).
    #[serde(default)]
    pub escalate_to: Option<String>,
}

/// The clinics of a channel's `groups`: read from the store by the evaluator on each full pass
/// and by the desk before it tells the channels of a staff action, and shared by every copy of
/// the channel's settings in the process. Until first read, a channel hears of its groups'
/// clinics through its prefectures only.
#[derive(Debug, Clone, Default)]
pub struct GroupClinics(Arc<std::sync::RwLock<Option<Arc<BTreeSet<i64>>>>>);

impl GroupClinics {
    fn contains(&self, clinic_id: i64) -> bool {
        self.0
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|ids| ids.contains(&clinic_id)))
            .unwrap_or(false)
    }

    /// Whether this was the first read.
    fn set(&self, ids: Vec<i64>) -> bool {
        match self.0.write() {
            Ok(mut g) => g.replace(Arc::new(ids.into_iter().collect())).is_none(),
            Err(_) => false,
        }
    }
}

/// What the configuration says is what counts; the clinics read for it are not part of it.
impl PartialEq for GroupClinics {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for GroupClinics {}

/// Reads the clinics of every channel's `groups` anew. A group name the store does not know
/// is logged (at the first read) and reaches no clinic.
pub async fn refresh_groups(
    channels: &[ChannelSettings],
    store: &dyn crate::store::Store,
) -> Result<(), crate::store::StoreError> {
    if channels.iter().all(|c| c.groups.is_empty()) {
        return Ok(());
    }
    let known = store.staff().clinic_groups().await?;
    for c in channels.iter().filter(|c| !c.groups.is_empty()) {
        let (found, missing): (Vec<_>, Vec<_>) = c
            .groups
            .iter()
            .partition(|name| known.iter().any(|g| &g.name == *name));
        let scope = crate::domain::Scope {
            prefectures: Vec::new(),
            groups: known
                .iter()
                .filter(|g| found.contains(&&g.name))
                .map(|g| g.id)
                .collect(),
        };
        let ids = store.staff().scope_clinics(&scope).await?;
        if c.group_clinics.set(ids) && !missing.is_empty() {
            tracing::warn!(channel = %c.name, groups = ?missing, "channel names clinic groups that do not exist");
        }
    }
    Ok(())
}

fn default_remind() -> u32 {
    30
}

fn default_escalate() -> u32 {
    120
}

impl ChannelSettings {
    fn target(&self) -> String {
        match (self.kind, &self.url) {
            (_, Some(url)) => url.clone(),
            (ChannelKind::Line, None) => LINE_PUSH_URL.to_string(),
            (_, None) => String::new(),
        }
    }

    /// Whether an alert of the clinic (`clinic_id`, in `prefecture`) is this channel's.
    pub fn covers(&self, clinic_id: i64, prefecture: Option<&str>) -> bool {
        (self.prefectures.is_empty() && self.groups.is_empty())
            || prefecture.is_some_and(|p| self.prefectures.iter().any(|q| q == p))
            || (!self.groups.is_empty() && self.group_clinics.contains(clinic_id))
    }
}

/// Checks the channels of a configuration: what would fail at every delivery fails at start.
pub fn check(channels: &[ChannelSettings]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for c in channels {
        let name = c.name.trim();
        if name.is_empty() || name.chars().count() > 64 || name != c.name {
            return Err(format!(
                "channel {:?}: a name of 1 to 64 characters without surrounding spaces",
                c.name
            ));
        }
        if !names.insert(name) {
            return Err(format!("channel {name:?} is named twice"));
        }
        let target = c.target();
        if target.is_empty() {
            return Err(format!("channel {name:?}: set its url"));
        }
        let url = url::Url::parse(&target).map_err(|e| format!("channel {name:?}: url: {e}"))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(format!(
                    "channel {name:?}: the url must be https:// (http:// only to this machine): \
                     alerts name clinics"
                ));
            }
        }
        let needs_secret = matches!(c.kind, ChannelKind::Webhook | ChannelKind::Line);
        if needs_secret && c.secret_file.is_none() {
            return Err(format!(
                "channel {name:?}: set secret_file (the {})",
                if c.kind == ChannelKind::Line {
                    "channel access token"
                } else {
                    "signing secret"
                }
            ));
        }
        if let Some(to) = &c.escalate_to
            && (to == name || !channels.iter().any(|o| &o.name == to))
        {
            return Err(format!(
                "channel {name:?}: escalate_to {to:?} is not another channel's name"
            ));
        }
        if c.escalate_to.is_some()
            && c.remind_after_minutes > 0
            && c.escalate_after_minutes > 0
            && c.escalate_after_minutes <= c.remind_after_minutes
        {
            return Err(format!(
                "channel {name:?}: escalate_after_minutes must be more than remind_after_minutes"
            ));
        }
        if c.kind == ChannelKind::Line && c.to.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "channel {name:?}: set to (the LINE group id to push to)"
            ));
        }
    }
    Ok(())
}

/// What happened to an alert, as the channels see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "alert.opened")]
    Opened,
    #[serde(rename = "alert.escalated")]
    Escalated,
    /// The same alert again with a new occurrence (another expiry step, another change).
    #[serde(rename = "alert.changed")]
    Changed,
    #[serde(rename = "alert.acknowledged")]
    Acknowledged,
    #[serde(rename = "alert.resolved")]
    Resolved,
    /// Still open and nobody took it, `remind_after_minutes` after it opened.
    #[serde(rename = "alert.reminder")]
    Reminder,
    /// Still open and nobody took it, `escalate_after_minutes` after it opened: to the
    /// second contact.
    #[serde(rename = "alert.escalation")]
    Escalation,
    /// `onshi-server test-channel`: nothing happened to any terminal.
    #[serde(rename = "channel.test")]
    Test,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Opened => "alert.opened",
            EventType::Escalated => "alert.escalated",
            EventType::Changed => "alert.changed",
            EventType::Acknowledged => "alert.acknowledged",
            EventType::Resolved => "alert.resolved",
            EventType::Reminder => "alert.reminder",
            EventType::Escalation => "alert.escalation",
            EventType::Test => "channel.test",
        }
    }

    fn label_ja(self) -> &'static str {
        match self {
            EventType::Opened => "発生",
            EventType::Escalated => "緊急度が上がりました",
            EventType::Changed => "状況が変わりました",
            EventType::Acknowledged => "対応中",
            EventType::Resolved => "解消",
            EventType::Reminder => "未対応のままです",
            EventType::Escalation => "未対応のためエスカレーション",
            EventType::Test => "テスト通知",
        }
    }
}

/// An event as stored in the outbox and sent to a generic webhook (with `id`, the delivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEvent {
    #[serde(rename = "type")]
    pub event: EventType,
    pub occurred_at: DateTime<Utc>,
    pub alert: EventAlert,
    pub terminal: EventTerminal,
    pub clinic: EventClinic,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAlert {
    /// Stable: an alert that opens again keeps its id. 0 until the row is stored; filled in
    /// when the message is sent.
    pub id: i64,
    /// The rule's key (`cert_expiry`, …).
    pub rule: String,
    pub title: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    pub status: String,
    pub detail: String,
    pub opened_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTerminal {
    pub id: Uuid,
    pub hostname: String,
    /// The terminal's page on the dashboard (`[dashboard] public_url`), when known.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventClinic {
    pub id: i64,
    pub name: String,
    pub prefecture: Option<String>,
}

/// The change: the action in the alert's history, the status before and after, and who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    pub by: String,
}

/// Whether the channels were told of `alert` (or will be, once it opens): a critical alert for
/// the clinic whose mail went (not held back by a silence).
pub fn announced(alert: &Alert) -> bool {
    alert.severity == Severity::Critical && !alert.mail_held && !alert.rule.desk_only()
}

/// Whether `alert` is reminded and escalated while nobody takes it: announced and still open.
pub fn remindable(alert: &Alert) -> bool {
    announced(alert) && alert.status == AlertStatus::Open
}

/// Which event, if any, an evaluator change makes for the channels: a critical alert opening,
/// escalating to critical or changing, when its mail goes (`mailed`: not while a silence holds
/// it), and a critical alert that was announced resolving.
pub fn event_of(
    before: Option<&Alert>,
    after: &Alert,
    action: AlertAction,
    mailed: bool,
) -> Option<EventType> {
    if after.rule.desk_only() {
        return None;
    }
    match action {
        _ if mailed => Some(match action {
            AlertAction::Escalated => EventType::Escalated,
            AlertAction::Changed => EventType::Changed,
            _ => EventType::Opened,
        }),
        AlertAction::Resolved => before.is_some_and(announced).then_some(EventType::Resolved),
        _ => None,
    }
}

/// The event for `alert` at `clinic`.
pub fn event(
    event: EventType,
    alert: &Alert,
    before: Option<AlertStatus>,
    clinic: &ClinicSettings,
    hostname: &str,
    public_url: Option<&str>,
    now: DateTime<Utc>,
) -> ChannelEvent {
    let by = match (event, &alert.resolved_by, &alert.ack_by) {
        (EventType::Resolved, Some(who), _) => who.clone(),
        (EventType::Acknowledged, _, Some(who)) => who.clone(),
        _ => crate::domain::AUTO_ACTOR.to_string(),
    };
    ChannelEvent {
        event,
        occurred_at: now,
        alert: EventAlert {
            id: alert.id,
            rule: alert.rule.as_str().to_string(),
            title: alert.rule.title_ja().to_string(),
            severity: alert.severity.as_str().to_string(),
            status: alert.status.as_str().to_string(),
            detail: alert.detail.clone(),
            opened_at: alert.opened_at,
        },
        terminal: EventTerminal {
            id: alert.terminal_id,
            hostname: hostname.to_string(),
            url: public_url.map(|u| {
                format!(
                    "{}/terminals/{}",
                    u.trim_end_matches('/'),
                    alert.terminal_id
                )
            }),
        },
        clinic: EventClinic {
            id: clinic.id,
            name: clinic.name.clone(),
            prefecture: clinic.prefecture.clone(),
        },
        transition: Transition {
            // The event's name without its prefix: `alert.opened` → `opened`.
            action: event
                .as_str()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string(),
            from: before.map(|s| s.as_str().to_string()),
            to: alert.status.as_str().to_string(),
            by,
        },
    }
}

/// The outbox rows for `event`: one per channel whose scope covers the clinic.
pub fn messages(channels: &[ChannelSettings], event: &ChannelEvent) -> Vec<NewMail> {
    channels
        .iter()
        .filter(|c| c.covers(event.clinic.id, event.clinic.prefecture.as_deref()))
        .filter_map(|c| message(c, event, None))
        .collect()
}

/// The outbox row for `event` to `channel`; at most one row per `dedupe` key is ever stored.
fn message(
    channel: &ChannelSettings,
    event: &ChannelEvent,
    dedupe: Option<String>,
) -> Option<NewMail> {
    let body = serde_json::to_string(event).ok()?;
    Some(NewMail {
        kind: channel.kind.mail_kind(),
        clinic_id: Some(event.clinic.id),
        recipient: channel.name.clone(),
        subject: summary(event),
        // The delivery id: a UUID (LINE takes it as its retry key).
        message_id: Uuid::now_v7().to_string(),
        body_text: body,
        body_html: String::new(),
        dedupe_key: dedupe,
        alert_id: (event.alert.id > 0).then_some(event.alert.id),
    })
}

/// A test message for the channel `name` (`None`: no such channel), as the sender would
/// claim it: `onshi-server test-channel` posts it at once.
pub fn test_message(
    channels: &[ChannelSettings],
    name: &str,
    now: DateTime<Utc>,
) -> Option<crate::domain::OutboxMail> {
    let channel = channels.iter().find(|c| c.name == name)?;
    let e = ChannelEvent {
        event: EventType::Test,
        occurred_at: now,
        alert: EventAlert {
            id: 0,
            rule: "test".into(),
            title: "Onshi Watch からのテスト通知です".into(),
            severity: Severity::Info.as_str().into(),
            status: AlertStatus::Resolved.as_str().into(),
            detail: "このメッセージが届いていれば、チャンネルの設定は正しく動いています。".into(),
            opened_at: now,
        },
        terminal: EventTerminal {
            id: Uuid::nil(),
            hostname: "TEST-PC".into(),
            url: None,
        },
        clinic: EventClinic {
            id: 0,
            name: "テスト医療機関".into(),
            prefecture: None,
        },
        transition: Transition {
            action: "test".into(),
            from: None,
            to: AlertStatus::Resolved.as_str().into(),
            by: crate::domain::AUTO_ACTOR.into(),
        },
    };
    message(channel, &e, None).map(crate::domain::OutboxMail::unsent)
}

/// One line: 【緊急】発生: clinic / host: title.
pub fn summary(e: &ChannelEvent) -> String {
    format!(
        "【{}】{}: {} / {}: {}",
        severity_ja(e),
        e.event.label_ja(),
        e.clinic.name,
        e.terminal.hostname,
        e.alert.title
    )
}

/// The message as plain text, for chat.
fn severity_ja(e: &ChannelEvent) -> &'static str {
    Severity::parse(&e.alert.severity).map_or("", Severity::label_ja)
}

fn text(e: &ChannelEvent) -> String {
    let mut t = summary(e);
    if !e.alert.detail.is_empty() {
        t.push('\n');
        t.push_str(&e.alert.detail);
    }
    t.push_str(&format!(
        "\n発生: {}",
        crate::jst::time_ja(e.alert.opened_at)
    ));
    if e.transition.by != crate::domain::AUTO_ACTOR {
        t.push_str(&format!(" / 担当: {}", e.transition.by));
    }
    if let Some(url) = &e.terminal.url {
        t.push('\n');
        t.push_str(url);
    }
    t
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A configured channel with its secret read.
#[derive(Clone)]
pub struct Channel {
    pub settings: ChannelSettings,
    secret: Option<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("settings", &self.settings)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Channel {
    pub fn new(settings: ChannelSettings, secret: Option<String>) -> Self {
        Channel { settings, secret }
    }

    fn load(settings: &ChannelSettings) -> Result<Channel, Error> {
        let secret = match &settings.secret_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!(
                        "channel {:?}: secret_file {}: {e}",
                        settings.name,
                        path.display()
                    ))
                })?;
                let text = text.trim().to_string();
                if text.is_empty() {
                    return Err(Error::Config(format!(
                        "channel {:?}: secret_file {} is empty",
                        settings.name,
                        path.display()
                    )));
                }
                Some(text)
            }
            None => None,
        };
        Ok(Channel::new(settings.clone(), secret))
    }
}

/// The request for one stored event to `channel`: `delivery` is the row's id for receivers,
/// `now` the signature's time.
pub fn render(
    channel: &Channel,
    event: &ChannelEvent,
    delivery: &str,
    now: DateTime<Utc>,
) -> Result<Outgoing, String> {
    let json = "application/json".to_string();
    let url = channel.settings.target();
    let secret = || {
        channel
            .secret
            .as_deref()
            .ok_or_else(|| format!("channel {:?} has no secret", channel.settings.name))
    };
    let (headers, body) = match channel.settings.kind {
        ChannelKind::Webhook => {
            #[derive(Serialize)]
            struct Body<'a> {
                id: &'a str,
                #[serde(flatten)]
                event: &'a ChannelEvent,
            }
            let body = serde_json::to_vec(&Body {
                id: delivery,
                event,
            })
            .map_err(|e| format!("encoding the event: {e}"))?;
            let signature = sign(secret()?.as_bytes(), now.timestamp(), &body);
            (
                vec![
                    ("Content-Type", json),
                    (SIGNATURE_HEADER, signature),
                    (DELIVERY_HEADER, delivery.to_string()),
                    (EVENT_HEADER, event.event.as_str().to_string()),
                ],
                body,
            )
        }
        ChannelKind::Slack => {
            let body = serde_json::json!({
                "text": slack_escape(&summary(event)),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&text(event))}},
                    {"type": "context", "elements": [
                        {"type": "mrkdwn", "text": slack_escape(&format!(
                            "{} · 端末 {} · 通知 {}", event.event.as_str(), event.terminal.id, delivery))}
                    ]}
                ]
            });
            (vec![("Content-Type", json)], body.to_string().into_bytes())
        }
        ChannelKind::Teams => {
            let mut facts = vec![
                serde_json::json!({"title": "医療機関", "value": event.clinic.name}),
                serde_json::json!({"title": "端末", "value": event.terminal.hostname}),
                serde_json::json!({"title": "重大度", "value": severity_ja(event)}),
                serde_json::json!({"title": "発生", "value": crate::jst::time_ja(event.alert.opened_at)}),
            ];
            if event.transition.by != crate::domain::AUTO_ACTOR {
                facts.push(serde_json::json!({"title": "担当", "value": event.transition.by}));
            }
            let mut card = serde_json::json!({
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": summary(event), "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": event.alert.detail, "wrap": true},
                    {"type": "FactSet", "facts": facts},
                ],
            });
            if let Some(url) = &event.terminal.url {
                card["actions"] = serde_json::json!([
                    {"type": "Action.OpenUrl", "title": "端末を開く", "url": url}
                ]);
            }
            let message = serde_json::json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": card,
                }]
            });
            (
                vec![("Content-Type", json)],
                message.to_string().into_bytes(),
            )
        }
        ChannelKind::Line => {
            let mut t = text(event);
            if t.chars().count() > LINE_TEXT_MAX {
                t = t.chars().take(LINE_TEXT_MAX - 1).collect::<String>() + "…";
            }
            let body = serde_json::json!({
                "to": channel.settings.to,
                "messages": [{"type": "text", "text": t}],
            });
            (
                vec![
                    ("Content-Type", json),
                    ("Authorization", format!("Bearer {}", secret()?)),
                    // LINE accepts one push per key: a retry after a lost reply is not sent twice.
                    ("X-Line-Retry-Key", delivery.to_string()),
                ],
                body.to_string().into_bytes(),
            )
        }
    };
    Ok(Outgoing { url, headers, body })
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={timestamp},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature is {0} s away from now: outside the replay window")]
    Stale(i64),
    #[error("no signature matches")]
    Mismatch,
}

/// Checks a webhook signature as a receiver should: the timestamp within `tolerance_secs` of
/// `now`, and one `v1` (several during a secret's rotation) matching, compared in constant
/// time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => {
                candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now.timestamp() - timestamp;
    if skew.abs() > tolerance_secs {
        return Err(SignatureError::Stale(skew));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    candidates
        .iter()
        .any(|c| hmac::verify(&key, &signed, c).is_ok())
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

/// What became of a request, by the receiver's status: 2xx sent; 408, 429 and 5xx again later;
/// LINE's 409 (this retry key was accepted before) sent; any other 4xx never.
pub fn outcome(kind: ChannelKind, status: u16, body: &str) -> Result<(), SendFailure> {
    let said = || {
        let b: String = body.chars().take(200).collect();
        format!("HTTP {status}: {}", b.trim())
    };
    match status {
        200..=299 => Ok(()),
        409 if kind == ChannelKind::Line => Ok(()),
        408 | 429 | 500..=599 => Err(SendFailure::Transient(said())),
        _ => Err(SendFailure::Permanent(said())),
    }
}

/// Posts channel messages.
pub struct Courier {
    client: reqwest::Client,
    channels: HashMap<String, Channel>,
}

impl Courier {
    /// The configured channels with their secrets read (none configured: it still fails the
    /// messages of channels taken out of the configuration).
    pub fn from_config(
        channels: &[ChannelSettings],
        timeout: StdDuration,
    ) -> Result<Courier, Error> {
        check(channels).map_err(Error::Config)?;
        let loaded = channels
            .iter()
            .map(|c| Ok((c.name.clone(), Channel::load(c)?)))
            .collect::<Result<HashMap<_, _>, Error>>()?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("onshi-server/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(StdDuration::from_secs(10)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("the HTTP client for channels: {e}")))?;
        Ok(Courier {
            client,
            channels: loaded,
        })
    }

    /// Sends one claimed row.
    pub async fn deliver(&self, row: &crate::domain::OutboxMail) -> Result<(), SendFailure> {
        let Some(channel) = self.channels.get(&row.recipient) else {
            return Err(SendFailure::Permanent(format!(
                "channel {:?} is no longer configured",
                row.recipient
            )));
        };
        if ChannelKind::of(row.kind) != Some(channel.settings.kind) {
            return Err(SendFailure::Permanent(format!(
                "channel {:?} is now of another kind",
                row.recipient
            )));
        }
        let mut event: ChannelEvent = serde_json::from_str(&row.body_text)
            .map_err(|e| SendFailure::Permanent(format!("the stored event: {e}")))?;
        if let Some(id) = row.alert_id {
            event.alert.id = id;
        }
        let out =
            render(channel, &event, &row.message_id, Utc::now()).map_err(SendFailure::Permanent)?;
        let mut request = self.client.post(&out.url).body(out.body);
        for (name, value) in out.headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendFailure::Transient(format!("{}: {e}", channel.settings.name)))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        outcome(channel.settings.kind, status, &body)
    }
}

/// What the evaluator needs to write channel messages with its alert changes.
#[derive(Debug, Clone, Default)]
pub struct Announcer {
    pub channels: Vec<ChannelSettings>,
    /// `[dashboard] public_url`, for links to the terminal's page.
    pub public_url: Option<String>,
}

impl Announcer {
    pub fn from_config(config: &crate::Config) -> Self {
        Announcer {
            channels: config.channels.clone(),
            public_url: config.dashboard.public_url.clone(),
        }
    }

    /// The channel messages for one evaluator change (see [`event_of`]); `mailed` whether
    /// its critical mail goes now.
    #[allow(clippy::too_many_arguments)]
    pub fn on_change(
        &self,
        before: Option<&Alert>,
        after: &Alert,
        action: AlertAction,
        mailed: bool,
        clinic: &ClinicSettings,
        hostname: &str,
        now: DateTime<Utc>,
    ) -> Vec<NewMail> {
        if self.channels.is_empty() {
            return Vec::new();
        }
        let Some(kind) = event_of(before, after, action, mailed) else {
            return Vec::new();
        };
        let e = event(
            kind,
            after,
            before.map(|b| b.status),
            clinic,
            hostname,
            self.public_url.as_deref(),
            now,
        );
        messages(&self.channels, &e)
    }

    /// When an alert, if nobody takes it, is reminded and escalated, and to which channels:
    /// (event, when, channel names), in time order; empty for an alert that will not be
    /// (not critical, taken, resolved, held by a silence, or no channel covers its clinic).
    pub fn schedule(
        &self,
        alert: &Alert,
        prefecture: Option<&str>,
    ) -> Vec<(EventType, DateTime<Utc>, Vec<String>)> {
        let mut out: Vec<(EventType, DateTime<Utc>, Vec<String>)> = Vec::new();
        if !remindable(alert) {
            return out;
        }
        let mut add = |kind: EventType, minutes: u32, to: &str| {
            let at = alert.opened_at + chrono::Duration::minutes(i64::from(minutes));
            match out.iter_mut().find(|(k, t, _)| *k == kind && *t == at) {
                Some((_, _, names)) if !names.iter().any(|n| n == to) => names.push(to.into()),
                Some(_) => {}
                None => out.push((kind, at, vec![to.to_string()])),
            }
        };
        for c in self
            .channels
            .iter()
            .filter(|c| c.covers(alert.clinic_id, prefecture))
        {
            if c.remind_after_minutes > 0 {
                add(EventType::Reminder, c.remind_after_minutes, &c.name);
            }
            if let Some(to) = &c.escalate_to
                && c.escalate_after_minutes > 0
            {
                add(EventType::Escalation, c.escalate_after_minutes, to);
            }
        }
        out.sort_by_key(|(_, at, _)| *at);
        out
    }

    /// The schedule in a line for the desk: 「12:30 リマインド予定 (slack-desk)」, or 「送信」 once
    /// the time has passed.
    pub fn schedule_ja(
        &self,
        alert: &Alert,
        prefecture: Option<&str>,
        now: DateTime<Utc>,
    ) -> String {
        self.schedule(alert, prefecture)
            .into_iter()
            .map(|(kind, at, names)| {
                let what = match kind {
                    EventType::Escalation => "エスカレーション",
                    _ => "リマインド",
                };
                let state = if at <= now { "送信" } else { "予定" };
                format!(
                    "{} {what}{state} ({})",
                    crate::jst::time_ja(at),
                    names.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// The earliest a reminder can be due: alerts opened after `now` minus this need no look.
    pub fn first_due(&self) -> Option<chrono::Duration> {
        self.channels
            .iter()
            .flat_map(|c| {
                let escalates = c.escalate_to.is_some();
                [
                    c.remind_after_minutes,
                    if escalates {
                        c.escalate_after_minutes
                    } else {
                        0
                    },
                ]
            })
            .filter(|m| *m > 0)
            .min()
            .map(|m| chrono::Duration::minutes(i64::from(m)))
    }

    /// Reminders and escalations due at `now` for a stored alert (`alert.id` set): a critical
    /// alert still open (not acknowledged), whose mail went (not held by a silence). Each is
    /// keyed by the alert and its opening, so it is stored once however often this is asked;
    /// an escalation is keyed by its target, so two channels escalating to one contact post
    /// once.
    pub fn overdue(
        &self,
        alert: &Alert,
        clinic: &ClinicSettings,
        hostname: &str,
        now: DateTime<Utc>,
    ) -> Vec<NewMail> {
        if alert.id == 0 || !remindable(alert) {
            return Vec::new();
        }
        let age = now - alert.opened_at;
        let due =
            |minutes: u32| minutes > 0 && age >= chrono::Duration::minutes(i64::from(minutes));
        let opened = alert.opened_at.timestamp_millis();
        let mut out: Vec<NewMail> = Vec::new();
        for c in self
            .channels
            .iter()
            .filter(|c| c.covers(clinic.id, clinic.prefecture.as_deref()))
        {
            let mut post = |kind: EventType, to: &ChannelSettings, stage: &str| {
                let key = format!("{stage}:{}:{}:{opened}", to.name, alert.id);
                if out
                    .iter()
                    .any(|m| m.dedupe_key.as_deref() == Some(key.as_str()))
                {
                    return;
                }
                let e = event(
                    kind,
                    alert,
                    Some(alert.status),
                    clinic,
                    hostname,
                    self.public_url.as_deref(),
                    now,
                );
                out.extend(message(to, &e, Some(key)));
            };
            if due(c.remind_after_minutes) {
                post(EventType::Reminder, c, "reminder");
            }
            let target = c
                .escalate_to
                .as_ref()
                .and_then(|t| self.channels.iter().find(|o| &o.name == t));
            if let Some(target) = target
                && due(c.escalate_after_minutes)
            {
                post(EventType::Escalation, target, "escalation");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::BusinessHours;
    use crate::domain::RuleKey;

    fn clinic(prefecture: Option<&str>) -> ClinicSettings {
        ClinicSettings {
            id: 7,
            name: "さくら<内科>&".into(),
            email: "clinic@example.jp".into(),
            hours: BusinessHours::default(),
            desk_name: None,
            desk_phone: None,
            prefecture: prefecture.map(str::to_string),
            accounts: Vec::new(),
            rules: Default::default(),
        }
    }

    fn alert(rule: RuleKey, severity: Severity, status: AlertStatus) -> Alert {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Alert {
            id: 0,
            terminal_id: Uuid::from_u128(5),
            clinic_id: 7,
            rule,
            severity,
            status,
            detail: "連携アカウントが変わりました".into(),
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

    fn channel(kind: ChannelKind, url: &str) -> ChannelSettings {
        ChannelSettings {
            name: format!("{kind:?}"),
            kind,
            url: Some(url.into()),
            secret_file: Some("/dev/null".into()),
            to: Some("Cgroup".into()),
            prefectures: Vec::new(),
            groups: Vec::new(),
            group_clinics: GroupClinics::default(),
            remind_after_minutes: 30,
            escalate_after_minutes: 120,
            escalate_to: None,
        }
    }

    fn opened() -> ChannelEvent {
        let a = alert(
            RuleKey::ProtectedAccountLinkage,
            Severity::Critical,
            AlertStatus::Open,
        );
        event(
            EventType::Opened,
            &a,
            None,
            &clinic(Some("東京都")),
            "ONSHI-PC01",
            Some("https://desk.example.jp/"),
            a.opened_at,
        )
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed with Python's hmac module, independently of ring.
        assert_eq!(
            sign(b"whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn receivers_verify_within_the_replay_window_only() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let body = br#"{"type":"alert.opened"}"#;
        let header = sign(b"secret", now.timestamp(), body);
        assert_eq!(verify(b"secret", &header, body, now, 300), Ok(()));
        let later = now + chrono::Duration::seconds(301);
        assert_eq!(
            verify(b"secret", &header, body, later, 300),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(
                b"secret",
                &header,
                br#"{"type":"alert.resolved"}"#,
                now,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, body, now, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1700000000,v1=zz"] {
            assert!(verify(b"secret", bad, body, now, 300).is_err(), "{bad:?}");
        }
        // During a secret's rotation a sender may sign twice: either matches.
        let old = sign(b"old", now.timestamp(), body);
        let both = format!("{header},{}", old.split(',').nth(1).unwrap());
        assert_eq!(verify(b"old", &both, body, now, 300), Ok(()));
    }

    #[test]
    fn channels_are_checked_at_start() {
        let ok = [
            channel(ChannelKind::Webhook, "https://hooks.example.jp/onshi"),
            channel(ChannelKind::Slack, "http://127.0.0.1:9/slack"),
            ChannelSettings {
                url: None,
                ..channel(ChannelKind::Line, "")
            },
        ];
        assert_eq!(check(&ok), Ok(()));
        let plain = channel(ChannelKind::Teams, "http://teams.example.jp/x");
        assert!(check(&[plain]).unwrap_err().contains("https://"));
        let twice = [
            channel(ChannelKind::Slack, "https://a.example.jp"),
            channel(ChannelKind::Slack, "https://b.example.jp"),
        ];
        assert!(check(&twice).unwrap_err().contains("named twice"));
        let unsigned = ChannelSettings {
            secret_file: None,
            ..channel(ChannelKind::Webhook, "https://a.example.jp")
        };
        assert!(check(&[unsigned]).unwrap_err().contains("secret_file"));
        let nowhere = ChannelSettings {
            to: None,
            ..channel(ChannelKind::Line, "https://api.line.me/v2/bot/message/push")
        };
        assert!(check(&[nowhere]).unwrap_err().contains("group id"));
        let no_url = ChannelSettings {
            url: None,
            ..channel(ChannelKind::Slack, "")
        };
        assert!(check(&[no_url]).unwrap_err().contains("url"));
    }

    #[test]
    fn a_channel_hears_of_its_prefectures_only() {
        let mut c = channel(ChannelKind::Slack, "https://a.example.jp");
        assert!(c.covers(1, Some("北海道")) && c.covers(1, None));
        c.prefectures = vec!["東京都".into(), "神奈川県".into()];
        assert!(c.covers(1, Some("東京都")));
        assert!(!c.covers(1, Some("北海道")));
        assert!(!c.covers(1, None));
        let e = opened();
        let north = ChannelSettings {
            name: "north".into(),
            prefectures: vec!["北海道".into()],
            ..c.clone()
        };
        let rows = messages(&[c, north], &e);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].recipient, "Slack");
        assert_eq!(rows[0].kind, MailKind::Slack);
        assert!(Uuid::parse_str(&rows[0].message_id).is_ok());
        let stored: ChannelEvent = serde_json::from_str(&rows[0].body_text).unwrap();
        assert_eq!(stored, e);
    }

    #[test]
    fn a_channel_of_groups_hears_of_their_clinics_once_it_has_read_them() {
        let mut c = channel(ChannelKind::Slack, "https://a.example.jp");
        c.groups = vec!["関西販売店".into()];
        assert!(
            !c.covers(7, Some("大阪府")),
            "a scope, not the whole fleet; not read yet"
        );
        let copy = c.clone();
        assert!(c.group_clinics.set(vec![7, 9]), "the first read");
        assert!(
            copy.covers(7, None) && copy.covers(9, Some("北海道")),
            "copies share it"
        );
        assert!(!copy.covers(8, Some("大阪府")));
        c.prefectures = vec!["北海道".into()];
        assert!(c.covers(8, Some("北海道")) && c.covers(7, Some("東京都")));
        assert!(!c.group_clinics.set(vec![8]));
        assert!(c.covers(8, None) && !c.covers(7, Some("東京都")));
        let mut unread = copy.clone();
        unread.group_clinics = GroupClinics::default();
        assert_eq!(unread, copy, "what was read is not configuration");
    }

    #[test]
    fn channels_hear_of_critical_alerts_the_clinic_is_mailed_about_and_their_end() {
        let crit = alert(
            RuleKey::ProtectedAccountLinkage,
            Severity::Critical,
            AlertStatus::Open,
        );
        assert_eq!(
            event_of(None, &crit, AlertAction::Opened, true),
            Some(EventType::Opened)
        );
        assert_eq!(
            event_of(None, &crit, AlertAction::Escalated, true),
            Some(EventType::Escalated)
        );
        // Not mailed (a silence holds it, or a warning): nothing.
        assert_eq!(event_of(None, &crit, AlertAction::Opened, false), None);
        let mut resolved = crit.clone();
        resolved.status = AlertStatus::Resolved;
        assert_eq!(
            event_of(Some(&crit), &resolved, AlertAction::Resolved, false),
            Some(EventType::Resolved)
        );
        let mut held = crit.clone();
        held.mail_held = true;
        assert_eq!(
            event_of(Some(&held), &resolved, AlertAction::Resolved, false),
            None
        );
        let warn = alert(RuleKey::CertExpiry, Severity::Warning, AlertStatus::Open);
        assert_eq!(
            event_of(Some(&warn), &resolved, AlertAction::Resolved, false),
            None
        );
        let desk = alert(
            RuleKey::AccountsUnconfirmed,
            Severity::Critical,
            AlertStatus::Open,
        );
        assert_eq!(event_of(None, &desk, AlertAction::Opened, true), None);
    }

    #[test]
    fn each_kind_gets_its_own_wire_format() {
        let mut e = opened();
        e.alert.id = 42;
        let now = DateTime::from_timestamp(1_800_000_100, 0).unwrap();
        let delivery = "0190a1b2-0000-7000-8000-000000000001";
        let with = |kind, url: &str| Channel::new(channel(kind, url), Some("s3cret".into()));

        let hook = render(
            &with(ChannelKind::Webhook, "https://h.example.jp/x"),
            &e,
            delivery,
            now,
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!(body["id"], delivery);
        assert_eq!(body["type"], "alert.opened");
        assert_eq!(body["alert"]["id"], 42);
        assert_eq!(body["alert"]["rule"], "protected_account.linkage");
        assert_eq!(body["alert"]["severity"], "critical");
        assert_eq!(body["terminal"]["hostname"], "ONSHI-PC01");
        assert_eq!(
            body["terminal"]["url"],
            "https://desk.example.jp/terminals/00000000-0000-0000-0000-000000000005"
        );
        assert_eq!(body["clinic"]["prefecture"], "東京都");
        assert_eq!(body["transition"]["action"], "opened");
        assert_eq!(body["transition"]["to"], "open");
        assert_eq!(body["transition"]["by"], crate::domain::AUTO_ACTOR);
        let header = |o: &Outgoing, name: &str| {
            o.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        let sig = header(&hook, SIGNATURE_HEADER).unwrap();
        assert_eq!(verify(b"s3cret", &sig, &hook.body, now, 300), Ok(()));
        assert_eq!(header(&hook, DELIVERY_HEADER).as_deref(), Some(delivery));
        assert_eq!(header(&hook, EVENT_HEADER).as_deref(), Some("alert.opened"));

        let slack = render(
            &with(ChannelKind::Slack, "https://hooks.slack.com/x"),
            &e,
            delivery,
            now,
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&slack.body).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("【緊急】発生: さくら&lt;内科&gt;&amp;"),
            "{text}"
        );
        assert_eq!(body["blocks"][0]["text"]["type"], "mrkdwn");

        let teams = render(
            &with(ChannelKind::Teams, "https://x.logic.azure.com/w"),
            &e,
            delivery,
            now,
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&teams.body).unwrap();
        assert_eq!(body["type"], "message");
        let att = &body["attachments"][0];
        assert_eq!(
            att["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(att["content"]["type"], "AdaptiveCard");
        assert_eq!(att["content"]["body"][0]["text"], summary(&e));
        assert_eq!(att["content"]["actions"][0]["type"], "Action.OpenUrl");

        let line_channel = Channel::new(
            ChannelSettings {
                url: None,
                ..channel(ChannelKind::Line, "")
            },
            Some("token".into()),
        );
        let line = render(&line_channel, &e, delivery, now).unwrap();
        assert_eq!(line.url, LINE_PUSH_URL);
        let body: serde_json::Value = serde_json::from_slice(&line.body).unwrap();
        assert_eq!(body["to"], "Cgroup");
        assert_eq!(body["messages"][0]["type"], "text");
        assert!(
            body["messages"][0]["text"]
                .as_str()
                .unwrap()
                .contains("ONSHI-PC01")
        );
        assert_eq!(
            header(&line, "Authorization").as_deref(),
            Some("Bearer token")
        );
        assert_eq!(header(&line, "X-Line-Retry-Key").as_deref(), Some(delivery));
        // LINE takes at most 5,000 characters.
        e.alert.detail = "あ".repeat(6_000);
        let long = render(&line_channel, &e, delivery, now).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&long.body).unwrap();
        assert_eq!(
            body["messages"][0]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            LINE_TEXT_MAX
        );
    }

    #[test]
    fn escalation_names_another_channel_after_the_reminder() {
        let mut desk = channel(ChannelKind::Slack, "https://a.example.jp");
        desk.name = "desk".into();
        let mut boss = channel(ChannelKind::Line, "https://api.line.me/v2/bot/message/push");
        boss.name = "boss".into();
        desk.escalate_to = Some("boss".into());
        assert_eq!(check(&[desk.clone(), boss.clone()]), Ok(()));
        assert!(check(&[desk.clone()]).unwrap_err().contains("escalate_to"));
        let mut own = desk.clone();
        own.escalate_to = Some("desk".into());
        assert!(
            check(&[own, boss.clone()])
                .unwrap_err()
                .contains("escalate_to")
        );
        let mut early = desk.clone();
        early.escalate_after_minutes = 30;
        assert!(check(&[early, boss]).unwrap_err().contains("more than"));
    }

    #[test]
    fn only_open_announced_criticals_are_overdue() {
        let mut desk = channel(ChannelKind::Slack, "https://a.example.jp");
        desk.name = "desk".into();
        desk.escalate_to = Some("boss".into());
        let mut boss = channel(ChannelKind::Slack, "https://b.example.jp");
        boss.name = "boss".into();
        boss.remind_after_minutes = 0;
        let announcer = Announcer {
            channels: vec![desk, boss],
            public_url: None,
        };
        assert_eq!(announcer.first_due(), Some(chrono::Duration::minutes(30)));
        let mut a = alert(
            RuleKey::ProtectedAccountLinkage,
            Severity::Critical,
            AlertStatus::Open,
        );
        a.id = 9;
        let c = clinic(Some("東京都"));
        let at = |m: i64| a.opened_at + chrono::Duration::minutes(m);
        let stages = |a: &Alert, m: i64| -> Vec<(String, Option<String>)> {
            announcer
                .overdue(a, &c, "PC", at(m))
                .into_iter()
                .map(|n| (n.recipient, n.dedupe_key))
                .collect()
        };
        assert!(stages(&a, 29).is_empty());
        let opened = a.opened_at.timestamp_millis();
        assert_eq!(
            stages(&a, 30),
            [(
                "desk".to_string(),
                Some(format!("reminder:desk:9:{opened}"))
            )]
        );
        assert_eq!(
            stages(&a, 120),
            [
                (
                    "desk".to_string(),
                    Some(format!("reminder:desk:9:{opened}"))
                ),
                (
                    "boss".to_string(),
                    Some(format!("escalation:boss:9:{opened}"))
                )
            ]
        );
        let rows = announcer.overdue(&a, &c, "PC", at(120));
        assert!(rows.iter().all(|r| r.alert_id == Some(9)));
        let e: ChannelEvent = serde_json::from_str(&rows[1].body_text).unwrap();
        assert_eq!(e.event, EventType::Escalation);
        // Taken, held by a silence, not critical, or not stored yet: nothing.
        for change in [
            |a: &mut Alert| a.status = AlertStatus::Acknowledged,
            |a: &mut Alert| a.mail_held = true,
            |a: &mut Alert| a.severity = Severity::Warning,
            |a: &mut Alert| a.id = 0,
        ] {
            let mut b = a.clone();
            change(&mut b);
            assert!(stages(&b, 500).is_empty(), "{b:?}");
        }
    }

    #[test]
    fn the_alert_shows_when_it_will_be_reminded_and_escalated() {
        let mut desk = channel(ChannelKind::Slack, "https://a.example.jp");
        desk.name = "desk".into();
        desk.escalate_to = Some("boss".into());
        let mut tokyo = desk.clone();
        tokyo.name = "tokyo".into();
        tokyo.prefectures = vec!["東京都".into()];
        let mut boss = channel(ChannelKind::Line, "https://api.line.me/v2/bot/message/push");
        boss.name = "boss".into();
        boss.remind_after_minutes = 0;
        let announcer = Announcer {
            channels: vec![desk, tokyo, boss],
            public_url: None,
        };
        let a = alert(
            RuleKey::ProtectedAccountLinkage,
            Severity::Critical,
            AlertStatus::Open,
        );
        // Opened 2027-01-15 17:00 JST.
        let t = |m: i64| a.opened_at + chrono::Duration::minutes(m);
        assert_eq!(
            announcer.schedule(&a, Some("東京都")),
            [
                (
                    EventType::Reminder,
                    t(30),
                    vec!["desk".into(), "tokyo".into()]
                ),
                (EventType::Escalation, t(120), vec!["boss".into()]),
            ]
        );
        assert_eq!(
            announcer.schedule(&a, Some("大阪府"))[0].2,
            ["desk".to_string()]
        );
        assert_eq!(
            announcer.schedule_ja(&a, Some("大阪府"), t(45)),
            "2027/01/15 17:30 リマインド送信 (desk) / 2027/01/15 19:00 エスカレーション予定 (boss)"
        );
        let mut taken = a.clone();
        taken.status = AlertStatus::Acknowledged;
        assert_eq!(announcer.schedule_ja(&taken, None, t(0)), "");
        assert_eq!(Announcer::default().schedule_ja(&a, None, t(0)), "");
    }

    #[test]
    fn receivers_statuses_decide_retry_or_give_up() {
        assert!(outcome(ChannelKind::Webhook, 204, "").is_ok());
        assert!(outcome(ChannelKind::Line, 409, "").is_ok());
        assert!(matches!(
            outcome(ChannelKind::Webhook, 409, ""),
            Err(SendFailure::Permanent(_))
        ));
        for status in [408, 429, 500, 503] {
            assert!(matches!(
                outcome(ChannelKind::Slack, status, ""),
                Err(SendFailure::Transient(_))
            ));
        }
        match outcome(ChannelKind::Slack, 404, "no_service") {
            Err(SendFailure::Permanent(e)) => assert_eq!(e, "HTTP 404: no_service"),
            other => panic!("{other:?}"),
        }
    }
}
