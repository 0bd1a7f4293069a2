//! The run loop: collect on an interval, detect changes, spool them, and drain the spool to the
//! server in order, never acknowledging an event before the server's 2xx.
//!
//! Order of durability in each collection: the events are appended to the spool (fsync) before
//! the state (last snapshot) is saved, so a crash between the two detects the change again
//! rather than losing it.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use chrono::Utc;
use onshi_shared::limits::MAX_EVENTS_PER_REPORT;
use onshi_shared::{
    AgentPolicy, Event, EventKind, Report, ReportAck, SCHEMA_VERSION, Snapshot, Validate,
};
use tokio::time::{Instant, sleep_until};

use crate::backup::{self, removable, removable::RemovableWatch};
use crate::config::AgentConfig;
use crate::detect;
use crate::enroll::transport_options;
use crate::error::AgentError;
use crate::identity::Identity;
use crate::sources::{self, AGENT_VERSION, Ctx, Notes, accounts, certificates};
use crate::spool::{Spool, SpoolLimits};
use crate::state::AgentState;
use crate::transport::{BACKOFF_MAX, Backoff, SendError, Transport};

/// Shortest and longest interval the server may ask for.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Options of `onshi-agent run` beyond the settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Collect this often whatever the server says (tests).
    pub interval: Option<Duration>,
    /// How long the last flush at shutdown may take.
    pub final_flush: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            interval: None,
            final_flush: Duration::from_secs(5),
        }
    }
}

/// The policy to collect with: the server's, with the settings' accounts when the server names
/// none (so `once` works before enrollment).
pub fn effective_policy(policy: Option<&AgentPolicy>, cfg: &AgentConfig) -> AgentPolicy {
    let mut policy = policy.cloned().unwrap_or_default();
    if policy.accounts.is_empty() {
        policy.accounts = cfg.accounts.clone();
    }
    policy
}

/// One collection without side effects (`onshi-agent once`): uses the stored policy and known
/// account identities when there are some, the defaults otherwise. Writes nothing.
pub async fn snapshot_now(cfg: &AgentConfig) -> Result<Snapshot, AgentError> {
    let identity = Identity::load(&cfg.identity_path())?;
    let now = Utc::now();
    let state = AgentState::load(&cfg.state_path(), now);
    let policy = effective_policy(identity.as_ref().map(|i| &i.policy), cfg);
    let ctx = Ctx::new(cfg, policy, state.known_sids, now);
    Ok(sources::collect(&ctx).await)
}

/// Runs until `shutdown` resolves; then tries one last flush.
pub async fn run(
    cfg: &AgentConfig,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let identity = Identity::load(&cfg.identity_path())?.ok_or(AgentError::NotEnrolled)?;
    let server = cfg
        .server
        .clone()
        .unwrap_or_else(|| identity.server.clone());
    let transport = Transport::new(&server, &transport_options(cfg))?;
    let mut spool = Spool::open(
        &cfg.spool_dir(),
        SpoolLimits {
            max_bytes: cfg.spool_max_bytes,
            max_age: cfg.spool_max_age(),
        },
    )?;
    let state = AgentState::load(&cfg.state_path(), Utc::now());
    spool.append(&[Event::new(
        Utc::now(),
        EventKind::AgentStarted {
            version: AGENT_VERSION.to_string(),
        },
    )])?;
    let interval = options
        .interval
        .unwrap_or_else(|| clamp_interval(identity.policy.interval_secs));
    tracing::info!(
        agent_id = %identity.agent_id,
        server = %transport.base(),
        interval_secs = interval.as_secs(),
        spooled = spool.len(),
        dropped = spool.dropped(),
        "agent started"
    );
    let mut agent = Agent {
        cfg: cfg.clone(),
        removable: RemovableWatch::default(),
        removable_scanned: false,
        identity,
        transport,
        spool,
        state,
        interval,
        interval_fixed: options.interval.is_some(),
        batch_limit: MAX_EVENTS_PER_REPORT,
        probing_poison: false,
        snapshot_unsent: false,
        snapshot_refused: false,
        backoff: Backoff::default(),
    };
    agent.run_loop(shutdown).await;

    if agent.pending() {
        tracing::info!(spooled = agent.spool.len(), "flushing before exit");
        // One attempt; whatever does not make it stays spooled for the next start.
        let _ = tokio::time::timeout(options.final_flush, agent.send_once()).await;
        if agent.pending() {
            tracing::info!(
                spooled = agent.spool.len(),
                "not everything flushed; kept in the spool"
            );
        }
    }
    tracing::info!("agent stopped");
    Ok(())
}

/// What to do after a send attempt.
#[derive(Debug)]
enum Next {
    /// Sent (or cut down): send again right away if anything is pending.
    Continue,
    /// Try again after this long.
    Wait(Duration),
}

