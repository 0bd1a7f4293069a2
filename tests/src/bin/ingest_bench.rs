//! Ingest benchmark: drives `POST /api/v1/report` over real HTTP on loopback with wrk, many
//! distinct terminals, against (1) the real server on SQLite with durable group commit and
//! (2) a handler that only decodes and parses the body: the ceiling. Both servers run for the
//! whole benchmark and the load alternates between them, ceiling then ingest, for `--rounds`
//! rounds, so that a change in the machine's speed over the run (seen here: 25 % between runs
//! minutes apart) falls on both sides of each ratio. Prints reports/s and p50/p99 for each run,
//! each round's ratio and their median.
//!
//! `cargo run --release -p onshi-e2e --bin ingest-bench -- --terminals 250000 --seconds 10 --rounds 5`
//! (add `--database-url postgres://postgres@127.0.0.1/test` for PostgreSQL).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use chrono::Utc;
use clap::Parser;
use onshi_server::config::RetentionSettings;
use onshi_server::desk::Desk;
use onshi_server::domain::Actor;
use onshi_server::enroll::{hash_code, hash_token, new_token};
use onshi_server::retention::Pruner;
use onshi_server::store::NewTerminal;
use onshi_server::{Application, Config, ingest};
use onshi_shared::sample;
use uuid::Uuid;

const METRICS_TOKEN: &str = "ingest-bench-metrics-token";

#[derive(Parser)]
struct Args {
    /// Distinct enrolled terminals the load rotates over.
    #[arg(long, default_value_t = 250_000)]
    terminals: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Rounds of (ceiling run, ingest run).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Give this many terminals two years of history (hourly report hours, daily starts, two
    /// events a day) and add, to each round, an ingest run while retention deletes it.
    #[arg(long, default_value_t = 0)]
    backlog_terminals: u32,
    /// `[retention] step_ms` for those runs.
    #[arg(long, default_value_t = RetentionSettings::default().step_ms)]
    retention_step_ms: u32,
    /// Ingest into PostgreSQL (a schema of the bench's own in this database) instead of
    /// SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
}

const LUA: &str = r#"
local ids, toks, seqs = {}, {}, {}
local n, i, nthreads, base = 0, 0, 1, 0
tid = 0 -- set per thread by setup()
local snapshot

function setup(thread)
  thread:set("tid", __next_tid or 0)
  __next_tid = (__next_tid or 0) + 1
end

function init(args)
  nthreads = tonumber(args[3])
  base = tonumber(args[4]) -- each round's reports are newer than the last round's
  for line in io.lines(args[1]) do
    local id, tok = line:match("(%S+) (%S+)")
    n = n + 1
    ids[n] = id
    toks[n] = tok
    seqs[n] = base
  end
  local f = io.open(args[2], "r")
  snapshot = f:read("*a")
  f:close()
  i = tid + 1
end

function request()
  i = i + nthreads
  if i > n then i = tid + 1 end
  seqs[i] = seqs[i] + 1
  local body = '{"schema":1,"agent_id":"' .. ids[i] .. '","seq":' .. seqs[i] ..
    ',"sent_at":"2026-11-25T09:00:00Z","snapshot":' .. snapshot .. ',"events":[]}'
  return wrk.format("POST", "/api/v1/report",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. toks[i] }, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    "ONSHI requests=%d duration_us=%d status_errors=%d connect_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"#;

#[derive(Debug, Default)]
struct Run {
    requests: u64,
    duration_us: u64,
    errors: u64,
    p50_us: u64,
    p99_us: u64,
    server_cpu_secs: f64,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.requests as f64 * 1e6 / self.duration_us.max(1) as f64
    }

    /// Server CPU per request, in µs: stable even when the machine is shared.
    fn cpu_us(&self) -> f64 {
        self.server_cpu_secs * 1e6 / self.requests.max(1) as f64
    }
}

fn parse_wrk(output: &str) -> Result<Run> {
    let line = output
        .lines()
        .find(|l| l.starts_with("ONSHI "))
        .with_context(|| format!("wrk printed no summary:\n{output}"))?;
    let mut run = Run::default();
    for kv in line.split_whitespace().skip(1) {
        let (k, v) = kv.split_once('=').context("malformed wrk summary")?;
        let v: u64 = v.parse().context("malformed wrk number")?;
        match k {
            "requests" => run.requests = v,
            "duration_us" => run.duration_us = v,
            "status_errors" | "connect_errors" | "timeouts" => run.errors += v,
            "p50_us" => run.p50_us = v,
            "p99_us" => run.p99_us = v,
            _ => {}
        }
    }
    Ok(run)
}

