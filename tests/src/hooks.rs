//! An HTTP receiver on a loopback port for the desk's channels: it records every request (path,
//! headers, body) with the status it answered, can refuse the first few with 503, and can be
//! stopped (connections refused) and started again on the same port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    hooks: Vec<Hook>,
    /// Requests still to refuse with 503, by path.
    refuse: HashMap<String, usize>,
}

pub struct HookReceiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_string();
    let mut s = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let status = match s.refuse.get_mut(&path) {
        Some(n) if *n > 0 => {
            *n -= 1;
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::OK,
    };
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    s.hooks.push(Hook {
        path,
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
    });
    status
}

impl HookReceiver {
    pub async fn start() -> anyhow::Result<HookReceiver> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), shared).await
    }

    async fn start_on(
        addr: SocketAddr,
        shared: Arc<Mutex<Shared>>,
    ) -> anyhow::Result<HookReceiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(HookReceiver {
            addr,
            shared,
            task: Some(task),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Refuses the next `n` requests to `path` with 503.
    pub fn refuse(&self, path: &str, n: usize) {
        self.lock().refuse.insert(path.to_string(), n);
    }

    /// Stops listening: senders get connection refused.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port, keeping what was received.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let again = Self::start_on(self.addr, self.shared.clone()).await?;
        self.task = again.task;
        Ok(())
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.lock().hooks.clone()
    }

    /// The requests to `path`.
    pub fn at(&self, path: &str) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| h.path == path)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
