//! The desk's reads (`FleetView`) on PostgreSQL against SQLite: the same rows written to both
//! engines, the same pages, counts, exports and lists read back, in the same order.

use onshi_server::domain::Reach;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use onshi_server::domain::{
    BackupKind, Handling, HandlingKind, Liveness, OverviewLine, RuleKey, Severity, SeverityFilter,
};
use onshi_server::store::desk::{
    AlertCursor, AlertGroup, AlertQuery, FleetQuery, FleetRead, FleetSort, FleetView,
};
use onshi_server::store::{PgStore, SqliteStore, Store};
use uuid::Uuid;

use super::postgres::PgSchema;

/// A value bound to a portable statement (a terminal id is text on SQLite, uuid on PostgreSQL).
#[derive(Clone)]
enum V {
    I(i64),
    N(Option<i64>),
    S(&'static str),
    O(Option<String>),
    T(Uuid),
    OT(Option<Uuid>),
    B(bool),
    Bytes(Vec<u8>),
}

struct Pair {
    sqlite: Arc<SqliteStore>,
    spool: sqlx::SqlitePool,
    _dir: tempfile::TempDir,
    pg: Arc<PgStore>,
    schema: PgSchema,
}

impl Pair {
    async fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desk.db");
        let sqlite = Arc::new(SqliteStore::open(&path).await.unwrap());
        let spool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let schema = PgSchema::new().await;
        let pg = Arc::new(PgStore::open_with(schema.options.clone()).await.unwrap());
        Pair {
            sqlite,
            spool,
            _dir: dir,
            pg,
            schema,
        }
    }

    fn views(&self) -> [&dyn FleetView; 2] {
        [self.sqlite.fleet(), self.pg.fleet()]
    }

    /// Runs a portable statement (`$n` placeholders) on both engines.
    async fn exec(&self, sql: &'static str, binds: &[V]) {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b.clone() {
                V::I(v) => q.bind(v),
                V::N(v) => q.bind(v),
                V::S(v) => q.bind(v),
                V::O(v) => q.bind(v),
                V::T(v) => q.bind(v.to_string()),
                V::OT(v) => q.bind(v.map(|v| v.to_string())),
                V::B(v) => q.bind(v),
                V::Bytes(v) => q.bind(v),
            };
        }
        q.execute(&self.spool).await.unwrap();
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b.clone() {
                V::I(v) => q.bind(v),
                V::N(v) => q.bind(v),
                V::S(v) => q.bind(v),
                V::O(v) => q.bind(v),
                V::T(v) => q.bind(v),
                V::OT(v) => q.bind(v),
                V::B(v) => q.bind(v),
                V::Bytes(v) => q.bind(v),
            };
        }
        q.execute(&self.schema.pool).await.unwrap();
    }

    async fn end(self) {
        self.pg.pool().close().await;
        self.schema.drop().await;
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_760_000_000_000 + ms).unwrap()
}

fn terminal(i: usize) -> Uuid {
    // Ids whose order is not the order they were made in.
    Uuid::from_u128(((i as u128 * 7919) % 1009) << 64 | i as u128)
}

const CLINICS: [(&str, Option<&str>, Option<&str>); 4] = [
    ("さくら内科", Some("1310000001"), Some("東京都")),
    ("あおば医院", Some("1310000002"), Some("東京都")),
    ("Beta Clinic", Some("2710000003"), Some("大阪府")),
    ("beta clinic 2", None, None),
];

const TERMINALS: usize = 60;

fn hostname(i: usize) -> String {
    match i % 4 {
        0 => format!("PC-{:03}", i / 2),
        1 => format!("pc-{:03}", i / 2),
        2 => format!("Reception-{i}"),
        _ => format!("受付-{i}"),
    }
}

