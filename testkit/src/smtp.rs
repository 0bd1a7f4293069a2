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
    /// Accept this many more mails, then keep the next one (it counts as received) and never
    /// answer: the sender cannot know it was delivered.
    KeepAndHangAfter(usize),
    /// Accept every mail, each after this many milliseconds (a slow server).
    Slow(u64),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    /// The Subject, decoded from RFC 2047.
    pub fn subject(&self) -> String {
        decode_subject(&self.header("Subject").unwrap_or_default())
    }

    /// The text parts, decoded (lettre picks base64 or quoted-printable).
    pub fn text(&self) -> String {
        decoded_text(&self.data)
    }

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
            let received = Received {
                from: from.clone(),
                to: to.clone(),
                data,
            };
            let (hang, keep, delay) = {
                let mut s = shared.lock().unwrap();
                match s.mode {
                    Some(Mode::HangAfter(0)) => (true, false, 0),
                    Some(Mode::HangAfter(n)) => {
                        s.mode = Some(Mode::HangAfter(n - 1));
                        (false, true, 0)
                    }
                    Some(Mode::KeepAndHangAfter(0)) => (true, true, 0),
                    Some(Mode::KeepAndHangAfter(n)) => {
                        s.mode = Some(Mode::KeepAndHangAfter(n - 1));
                        (false, true, 0)
                    }
                    Some(Mode::Slow(ms)) => (false, true, ms),
                    _ => (false, true, 0),
                }
            };
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if keep {
                shared.lock().unwrap().mails.push(received);
            }
            if hang {
                // Never answer: the client is left waiting, as with a server that died.
                std::future::pending::<()>().await;
            }
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

/// The text/plain part of a received mail, decoded (lettre picks base64 or quoted-printable).
pub fn decoded_text(data: &str) -> String {
    let mut out = String::new();
    for part in data.split("\r\n\r\n").skip(1) {
        let joined: String = part.lines().take_while(|l| !l.starts_with("--")).collect();
        if let Some(bytes) = base64_decode(&joined) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            out.push_str(&qp_decode(part));
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim().trim_end_matches('=');
    if s.is_empty() || !s.bytes().all(|b| ALPHABET.contains(&b)) {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == b)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

fn qp_decode(s: &str) -> String {
    let mut bytes = Vec::new();
    let raw = s.replace("=\r\n", "");
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&raw[i + 1..i + 3], 16)
        {
            bytes.push(v);
            i += 3;
            continue;
        }
        bytes.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decodes RFC 2047 `=?utf-8?b?...?=` / `?q?` words; whitespace between two encoded words
/// is dropped, as the RFC says.
pub fn decode_subject(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    let mut pending_space = String::new();
    let mut last_encoded = false;
    while !rest.is_empty() {
        let lower = rest.to_ascii_lowercase();
        let encoded = lower.starts_with("=?utf-8?b?") || lower.starts_with("=?utf-8?q?");
        if encoded && let Some(end) = rest[10..].find("?=") {
            let payload = &rest[10..10 + end];
            let text = if lower.starts_with("=?utf-8?b?") {
                String::from_utf8_lossy(&base64_decode(payload).unwrap_or_default()).into_owned()
            } else {
                qp_decode(&payload.replace('_', " "))
            };
            if !last_encoded {
                out.push_str(&pending_space);
            }
            pending_space.clear();
            out.push_str(&text);
            last_encoded = true;
            rest = &rest[10 + end + 2..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            pending_space.push(c);
        } else {
            out.push_str(&pending_space);
            pending_space.clear();
            out.push(c);
            last_encoded = false;
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}
