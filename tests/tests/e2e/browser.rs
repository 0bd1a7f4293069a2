//! The support desk's dashboard in a real browser: the real server binary, a clinic and a staff
//! user made with its CLI, two terminals reporting over HTTP, and headless Chromium driven
//! through chromedriver. Login; the overview (each row names its problems; a hostile hostname
//! shows as text and runs nothing); a terminal page; acknowledging an alert from its row's menu
//! with a Japanese note; a bulk action on the checked alerts; issuing a labelled enrollment code
//! and revoking it through its confirmation step; the audit log and a sent mail; logout.
//! Screenshots of each page at 1,400 px and at 390 px (a phone) are kept as test artifacts.
//!
//! Needs the Debian packages chromium, chromium-driver and fonts-noto-cjk (`.ci/run` installs
//! them); without chromedriver the test fails and says so.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, SubsecRound, Utc};
use onshi_e2e::webdriver::{self, Browser, Element, Launch};
use onshi_e2e::{Proc, binary, enroll, free_port, json_reply, wait_for};
use onshi_server::domain::AlertStatus;
use onshi_server::store::connect;
use onshi_shared::{EnrollResponse, Report, ReportAck, SCHEMA_VERSION, sample};
use serde_json::{Value, json};
use uuid::Uuid;

const CLINIC: &str = "<b>山田医院</b>";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple 42";
const HEALTHY: &str = "OQS-PC-0001";
const HOSTILE: &str = "<script>alert(1)</script>";
const NOTE: &str = "電話で確認済み";

/// Full rule passes every second; a report interval long enough that nobody goes offline
/// while the test runs.
const SERVER_CONFIG: &str = r#"
[policy]
interval_secs = 600
[alerts]
evaluate_every_secs = 1
"#;

/// Where screenshots go: `$ONSHI_TEST_ARTIFACTS`, else `target/test-artifacts/browser/`.
fn artifacts_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("ONSHI_TEST_ARTIFACTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/browser"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn server(data: &Path) -> Result<Command> {
    let mut cmd = Command::new(binary("onshi-server")?);
    onshi_e2e::database_args(&mut cmd, data);
    cmd.args(["--log", "warn"]);
    Ok(cmd)
}

/// Runs a CLI command to completion, with `stdin` written to it; its stdout.
fn run(what: &str, cmd: &mut Command, stdin: &str) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .with_context(|| format!("writing to {what}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    if !stdin.is_empty() {
        ensure!(
            !stdout.contains(stdin.trim()) && !stderr.contains(stdin.trim()),
            "{what} echoed what it read from stdin"
        );
    }
    Ok(stdout)
}

/// The sample snapshot moved to `now`: booted 5 h ago, certificate valid for two more years.
fn snapshot_at(hostname: &str, now: DateTime<Utc>) -> onshi_shared::Snapshot {
    let mut s = sample::snapshot();
    s.collected_at = now;
    s.hostname = hostname.into();
    s.uptime.last_boot = now - chrono::Duration::hours(5);
    s.uptime.last_start = s.uptime.last_boot;
    for cert in &mut s.certificates.certs {
        cert.not_before = now - chrono::Duration::days(400);
        cert.not_after = now + chrono::Duration::days(787);
    }
    for account in &mut s.accounts.accounts {
        account.password_last_set = Some(now - chrono::Duration::days(200));
    }
    s
}

async fn report(
    client: &reqwest::Client,
    base: &str,
    agent: &EnrollResponse,
    snapshot: onshi_shared::Snapshot,
) -> Result<ReportAck> {
    let report = Report {
        schema: SCHEMA_VERSION,
        agent_id: agent.agent_id,
        seq: 1,
        sent_at: snapshot.collected_at,
        snapshot,
        events: Vec::new(),
    };
    let resp = client
        .post(format!("{base}/api/v1/report"))
        .bearer_auth(&agent.token)
        .json(&report)
        .send()
        .await
        .context("POST /api/v1/report")?;
    json_reply(resp, "report").await
}

/// The path (and query) of `url` on the server at `base`.
fn path_of<'a>(url: &'a str, base: &str) -> Result<&'a str> {
    url.strip_prefix(base)
        .with_context(|| format!("the browser left the server: {url}"))
}

