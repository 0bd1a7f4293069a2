//! Start-up: bind first (so tests can use port 0 and read the port), then serve until a shutdown
//! future fires; the writer drains its queue before the process exits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::Error;
use crate::config::Config;
use crate::domain::Lane;
use crate::enroll::TokenCache;
use crate::evaluator::{ChangeSignal, Evaluator, SharedTally};
use crate::ingest::Ingest;
use crate::leader;
use crate::metrics::Metrics;
use crate::notify::channels::Courier as ChannelCourier;
use crate::notify::sender::Courier;
use crate::notify::{Sender, Transport};
use crate::policy::PolicyBook;
use crate::secrets::SecretKey;
use crate::serve::{Timeouts, serve};
use crate::store::{self, Store};
use crate::web::{self, AppState, Services};

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    /// `[metrics] listen`: `/metrics` without a token.
    metrics_listener: Option<TcpListener>,
    /// `[tls]`: the main listener's certificate, when it speaks HTTPS.
    tls: Option<crate::tls::Certificates>,
    state: AppState,
    writer: tokio::task::JoinHandle<()>,
    /// Following changes other processes make: revoked tokens, agents' policies.
    followers: Vec<tokio::task::JoinHandle<()>>,
    /// The leader's jobs (`crate::leader::supervise`) and the signal that stops them, then the
    /// signal that ends the campaign for the lead.
    leader: (Arc<Notify>, tokio::task::JoinHandle<()>, Arc<Notify>),
}

impl Application {
    /// Opens the configured store, starts the ingest writer and binds the listener.
    pub async fn build(config: Config) -> Result<Application, Error> {
        let store = store::connect(&config.database()?).await?;
        Self::build_with_store(config, store).await
    }

    pub async fn build_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Application, Error> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Io(format!("binding {}", config.listen), e))?;
        let metrics_listener = match config.metrics.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::Io(format!("binding metrics.listen {addr}"), e))?,
            ),
            None => None,
        };
        let tls = match config.tls.files() {
            Some(files) => Some(crate::tls::Certificates::load(files)?),
            None => None,
        };
        if !config.dashboard.secure_cookies && !config.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %config.listen,
                "dashboard.secure_cookies = false on a non-loopback address: set it to true \
                 once the dashboard is served over HTTPS"
            );
        }
        let tokens = Arc::new(TokenCache::preload(store.as_ref()).await?);
        let evaluating = config.alerts.enabled;
        let changes = Arc::new(ChangeSignal::default());
        let metrics = Arc::new(Metrics::new());
        let upkeep = metrics.spawn_upkeep();
        let (ingest, writer) = Ingest::start_with_signal(
            store.ingest_sink(),
            config.queue_capacity,
            config.max_batch,
            evaluating.then(|| changes.clone()),
            metrics.clone(),
        )
        .await?;
        if !evaluating {
            tracing::warn!("[alerts] enabled = false: no rule evaluation, no alerts, no digests");
        }
        let transport = Transport::from_config(&config.smtp)?;
        if transport.is_none() {
            tracing::warn!("no [smtp] host or file_dir: mails stay in the outbox");
        }
        let channels = Arc::new(ChannelCourier::from_config(
            &config.channels,
            config.smtp.timeout(),
        )?);
        let tally = SharedTally::default();
        // The evaluator, the digest, the mail sender and retention run on the leader only
        // (on SQLite, this process; see `crate::leader`).
        let stop_leading = Arc::new(Notify::new());
        let (leading, campaign) =
            leader::campaign(store.election(), leader::CHECK_EVERY, stop_leading.clone());
        let start = {
            let (store, config, metrics) = (store.clone(), config.clone(), metrics.clone());
            let (changes, tally) = (changes.clone(), tally.clone());
            move || {
                leader_jobs(
                    &store,
                    &config,
                    &metrics,
                    &changes,
                    &tally,
                    transport.as_ref(),
                    &channels,
                )
            }
        };
        let on_change = {
            let (metrics, tally) = (metrics.clone(), tally.clone());
            move |lead: bool| {
                metrics.leader.set(if lead { 1.0 } else { 0.0 });
                if !lead && let Ok(mut t) = tally.write() {
                    // No evaluator here any more: the pages count from the overview lines
                    // the leader writes on every pass.
                    t.fleet.ready = false;
                }
            }
        };
        let stop_jobs = Arc::new(Notify::new());
        let supervisor = leader::supervise(leading.clone(), start, on_change, stop_jobs.clone());
        let follow_every = std::time::Duration::from_secs(u64::from(config.revocation_check_secs));
        let revocations = tokio::spawn(
            tokens
                .clone()
                .follow_revocations(store.clone(), follow_every),
        );
        let key = Arc::new(SecretKey::load_or_create(&config.secret_key_path())?);
        let policies = Arc::new(PolicyBook::new(config.policy.clone(), Some(key.clone())));
        policies.reload(store.as_ref()).await?;
        let followed = policies.clone();
        let follow_store = store.clone();
        let policy_follower = tokio::spawn(async move {
            let mut tick = tokio::time::interval(follow_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = followed.reload(follow_store.as_ref()).await {
                    tracing::error!(error = %e, "reloading the agents' policies failed");
                }
            }
        });
        let mut followers = vec![
            campaign,
            revocations,
            policy_follower,
            upkeep,
            crate::tls::reload_on_hangup(tls.clone()),
        ];
        if let Some(tls) = &tls {
            followers.push(tls.clone().watch(config.tls.watch_every()));
        }
        let changes = evaluating.then_some(changes);
        let tally = evaluating.then_some(tally);
        let state = AppState::new(
            store,
            ingest,
            tokens,
            config,
            Services {
                changes,
                tally,
                policies,
                key,
                leading,
            },
        )?;
        Ok(Application {
            listener,
            metrics_listener,
            state,
            writer,
            followers,
            tls,
            leader: (stop_jobs, supervisor, stop_leading),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener
            .local_addr()
            .map_err(|e| Error::Io("reading the bound address".into(), e))
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// The whole HTTP surface on this server's state, for driving it without a socket
    /// (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> axum::Router {
        web::router(self.state.clone())
    }

    /// The staff actions of this server (waking its evaluator).
    pub fn desk(&self) -> crate::desk::Desk {
        self.state.desk.clone()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish and the writer
    /// commit what it holds.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Application {
            listener,
            metrics_listener,
            tls,
            state,
            writer,
            followers,
            leader: (stop_jobs, supervisor, stop_leading),
        } = self;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io("reading the bound address".into(), e))?;
        tracing::info!(%addr, https = tls.is_some(), "onshi-server listening");
        let limits = &state.config.limits;
        let timeouts = Timeouts {
            header: limits.header_timeout(),
            body: limits.body_timeout(),
        };
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = metrics_listener.map(|l| {
            if let Ok(a) = l.local_addr() {
                tracing::info!(addr = %a, "metrics listening");
            }
            let router = web::metrics_router(state.clone());
            tokio::spawn(serve(l, router, timeouts, None, async {
                let _ = metrics_stopped.await;
            }))
        });
        serve(listener, web::router(state), timeouts, tls, shutdown).await;
        let _ = stop_metrics.send(());
        if let Some(m) = metrics {
            let _ = m.await;
        }
        // The jobs stop before the lead is given up: no other process starts them while
        // these still run.
        stop_jobs.notify_one();
        let _ = supervisor.await;
        stop_leading.notify_one();
        for follower in followers {
            follower.abort();
        }
        // The router (and with it every Ingest handle) is gone: the writer drains and stops.
        let _ = writer.await;
        Ok(())
    }
}

