//! End to end: the server speaks HTTPS itself (`[tls] cert` and `key`, no reverse proxy). The
//! real agent enrolls and reports with `--ca-cert`; an agent that does not trust the CA and a
//! plain-HTTP client get nowhere; a renewed certificate is served after SIGHUP without a
//! restart.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use onshi_e2e::{
    FakeMachine, add_clinic, enroll_and_run_agent, enroll_and_run_agent_trusting, free_port,
    start_server, wait_for,
};
use onshi_server::store::connect;
use onshi_testkit::TestPki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_enrolls_and_reports_over_https_and_a_renewed_certificate_is_served_on_sighup()
-> Result<()> {
    onshi_server::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let pki = TestPki::create(dir.path(), "first")?;
    let renewed = TestPki::create(dir.path(), "renewed")?;
    let (cert, key) = (
        dir.path().join("tls-cert.pem"),
        dir.path().join("tls-key.pem"),
    );
    pki.install(&cert, &key)?;
    let config = dir.path().join("server.toml");
    // Looked at hourly only: the renewal below is picked up by the signal.
    std::fs::write(
        &config,
        format!(
            "[policy]\ninterval_secs = 1\n\n[tls]\ncert = {:?}\nkey = {:?}\nwatch_secs = 3600\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )?;
    let code = add_clinic(&data, "テスト内科", "clinic@example.jp")?;
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let server = start_server(&data, &config, port)?;
    let trusting = pki.client();
    let started = std::time::Instant::now();
    wait_for("the server over HTTPS", Duration::from_secs(20), || {
        let req = trusting.get(format!("{base}/healthz")).send();
        async move { req.await.ok().filter(|r| r.status().is_success()) }
    })
    .await?;

    // Plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    ensure!(
        plain.as_ref().map_or(true, |r| !r.status().is_success()),
        "plain HTTP answered: {plain:?}"
    );

    // An agent without the CA refuses the server's certificate and enrolls nowhere.
    let machine = FakeMachine::healthy(&dir.path().join("root"), "onshi-tls-pc");
    let untrusting =
        enroll_and_run_agent(&dir.path().join("agent-untrusting"), &machine, &base, &code);
    ensure!(
        untrusting.is_err(),
        "an agent enrolled without trusting the CA"
    );

    // With --ca-cert it enrolls and reports.
    let (agent_id, _agent) =
        enroll_and_run_agent_trusting(&dir.path().join("agent"), &machine, &base, &code, &pki.ca)?;
    let store = connect(&onshi_e2e::database_of(&data)?).await?;
    wait_for("a report over HTTPS", Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let (seq, _) = store.latest_snapshot(agent_id).await.ok()??;
            (seq >= 2).then_some(())
        }
    })
    .await?;

    eprintln!(
        "enrolled and reported over HTTPS {:?} after the server started",
        started.elapsed()
    );
    // The certificate is renewed by another CA; SIGHUP makes the server load it.
    renewed.install(&cert, &key)?;
    let after_renewal = renewed.client();
    ensure!(
        after_renewal
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "the renewed certificate was served before the signal"
    );
    let pid = server.id().context("server pid")?;
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    ensure!(hup.success(), "kill -HUP {pid}");
    wait_for("the renewed certificate", Duration::from_secs(10), || {
        let req = after_renewal.get(format!("{base}/healthz")).send();
        async move { req.await.ok().filter(|r| r.status().is_success()) }
    })
    .await?;
    // New connections get the new certificate; the process is the same one.
    ensure!(server.id() == Some(pid));
    ensure!(
        pki.client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "a new client trusting only the old CA still connects"
    );
    Ok(())
}

/// `systemctl reload` sends SIGHUP whatever the configuration: without `[tls]` the server logs
/// that there is nothing to reload and goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_tls_does_not_stop_the_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[alerts]\nenabled = false\n")?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&data, &config, port)?;
    onshi_e2e::wait_healthy(&base).await?;
    let pid = server.id().context("server pid")?;
    for _ in 0..2 {
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()?;
        ensure!(hup.success(), "kill -HUP {pid}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let health = reqwest::get(format!("{base}/healthz")).await?;
    ensure!(health.status().is_success(), "the server stopped on SIGHUP");
    ensure!(server.is_running(), "the process exited");
    Ok(())
}
