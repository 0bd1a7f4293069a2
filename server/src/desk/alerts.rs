//! Staff actions on alerts, silences and the expected app versions.

use chrono::{DateTime, Utc};

use super::{Desk, created_id, validate};
use crate::Error;
use crate::domain::{
    Actor, AlertStatus, AuditRecord, DailyWindow, NewMail, PREFECTURES, RuleKey, Silence,
    SilenceScope,
};
use crate::jst::time_ja;
use crate::notify::channels::{self, EventType};
use crate::store::{BulkAction, BulkOutcome, StaffChange};

/// Notes on alerts are kept to this many characters.
pub const MAX_NOTE: usize = 2000;

/// The most alerts one bulk action takes.
pub const MAX_BULK: usize = crate::store::desk::ALERT_COUNT_CAP as usize;

/// A maintenance window as staff ask for it: where, which rule (or all), when, and whether
/// it repeats daily within those dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRequest {
    pub scope: SilenceScope,
    pub rule: Option<RuleKey>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub daily: Option<DailyWindow>,
    pub reason: String,
}

impl SilenceRequest {
    /// What the audit log and the pages say it covers.
    pub fn describe_ja(&self) -> String {
        let mut what = match &self.scope {
            SilenceScope::Terminal(id) => format!("端末 {id}"),
            SilenceScope::Clinic(id) => format!("医療機関 #{id}"),
            SilenceScope::Prefecture(p) => format!("{p}の全端末"),
            SilenceScope::Fleet => "全端末".to_string(),
        };
        if let Some(rule) = self.rule {
            what.push_str(&format!("の「{}」", rule.short_ja()));
        }
        let mut when = format!("{} 〜 {}", time_ja(self.starts_at), time_ja(self.ends_at));
        if let Some(d) = &self.daily {
            when.push_str(&format!(" のうち {}", d.label_ja()));
        }
        format!("{what} {when}")
    }
}

fn note_ok(note: &str) -> Result<(), Error> {
    validate::text("メモ", note, MAX_NOTE)
}