fn line(i: usize) -> OverviewLine {
    let clinic = i % CLINICS.len();
    let severity = [
        None,
        Some(Severity::Info),
        Some(Severity::Warning),
        Some(Severity::Critical),
    ][i % 4];
    let handling = match i % 5 {
        0 => Handling::None,
        1 => Handling::Unhandled,
        2 => Handling::InProgress {
            by: "staff:sato".into(),
            until: i.is_multiple_of(2).then(|| at(3_600_000)),
        },
        3 => Handling::Silenced {
            by: "staff:ito".into(),
            until: at(7_200_000),
            reason: "工事".into(),
        },
        _ => Handling::Unhandled,
    };
    OverviewLine {
        terminal_id: terminal(i),
        clinic_id: clinic as i64 + 1,
        clinic_name: CLINICS[clinic].0.into(),
        prefecture: CLINICS[clinic].2.map(str::to_string),
        hostname: hostname(i),
        severity,
        handling,
        liveness: Liveness::ALL[i % Liveness::ALL.len()],
        open_alerts: (i % 7) as i64,
        open_rules: (i % 9) as u32,
        apps_behind: (i % 3) as i64,
        backup: [BackupKind::Ok, BackupKind::Missing, BackupKind::Unknown][i % 3],
        last_start: (!i.is_multiple_of(6)).then(|| at((i % 10) as i64 * 1000)),
        cert_not_after: (i % 4 != 1).then(|| at((i % 8) as i64 * 86_400_000)),
        // Among lines of one severity, the neglected ones come first in the default order.
        neglected: i % 5 == 2,
    }
}

