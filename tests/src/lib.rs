//! Helpers for end-to-end tests: the real `onshi-server` and `onshi-agent` binaries as child
//! processes, and a fake terminal filesystem for the agent's `--root`.

pub mod webdriver;

/// The SMTP receiver the server's own tests use: real TCP on a loopback port.
#[allow(clippy::unwrap_used)]
#[path = "../../server/tests/support/smtp.rs"]
pub mod smtp;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The workspace's `target/<profile>` directory, found from this test executable.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/e2e-<hash> -> target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    Ok(dir.to_path_buf())
}

/// Path of a workspace binary. `cargo test --workspace` builds both binaries; when only this
/// package is tested, they are built into a separate target directory (the running cargo holds
/// the lock on the main one).
pub fn binary(name: &str) -> Result<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let path = bin_dir()?.join(&file);
    if path.exists() {
        return Ok(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = workspace.join("target/e2e-bins");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--bin", name, "--target-dir"])
        .arg(&target)
        .current_dir(&workspace)
        .status()
        .context("running cargo build")?;
    let built = target.join("debug").join(&file);
    if !status.success() || !built.exists() {
        bail!("could not build {name}");
    }
    Ok(built)
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process that is killed when dropped, so a failing test leaves nothing behind.
pub struct Proc {
    pub name: &'static str,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Result<Proc> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name,
            child: Some(child),
        })
    }

    /// Kills the process (SIGKILL: nothing gets a chance to flush) and waits for it.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child
                .wait()
                .with_context(|| format!("waiting for {}", self.name))?;
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fake Linux terminal for `onshi-agent --root`.
pub struct FakeMachine {
    pub root: PathBuf,
}

/// The agent crate's fixtures (real /proc/net captures and test certificates).
pub fn agent_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures")
}

impl FakeMachine {
    /// A healthy terminal: three protected accounts, the clinic certificate with its key, two
    /// watched apps, one wired adapter with gateway 192.168.10.1.
    pub fn new(root: &Path, hostname: &str) -> Result<FakeMachine> {
        let m = FakeMachine {
            root: root.to_path_buf(),
        };
        m.write("proc/uptime", "7200.50 14000.00\n")?;
        let btime = chrono::Utc::now().timestamp() - 7200;
        m.write("proc/stat", &format!("cpu  1 2 3 4\nbtime {btime}\n"))?;
        m.write("etc/hostname", &format!("{hostname}\n"))?;
        m.write("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12\"\n")?;
        m.set_accounts("renkei")?;
        let certs = agent_fixtures().join("certs");
        m.copy(&certs.join("clinic.pem"), "etc/onshi/certs/clinic.pem")?;
        m.write("etc/onshi/certs/clinic.key", "presence only\n")?;
        m.write(
            "var/lib/onshi/apps.json",
            r#"[{"name":"配信アプリ","version":"2.4.1","installed_on":"20260901"},
                {"name":"連携アプリ","version":"1.12.0","installed_on":"20260901"}]"#,
        )?;
        let net = agent_fixtures().join("net");
        m.copy(&net.join("fib_trie"), "proc/net/fib_trie")?;
        m.copy(&net.join("resolv.conf"), "etc/resolv.conf")?;
        m.set_gateway("010AA8C0", "192.168.10.1", "00:aa:bb:cc:dd:ee")?;
        m.write("sys/class/net/enp3s0/address", "00:11:22:33:44:55\n")?;
        m.write("sys/class/net/enp3s0/operstate", "up\n")?;
        Ok(m)
    }

    /// passwd/shadow with the linkage account (uid 1003) under `linkage_name`.
    pub fn set_accounts(&self, linkage_name: &str) -> Result<()> {
        self.write(
            "etc/passwd",
            &format!(
                "root:x:0:0:root:/root:/bin/bash\n\
                 onshi:x:1001:1001::/home/onshi:/bin/bash\n\
                 kao:x:1002:1002::/home/kao:/bin/bash\n\
                 {linkage_name}:x:1003:1003::/home/renkei:/bin/bash\n"
            ),
        )?;
        self.write(
            "etc/shadow",
            &format!(
                "root:*:20000:0:99999:7:::\n\
                 onshi:$y$j9T$s$h:20400:0:99999:7:::\n\
                 kao:$y$j9T$s$h:20400:0:99999:7:::\n\
                 {linkage_name}:$y$j9T$s$h:20400:0:99999:7:::\n"
            ),
        )
    }

    /// The default route through `gateway_hex` (little-endian, as /proc/net/route shows it).
    pub fn set_gateway(&self, gateway_hex: &str, gateway: &str, mac: &str) -> Result<()> {
        self.write(
            "proc/net/route",
            &format!(
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 enp3s0\t00000000\t{gateway_hex}\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                 enp3s0\t000AA8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
            ),
        )?;
        self.write(
            "proc/net/arp",
            &format!(
                "IP address       HW type     Flags       HW address            Mask     Device\n\
                 {gateway:<16} 0x1         0x2         {mac}     *        enp3s0\n"
            ),
        )
    }

    pub fn write(&self, rel: &str, content: &str) -> Result<()> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))
    }

    fn copy(&self, from: &Path, rel: &str) -> Result<()> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(from, &path).with_context(|| format!("copying {}", from.display()))?;
        Ok(())
    }
}

