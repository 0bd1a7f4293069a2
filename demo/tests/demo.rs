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
    // Severity, handling and liveness side by side: criticals acknowledged and silenced,
    // terminals offline at the clinic open around the clock and switched off at the one
    // closed today.
    let wanted = [
        "badge state-critical",
        "badge state-warning",
        "badge handling-unhandled",
        "badge handling-in_progress",
        "badge handling-silenced",
        "badge live-receiving",
        "badge live-offline",
        "badge live-outside_hours",
    ];
    let page = wait_for(
        "every severity, handling and liveness",
        Duration::from_secs(90),
        || async {
            let page = desk.try_page("/?sort=hostname").await?;
            wanted.iter().all(|w| page.contains(w)).then_some(page)
        },
    )
    .await;
    if let Err(e) = &page {
        let now = desk.page("/?sort=hostname").await;
        let missing: Vec<_> = wanted.iter().filter(|w| !now.contains(*w)).collect();
        panic!("{e}: missing {missing:?}");
    }
    // The acknowledged and the silenced ones are criticals: the handling sits beside the
    // severity, never instead of it.
    let page = desk.page("/?sort=hostname").await;
    let rows: Vec<&str> = page.split("<tr>").collect();
    for handling in ["handling-in_progress", "handling-silenced"] {
        assert!(
            rows.iter()
                .any(|r| r.contains("badge state-critical") && r.contains(handling)),
            "a critical that is {handling}"
        );
    }
    let silences = desk.page("/silences").await;
    assert!(silences.contains("毎日 03:30〜05:00"), "the nightly window");
    assert!(silences.contains("回線業者の工事中"));
    let clinics = desk.page("/clinics").await;
    assert!(clinics.contains("さくら内科クリニック"));
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
