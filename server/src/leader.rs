//! Leadership: every process serves ingest and the dashboard, but the jobs that must run once
//! per database (the evaluator with its digest, the mail sender, retention) run on one process
//! at a time, the leader.
//!
//! On SQLite there is one process per database and it always leads. On PostgreSQL the leader
//! is the process holding a session-level advisory lock on a connection of its own (see
//! `store::postgres::lease`): when that process dies its connection closes and the database
//! releases the lock at once; when its connection is cut, the lease's `idle_session_timeout`
//! ends the session on the database side, so the lock is free within [`LEASE_TIMEOUT`], while
//! the old leader, whose checks fail, has stepped down before that. The other processes try
//! every [`CHECK_EVERY`], so a dead leader is replaced within about 25 seconds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::store::StoreResult;

/// How often a follower tries to take the lead, and a leader checks that it still holds it.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long the database keeps a leader's session (and its lock) once nothing arrives on it.
/// A leader checks every [`CHECK_EVERY`], so only a cut connection runs into it.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(15);

/// How a store elects one leader among the processes that share it.
#[async_trait]
pub trait Election: Send + Sync {
    /// Tries once to take the lead: `Some` holds it until dropped or until a check fails.
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn Lease>>>;
}

/// The lead, held.
#[async_trait]
pub trait Lease: Send {
    /// Confirms the lead is still held (the lock's connection answers).
    async fn confirm(&mut self) -> StoreResult<()>;
}

/// The one process on a database: it always leads.
pub struct Sole;

struct SoleLease;

#[async_trait]
impl Lease for SoleLease {
    async fn confirm(&mut self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl Election for Sole {
    async fn try_lead(&self) -> StoreResult<Option<Box<dyn Lease>>> {
        Ok(Some(Box::new(SoleLease)))
    }
}

/// Whether this process leads, as it changes.
pub type Leading = watch::Receiver<bool>;

/// Campaigns until `stop` fires: takes the lead when it is free, holds it while the checks
/// pass, and says so on the returned channel.
pub fn campaign(
    election: Arc<dyn Election>,
    every: Duration,
    stop: Arc<Notify>,
) -> (Leading, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let run = async {
            loop {
                match tokio::time::timeout(every, election.try_lead()).await {
                    Ok(Ok(Some(mut lease))) => {
                        tracing::info!(
                            "this process leads: evaluator, digest, mail and retention run here"
                        );
                        tx.send_replace(true);
                        loop {
                            tokio::time::sleep(every).await;
                            match tokio::time::timeout(every, lease.confirm()).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    tracing::error!(error = %e, "the leader's lock connection failed: stepping down");
                                    break;
                                }
                                Err(_) => {
                                    tracing::error!(
                                        "the leader's lock connection did not answer: stepping down"
                                    );
                                    break;
                                }
                            }
                        }
                        tx.send_replace(false);
                        drop(lease);
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "trying to take the lead failed"),
                    Err(_) => tracing::warn!("trying to take the lead timed out"),
                }
                tokio::time::sleep(every).await;
            }
        };
        tokio::select! {
            _ = stop.notified() => {}
            _ = run => {}
        }
        tx.send_replace(false);
    });
    (rx, task)
}

/// Jobs started on taking the lead, each with the signal that stops it.
pub type Jobs = Vec<(Arc<Notify>, JoinHandle<()>)>;

/// Runs the leader's jobs while `leading` says so: `start` makes them on each gain of the lead
/// (fresh, with cold caches: what another leader did meanwhile is read anew), and they are
/// stopped and awaited on each loss, and when `stop` fires. `on_change` hears every change
/// (the metrics gauge, the shared counts).
pub fn supervise(
    mut leading: Leading,
    start: impl Fn() -> Jobs + Send + 'static,
    on_change: impl Fn(bool) + Send + 'static,
    stop: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Whether this process runs the jobs now (a process configured with none still leads,
        // and says so).
        let mut running = false;
        let mut jobs: Jobs = Vec::new();
        loop {
            let lead = *leading.borrow_and_update();
            if lead && !running {
                jobs = start();
                running = true;
                on_change(true);
            } else if !lead && running {
                stop_all(std::mem::take(&mut jobs)).await;
                running = false;
                on_change(false);
            }
            tokio::select! {
                _ = stop.notified() => break,
                changed = leading.changed() => {
                    if changed.is_err() {
                        // The campaign ended (shutdown): no lead any more.
                        break;
                    }
                }
            }
        }
        if running {
            stop_all(jobs).await;
            on_change(false);
        }
    })
}

