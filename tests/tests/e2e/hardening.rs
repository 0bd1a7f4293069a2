//! End to end: a burst of wrong passwords against the real server binary. Password checks run
//! a few at a time (argon2id holds 19 MiB each), so the burst cannot raise the server's memory
//! by more than 100 MB; the attempts past the account's limit are refused before any check.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use onshi_e2e::{add_staff_user, free_port, start_server, wait_healthy};
use onshi_testkit::desk::{csrf_of, no_redirects, session_cookie};
use reqwest::StatusCode;

/// The peak resident memory of a process so far (`VmHWM`), in kB.
fn peak_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_is_counted_first_and_hashed_a_few_at_a_time() -> Result<()> {
    onshi_server::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[alerts]\nenabled = false\n")?;
    add_staff_user(&data, "ann", "admin", "e2e staff password")?;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&data, &config, port)?;
    wait_healthy(&base).await?;
    let pid = server.id().context("server pid")?;

    // Each attacker fetches the login form first, as a browser would; then all post at once.
    let client = no_redirects();
    let mut forms = Vec::new();
    for _ in 0..100 {
        let page = client.get(format!("{base}/login")).send().await?;
        let cookie = session_cookie(&page).context("login cookie")?;
        forms.push((cookie, csrf_of(&page.text().await?)));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = peak_kb(pid)?;
    let tries: Vec<_> = forms
        .into_iter()
        .enumerate()
        .map(|(i, (cookie, csrf))| {
            let client = client.clone();
            let url = format!("{base}/login");
            // Several accounts, so more than one account's limit is in play.
            let user = ["ann", "bob", "carol", "dave"][i % 4];
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("cookie", cookie)
                    .form(&[
                        ("username", user),
                        ("password", "wrong password here"),
                        ("csrf", csrf.as_str()),
                    ])
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tries {
        statuses.push(t.await??);
    }
    let after = peak_kb(pid)?;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    server.kill()?;
    ensure!(
        checked + refused == 100,
        "every attempt answered 401 or 429: {statuses:?}"
    );
    ensure!(
        checked <= 4 * 5,
        "{checked} passwords checked: at most the limit (5) per account"
    );
    let grown_mb = after.saturating_sub(before) / 1024;
    ensure!(
        grown_mb < 100,
        "the burst raised the server's peak memory by {grown_mb} MB"
    );
    Ok(())
}