async fn fill(p: &Pair) {
    for (n, (name, code, prefecture)) in CLINICS.iter().enumerate() {
        p.exec(
            "INSERT INTO clinics (id, name, email, created_at, code, prefecture, phone) \
             VALUES ($1, $2, 'c@example.jp', 0, $3, $4, '03-0000-0000')",
            &[
                V::I(n as i64 + 1),
                V::S(name),
                V::O(code.map(str::to_string)),
                V::O(prefecture.map(str::to_string)),
            ],
        )
        .await;
    }
    for i in 0..=TERMINALS {
        p.exec(
            "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
             enrolled_at) VALUES ($1, $2, $3, 'OLD-NAME', '0.1.0', 'Windows 11', 5)",
            &[
                V::T(terminal(i)),
                V::I((i % CLINICS.len()) as i64 + 1),
                V::O(Some(format!("token-{i}"))),
            ],
        )
        .await;
    }
    // The last terminal is revoked: its line leaves the overview when lines are written.
    p.exec(
        "UPDATE terminals SET revoked_at = 9 WHERE id = $1",
        &[V::T(terminal(TERMINALS))],
    )
    .await;
    for i in (0..TERMINALS).step_by(2) {
        p.exec(
            "INSERT INTO latest_report (terminal_id, seq, received_at, collected_at, \
             uptime_secs, hostname, last_start, last_start_kind, last_boot, cert_not_after) \
             VALUES ($1, $2, $3, $3, 100, $4, $3, 'restart', $3, NULL)",
            &[
                V::T(terminal(i)),
                V::I(i as i64),
                V::I(1_760_000_000_000 + i as i64 * 1000),
                V::O(Some(hostname(i))),
            ],
        )
        .await;
    }
    let lines: Vec<OverviewLine> = (0..=TERMINALS).map(line).collect();
    for v in p.views() {
        v.write_overview_lines(&lines, at(0)).await.unwrap();
        // Written again with one line twice (the last one wins): an update in place.
        let mut again = lines[..10].to_vec();
        again.push(OverviewLine {
            open_alerts: 42,
            ..line(3)
        });
        v.write_overview_lines(&again, at(1)).await.unwrap();
    }
    let mut id = 0;
    for i in 0..TERMINALS {
        for (k, rule) in RuleKey::ALL.iter().enumerate().take(i % 4) {
            id += 1;
            let severity = ["critical", "warning", "info"][(i + k) % 3];
            let status = ["open", "acknowledged", "open", "resolved"][(i + 2 * k) % 4];
            p.exec(
                "INSERT INTO alerts (id, terminal_id, clinic_id, rule, severity, status, detail, \
                 opened_at, updated_at, ack_by, resolved_at, mail_held) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'detail', $7, $7, $8, $9, $10)",
                &[
                    V::I(id),
                    V::T(terminal(i)),
                    V::I((i % CLINICS.len()) as i64 + 1),
                    V::S(rule.as_str()),
                    V::S(severity),
                    V::S(status),
                    // Ties on purpose: the id breaks them.
                    V::I(1_760_000_000_000 + ((i * 3 + k) % 11) as i64 * 60_000),
                    V::O((status == "acknowledged").then(|| "staff:sato".to_string())),
                    V::N((status == "resolved").then_some(1_760_000_000_000 + 3_600_000)),
                    V::B(i % 5 == 0),
                ],
            )
            .await;
            if id % 3 == 0 {
                p.exec(
                    "INSERT INTO alert_history (alert_id, at, actor, action, note) \
                     VALUES ($1, $2, 'staff:sato', 'acknowledged', $3)",
                    &[
                        V::I(id),
                        V::I(1_760_000_000_000 + 4_000_000 + id * 1000),
                        V::O((id % 2 == 0).then(|| format!("note {id}"))),
                    ],
                )
                .await;
            }
        }
    }
    for (n, (terminal_id, clinic, fleet, starts, ends)) in [
        (Some(terminal(1)), None, false, 0, 10_000_000),
        (None, Some(2), false, -5_000_000, -1_000_000),
        (None, None, true, 1_000, 20_000_000),
        (None, None, true, -9_000_000_000, -8_000_000_000),
    ]
    .into_iter()
    .enumerate()
    {
        p.exec(
            "INSERT INTO silences (id, terminal_id, clinic_id, fleet, rule, starts_at, ends_at, \
             daily_from, daily_to, weekdays, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'maintenance', 'staff:ito', 0)",
            &[
                V::I(n as i64 + 1),
                V::OT(terminal_id),
                V::N(clinic),
                V::B(fleet),
                V::O((n == 2).then(|| "offline".to_string())),
                V::I(1_760_000_000_000 + starts),
                V::I(1_760_000_000_000 + ends),
                V::N((n == 0).then_some(60)),
                V::N((n == 0).then_some(120)),
                V::N((n == 0).then_some(0x1f)),
            ],
        )
        .await;
    }
    for (n, name) in ["院長", "事務長", "受付"].into_iter().enumerate() {
        p.exec(
            "INSERT INTO clinic_contacts (clinic_id, name, role, email, phone) \
             VALUES (1, $1, $2, $3, NULL)",
            &[
                V::S(name),
                V::S(["director", "", "desk"][n]),
                V::O((n != 1).then(|| format!("{n}@example.jp"))),
            ],
        )
        .await;
    }
    for n in 0..3i64 {
        p.exec(
            "INSERT INTO enrollment_codes (code_hash, clinic_id, created_at, expires_at, \
             revoked_at, label, last_chars) VALUES ($1, 1, $2, $3, $4, 'front', 'ABCD')",
            &[
                V::O(Some(format!("hash{n}"))),
                V::I(n * 1000),
                V::I(n * 1000 + 99),
                V::N((n == 1).then_some(50)),
            ],
        )
        .await;
    }
    for h in 0..5i64 {
        p.exec(
            "INSERT INTO report_hours (terminal_id, hour) VALUES ($1, $2)",
            &[V::T(terminal(0)), V::I(1_760_000_000_000 + h * 3_600_000)],
        )
        .await;
    }
    for e in 0..6u128 {
        p.exec(
            "INSERT INTO events (id, terminal_id, seq, at, received_at, kind, body) \
             VALUES ($1, $2, $3, $4, $4, 'cert_changed', '{}')",
            &[
                V::T(Uuid::from_u128(0xe000 + (e * 37) % 11)),
                V::T(terminal(0)),
                V::I(e as i64),
                // Two events in each millisecond.
                V::I(1_760_000_000_000 + (e as i64 / 2) * 1000),
            ],
        )
        .await;
    }
    p.exec(
        "UPDATE terminals SET baseline_at = 77, baseline_missing = 'windows,face_auth', \
         accounts_confirmed_at = 88, accounts_confirmed_by = 'staff:sato' WHERE id = $1",
        &[V::T(terminal(2))],
    )
    .await;
    p.exec(
        "INSERT INTO account_names (clinic_id, terminal_id, role, name, updated_at) \
         VALUES (NULL, $1, 'windows', 'OnshiUser', 0)",
        &[V::T(terminal(2))],
    )
    .await;
    p.exec(
        "INSERT INTO backup_passwords (clinic_id, nonce, sealed, set_by, set_at) \
         VALUES (1, $1, $2, 'staff:ito', 1234)",
        &[V::Bytes(vec![1, 2, 3]), V::Bytes(vec![4, 5])],
    )
    .await;
}

