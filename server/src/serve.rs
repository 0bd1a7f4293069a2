//! The HTTP server loop: the router on hyper's HTTP/1.1 connections, with what `axum::serve`
//! does not offer: a header read timeout (a connection whose request headers are not complete
//! in time is closed), a body stall timeout (a body that sends nothing for that long fails, and
//! its connection is closed), so half-sent requests cannot hold connections or memory; the peer
//! address for [`axum::extract::ConnectInfo`]; TLS by rustls when `[tls]` is set (the
//! handshake inside the header timeout); and a graceful stop that lets running requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::tls::Certificates;

/// How long a client may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Until the request headers are complete.
    pub header: Duration,
    /// Between two pieces of a request body.
    pub body: Duration,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` completes, then waits
/// for the connections' running requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    tls: Option<Certificates>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    // Closed (every receiver dropped) once all connection tasks have ended.
    let (done_tx, done_rx) = watch::channel(());
    let (stop_tx, stop_rx) = watch::channel(false);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop_rx.clone();
        let done = done_rx.clone();
        let acceptor = tls.as_ref().map(Certificates::acceptor);
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, peer, router, timeouts, stop).await,
                Some(acceptor) => {
                    // A client that does not finish its handshake in time is cut off, as one
                    // that does not finish its headers.
                    match tokio::time::timeout(timeouts.header, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(tls, peer, router, timeouts, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// One connection's requests, until it closes or the server stops.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(|b| Body::new(TimeoutBody::new(timeouts.body, b)));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                break;
            }
            changed = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                if changed.is_err() {
                    // The server is gone: finish the request in flight, then end.
                    let _ = conn.as_mut().await;
                    break;
                }
            }
        }
    }
}