impl Desk {
    /// The channel messages for staff taking (`Acknowledged`) or resolving an alert the
    /// channels were told of: a critical one, still open (or, for a resolve, acknowledged),
    /// whose mail went. Stored with the change, and only if it applies.
    async fn tell(
        &self,
        id: i64,
        actor: &Actor,
        kind: EventType,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewMail>, Error> {
        if self.announcer.channels.is_empty() {
            return Ok(Vec::new());
        }
        channels::refresh_groups(&self.announcer.channels, self.store.as_ref()).await?;
        self.tell_read(id, actor, kind, now).await
    }

    /// [`Desk::tell`] with the channels' groups as last read.
    async fn tell_read(
        &self,
        id: i64,
        actor: &Actor,
        kind: EventType,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewMail>, Error> {
        let Some(before) = self.store.alerts().alert(id).await? else {
            return Ok(Vec::new());
        };
        let told = channels::announced(&before);
        let moves = match kind {
            EventType::Acknowledged => before.status == AlertStatus::Open,
            _ => before.status != AlertStatus::Resolved,
        };
        if !told || !moves {
            return Ok(Vec::new());
        }
        let Some(clinic) = self.store.fleet().clinic_detail(before.clinic_id).await? else {
            return Ok(Vec::new());
        };
        let hostname = match self
            .store
            .fleet()
            .terminal_detail(before.terminal_id)
            .await?
        {
            Some(t) => t.hostname,
            None => before.terminal_id.to_string(),
        };
        let mut after = before.clone();
        let who = actor.stored_name();
        if kind == EventType::Acknowledged {
            after.status = AlertStatus::Acknowledged;
            after.ack_by = Some(who);
        } else {
            after.status = AlertStatus::Resolved;
            after.resolved_by = Some(who);
        }
        let e = channels::event(
            kind,
            &after,
            Some(before.status),
            &clinic.settings,
            &hostname,
            self.announcer.public_url.as_deref(),
            now,
        );
        Ok(channels::messages(&self.announcer.channels, &e))
    }

    /// [`Desk::tell`] for the alerts of a bulk action, each message naming its alert: one per
    /// alert the channels were told of (as each was opened), the others read in one query.
    async fn tell_many(
        &self,
        ids: &[i64],
        actor: &Actor,
        kind: EventType,
        now: DateTime<Utc>,
    ) -> Result<Vec<NewMail>, Error> {
        if self.announcer.channels.is_empty() {
            return Ok(Vec::new());
        }
        channels::refresh_groups(&self.announcer.channels, self.store.as_ref()).await?;
        let mut out = Vec::new();
        for alert in self.store.alerts().alerts_by_id(ids).await? {
            if !channels::announced(&alert) || alert.status == AlertStatus::Resolved {
                continue;
            }
            for mut m in self.tell_read(alert.id, actor, kind, now).await? {
                m.alert_id = Some(alert.id);
                out.push(m);
            }
        }
        Ok(out)
    }

    /// No more immediate mails for the alert until `until` (or until it is resolved).
    pub async fn acknowledge(
        &self,
        actor: &Actor,
        id: i64,
        note: &str,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let note = note.trim();
        note_ok(note)?;
        if until.is_some_and(|u| u <= now) {
            return Err(Error::Invalid(
                "「いつまで」には未来の日時を指定してください".into(),
            ));
        }
        let what = match until {
            Some(u) => format!("アラート #{id} を確認済みに ({} まで): {note}", time_ja(u)),
            None => format!("アラート #{id} を確認済みに: {note}"),
        };
        let tell = self.tell(id, actor, EventType::Acknowledged, now).await?;
        self.apply(
            StaffChange::AcknowledgeAlert {
                id,
                note: note.to_string(),
                until,
                tell,
            },
            AuditRecord::new(actor, now, what),
            "このアラートは見つからないか、解決済みです",
            "",
        )
        .await?;
        Ok(())
    }

    /// Resolved by hand; it stays resolved while the same occurrence persists.
    pub async fn resolve(
        &self,
        actor: &Actor,
        id: i64,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let note = note.trim();
        note_ok(note)?;
        let tell = self.tell(id, actor, EventType::Resolved, now).await?;
        self.apply(
            StaffChange::ResolveAlert {
                id,
                note: note.to_string(),
                tell,
            },
            AuditRecord::new(actor, now, format!("アラート #{id} を解決済みに: {note}")),
            "このアラートは見つからないか、解決済みです",
            "",
        )
        .await?;
        Ok(())
    }

    /// A note in the alert's history.
    pub async fn note(
        &self,
        actor: &Actor,
        id: i64,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let note = note.trim();
        if note.is_empty() {
            return Err(Error::Invalid("メモが空です".into()));
        }
        note_ok(note)?;
        self.apply(
            StaffChange::NoteAlert {
                id,
                note: note.to_string(),
            },
            AuditRecord::new(actor, now, format!("アラート #{id} にメモ: {note}")),
            "このアラートは見つかりません",
            "",
        )
        .await?;
        Ok(())
    }

    /// A maintenance window: alerts stay open, no mail goes out for them. Returns its id.
    pub async fn silence(
        &self,
        actor: &Actor,
        r: &SilenceRequest,
        now: DateTime<Utc>,
    ) -> Result<i64, Error> {
        if r.ends_at <= r.starts_at || r.ends_at <= now {
            return Err(Error::Invalid(
                "終了日時は開始日時と現在より後にしてください".into(),
            ));
        }
        if let SilenceScope::Prefecture(p) = &r.scope
            && !PREFECTURES.contains(&p.as_str())
        {
            return Err(Error::Invalid("都道府県を選んでください".into()));
        }
        if let Some(d) = &r.daily {
            if d.from == d.to {
                return Err(Error::Invalid(
                    "毎日の時間帯は開始と終了を別の時刻にしてください".into(),
                ));
            }
            if d.weekdays & 0x7f == 0 {
                return Err(Error::Invalid("曜日を一つ以上選んでください".into()));
            }
        }
        let reason = r.reason.trim();
        validate::required_line("理由", reason, 500)?;
        let silence = Silence {
            id: 0,
            scope: r.scope.clone(),
            rule: r.rule,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            daily: r.daily,
            reason: reason.to_string(),
            created_by: actor.stored_name(),
            ended_by: None,
        };
        let what = format!("通知を停止: {} ({reason})", r.describe_ja());
        let applied = self
            .apply(
                StaffChange::AddSilence(silence),
                AuditRecord::new(actor, now, what),
                "指定した端末または医療機関が見つかりません",
                "",
            )
            .await?;
        created_id(applied)
    }

    /// One action on many alerts (the alerts page's check boxes, or every alert its filters
    /// match): one transaction, each alert's history, and one audit line that lists them.
    pub async fn bulk_alerts(
        &self,
        actor: &Actor,
        ids: &[i64],
        action: BulkAction,
        now: DateTime<Utc>,
    ) -> Result<BulkOutcome, Error> {
        if ids.is_empty() {
            return Err(Error::Invalid("アラートを選んでください".into()));
        }
        if ids.len() > MAX_BULK {
            return Err(Error::Invalid(format!(
                "一度に操作できるのは {MAX_BULK} 件までです。条件を絞ってください"
            )));
        }
        let detail = match &action {
            BulkAction::Acknowledge { note, until } => {
                note_ok(note.trim())?;
                if until.is_some_and(|u| u <= now) {
                    return Err(Error::Invalid(
                        "「いつまで」には未来の日時を指定してください".into(),
                    ));
                }
                let until = until
                    .map(|u| format!(" ({} まで)", time_ja(u)))
                    .unwrap_or_default();
                format!("{until}: {}", note.trim())
            }
            BulkAction::Resolve { note } => {
                note_ok(note.trim())?;
                format!(": {}", note.trim())
            }
            BulkAction::Note { note } => {
                if note.trim().is_empty() {
                    return Err(Error::Invalid("メモが空です".into()));
                }
                note_ok(note.trim())?;
                format!(": {}", note.trim())
            }
            BulkAction::Silence { until, reason } => {
                if *until <= now {
                    return Err(Error::Invalid("終了日時は現在より後にしてください".into()));
                }
                validate::required_line("理由", reason.trim(), 500)?;
                format!(" ({} まで): {}", time_ja(*until), reason.trim())
            }
        };
        let audit = AuditRecord::new(
            actor,
            now,
            format!("アラートを一括で{}{detail}", action.label_ja()),
        );
        let tell = match &action {
            BulkAction::Acknowledge { .. } => {
                self.tell_many(ids, actor, EventType::Acknowledged, now)
                    .await?
            }
            BulkAction::Resolve { .. } => {
                self.tell_many(ids, actor, EventType::Resolved, now).await?
            }
            BulkAction::Note { .. } | BulkAction::Silence { .. } => Vec::new(),
        };
        let outcome = self
            .store
            .staff()
            .bulk_alerts(ids, &action, &audit, &tell)
            .await?;
        if outcome.alerts.is_empty() {
            return Err(Error::NotFound(
                "選んだアラートはどれも見つからないか、解決済みです".into(),
            ));
        }
        if let Some(changes) = &self.changes {
            changes.mark(outcome.terminals.iter().copied());
        }
        Ok(outcome)
    }

    /// Ends a maintenance window now (one that has not begun is dropped).
    pub async fn end_silence(
        &self,
        actor: &Actor,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.apply(
            StaffChange::EndSilence { id },
            AuditRecord::new(actor, now, format!("通知の停止 #{id} を終了")),
            "この通知の停止は見つからないか、終わっています",
            "",
        )
        .await?;
        Ok(())
    }

    /// Sets the version staff expect of a watched app (24 h grace from now), or with `None`
    /// goes back to the fleet's most common version.
    pub async fn set_expected_version(
        &self,
        actor: &Actor,
        app: &str,
        version: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let app = app.trim();
        validate::required_line("アプリ名", app, 200)?;
        let version = version.map(str::trim).filter(|v| !v.is_empty());
        if let Some(v) = version {
            validate::single_line("バージョン", v, 100)?;
        }
        let what = match version {
            Some(v) => format!("アプリ「{app}」の期待するバージョンを {v} に"),
            None => format!("アプリ「{app}」の期待するバージョンを端末の多数派に戻す"),
        };
        self.apply(
            StaffChange::SetExpectedVersion {
                app: app.to_string(),
                version: version.map(str::to_string),
                since: now,
            },
            AuditRecord::new(actor, now, what),
            "",
            "",
        )
        .await?;
        Ok(())
    }
}
