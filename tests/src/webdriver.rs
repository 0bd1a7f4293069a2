//! A small W3C WebDriver client for browser tests: `chromedriver` on a loopback port as a
//! [`Proc`], one headless Chromium session with a fresh profile, and the handful of commands the
//! dashboard tests use. Plain HTTP + JSON over reqwest; nothing here talks to anything but
//! 127.0.0.1.
//!
//! Errors say which command failed and what WebDriver answered (its `error` code and
//! `message`); [`WebDriverError`] can be downcast from the `anyhow::Error` to branch on the code.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{Proc, free_port};

/// The key W3C WebDriver uses for element references (WebDriver §12.1 "web element
/// identifier"; chromedriver answers with exactly this key).
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian's `chromium-driver` and `chromium` packages put the binaries.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// What to install when the browser is missing (Debian package names, as `.ci/run` installs).
pub const INSTALL_HINT: &str = "install the Debian packages chromium chromium-driver \
    fonts-noto-cjk (apt-get install -y chromium chromium-driver fonts-noto-cjk, as .ci/run does)";

/// An error answer from WebDriver: the command, the HTTP status and WebDriver's error code
/// (e.g. `no such element`, `no such alert`) and message.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub command: String,
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebDriver {}: {} (HTTP {}): {}",
            self.command, self.error, self.status, self.message
        )
    }
}

impl std::error::Error for WebDriverError {}

/// The WebDriver error code of `err`, when it is a [`WebDriverError`].
pub fn error_code(err: &anyhow::Error) -> Option<&str> {
    err.downcast_ref::<WebDriverError>()
        .map(|e| e.error.as_str())
}

/// A reference to an element in the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub id: String,
}

impl Element {
    /// The element as a script argument.
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// How to start the browser.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Window size in CSS pixels.
    pub width: u32,
    pub height: u32,
    /// Where chromedriver writes its log (kept after the test, unlike the profile). `None`: in
    /// the temporary profile directory.
    pub log_file: Option<PathBuf>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            width: 1400,
            height: 1000,
            log_file: None,
        }
    }
}

/// `chromedriver` on PATH or at /usr/bin/chromedriver.
pub fn chromedriver_path() -> Option<PathBuf> {
    find_binary("chromedriver", CHROMEDRIVER)
}

/// `/usr/bin/chromium`, else `chromium` on PATH.
pub fn chromium_path() -> Option<PathBuf> {
    find_binary("chromium", CHROMIUM)
}

fn find_binary(name: &str, usual: &str) -> Option<PathBuf> {
    let usual = PathBuf::from(usual);
    if usual.is_file() {
        return Some(usual);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Chromium switches every test session runs with.
fn chromium_args(profile: &Path, launch: &Launch) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--disable-dev-shm-usage".into(),
        "--no-first-run".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-quic".into(),
        format!("--window-size={},{}", launch.width, launch.height),
        format!("--user-data-dir={}", profile.display()),
    ]
}

