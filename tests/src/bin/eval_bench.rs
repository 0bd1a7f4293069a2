//! Rule-evaluation and dashboard benchmark over a large fleet on SQLite or PostgreSQL: full evaluator passes
//! (load every terminal's state, run the rules, write the alert changes, their outbox rows and
//! the overview's per-terminal summaries), then the support desk's pages over real HTTP with a
//! logged-in session. The clinics keep real calendars (lunch breaks, afternoons off, dated
//! closures), a third of them name the Windows account their own way, some terminals have
//! names of their own, and maintenance windows are in force (one nightly across the fleet).
//!
//! `cargo run --release -p onshi-e2e --bin eval-bench -- --terminals 250000` (add
//! `--database-url postgres://postgres@127.0.0.1/test` for PostgreSQL).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use clap::Parser;
use onshi_e2e::DeskClient;
use onshi_server::calendar::{BusinessHours, Closure, parse_week};
use onshi_server::desk::{Desk, SilenceRequest, new_clinic};
use onshi_server::domain::{Actor, DailyWindow, Role, Scope, SilenceScope};
use onshi_server::enroll::hash_code;
use onshi_server::evaluator::Evaluator;
use onshi_server::store::NewTerminal;
use onshi_server::{Application, Config, ingest};
use onshi_shared::{AccountRole, AccountSpec, accounts_key, sample};
use uuid::Uuid;

/// The system allocator, counting while an export is measured: the heap it adds at its
/// peak (bytes allocated minus bytes freed since the count began), whatever glibc keeps
/// mapped from before.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static NET: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

