//! HTTP to the server: enrollment and reports, with what each answer means for a retry, and the
//! retry backoff.

use std::error::Error as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use onshi_shared::limits::MAX_BODY_BYTES;
use onshi_shared::{ApiError, EnrollRequest, EnrollResponse, Report, ReportAck};
use rand::Rng;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::error::AgentError;
use crate::identity::AgentToken;

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("onshi-agent/", env!("CARGO_PKG_VERSION"));
/// Bodies larger than this are sent gzip-compressed.
pub const GZIP_THRESHOLD: usize = 1024;
/// First retry delay cap; doubles per failed attempt.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Largest retry delay cap; also the pace of retries after an authentication failure.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Why a request did not get a 2xx, sorted by what the caller should do next.
#[derive(Debug, Error)]
pub enum SendError {
    /// 401/403: the token (or enrollment code) is not accepted. Retrying soon will not help;
    /// keep the spool and retry slowly while someone fixes the enrollment.
    #[error("the server refused this agent's credentials (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// 400/413/422, or too large to send: this request will never be accepted as it is. A
    /// report with several events should be retried with fewer.
    #[error("the server refused the request as invalid{}: {message}", status_suffix(*status))]
    Rejected {
        status: Option<u16>,
        message: String,
    },
    /// 409 `stale_seq`: the server holds a higher `seq` for this agent than the one sent (its
    /// data directory was restored from an older copy). Nothing was stored; send again at once
    /// with a `seq` above `stored_seq`.
    #[error("the server holds seq {stored_seq}, above the one sent")]
    StaleSeq { stored_seq: u64 },
    /// Connection failures, timeouts, 5xx, 429 and anything else: try again later.
    #[error("{message}")]
    Retryable {
        status: Option<u16>,
        message: String,
        /// What the server's `Retry-After` asked for, if anything.
        retry_after: Option<Duration>,
    },
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

/// Settings for the HTTP client.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// An extra CA certificate (PEM, may hold several) to trust besides the system's.
    pub ca_cert: Option<PathBuf>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            ca_cert: None,
        }
    }
}

/// A client for one server.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
    base: Url,
}

