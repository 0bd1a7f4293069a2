//! The alert lifecycle as a pure function: given the stored alert for (terminal, rule) and the
//! fresh finding (or its absence), what the alert becomes.
//!
//! open → acknowledged (who, note, until) → resolved: automatically once the condition has been
//! clear for the hold-down time, or by staff. An alert comes back (re-opens) when its condition
//! does; one the staff resolved stays resolved while the same occurrence persists, and re-opens
//! when a new occurrence fires or the condition clears and returns.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::{AUTO_ACTOR, Alert, AlertAction, AlertStatus, Severity};
use crate::rules::Finding;

/// What the evaluator knows about where an alert lives.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub terminal_id: Uuid,
    pub clinic_id: i64,
    pub now: DateTime<Utc>,
    pub hold_down: Duration,
}

/// The new alert row and what happened, or `None` when nothing changes.
pub fn transition(
    current: Option<&Alert>,
    finding: Option<&Finding>,
    ctx: &Context,
) -> Option<(Alert, AlertAction)> {
    let now = ctx.now;
    match (current, finding) {
        (None, None) => None,
        (None, Some(f)) => Some((open(f, ctx), AlertAction::Opened)),
        (Some(a), Some(f)) => match a.status {
            AlertStatus::Resolved => {
                let staff = a.resolved_by_staff();
                if staff && a.occurrence.as_deref() == Some(f.occurrence.as_str()) {
                    None
                } else {
                    let mut row = open(f, ctx);
                    row.id = a.id;
                    Some((row, AlertAction::Opened))
                }
            }
            AlertStatus::Open | AlertStatus::Acknowledged => {
                let mut row = a.clone();
                let mut action = None;
                if row.clear_since.take().is_some() {
                    action = Some(AlertAction::Quiet);
                }
                if row.status == AlertStatus::Acknowledged
                    && row.ack_until.is_some_and(|u| u <= now)
                {
                    row.status = AlertStatus::Open;
                    row.ack_until = None;
                    action = Some(AlertAction::AckExpired);
                }
                if f.severity > a.severity {
                    action = Some(AlertAction::Escalated);
                } else if a.occurrence.as_deref() != Some(f.occurrence.as_str())
                    || f.severity < a.severity
                {
                    action = Some(AlertAction::Changed);
                }
                let action = action?;
                row.severity = f.severity;
                row.detail = f.detail.clone();
                row.occurrence = Some(f.occurrence.clone());
                row.updated_at = now;
                Some((row, action))
            }
        },
        (Some(a), None) => match a.status {
            AlertStatus::Resolved => {
                // A staff-resolved condition has cleared: the next firing opens a new alert.
                a.occurrence.as_ref()?;
                let mut row = a.clone();
                row.occurrence = None;
                row.updated_at = now;
                Some((row, AlertAction::Quiet))
            }
            AlertStatus::Open | AlertStatus::Acknowledged => match a.clear_since {
                None => {
                    let mut row = a.clone();
                    row.clear_since = Some(now);
                    row.updated_at = now;
                    Some((row, AlertAction::Quiet))
                }
                Some(since) if now - since >= ctx.hold_down => {
                    let mut row = a.clone();
                    row.status = AlertStatus::Resolved;
                    row.resolved_at = Some(now);
                    row.resolved_by = Some(AUTO_ACTOR.to_string());
                    row.clear_since = None;
                    row.updated_at = now;
                    Some((row, AlertAction::Resolved))
                }
                Some(_) => None,
            },
        },
    }
}

fn open(f: &Finding, ctx: &Context) -> Alert {
    Alert {
        id: 0,
        terminal_id: ctx.terminal_id,
        clinic_id: ctx.clinic_id,
        rule: f.rule,
        severity: f.severity,
        status: AlertStatus::Open,
        detail: f.detail.clone(),
        occurrence: Some(f.occurrence.clone()),
        opened_at: ctx.now,
        updated_at: ctx.now,
        clear_since: None,
        ack_by: None,
        ack_note: None,
        ack_until: None,
        resolved_at: None,
        resolved_by: None,
        mail_held: false,
    }
}

/// What happens to an alert's critical mail after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailStep {
    Nothing,
    /// Mail it now.
    Send,
    /// A silence covers it: keep the mail back (`mail_held`) until the window is over.
    Hold,
    /// The window that held it is over and it still needs the clinic: mail it now, once.
    SendHeld,
    /// The held mail is no longer needed (resolved, acknowledged, no longer critical).
    Drop,
}

