//! Helpers for end-to-end tests: the real `onshi-server`, `onshi-agent` and `onshi-demo`
//! binaries as child processes, driven through their command lines and HTTP APIs. What other
//! crates' tests share too (the SMTP receiver, a signed-in desk client, the fake terminal,
//! waiting) is in `onshi-testkit`.

pub mod hooks;
pub mod webdriver;

pub use onshi_testkit::{DeskClient, FakeMachine, Proc, free_port, wait_for};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// The workspace's `target/<profile>` directory, found from this test executable.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/e2e-<hash> -> target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    Ok(dir.to_path_buf())
}

/// Path of a workspace binary. `cargo test --workspace` builds both binaries; when only this
/// package is tested, they are built into a separate target directory (the running cargo holds
/// the lock on the main one).
pub fn binary(name: &str) -> Result<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let path = bin_dir()?.join(&file);
    if path.exists() {
        return Ok(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = workspace.join("target/e2e-bins");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--bin", name, "--target-dir"])
        .arg(&target)
        .current_dir(&workspace)
        .status()
        .context("running cargo build")?;
    let built = target.join("debug").join(&file);
    if !status.success() || !built.exists() {
        bail!("could not build {name}");
    }
    Ok(built)
}

/// `--data-dir` and, when the tests run on PostgreSQL (`ONSHI_TEST_ENGINE=postgres`), the
/// `--database-url` of the data dir's own schema: every command on one data dir reaches the
/// same database.
pub fn database_args(cmd: &mut Command, data: &Path) {
    cmd.arg("--data-dir").arg(data);
    if let Some(url) = onshi_testkit::pg::engine_url(data) {
        cmd.arg("--database-url").arg(url);
    }
}

/// The database the server on `data` uses (see [`database_args`]), for a test to read.
pub fn database_of(data: &Path) -> Result<onshi_server::store::DatabaseUrl> {
    Ok(match onshi_testkit::pg::engine_url(data) {
        Some(url) => onshi_server::store::DatabaseUrl::parse(&url)?,
        None => onshi_server::store::DatabaseUrl::Sqlite(data.join("onshi.db")),
    })
}

/// Creates a staff account with the server's own CLI (`user add --password-stdin`).
pub fn add_staff_user(data_dir: &Path, name: &str, role: &str, password: &str) -> Result<()> {
    use std::io::Write;
    let mut cmd = Command::new(binary("onshi-server")?);
    database_args(&mut cmd, data_dir);
    let mut child = cmd
        .args(["--log", "warn", "user", "add", name, "--role", role])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin of user add")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Starts `onshi-server serve` on a loopback port with a data directory and a config file.
pub fn start_server(data: &Path, config: &Path, port: u16) -> Result<Proc> {
    let mut cmd = Command::new(binary("onshi-server")?);
    database_args(&mut cmd, data);
    Ok(Proc::spawn(
        "onshi-server",
        cmd.arg("--config")
            .arg(config)
            .args(["--log", "warn", "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}")),
    )?)
}

/// Waits until the server at `base` answers its health check.
pub async fn wait_healthy(base: &str) -> Result<()> {
    let client = reqwest::Client::new();
    wait_for("server health", Duration::from_secs(20), || {
        let req = client.get(format!("{base}/healthz")).send();
        async move { req.await.ok().filter(|r| r.status().is_success()) }
    })
    .await?;
    Ok(())
}

/// Adds a clinic through `onshi-server clinic add` and returns the enrollment code it printed.
pub fn add_clinic(data: &Path, name: &str, email: &str) -> Result<String> {
    let mut cmd = Command::new(binary("onshi-server")?);
    database_args(&mut cmd, data);
    let out = cmd
        .args(["clinic", "add", name, "--email", email])
        .output()?;
    if !out.status.success() {
        bail!("clinic add: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8(out.stdout)?;
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("enrollment code: "))
        .with_context(|| format!("no enrollment code printed:\n{stdout}"))?
        .trim()
        .to_string())
}

/// The real agent binary on a fake terminal, enrolled with `code` at `base` and then running
/// with a one-second interval: its id and its process.
pub fn enroll_and_run_agent(
    data: &Path,
    machine: &FakeMachine,
    base: &str,
    code: &str,
) -> Result<(uuid::Uuid, Proc)> {
    enroll_and_run(data, machine, base, code, None)
}

/// [`enroll_and_run_agent`] against an HTTPS server whose certificate `ca` signed (the
/// agent's `--ca-cert`).
pub fn enroll_and_run_agent_trusting(
    data: &Path,
    machine: &FakeMachine,
    base: &str,
    code: &str,
    ca: &Path,
) -> Result<(uuid::Uuid, Proc)> {
    enroll_and_run(data, machine, base, code, Some(ca))
}

fn enroll_and_run(
    data: &Path,
    machine: &FakeMachine,
    base: &str,
    code: &str,
    ca: Option<&Path>,
) -> Result<(uuid::Uuid, Proc)> {
    let agent = |args: &[&str]| {
        let mut cmd = agent_command(data, machine, base, args)?;
        if let Some(ca) = ca {
            cmd.arg("--ca-cert").arg(ca);
        }
        Ok::<_, anyhow::Error>(cmd)
    };
    let out = agent(&["enroll", "--code", code])?.output()?;
    ensure!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("identity.json"))?)?;
    let agent_id = identity["agent_id"]
        .as_str()
        .context("identity has no agent_id")?
        .parse()?;
    let mut run = agent(&["run", "--interval-secs", "1"])?;
    Ok((agent_id, Proc::spawn("onshi-agent", &mut run)?))
}