/// Installs rustls' ring provider as the process default, once. reqwest is built without a
/// provider of its own, and other crates may bring another one; one explicit choice avoids
/// a panic over which to use.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Transport {
    /// A client for the server at `server` (an `http://` or `https://` base URL, possibly with
    /// a path prefix).
    pub fn new(server: &str, options: &TransportOptions) -> Result<Transport, AgentError> {
        install_crypto_provider();
        let mut base = Url::parse(server)
            .map_err(|e| AgentError::Config(format!("server URL {server:?}: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" => {
                let local = matches!(base.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                if !local {
                    tracing::warn!(%base, "server URL is plain http: the agent token travels unencrypted");
                }
            }
            other => {
                return Err(AgentError::Config(format!(
                    "server URL must be http or https, not {other}"
                )));
            }
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }

        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout);
        if let Some(path) = &options.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| AgentError::io("read CA certificate", path, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                AgentError::Config(format!("CA certificate {}: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(AgentError::Config(format!(
                    "CA certificate {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| AgentError::Config(format!("HTTP client: {}", chain(&e))))?;
        Ok(Transport { client, base })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, SendError> {
        self.base.join(path).map_err(|e| SendError::Rejected {
            status: None,
            message: format!("URL: {e}"),
        })
    }

    /// `POST /api/v1/enroll`.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, SendError> {
        self.post("api/v1/enroll", None, request).await
    }

    /// `POST /api/v1/report`, gzip-compressed when larger than [`GZIP_THRESHOLD`].
    pub async fn send_report(
        &self,
        token: &AgentToken,
        report: &Report,
    ) -> Result<ReportAck, SendError> {
        self.post("api/v1/report", Some(token), report).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&AgentToken>,
        body: &B,
    ) -> Result<T, SendError> {
        let url = self.url(path)?;
        let (bytes, gzipped) = encode_body(body)?;
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(bytes);
        if gzipped {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(token) = token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|e| SendError::Retryable {
            status: None,
            message: chain(&e),
            retry_after: None,
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| SendError::Retryable {
            status: Some(status.as_u16()),
            message: format!("reading the answer: {}", chain(&e)),
            retry_after: None,
        })?;
        interpret(status, &headers, &body)
    }
}

/// The JSON body, gzip-compressed when larger than [`GZIP_THRESHOLD`]. Refuses what the server
/// would refuse for size, so the caller can send less instead.
pub fn encode_body<B: Serialize>(body: &B) -> Result<(Vec<u8>, bool), SendError> {
    let json = serde_json::to_vec(body).map_err(|e| SendError::Rejected {
        status: None,
        message: format!("cannot encode: {e}"),
    })?;
    if json.len() > MAX_BODY_BYTES {
        return Err(SendError::Rejected {
            status: None,
            message: format!(
                "body is {} bytes; the server reads at most {MAX_BODY_BYTES}",
                json.len()
            ),
        });
    }
    if json.len() <= GZIP_THRESHOLD {
        return Ok((json, false));
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
    let gz = encoder
        .write_all(&json)
        .and_then(|()| encoder.finish())
        .map_err(|e| SendError::Rejected {
            status: None,
            message: format!("cannot compress: {e}"),
        })?;
    Ok((gz, true))
}

/// What an HTTP answer means.
pub fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, SendError> {
    let code = status.as_u16();
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| SendError::Retryable {
            status: Some(code),
            message: format!("HTTP {code} with an unreadable answer: {e}"),
            retry_after: None,
        });
    }
    if code == 409
        && let Ok(ApiError {
            error,
            stored_seq: Some(stored_seq),
            ..
        }) = serde_json::from_slice::<ApiError>(body)
        && error == "stale_seq"
    {
        return Err(SendError::StaleSeq { stored_seq });
    }
    let message = error_message(status, body);
    match code {
        401 | 403 => Err(SendError::Auth {
            status: code,
            message,
        }),
        400 | 413 | 422 => Err(SendError::Rejected {
            status: Some(code),
            message,
        }),
        _ => Err(SendError::Retryable {
            status: Some(code),
            message: format!("HTTP {code}: {message}"),
            retry_after: retry_after(headers),
        }),
    }
}

/// The server's `{error, detail}` body, else the start of whatever it sent, else the status.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(api) = serde_json::from_slice::<ApiError>(body) {
        return if api.detail.is_empty() {
            api.error
        } else {
            format!("{}: {}", api.error, api.detail)
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_string()
    } else {
        text.chars().take(200).collect()
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(BACKOFF_MAX * 4))
}

/// An error with its causes, which is where reqwest says what actually went wrong.
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The delay before retry number `attempt` (0 for the first): uniformly random between zero and
/// `min(BACKOFF_MAX, BACKOFF_MIN * 2^attempt)` ("full jitter"), so a fleet that lost the server
/// at the same moment does not come back at the same moment.
pub fn backoff_delay(attempt: u32, rng: &mut impl Rng) -> Duration {
    let cap = BACKOFF_MIN
        .saturating_mul(1u32 << attempt.min(20))
        .min(BACKOFF_MAX);
    let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.random_range(0..=cap_ms))
}

/// How long to wait when the server said when to come back: its `Retry-After`, ±20 %, so the
/// agents it refused together do not return together.
pub fn retry_after_delay(retry_after: Duration, rng: &mut impl Rng) -> Duration {
    retry_after.mul_f64(rng.random_range(0.8..=1.2))
}

/// Counts consecutive failures for [`backoff_delay`].
#[derive(Debug, Default, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next try; each call counts one more failure.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let delay = backoff_delay(self.attempt, rng);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn failures(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use onshi_shared::{AgentPolicy, SCHEMA_VERSION, sample};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_below_it() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..30 {
            let cap = BACKOFF_MIN
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(BACKOFF_MAX);
            for _ in 0..50 {
                assert!(backoff_delay(attempt, &mut rng) <= cap);
            }
        }
        // Full jitter: late attempts spread over the whole range, not near the cap only.
        let samples: Vec<Duration> = (0..200).map(|_| backoff_delay(25, &mut rng)).collect();
        assert!(samples.iter().any(|d| *d < BACKOFF_MAX / 4));
        assert!(samples.iter().any(|d| *d > BACKOFF_MAX * 3 / 4));
    }

    #[test]
    fn backoff_counts_failures_and_resets() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay(&mut rng);
        }
        assert_eq!(b.failures(), 5);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_delay(&mut rng) <= BACKOFF_MIN);
    }

    #[test]
    fn small_bodies_go_plain_and_large_ones_gzipped() {
        let (plain, gz) = encode_body(&serde_json::json!({"a": 1})).unwrap();
        assert!(!gz);
        assert_eq!(plain, br#"{"a":1}"#);
        let report = sample::report(1);
        let (bytes, gz) = encode_body(&report).unwrap();
        assert!(gz);
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut json)
            .unwrap();
        let back: Report = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, report);
        let huge = "x".repeat(MAX_BODY_BYTES);
        assert!(matches!(
            encode_body(&huge),
            Err(SendError::Rejected { status: None, .. })
        ));
    }

    #[test]
    fn answers_map_to_what_to_do() {
        let none = HeaderMap::new();
        let api = br#"{"error":"invalid_report","detail":"events.id must be a UUIDv7"}"#;
        let r: Result<ReportAck, _> = interpret(StatusCode::UNPROCESSABLE_ENTITY, &none, api);
        match r {
            Err(SendError::Rejected { status, message }) => {
                assert_eq!(status, Some(422));
                assert_eq!(message, "invalid_report: events.id must be a UUIDv7");
            }
            other => panic!("{other:?}"),
        }
        for code in [401u16, 403] {
            let r: Result<ReportAck, _> =
                interpret(StatusCode::from_u16(code).unwrap(), &none, b"");
            assert!(matches!(r, Err(SendError::Auth { .. })), "{code}");
        }
        for code in [400u16, 413] {
            let r: Result<ReportAck, _> =
                interpret(StatusCode::from_u16(code).unwrap(), &none, b"too big");
            assert!(matches!(r, Err(SendError::Rejected { .. })), "{code}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "30".parse().unwrap());
        for code in [500u16, 502, 503, 429, 404] {
            let r: Result<ReportAck, _> =
                interpret(StatusCode::from_u16(code).unwrap(), &headers, b"<html>");
            match r {
                Err(SendError::Retryable { retry_after, .. }) => {
                    assert_eq!(retry_after, Some(Duration::from_secs(30)), "{code}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let r: Result<ReportAck, _> = interpret(StatusCode::OK, &none, b"not json");
        assert!(matches!(r, Err(SendError::Retryable { .. })));
        let stale = br#"{"error":"stale_seq","detail":"...","stored_seq":1700000000123}"#;
        let r: Result<ReportAck, _> = interpret(StatusCode::CONFLICT, &none, stale);
        assert!(
            matches!(
                r,
                Err(SendError::StaleSeq {
                    stored_seq: 1_700_000_000_123
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn the_servers_retry_after_is_spread_by_a_fifth_either_way() {
        let mut rng = StdRng::seed_from_u64(7);
        let waits: Vec<Duration> = (0..1000)
            .map(|_| retry_after_delay(Duration::from_secs(30), &mut rng))
            .collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(24) && *w <= Duration::from_secs(36))
        );
        let early = waits
            .iter()
            .filter(|w| **w < Duration::from_secs(27))
            .count();
        let late = waits
            .iter()
            .filter(|w| **w > Duration::from_secs(33))
            .count();
        assert!(
            early > 100 && late > 100,
            "spread, not bunched: {early} {late}"
        );
    }

    /// A one-shot HTTP/1.1 server: answers the first request with `status` and `answer`, and
    /// hands back the request's head and body.
    async fn one_shot(
        status: u16,
        answer: &'static str,
    ) -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (head, body) = onshi_testkit::http::read_request(&mut stream).await;
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
            (head, body)
        });
        (url, handle)
    }

    #[tokio::test]
    async fn sends_a_gzipped_report_with_the_token_and_reads_the_ack() {
        let ack = ReportAck {
            acked_seq: 9,
            next_interval_secs: 60,
            policy: AgentPolicy::default(),
        };
        let ack_json: &'static str =
            Box::leak(serde_json::to_string(&ack).unwrap().into_boxed_str());
        let (url, server) = one_shot(200, ack_json).await;
        let transport = Transport::new(&url, &TransportOptions::default()).unwrap();
        let mut report = sample::report(9);
        report.schema = SCHEMA_VERSION;
        let got = transport
            .send_report(&AgentToken::new("tok-123".into()), &report)
            .await
            .unwrap();
        assert_eq!(got, ack);
        let (head, body) = server.await.unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /api/v1/report "), "{head}");
        assert!(head.contains("authorization: bearer tok-123"), "{head}");
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(
            head.contains(&format!("user-agent: {USER_AGENT}")),
            "{head}"
        );
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut json)
            .unwrap();
        assert_eq!(serde_json::from_slice::<Report>(&json).unwrap(), report);
    }

    #[tokio::test]
    async fn a_path_prefix_is_kept_and_errors_carry_the_api_message() {
        let (url, server) = one_shot(403, r#"{"error":"forbidden","detail":"code revoked"}"#).await;
        let transport =
            Transport::new(&format!("{url}onshi"), &TransportOptions::default()).unwrap();
        let request = EnrollRequest {
            schema: SCHEMA_VERSION,
            code: "ABCD-1234".into(),
            hostname: "pc".into(),
            agent_version: "0.1.0".into(),
            os: "Linux".into(),
        };
        match transport.enroll(&request).await {
            Err(SendError::Auth { status, message }) => {
                assert_eq!(status, 403);
                assert_eq!(message, "forbidden: code revoked");
            }
            other => panic!("{other:?}"),
        }
        let (head, _) = server.await.unwrap();
        assert!(head.starts_with("POST /onshi/api/v1/enroll "), "{head}");
    }

    #[tokio::test]
    async fn no_server_is_retryable() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", l.local_addr().unwrap())
        };
        let transport = Transport::new(&closed, &TransportOptions::default()).unwrap();
        let r = transport
            .send_report(&AgentToken::new("t".into()), &sample::report(1))
            .await;
        assert!(
            matches!(r, Err(SendError::Retryable { status: None, .. })),
            "{r:?}"
        );
    }

    /// An HTTPS server on loopback with the test CA's `localhost` certificate, answering every
    /// request with `body`. Blocking rustls on a thread: no TLS server crate needed.
    fn tls_server(body: &'static str) -> (String, std::thread::JoinHandle<()>) {
        use std::io::{BufRead, BufReader};
        use std::sync::Arc;

        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
        let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://localhost:{}/",
            listener.local_addr().unwrap().port()
        );
        let handle = std::thread::spawn(move || {
            // Two connections at most: a refused handshake, then a real request.
            for _ in 0..2 {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut reader = BufReader::new(&mut tls);
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        let mut request_body = vec![0u8; len];
                        reader.read_exact(&mut request_body).unwrap();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        tls.write_all(answer.as_bytes()).unwrap();
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                        return;
                    }
                }
            }
        });
        (url, handle)
    }

    #[tokio::test]
    async fn https_with_an_extra_ca_works_and_without_it_fails() {
        let ack = ReportAck {
            acked_seq: 3,
            next_interval_secs: 60,
            policy: AgentPolicy::default(),
        };
        let body: &'static str = Box::leak(serde_json::to_string(&ack).unwrap().into_boxed_str());
        let (url, server) = tls_server(body);
        let token = AgentToken::new("t".into());
        let report = sample::report(3);

        let untrusting = Transport::new(&url, &TransportOptions::default()).unwrap();
        let r = untrusting.send_report(&token, &report).await;
        assert!(
            matches!(&r, Err(SendError::Retryable { message, .. }) if message.contains("certificate")),
            "{r:?}"
        );

        let options = TransportOptions {
            ca_cert: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem"),
            ),
            ..TransportOptions::default()
        };
        let trusting = Transport::new(&url, &options).unwrap();
        assert_eq!(trusting.send_report(&token, &report).await.unwrap(), ack);
        server.join().unwrap();
    }

    #[test]
    fn bad_server_urls_and_ca_files_are_config_errors() {
        assert!(matches!(
            Transport::new("ftp://x", &TransportOptions::default()),
            Err(AgentError::Config(_))
        ));
        assert!(Transport::new("not a url", &TransportOptions::default()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "no certificate here").unwrap();
        let options = TransportOptions {
            ca_cert: Some(pem),
            ..TransportOptions::default()
        };
        assert!(Transport::new("https://localhost:1/", &options).is_err());
        let options = TransportOptions {
            ca_cert: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/certs/root-ca.pem"),
            ),
            ..TransportOptions::default()
        };
        Transport::new("https://localhost:1/", &options).unwrap();
    }
}
