//! End to end: two `onshi-server` replicas on one PostgreSQL database (this machine's, a fresh
//! schema). Both take reports; one leads and runs the evaluator and the mail sender. The
//! leader is killed (SIGKILL); the other takes the lead within 30 seconds, and alerts still
//! open and mails still flow, each delivered once (the SMTP receiver counts them), and so do
//! the desk's webhook messages (an HTTP receiver counts them).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use onshi_e2e::hooks::HookReceiver;
use onshi_e2e::{Proc, binary, free_port, wait_for, wait_healthy};
use onshi_server::domain::{OutboxStatus, RuleKey};
use onshi_server::notify::channels::{DELIVERY_HEADER, SIGNATURE_HEADER, verify};
use onshi_server::store::desk::OutboxQuery;
use onshi_server::store::{DatabaseUrl, Store, connect};
use onshi_testkit::SmtpReceiver;

const HOOK_SECRET: &str = "replica-hook-secret";

fn config(smtp_port: u16, hook_url: &str, secret: &std::path::Path) -> String {
    format!(
        r#"
[alerts]
evaluate_every_secs = 1

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
desk = "desk@example.jp"
poll_secs = 1
retry_base_secs = 1
timeout_secs = 3
lease_secs = 3

[[channels]]
name = "desk-hook"
kind = "webhook"
url = "{hook_url}"
secret_file = "{secret}"
"#,
        secret = secret.display()
    )
}

