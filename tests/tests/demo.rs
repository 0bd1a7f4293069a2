//! The README's first command: `onshi-server demo` runs the server with a simulated fleet that
//! reports through the real HTTP API, opens alerts and writes the mails it would send.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use onshi_e2e::{Proc, binary, free_port, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fills_the_dashboard_and_writes_mails() -> Result<()> {
    onshi_server::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("demo-data");
    let port = free_port()?;
    let mut demo = Proc::spawn(
        "onshi-server demo",
        Command::new(binary("onshi-server")?)
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--log",
                "warn",
                "demo",
                "--terminals",
                "40",
                "--interval-secs",
                "5",
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}")),
    )?;
    let client = reqwest::Client::new();
    let page = wait_for(
        "40 terminals on the dashboard",
        Duration::from_secs(60),
        || {
            let req = client.get(format!("http://127.0.0.1:{port}/")).send();
            async move {
                let page = req.await.ok()?.text().await.ok()?;
                (page.contains("端末数<b>40</b>") && page.matches("<tr>").count() > 40)
                    .then_some(page)
            }
        },
    )
    .await?;
    assert!(page.contains("OQS-PC-0001"));
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
