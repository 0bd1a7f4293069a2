//! Shared by the server's integration tests.
#![allow(dead_code)]

pub mod smtp;

use onshi_server::Config;
use onshi_server::config::{DbArgs, FileConfig};

/// Defaults, a database in `dir`, and a random loopback port.
pub fn test_config(dir: &std::path::Path) -> Config {
    let args = DbArgs {
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Config::resolve(FileConfig::default(), &args, Some(listen))
        .expect("the default configuration resolves")
}

/// A server running in this process on a random port, with one clinic and its enrollment code.
pub struct Started {
    pub base: String,
    pub store: std::sync::Arc<dyn onshi_server::store::Store>,
    pub code: String,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub server: tokio::task::JoinHandle<Result<(), onshi_server::Error>>,
}

/// Builds the application from `config`, adds the clinic 「さくら内科クリニック」 with a code, and
/// serves until `stop` fires.
pub async fn start(config: Config) -> Started {
    onshi_server::install_crypto_provider();
    let app = onshi_server::Application::build(config)
        .await
        .expect("the application builds");
    let addr = app.local_addr().expect("bound");
    let store = app.store();
    let now = chrono::Utc::now();
    let clinic = store
        .create_clinic("さくら内科クリニック", "sakura@example.jp", now)
        .await
        .expect("clinic created");
    let code = onshi_server::enroll::issue_code(store.as_ref(), &clinic, now, 30)
        .await
        .expect("code issued");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Started {
        base: format!("http://{addr}"),
        store,
        code,
        stop,
        server,
    }
}

/// A staff member signed in to the dashboard: sends the session cookie, follows no redirects
/// (tests look at them).
pub struct Desk {
    pub base: String,
    pub cookie: String,
    pub client: reqwest::Client,
}

pub const STAFF_PASSWORD: &str = "correct horse battery staple";

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Creates `name` with `role` (if missing) and logs in through `POST /login`.
pub async fn desk_login(
    store: &dyn onshi_server::store::Store,
    base: &str,
    name: &str,
    role: onshi_server::store::desk::Role,
) -> Desk {
    if store.desk().user_by_name(name).await.unwrap().is_none() {
        onshi_server::auth::add_user(
            store,
            name,
            role,
            Some(STAFF_PASSWORD.into()),
            chrono::Utc::now(),
        )
        .await
        .expect("user created");
    }
    let client = no_redirects();
    let resp = client
        .post(format!("{base}/login"))
        .form(&[
            ("username", name),
            ("password", STAFF_PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::SEE_OTHER, "login");
    let cookie = session_cookie(&resp).expect("a session cookie");
    Desk {
        base: base.to_string(),
        cookie,
        client,
    }
}

/// `name=value` of the Set-Cookie header.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    let set = resp.headers().get("set-cookie")?.to_str().ok()?;
    Some(set.split(';').next()?.to_string())
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

impl Desk {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    pub async fn page(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET {path}");
        resp.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Posts a form with the session's CSRF token (read from `/`).
    pub async fn post_csrf(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let csrf = csrf_of(&self.page("/").await);
        let mut fields: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }
}
