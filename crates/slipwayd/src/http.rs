//! Serving the API and the router over HTTP/1.1 with the limits a public port needs: a
//! deadline for each request's headers (which also closes idle keep-alive connections),
//! a cap on connections per source address, and an accept loop that outlives running out
//! of file descriptors. `axum::serve` has none of these knobs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::HttpLimits;

/// The shortest and longest pause after an accept that failed for want of resources.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Serves `app` on `listener` until `shutdown` fires, then lets requests in flight finish
/// (the caller bounds how long). Requests carry `ConnectInfo<SocketAddr>`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    nodelay: bool,
    shutdown: CancellationToken,
) {
    let sources = Arc::new(Sources::default());
    let connections = TaskTracker::new();
    let mut backoff = ACCEPT_BACKOFF.0;
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF.0;
                accepted
            }
            Err(err) => {
                // Out of descriptors or buffers: wait for connections to close, longer each
                // time. Anything else is one client's failed handshake.
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|t| now - t > Duration::from_secs(10)) {
                    tracing::error!(error = %err, "cannot accept an HTTP connection; waiting");
                    last_warning = Some(now);
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let Some(slot) = sources.admit(peer.ip(), limits.max_per_source) else {
            drop(stream);
            continue;
        };
        if nodelay {
            let _ = stream.set_nodelay(true);
        }
        let app = app.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service =
                app.map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.map(axum::body::Body::new)
                });
            let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, error = %err, "http connection ended with an error");
                    }
                }
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Open connections per source address.
#[derive(Debug, Default)]
struct Sources(Mutex<HashMap<IpAddr, usize>>);

impl Sources {
    fn admit(self: &Arc<Sources>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let ip = ip.to_canonical();
        let mut open = self.0.lock().expect("never poisoned");
        let count = open.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            sources: Arc::clone(self),
            ip,
        })
    }
}

/// One connection's place in its source's count.
#[derive(Debug)]
struct SourceSlot {
    sources: Arc<Sources>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.0.lock().expect("never poisoned");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