/// CPU time this process (the server side) has used, from /proc/self/stat (utime + stime).
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// One wrk run against `addr`; every terminal's `seq` starts above `seq_base`.
async fn wrk(args: &Args, addr: SocketAddr, work: &Path, seq_base: u64) -> Result<Run> {
    let cpu_before = process_cpu_secs();
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.seconds))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(work.join("report.lua"))
        .arg(format!("http://{addr}"))
        .arg("--")
        .arg(work.join("terminals.txt"))
        .arg(work.join("snapshot.json"))
        .arg(args.threads.to_string())
        .arg(seq_base.to_string())
        .output()
        .await
        .context("running wrk (install it: apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut run = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
    run.server_cpu_secs = process_cpu_secs() - cpu_before;
    Ok(run)
}

/// The ceiling: the same body handling as the real endpoint (decode, parse, validate), no
/// authentication, no storage.
async fn parse_only(headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    match ingest::decode_body(encoding, &body).and_then(|b| ingest::parse_report(&b)) {
        Ok(_) => (StatusCode::OK, "{}"),
        Err(_) => (StatusCode::BAD_REQUEST, "{}"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    onshi_server::install_crypto_provider();
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    let mut config = Config {
        data_dir: data.clone(),
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    // Ingest alone: the alert evaluator is measured on its own, and retention runs only
    // where the bench starts it.
    config.alerts.enabled = false;
    config.retention.keep_days = 0;
    config.metrics.token = Some(METRICS_TOKEN.into());
    let schema = match &args.database_url {
        Some(url) => {
            if args.backlog_terminals > 0 {
                bail!(
                    "--backlog-terminals measures SQLite's retention; drop it with --database-url"
                );
            }
            let schema = onshi_e2e::BenchSchema::create(url).await?;
            config.database_url = Some(schema.url.clone());
            Some(schema)
        }
        None => None,
    };
    let engine = if schema.is_some() {
        "ingest, PostgreSQL durable"
    } else {
        "ingest, SQLite durable"
    };

    // Enroll the fleet in bulk through the store, as an installer's batch would.
    let setup = Instant::now();
    let store = onshi_server::store::connect(&config.database()?).await?;
    let now = Utc::now();
    let desk = Desk::for_store(store.clone());
    let actor = Actor::CommandLine {
        os_user: "bench".into(),
    };
    let clinic = desk
        .add_clinic(&actor, "ベンチマーク医院", "bench@example.jp", now)
        .await?;
    let code = desk.issue_code(&actor, clinic.id, now).await?;
    let sink = store.ingest_sink();
    let mut lines = String::with_capacity(args.terminals * 102);
    let mut batch = Vec::with_capacity(10_000);
    for n in 0..args.terminals {
        let token = new_token();
        let id = Uuid::now_v7();
        lines.push_str(&format!("{id} {token}\n"));
        batch.push(NewTerminal {
            id,
            token_hash: hash_token(&token),
            hostname: format!("BENCH-{n:06}"),
            agent_version: "bench".into(),
            os: "bench".into(),
        });
        if batch.len() == 10_000 || n + 1 == args.terminals {
            store
                .enroll(&hash_code(&code), &batch, now)
                .await?
                .context("bench enrollment code refused")?;
            batch.clear();
        }
    }
    std::fs::write(work.path().join("terminals.txt"), lines)?;
    let snapshot = sample::snapshot_at(now);

    // The fleet has reported before: one stored report per terminal, so the measured run is the
    // steady state (every report updates an existing terminal) rather than first contact.
    let mut report = sample::report_with(0, snapshot.clone());
    report.events.clear();
    let mut rows = Vec::with_capacity(1000);
    for line in std::fs::read_to_string(work.path().join("terminals.txt"))?.lines() {
        let id: Uuid = line.split(' ').next().unwrap_or_default().parse()?;
        rows.push(ingest::prepare(report.clone(), id, now)?);
        if rows.len() == 1000 {
            sink.write_batch(&rows).await?;
            rows.clear();
        }
    }
    sink.write_batch(&rows).await?;
    sink.sync_committed()?;
    drop((sink, desk, store));
    let state_bytes = match &schema {
        Some(s) => postgres_bytes(&s.url).await?,
        None => database_bytes(&data),
    };
    eprintln!(
        "database: {:.0} MB for {} terminals with one report each ({:.1} KB per terminal)",
        state_bytes as f64 / 1e6,
        args.terminals,
        state_bytes as f64 / 1e3 / args.terminals.max(1) as f64
    );
    if args.backlog_terminals > 0 {
        let started = Instant::now();
        let rows = add_backlog(&data.join("onshi.db"), args.backlog_terminals, now).await?;
        let grown = database_bytes(&data).saturating_sub(state_bytes);
        eprintln!(
            "backlog: {rows} rows of history for {} terminals in {:.1} s; the database grew by \
             {:.0} MB ({:.0} bytes per row)",
            args.backlog_terminals,
            started.elapsed().as_secs_f64(),
            grown as f64 / 1e6,
            grown as f64 / rows.max(1) as f64
        );
    }
    let snapshot_json = serde_json::to_string(&snapshot)?;
    let report_size = snapshot_json.len() + 120;
    std::fs::write(work.path().join("snapshot.json"), &snapshot_json)?;
    std::fs::write(work.path().join("report.lua"), LUA)?;
    eprintln!(
        "enrolled {} terminals in {:.1} s; report body ≈ {} bytes",
        args.terminals,
        setup.elapsed().as_secs_f64(),
        report_size
    );

    // 1. Ceiling: parse only.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ceiling_addr = listener.local_addr()?;
    let router = axum::Router::new().route("/api/v1/report", post(parse_only));
    let (stop_ceiling, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ceiling_server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });

    // 2. The real server: authentication, validation, group commit on SQLite, the reply after
    // the WAL flush.
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    let store = app.store();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));

    println!(
        "| round | run | reports/s | p50 | p99 | server CPU per report | errors |\n\
         |---|---|---|---|---|---|---|"
    );
    let row = |round: u32, name: &str, run: &Run| {
        println!(
            "| {round} | {name} | {:.0} | {:.2} ms | {:.2} ms | {:.0} µs | {} |",
            run.per_sec(),
            run.p50_us as f64 / 1000.0,
            run.p99_us as f64 / 1000.0,
            run.cpu_us(),
            run.errors,
        )
    };
    let mut ratios = Vec::new();
    let mut p99s: Vec<(u64, u64)> = Vec::new();
    let mut failed = 0;
    for round in 1..=args.rounds {
        // Seqs stay below 2^53 (Lua numbers) and above every earlier round's.
        let seq_base = u64::from(round) * 1_000_000_000;
        let ceiling = wrk(&args, ceiling_addr, work.path(), seq_base).await?;
        row(round, "parse-only ceiling", &ceiling);
        let real = wrk(&args, addr, work.path(), seq_base).await?;
        row(round, engine, &real);
        ratios.push(real.per_sec() / ceiling.per_sec().max(1.0));
        failed += real.errors;
        if args.backlog_terminals > 0 {
            // The same load while retention deletes the backlog (two years, default
            // settings: everything past 400 days goes, report hours past 30 days are
            // thinned), stopped with the run; the next round goes on where it stopped.
            let settings = RetentionSettings {
                step_ms: args.retention_step_ms,
                ..RetentionSettings::default()
            };
            let pruner = Pruner::new(store.clone(), settings);
            let pruning = tokio::spawn(async move { pruner.run_once(Utc::now()).await });
            let before = backlog_rows(&data.join("onshi.db")).await?;
            let pruned = wrk(&args, addr, work.path(), seq_base + 500_000_000).await?;
            pruning.abort();
            let after = backlog_rows(&data.join("onshi.db")).await?;
            row(
                round,
                &format!(
                    "ingest while retention deletes ({} rows deleted)",
                    before - after
                ),
                &pruned,
            );
            p99s.push((real.p99_us, pruned.p99_us));
            failed += pruned.errors;
        }
    }
    if !p99s.is_empty() {
        let shown: Vec<String> = p99s
            .iter()
            .map(|(a, b)| format!("{:.2} → {:.2} ms", *a as f64 / 1000.0, *b as f64 / 1000.0))
            .collect();
        let mut change: Vec<f64> = p99s
            .iter()
            .map(|(a, b)| *b as f64 / (*a).max(1) as f64 - 1.0)
            .collect();
        change.sort_by(f64::total_cmp);
        println!(
            "\ningest p99 without → with retention deleting, per round: {}; median change {:+.0} %",
            shown.join(", "),
            change[change.len() / 2] * 100.0
        );
    }
    let _ = stop_ceiling.send(());
    ceiling_server.await??;
    let metrics = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (reports, batches, flushes) = (
        metric("onshi_reports_ingested_total "),
        metric("onshi_ingest_batch_reports_count "),
        metric("onshi_ingest_flush_seconds_count "),
    );
    let (commit_secs, flush_secs) = (
        metric("onshi_ingest_commit_seconds_sum "),
        metric("onshi_ingest_flush_seconds_sum "),
    );
    let _ = stop_tx.send(());
    server.await??;
    let stored = store.fleet_counts(now).await?;

    let shown: Vec<String> = ratios
        .iter()
        .map(|r| format!("{:.0} %", r * 100.0))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or(0.0);
    println!(
        "\ningest / ceiling per round: {}; median {:.0} %  ({} terminals enrolled, {} connections, \
         {} s per run, {} terminals with stored state)",
        shown.join(", "),
        median * 100.0,
        args.terminals,
        args.connections,
        args.seconds,
        stored.terminals - stored.offline
    );
    let ingest_secs = f64::from(args.seconds * args.rounds);
    println!(
        "writer: {:.1} reports per commit ({:.0} µs each, {:.0} % of the ingest runs), \
         {:.1} reports per WAL flush ({:.0} µs each, {:.0} % of the ingest runs)",
        reports / batches.max(1.0),
        commit_secs * 1e6 / batches.max(1.0),
        commit_secs * 100.0 / ingest_secs,
        reports / flushes.max(1.0),
        flush_secs * 1e6 / flushes.max(1.0),
        flush_secs * 100.0 / ingest_secs,
    );
    if let Some(schema) = schema {
        schema.drop_schema().await?;
    }
    if failed > 0 {
        bail!("{failed} requests failed against the real server");
    }
    Ok(())
}

