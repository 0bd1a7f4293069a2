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