/// chromedriver with one headless Chromium session. Dropping it ends the session (Chromium
/// quits) and kills chromedriver; [`Browser::quit`] does the same and reports errors.
pub struct Browser {
    client: reqwest::Client,
    port: u16,
    base: String,
    session: String,
    ended: bool,
    log_file: PathBuf,
    // Dropped in this order: the session is deleted in `drop`, then chromedriver is killed,
    // then the profile directory is removed.
    driver: Proc,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("base", &self.base)
            .field("session", &self.session)
            .finish()
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port, waits until it is ready and opens a
    /// session of headless Chromium with a fresh profile.
    pub async fn start(launch: Launch) -> Result<Browser> {
        let driver_bin = chromedriver_path().with_context(|| {
            format!("chromedriver not found (looked at {CHROMEDRIVER} and PATH): {INSTALL_HINT}")
        })?;
        let chromium = chromium_path().with_context(|| {
            format!("chromium not found (looked at {CHROMIUM} and PATH): {INSTALL_HINT}")
        })?;
        // reqwest is built without a default TLS provider; loopback HTTP needs none, but the
        // client builder insists on one being installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let profile = tempfile::Builder::new()
            .prefix("onshi-chromium-")
            .tempdir()
            .context("creating the Chromium profile directory")?;
        let log_file = launch
            .log_file
            .clone()
            .unwrap_or_else(|| profile.path().join("chromedriver.log"));
        if let Some(dir) = log_file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let port = free_port();
        let mut driver = Proc::spawn(
            "chromedriver",
            Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log_file.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .with_context(|| format!("starting {}", driver_bin.display()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .no_proxy()
            .build()
            .context("building the WebDriver HTTP client")?;
        let base = format!("http://127.0.0.1:{port}");

        // GET /status until chromedriver says it is ready.
        let started = Instant::now();
        loop {
            if !driver.is_running() {
                bail!(
                    "chromedriver exited during startup; its log ({}):\n{}",
                    log_file.display(),
                    log_tail(&log_file)
                );
            }
            let ready = match client.get(format!("{base}/status")).send().await {
                Ok(resp) => resp
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["value"]["ready"].as_bool())
                    .unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "chromedriver on port {port} not ready after 30 s; its log ({}):\n{}",
                    log_file.display(),
                    log_tail(&log_file)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    // Leave an unexpected alert() open so a test can see it.
                    "unhandledPromptBehavior": "ignore",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 10_000 },
                    "goog:chromeOptions": {
                        "binary": chromium.to_string_lossy(),
                        "args": chromium_args(profile.path(), &launch),
                    }
                }
            }
        });
        let created = send(
            "new session",
            client.post(format!("{base}/session")).json(&capabilities),
        )
        .await
        .with_context(|| {
            format!(
                "starting {} through chromedriver; its log ({}):\n{}",
                chromium.display(),
                log_file.display(),
                log_tail(&log_file)
            )
        })?;
        let session = created["sessionId"]
            .as_str()
            .with_context(|| format!("new session: no sessionId in {created}"))?
            .to_string();
        let browser = Browser {
            client,
            port,
            base,
            session,
            ended: false,
            log_file,
            driver,
            _profile: profile,
        };
        browser.set_window_rect(launch.width, launch.height).await?;
        Ok(browser)
    }

    /// chromedriver's log file.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The session id, e.g. for raw commands in a test.
    pub fn session_id(&self) -> &str {
        &self.session
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    async fn get(&self, command: &str, path: &str) -> Result<Value> {
        send(command, self.client.get(self.url(path))).await
    }

    async fn post(&self, command: &str, path: &str, body: Value) -> Result<Value> {
        send(command, self.client.post(self.url(path)).json(&body)).await
    }

    /// Navigates and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post(&format!("navigate to {url}"), "/url", json!({ "url": url }))
            .await
            .map(drop)
    }

    pub async fn current_url(&self) -> Result<String> {
        let v = self.get("get current url", "/url").await?;
        string(v, "get current url")
    }

    pub async fn title(&self) -> Result<String> {
        let v = self.get("get title", "/title").await?;
        string(v, "get title")
    }

    /// The page's serialised DOM.
    pub async fn source(&self) -> Result<String> {
        let v = self.get("get page source", "/source").await?;
        string(v, "get page source")
    }

    /// The first element matching a CSS selector (error `no such element` when none does).
    pub async fn find(&self, css: &str) -> Result<Element> {
        let command = format!("find element {css:?}");
        let v = self.post(&command, "/element", by_css(css)).await?;
        element(&v, &command)
    }

    /// The first match, or `None`.
    pub async fn try_find(&self, css: &str) -> Result<Option<Element>> {
        match self.find(css).await {
            Ok(e) => Ok(Some(e)),
            Err(e) if error_code(&e) == Some("no such element") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every element matching a CSS selector, in document order.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let command = format!("find elements {css:?}");
        let v = self.post(&command, "/elements", by_css(css)).await?;
        elements(&v, &command)
    }

    /// The first descendant of `parent` matching a CSS selector.
    pub async fn find_in(&self, parent: &Element, css: &str) -> Result<Element> {
        let command = format!("find element {css:?} in element");
        let path = format!("/element/{}/element", parent.id);
        let v = self.post(&command, &path, by_css(css)).await?;
        element(&v, &command)
    }

    /// Every descendant of `parent` matching a CSS selector.
    pub async fn find_all_in(&self, parent: &Element, css: &str) -> Result<Vec<Element>> {
        let command = format!("find elements {css:?} in element");
        let path = format!("/element/{}/elements", parent.id);
        let v = self.post(&command, &path, by_css(css)).await?;
        elements(&v, &command)
    }

    /// Polls for an element until `timeout`.
    pub async fn wait_for_element(&self, css: &str, timeout: Duration) -> Result<Element> {
        let start = Instant::now();
        loop {
            if let Some(e) = self.try_find(css).await? {
                return Ok(e);
            }
            if start.elapsed() > timeout {
                let url = self.current_url().await.unwrap_or_default();
                bail!("no element {css:?} on {url} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element (scrolling it into view); waits for a navigation the click starts.
    pub async fn click(&self, e: &Element) -> Result<()> {
        self.post(
            "element click",
            &format!("/element/{}/click", e.id),
            json!({}),
        )
        .await
        .map(drop)
    }

    pub async fn clear(&self, e: &Element) -> Result<()> {
        self.post(
            "element clear",
            &format!("/element/{}/clear", e.id),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// Types `text` into an element.
    pub async fn send_keys(&self, e: &Element, text: &str) -> Result<()> {
        self.post(
            "element send keys",
            &format!("/element/{}/value", e.id),
            json!({ "text": text }),
        )
        .await
        .map(drop)
    }

    /// The element's rendered (visible) text.
    pub async fn text(&self, e: &Element) -> Result<String> {
        let v = self
            .get("get element text", &format!("/element/{}/text", e.id))
            .await?;
        string(v, "get element text")
    }

    /// An HTML attribute, `None` when absent.
    pub async fn attribute(&self, e: &Element, name: &str) -> Result<Option<String>> {
        let command = format!("get element attribute {name:?}");
        let v = self
            .get(&command, &format!("/element/{}/attribute/{name}", e.id))
            .await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// A DOM property (e.g. `value`), as JSON.
    pub async fn property(&self, e: &Element, name: &str) -> Result<Value> {
        let command = format!("get element property {name:?}");
        self.get(&command, &format!("/element/{}/property/{name}", e.id))
            .await
    }

    /// Runs a synchronous script (`return ...;`) with `args` (elements via
    /// [`Element::to_json`]) and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.post(
            "execute script",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The text of the open alert/confirm/prompt dialog, `None` when there is none.
    pub async fn alert_text(&self) -> Result<Option<String>> {
        match self.get("get alert text", "/alert/text").await {
            Ok(v) => Ok(Some(v.as_str().unwrap_or_default().to_string())),
            Err(e) if error_code(&e) == Some("no such alert") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.get("take screenshot", "/screenshot").await?;
        let b64 = v
            .as_str()
            .with_context(|| format!("take screenshot: no base64 string in {v}"))?;
        base64_decode(b64).context("take screenshot: decoding base64")
    }

    /// Takes a screenshot and writes it to `path` (creating its directory); returns the PNG.
    pub async fn save_screenshot(&self, path: &Path) -> Result<Vec<u8>> {
        let png = self.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, &png).with_context(|| format!("writing {}", path.display()))?;
        Ok(png)
    }

    /// Sets the window's outer size.
    pub async fn set_window_rect(&self, width: u32, height: u32) -> Result<()> {
        self.post(
            "set window rect",
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await
        .map(drop)
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn quit(mut self) -> Result<()> {
        self.ended = true;
        let url = format!("{}/session/{}", self.base, self.session);
        let result = send("delete session", self.client.delete(url)).await;
        self.driver.kill()?;
        result.map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.ended {
            // No runtime to await on here: a plain blocking HTTP/1.1 request to loopback, so
            // Chromium quits before chromedriver is killed.
            delete_session_blocking(self.port, &self.session);
        }
    }
}

fn delete_session_blocking(port: u16, session: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // chromedriver answers once the browser is gone (and keeps the connection open): the end
    // of the answer's head is enough.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn by_css(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

/// Sends one command; returns the answer's `value`, or a [`WebDriverError`].
async fn send(command: &str, request: reqwest::RequestBuilder) -> Result<Value> {
    let resp = request
        .send()
        .await
        .with_context(|| format!("WebDriver {command}: sending the request"))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .with_context(|| format!("WebDriver {command}: reading the answer"))?;
    let parsed: Value = serde_json::from_str(&body).with_context(|| {
        format!(
            "WebDriver {command}: HTTP {status}, not JSON: {}",
            truncate(&body, 500)
        )
    })?;
    let mut value = match parsed {
        Value::Object(mut map) => map.remove("value").unwrap_or(Value::Null),
        other => bail!("WebDriver {command}: HTTP {status}, unexpected answer {other}"),
    };
    let error = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    if !status.is_success() || error.is_some() {
        let message = value
            .get_mut("message")
            .map(Value::take)
            .and_then(|m| m.as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(WebDriverError {
            command: command.to_string(),
            status: status.as_u16(),
            error: error.unwrap_or_else(|| "unknown error".into()),
            message: truncate(&message, 2000),
        }
        .into());
    }
    Ok(value)
}

fn string(v: Value, command: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s),
        other => bail!("WebDriver {command}: expected a string, got {other}"),
    }
}

fn element(v: &Value, command: &str) -> Result<Element> {
    let id = v[ELEMENT_KEY]
        .as_str()
        .with_context(|| format!("WebDriver {command}: no element reference in {v}"))?;
    Ok(Element { id: id.to_string() })
}

fn elements(v: &Value, command: &str) -> Result<Vec<Element>> {
    v.as_array()
        .with_context(|| format!("WebDriver {command}: expected a list, got {v}"))?
        .iter()
        .map(|e| element(e, command))
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The last 40 lines of a log file (for startup errors).
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// Decodes standard base64 (RFC 4648, `+/`, `=` padding); whitespace is ignored.
pub fn base64_decode(input: &str) -> Result<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes: Vec<u8> = input.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let data = match bytes.iter().position(|&b| b == b'=') {
        Some(pad) => {
            if bytes[pad..].iter().any(|&b| b != b'=') || bytes.len() - pad > 2 {
                bail!("base64: bad padding");
            }
            if !bytes.len().is_multiple_of(4) {
                bail!(
                    "base64: padded length {} is not a multiple of 4",
                    bytes.len()
                );
            }
            &bytes[..pad]
        }
        None => &bytes[..],
    };
    if data.len() % 4 == 1 {
        bail!("base64: truncated input ({} symbols)", data.len());
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = sextet(c).with_context(|| format!("base64: invalid byte {c:#04x}"))?;
            acc |= v << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.push(a);
        if chunk.len() > 2 {
            out.push(b);
        }
        if chunk.len() > 3 {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        // RFC 4648 §10.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes(), "{enc}");
        }
        assert_eq!(
            base64_decode("iVBORw0K\nGgo=").unwrap(),
            b"\x89PNG\r\n\x1a\n"
        );
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(base64_decode("Zm9v!").is_err());
        assert!(base64_decode("Zg=a").is_err());
        assert!(base64_decode("Z").is_err());
    }
}