impl Counting {
    fn add(bytes: isize) {
        if COUNTING.load(Ordering::Relaxed) {
            let now = NET.fetch_add(bytes, Ordering::Relaxed) + bytes;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }

    fn start() {
        NET.store(0, Ordering::Relaxed);
        PEAK.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
    }

    /// The peak of the heap added since `start`, in bytes.
    fn stop() -> isize {
        COUNTING.store(false, Ordering::Relaxed);
        PEAK.load(Ordering::Relaxed)
    }
}

// SAFETY: every call goes to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::add(layout.size() as isize);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Counting::add(-(layout.size() as isize));
        // SAFETY: ptr came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::add(new_size as isize - layout.size() as isize);
        // SAFETY: as GlobalAlloc::realloc requires, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Parser)]
struct Args {
    /// Terminals in the fleet; one in ten has not restarted for 30 hours.
    #[arg(long, default_value_t = 250_000)]
    terminals: usize,
    /// Full passes to time (the first one opens the alerts, later ones find nothing new).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Clinics the terminals belong to (in 5 prefectures).
    #[arg(long, default_value_t = 10_000)]
    clinics: usize,
    /// Requests per dashboard page (0: no dashboard measurement).
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// Clinics with a maintenance window in force (besides a nightly one for the fleet).
    #[arg(long, default_value_t = 100)]
    silences: usize,
    /// Terminals with account names of their own (over their clinic's).
    #[arg(long, default_value_t = 250)]
    own_names: usize,
    /// The fleet of the earlier benchmark: one window 09:00–18:00, the server's account names,
    /// no closures, no silences (to compare the same fleet across versions).
    #[arg(long)]
    plain: bool,
    /// Keep the database in this (empty) directory instead of a temporary one (with
    /// `--database-url`, keep the bench's PostgreSQL schema).
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
    /// Evaluate on PostgreSQL (a schema of the bench's own in this database) instead of
    /// SQLite.
    #[arg(long)]
    database_url: Option<String>,
}

/// Real clinics' weeks, in turn.
const WEEKS: [&str; 3] = [
    "mon=09:00-12:30,15:00-18:30;tue=09:00-12:30,15:00-18:30;wed=09:00-12:30,15:00-18:30;\
     thu=09:00-12:30;fri=09:00-12:30,15:00-18:30;sat=09:00-12:30",
    "mon=08:30-12:00,14:00-17:30;tue=08:30-12:00,14:00-17:30;wed=08:30-12:00;\
     thu=08:30-12:00,14:00-17:30;fri=08:30-12:00,14:00-17:30;sat=08:30-12:00",
    "mon=09:00-19:00;tue=09:00-19:00;wed=09:00-19:00;thu=09:00-19:00;fri=09:00-19:00;\
     sat=09:00-13:00",
];

const PREFECTURES: [&str; 5] = ["東京都", "神奈川県", "大阪府", "愛知県", "福岡県"];

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    onshi_server::install_crypto_provider();
    let work = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: args
            .keep
            .clone()
            .unwrap_or_else(|| work.path().to_path_buf()),
        ..Config::default()
    };
    config.policy.accounts = onshi_testkit::reports::agent_policy().accounts;
    // The pages are timed alone (ingest-bench measures retention).
    config.retention.keep_days = 0;
    let server_accounts = config.policy.accounts.clone();
    let schema = match &args.database_url {
        Some(url) => {
            let schema = onshi_e2e::BenchSchema::create(url).await?;
            config.database_url = Some(schema.url.clone());
            Some(schema)
        }
        None => None,
    };
    let store = onshi_server::store::connect(&config.database()?).await?;
    let desk = Desk::new(store.clone(), None, &config);
    let actor = Actor::CommandLine {
        os_user: "bench".into(),
    };
    let sink = store.ingest_sink();
    let now = Utc::now();
    let setup = Instant::now();
    let mut report = sample::report_with(1, sample::snapshot_at(now));
    report.events.clear();
    let per_clinic = args.terminals.div_ceil(args.clinics.max(1));
    let mut made = 0;
    let mut first_terminal = None;
    // The first terminals of every clinic, for names of their own below.
    let mut ids: Vec<Uuid> = Vec::new();
    for c in 0..args.clinics.max(1) {
        if made >= args.terminals {
            break;
        }
        let mut detail = new_clinic(&format!("ベンチ医院{c:05}"), &format!("c{c}@example.jp"));
        detail.settings.prefecture = Some(PREFECTURES[c % PREFECTURES.len()].into());
        detail.code = Some(format!("13{c:08}"));
        if !args.plain {
            detail.settings.hours = BusinessHours {
                week: parse_week(WEEKS[c % WEEKS.len()]).map_err(anyhow::Error::msg)?,
                closed_obon: c % 2 == 0,
                ..BusinessHours::default()
            };
        }
        // A third of the clinics named the Windows account their own way.
        let windows = (!args.plain && c % 3 == 0).then(|| format!("uketsuke{}", c % 7));
        if let Some(name) = &windows {
            detail.settings.accounts = vec![AccountSpec {
                role: AccountRole::Windows,
                name: name.clone(),
            }];
        }
        let given = AccountSpec::merged(&server_accounts, &detail.settings.accounts);
        let key = accounts_key(&given);
        let id = desk.save_clinic(&actor, &detail, now).await?;
        let today = now.with_timezone(&onshi_server::jst::offset()).date_naive();
        let closures = [(-2, -1), (5, 5), (30, 33)]
            .iter()
            .map(|(from, to)| Closure {
                id: 0,
                from: today + Duration::days(*from),
                to: today + Duration::days(*to),
                reason: "臨時休診".into(),
            })
            .collect();
        if !args.plain {
            desk.add_closures(&actor, id, closures, now).await?;
        }
        let code = desk.issue_code(&actor, id, now).await?;
        let n = per_clinic.min(args.terminals - made);
        let ids_here: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        first_terminal = first_terminal.or(ids_here.first().copied());
        if ids.len() < args.own_names {
            ids.extend(ids_here.iter().take(3));
        }
        let terminals: Vec<NewTerminal> = ids_here
            .iter()
            .map(|id| NewTerminal {
                id: *id,
                token_hash: id.to_string(),
                hostname: "BENCH".into(),
                agent_version: "bench".into(),
                os: "bench".into(),
            })
            .collect();
        store
            .enroll(&hash_code(&code), &terminals, now)
            .await?
            .context("bench enrollment code refused")?;
        let rows = ids_here
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut r = report.clone();
                r.agent_id = *id;
                r.snapshot.hostname = format!("BENCH-{:06}", made + i);
                r.snapshot.accounts.policy_key = key;
                if let Some(name) = &windows {
                    r.snapshot.accounts.accounts[0].name = name.clone();
                }
                if (made + i) % 10 == 0 {
                    r.snapshot.uptime.last_start = now - Duration::hours(30);
                }
                ingest::prepare(r, *id, now)
            })
            .collect::<Result<Vec<_>, _>>()?;
        sink.write_batch(&rows).await?;
        made += n;
    }
    sink.sync_committed()?;
    // Terminals whose face-authentication account has a name of its own, confirmed by staff.
    let ids: Vec<Uuid> = store
        .active_tokens()
        .await?
        .into_iter()
        .map(|(_, a)| a.terminal_id)
        .collect();
    let own_names = if args.plain { 0 } else { args.own_names };
    for (i, id) in ids.iter().take(own_names).enumerate() {
        let name = format!("kao-{i}");
        desk.confirm_accounts(
            &actor,
            *id,
            &[AccountSpec {
                role: AccountRole::FaceAuth,
                name: name.clone(),
            }],
            now,
        )
        .await?;
        let (_, mut snapshot) = store.latest_snapshot(*id).await?.context("a snapshot")?;
        let mut given = snapshot.accounts.accounts.clone();
        given[1].name = name.clone();
        snapshot.accounts.accounts = given;
        let mut specs: Vec<AccountSpec> = snapshot
            .accounts
            .accounts
            .iter()
            .map(|a| AccountSpec {
                role: a.role,
                name: a.name.clone(),
            })
            .collect();
        specs.sort_by_key(|a| a.role);
        snapshot.accounts.policy_key = accounts_key(&specs);
        let mut r = report.clone();
        r.agent_id = *id;
        r.seq = 2;
        r.snapshot = snapshot;
        sink.write_batch(&[ingest::prepare(r, *id, now)?]).await?;
    }
    sink.sync_committed()?;
    // Maintenance windows: every night for the 04:00 restart, and some clinics' work today.
    let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    let silences = if args.plain { 0 } else { args.silences };
    if !args.plain {
        desk.silence(
            &actor,
            &SilenceRequest {
                scope: SilenceScope::Fleet,
                rule: None,
                starts_at: now - Duration::days(1),
                ends_at: now + Duration::days(365),
                daily: Some(DailyWindow {
                    from: t(3, 30),
                    to: t(5, 0),
                    weekdays: 0x7f,
                }),
                reason: "04:00 の自動再起動".into(),
            },
            now,
        )
        .await?;
    }
    for c in 0..silences.min(args.clinics) {
        desk.silence(
            &actor,
            &SilenceRequest {
                scope: SilenceScope::Clinic(1 + (c * 97 % args.clinics.max(1)) as i64),
                rule: None,
                starts_at: now - Duration::hours(1),
                ends_at: now + Duration::hours(3),
                daily: None,
                reason: "院内LAN工事".into(),
            },
            now,
        )
        .await?;
    }
    eprintln!(
        "{} terminals stored in {:.1} s",
        args.terminals,
        setup.elapsed().as_secs_f64()
    );

    let mut evaluator = Evaluator::from_config(store.clone(), &config);
    println!("resident memory before the first pass: {}", resident());
    println!(
        "| pass | terminals | findings | alert changes | time | resident memory after |\n|---|---|---|---|---|---|"
    );
    let mut slowest = std::time::Duration::ZERO;
    for pass in 1..=args.passes {
        let started = Instant::now();
        let stats = evaluator.full_pass(now).await?;
        println!(
            "| {pass} | {} | {} | {} | {:.2} s | {} |",
            stats.terminals,
            stats.findings,
            stats.changes,
            started.elapsed().as_secs_f64(),
            resident()
        );
        slowest = slowest.max(started.elapsed());
    }

    let counts = store
        .fleet()
        .overview_counts(&onshi_server::domain::Reach::All)
        .await?;
    let by_rule: Vec<String> = onshi_server::domain::RuleKey::ALL
        .iter()
        .filter(|r| counts.rule(**r) > 0)
        .map(|r| format!("{} {}", r.as_str(), counts.rule(*r)))
        .collect();
    eprintln!(
        "terminals with an open alert, by rule: {}",
        by_rule.join(", ")
    );

    if let Some(schema) = &schema {
        // What autovacuum does after such a load, at once: without statistics the planner
        // guesses (this machine's PostgreSQL runs with autovacuum off).
        let pool = sqlx::PgPool::connect(&schema.url).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
    }
    if args.requests > 0 {
        let first = first_terminal.context("no terminals")?;
        dashboard(desk, config, first, args.requests, slowest * 2).await?;
    }
    match schema {
        // With --keep, the schema stays for a look at the plans (`onshi_bench_<pid>`).
        Some(schema) if args.keep.is_some() => eprintln!("kept the schema: {}", schema.url),
        Some(schema) => schema.drop_schema().await?,
        None => {}
    }
    Ok(())
}

