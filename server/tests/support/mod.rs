//! Shared by the server's integration tests.
#![allow(dead_code)]

pub mod smtp;

use onshi_server::Config;
use onshi_server::config::{DbArgs, FileConfig};

/// Defaults, a database in `dir`, and a random loopback port.
pub fn test_config(dir: &std::path::Path) -> Config {
    let args = DbArgs {
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Config::resolve(FileConfig::default(), &args, Some(listen))
        .expect("the default configuration resolves")
}

/// A server running in this process on a random port, with one clinic and its enrollment code.
pub struct Started {
    pub base: String,
    pub store: std::sync::Arc<dyn onshi_server::store::Store>,
    pub code: String,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub server: tokio::task::JoinHandle<Result<(), onshi_server::Error>>,
}

/// Builds the application from `config`, adds the clinic 「さくら内科クリニック」 with a code, and
/// serves until `stop` fires.
pub async fn start(config: Config) -> Started {
    onshi_server::install_crypto_provider();
    let app = onshi_server::Application::build(config)
        .await
        .expect("the application builds");
    let addr = app.local_addr().expect("bound");
    let store = app.store();
    let now = chrono::Utc::now();
    let clinic = store
        .create_clinic("さくら内科クリニック", "sakura@example.jp", now)
        .await
        .expect("clinic created");
    let code = onshi_server::enroll::issue_code(store.as_ref(), &clinic, now, 30)
        .await
        .expect("code issued");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Started {
        base: format!("http://{addr}"),
        store,
        code,
        stop,
        server,
    }
}
