//! The README's first command: `onshi-demo` runs the server with a simulated fleet that
//! reports through the real HTTP API, opens alerts and writes the mails it would send.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use onshi_testkit::{DeskClient, Proc, free_port, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_the_dashboard_and_writes_mails() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("demo-data");
    let port = free_port();
    let mut demo = Proc::spawn(
        "onshi-demo",
        Command::new(env!("CARGO_BIN_EXE_onshi-demo"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--log",
                "warn",
                "--terminals",
                "40",
                "--interval-secs",
                "5",
                "--password",
                "demo-password-for-tests",
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}")),
    )?;
    // The demo prints its account; log in with it like a newcomer would.
    let base = format!("http://127.0.0.1:{port}");
    let desk = wait_for("the demo's login", Duration::from_secs(60), || {
        DeskClient::login(&base, "demo", "demo-password-for-tests")
    })
    .await?;
    let page = wait_for(
        "40 terminals on the dashboard",
        Duration::from_secs(60),
        || async {
            let page = desk.try_page("/?sort=hostname").await?;
            (page.contains("全端末<b>40</b>") && page.matches("terminal-link").count() == 40)
                .then_some(page)
        },
    )
    .await?;
    assert!(page.contains("OQS-PC-0001"));
    for state in ["state-critical", "state-warning", "state-offline"] {
        assert!(page.contains(state), "the demo shows {state} terminals");
    }
    let mails = wait_for("mails written by the demo", Duration::from_secs(60), || {
        let dir = data.join("mail");
        async move {
            let n = std::fs::read_dir(dir).ok()?.flatten().count();
            (n > 0).then_some(n)
        }
    })
    .await?;
    assert!(mails > 0);
    assert!(demo.is_running());
    demo.kill()?;
    Ok(())
}