/// This process's resident memory (the evaluator keeps every parsed snapshot between passes).
fn resident() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Serves the dashboard on the benchmark's database and times its pages. The server's own
/// evaluator makes one full pass at start-up (its counts feed the overview) and no more while
/// the pages are timed.
async fn dashboard(
    desk: Desk,
    mut config: Config,
    terminal: Uuid,
    requests: usize,
    settle: std::time::Duration,
) -> Result<()> {
    const PASSWORD: &str = "benchmark password";
    let actor = Actor::CommandLine {
        os_user: "bench".into(),
    };
    desk.add_user(
        &actor,
        "bench",
        Role::Viewer,
        None,
        Some(PASSWORD.into()),
        Utc::now(),
    )
    .await?;
    config.alerts.evaluate_every_secs = 3600;
    // The read API is paged to the end below: its rate limit is not what is measured.
    config.limits.api_requests_per_minute = 1_000_000;
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let app = Application::build_with_store(config, desk.store().clone()).await?;
    let base = format!("http://{}", app.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = DeskClient::login(&base, "bench", PASSWORD)
        .await
        .context("logging in")?;
    // Let the start-up pass finish before timing anything.
    tokio::time::sleep(settle).await;
    let pages = [
        ("overview, first page (worst first)", "/".to_string()),
        ("overview, page 2,000 (offset 99,950)", "/?page=2000".into()),
        ("overview, severity = warning", "/?severity=warning".into()),
        ("overview, unhandled only", "/?handling=unhandled".into()),
        (
            "overview, 営業時間外, page 10",
            "/?liveness=outside_hours&page=10".into(),
        ),
        ("silences", "/silences".into()),
        (
            "overview, rule = no daily restart, page 100",
            "/?rule=no_daily_restart&page=100".into(),
        ),
        (
            "overview, prefecture = 東京都, by certificate",
            "/?prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD&sort=cert".into(),
        ),
        (
            "overview, prefecture = 東京都, by certificate, page 900 (read from the end)",
            "/?prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD&sort=cert&page=900".into(),
        ),
        (
            "overview, prefecture = 東京都, worst first",
            "/?prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD".into(),
        ),
        (
            "overview, sorted by last start, descending",
            "/?sort=last_start&desc=1".into(),
        ),
        ("overview, search hostname prefix", "/?q=bench-1234".into()),
        (
            "overview, search clinic name prefix",
            "/?q=%E3%83%99%E3%83%B3%E3%83%81%E5%8C%BB%E9%99%A201".into(),
        ),
        ("one clinic's terminals", "/?clinic=42".into()),
        ("alerts page (200 of the open alerts)", "/alerts".into()),
        (
            "alerts page, one rule",
            "/alerts?rule=no_daily_restart".into(),
        ),
        ("alerts page, one clinic", "/alerts?clinic=42".into()),
        (
            "time to acknowledge / resolve (30 days of alerts)",
            "/alerts/times".into(),
        ),
        (
            "alerts page, severity = warning",
            "/alerts?severity=warning".into(),
        ),
        (
            "alerts page, unhandled only",
            "/alerts?handling=unhandled".into(),
        ),
        ("alerts page, open 1 day or more", "/alerts?age=1d".into()),
        (
            "alerts page, prefecture = 東京都, by clinic",
            "/alerts?prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD&group=clinic".into(),
        ),
        ("terminal page", format!("/terminals/{terminal}")),
        ("clinics, page 50", "/clinics?page=50".into()),
        ("clinic page", "/clinics/42".into()),
        ("audit log", "/audit".into()),
        ("outbox", "/outbox".into()),
    ];
    // Keyset pages further into the alerts: the 2nd and the 50th page of 100 (or the last).
    let mut cursor = "/alerts".to_string();
    let mut keyset = Vec::new();
    for n in 2..=50 {
        let page = client.try_page(&cursor).await.context(cursor.clone())?;
        let Some(next) = next_link(&page) else {
            keyset.push((format!("alerts page {} (keyset, the last)", n - 1), cursor));
            break;
        };
        cursor = next;
        if n == 2 || n == 50 {
            keyset.push((format!("alerts page {n} (keyset)"), cursor.clone()));
        }
    }
    let pages = pages
        .into_iter()
        .map(|(w, p)| (w.to_string(), p))
        .chain(keyset);
    println!("\n| page | p50 | p99 | max | bytes |\n|---|---|---|---|---|");
    for (what, path) in pages {
        time_page(&client, &what, &path, requests).await?;
    }
    scoped(&desk, &base, PASSWORD, requests).await?;
    export(&client, "/export/terminals.csv").await?;
    export(&client, "/export/alerts.csv").await?;
    bulk(&desk, &base).await?;
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Times `requests` loads of a page (after one to warm it) and prints its row.
async fn time_page(client: &DeskClient, what: &str, path: &str, requests: usize) -> Result<()> {
    let mut times = Vec::with_capacity(requests);
    let mut bytes = 0;
    client.try_page(path).await.context(path.to_string())?;
    for _ in 0..requests {
        let started = Instant::now();
        let page = client.try_page(path).await.context(path.to_string())?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = page.len();
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {what} `{path}` | {:.1} ms | {:.1} ms | {:.1} ms | {bytes} |",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

/// The pages as staff limited to a scope see them (東京都, a fifth of the fleet; a clinic group
/// of 50 clinics), and the read API paged to the end with a token of the whole fleet.
async fn scoped(desk: &Desk, base: &str, password: &str, requests: usize) -> Result<()> {
    let actor = Actor::CommandLine {
        os_user: "bench".into(),
    };
    let now = Utc::now();
    let group = desk.create_group(&actor, "ベンチ販売店", now).await?;
    for clinic in (1..=50).map(|i| i * 97) {
        desk.set_group_member(&actor, group, clinic, true, now)
            .await?;
    }
    let scopes = [
        (
            "東京都",
            "bench-tokyo",
            vec!["東京都".to_string()],
            Vec::new(),
        ),
        (
            "group of 50 clinics",
            "bench-dealer",
            Vec::new(),
            vec![group],
        ),
    ];
    for (who, user, prefectures, groups) in scopes {
        let scope = Scope {
            prefectures,
            groups,
        };
        desk.add_user(
            &actor,
            user,
            Role::Viewer,
            Some(scope),
            Some(password.into()),
            now,
        )
        .await?;
        let client = DeskClient::login(base, user, password)
            .await
            .context("logging in as a scoped viewer")?;
        for (what, path) in [
            ("overview", "/"),
            ("overview, page 100", "/?page=100"),
            ("overview, severity = warning", "/?severity=warning"),
            ("alerts page", "/alerts"),
            ("clinics", "/clinics"),
            ("audit log", "/audit"),
            ("outbox", "/outbox"),
        ] {
            time_page(&client, &format!("{who}: {what}"), path, requests).await?;
        }
    }
    let token = desk
        .create_token(&actor, "bench", Role::Viewer, None, now)
        .await?;
    let http = reqwest::Client::new();
    for list in ["terminals", "alerts"] {
        let (mut items, mut pages, mut times) = (0usize, 0usize, Vec::new());
        let mut cursor: Option<String> = None;
        let started = Instant::now();
        loop {
            let mut url = format!("{base}/api/v1/{list}?limit=500");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let t = Instant::now();
            let page: serde_json::Value = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            pages += 1;
            items += page["items"].as_array().map_or(0, Vec::len);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| read API `/api/v1/{list}?limit=500` to the end: {items} items, {pages} pages | \
             {:.1} ms | {:.1} ms | {:.1} ms | {:.2} s in all |",
            times[times.len() / 2],
            times[((times.len() - 1) as f64 * 0.99).round() as usize],
            times[times.len() - 1],
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The alerts page's "next" link, unescaped.
fn next_link(page: &str) -> Option<String> {
    let at = page.find("id=\"next-page\"")?;
    let start = page[..at].rfind("href=\"")? + 6;
    let end = start + page[start..].find('"')?;
    Some(page[start..end].replace("&amp;", "&"))
}

/// A whole CSV export: its time, rows and bytes, and the heap the process (server and
/// client) added at its peak while the export streamed.
async fn export(client: &DeskClient, path: &str) -> Result<()> {
    let started = Instant::now();
    Counting::start();
    let mut response = client.get(path).await;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let (mut bytes, mut rows) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len();
        rows += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let peak = Counting::stop();
    println!(
        "\nexport `{path}`: {} rows, {:.1} MB in {:.2} s; heap added at the peak: {:.2} MB \
         (resident memory of the process: {} kB)",
        rows.saturating_sub(1),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        peak as f64 / 1e6,
        kib("VmRSS").map_or("?".into(), |k| k.to_string()),
    );
    Ok(())
}

/// A line of `/proc/self/status` in kB.
fn kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Bulk actions as the alerts page runs them: 10,000 checked alerts acknowledged through the
/// desk, then every remaining match of a filter resolved over HTTP ("select all matching").
/// Each must write one audit line.
async fn bulk(desk: &Desk, base: &str) -> Result<()> {
    const PASSWORD: &str = "benchmark admin";
    let actor = Actor::CommandLine {
        os_user: "bench".into(),
    };
    desk.add_user(
        &actor,
        "operator",
        Role::Admin,
        None,
        Some(PASSWORD.into()),
        Utc::now(),
    )
    .await?;
    let store = desk.store();
    let audit_lines = || async {
        store
            .staff()
            .audit_rows(&onshi_server::store::desk::AuditQuery {
                action: Some("bulk".into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .map(|rows| rows.len())
    };
    let query = onshi_server::store::desk::AlertQuery {
        limit: 100,
        ..Default::default()
    };
    let ids = store.fleet().alert_ids(&query, 10_000).await?;
    let started = Instant::now();
    let outcome = desk
        .bulk_alerts(
            &actor,
            &ids,
            onshi_server::store::staff::BulkAction::Acknowledge {
                note: "一括で確認 (ベンチマーク)".into(),
                until: None,
            },
            Utc::now(),
        )
        .await?;
    println!(
        "\nbulk acknowledge of {} checked alerts: {:.2} s, audit lines: {}",
        outcome.alerts.len(),
        started.elapsed().as_secs_f64(),
        audit_lines().await?
    );
    let operator = DeskClient::login(base, "operator", PASSWORD)
        .await
        .context("logging in as an admin")?;
    let matching = store
        .fleet()
        .alert_ids(
            &onshi_server::store::desk::AlertQuery {
                rule: Some(onshi_server::domain::RuleKey::NoDailyRestart),
                ..query.clone()
            },
            100_000,
        )
        .await?
        .len();
    let started = Instant::now();
    let response = operator
        .post_csrf(
            "/alerts/bulk",
            &[
                ("action", "resolve"),
                ("note", "再起動を確認 (ベンチマーク)"),
                ("rule", "no_daily_restart"),
                ("all_matching", "1"),
            ],
        )
        .await;
    let took = started.elapsed().as_secs_f64();
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_string();
    println!(
        "bulk resolve of every match over HTTP ({matching} alerts): {took:.2} s, answer {} {location}, \
         audit lines: {}",
        response.status(),
        audit_lines().await?
    );
    Ok(())
}
