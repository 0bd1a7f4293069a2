//! The server's own metrics, in the Prometheus text format, through the `metrics` crate and its
//! Prometheus exporter.
//!
//! Each [`Metrics`] has a recorder of its own rather than the process-wide one, so two servers
//! in one process (the integration tests) count apart. Series are registered once, up front,
//! with their help text, and held as handles; the few with open label sets (refusal reasons,
//! routes) are registered when first seen, which the registry makes idempotent. Gauges that
//! describe the database (open alerts, the outbox) are set when `/metrics` is read.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::domain::OutboxCounts;
use crate::domain::Severity;
use crate::store::alerts::AlertCounts;

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Buckets for durations in seconds: from a WAL flush (≈200 µs) to a full evaluation pass at
/// fleet size (seconds).
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets for reports per batch (the writer takes at most `max_batch`, 1,000 by default).
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0,
];

/// Every series: name, kind, help text.
const SERIES: &[(&str, Kind, &str)] = &[
    (
        "onshi_build_info",
        Kind::Gauge,
        "Always 1; the labels say which build of onshi-server runs.",
    ),
    (
        "onshi_leader",
        Kind::Gauge,
        "1 when this process runs the evaluator, the digest, the mail sender and retention.",
    ),
    (
        "onshi_reports_ingested_total",
        Kind::Counter,
        "Agent reports committed to the database.",
    ),
    (
        "onshi_events_ingested_total",
        Kind::Counter,
        "Events (changes agents detected) committed with their reports.",
    ),
    (
        "onshi_reports_refused_total",
        Kind::Counter,
        "Agent reports answered with an error, by the error code of the reply.",
    ),
    (
        "onshi_ingest_batch_reports",
        Kind::Histogram,
        "Reports per batch the ingest writer committed.",
    ),
    (
        "onshi_ingest_batches_failed_total",
        Kind::Counter,
        "Ingest batches whose write failed (their reports were answered 503).",
    ),
    (
        "onshi_ingest_queue_depth",
        Kind::Gauge,
        "Reports waiting for the ingest writer.",
    ),
    (
        "onshi_ingest_commit_seconds",
        Kind::Histogram,
        "Time to write and commit one ingest batch.",
    ),
    (
        "onshi_ingest_flush_seconds",
        Kind::Histogram,
        "Time to make one committed ingest batch durable (the WAL flush on SQLite).",
    ),
    (
        "onshi_alerts_open",
        Kind::Gauge,
        "Alerts not resolved, by rule and severity.",
    ),
    (
        "onshi_outbox_mails",
        Kind::Gauge,
        "Mails in the outbox, by status.",
    ),
    (
        "onshi_mail_sent_total",
        Kind::Counter,
        "Mails the SMTP server accepted.",
    ),
    (
        "onshi_mail_failed_total",
        Kind::Counter,
        "Mails given up on (refused for good, or out of attempts).",
    ),
    (
        "onshi_mail_retries_total",
        Kind::Counter,
        "Mail attempts that failed and were put back for a retry.",
    ),
    (
        "onshi_channel_sent_total",
        Kind::Counter,
        "Channel messages (webhook, Slack, Teams, LINE) the receiver accepted.",
    ),
    (
        "onshi_channel_failed_total",
        Kind::Counter,
        "Channel messages given up on (refused for good, or out of attempts).",
    ),
    (
        "onshi_channel_retries_total",
        Kind::Counter,
        "Channel message attempts that failed and were put back for a retry.",
    ),
    (
        "onshi_evaluator_pass_seconds",
        Kind::Histogram,
        "Time of one full rule evaluation pass over the fleet.",
    ),
    (
        "onshi_evaluator_passes_failed_total",
        Kind::Counter,
        "Full rule evaluation passes that failed.",
    ),
    (
        "onshi_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route (the matched pattern) and status code.",
    ),
    (
        "onshi_http_request_duration_seconds",
        Kind::Histogram,
        "Time from a request's headers to its response's headers, by route.",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// What the server counts, and the recorder that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    pub leader: Gauge,
    pub reports_ingested: Counter,
    pub events_ingested: Counter,
    pub batch_reports: Histogram,
    pub batches_failed: Counter,
    pub queue_depth: Gauge,
    pub commit_seconds: Histogram,
    pub flush_seconds: Histogram,
    pub mail_sent: Counter,
    pub mail_failed: Counter,
    pub mail_retries: Counter,
    pub channel_sent: Counter,
    pub channel_failed: Counter,
    pub channel_retries: Counter,
    pub pass_seconds: Histogram,
    pub passes_failed: Counter,
    /// The (rule, severity) pairs `onshi_alerts_open` has shown, set to 0 when none is open.
    alert_series: std::sync::Mutex<std::collections::BTreeSet<(String, Severity)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("onshi_ingest_batch_reports".into()),
                    &BATCH_BUCKETS,
                )
            });
        // Only an empty bucket list is refused, and these are constants.
        let recorder = builder.unwrap_or_default().build_recorder();
        for (name, kind, help) in SERIES {
            let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
            let key = KeyName::from_const_str(name);
            match kind {
                Kind::Counter => recorder.describe_counter(key, unit, (*help).into()),
                Kind::Gauge => recorder.describe_gauge(key, unit, (*help).into()),
                Kind::Histogram => recorder.describe_histogram(key, unit, (*help).into()),
            }
        }
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &METADATA);
        let gauge =
            |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &METADATA);
        let histogram = |name: &'static str| {
            recorder.register_histogram(&Key::from_static_name(name), &METADATA)
        };
        recorder
            .register_gauge(
                &Key::from_parts(
                    "onshi_build_info",
                    vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
                ),
                &METADATA,
            )
            .set(1.0);
        let metrics = Metrics {
            leader: gauge("onshi_leader"),
            reports_ingested: counter("onshi_reports_ingested_total"),
            events_ingested: counter("onshi_events_ingested_total"),
            batch_reports: histogram("onshi_ingest_batch_reports"),
            batches_failed: counter("onshi_ingest_batches_failed_total"),
            queue_depth: gauge("onshi_ingest_queue_depth"),
            commit_seconds: histogram("onshi_ingest_commit_seconds"),
            flush_seconds: histogram("onshi_ingest_flush_seconds"),
            mail_sent: counter("onshi_mail_sent_total"),
            mail_failed: counter("onshi_mail_failed_total"),
            mail_retries: counter("onshi_mail_retries_total"),
            channel_sent: counter("onshi_channel_sent_total"),
            channel_failed: counter("onshi_channel_failed_total"),
            channel_retries: counter("onshi_channel_retries_total"),
            pass_seconds: histogram("onshi_evaluator_pass_seconds"),
            passes_failed: counter("onshi_evaluator_passes_failed_total"),
            alert_series: Default::default(),
            recorder,
        };
        // Series with labels exist from the start, at zero, so that a rate over them has a
        // first sample.
        for reason in [
            "unauthorized",
            "invalid_json",
            "body_too_large",
            "stale_seq",
            "overloaded",
        ] {
            metrics.refused(reason).increment(0);
        }
        metrics
    }

    /// A report answered with error `reason` (the `error` code of the reply).
    pub fn refused(&self, reason: &'static str) -> Counter {
        self.recorder.register_counter(
            &Key::from_parts(
                "onshi_reports_refused_total",
                vec![Label::from_static_parts("reason", reason)],
            ),
            &METADATA,
        )
    }

    /// An HTTP request answered.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let route = Label::new("route", route.to_owned());
        self.recorder
            .register_counter(
                &Key::from_parts(
                    "onshi_http_requests_total",
                    vec![route.clone(), Label::new("status", status.to_string())],
                ),
                &METADATA,
            )
            .increment(1);
        self.recorder
            .register_histogram(
                &Key::from_parts("onshi_http_request_duration_seconds", vec![route]),
                &METADATA,
            )
            .record(elapsed.as_secs_f64());
    }

    /// Sets the gauges read from the database: open alerts by rule and severity (a pair seen
    /// once stays, at 0, rather than vanishing), the outbox by status.
    pub fn set_database_gauges(&self, alerts: &AlertCounts, outbox: &OutboxCounts) {
        let mut counts: std::collections::BTreeMap<(String, Severity), i64> = alerts
            .by_rule
            .iter()
            .map(|(rule, severity, count)| ((rule.clone(), *severity), *count))
            .collect();
        if let Ok(mut seen) = self.alert_series.lock() {
            for pair in seen.iter() {
                counts.entry(pair.clone()).or_insert(0);
            }
            seen.extend(counts.keys().cloned());
        }
        for ((rule, severity), count) in &counts {
            self.recorder
                .register_gauge(
                    &Key::from_parts(
                        "onshi_alerts_open",
                        vec![
                            Label::new("rule", rule.clone()),
                            Label::from_static_parts("severity", severity.as_str()),
                        ],
                    ),
                    &METADATA,
                )
                .set(*count as f64);
        }
        for (status, count) in [
            ("pending", outbox.pending),
            ("sending", outbox.sending),
            ("sent", outbox.sent),
            ("failed", outbox.failed),
        ] {
            self.recorder
                .register_gauge(
                    &Key::from_parts(
                        "onshi_outbox_mails",
                        vec![Label::from_static_parts("status", status)],
                    ),
                    &METADATA,
                )
                .set(count as f64);
        }
    }

    /// The text format, `# HELP` and `# TYPE` for every series.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// Folds recorded histogram samples into their buckets. Rendering does it too; this
    /// bounds the memory between two scrapes (or when nothing scrapes).
    pub fn upkeep(&self) {
        self.recorder.handle().run_upkeep();
    }

    /// Runs [`Metrics::upkeep`] every few seconds for as long as the process lives.
    pub fn spawn_upkeep(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let metrics = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                match metrics.upgrade() {
                    Some(m) => m.upkeep(),
                    None => break,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_has_help_and_type() {
        let m = Metrics::new();
        m.reports_ingested.increment(3);
        m.commit_seconds.record(0.002);
        m.batch_reports.record(7.0);
        m.pass_seconds.record(1.5);
        m.request("/api/v1/report", 200, Duration::from_millis(3));
        m.set_database_gauges(
            &AlertCounts {
                critical: 1,
                warning: 0,
                info: 0,
                by_rule: vec![("offline".into(), Severity::Critical, 1)],
            },
            &OutboxCounts::default(),
        );
        let text = m.render();
        for (name, kind, _) in SERIES {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no help for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "no type {kind} for {name}:\n{text}"
            );
        }
        assert!(text.contains("onshi_reports_ingested_total 3\n"), "{text}");
        assert!(
            text.contains("onshi_ingest_commit_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("onshi_ingest_batch_reports_sum 7\n"),
            "{text}"
        );
        assert!(
            text.contains("onshi_alerts_open{rule=\"offline\",severity=\"critical\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("onshi_reports_refused_total{reason=\"stale_seq\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("onshi_build_info{version=\""), "{text}");
    }

    #[test]
    fn two_servers_count_apart() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.reports_ingested.increment(2);
        a.refused("invalid_json").increment(1);
        assert!(a.render().contains("onshi_reports_ingested_total 2\n"));
        assert!(b.render().contains("onshi_reports_ingested_total 0\n"));
        assert!(
            b.render()
                .contains("onshi_reports_refused_total{reason=\"invalid_json\"} 0\n")
        );
    }
}
