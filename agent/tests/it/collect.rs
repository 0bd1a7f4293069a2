//! `sources::collect` over a fake machine.

// Test code: a panic is the failure report.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use onshi_agent::config::AgentConfig;
use onshi_agent::sources::{self, Ctx};
use onshi_shared::{AccountRole, AgentPolicy, BackupState, Validate};
use onshi_testkit::FakeMachine;
use onshi_testkit::machine::{BTIME, accounts};

fn ctx(root: &FakeMachine, data_dir: &std::path::Path, policy: AgentPolicy) -> Ctx {
    let cfg = AgentConfig {
        root: root.path().to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        ..AgentConfig::default()
    };
    Ctx::new(&cfg, policy, BTreeMap::new(), Utc::now())
}

#[tokio::test]
async fn collects_every_area_from_a_fake_root() {
    let root = FakeMachine::lab();
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe = listener.local_addr().unwrap().to_string();
    let policy = AgentPolicy {
        accounts: accounts(),
        probe_targets: vec![probe.clone()],
        ..AgentPolicy::default()
    };
    let s = sources::collect(&ctx(&root, data.path(), policy)).await;
    s.validate().unwrap();

    assert_eq!(s.hostname, "onshi-test-pc");
    assert_eq!(s.os, "Debian GNU/Linux 13 (trixie)");
    assert_eq!(s.agent_version, env!("CARGO_PKG_VERSION"));

    assert!(s.uptime.uptime_secs > 0);
    assert_eq!(s.uptime.uptime_secs, 12345);
    assert_eq!(
        s.uptime.last_boot,
        DateTime::from_timestamp(BTIME, 0).unwrap()
    );
    assert_eq!(s.uptime.last_start, s.uptime.last_boot);

    let accounts = &s.accounts.accounts;
    assert_eq!(accounts.len(), 3);
    assert_eq!(accounts[0].role, AccountRole::Windows);
    assert!(accounts[0].exists);
    assert_eq!(accounts[0].sid.as_deref(), Some("uid:1001"));
    assert_eq!(accounts[0].locked, Some(false));
    assert_eq!(accounts[0].enabled, Some(true));
    assert!(accounts[0].password_expires.is_some());
    assert_eq!(accounts[1].locked, Some(true));
    assert!(!accounts[2].exists);
    assert_eq!(s.accounts.auditing, None);

    let certs = &s.certificates.certs;
    assert_eq!(certs.len(), 2, "{certs:?}");
    let current = s.certificates.current().unwrap();
    assert_eq!(
        current.thumbprint,
        "7234316D34F332E646EC9341A78AB4A33429E5C5"
    );
    assert_eq!(current.serial, "4F2A19");
    assert_eq!(current.subject, "CN=1312345678,O=Sample Clinic,C=JP");
    assert!(current.has_private_key);
    assert_eq!(current.store, "etc/onshi/certs/clinic.pem");
    let old = certs.iter().find(|c| c.serial == "C0FFEE01").unwrap();
    assert!(!old.has_private_key);
    assert_eq!(s.certificates.backup, None);

    let net = &s.network;
    assert_eq!(net.default_gateway.as_deref(), Some("192.168.10.1"));
    assert_eq!(net.gateway_mac.as_deref(), Some("00:aa:bb:cc:dd:ee"));
    assert_eq!(net.fingerprint.len(), 16);
    let enp = net.adapters.iter().find(|a| a.name == "enp3s0").unwrap();
    assert_eq!(enp.mac.as_deref(), Some("00:11:22:33:44:55"));
    assert_eq!(enp.addresses, ["192.168.10.21/24"]);
    assert_eq!(enp.dns, ["192.168.10.1", "8.8.8.8"]);
    assert!(net.adapters.iter().all(|a| a.name != "lo"));
    assert_eq!(net.probes.len(), 1);
    assert_eq!(net.probes[0].target, probe);
    assert!(net.probes[0].reachable, "{:?}", net.probes[0]);

    let apps = &s.apps;
    let names: Vec<_> = apps.installed.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["配信アプリ", "連携アプリ"]);
    assert_eq!(apps.installed[0].version.as_deref(), Some("2.4.1"));
    assert_eq!(
        apps.missing,
        ["顔認証ライブラリ", "顔認証付きカードリーダーアプリ"]
    );
    let reboot = apps.pending_reboot.as_ref().unwrap();
    assert_eq!(reboot.reasons, ["reboot-required", "libc6"]);
    assert!(reboot.since.is_some());

    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

