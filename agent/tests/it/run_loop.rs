//! The run loop against a fake server on loopback: exactly-once, in-order delivery through
//! retries, refusals and restarts.

// Test code: a panic is the failure report.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use onshi_agent::config::AgentConfig;
use onshi_agent::identity::{AgentToken, Identity};
use onshi_agent::runner::{self, RunOptions};
use onshi_agent::spool::{Spool, SpoolLimits};
use onshi_shared::{AccountChange, AccountRole, AgentPolicy, Event, EventKind, Report, ReportAck};
use onshi_testkit::FakeMachine;
use onshi_testkit::machine::{BTIME, accounts};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use uuid::Uuid;

/// How the fake server answers a report.
type Judge = Box<dyn Fn(usize, &Report) -> u16 + Send + Sync>;

#[derive(Default)]
struct Seen {
    /// Every report received, with the status it was answered with.
    reports: Vec<(u16, Report)>,
    authorization: Vec<String>,
}

impl Seen {
    /// Events of the reports answered 200, in arrival order.
    fn stored_events(&self) -> Vec<Event> {
        self.reports
            .iter()
            .filter(|(status, _)| *status == 200)
            .flat_map(|(_, r)| r.events.clone())
            .collect()
    }
}

struct FakeServer {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

impl FakeServer {
    async fn start(judge: Judge) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                let (head, body) = onshi_testkit::http::read_request(&mut stream).await;
                let lower = head.to_ascii_lowercase();
                let json = if lower.contains("content-encoding: gzip") {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                } else {
                    body
                };
                let report: Report = serde_json::from_slice(&json).unwrap();
                let (status, answer) = {
                    let mut seen = state.lock().unwrap();
                    let status = judge(seen.reports.len(), &report);
                    let auth = lower
                        .lines()
                        .find(|l| l.starts_with("authorization:"))
                        .unwrap_or("")
                        .to_string();
                    seen.authorization.push(auth);
                    seen.reports.push((status, report.clone()));
                    let answer = if status == 200 {
                        serde_json::to_string(&ReportAck {
                            acked_seq: report.seq,
                            next_interval_secs: 60,
                            policy: policy(),
                        })
                        .unwrap()
                    } else {
                        r#"{"error":"test","detail":"refused by the test server"}"#.to_string()
                    };
                    (status, answer)
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        FakeServer { url, seen }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
}

fn policy() -> AgentPolicy {
    AgentPolicy {
        accounts: accounts(),
        ..AgentPolicy::default()
    }
}

struct Agent {
    root: FakeMachine,
    data: tempfile::TempDir,
    cfg: AgentConfig,
}

impl Agent {
    fn new(server: &FakeServer) -> Agent {
        let root = FakeMachine::lab();
        let data = tempfile::tempdir().unwrap();
        let cfg = AgentConfig {
            root: root.path().to_path_buf(),
            data_dir: data.path().to_path_buf(),
            ..AgentConfig::default()
        };
        Identity {
            server: server.url.clone(),
            agent_id: Uuid::now_v7(),
            token: AgentToken::new("test-token".into()),
            clinic_name: "Test Clinic".into(),
            enrolled_at: Utc::now(),
            policy: policy(),
        }
        .save(&cfg.identity_path())
        .unwrap();
        Agent { root, data, cfg }
    }