/// The same answer from both engines, as text.
macro_rules! same {
    ($p:expr, $what:expr, |$v:ident| $read:expr) => {{
        let [s, g] = $p.views();
        let a = {
            let $v = s;
            format!("{:?}", $read.await.unwrap())
        };
        let b = {
            let $v = g;
            format!("{:?}", $read.await.unwrap())
        };
        assert_eq!(a, b, "{}", $what);
        a
    }};
}

/// The whole fleet, and the reaches of staff limited to one clinic, two, or none.
fn reaches() -> [Reach; 4] {
    [
        Reach::All,
        Reach::clinics(vec![1]),
        Reach::clinics(vec![2, 3]),
        Reach::clinics(Vec::new()),
    ]
}

fn fleet_filters() -> Vec<FleetQuery> {
    let mut out = vec![
        FleetQuery::default(),
        FleetQuery {
            clinic_id: Some(1),
            ..FleetQuery::default()
        },
        FleetQuery {
            prefecture: Some("東京都".into()),
            ..FleetQuery::default()
        },
        FleetQuery {
            rule: Some(RuleKey::ALL[1]),
            ..FleetQuery::default()
        },
        FleetQuery {
            rule: Some(RuleKey::ALL[0]),
            prefecture: Some("東京都".into()),
            ..FleetQuery::default()
        },
    ];
    for s in SeverityFilter::ALL {
        out.push(FleetQuery {
            severity: Some(s),
            ..FleetQuery::default()
        });
    }
    for h in HandlingKind::ALL {
        out.push(FleetQuery {
            handling: Some(h),
            ..FleetQuery::default()
        });
    }
    for l in Liveness::ALL {
        out.push(FleetQuery {
            liveness: Some(l),
            ..FleetQuery::default()
        });
    }
    // Scoped staff: one clinic, two, none.
    for ids in [vec![1], vec![2, 3], vec![]] {
        out.push(FleetQuery {
            reach: Reach::clinics(ids.clone()),
            ..FleetQuery::default()
        });
        out.push(FleetQuery {
            reach: Reach::clinics(ids),
            search: Some("pc".into()),
            ..FleetQuery::default()
        });
    }
    for s in [
        "pc",
        "PC-0",
        "pc-01",
        "受付",
        "さくら",
        "131",
        "2710",
        "Beta",
        " beta ",
        "zz",
    ] {
        out.push(FleetQuery {
            search: Some(s.into()),
            ..FleetQuery::default()
        });
    }
    out
}

