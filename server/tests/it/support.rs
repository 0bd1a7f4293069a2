//! One way to start the server for a test: [`TestApp`], on a fresh SQLite database in a
//! temporary directory (or a fresh PostgreSQL schema with `ONSHI_TEST_ENGINE=postgres`), on a random loopback port, with one clinic and its enrollment code,
//! and a helper per endpoint.

use std::sync::Arc;

use chrono::Utc;
use onshi_server::desk::Desk;
use onshi_server::domain::{Actor, Role};
use onshi_server::store::Store;
use onshi_server::{Application, Config};
use onshi_shared::{EnrollRequest, EnrollResponse, Report, SCHEMA_VERSION};
use onshi_testkit::DeskClient;
use onshi_testkit::desk::STAFF_PASSWORD;
use reqwest::StatusCode;
use tokio::sync::oneshot;

/// The `[metrics] token` of every test server.
pub const METRICS_TOKEN: &str = "metrics-token-for-tests";

/// Defaults, a database in `dir`, and a random loopback port.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    };
    config.metrics.token = Some(METRICS_TOKEN.into());
    config
}

/// Who sets up a test's clinics and staff.
pub fn actor() -> Actor {
    Actor::CommandLine {
        os_user: "test".into(),
    }
}

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    /// The running server's desk: its changes wake the server's evaluator.
    pub desk: Desk,
    pub client: reqwest::Client,
    pub clinic_id: i64,
    pub code: String,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), onshi_server::Error>>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A server whose configuration `tune` adjusts first.
    pub async fn spawn_with(tune: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_in(tempfile::tempdir().unwrap(), tune).await
    }

    /// A server on the database in `dir` (a restart when it already holds one): the clinic
    /// 「さくら内科クリニック」 is made when missing, and a new code issued for it.
    pub async fn spawn_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut Config)) -> TestApp {
        onshi_server::install_crypto_provider();
        let mut config = test_config(dir.path());
        if onshi_testkit::pg::enabled() {
            config.database_url = Some(onshi_testkit::pg::url_for_dir(dir.path()).await);
        }
        config.revocation_check_secs = 1;
        config.alerts.debounce_ms = 20;
        tune(&mut config);
        let app = Application::build(config).await.unwrap();
        let addr = app.local_addr().unwrap();
        let store = app.store();
        let desk = app.desk();
        let now = Utc::now();
        let clinic_id = match store.clinic_by_name("さくら内科クリニック").await.unwrap()
        {
            Some(c) => c.id,
            None => {
                desk.add_clinic(&actor(), "さくら内科クリニック", "sakura@example.jp", now)
                    .await
                    .unwrap()
                    .id
            }
        };
        let code = desk.issue_code(&actor(), clinic_id, now).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            store,
            desk,
            client: reqwest::Client::new(),
            clinic_id,
            code,
            dir,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// `POST /api/v1/enroll` with the clinic's code; must succeed.
    pub async fn enroll(&self, hostname: &str) -> EnrollResponse {
        self.enroll_with(&self.code, hostname).await
    }

    pub async fn enroll_with(&self, code: &str, hostname: &str) -> EnrollResponse {
        let resp = self.post_enroll(code, hostname).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    pub async fn post_enroll(&self, code: &str, hostname: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/enroll", self.base))
            .json(&EnrollRequest {
                schema: SCHEMA_VERSION,
                code: code.into(),
                hostname: hostname.into(),
                agent_version: "0.1.0".into(),
                os: "test".into(),
            })
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/v1/report` with a raw body.
    pub async fn post_raw(&self, token: &str, body: Vec<u8>, gzip: bool) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/api/v1/report", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json");
        if gzip {
            req = req.header("content-encoding", "gzip");
        }
        req.body(body).send().await.unwrap()
    }

    pub async fn post_report(&self, token: &str, report: &Report) -> reqwest::Response {
        self.post_raw(token, serde_json::to_vec(report).unwrap(), false)
            .await
    }

    /// A report that must be accepted.
    pub async fn report(&self, agent: &EnrollResponse, report: &Report) {
        let resp = self.post_report(&agent.token, report).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            resp.text().await.unwrap()
        );
    }

    /// A first, healthy report a minute ago, and the evaluator's account baseline from it:
    /// what a terminal has before a change can alert. Returns the next free seq.
    pub async fn baselined(&self, agent: &EnrollResponse, hostname: &str) -> u64 {
        let then = chrono::Utc::now() - chrono::Duration::minutes(1);
        let mut first = onshi_testkit::reports::report_at(then, hostname);
        first.agent_id = agent.agent_id;
        first.seq = 1;
        self.report(agent, &first).await;
        onshi_testkit::wait_for(
            "the account baseline",
            std::time::Duration::from_secs(15),
            || async {
                let b = self.store.fleet().terminal_baseline(agent.agent_id).await;
                b.ok().flatten().and_then(|b| b.taken_at)
            },
        )
        .await
        .unwrap();
        2
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `GET /metrics` with the metrics token.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Signs in through `POST /login` as `name` (created with `role` when missing).
    pub async fn login(&self, name: &str, role: Role) -> DeskClient {
        if self
            .store
            .staff()
            .user_by_name(name)
            .await
            .unwrap()
            .is_none()
        {
            self.desk
                .add_user(
                    &actor(),
                    name,
                    role,
                    None,
                    Some(STAFF_PASSWORD.into()),
                    Utc::now(),
                )
                .await
                .unwrap();
        }
        DeskClient::login(&self.base, name, STAFF_PASSWORD)
            .await
            .expect("login")
    }

    /// Stops the server and hands back its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.dir
    }
}

/// The test server's database, for what a test does behind the server's back (ageing rows,
/// undoing a migration): statements written for both engines.
pub enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawDb {
    /// Runs a statement; the rows it touched.
    pub async fn exec(&self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            RawDb::Sqlite(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
            RawDb::Postgres(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
        }
    }

    /// The one integer a query returns.
    pub async fn int(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            RawDb::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            RawDb::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }
}

impl TestApp {
    /// A connection pool of its own on the server's database.
    pub async fn raw_db(&self) -> RawDb {
        if onshi_testkit::pg::enabled() {
            let url = onshi_testkit::pg::url_for_dir(self.dir()).await;
            RawDb::Postgres(sqlx::PgPool::connect(&url).await.unwrap())
        } else {
            let url = format!("sqlite://{}", self.dir().join("onshi.db").display());
            RawDb::Sqlite(sqlx::SqlitePool::connect(&url).await.unwrap())
        }
    }
}

/// Waits until the page at `path` shows `needle` (the evaluator runs beside the request).
pub async fn page_showing(desk: &DeskClient, path: &str, needle: &str) -> String {
    onshi_testkit::wait_for(
        &format!("{path} to show {needle:?}"),
        std::time::Duration::from_secs(15),
        || async { desk.try_page(path).await.filter(|p| p.contains(needle)) },
    )
    .await
    .unwrap()
}

/// The sample report as `agent` sends it, collected now.
pub fn report_for(agent: &EnrollResponse, seq: u64) -> Report {
    use chrono::SubsecRound;
    let mut r = onshi_shared::sample::report(seq);
    r.agent_id = agent.agent_id;
    // The store keeps milliseconds.
    r.snapshot.collected_at = Utc::now().trunc_subsecs(3);
    r
}