struct Agent {
    cfg: AgentConfig,
    /// Removable drives seen at the previous collection (backups are checked on insertion).
    removable: RemovableWatch,
    removable_scanned: bool,
    identity: Identity,
    transport: Transport,
    spool: Spool,
    state: AgentState,
    interval: Duration,
    interval_fixed: bool,
    /// Most events per report; halved when the server refuses a report as too large or
    /// invalid, grown back after successes.
    batch_limit: usize,
    /// A report with one event was refused: the next report goes without events to find out
    /// whether that event is the problem.
    probing_poison: bool,
    /// The latest snapshot has not reached the server yet.
    snapshot_unsent: bool,
    /// The server refused the latest snapshot itself; wait for the next collection.
    snapshot_refused: bool,
    backoff: Backoff,
}

impl Agent {
    async fn run_loop(&mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut last_collect = Instant::now();
        let mut next_collect = last_collect;
        let mut next_send = Instant::now();
        loop {
            let pending = self.pending();
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = sleep_until(next_collect) => {
                    last_collect = Instant::now();
                    self.collect_once().await;
                    next_collect = last_collect + self.interval;
                    if self.backoff.failures() == 0 {
                        next_send = Instant::now();
                    }
                }
                () = sleep_until(next_send), if pending => {
                    let next = tokio::select! {
                        next = self.send_once() => next,
                        () = &mut shutdown => return,
                    };
                    next_send = match next {
                        Next::Continue => Instant::now(),
                        Next::Wait(delay) => Instant::now() + delay,
                    };
                    // The server may have changed the interval.
                    next_collect = last_collect + self.interval;
                }
            }
        }
    }

    /// Whether there is something to send.
    fn pending(&self) -> bool {
        self.state.last_snapshot.is_some()
            && !self.snapshot_refused
            && (self.snapshot_unsent || !self.spool.is_empty())
    }

    async fn collect_once(&mut self) {
        let policy = effective_policy(Some(&self.identity.policy), &self.cfg);
        let ctx = Ctx::new(&self.cfg, policy, self.state.known_sids.clone(), Utc::now());
        self.check_inserted_drives(&ctx);
        let snapshot = sources::collect(&ctx).await;
        let events = detect::events(self.state.last_snapshot.as_ref(), &snapshot);
        for e in &events {
            tracing::info!(kind = e.kind.name(), event = ?e.kind, "change detected");
        }
        if let Err(e) = self.spool.append(&events) {
            // Keep the previous snapshot so the same changes are detected next time.
            tracing::error!(error = %e, "cannot spool events; will detect them again");
            return;
        }
        self.state.known_sids = accounts::known_sids(&self.state.known_sids, &snapshot.accounts);
        self.state.last_snapshot = Some(snapshot);
        self.snapshot_unsent = true;
        self.snapshot_refused = false;
        self.save_state();
    }

    /// A USB stick inserted since the last collection: verify the `.pfx` backups on it and
    /// record the best, so this collection already reports it.
    fn check_inserted_drives(&mut self, ctx: &Ctx) {
        let first = !self.removable_scanned;
        self.removable_scanned = true;
        let inserted = self.removable.to_check(
            removable::removable_drives(),
            &ctx.policy.backup_passwords,
            first,
        );
        if inserted.is_empty() {
            return;
        }
        let mut notes = Notes::default();
        let installed = certificates::installed(ctx, &mut notes);
        let known = backup::known_passwords(&ctx.policy);
        let found = inserted
            .iter()
            .filter_map(|drive| removable::check_drive(drive, &known, &installed, ctx.now))
            .collect();
        if let Some(state) = removable::best(found)
            && let Err(e) = backup::record(&self.cfg.backup_path(), &state)
        {
            tracing::error!(error = %e, "cannot record the verified backup");
        }
    }

    fn save_state(&self) {
        if let Err(e) = self.state.save(&self.cfg.state_path()) {
            tracing::error!(error = %e, "cannot save state");
        }
    }

    /// One report: the latest snapshot and the oldest spooled events.
    async fn send_once(&mut self) -> Next {
        let Some(mut snapshot) = self.state.last_snapshot.clone() else {
            return Next::Wait(self.interval);
        };
        // Lost events are visible on the server's terminal page.
        snapshot.spool = onshi_shared::SpoolLosses {
            dropped: self.spool.dropped(),
            corrupt: self.spool.corrupt(),
        };
        let events = match self.spool.peek(self.batch_limit) {
            Ok(events) => events,
            Err(e) => {
                let delay = self.backoff.next_delay(&mut rand::rng());
                tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot read the spool");
                return Next::Wait(delay);
            }
        };
        let report = Report {
            schema: SCHEMA_VERSION,
            agent_id: self.identity.agent_id,
            seq: self.state.take_seq(),
            sent_at: Utc::now(),
            snapshot,
            events,
        };
        // The seq is spent whether or not the report arrives.
        self.save_state();
        let sent = report.events.len();

        let result = match report.validate() {
            Ok(()) => {
                self.transport
                    .send_report(&self.identity.token, &report)
                    .await
            }
            Err(e) => Err(SendError::Rejected {
                status: None,
                message: format!("report does not validate: {e}"),
            }),
        };
        match result {
            Ok(ack) => self.on_ack(&report, ack),
            Err(SendError::Auth { status, message }) => {
                tracing::error!(
                    status,
                    %message,
                    spooled = self.spool.len(),
                    "THE SERVER REFUSES THIS AGENT'S TOKEN: re-enroll it (onshi-agent enroll --force). \
                     Events stay spooled; retrying every {} s",
                    BACKOFF_MAX.as_secs()
                );
                self.backoff.next_delay(&mut rand::rng());
                Next::Wait(BACKOFF_MAX)
            }
            Err(SendError::Rejected { status, message }) => {
                self.on_rejected(sent, status, &message)
            }
            Err(SendError::StaleSeq { stored_seq }) => {
                // Restored from an older copy of the data directory: move past the server's
                // seq and send the current snapshot (and the same events) at once.
                tracing::warn!(
                    sent = report.seq,
                    stored_seq,
                    "the server holds a newer seq for this agent (data restored from an older copy?); moving past it"
                );
                self.state.next_seq = self.state.next_seq.max(stored_seq.saturating_add(1));
                self.save_state();
                Next::Continue
            }
            Err(SendError::Retryable {
                status,
                message,
                retry_after,
            }) => {
                let mut rng = rand::rng();
                // The server's own wait when it gave one (jittered), else ours.
                let delay = self.backoff.next_delay(&mut rng);
                let delay =
                    retry_after.map_or(delay, |r| crate::transport::retry_after_delay(r, &mut rng));
                tracing::warn!(
                    ?status,
                    %message,
                    retry_in_ms = delay.as_millis() as u64,
                    failures = self.backoff.failures(),
                    spooled = self.spool.len(),
                    "report not delivered"
                );
                Next::Wait(delay)
            }
        }
    }

    fn on_ack(&mut self, report: &Report, ack: ReportAck) -> Next {
        let sent = report.events.len();
        if ack.acked_seq != report.seq {
            tracing::warn!(
                sent = report.seq,
                acked = ack.acked_seq,
                "ack for another seq"
            );
        }
        if self.probing_poison && sent == 0 && !self.spool.is_empty() {
            // The snapshot alone goes through, the single event did not: that event can
            // never be delivered and would block every event behind it.
            let kind = self
                .spool
                .peek(1)
                .ok()
                .and_then(|e| e.into_iter().next())
                .map(|e| format!("{:?}", e.kind));
            tracing::error!(event = ?kind, "the server refuses this event; dropping it");
            if let Err(e) = self.spool.discard(1) {
                tracing::error!(error = %e, "cannot drop the refused event");
            }
        } else if let Err(e) = self.spool.ack(sent) {
            // The server has them; they will be sent again and stored once.
            tracing::error!(error = %e, "cannot record the acknowledgement");
        }
        if sent > 0 {
            tracing::debug!(seq = report.seq, events = sent, "report acknowledged");
        }
        self.probing_poison = false;
        self.batch_limit = (self.batch_limit.max(1) * 2).min(MAX_EVENTS_PER_REPORT);
        self.snapshot_unsent = false;
        self.backoff.reset();

        if ack.policy != self.identity.policy {
            tracing::info!(policy = ?ack.policy, "new policy from the server");
            self.identity.policy = ack.policy;
            if let Err(e) = self.identity.save(&self.cfg.identity_path()) {
                tracing::error!(error = %e, "cannot save the new policy");
            }
        }
        if !self.interval_fixed {
            let interval = clamp_interval(ack.next_interval_secs);
            if interval != self.interval {
                tracing::info!(
                    interval_secs = interval.as_secs(),
                    "server set the interval"
                );
                self.interval = interval;
            }
        }
        Next::Continue
    }

    fn on_rejected(&mut self, sent: usize, status: Option<u16>, message: &str) -> Next {
        match sent {
            0 => {
                tracing::error!(
                    ?status,
                    message,
                    "the server refuses this snapshot; waiting for the next collection"
                );
                self.snapshot_refused = true;
                self.probing_poison = false;
                self.batch_limit = MAX_EVENTS_PER_REPORT;
                Next::Wait(self.interval)
            }
            1 => {
                tracing::warn!(
                    ?status,
                    message,
                    "report with one event refused; trying without it"
                );
                self.probing_poison = true;
                self.batch_limit = 0;
                Next::Continue
            }
            n => {
                tracing::warn!(
                    ?status,
                    message,
                    events = n,
                    "report refused; sending fewer events"
                );
                self.batch_limit = n / 2;
                Next::Continue
            }
        }
    }
}

fn clamp_interval(secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs)).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Resolves on ctrl-c, or SIGTERM on unix: the one shutdown signal of the process.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c: stopping"),
        () = terminate => tracing::info!("SIGTERM: stopping"),
    }
}
