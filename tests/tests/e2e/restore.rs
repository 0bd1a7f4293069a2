//! End to end: an agent whose data directory is restored from an older copy (a disk image, a
//! VM snapshot) sends seqs far below the one the server holds. The server answers 409
//! `stale_seq` with its seq; the agent moves past it and sends its current state at once, so the
//! terminal is current within an interval, and no event is lost or stored twice.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use onshi_e2e::{
    FakeMachine, add_clinic, enroll_and_run_agent, free_port, run_agent, start_server, wait_for,
    wait_healthy,
};
use onshi_server::store::{Store, connect};
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

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if entry.file_name() != "lock" {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

async fn stored_seq(store: &std::sync::Arc<dyn Store>, id: Uuid) -> i64 {
    match store.latest_snapshot(id).await {
        Ok(Some((seq, _))) => seq,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restored_from_an_older_copy_is_current_at_once() -> Result<()> {
    onshi_server::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let agent_data = dir.path().join("agent");
    let image = dir.path().join("agent-image");
    let machine = FakeMachine::healthy(&dir.path().join("root"), "restored-pc");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, SERVER_CONFIG)?;
    let code = add_clinic(&data, "復元テスト医院", "clinic@example.jp")?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = start_server(&data, &config, port)?;
    wait_healthy(&base).await?;
    let store = connect(&onshi_e2e::database_of(&data)?).await?;

    let (agent_id, mut agent) = enroll_and_run_agent(&agent_data, &machine, &base, &code)?;
    wait_for("the first report", Duration::from_secs(20), || async {
        (stored_seq(&store, agent_id).await > 0).then_some(())
    })
    .await?;
    agent.kill()?;
    // The image: a copy of the data directory, a million reports behind (an image from long
    // ago; the agent's seq goes up by one per report).
    copy_dir(&agent_data, &image)?;
    let state_path = image.join("state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path)?)?;
    let next = state["next_seq"].as_u64().context("next_seq")?;
    state["next_seq"] = serde_json::json!(next - 1_000_000);
    std::fs::write(&state_path, serde_json::to_vec(&state)?)?;

    // The PC runs on from its disk for a while...
    let mut agent = run_agent(&agent_data, &machine, &base)?;
    let before = stored_seq(&store, agent_id).await;
    let reached = wait_for("more reports", Duration::from_secs(20), || async {
        let seq = stored_seq(&store, agent_id).await;
        (seq >= before + 3).then_some(seq)
    })
    .await?;
    agent.kill()?;

    // ... then is restored from the image, and the network changes meanwhile.
    std::fs::remove_dir_all(&agent_data)?;
    copy_dir(&image, &agent_data)?;
    machine.set_gateway("FE0AA8C0", "192.168.10.254", "00:aa:bb:cc:dd:ff");
    let mut agent = run_agent(&agent_data, &machine, &base)?;
    let current = wait_for(
        "the restored terminal current",
        Duration::from_secs(15),
        || async {
            let (seq, s) = store.latest_snapshot(agent_id).await.ok()??;
            (seq > reached && s.network.default_gateway.as_deref() == Some("192.168.10.254"))
                .then_some(seq)
        },
    )
    .await?;
    ensure!(
        u64::try_from(current)? > next,
        "the agent moved its seq past the server's"
    );

    // A few more reports: nothing twice, nothing lost.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = store.events(agent_id, 100).await?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    ensure!(
        kinds
            == [
                "agent_started",
                "agent_started",
                "agent_started",
                "network_changed"
            ],
        "{kinds:?}"
    );
    let mut ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    ensure!(ids.len() == events.len(), "each event once");
    agent.kill()?;
    Ok(())
}
