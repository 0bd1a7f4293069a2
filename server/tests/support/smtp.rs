//! A small SMTP receiver for tests: real TCP on a loopback port, EHLO/HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT. It can refuse with 4xx or 5xx on demand, hang after DATA (a server that
//! never answers), and be stopped and started again on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 451 to MAIL FROM.
    TempFail,
    /// 550 to MAIL FROM.
    PermFail,
    /// Accept this many more mails, then take the next one's DATA and never answer.
    HangAfter(usize),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = head.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            if line.to_ascii_lowercase().starts_with(&prefix) {
                let mut value = line[prefix.len()..].trim().to_string();
                while let Some(next) = lines.peek() {
                    if next.starts_with(' ') || next.starts_with('\t') {
                        value.push_str(next.trim_start());
                        lines.next();
                    } else {
                        break;
                    }
                }
                return Some(value);
            }
        }
        None
    }
}

#[derive(Default)]
struct Shared {
    mails: Vec<Received>,
    mode: Option<Mode>,
}

pub struct SmtpReceiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    tasks: Option<JoinSet<()>>,
}

impl SmtpReceiver {
    pub async fn start() -> SmtpReceiver {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Arc::default()).await
    }

    async fn start_on(addr: SocketAddr, shared: Arc<Mutex<Shared>>) -> SmtpReceiver {
        let mut listener = None;
        for _ in 0..50 {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("binding the SMTP receiver");
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        let accept_shared = shared.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                conns.spawn(session(stream, accept_shared.clone()));
            }
        });
        SmtpReceiver {
            addr,
            shared,
            tasks: Some(tasks),
        }
    }

    /// Closes the port and every open session (the server "goes down").
    pub async fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Starts again on the same port, keeping what was received.
    pub async fn restart(&mut self) {
        self.stop().await;
        let again = Self::start_on(self.addr, self.shared.clone()).await;
        self.tasks = again.tasks;
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().unwrap().mode = Some(mode);
    }

    pub fn mails(&self) -> Vec<Received> {
        self.shared.lock().unwrap().mails.clone()
    }

    /// Waits until at least `n` mails arrived (or panics after `secs`).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {secs} s for {n} mails, got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn session(stream: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let out = |s: &'static str| s.as_bytes().to_vec();
    if write
        .write_all(&out("220 receiver.test ESMTP\r\n"))
        .await
        .is_err()
    {
        return;
    }
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let upper = line.to_ascii_uppercase();
        let mode = shared.lock().unwrap().mode.unwrap_or(Mode::Accept);
        let reply: Vec<u8> = if upper.starts_with("EHLO") {
            out("250-receiver.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
        } else if upper.starts_with("HELO") {
            out("250 receiver.test\r\n")
        } else if upper.starts_with("MAIL FROM:") {
            match mode {
                Mode::TempFail => out("451 4.3.0 try again later\r\n"),
                Mode::PermFail => out("550 5.7.1 refused\r\n"),
                _ => {
                    from = line[10..].trim().to_string();
                    to.clear();
                    out("250 OK\r\n")
                }
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().to_string());
            out("250 OK\r\n")
        } else if upper.starts_with("DATA") {
            if write.write_all(&out("354 end with .\r\n")).await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                match lines.read_line(&mut l).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
            }
            let hang = {
                let mut s = shared.lock().unwrap();
                match s.mode {
                    Some(Mode::HangAfter(0)) => true,
                    Some(Mode::HangAfter(n)) => {
                        s.mode = Some(Mode::HangAfter(n - 1));
                        false
                    }
                    _ => false,
                }
            };
            if hang {
                // Never answer: the client is left waiting, as with a server that died.
                std::future::pending::<()>().await;
            }
            shared.lock().unwrap().mails.push(Received {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            out("250 2.0.0 queued\r\n")
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            out("250 OK\r\n")
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(&out("221 bye\r\n")).await;
            return;
        } else {
            out("502 5.5.2 command not recognized\r\n")
        };
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}
