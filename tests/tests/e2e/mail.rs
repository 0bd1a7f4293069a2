//! End to end: the real server binary mails critical alerts to a real SMTP server on a loopback
//! port. It is killed (SIGKILL) while the SMTP server holds a message without answering; a new
//! server process then delivers every mail that was not accepted, and none that was.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use chrono::Utc;
use onshi_e2e::{add_clinic, free_port, start_server, wait_for, wait_healthy};
use onshi_server::store::{Store, connect};
use onshi_testkit::{Mode, SmtpReceiver};

fn config(smtp_port: u16) -> String {
    format!(
        r#"
[policy]
interval_secs = 60

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
desk = "desk@example.jp"
poll_secs = 1
retry_base_secs = 1
# The first server is killed within a second of the held message, before its timeout; the
# next server may send what the dead one had claimed once the claim is 3 seconds old.
timeout_secs = 3
lease_secs = 3
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_send_resends_nothing_the_smtp_server_accepted() -> Result<()> {
    onshi_server::install_crypto_provider();
    let mut smtp = SmtpReceiver::start().await;
    // Two mails are accepted; the third one's DATA is taken and never answered.
    smtp.set_mode(Mode::HangAfter(2));
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let config_path = dir.path().join("server.toml");
    std::fs::write(&config_path, config(smtp.addr.port()))?;
    let code = add_clinic(&data, "テスト薬局", "clinic@example.jp")?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&data, &config_path, port)?;
    wait_healthy(&base).await?;
    let store = connect(&onshi_e2e::database_of(&data)?).await?;
    for host in ["ONSHI-PC-01", "ONSHI-PC-02"] {
        onshi_e2e::report_broken_linkage(&reqwest::Client::new(), &base, &store, &code, host)
            .await?;
    }
    let accepted_before = smtp.wait_for(2, 20).await;
    // The sender is now waiting for the answer to the third mail.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        smtp.mails().len() == 2,
        "the third mail was held, not accepted"
    );
    server.kill()?;

    smtp.set_mode(Mode::Accept);
    let mut server = start_server(&data, &config_path, port)?;
    wait_healthy(&base).await?;
    let counts = wait_for("every mail sent", Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            let c = store
                .outbox()
                .outbox_counts(&onshi_server::domain::Reach::All)
                .await
                .ok()?;
            (c.pending == 0 && c.sending == 0 && c.sent > 0).then_some(c)
        }
    })
    .await?;
    server.kill()?;
    let received = smtp.mails();
    smtp.stop().await;

    ensure!(counts.failed == 0, "{counts:?}");
    ensure!(
        counts.sent >= 4,
        "two critical alerts, each to the clinic and the desk: {counts:?}"
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &received {
        let id = m
            .header("Message-ID")
            .context("a mail without Message-ID")?;
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(twice.is_empty(), "delivered more than once: {twice:?}");
    ensure!(
        received.len() as i64 == counts.sent,
        "{} mails received, {} marked sent",
        received.len(),
        counts.sent
    );
    for m in &accepted_before {
        let id = m.header("Message-ID").context("Message-ID")?;
        ensure!(seen.get(&id) == Some(&1), "{id} accepted before the kill");
    }
    let to: Vec<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    // (the clinic's daily digest may come too, when its hour has passed today)
    for who in ["<clinic@example.jp>", "<desk@example.jp>"] {
        ensure!(
            to.iter().filter(|t| *t == who).count() >= 2,
            "both critical alerts to {who}: {to:?}"
        );
    }
    Ok(())
}

fn outbox_config(smtp_port: u16, lease_secs: u64) -> String {
    format!(
        r#"
[alerts]
enabled = false

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
poll_secs = 1
retry_base_secs = 1
timeout_secs = {lease_secs}
lease_secs = {lease_secs}
"#
    )
}

/// `n` test mails in the outbox of the database in `data`.
async fn fill_outbox(data: &std::path::Path, n: usize) -> Result<std::sync::Arc<dyn Store>> {
    std::fs::create_dir_all(data)?;
    let store = connect(&onshi_e2e::database_of(data)?).await?;
    let composer = onshi_server::notify::Composer::new(onshi_server::config::SmtpSettings {
        from: "Onshi Watch <watch@example.jp>".into(),
        ..Default::default()
    });
    let now = Utc::now();
    let mails: Vec<_> = (0..n)
        .map(|i| {
            composer.test_mail(
                &format!("clinic{i}@example.jp"),
                now + chrono::Duration::milliseconds(i as i64),
            )
        })
        .collect();
    ensure!(store.outbox().enqueue_mails(&mails, now).await? == n);
    Ok(store)
}

/// Message-IDs received more than once.
fn twice(received: &[onshi_testkit::Received]) -> Result<Vec<String>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in received {
        let id = m
            .header("Message-ID")
            .context("a mail without Message-ID")?;
        *seen.entry(id).or_default() += 1;
    }
    Ok(seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_database_send_each_mail_once() -> Result<()> {
    onshi_server::install_crypto_provider();
    let mut smtp = SmtpReceiver::start().await;
    // Slow: a claim of many mails would outlast its one-second lease unless renewed, and the
    // two senders' claims interleave.
    smtp.set_mode(Mode::Slow(100));
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let store = fill_outbox(&data, 200).await?;
    let config_path = dir.path().join("server.toml");
    std::fs::write(&config_path, outbox_config(smtp.addr.port(), 1))?;
    let mut servers = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        servers.push(start_server(&data, &config_path, port)?);
        wait_healthy(&format!("http://127.0.0.1:{port}")).await?;
    }
    let counts = wait_for("200 mails sent", Duration::from_secs(90), || {
        let store = store.clone();
        async move {
            let c = store
                .outbox()
                .outbox_counts(&onshi_server::domain::Reach::All)
                .await
                .ok()?;
            (c.sent == 200).then_some(c)
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &mut servers {
        s.kill()?;
    }
    let received = smtp.mails();
    smtp.stop().await;
    ensure!(counts.failed == 0, "{counts:?}");
    ensure!(received.len() == 200, "{} received", received.len());
    let twice = twice(&received)?;
    ensure!(twice.is_empty(), "delivered more than once: {twice:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_send_sends_at_most_the_mail_in_flight_again() -> Result<()> {
    onshi_server::install_crypto_provider();
    let mut smtp = SmtpReceiver::start().await;
    // Three mails go through; the fourth is received, but its answer never comes.
    smtp.set_mode(Mode::KeepAndHangAfter(3));
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let store = fill_outbox(&data, 10).await?;
    let config_path = dir.path().join("server.toml");
    std::fs::write(&config_path, outbox_config(smtp.addr.port(), 3))?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&data, &config_path, port)?;
    wait_healthy(&base).await?;
    smtp.wait_for(4, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let in_flight = smtp.mails()[3].header("Message-ID").context("Message-ID")?;
    server.kill()?;

    smtp.set_mode(Mode::Accept);
    let mut server = start_server(&data, &config_path, port)?;
    wait_healthy(&base).await?;
    wait_for("every mail sent", Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            let c = store
                .outbox()
                .outbox_counts(&onshi_server::domain::Reach::All)
                .await
                .ok()?;
            (c.sent == 10).then_some(c)
        }
    })
    .await?;
    server.kill()?;
    let received = smtp.mails();
    smtp.stop().await;
    ensure!(received.len() == 11, "{} received", received.len());
    ensure!(
        twice(&received)? == vec![in_flight.clone()],
        "only the mail in flight ({in_flight}) came twice"
    );
    Ok(())
}
