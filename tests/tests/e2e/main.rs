//! End-to-end tests: the real binaries as processes, a real SMTP receiver, headless Chromium.

mod browser;
mod mail;
mod pipeline;
