//! A staff member signed in to the dashboard over real HTTP: the session cookie on every
//! request, no redirects followed (tests look at them).

use reqwest::StatusCode;

/// The password the test kit gives the staff it creates.
pub const STAFF_PASSWORD: &str = "correct horse battery staple";

pub fn no_redirects() -> reqwest::Client {
    // reqwest is built without a TLS provider of its own: the process installs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
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

/// `POST /login` as a browser does it: the login page first (its form token and the cookie
/// that carries it), then the form. `None` while the server is not up.
pub async fn post_login(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> Option<reqwest::Response> {
    let page = client.get(format!("{base}/login")).send().await.ok()?;
    let cookie = session_cookie(&page)?;
    let csrf = csrf_of(&page.text().await.ok()?);
    client
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .form(&[
            ("username", user),
            ("password", password),
            ("next", "/"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .ok()
}

pub struct DeskClient {
    pub base: String,
    pub cookie: String,
    pub client: reqwest::Client,
}

impl DeskClient {
    /// `POST /login`; `None` while the server is not up or refuses the login.
    pub async fn login(base: &str, user: &str, password: &str) -> Option<DeskClient> {
        let client = no_redirects();
        let resp = post_login(&client, base, user, password).await?;
        if resp.status() != StatusCode::SEE_OTHER {
            return None;
        }
        let cookie = session_cookie(&resp)?;
        Some(DeskClient {
            base: base.to_string(),
            cookie,
            client,
        })
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// The page at `path`; fails the test unless it answers 200.
    pub async fn page(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.text().await.unwrap()
    }

    /// The page at `path`, or `None` when it did not answer 200 (while waiting for it).
    pub async fn try_page(&self, path: &str) -> Option<String> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .ok()?;
        if resp.status() != StatusCode::OK {
            return None;
        }
        resp.text().await.ok()
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