/// Polls `check` until it gives `Some`. A page that reloads under a poll is retried; any other
/// WebDriver error ends the wait at once.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) if webdriver::error_code(&e) == Some("stale element reference") => {}
            Err(e) => return Err(e.context(format!("while waiting for {what}"))),
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_path(browser: &Browser, base: &str, want: &str) -> Result<String> {
    poll(
        &format!("the browser at {want}"),
        Duration::from_secs(15),
        || async {
            let url = browser.current_url().await?;
            let path = path_of(&url, base)?;
            let bare = path.split(['?', '#']).next().unwrap_or(path);
            Ok((bare == want).then(|| path.to_string()))
        },
    )
    .await
}

/// No alert()/confirm() dialog is open: nothing the page was given ran as script.
async fn assert_no_dialog(browser: &Browser, page: &str) -> Result<()> {
    if let Some(text) = browser.alert_text().await? {
        bail!("{page}: a JavaScript dialog is open ({text:?}): injected script ran");
    }
    Ok(())
}

/// Hostile names are text on the page: every `<script>` is an external file, and no `<b>` came
/// from the clinic name.
async fn assert_no_injection(browser: &Browser, page: &str) -> Result<()> {
    assert_no_dialog(browser, page).await?;
    let scripts = browser
        .execute(
            "return { all: document.querySelectorAll('script').length, \
                      with_src: document.querySelectorAll('script[src]').length, \
                      external: Array.from(document.scripts).every(s => s.src) };",
            vec![],
        )
        .await?;
    ensure!(
        scripts["external"] == json!(true) && scripts["all"] == scripts["with_src"],
        "{page}: an inline <script> is in the page: {scripts}"
    );
    let bold_clinic = browser
        .execute(
            "return Array.from(document.querySelectorAll('b'))\
                 .some(b => b.textContent.includes('山田医院'));",
            vec![],
        )
        .await?;
    ensure!(
        bold_clinic == json!(false),
        "{page}: the clinic name's <b> became markup"
    );
    let body = browser.text(&browser.find("body").await?).await?;
    if body.contains("山田医院") {
        ensure!(
            body.contains(CLINIC),
            "{page}: the clinic name is not shown literally as {CLINIC:?}"
        );
    }
    Ok(())
}

async fn screenshot(browser: &Browser, dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let png = browser.save_screenshot(&path).await?;
    ensure!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
    ensure!(
        png.len() > 10 * 1024,
        "{name} is only {} bytes: an empty page?",
        png.len()
    );
    println!("screenshot: {} ({} bytes)", path.display(), png.len());
    Ok(path)
}

/// The page at a desk's width and at a phone's (390 px), then back to the desk's.
async fn screenshots(browser: &Browser, dir: &Path, name: &str) -> Result<PathBuf> {
    let wide = screenshot(browser, dir, &format!("{name}.png")).await?;
    browser.set_window_rect(390, 844).await?;
    let overflow = browser
        .execute(
            "return document.querySelector('header.top').scrollWidth > window.innerWidth + 2;",
            vec![],
        )
        .await?;
    ensure!(
        overflow == json!(false),
        "{name}: the header is wider than a phone's screen"
    );
    screenshot(browser, dir, &format!("{name}-390.png")).await?;
    browser.set_window_rect(1400, 900).await?;
    Ok(wide)
}