#[tokio::test]
async fn the_desk_reads_the_same_on_postgres_as_on_sqlite() {
    let p = Pair::new().await;
    fill(&p).await;

    let lines = same!(p, "overview lines", |v| async {
        v.overview_lines().await.map(|mut l| {
            l.sort_by_key(|l| l.terminal_id);
            l
        })
    });
    assert!(
        lines.contains("open_alerts: 42"),
        "the last line given wins"
    );
    assert!(!lines.contains(&terminal(TERMINALS).to_string()), "revoked");
    for reach in reaches() {
        same!(p, format!("counts {reach:?}"), |v| v
            .overview_counts(&reach));
        same!(p, format!("prefectures {reach:?}"), |v| v
            .prefectures(&reach));
    }

    let total =
        p.pg.fleet()
            .fleet_count(&FleetQuery::default())
            .await
            .unwrap();
    assert_eq!(total, TERMINALS as i64);
    // The default order, on both engines: by severity, and within one the terminals with a
    // neglected warning first.
    let everything = FleetQuery {
        limit: TERMINALS as i64,
        ..FleetQuery::default()
    };
    for store in [p.sqlite.fleet(), p.pg.fleet()] {
        let keys: Vec<(i64, bool)> = store
            .fleet_rows(&everything)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.line.severity_rank(), r.line.neglected))
            .collect();
        assert!(
            keys.windows(2)
                .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 >= w[1].1)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&(2, true)) && keys.contains(&(2, false)),
            "{keys:?}"
        );
    }
    for filter in fleet_filters() {
        let matching = same!(p, format!("count {filter:?}"), |v| v.fleet_count(&filter));
        let matching: i64 = matching.parse().unwrap();
        assert!(
            matching > 0
                || filter.search.as_deref() == Some("zz")
                || filter.reach.ids().is_some_and(<[i64]>::is_empty),
            "{filter:?} matches nothing"
        );
        for sort in FleetSort::ALL {
            for descending in [false, true] {
                for offset in [0, 7, matching - 3, matching + 5] {
                    let q = FleetQuery {
                        sort,
                        descending,
                        offset: offset.max(0),
                        limit: 10,
                        ..filter.clone()
                    };
                    let planned = q.plan(matching, total);
                    for read in [
                        planned,
                        FleetRead::Sorted,
                        FleetRead::InOrder,
                        FleetRead::Reversed { matching },
                    ] {
                        let q = FleetQuery { read, ..q.clone() };
                        let page = same!(p, format!("{q:?}"), |v| v.fleet_rows(&q));
                        if read != planned {
                            // Every way of reading gives the same page.
                            let sorted = FleetQuery {
                                read: FleetRead::Sorted,
                                ..q.clone()
                            };
                            let want =
                                format!("{:?}", p.pg.fleet().fleet_rows(&sorted).await.unwrap());
                            assert_eq!(page, want, "{q:?}");
                        }
                    }
                }
                let q = FleetQuery {
                    sort,
                    descending,
                    ..filter.clone()
                };
                let [s, g] = p.views();
                let a: Vec<String> = s
                    .export_fleet(q.clone())
                    .map(|r| format!("{:?}", r.unwrap()))
                    .collect()
                    .await;
                let b: Vec<String> = g
                    .export_fleet(q.clone())
                    .map(|r| format!("{:?}", r.unwrap()))
                    .collect()
                    .await;
                assert_eq!(a.len() as i64, matching);
                assert_eq!(a, b, "export {q:?}");
            }
        }
    }

    let mut alert_filters = vec![AlertQuery::default()];
    for include_resolved in [false, true] {
        alert_filters.push(AlertQuery {
            include_resolved,
            count: true,
            ..AlertQuery::default()
        });
        alert_filters.push(AlertQuery {
            rule: Some(RuleKey::ALL[1]),
            include_resolved,
            count: true,
            ..AlertQuery::default()
        });
        alert_filters.push(AlertQuery {
            clinic_id: Some(2),
            include_resolved,
            ..AlertQuery::default()
        });
        for reach in reaches() {
            alert_filters.push(AlertQuery {
                reach,
                include_resolved,
                count: true,
                ..AlertQuery::default()
            });
        }
        alert_filters.push(AlertQuery {
            terminal_id: Some(terminal(3)),
            include_resolved,
            ..AlertQuery::default()
        });
        alert_filters.push(AlertQuery {
            prefecture: Some("東京都".into()),
            include_resolved,
            count: true,
            ..AlertQuery::default()
        });
        for severity in Severity::ALL {
            alert_filters.push(AlertQuery {
                severity: Some(severity),
                include_resolved,
                count: true,
                ..AlertQuery::default()
            });
        }
        for handling in HandlingKind::ALL {
            alert_filters.push(AlertQuery {
                handling: Some(handling),
                include_resolved,
                count: true,
                ..AlertQuery::default()
            });
        }
        alert_filters.push(AlertQuery {
            opened_before: Some(
                Utc.timestamp_millis_opt(1_760_000_000_000 + 300_000)
                    .unwrap(),
            ),
            include_resolved,
            count: true,
            ..AlertQuery::default()
        });
    }
    for f in alert_filters {
        // Page through by the cursor, 7 at a time.
        let mut q = AlertQuery {
            limit: 7,
            ..f.clone()
        };
        let mut seen = 0;
        loop {
            let [s, g] = p.views();
            let a = s.alert_views(&q).await.unwrap();
            let b = g.alert_views(&q).await.unwrap();
            assert_eq!(a.0, b.0, "{q:?}");
            assert_eq!(format!("{:?}", a.1), format!("{:?}", b.1), "{q:?}");
            seen += a.1.len();
            let Some(last) = a.1.last() else { break };
            q.after = Some(AlertCursor::of(&last.alert));
            if f.include_resolved {
                // The cursor pages unresolved alerts; resolved ones come after them.
                break;
            }
        }
        if !f.include_resolved && f.count {
            let (total, _) = p.pg.fleet().alert_views(&f).await.unwrap();
            assert_eq!(total, seen as i64, "{f:?}");
        }
        same!(p, format!("ids {f:?}"), |v| v.alert_ids(&f, 11));
        let [s, g] = p.views();
        let a: Vec<String> = s
            .export_alerts(f.clone())
            .map(|r| format!("{:?}", r.unwrap()))
            .collect()
            .await;
        let b: Vec<String> = g
            .export_alerts(f.clone())
            .map(|r| format!("{:?}", r.unwrap()))
            .collect()
            .await;
        assert_eq!(a, b, "export {f:?}");
    }

    for group in [AlertGroup::Rule, AlertGroup::Clinic] {
        let [s, g] = p.views();
        let since = Utc.timestamp_millis_opt(0).unwrap();
        let round = |rows: Vec<onshi_server::store::desk::ResponseTimes>| {
            rows.into_iter()
                .map(|r| {
                    (
                        r.key,
                        r.alerts,
                        r.acknowledged,
                        r.mean_ack_minutes.map(|m| (m * 1000.0).round() as i64),
                        r.resolved,
                        r.mean_resolve_minutes.map(|m| (m * 1000.0).round() as i64),
                    )
                })
                .collect::<Vec<_>>()
        };
        for reach in reaches() {
            let a = round(s.response_times(group, since, &reach).await.unwrap());
            let b = round(g.response_times(group, since, &reach).await.unwrap());
            assert!(!a.is_empty() || !reach.is_all());
            assert_eq!(a, b, "{group:?} {reach:?}");
        }
    }

    for search in [
        None,
        Some("さくら"),
        Some("131"),
        Some(" Beta"),
        Some("b"),
        Some(""),
    ] {
        same!(p, format!("clinics {search:?}"), |v| v.clinic_list(
            search,
            0,
            2,
            &Reach::All
        ));
        for reach in reaches() {
            same!(p, format!("clinics {search:?} {reach:?}"), |v| v
                .clinic_list(search, 1, 10, &reach));
        }
    }
    for id in [1, 3, 99] {
        same!(p, "clinic", |v| v.clinic_detail(id));
        same!(p, "contacts", |v| v.contacts(id));
        same!(p, "codes", |v| v.enrollment_codes(id));
        same!(p, "backup password", |v| v.backup_password_set(id));
    }
    same!(p, "silences", |v| v.silences(at(5_000), at(-2_000_000)));
    same!(p, "silences", |v| v.silences(at(0), at(-10_000_000_000)));
    for i in [0, 2, 3, TERMINALS] {
        let id = terminal(i);
        let detail = same!(p, "detail", |v| v.terminal_detail(id));
        assert!(detail.starts_with("Some"));
        same!(p, "hours", |v| v.report_hours(id, at(3_600_000)));
        same!(p, "events", |v| v.recent_events(id, at(1000), 3));
        same!(p, "events", |v| v.recent_events(id, at(-1), 10));
        same!(p, "baseline", |v| v.terminal_baseline(id));
        same!(p, "accounts", |v| v.terminal_accounts(id));
    }
    same!(p, "no terminal", |v| v.terminal_detail(Uuid::nil()));
    same!(p, "no terminal", |v| v.terminal_baseline(Uuid::nil()));
    p.end().await;
}