/// The jobs only the leader runs, started fresh on each gain of the lead.
fn leader_jobs(
    store: &Arc<dyn Store>,
    config: &Config,
    metrics: &Arc<Metrics>,
    changes: &Arc<ChangeSignal>,
    tally: &SharedTally,
    transport: Option<&Transport>,
    channels: &Arc<ChannelCourier>,
) -> leader::Jobs {
    let mut jobs = Vec::new();
    if config.alerts.enabled {
        let evaluator = Evaluator::from_config(store.clone(), config)
            .with_tally(tally.clone())
            .with_metrics(metrics.clone());
        let stop = Arc::new(Notify::new());
        jobs.push((
            stop.clone(),
            tokio::spawn(evaluator.run(changes.clone(), stop)),
        ));
    }
    if config.retention.keep_days > 0 {
        let pruner = crate::retention::Pruner::new(store.clone(), config.retention.clone());
        let stop = Arc::new(Notify::new());
        jobs.push((stop.clone(), tokio::spawn(pruner.run(stop))));
    }
    let mut couriers = Vec::new();
    if let Some(transport) = transport {
        couriers.push(Courier::Mail(transport.clone()));
    }
    // A sender per channel: one receiver that is down or slow holds up no other. One more
    // fails the messages of channels taken out of the configuration.
    let names: Vec<String> = config.channels.iter().map(|c| c.name.clone()).collect();
    for name in &names {
        couriers.push(Courier::Channels(
            channels.clone(),
            Lane::Channel(name.clone()),
        ));
    }
    couriers.push(Courier::Channels(
        channels.clone(),
        Lane::OtherChannels(names),
    ));
    for courier in couriers {
        let sender = Sender::with_courier(store.clone(), courier, config.smtp.clone())
            .with_metrics(metrics.clone());
        let stop = Arc::new(Notify::new());
        let every = config.smtp.poll();
        jobs.push((stop.clone(), tokio::spawn(sender.run(every, stop))));
    }
    jobs
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
