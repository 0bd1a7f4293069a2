//! End to end: the real server binary, the real agent binary against a fake machine, SQLite on
//! disk. The server is killed, the machine changes while it is down, and every change event must
//! arrive exactly once and in order when it comes back.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use onshi_e2e::{
    DeskClient, FakeMachine, add_clinic, add_staff_user, enroll_and_run_agent, free_port,
    start_server, wait_for, wait_healthy,
};
use onshi_server::store::{StoredEvent, connect};
use uuid::Uuid;

const SERVER_CONFIG: &str = r#"
[policy]
interval_secs = 1
accounts = [
  { role = "windows", name = "onshi" },
  { role = "face_auth", name = "kao" },
  { role = "linkage", name = "renkei" },
]
"#;

fn kinds(events: &[StoredEvent]) -> Vec<String> {
    events.iter().map(|e| e.kind.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reports_survive_a_server_outage_exactly_once_in_order() -> Result<()> {
    onshi_server::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let agent_data = dir.path().join("agent");
    let machine = FakeMachine::healthy(&dir.path().join("root"), "onshi-e2e-pc");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, SERVER_CONFIG)?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    // A clinic and its enrollment code, through the CLI.
    let code = add_clinic(&data, "テスト内科", "clinic@example.jp")?;

    add_staff_user(&data, "desk", "viewer", "e2e staff password")?;
    let mut server = start_server(&data, &config, port)?;
    wait_healthy(&base).await?;

    let (agent_id, mut agent) = enroll_and_run_agent(&agent_data, &machine, &base, &code)?;

    // The terminal shows on the dashboard.
    let desk = DeskClient::login(&base, "desk", "e2e staff password")
        .await
        .context("logging in to the dashboard")?;
    let page = wait_for(
        "the terminal on the dashboard",
        Duration::from_secs(30),
        || async {
            let page = desk.try_page("/").await?;
            page.contains("onshi-e2e-pc").then_some(page)
        },
    )
    .await?;
    assert!(page.contains("テスト内科"));

    let store = connect(&onshi_e2e::database_of(&data)?).await?;
    let before = wait_for("agent_started stored", Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let events = store.events(agent_id, 100).await.ok()?;
            (!events.is_empty()).then_some(events)
        }
    })
    .await?;
    assert_eq!(kinds(&before), vec!["agent_started"]);

    // The server goes away hard; meanwhile the linkage account is renamed and the gateway moves.
    server.kill()?;
    machine.set_accounts("renkei-new");
    machine.set_gateway("FE0AA8C0", "192.168.10.254", "00:aa:bb:cc:dd:ff");

    // The agent sees the changes and spools them (its state file holds the new snapshot only
    // after the events are fsynced in the spool).
    wait_for(
        "the agent to see the changes",
        Duration::from_secs(20),
        || async {
            let state = std::fs::read_to_string(agent_data.join("state.json")).ok()?;
            (state.contains("renkei-new") && state.contains("192.168.10.254")).then_some(())
        },
    )
    .await?;
    // A few more failed send attempts while the server is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        agent.is_running(),
        "the agent must keep running while the server is down"
    );
    assert_eq!(
        store.events(agent_id, 100).await?.len(),
        1,
        "nothing arrived while down"
    );

    let _server = start_server(&data, &config, port)?;
    wait_healthy(&base).await?;
    let events = wait_for("the spooled events", Duration::from_secs(60), || {
        let store = store.clone();
        async move {
            let events = store.events(agent_id, 100).await.ok()?;
            let k = kinds(&events);
            (k.contains(&"account_changed".to_string())
                && k.contains(&"network_changed".to_string()))
            .then_some(events)
        }
    })
    .await?;
    // Let the agent run a few more cycles: nothing may arrive twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events_after = store.events(agent_id, 100).await?;
    assert_eq!(events_after, events, "no duplicates after the replay");

    let mut ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let stored_order = ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids, stored_order,
        "each event once, stored in the order the agent made them"
    );
    assert_eq!(
        kinds(&events),
        vec!["agent_started", "account_changed", "network_changed"]
    );

    let renamed: serde_json::Value = serde_json::from_str(&events[1].body_json)?;
    assert_eq!(renamed["role"], "linkage");
    assert_eq!(renamed["change"], "renamed");
    assert_eq!(renamed["from"], "renkei");
    assert_eq!(renamed["to"], "renkei-new");
    let network: serde_json::Value = serde_json::from_str(&events[2].body_json)?;
    let changes = network["changes"].to_string();
    if !changes.contains("192.168.10.254") {
        bail!("network change does not name the new gateway: {changes}");
    }

    // The latest snapshot is the changed machine.
    let (_, snapshot) = store
        .latest_snapshot(agent_id)
        .await?
        .context("no snapshot")?;
    assert_eq!(
        snapshot.network.default_gateway.as_deref(),
        Some("192.168.10.254")
    );
    agent.kill()?;
    Ok(())
}
