//! End to end: the real server binary tells the desk's channels of a critical alert through a
//! real HTTP receiver on a loopback port: a signed generic webhook, Slack, Teams and LINE (its
//! push API's shape). The webhook's receiver refuses twice before it takes the message; then
//! the receiver goes away entirely while a second alert opens, and its messages arrive, once
//! each, when it comes back.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chrono::Utc;
use onshi_e2e::hooks::{Hook, HookReceiver};
use onshi_e2e::{add_clinic, free_port, start_server, wait_for, wait_healthy};
use onshi_server::domain::OutboxStatus;
use onshi_server::notify::channels::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify};
use onshi_server::store::connect;
use onshi_server::store::desk::OutboxQuery;

const SECRET: &str = "whsec_e2e_0123456789";
const LINE_TOKEN: &str = "line-channel-access-token";
const PATHS: [&str; 4] = ["/hook", "/slack", "/teams", "/line"];

fn config(receiver: &HookReceiver, dir: &std::path::Path) -> Result<String> {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n"))?;
    let token = dir.join("line.token");
    std::fs::write(&token, LINE_TOKEN)?;
    Ok(format!(
        r#"
[alerts]
evaluate_every_secs = 1

[smtp]
poll_secs = 1
retry_base_secs = 1
timeout_secs = 3
lease_secs = 3

[dashboard]
public_url = "https://desk.example.jp"

[[channels]]
name = "受付システム"
kind = "webhook"
url = "{hook}"
secret_file = "{secret}"

[[channels]]
name = "slack-desk"
kind = "slack"
url = "{slack}"

[[channels]]
name = "teams-desk"
kind = "teams"
url = "{teams}"

[[channels]]
name = "line-desk"
kind = "line"
url = "{line}"
secret_file = "{token}"
to = "Cdesk0123"

[[channels]]
name = "hokkaido"
kind = "slack"
url = "{north}"
prefectures = ["北海道"]
"#,
        hook = receiver.url("/hook"),
        slack = receiver.url("/slack"),
        teams = receiver.url("/teams"),
        line = receiver.url("/line"),
        north = receiver.url("/north"),
        secret = secret.display(),
        token = token.display(),
    ))
}

/// The requests each path answered with 200, by path.
fn accepted(receiver: &HookReceiver) -> HashMap<String, Vec<Hook>> {
    let mut out: HashMap<String, Vec<Hook>> = HashMap::new();
    for h in receiver.hooks().into_iter().filter(|h| h.status == 200) {
        out.entry(h.path.clone()).or_default().push(h);
    }
    out
}

