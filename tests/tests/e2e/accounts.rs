//! End to end: a real agent on a terminal whose protected accounts are named otherwise than
//! the server's `[policy]` says. Enrolling it must not mail the clinic or open a critical
//! alert (the names are the desk's to confirm); once staff confirm the names on the terminal
//! page, a change to a confirmed account opens one critical alert and mails the clinic once.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use onshi_e2e::{
    DeskClient, FakeMachine, add_clinic, add_staff_user, enroll_and_run_agent, free_port,
    start_server, wait_for, wait_healthy,
};
use onshi_server::domain::{AlertStatus, RuleKey, Severity};
use onshi_server::store::{Store, connect};
use onshi_testkit::SmtpReceiver;
use uuid::Uuid;

/// The names the installer used elsewhere: the machine has onshi / kao / renkei.
fn config(smtp_port: u16) -> String {
    format!(
        r#"
[policy]
interval_secs = 1
accounts = [
  {{ role = "windows", name = "OqsUser" }},
  {{ role = "face_auth", name = "OqsFace" }},
  {{ role = "linkage", name = "OqsRenkei" }},
]

[alerts]
evaluate_every_secs = 1
debounce_ms = 100
hold_down_secs = 1

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
desk = "desk@example.jp"
poll_secs = 1
"#
    )
}

async fn open_alerts(store: &std::sync::Arc<dyn Store>, id: Uuid) -> Vec<(RuleKey, Severity)> {
    store
        .alerts()
        .active_alerts(Some(&[id]))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.status != AlertStatus::Resolved)
        .map(|a| (a.rule, a.severity))
        .collect()
}

/// Mails to the clinic (about anything), and critical mails to anyone.
fn account_mails(smtp: &SmtpReceiver) -> (usize, usize) {
    let mails = smtp.mails();
    let to_clinic = mails
        .iter()
        .filter(|m| m.to == ["<clinic@example.jp>"])
        .count();
    let critical = mails
        .iter()
        .filter(|m| m.subject().contains("【緊急】"))
        .count();
    (to_clinic, critical)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_account_names_at_enrollment_are_confirmed_by_staff_then_a_change_mails_once()
-> Result<()> {
    onshi_server::install_crypto_provider();
    let smtp = SmtpReceiver::start().await;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let agent_data = dir.path().join("agent");
    let machine = FakeMachine::healthy(&dir.path().join("root"), "uketsuke-pc");
    let config_path = dir.path().join("server.toml");
    std::fs::write(&config_path, config(smtp.addr.port()))?;
    let code = add_clinic(&data, "こもれび内科", "clinic@example.jp")?;
    add_staff_user(&data, "ann", "admin", "e2e staff password")?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&data, &config_path, port)?;
    wait_healthy(&base).await?;

    let (agent_id, mut agent) = enroll_and_run_agent(&agent_data, &machine, &base, &code)?;

    // Enrolled with names the terminal does not have: for the desk to confirm, nothing more.
    let store = connect(&onshi_e2e::database_of(&data)?).await?;
    let found = wait_for("the desk-only finding", Duration::from_secs(30), || async {
        let open = open_alerts(&store, agent_id).await;
        open.contains(&(RuleKey::AccountsUnconfirmed, Severity::Warning))
            .then_some(open)
    })
    .await?;
    ensure!(
        found.iter().all(|(_, s)| *s < Severity::Critical),
        "no critical alert at enrollment: {found:?}"
    );
    // A few more reports and passes: still nothing for the clinic.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let open = open_alerts(&store, agent_id).await;
    ensure!(
        open.iter().all(|(_, s)| *s < Severity::Critical),
        "still no critical alert: {open:?}"
    );
    ensure!(
        account_mails(&smtp) == (0, 0),
        "no mail to the clinic, no critical mail: {:?}",
        smtp.mails().iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    let desk = DeskClient::login(&base, "ann", "e2e staff password")
        .await
        .context("logging in")?;
    let page = desk.page(&format!("/terminals/{agent_id}")).await;
    ensure!(page.contains("設定確認が必要"), "the terminal page says so");

    // Staff read the names off the terminal and confirm them.
    let resp = desk
        .post_csrf(
            &format!("/terminals/{agent_id}/accounts"),
            &[
                ("windows", "onshi"),
                ("face_auth", "kao"),
                ("linkage", "renkei"),
            ],
        )
        .await;
    ensure!(resp.status().is_redirection(), "confirm: {}", resp.status());
    // The agent looks for the confirmed names from its next report; the new baseline finds
    // them all, and the desk's finding resolves.
    let confirmed = wait_for(
        "a confirmed baseline with nothing missing",
        Duration::from_secs(30),
        || async {
            let b = store.fleet().terminal_baseline(agent_id).await.ok()??;
            (b.taken_at.is_some() && b.missing.is_empty() && b.confirmed_at.is_some()).then_some(())
        },
    )
    .await;
    if confirmed.is_err() {
        let b = store.fleet().terminal_baseline(agent_id).await?;
        let snapshot = store
            .latest_snapshot(agent_id)
            .await?
            .map(|(_, s)| s.accounts);
        let own = store.fleet().terminal_accounts(agent_id).await?;
        anyhow::bail!("no confirmed baseline: {b:?}\nown names {own:?}\nlatest {snapshot:?}");
    }
    wait_for(
        "the desk's finding resolved",
        Duration::from_secs(30),
        || async {
            let open = open_alerts(&store, agent_id).await;
            (!open.iter().any(|(r, _)| *r == RuleKey::AccountsUnconfirmed)).then_some(())
        },
    )
    .await?;
    ensure!(account_mails(&smtp) == (0, 0), "still nothing mailed");

    // Someone renames the confirmed linkage account: one critical alert, one clinic mail.
    machine.set_accounts("renkei-changed");
    let mails = wait_for("the critical mail", Duration::from_secs(30), || async {
        let (_, critical) = account_mails(&smtp);
        (critical >= 2).then(|| smtp.mails())
    })
    .await;
    let mails = match mails {
        Ok(m) => m,
        Err(e) => {
            let open = open_alerts(&store, agent_id).await;
            let b = store.fleet().terminal_baseline(agent_id).await?;
            let snapshot = store
                .latest_snapshot(agent_id)
                .await?
                .map(|(_, s)| s.accounts);
            let outbox = store
                .outbox()
                .outbox_counts(&onshi_server::domain::Reach::All)
                .await?;
            anyhow::bail!("{e}: open {open:?}\nbaseline {b:?}\nlatest {snapshot:?}\n{outbox:?}");
        }
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (to_clinic, critical) = account_mails(&smtp);
    ensure!(
        (to_clinic, critical) == (1, 2),
        "exactly one critical mail to the clinic and its desk copy: {:?}",
        smtp.mails()
            .iter()
            .map(|m| (m.to.clone(), m.subject()))
            .collect::<Vec<_>>()
    );
    let clinic_mail = mails
        .iter()
        .find(|m| m.to == ["<clinic@example.jp>"])
        .context("the clinic's mail")?;
    // (white space between encoded words is not part of a decoded subject)
    let subject: String = clinic_mail.subject().split_whitespace().collect();
    ensure!(
        subject == "【緊急】こもれび内科uketsuke-pc:連携アカウントが変更されました",
        "{subject}"
    );
    let open = open_alerts(&store, agent_id).await;
    ensure!(
        open.contains(&(RuleKey::ProtectedAccountLinkage, Severity::Critical)),
        "{open:?}"
    );
    agent.kill()?;
    server.kill()?;
    Ok(())
}
