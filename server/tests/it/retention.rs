//! Retention against a real SQLite database: what is old goes, in small steps, and nothing
//! the desk or the evaluator still needs goes with it.

use chrono::{DateTime, Duration, Utc};
use onshi_server::config::RetentionSettings;
use onshi_server::retention::Pruner;
use onshi_testkit::reports::{linkage_password_changed, report_at};
use sqlx::SqlitePool;

use super::alerts::fleet;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

async fn count(db: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(db)
        .await
        .unwrap()
}

/// The start of the JST day `t` falls in, plus `h` hours, truncated to the hour.
fn jst_day_hour(t: DateTime<Utc>, h: i64) -> i64 {
    let day = 86_400_000;
    let jst = 9 * 3_600_000;
    let start = ms(t) - (ms(t) + jst).rem_euclid(day);
    start + h * 3_600_000
}

#[tokio::test]
async fn old_history_goes_in_small_steps_and_what_is_still_needed_stays() {
    if onshi_testkit::pg::enabled() {
        // This one ages rows in the SQLite file itself; the same contract runs against both
        // engines in `engines.rs` (`the_retention_contract_on_*`, `the_alert_retention_*`).
        return;
    }
    let mut f = fleet(2).await;
    let now = Utc::now();
    f.report(0, report_at(now, "PC-A"), now).await;
    let desk = f
        .app
        .login("desk", onshi_server::domain::Role::Viewer)
        .await;
    desk.page(&format!("/terminals/{}", f.terminals[0])).await;
    let db = SqlitePool::connect(&format!(
        "sqlite://{}",
        f.app.dir().join("onshi.db").display()
    ))
    .await
    .unwrap();
    let old = now - Duration::days(401);
    let mid = now - Duration::days(100);
    let recent = now - Duration::days(1);
    let (t0, t1) = (f.terminals[0].to_string(), f.terminals[1].to_string());
    let exec = |sql: String| {
        let db = db.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&db)
                .await
                .unwrap()
        }
    };
    // Events, in the order they were received; one collected long ago but received lately
    // (an agent's spool) stays.
    for (i, (at, received)) in [(old, old), (old, old), (old, recent), (recent, recent)]
        .into_iter()
        .enumerate()
    {
        let body = serde_json::to_string(&linkage_password_changed(at)).unwrap();
        sqlx::query(
            "INSERT INTO events (terminal_id, id, seq, at, received_at, kind, body) \
             VALUES (?, ?, ?, ?, ?, 'account_changed', ?)",
        )
        .bind(&t0)
        .bind(uuid::Uuid::from_u128(i as u128 + 1).to_string())
        .bind(i as i64)
        .bind(ms(at))
        .bind(ms(received))
        .bind(body)
        .execute(&db)
        .await
        .unwrap();
    }
    for t in [old, mid, recent] {
        exec(format!(
            "INSERT INTO starts (terminal_id, started_at, kind) VALUES ('{t1}', {}, 'restart')",
            ms(t)
        ))
        .await;
    }
    // Report hours: five in a JST day 100 days ago, three in one 10 days ago, two 401 days ago.
    let ten = now - Duration::days(10);
    let hours: Vec<i64> = [0, 3, 9, 15, 23]
        .iter()
        .map(|h| jst_day_hour(mid, *h))
        .chain([8, 9, 10].iter().map(|h| jst_day_hour(ten, *h)))
        .chain([1, 2].iter().map(|h| jst_day_hour(old, *h)))
        .collect();
    for h in &hours {
        exec(format!(
            "INSERT INTO report_hours (terminal_id, hour) VALUES ('{t0}', {h})"
        ))
        .await;
    }
    // Alerts, in the order they were opened: resolved by the evaluator long ago (with history
    // and a mail: all three go); resolved by staff while the condition still holds (the
    // evaluator follows it: stays); open since long ago (stays); resolved lately (stays).
    let clinic = f.clinic_id;
    let alerts = [
        (
            "backup_missing",
            "resolved",
            "NULL",
            Some((old, "evaluator")),
        ),
        ("cert_expiry", "resolved", "'2025'", Some((old, "suzuki"))),
        ("no_daily_restart", "open", "NULL", None),
    ];
    for (rule, status, occurrence, resolved) in alerts {
        let (resolved_at, resolved_by) = match resolved {
            Some((at, by)) => (ms(at).to_string(), format!("'{by}'")),
            None => ("NULL".into(), "NULL".into()),
        };
        exec(format!(
            "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, \
             occurrence, opened_at, updated_at, resolved_at, resolved_by) VALUES \
             ('{t0}', {clinic}, '{rule}', 'warning', '{status}', '', {occurrence}, {}, {}, \
             {resolved_at}, {resolved_by})",
            ms(old - Duration::days(1)),
            ms(old)
        ))
        .await;
    }
    exec(format!(
        "INSERT INTO alerts (terminal_id, clinic_id, rule, severity, status, detail, opened_at, \
         updated_at, resolved_at, resolved_by) VALUES ('{t1}', {clinic}, 'backup_missing', \
         'warning', 'resolved', '', {}, {}, {}, 'evaluator')",
        ms(recent),
        ms(recent),
        ms(recent)
    ))
    .await;
    // History, append-only: the old alerts' openings, an old note on the open alert (goes
    // while the alert stays), then the recent alert's opening.
    let history = |filter: &str, at: DateTime<Utc>, action: &str| {
        format!(
            "INSERT INTO alert_history (alert_id, at, actor, action) \
             SELECT id, {}, 'evaluator', '{action}' FROM alerts WHERE {filter} ORDER BY id",
            ms(at)
        )
    };
    let old_ones = format!("opened_at < {}", ms(mid));
    exec(history(&old_ones, old - Duration::days(1), "opened")).await;
    exec(history("rule = 'no_daily_restart'", old, "noted")).await;
    exec(history(
        &format!("opened_at >= {}", ms(mid)),
        recent,
        "opened",
    ))
    .await;
    let mail = |alert: &str, status: &str, at: DateTime<Utc>, n: i32| {
        format!(
            "INSERT INTO outbox (kind, clinic_id, alert_id, recipient, subject, message_id, \
             body_text, body_html, status, next_attempt_at, created_at) VALUES ('alert', \
             {clinic}, {alert}, 'a@example.jp', 's', 'm{n}', '', '', '{status}', {t}, {t})",
            t = ms(at)
        )
    };
    exec(mail(
        "(SELECT id FROM alerts WHERE rule = 'backup_missing' AND terminal_id = '{t0}')"
            .replace("{t0}", &t0)
            .as_str(),
        "sent",
        old,
        1,
    ))
    .await;
    exec(mail("NULL", "sent", old, 2)).await;
    exec(mail("NULL", "pending", old, 3)).await;
    exec(mail("NULL", "sent", recent, 4)).await;
    let audit_before = count(&db, "SELECT COUNT(*) FROM audit_log").await;
    let history_before = count(&db, "SELECT COUNT(*) FROM alert_history").await;
    // The audit log is append-only: its old lines have the lowest ids.
    for (id, at) in [(-3, old), (-2, old), (-1, recent)] {
        exec(format!(
            "INSERT INTO audit_log (id, at, actor, what) VALUES ({id}, {}, 'suzuki', 'x')",
            ms(at)
        ))
        .await;
    }

    // Steps of two rows (or terminals): many steps, the same result.
    let settings = RetentionSettings {
        batch: 2,
        ..RetentionSettings::default()
    };
    let report = Pruner::new(f.store.clone(), settings)
        .with_pause(std::time::Duration::ZERO)
        .run_once(now)
        .await
        .unwrap();
    assert!(report.steps > 7, "{report:?}");

    let events: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY rowid")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        events,
        [3u128, 4].map(|n| uuid::Uuid::from_u128(n).to_string())
    );
    let starts: Vec<i64> = sqlx::query_scalar(
        "SELECT started_at FROM starts WHERE terminal_id = ? ORDER BY started_at",
    )
    .bind(&t1)
    .fetch_all(&db)
    .await
    .unwrap();
    // The enrollment's own start rows (if any) are recent; the one from 401 days ago is gone.
    assert!(!starts.contains(&ms(old)), "{starts:?}");
    assert!(starts.contains(&ms(mid)) && starts.contains(&ms(recent)));
    let kept: Vec<i64> =
        sqlx::query_scalar("SELECT hour FROM report_hours WHERE terminal_id = ? ORDER BY hour")
            .bind(&t0)
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        kept,
        [
            jst_day_hour(mid, 0),
            jst_day_hour(ten, 8),
            jst_day_hour(ten, 9),
            jst_day_hour(ten, 10),
            onshi_server::store::hour_of(now),
        ],
        "one hour a day after 30 days, none after 400"
    );
    let rules: Vec<(String, String)> =
        sqlx::query_as("SELECT terminal_id, rule FROM alerts ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        rules,
        [
            (t0.clone(), "cert_expiry".to_string()),
            (t0.clone(), "no_daily_restart".to_string()),
            (t1.clone(), "backup_missing".to_string()),
        ]
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM alert_history").await,
        history_before - 4,
        "the deleted alert's history goes with it, and old entries of the others"
    );
    let mails: Vec<String> = sqlx::query_scalar("SELECT message_id FROM outbox ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(mails, ["m3", "m4"], "queued mail stays, whatever its age");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM audit_log").await,
        audit_before + 1
    );
    assert_eq!(report.deleted["events"], 2);
    assert_eq!(report.deleted["resolved_alerts"], 1);

    // Nothing is left to do: a second run deletes nothing.
    let again = Pruner::new(f.store.clone(), RetentionSettings::default())
        .with_pause(std::time::Duration::ZERO)
        .run_once(now)
        .await
        .unwrap();
    assert_eq!(again.total(), 0, "{again:?}");
    // The desk still reads the terminal whose history was cut.
    let desk = f
        .app
        .login("desk", onshi_server::domain::Role::Viewer)
        .await;
    let page = desk.page(&format!("/terminals/{t0}")).await;
    assert!(page.contains("PC-") || page.contains(&t0), "{page}");
}