async fn text_of(browser: &Browser, css: &str) -> Result<String> {
    browser.text(&browser.find(css).await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_support_desk_logs_in_reads_the_fleet_and_acknowledges_an_alert() -> Result<()> {
    // Fail, never skip, without the browser.
    if webdriver::chromedriver_path().is_none() || webdriver::chromium_path().is_none() {
        bail!(
            "this test drives headless Chromium and needs /usr/bin/chromedriver and \
             /usr/bin/chromium: {}",
            webdriver::INSTALL_HINT
        );
    }
    onshi_server::install_crypto_provider();
    let artifacts = artifacts_dir()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, SERVER_CONFIG)?;

    // A clinic and a staff user, through the CLI.
    let out = run(
        "onshi-server clinic add",
        server(&data)?.arg("--config").arg(&config).args([
            "clinic",
            "add",
            CLINIC,
            "--email",
            "clinic@example.invalid",
        ]),
        "",
    )?;
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("enrollment code: "))
        .with_context(|| format!("no enrollment code printed:\n{out}"))?
        .trim()
        .to_string();
    run(
        "onshi-server user add",
        server(&data)?.arg("--config").arg(&config).args([
            "user",
            "add",
            USER,
            "--role",
            "admin",
            "--password-stdin",
        ]),
        &format!("{PASSWORD}\n"),
    )?;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = Proc::spawn(
        "onshi-server serve",
        server(&data)?
            .arg("--config")
            .arg(&config)
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}")),
    )?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    wait_for("server health", Duration::from_secs(30), || {
        let req = client.get(format!("{base}/healthz")).send();
        async move { req.await.ok().filter(|r| r.status().is_success()) }
    })
    .await?;

    // Two terminals: one healthy, one with a hostile hostname whose certificate expires in 5
    // days and that has not restarted for 3 days (both critical, both certain to fire).
    let now = Utc::now().trunc_subsecs(3);
    let healthy = enroll(&client, &base, &code, HEALTHY).await?;
    let hostile = enroll(&client, &base, &code, HOSTILE).await?;
    report(&client, &base, &healthy, snapshot_at(HEALTHY, now)).await?;
    let mut broken = snapshot_at(HOSTILE, now);
    broken.uptime.last_boot = now - chrono::Duration::hours(75);
    broken.uptime.last_start = broken.uptime.last_boot;
    broken.uptime.uptime_secs = 75 * 3600;
    for cert in &mut broken.certificates.certs {
        cert.not_after = now + chrono::Duration::days(5);
    }
    report(&client, &base, &hostile, broken).await?;

    // The evaluator opens the alerts (a targeted pass ~0.5 s after the report, a full one
    // every second).
    let store = connect(&onshi_e2e::database_of(&data)?).await?;
    let alert_ids = wait_for(
        "the evaluator to open the certificate alert",
        Duration::from_secs(30),
        || {
            let store = store.clone();
            async move {
                let alerts = store.alerts().active_alerts(None).await.ok()?;
                alerts
                    .iter()
                    .any(|a| {
                        a.terminal_id == hostile.agent_id
                            && a.rule == onshi_server::domain::RuleKey::CertExpiry
                    })
                    .then(|| alerts.iter().map(|a| a.id).collect::<Vec<_>>())
            }
        },
    )
    .await?;
    println!("open alerts: {alert_ids:?}");

    let browser = Browser::start(Launch {
        log_file: Some(artifacts.join("chromedriver.log")),
        ..Launch::default()
    })
    .await?;

    // Not logged in: the overview sends the browser to the login page.
    browser.goto(&format!("{base}/")).await?;
    wait_for_path(&browser, &base, "/login").await?;
    browser.find("form#login-form").await?;
    let username = browser.find("input#username").await?;
    browser.clear(&username).await?;
    browser.send_keys(&username, USER).await?;
    let password = browser.find("input#password").await?;
    browser.clear(&password).await?;
    browser.send_keys(&password, PASSWORD).await?;
    browser
        .click(&browser.find("button#login-submit").await?)
        .await?;
    assert_no_dialog(&browser, "after login").await?;
    poll(
        "the overview after login",
        Duration::from_secs(15),
        || async {
            if let Some(error) = browser.try_find("p.error").await? {
                let text = browser.text(&error).await?;
                if !text.trim().is_empty() {
                    bail!("login refused: {text}");
                }
            }
            let url = browser.current_url().await?;
            let at_overview = path_of(&url, &base)?.split(['?', '#']).next() == Some("/");
            Ok((at_overview && browser.try_find("table#terminals").await?.is_some()).then_some(()))
        },
    )
    .await?;

    // Overview: both terminals, the hostile name as text.
    let terminals = text_of(&browser, "table#terminals").await?;
    ensure!(
        terminals.contains(HEALTHY),
        "{HEALTHY} missing from table#terminals:\n{terminals}"
    );
    let body = text_of(&browser, "body").await?;
    ensure!(
        body.contains(HOSTILE),
        "the hostile hostname is not shown as text:\n{body}"
    );
    assert_no_injection(&browser, "overview").await?;
    // Each row names its problems; the header fits on one line at 1,024 px.
    let problems = poll("the problem labels", Duration::from_secs(15), || async {
        let mut all = String::new();
        for cell in browser.find_all("table#terminals td.problems").await? {
            all.push_str(&browser.text(&cell).await?);
            all.push(' ');
        }
        Ok((all.contains("証明書期限") && all.contains("再起動なし")).then_some(all))
    })
    .await?;
    println!("problems named in the overview: {problems}");
    browser.set_window_rect(1024, 768).await?;
    let header_height = browser
        .execute(
            "return document.querySelector('header.top').getBoundingClientRect().height;",
            vec![],
        )
        .await?;
    ensure!(
        header_height.as_f64().is_some_and(|h| h < 60.0),
        "the header wraps at 1,024 px: {header_height} px high"
    );
    browser.set_window_rect(1400, 900).await?;
    let overview_png = screenshots(&browser, &artifacts, "overview").await?;

    // The hostile terminal's page.
    let mut link: Option<(Element, String)> = None;
    for a in browser.find_all("a.terminal-link").await? {
        if browser.text(&a).await?.trim() == HOSTILE {
            let href = browser
                .attribute(&a, "href")
                .await?
                .context("a.terminal-link without href")?;
            link = Some((a, href));
            break;
        }
    }
    let (link, href) = link.context("no a.terminal-link with the hostile hostname as its text")?;
    let want = format!("/terminals/{}", hostile.agent_id);
    ensure!(
        href == want || href == format!("{base}{want}"),
        "the hostile terminal links to {href}, not {want}"
    );
    browser.click(&link).await?;
    let path = wait_for_path(&browser, &base, &want).await?;
    let id = path
        .trim_start_matches("/terminals/")
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    Uuid::parse_str(id).with_context(|| format!("terminal page {path}: no uuid"))?;
    browser
        .wait_for_element("svg#timeline", Duration::from_secs(10))
        .await?;
    browser.find("section#terminal-alerts").await?;
    assert_no_injection(&browser, "terminal page").await?;
    let legend = text_of(&browser, "#timeline-legend").await?;
    ensure!(legend.contains("再起動"), "the timeline's legend: {legend}");
    let terminal_png = screenshots(&browser, &artifacts, "terminal").await?;

    // Alerts: acknowledge the first one with a note.
    browser.goto(&format!("{base}/alerts")).await?;
    wait_for_path(&browser, &base, "/alerts").await?;
    browser.find("table#alerts").await?;
    let rows = browser.find_all("table#alerts tr[data-alert-id]").await?;
    let first = rows
        .first()
        .context("table#alerts has no tr[data-alert-id] although alerts are open")?;
    let alert_id = browser
        .attribute(first, "data-alert-id")
        .await?
        .context("data-alert-id without a value")?;
    let alert_id_num: i64 = alert_id
        .parse()
        .with_context(|| format!("data-alert-id {alert_id:?} is not a number"))?;
    let listed = store
        .alerts()
        .alert(alert_id_num)
        .await?
        .with_context(|| format!("alert row {alert_id} is not an alert in the store"))?;
    ensure!(
        listed.status == AlertStatus::Open,
        "the first alert row ({alert_id}) is {:?}, not open",
        listed.status
    );
    assert_no_injection(&browser, "alerts page").await?;
    // One compact line per alert: its actions wait in the row's menu.
    let row_height = browser
        .execute(
            "return document.querySelector('table#alerts tr[data-alert-id]').getBoundingClientRect().height;",
            vec![],
        )
        .await?;
    ensure!(
        row_height.as_f64().is_some_and(|h| h < 60.0),
        "an alert row is {row_height} px high"
    );
    browser
        .click(&browser.find_in(first, "details.row-menu summary").await?)
        .await?;
    let note = browser
        .find_in(first, "form.ack-form input[name=note]")
        .await?;
    browser.clear(&note).await?;
    browser.send_keys(&note, NOTE).await?;
    let typed = browser.property(&note, "value").await?;
    ensure!(
        typed == Value::String(NOTE.into()),
        "the note field holds {typed}"
    );
    browser
        .click(
            &browser
                .find_in(first, "form.ack-form button.ack-button")
                .await?,
        )
        .await?;
    let row_css = format!("table#alerts tr[data-alert-id=\"{alert_id}\"] td.status");
    let status = poll(
        "the alert row to show 確認済み",
        Duration::from_secs(15),
        || async {
            let Some(cell) = browser.try_find(&row_css).await? else {
                return Ok(None);
            };
            let text = browser.text(&cell).await?;
            Ok(text.contains("確認済み").then_some(text))
        },
    )
    .await?;
    println!("alert {alert_id}: {status}");
    let stored = store
        .alerts()
        .alert(alert_id_num)
        .await?
        .with_context(|| format!("alert {alert_id} gone from the store"))?;
    ensure!(
        stored.status == AlertStatus::Acknowledged,
        "alert {alert_id} is {:?} in the store",
        stored.status
    );
    ensure!(
        stored.ack_note.as_deref() == Some(NOTE),
        "alert {alert_id} stored the note {:?}",
        stored.ack_note
    );
    assert_no_dialog(&browser, "alerts page after acknowledging").await?;
    let alerts_png = screenshots(&browser, &artifacts, "alerts").await?;

    // A bulk action: check the other alerts and add a note to all of them at once.
    let mut checked = 0;
    for row in browser.find_all("table#alerts tr[data-alert-id]").await? {
        if browser.attribute(&row, "data-alert-id").await?.as_deref() == Some(alert_id.as_str()) {
            continue;
        }
        browser
            .click(&browser.find_in(&row, "input[name=ids]").await?)
            .await?;
        checked += 1;
    }
    ensure!(checked > 0, "no other alert to check");
    browser
        .click(
            &browser
                .find("form#bulk select[name=action] option[value=note]")
                .await?,
        )
        .await?;
    let bulk_note = browser.find("form#bulk input[name=note]").await?;
    browser.send_keys(&bulk_note, "まとめて確認").await?;
    browser
        .click(&browser.find("button#bulk-submit").await?)
        .await?;
    let done = poll(
        "the bulk action's result",
        Duration::from_secs(15),
        || async {
            let Some(p) = browser.try_find("p#bulk-done").await? else {
                return Ok(None);
            };
            Ok(Some(browser.text(&p).await?))
        },
    )
    .await?;
    ensure!(
        done.contains(&format!("{checked} 件のアラートにメモを追加しました")),
        "the bulk action says: {done}"
    );

    // A labelled enrollment code, its install commands, and revoking it in two steps.
    let clinic_id = store
        .clinic_by_name(CLINIC)
        .await?
        .context("the clinic")?
        .id;
    browser.goto(&format!("{base}/clinics/{clinic_id}")).await?;
    let label = browser.find("form input[name=label]").await?;
    browser.send_keys(&label, "受付PC").await?;
    browser
        .click(&browser.find("button#issue-code").await?)
        .await?;
    let windows = browser
        .wait_for_element("pre#install-windows", Duration::from_secs(10))
        .await?;
    let windows = browser.text(&windows).await?;
    ensure!(
        windows.contains(&format!("-Server {base}")) && windows.contains("-Code "),
        "the Windows install command: {windows}"
    );
    screenshots(&browser, &artifacts, "clinic-new-code").await?;
    browser.goto(&format!("{base}/clinics/{clinic_id}")).await?;
    let codes = text_of(&browser, "table#codes").await?;
    ensure!(
        codes.contains("受付PC"),
        "the code's label is listed: {codes}"
    );
    browser.click(&browser.find("a.revoke-code").await?).await?;
    let question = browser
        .wait_for_element("p#confirm-question", Duration::from_secs(10))
        .await?;
    let question = browser.text(&question).await?;
    ensure!(
        question.contains("受付PC"),
        "the confirmation names the code: {question}"
    );
    screenshots(&browser, &artifacts, "confirm").await?;
    browser
        .click(&browser.find("button#confirm-button").await?)
        .await?;
    wait_for_path(&browser, &base, &format!("/clinics/{clinic_id}")).await?;
    let codes = text_of(&browser, "table#codes").await?;
    ensure!(codes.contains("無効化済み"), "the code is revoked: {codes}");

    // The audit log names who, what and on which clinic; the outbox and a mail.
    browser.goto(&format!("{base}/audit")).await?;
    let audit = text_of(&browser, "table#audit").await?;
    ensure!(
        audit.contains("メモを追加") && audit.contains("受付PC"),
        "the audit log: {audit}"
    );
    screenshots(&browser, &artifacts, "audit").await?;
    browser.goto(&format!("{base}/outbox")).await?;
    browser.find("table#outbox").await?;
    screenshots(&browser, &artifacts, "outbox").await?;
    if let Some(mail) = browser.try_find("a.mail-link").await? {
        browser.click(&mail).await?;
        browser
            .wait_for_element("pre#mail-text", Duration::from_secs(10))
            .await?;
        screenshots(&browser, &artifacts, "mail").await?;
    }

    // Logout: the overview asks for a login again.
    browser.click(&browser.find("button#logout").await?).await?;
    browser.goto(&format!("{base}/")).await?;
    wait_for_path(&browser, &base, "/login").await?;

    println!(
        "browser artifacts: {}, {}, {}",
        overview_png.display(),
        terminal_png.display(),
        alerts_png.display()
    );
    browser.quit().await?;
    ensure!(serve.is_running(), "the server died during the test");
    serve.kill()?;
    Ok(())
}