    /// Runs the agent until `done` says so (checked every 50 ms, at most 20 s), then stops it.
    async fn run_until(&self, server: &FakeServer, done: impl Fn(&Seen) -> bool) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = self.cfg.clone();
        let task = tokio::spawn(async move {
            let options = RunOptions {
                interval: Some(Duration::from_secs(1)),
                final_flush: Duration::from_secs(2),
            };
            runner::run(&cfg, options, async {
                let _ = rx.await;
            })
            .await
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(&server.seen()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out; reports so far: {:#?}",
                server
                    .seen()
                    .reports
                    .iter()
                    .map(|(s, r)| (s, r.seq, kinds(&r.events)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = tx.send(());
        task.await.unwrap().unwrap();
    }

    fn spool(&self) -> Spool {
        Spool::open(&self.cfg.spool_dir(), SpoolLimits::default()).unwrap()
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

fn assert_exactly_once(events: &[Event]) {
    let mut ids = HashSet::new();
    for e in events {
        assert!(ids.insert(e.id), "event {} stored twice", e.id);
    }
}

fn important(name: &str) -> Event {
    Event::new(
        Utc::now(),
        EventKind::AccountChanged {
            role: AccountRole::Linkage,
            name: name.into(),
            change: AccountChange::Locked,
        },
    )
}

fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::AccountChanged { name, .. } => name.clone(),
            other => other.name().to_string(),
        })
        .collect()
}

#[tokio::test]
async fn reports_start_and_changes_made_while_stopped_exactly_once_in_order() {
    let server = FakeServer::start(Box::new(|_, _| 200)).await;
    let agent = Agent::new(&server);

    agent.run_until(&server, |s| s.reports.len() >= 2).await;
    {
        let seen = server.seen();
        let first = &seen.reports[0].1;
        assert_eq!(kinds(&first.events), ["agent_started"]);
        assert_eq!(first.snapshot.hostname, "onshi-test-pc");
        assert!(seen.authorization[0].contains("bearer test-token"));
        let seqs: Vec<u64> = seen.reports.iter().map(|(_, r)| r.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    assert!(agent.spool().is_empty());

    // While the agent is stopped: a restart, a renamed account, a new gateway MAC, an update.
    agent
        .root
        .write("proc/stat", &format!("btime {}\n", BTIME + 7200));
    agent.root.write(
        "etc/passwd",
        "onshi2:x:1001:1001::/home/onshi:/bin/bash\nkao:x:1002:1002::/home/kao:/bin/bash\n",
    );
    agent.root.write(
        "etc/shadow",
        "onshi2:$y$j9T$salt$hash:20400:0:90:7:::\nkao:!$y$j9T$salt$hash:20300:0:99999:7:::\n",
    );
    let arp = std::fs::read_to_string(agent.root.path().join("proc/net/arp"))
        .unwrap()
        .replace("00:aa:bb:cc:dd:ee", "00:aa:bb:cc:dd:ff");
    agent.root.write("proc/net/arp", &arp);
    agent.root.write(
        "var/lib/onshi/apps.json",
        r#"[{"name":"配信アプリ","version":"2.5.0"},{"name":"連携アプリ","version":"1.12.0"}]"#,
    );
    let before = server.seen().reports.len();
    agent
        .run_until(&server, |s| {
            s.stored_events()
                .iter()
                .any(|e| e.kind.name() == "app_updated")
        })
        .await;

    let seen = server.seen();
    let events = seen.stored_events();
    assert_exactly_once(&events);
    let later: Vec<&str> = seen.reports[before..]
        .iter()
        .flat_map(|(_, r)| kinds(&r.events))
        .collect();
    assert_eq!(
        later,
        [
            "agent_started",
            "rebooted",
            "account_changed",
            "network_changed",
            "app_updated"
        ]
    );
    let renamed = events.iter().any(|e| {
        matches!(&e.kind, EventKind::AccountChanged {
            role: AccountRole::Windows,
            change: AccountChange::Renamed { from, to },
            ..
        } if from == "onshi" && to == "onshi2")
    });
    assert!(renamed, "{events:#?}");
    let seqs: Vec<u64> = seen.reports.iter().map(|(_, r)| r.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq increases across restarts: {seqs:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_nothing_is_lost_or_doubled() {
    // The first two reports meet a broken server.
    let server = FakeServer::start(Box::new(|i, _| if i < 2 { 503 } else { 200 })).await;
    let agent = Agent::new(&server);
    {
        let mut spool = agent.spool();
        spool
            .append(&[important("a"), important("b"), important("c")])
            .unwrap();
    }
    agent
        .run_until(&server, |s| s.stored_events().len() >= 4)
        .await;
    let seen = server.seen();
    assert_eq!(seen.reports[0].0, 503);
    // The refused batch is sent again as it was, with the same ids.
    let first_ids: Vec<Uuid> = seen.reports[0].1.events.iter().map(|e| e.id).collect();
    let stored = seen.stored_events();
    assert_eq!(
        stored.iter().map(|e| e.id).collect::<Vec<_>>()[..4],
        first_ids[..]
    );
    assert_eq!(names(&stored)[..4], ["a", "b", "c", "agent_started"]);
    assert_exactly_once(&stored);
    drop(seen);
    assert!(agent.spool().is_empty());
}

#[tokio::test]
async fn refused_reports_are_split_and_a_refused_event_is_dropped() {
    let poison = important("poison");
    let poison_id = poison.id;
    // Reports with more than two events are "too large"; the poison event is never accepted.
    let server = FakeServer::start(Box::new(move |_, r: &Report| {
        if r.events.len() > 2 || r.events.iter().any(|e| e.id == poison_id) {
            422
        } else {
            200
        }
    }))
    .await;
    let agent = Agent::new(&server);
    {
        let mut spool = agent.spool();
        let batch: Vec<Event> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| important(n))
            .chain([poison])
            .chain([important("e")])
            .collect();
        spool.append(&batch).unwrap();
    }
    agent
        .run_until(&server, |s| {
            names(&s.stored_events()).contains(&"agent_started".to_string())
        })
        .await;
    let stored = server.seen().stored_events();
    assert_eq!(names(&stored), ["a", "b", "c", "d", "e", "agent_started"]);
    assert_exactly_once(&stored);
    let spool = agent.spool();
    assert!(spool.is_empty());
    assert_eq!(spool.dropped(), 1);
    let seen = server.seen();
    let last = &seen.reports.last().unwrap().1;
    assert_eq!(
        last.snapshot.spool,
        onshi_shared::SpoolLosses {
            dropped: 1,
            corrupt: 0
        }
    );
}

#[tokio::test]
async fn a_refused_token_keeps_the_spool() {
    let server = FakeServer::start(Box::new(|_, _| 401)).await;
    let agent = Agent::new(&server);
    agent.run_until(&server, |s| !s.reports.is_empty()).await;
    // Only the first attempt: the next one is minutes away.
    assert!(server.seen().reports.len() <= 2);
    let spool = agent.spool();
    assert_eq!(kinds(&spool.peek(10).unwrap()), ["agent_started"]);
    let _ = &agent.data;
}

#[tokio::test]
async fn run_needs_an_enrollment() {
    let data = tempfile::tempdir().unwrap();
    let cfg = AgentConfig {
        data_dir: data.path().to_path_buf(),
        ..AgentConfig::default()
    };
    let r = runner::run(&cfg, RunOptions::default(), async {}).await;
    assert!(matches!(r, Err(onshi_agent::AgentError::NotEnrolled)));
}