/// Creates a staff account with the server's own CLI (`user add --password-stdin`).
pub fn add_staff_user(data_dir: &Path, name: &str, role: &str, password: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(binary("onshi-server")?)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--log", "warn", "user", "add", name, "--role", role])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin of user add")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A signed-in dashboard session over plain HTTP (the session cookie, no redirects followed).
pub struct DashboardSession {
    base: String,
    cookie: String,
    client: reqwest::Client,
}

impl DashboardSession {
    /// `POST /login`; `None` while the server is not up or refuses.
    pub async fn login(base: &str, user: &str, password: &str) -> Option<DashboardSession> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        let resp = client
            .post(format!("{base}/login"))
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .ok()?;
        if resp.status() != reqwest::StatusCode::SEE_OTHER {
            return None;
        }
        let cookie = resp
            .headers()
            .get("set-cookie")?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .to_string();
        Some(DashboardSession {
            base: base.to_string(),
            cookie,
            client,
        })
    }

    /// The page at `path`, or `None` when it did not answer 200.
    pub async fn page(&self, path: &str) -> Option<String> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .ok()?;
        if resp.status() != reqwest::StatusCode::OK {
            return None;
        }
        resp.text().await.ok()
    }
}

/// Starts `onshi-server serve` on a loopback port with a data directory and a config file.
pub fn start_server(data: &Path, config: &Path, port: u16) -> Result<Proc> {
    Proc::spawn(
        "onshi-server",
        Command::new(binary("onshi-server")?)
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config)
            .args(["--log", "warn", "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}")),
    )
}

/// Waits until the server at `base` answers its health check.
pub async fn wait_healthy(base: &str) -> Result<()> {
    let client = reqwest::Client::new();
    wait_for("server health", Duration::from_secs(20), || {
        let req = client.get(format!("{base}/healthz")).send();
        async move { req.await.ok().filter(|r| r.status().is_success()) }
    })
    .await
    .map(|_| ())
}

/// Adds a clinic through `onshi-server clinic add` and returns the enrollment code it printed.
pub fn add_clinic(data: &Path, name: &str, email: &str) -> Result<String> {
    let out = Command::new(binary("onshi-server")?)
        .arg("--data-dir")
        .arg(data)
        .args(["clinic", "add", name, "--email", email])
        .output()?;
    if !out.status.success() {
        bail!("clinic add: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8(out.stdout)?;
    Ok(stdout
        .lines()
        .find_map(|l| l.strip_prefix("enrollment code: "))
        .with_context(|| format!("no enrollment code printed:\n{stdout}"))?
        .trim()
        .to_string())
}

/// Enrolls a terminal through `POST /api/v1/enroll` with an enrollment code.
pub async fn enroll(
    client: &reqwest::Client,
    base: &str,
    code: &str,
    hostname: &str,
) -> Result<onshi_shared::EnrollResponse> {
    let resp = client
        .post(format!("{base}/api/v1/enroll"))
        .json(&onshi_shared::EnrollRequest {
            schema: onshi_shared::SCHEMA_VERSION,
            code: code.into(),
            hostname: hostname.into(),
            agent_version: "0.1.0".into(),
            os: "Windows 11 Pro 23H2".into(),
        })
        .send()
        .await
        .context("POST /api/v1/enroll")?;
    json_reply(resp, &format!("enroll {hostname:?}")).await
}

/// The JSON body of a successful reply; any other status is an error carrying the body.
pub async fn json_reply<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T> {
    let status = resp.status();
    let body = resp.text().await?;
    ensure!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).with_context(|| format!("{what} reply {body}"))
}