/// Rows sent so far, (mail, channel messages), and whether any is still waiting.
async fn sent(store: &std::sync::Arc<dyn Store>) -> Option<(usize, usize, bool)> {
    let rows = store
        .outbox()
        .outbox_rows(&OutboxQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .ok()?;
    let done = |channel: bool| {
        rows.iter()
            .filter(|r| r.kind.is_channel() == channel && r.status == OutboxStatus::Sent)
            .count()
    };
    let waiting = rows
        .iter()
        .any(|r| matches!(r.status, OutboxStatus::Pending | OutboxStatus::Sending));
    Some((done(false), done(true), waiting))
}

fn server(
    url: &str,
    data: &std::path::Path,
    config: &std::path::Path,
) -> Result<std::process::Command> {
    let mut cmd = std::process::Command::new(binary("onshi-server")?);
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--database-url")
        .arg(url)
        .arg("--config")
        .arg(config)
        .args(["--log", "warn"]);
    Ok(cmd)
}

struct Replica {
    base: String,
    proc: Proc,
}

fn start(url: &str, data: &std::path::Path, config: &std::path::Path) -> Result<Replica> {
    let port = free_port();
    let mut cmd = server(url, data, config)?;
    cmd.args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"));
    Ok(Replica {
        base: format!("http://127.0.0.1:{port}"),
        proc: Proc::spawn("onshi-server", &mut cmd)?,
    })
}

/// Whether the replica at `base` says it leads (`/readyz`).
async fn leads(client: &reqwest::Client, base: &str) -> Option<bool> {
    let body: serde_json::Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["leader"].as_bool()
}

async fn wait_for_alert(store: &std::sync::Arc<dyn Store>, terminal: uuid::Uuid) -> Result<()> {
    wait_for("the linkage alert", Duration::from_secs(30), || async {
        let alerts = store.alerts().active_alerts(Some(&[terminal])).await.ok()?;
        alerts
            .iter()
            .any(|a| a.rule == RuleKey::ProtectedAccountLinkage)
            .then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_work_and_the_lead_passes_when_the_leader_is_killed() -> Result<()> {
    onshi_server::install_crypto_provider();
    let url = onshi_testkit::pg::fresh_schema_url().await;
    let smtp = SmtpReceiver::start().await;
    let dir = tempfile::tempdir()?;
    // One data dir for both: it holds the server's secret key, which replicas share.
    let data = dir.path().join("server");
    std::fs::create_dir_all(&data)?;
    let config_path = dir.path().join("server.toml");
    let hooks = HookReceiver::start().await?;
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, HOOK_SECRET)?;
    std::fs::write(
        &config_path,
        config(smtp.addr.port(), &hooks.url("/hook"), &secret),
    )?;
    let out = server(&url, &data, &config_path)?
        .args([
            "clinic",
            "add",
            "レプリカ内科",
            "--email",
            "clinic@example.jp",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "clinic add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    let code = stdout
        .lines()
        .find_map(|l| l.strip_prefix("enrollment code: "))
        .context("no enrollment code")?
        .trim()
        .to_string();

    let mut replicas = vec![
        start(&url, &data, &config_path)?,
        start(&url, &data, &config_path)?,
    ];
    for r in &replicas {
        wait_healthy(&r.base).await?;
    }
    let client = reqwest::Client::new();
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let leader = wait_for("one leader", Duration::from_secs(20), || async {
        let a = leads(&client, &bases[0]).await?;
        let b = leads(&client, &bases[1]).await?;
        (a != b).then_some(if a { 0 } else { 1 })
    })
    .await?;
    let follower = 1 - leader;
    let store = connect(&DatabaseUrl::parse(&url)?).await?;

    // Reports to both: the follower's are evaluated by the leader's passes.
    let t1 =
        onshi_e2e::report_broken_linkage(&client, &bases[follower], &store, &code, "REPLICA-PC-01")
            .await?;
    let t2 =
        onshi_e2e::report_broken_linkage(&client, &bases[leader], &store, &code, "REPLICA-PC-02")
            .await?;
    wait_for_alert(&store, t1).await?;
    wait_for_alert(&store, t2).await?;
    smtp.wait_for(4, 30).await;
    // The desk works on the follower: its counts come from the overview lines the leader
    // writes (it runs no evaluator), and an acknowledgement made there reaches the leader's
    // evaluator through the alerts' history (the leader's overview line shows it handled).
    let password = "replica-desk-password";
    let mut add_user = server(&url, &data, &config_path)?;
    add_user
        .args(["user", "add", "desk", "--role", "admin", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = add_user.spawn()?;
    std::io::Write::write_all(
        &mut child.stdin.take().context("stdin")?,
        format!("{password}\n").as_bytes(),
    )?;
    ensure!(child.wait()?.success(), "user add");
    let on_follower = onshi_e2e::DeskClient::login(&bases[follower], "desk", password)
        .await
        .context("login on the follower")?;
    wait_for("the follower's counts", Duration::from_secs(30), || async {
        let page = on_follower.try_page("/").await?;
        page.contains("全端末<b>2</b>").then_some(())
    })
    .await?;
    let t1_alert = onshi_e2e::linkage_alert(&store, t1).await?;
    let acked = on_follower
        .post_csrf(
            &format!("/alerts/{}/ack", t1_alert.id),
            &[("note", "レセコン業者に連絡済み"), ("until", "")],
        )
        .await;
    ensure!(acked.status().is_redirection(), "ack: {}", acked.status());
    let on_leader = onshi_e2e::DeskClient::login(&bases[leader], "desk", password)
        .await
        .context("login on the leader")?;
    wait_for(
        "the leader's evaluator to know of the acknowledgement",
        Duration::from_secs(30),
        || async {
            let page = on_leader.try_page("/?handling=in_progress").await?;
            page.contains("REPLICA-PC-01").then_some(())
        },
    )
    .await?;

    // Nothing in flight when it dies: a mail whose SMTP answer never reached a killed sender
    // is sent again by design (see `mail::a_kill_mid_send_sends_at_most_the_mail_in_flight_again`).
    // Two openings and the acknowledgement on the webhook.
    wait_for("the outbox idle", Duration::from_secs(30), || async {
        let (mail, channel, waiting) = sent(&store).await?;
        (!waiting && mail >= 4 && channel >= 3).then_some(())
    })
    .await?;

    // The leader dies without a word; its lock goes with its connection.
    let killed = Instant::now();
    replicas[leader].proc.kill()?;
    wait_for("the follower to lead", Duration::from_secs(30), || async {
        leads(&client, &bases[follower]).await.filter(|l| *l)
    })
    .await?;
    let takeover = killed.elapsed();
    ensure!(
        takeover < Duration::from_secs(30),
        "took the lead after {takeover:?}"
    );

    let t3 =
        onshi_e2e::report_broken_linkage(&client, &bases[follower], &store, &code, "REPLICA-PC-03")
            .await?;
    wait_for_alert(&store, t3).await?;
    smtp.wait_for(6, 30).await;
    let (mail_sent, channel_sent, _) =
        wait_for("the outbox empty", Duration::from_secs(30), || async {
            let s = sent(&store).await?;
            (!s.2 && s.0 >= 6 && s.1 >= 4).then_some(s)
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in &mut replicas {
        r.proc.kill()?;
    }
    let received = smtp.mails();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &received {
        *seen
            .entry(m.header("Message-ID").context("Message-ID")?)
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(twice.is_empty(), "delivered more than once: {twice:?}");
    ensure!(
        received.len() == mail_sent,
        "{} received, {mail_sent} marked sent",
        received.len(),
    );
    // The webhook: every message once, signed, as many as were marked sent.
    let taken: Vec<_> = hooks
        .hooks()
        .into_iter()
        .filter(|h| h.status == 200)
        .collect();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for h in &taken {
        let signature = h.header(SIGNATURE_HEADER).context("signature")?;
        verify(
            HOOK_SECRET.as_bytes(),
            signature,
            &h.body,
            chrono::Utc::now(),
            300,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        *deliveries
            .entry(h.header(DELIVERY_HEADER).context("delivery")?.to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        twice.is_empty(),
        "webhook messages delivered more than once: {twice:?}"
    );
    ensure!(
        taken.len() == channel_sent && channel_sent == 4,
        "{} webhook messages taken, {channel_sent} marked sent",
        taken.len()
    );
    let to: Vec<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    for who in ["<clinic@example.jp>", "<desk@example.jp>"] {
        ensure!(
            to.iter().filter(|t| *t == who).count() >= 3,
            "three critical alerts to {who}: {to:?}"
        );
    }
    eprintln!("the lead passed {} ms after the kill", takeover.as_millis());
    Ok(())
}