/// The size of the tables and indexes in the bench's PostgreSQL schema.
async fn postgres_bytes(url: &str) -> Result<u64> {
    let pool = sqlx::PgPool::connect(url).await?;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r'",
    )
    .fetch_one(&pool)
    .await?;
    Ok(u64::try_from(bytes).unwrap_or(0))
}

/// Rows of history older than 30 days: what retention deletes or thins.
/// The SQLite database's size on disk, its WAL included.
fn database_bytes(data: &std::path::Path) -> u64 {
    ["onshi.db", "onshi.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

async fn backlog_rows(db: &Path) -> Result<i64> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    let cut = (Utc::now() - chrono::Duration::days(30)).timestamp_millis();
    let mut total = 0;
    for sql in [
        "SELECT COUNT(*) FROM report_hours WHERE hour < ?",
        "SELECT COUNT(*) FROM starts WHERE started_at < ?",
        "SELECT COUNT(*) FROM events WHERE received_at < ?",
    ] {
        let n: i64 = sqlx::query_scalar(sql).bind(cut).fetch_one(&pool).await?;
        total += n;
    }
    pool.close().await;
    Ok(total)
}

/// Two years of history, ending 31 days ago, for the first `terminals` terminals: an hourly
/// report hour, a start a day and two small events a day each.
async fn add_backlog(db: &Path, terminals: u32, now: chrono::DateTime<Utc>) -> Result<i64> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    let days: i64 = 730;
    let start =
        (now - chrono::Duration::days(days + 31)).timestamp_millis() / 3_600_000 * 3_600_000;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "CREATE TEMP TABLE backlog_terminals AS SELECT id FROM terminals ORDER BY id LIMIT ?",
    )
    .bind(i64::from(terminals))
    .execute(&mut *tx)
    .await?;
    // ?1: how many steps, ?2: the first hour.
    let mut added = 0;
    for (sql, steps) in [
        (
            "INSERT INTO report_hours (terminal_id, hour) \
             SELECT t.id, ?2 + s.x * 3600000 FROM backlog_terminals t, s",
            days * 24,
        ),
        (
            "INSERT INTO starts (terminal_id, started_at, kind) \
             SELECT t.id, ?2 + s.x * 86400000 + 3600000, 'restart' FROM backlog_terminals t, s",
            days,
        ),
        // In the order they would have arrived: half-day by half-day.
        (
            "INSERT INTO events (terminal_id, id, seq, at, received_at, kind, body) \
             SELECT t.id, printf('backlog-%d', s.x), 0, ?2 + s.x * 43200000, \
                    ?2 + s.x * 43200000, 'agent_started', '{}' \
             FROM s, backlog_terminals t ORDER BY s.x",
            days * 2,
        ),
    ] {
        let sql = format!(
            "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?1) {sql}"
        );
        added += sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(steps)
            .bind(start)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    pool.close().await;
    Ok(i64::try_from(added)?)
}