/// The real agent binary, already enrolled in `data`, running with a one-second interval.
pub fn run_agent(data: &Path, machine: &FakeMachine, base: &str) -> Result<Proc> {
    let mut cmd = agent_command(data, machine, base, &["run", "--interval-secs", "1"])?;
    Ok(Proc::spawn("onshi-agent", &mut cmd)?)
}

fn agent_command(data: &Path, machine: &FakeMachine, base: &str, args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(binary("onshi-agent")?);
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--root")
        .arg(machine.path())
        .arg("--server")
        .arg(base)
        .args(["--log-level", "warn"])
        .args(args);
    Ok(cmd)
}

/// Enrolls a terminal through `POST /api/v1/enroll` with an enrollment code.
pub async fn enroll(
    client: &reqwest::Client,
    base: &str,
    code: &str,
    hostname: &str,
) -> Result<onshi_shared::EnrollResponse> {
    let resp = client
        .post(format!("{base}/api/v1/enroll"))
        .json(&onshi_shared::EnrollRequest {
            schema: onshi_shared::SCHEMA_VERSION,
            code: code.into(),
            hostname: hostname.into(),
            agent_version: "0.1.0".into(),
            os: "Windows 11 Pro 23H2".into(),
        })
        .send()
        .await
        .context("POST /api/v1/enroll")?;
    json_reply(resp, &format!("enroll {hostname:?}")).await
}

/// The JSON body of a successful reply; any other status is an error carrying the body.
pub async fn json_reply<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T> {
    let status = resp.status();
    let body = resp.text().await?;
    ensure!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).with_context(|| format!("{what} reply {body}"))
}

/// A benchmark's own schema in the PostgreSQL database at `url` (dropped by
/// [`BenchSchema::drop_schema`]), so a run never meets another's rows.
pub struct BenchSchema {
    pub url: String,
    name: String,
    admin: String,
}

impl BenchSchema {
    pub async fn create(url: &str) -> Result<BenchSchema> {
        use sqlx::Connection;
        let name = format!("onshi_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        )))
        .execute(&mut conn)
        .await?;
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok(BenchSchema {
            url: format!("{url}{sep}options[search_path]={name}"),
            name,
            admin: url.to_string(),
        })
    }

    pub async fn drop_schema(self) -> Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// A terminal enrolled at `base`, a healthy first report, then (once the evaluator took its
/// account baseline) a report in which its linkage account's password changed: a critical
/// alert, mailed to the clinic and the desk.
/// The open linkage alert of `terminal` (see [`report_broken_linkage`]).
pub async fn linkage_alert(
    store: &std::sync::Arc<dyn onshi_server::store::Store>,
    terminal: uuid::Uuid,
) -> Result<onshi_server::domain::Alert> {
    store
        .alerts()
        .active_alerts(Some(&[terminal]))
        .await?
        .into_iter()
        .find(|a| a.rule == onshi_server::domain::RuleKey::ProtectedAccountLinkage)
        .with_context(|| format!("no linkage alert on {terminal}"))
}

pub async fn report_broken_linkage(
    client: &reqwest::Client,
    base: &str,
    store: &std::sync::Arc<dyn onshi_server::store::Store>,
    code: &str,
    hostname: &str,
) -> Result<uuid::Uuid> {
    let enrolled = enroll(client, base, code, hostname).await?;
    let send = |seq: u64, at: chrono::DateTime<chrono::Utc>, events: Vec<onshi_shared::Event>| {
        let mut snapshot = onshi_shared::sample::snapshot_at(at);
        snapshot.hostname = hostname.into();
        let mut report = onshi_shared::sample::report_with(seq, snapshot);
        report.agent_id = enrolled.agent_id;
        report.events = events;
        client
            .post(format!("{base}/api/v1/report"))
            .bearer_auth(&enrolled.token)
            .json(&report)
            .send()
    };
    send(
        1,
        chrono::Utc::now() - chrono::Duration::minutes(1),
        Vec::new(),
    )
    .await?
    .error_for_status()?;
    wait_for("the account baseline", Duration::from_secs(30), || async {
        let b = store
            .fleet()
            .terminal_baseline(enrolled.agent_id)
            .await
            .ok()??;
        b.taken_at
    })
    .await?;
    let now = chrono::Utc::now();
    let changed = onshi_shared::Event::new(
        now,
        onshi_shared::EventKind::AccountChanged {
            role: onshi_shared::AccountRole::Linkage,
            name: "renkei".into(),
            change: onshi_shared::AccountChange::PasswordChanged,
        },
    );
    send(2, now, vec![changed]).await?.error_for_status()?;
    Ok(enrolled.agent_id)
}
