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
    // The two accounts limited to a scope see a part of the fleet, say so, and manage no one.
    for (user, scope) in [
        ("demo-tokyo", "担当: 東京都"),
        ("demo-dealer", "担当: グループ"),
    ] {
        let scoped = DeskClient::login(&base, user, "demo-password-for-tests")
            .await
            .ok_or_else(|| anyhow::anyhow!("{user} cannot sign in"))?;
        let page = scoped.page("/").await;
        assert!(page.contains(scope), "{user}");
        assert!(!page.contains("全端末<b>40</b>"), "{user} sees only a part");
        assert_eq!(scoped.get("/users").await.status().as_u16(), 403, "{user}");
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
    moved_to_postgres(&data).await
}

/// The demo's database moves to PostgreSQL (`migrate-data`, as a desk that outgrows one
/// machine would) and a server on the new database serves the same fleet, with the same
/// staff account and the same terminal tokens.
async fn moved_to_postgres(data: &std::path::Path) -> Result<()> {
    let url = onshi_testkit::pg::fresh_schema_url().await;
    let copied = onshi_server::migrate_data::migrate_data(&data.join("onshi.db"), &url).await?;
    let count = |table: &str| {
        copied
            .iter()
            .find(|c| c.table == table)
            .map_or(0, |c| c.rows)
    };
    assert_eq!(count("terminals"), 40, "{copied:?}");
    assert!(
        count("alerts") > 0 && count("alert_history") > 0,
        "{copied:?}"
    );
    assert!(count("users") >= 1 && count("audit_log") > 0, "{copied:?}");
    assert!(count("events") > 0 && count("outbox") > 0, "{copied:?}");
    // Into a database that already holds rows: refused, and nothing more is written.
    let again = onshi_server::migrate_data::migrate_data(&data.join("onshi.db"), &url).await;
    assert!(again.is_err(), "a second copy into the same database");

    let mut config = onshi_server::Config {
        data_dir: data.to_path_buf(),
        database_url: Some(url),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..onshi_server::Config::default()
    };
    config.alerts.evaluate_every_secs = 3600;
    let app = onshi_server::Application::build(config).await?;
    let base = format!("http://{}", app.local_addr()?);
    let store = app.store();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let desk = DeskClient::login(&base, "demo", "demo-password-for-tests")
        .await
        .expect("the demo account logs in on PostgreSQL");
    let page = desk.page("/?sort=hostname").await;
    assert!(
        page.contains("全端末<b>40</b>"),
        "the whole fleet on PostgreSQL"
    );
    assert!(page.contains("OQS-PC-0001"));
    let alerts = desk.page("/alerts").await;
    assert!(alerts.contains("OQS-PC-"), "the alerts came along");
    // A terminal's token still works: the copy kept every token hash.
    let tokens = store.active_tokens().await?;
    assert_eq!(tokens.len(), 40);
    let _ = stop.send(());
    server.await??;
    Ok(())
}