async fn stop_all(jobs: Jobs) {
    for (stop, _) in &jobs {
        stop.notify_one();
    }
    for (_, job) in jobs {
        let _ = job.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::StoreError;

    /// Leads when the shared flag allows, and its lease fails once the flag is cleared.
    struct Flag(Arc<Mutex<bool>>);
    struct FlagLease(Arc<Mutex<bool>>);

    #[async_trait]
    impl Election for Flag {
        async fn try_lead(&self) -> StoreResult<Option<Box<dyn Lease>>> {
            let free = *self.0.lock().unwrap();
            Ok(free.then(|| Box::new(FlagLease(self.0.clone())) as Box<dyn Lease>))
        }
    }

    #[async_trait]
    impl Lease for FlagLease {
        async fn confirm(&mut self) -> StoreResult<()> {
            if *self.0.lock().unwrap() {
                Ok(())
            } else {
                Err(StoreError::Corrupt("lock lost".into()))
            }
        }
    }

    /// The check interval of these tests (real time: tokio's paused clock is a feature of its
    /// own that every test build would compile tokio again for).
    const EVERY: Duration = Duration::from_millis(40);

    /// Waits (up to 10 s) until `cond` holds.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..1000 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn jobs_run_only_while_the_lead_is_held() {
        let free = Arc::new(Mutex::new(false));
        let stop = Arc::new(Notify::new());
        let (leading, campaign_task) = campaign(Arc::new(Flag(free.clone())), EVERY, stop.clone());
        let started = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let (s, r, c) = (started.clone(), running.clone(), changes.clone());
        let stop_jobs = Arc::new(Notify::new());
        let supervisor = supervise(
            leading.clone(),
            move || {
                s.fetch_add(1, Ordering::SeqCst);
                r.fetch_add(1, Ordering::SeqCst);
                let job_stop = Arc::new(Notify::new());
                let (js, jr) = (job_stop.clone(), r.clone());
                let job = tokio::spawn(async move {
                    js.notified().await;
                    jr.fetch_sub(1, Ordering::SeqCst);
                });
                vec![(job_stop, job)]
            },
            move |lead| c.lock().unwrap().push(lead),
            stop_jobs.clone(),
        );
        tokio::time::sleep(EVERY * 5).await;
        assert!(!*leading.borrow(), "the lock is taken elsewhere");
        assert_eq!(started.load(Ordering::SeqCst), 0);

        *free.lock().unwrap() = true;
        until("the lead", || *leading.borrow()).await;
        until("the jobs", || running.load(Ordering::SeqCst) == 1).await;

        // The lock's connection fails: the jobs stop within one check.
        *free.lock().unwrap() = false;
        until("stepping down", || !*leading.borrow()).await;
        until("the jobs to stop", || running.load(Ordering::SeqCst) == 0).await;

        // Free again: taken again, with new jobs.
        *free.lock().unwrap() = true;
        until("new jobs", || started.load(Ordering::SeqCst) == 2).await;
        until("the new jobs", || running.load(Ordering::SeqCst) == 1).await;

        stop_jobs.notify_one();
        supervisor.await.unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0, "shutdown stops the jobs");
        stop.notify_one();
        campaign_task.await.unwrap();
        assert_eq!(*changes.lock().unwrap(), vec![true, false, true, false]);
    }

    #[tokio::test]
    async fn a_process_with_no_jobs_still_says_when_it_leads() {
        let free = Arc::new(Mutex::new(true));
        let stop = Arc::new(Notify::new());
        let (leading, campaign_task) = campaign(Arc::new(Flag(free.clone())), EVERY, stop.clone());
        let changes = Arc::new(Mutex::new(Vec::new()));
        let c = changes.clone();
        let stop_jobs = Arc::new(Notify::new());
        let supervisor = supervise(
            leading.clone(),
            Vec::new,
            move |lead| c.lock().unwrap().push(lead),
            stop_jobs.clone(),
        );
        until("the lead", || *changes.lock().unwrap() == vec![true]).await;
        *free.lock().unwrap() = false;
        until("the loss", || *changes.lock().unwrap() == vec![true, false]).await;
        stop_jobs.notify_one();
        supervisor.await.unwrap();
        stop.notify_one();
        campaign_task.await.unwrap();
        assert_eq!(*changes.lock().unwrap(), vec![true, false]);
    }

    #[tokio::test]
    async fn the_sole_process_leads_at_once() {
        let stop = Arc::new(Notify::new());
        let (mut leading, task) = campaign(Arc::new(Sole), EVERY, stop.clone());
        leading.changed().await.unwrap();
        assert!(*leading.borrow());
        stop.notify_one();
        task.await.unwrap();
        assert!(!*leading.borrow());
    }
}