#[tokio::test]
async fn missing_files_degrade_per_field_with_notes() {
    let root = FakeMachine::lab();
    for rel in [
        "proc/uptime",
        "etc/shadow",
        "etc/hostname",
        "proc/net/arp",
        "var/lib/onshi/apps.json",
    ] {
        root.remove(rel);
    }
    let data = tempfile::tempdir().unwrap();
    let policy = AgentPolicy {
        accounts: accounts(),
        ..AgentPolicy::default()
    };
    let s = sources::collect(&ctx(&root, data.path(), policy)).await;
    s.validate().unwrap();
    // Boot time still known from /proc/stat; uptime computed from it.
    assert_eq!(
        s.uptime.last_boot,
        DateTime::from_timestamp(BTIME, 0).unwrap()
    );
    assert!(s.uptime.uptime_secs > 0);
    assert_eq!(s.hostname, "unknown");
    assert_eq!(s.accounts.accounts[0].locked, None);
    assert!(s.accounts.accounts[0].exists);
    assert_eq!(s.network.gateway_mac, None);
    assert_eq!(s.network.default_gateway.as_deref(), Some("192.168.10.1"));
    assert!(s.apps.installed.is_empty() && s.apps.missing.is_empty());
    let areas: Vec<_> = s.notes.iter().map(|n| n.area.as_str()).collect();
    for area in ["uptime", "accounts", "system", "network", "apps"] {
        assert!(areas.contains(&area), "no note for {area}: {:?}", s.notes);
    }
}

#[tokio::test]
async fn an_empty_root_still_gives_a_valid_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cfg = AgentConfig {
        root: root.path().to_path_buf(),
        data_dir: data.path().to_path_buf(),
        ..AgentConfig::default()
    };
    let s = sources::collect(&Ctx::new(
        &cfg,
        AgentPolicy::default(),
        BTreeMap::new(),
        Utc::now(),
    ))
    .await;
    s.validate().unwrap();
    assert!(!s.notes.is_empty());
}

#[tokio::test]
async fn a_rename_is_seen_through_the_remembered_uid() {
    let root = FakeMachine::lab();
    root.write(
        "etc/passwd",
        "onshi-renamed:x:1001:1001::/home/onshi:/bin/bash\nkao:x:1002:1002::/home/kao:/bin/bash\n",
    );
    let data = tempfile::tempdir().unwrap();
    let policy = AgentPolicy {
        accounts: accounts(),
        ..AgentPolicy::default()
    };
    let mut ctx = ctx(&root, data.path(), policy);
    ctx.known_sids = BTreeMap::from([(AccountRole::Windows, "uid:1001".to_string())]);
    let s = sources::collect(&ctx).await;
    assert_eq!(s.accounts.accounts[0].name, "onshi-renamed");
    assert!(s.accounts.accounts[0].exists);
}

#[tokio::test]
async fn the_backup_record_is_checked_against_the_current_certificate() {
    let root = FakeMachine::lab();
    let data = tempfile::tempdir().unwrap();
    let backup = BackupState {
        thumbprint: "4FB032DA5AC10B53DE991F766E94543B1D18EF1D".into(),
        verified_at: Utc::now(),
        not_after: None,
        matches_current: true,
    };
    std::fs::write(
        data.path().join("backup.json"),
        serde_json::to_vec(&backup).unwrap(),
    )
    .unwrap();
    let s = sources::collect(&ctx(&root, data.path(), AgentPolicy::default())).await;
    let got = s.certificates.backup.unwrap();
    assert_eq!(got.thumbprint, backup.thumbprint);
    assert!(!got.matches_current, "the backup is of the old certificate");
}
