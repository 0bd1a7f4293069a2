//! End-to-end tests: the real binaries as processes, a real SMTP receiver, headless Chromium.

mod accounts;
mod browser;
mod channels;
mod hardening;
mod mail;
mod pipeline;
mod replicas;
mod restore;
mod tls;