async fn wait_accepted(receiver: &HookReceiver, per_path: usize) -> Result<()> {
    wait_for("the channel messages", Duration::from_secs(40), || async {
        let got = accepted(receiver);
        PATHS
            .iter()
            .all(|p| got.get(*p).map_or(0, Vec::len) >= per_path)
            .then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_alerts_reach_webhook_slack_teams_and_line_once_through_refusals_and_an_outage()
-> Result<()> {
    onshi_server::install_crypto_provider();
    let mut receiver = HookReceiver::start().await?;
    receiver.refuse("/hook", 2);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let config_path = dir.path().join("server.toml");
    std::fs::write(&config_path, config(&receiver, dir.path())?)?;
    let code = add_clinic(&data, "チャンネル内科", "clinic@example.jp")?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = start_server(&data, &config_path, port)?;
    wait_healthy(&base).await?;
    let store = connect(&onshi_e2e::database_of(&data)?).await?;
    let client = reqwest::Client::new();
    let first = onshi_e2e::report_broken_linkage(&client, &base, &store, &code, "CH-PC-01").await?;
    wait_accepted(&receiver, 1).await?;
    let alert = onshi_e2e::linkage_alert(&store, first).await?;

    // The webhook: refused twice (503), then taken; every attempt the same delivery, signed.
    let hooks = receiver.at("/hook");
    let statuses: Vec<u16> = hooks.iter().map(|h| h.status).collect();
    ensure!(statuses == [503, 503, 200], "attempts: {statuses:?}");
    let delivery = hooks[0].header(DELIVERY_HEADER).context("delivery id")?;
    for h in &hooks {
        ensure!(
            h.header(DELIVERY_HEADER) == Some(delivery),
            "one delivery id on every attempt"
        );
        ensure!(h.header("content-type") == Some("application/json"));
        ensure!(h.header(EVENT_HEADER) == Some("alert.opened"));
        let signature = h.header(SIGNATURE_HEADER).context("signature")?;
        verify(SECRET.as_bytes(), signature, &h.body, Utc::now(), 300)
            .map_err(|e| anyhow::anyhow!("signature {signature:?}: {e}"))?;
        // Not under another secret, and not over another body.
        ensure!(verify(b"other", signature, &h.body, Utc::now(), 300).is_err());
        ensure!(verify(SECRET.as_bytes(), signature, b"{}", Utc::now(), 300).is_err());
    }
    let body = hooks[2].json();
    ensure!(body["id"] == delivery, "{body}");
    ensure!(body["type"] == "alert.opened", "{body}");
    ensure!(
        body["alert"]["id"] == alert.id,
        "the stored alert's id: {body}"
    );
    ensure!(
        body["alert"]["rule"] == "protected_account.linkage",
        "{body}"
    );
    ensure!(body["alert"]["severity"] == "critical", "{body}");
    ensure!(body["alert"]["status"] == "open", "{body}");
    ensure!(body["terminal"]["id"] == first.to_string(), "{body}");
    ensure!(body["terminal"]["hostname"] == "CH-PC-01", "{body}");
    ensure!(
        body["terminal"]["url"] == format!("https://desk.example.jp/terminals/{first}"),
        "{body}"
    );
    ensure!(body["clinic"]["name"] == "チャンネル内科", "{body}");
    ensure!(body["transition"]["action"] == "opened", "{body}");
    ensure!(body["transition"]["to"] == "open", "{body}");

    // Slack, Teams and LINE in their own formats.
    let slack = receiver.at("/slack")[0].json();
    let text = slack["text"].as_str().context("slack text")?;
    ensure!(
        text.starts_with("【緊急】発生: チャンネル内科 / CH-PC-01"),
        "{text}"
    );
    ensure!(slack["blocks"][0]["type"] == "section", "{slack}");
    let teams = receiver.at("/teams")[0].json();
    ensure!(teams["type"] == "message", "{teams}");
    ensure!(
        teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive",
        "{teams}"
    );
    ensure!(
        teams["attachments"][0]["content"]["type"] == "AdaptiveCard",
        "{teams}"
    );
    let line = &receiver.at("/line")[0];
    ensure!(line.header("authorization") == Some(&*format!("Bearer {LINE_TOKEN}")));
    let retry_key = line.header("x-line-retry-key").context("retry key")?;
    ensure!(uuid::Uuid::parse_str(retry_key).is_ok(), "{retry_key}");
    let push = line.json();
    ensure!(push["to"] == "Cdesk0123", "{push}");
    ensure!(push["messages"][0]["type"] == "text", "{push}");
    ensure!(
        push["messages"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("CH-PC-01")),
        "{push}"
    );
    // The channel scoped to another prefecture heard nothing.
    ensure!(receiver.at("/north").is_empty());

    // The receiver goes away; a second alert's messages wait in the outbox, retried.
    receiver.stop().await;
    let second =
        onshi_e2e::report_broken_linkage(&client, &base, &store, &code, "CH-PC-02").await?;
    let outbox = store.outbox();
    wait_for(
        "retries against the stopped receiver",
        Duration::from_secs(30),
        || async {
            let rows = outbox
                .outbox_rows(&OutboxQuery {
                    status: Some(OutboxStatus::Pending),
                    limit: 50,
                    ..Default::default()
                })
                .await
                .ok()?;
            let waiting: Vec<_> = rows
                .iter()
                .filter(|r| r.kind.is_channel() && r.attempts >= 2 && r.last_error.is_some())
                .collect();
            (waiting.len() >= 4).then_some(())
        },
    )
    .await?;
    receiver.restart().await?;
    wait_accepted(&receiver, 2).await?;
    // A moment more: nothing arrives twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = accepted(&receiver);
    for path in PATHS {
        let hooks = got.get(path).context("accepted")?;
        ensure!(hooks.len() == 2, "{path}: {} accepted", hooks.len());
    }
    let hooks = &got["/hook"];
    let second_body = hooks[1].json();
    ensure!(
        second_body["terminal"]["id"] == second.to_string(),
        "{second_body}"
    );
    ensure!(hooks[0].header(DELIVERY_HEADER) != hooks[1].header(DELIVERY_HEADER));
    let keys: Vec<_> = got["/line"]
        .iter()
        .map(|h| h.header("x-line-retry-key"))
        .collect();
    ensure!(keys[0] != keys[1], "one retry key per message");
    ensure!(receiver.at("/north").is_empty());
    // Every channel row sent (the clinic mails wait: this server has no SMTP).
    let rows = outbox
        .outbox_rows(&OutboxQuery {
            limit: 100,
            ..Default::default()
        })
        .await?;
    let channel: Vec<_> = rows.iter().filter(|r| r.kind.is_channel()).collect();
    ensure!(channel.len() == 8, "{channel:?}");
    ensure!(
        channel.iter().all(|r| r.status == OutboxStatus::Sent),
        "{channel:?}"
    );

    // `test-channel` posts at once, signed and shaped as the alerts are.
    let test = |name: &str| {
        std::process::Command::new(onshi_e2e::binary("onshi-server")?)
            .arg("--config")
            .arg(&config_path)
            .args(["test-channel", name])
            .output()
            .map_err(anyhow::Error::from)
    };
    let out = test("受付システム")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(String::from_utf8_lossy(&out.stdout).contains("accepted"));
    let probe = receiver.at("/hook").pop().context("the test message")?;
    ensure!(probe.header(EVENT_HEADER) == Some("channel.test"));
    verify(
        SECRET.as_bytes(),
        probe.header(SIGNATURE_HEADER).context("signature")?,
        &probe.body,
        Utc::now(),
        300,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(test("line-desk")?.status.success());
    let push = receiver.at("/line").pop().context("the LINE test")?.json();
    ensure!(push["to"] == "Cdesk0123", "{push}");
    // A refusal is reported with the receiver's answer; an unknown name is refused.
    receiver.refuse("/slack", 1);
    let refused = test("slack-desk")?;
    ensure!(!refused.status.success());
    ensure!(
        String::from_utf8_lossy(&refused.stderr).contains("HTTP 503"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let unknown = test("nobody")?;
    ensure!(!unknown.status.success());
    ensure!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
    Ok(())
}