/// Whether an alert's critical mail goes out: when it opened, escalated or moved to a new
/// occurrence (another expiry day, another change), unless acknowledged; held back while a
/// silence covers it and sent once after. Findings for the desk only never mail.
pub fn mail_step(alert: &Alert, action: Option<AlertAction>, silenced: bool) -> MailStep {
    let acknowledged = alert.status == AlertStatus::Acknowledged
        && alert.ack_until.is_none_or(|u| u > alert.updated_at);
    let wanted = alert.severity == Severity::Critical
        && !alert.rule.desk_only()
        && alert.status != AlertStatus::Resolved
        && !acknowledged;
    let fresh = matches!(
        action,
        Some(AlertAction::Opened | AlertAction::Escalated | AlertAction::Changed)
    );
    match (fresh && wanted, alert.mail_held, silenced) {
        (true, _, false) => MailStep::Send,
        (true, _, true) => MailStep::Hold,
        (false, true, _) if !wanted => MailStep::Drop,
        (false, true, false) => MailStep::SendHeld,
        _ => MailStep::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleKey;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ctx(now: &str) -> Context {
        Context {
            terminal_id: Uuid::nil(),
            clinic_id: 1,
            now: utc(now),
            hold_down: Duration::minutes(15),
        }
    }

    fn f(severity: Severity, occurrence: &str) -> Finding {
        Finding {
            rule: RuleKey::CertExpiry,
            severity,
            detail: format!("{occurrence} left"),
            occurrence: occurrence.into(),
        }
    }

    const T0: &str = "2026-11-25T00:00:00Z";

    #[test]
    fn opens_escalates_changes_and_stays_quiet() {
        use AlertAction::*;
        use Severity::*;
        let (a, action) = transition(None, Some(&f(Warning, "30d")), &ctx(T0)).unwrap();
        assert_eq!(
            (action, a.status, a.opened_at),
            (Opened, AlertStatus::Open, utc(T0))
        );
        // same finding: nothing to write
        assert_eq!(
            transition(Some(&a), Some(&f(Warning, "30d")), &ctx(T0)),
            None
        );
        let t1 = "2026-12-10T00:00:00Z";
        let (b, action) = transition(Some(&a), Some(&f(Warning, "15d")), &ctx(t1)).unwrap();
        assert_eq!((action, b.occurrence.as_deref()), (Changed, Some("15d")));
        let (c, action) = transition(Some(&b), Some(&f(Critical, "7d")), &ctx(t1)).unwrap();
        assert_eq!((action, c.severity), (Escalated, Critical));
        assert_eq!(mail_step(&c, Some(action), false), MailStep::Send);
        assert_eq!(
            mail_step(&c, Some(action), true),
            MailStep::Hold,
            "silenced"
        );
        let (d, action) = transition(Some(&c), Some(&f(Critical, "6d")), &ctx(t1)).unwrap();
        assert_eq!(action, Changed);
        assert_eq!(
            mail_step(&d, Some(action), false),
            MailStep::Send,
            "daily from 7 days"
        );
        assert_eq!(
            mail_step(&a, Some(Opened), false),
            MailStep::Nothing,
            "warnings wait for the digest"
        );
    }

    #[test]
    fn resolves_after_hold_down_and_reopens() {
        use AlertAction::*;
        let (a, _) = transition(None, Some(&f(Severity::Critical, "x")), &ctx(T0)).unwrap();
        let (b, action) = transition(Some(&a), None, &ctx("2026-11-25T00:01:00Z")).unwrap();
        assert_eq!(
            (action, b.clear_since),
            (Quiet, Some(utc("2026-11-25T00:01:00Z")))
        );
        assert_eq!(
            transition(Some(&b), None, &ctx("2026-11-25T00:15:00Z")),
            None
        );
        // back within the hold-down: the clock restarts, no history
        let (c, action) = transition(
            Some(&b),
            Some(&f(Severity::Critical, "x")),
            &ctx("2026-11-25T00:10:00Z"),
        )
        .unwrap();
        assert_eq!((action, c.clear_since), (Quiet, None));
        assert_eq!(mail_step(&c, Some(action), false), MailStep::Nothing);
        let (d, action) = transition(Some(&b), None, &ctx("2026-11-25T00:16:00Z")).unwrap();
        assert_eq!(
            (action, d.status, d.resolved_by.as_deref()),
            (Resolved, AlertStatus::Resolved, Some(AUTO_ACTOR))
        );
        // comes back: re-opened (same row id), mailed again
        let mut d = d;
        d.id = 7;
        let (e, action) = transition(
            Some(&d),
            Some(&f(Severity::Critical, "x")),
            &ctx("2026-11-26T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            (action, e.id, e.status, e.resolved_by.clone()),
            (Opened, 7, AlertStatus::Open, None)
        );
        assert_eq!(mail_step(&e, Some(action), false), MailStep::Send);
    }

    #[test]
    fn staff_resolution_holds_for_the_same_occurrence() {
        use AlertAction::*;
        let (mut a, _) = transition(None, Some(&f(Severity::Critical, "ev1")), &ctx(T0)).unwrap();
        a.id = 3;
        a.status = AlertStatus::Resolved;
        a.resolved_by = Some("suzuki".into());
        assert_eq!(
            transition(Some(&a), Some(&f(Severity::Critical, "ev1")), &ctx(T0)),
            None
        );
        let (b, action) =
            transition(Some(&a), Some(&f(Severity::Critical, "ev2")), &ctx(T0)).unwrap();
        assert_eq!((action, b.status), (Opened, AlertStatus::Open));
        // the condition clears: forget the occurrence so that it opens when it returns
        let (c, action) = transition(Some(&a), None, &ctx(T0)).unwrap();
        assert_eq!((action, c.occurrence.clone()), (Quiet, None));
        assert_eq!(transition(Some(&c), None, &ctx(T0)), None);
        let (_, action) =
            transition(Some(&c), Some(&f(Severity::Critical, "ev1")), &ctx(T0)).unwrap();
        assert_eq!(action, Opened);
    }

    #[test]
    fn acknowledgement_holds_mail_until_it_expires() {
        use AlertAction::*;
        let (mut a, _) = transition(None, Some(&f(Severity::Critical, "7d")), &ctx(T0)).unwrap();
        a.status = AlertStatus::Acknowledged;
        a.ack_by = Some("suzuki".into());
        a.ack_until = Some(utc("2026-11-27T00:00:00Z"));
        let (b, action) = transition(
            Some(&a),
            Some(&f(Severity::Critical, "6d")),
            &ctx("2026-11-26T00:00:00Z"),
        )
        .unwrap();
        assert_eq!((action, b.status), (Changed, AlertStatus::Acknowledged));
        assert_eq!(mail_step(&b, Some(action), false), MailStep::Nothing);
        let (c, action) = transition(
            Some(&b),
            Some(&f(Severity::Critical, "6d")),
            &ctx("2026-11-27T00:00:01Z"),
        )
        .unwrap();
        assert_eq!((action, c.status), (AckExpired, AlertStatus::Open));
    }

    #[test]
    fn a_silence_holds_the_mail_and_it_goes_once_after() {
        use AlertAction::*;
        let (mut a, action) =
            transition(None, Some(&f(Severity::Critical, "x")), &ctx(T0)).unwrap();
        assert_eq!(mail_step(&a, Some(action), true), MailStep::Hold);
        a.mail_held = true;
        // still silenced: nothing; the window over: sent once
        assert_eq!(mail_step(&a, None, true), MailStep::Nothing);
        assert_eq!(mail_step(&a, None, false), MailStep::SendHeld);
        // taken by staff or resolved meanwhile: the held mail is dropped
        let mut acked = a.clone();
        acked.status = AlertStatus::Acknowledged;
        assert_eq!(mail_step(&acked, None, false), MailStep::Drop);
        let (resolved, action) = transition(Some(&a), None, &ctx(T0)).unwrap();
        assert_eq!(action, Quiet);
        let mut resolved = resolved;
        resolved.status = AlertStatus::Resolved;
        assert_eq!(mail_step(&resolved, None, true), MailStep::Drop);
        // desk-only findings never mail
        let mut desk = a.clone();
        desk.rule = RuleKey::AccountsUnconfirmed;
        desk.mail_held = false;
        assert_eq!(mail_step(&desk, Some(Opened), false), MailStep::Nothing);
    }
}