/// An export longer than a page of the cursor: every line once, in the page's order, however
/// the lines change while it is read (the snapshot of its first page).
#[tokio::test]
async fn a_postgres_export_reads_every_page_of_one_snapshot() {
    let schema = PgSchema::new().await;
    let store = PgStore::open_with(schema.options.clone()).await.unwrap();
    sqlx::query("INSERT INTO clinics (id, name, email, created_at) VALUES (1, 'c', 'e', 0)")
        .execute(&schema.pool)
        .await
        .unwrap();
    let n = 2_345;
    let ids: Vec<Uuid> = (0..n).map(|i| Uuid::from_u128(i as u128 + 1)).collect();
    sqlx::query(
        "INSERT INTO terminals (id, clinic_id, token_hash, hostname, agent_version, os, \
         enrolled_at) SELECT id, 1, id::text, 'h', 'v', 'o', 0 FROM UNNEST($1::uuid[]) AS u(id)",
    )
    .bind(&ids)
    .execute(&schema.pool)
    .await
    .unwrap();
    let lines: Vec<OverviewLine> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| OverviewLine {
            terminal_id: *id,
            clinic_id: 1,
            clinic_name: "c".into(),
            prefecture: None,
            hostname: format!("H{:05}", (i * 7) % n),
            severity: None,
            handling: Handling::None,
            liveness: Liveness::ALL[0],
            open_alerts: 0,
            open_rules: 0,
            apps_behind: 0,
            backup: BackupKind::Ok,
            last_start: None,
            cert_not_after: None,
            neglected: false,
        })
        .collect();
    let fleet = store.fleet();
    fleet
        .write_overview_lines(&lines, Utc::now())
        .await
        .unwrap();
    let q = FleetQuery {
        sort: FleetSort::Hostname,
        ..FleetQuery::default()
    };
    let mut export = fleet.export_fleet(q.clone());
    let first = export.next().await.unwrap().unwrap();
    // Written after the export began: not in it.
    sqlx::query("DELETE FROM overview_line WHERE host_key > 'h01000'")
        .execute(&schema.pool)
        .await
        .unwrap();
    let mut hosts = vec![first.line.hostname];
    while let Some(row) = export.next().await {
        hosts.push(row.unwrap().line.hostname);
    }
    assert_eq!(hosts.len(), n);
    let mut sorted = hosts.clone();
    sorted.sort();
    assert_eq!(hosts, sorted);
    // An abandoned export gives its connection back.
    for _ in 0..40 {
        let mut e = fleet.export_fleet(q.clone());
        e.next().await.unwrap().unwrap();
    }
    assert_eq!(
        fleet.fleet_count(&FleetQuery::default()).await.unwrap(),
        1_001
    );
    store.pool().close().await;
    schema.drop().await;
}
