//! Serving the API over HTTP/1.1 with the limits a public port needs: a deadline for each
//! request's headers (which also closes idle keep-alive connections), and the router's
//! accept loop (a cap on connections per source address; it outlives running out of file
//! descriptors). `axum::serve` has none of these knobs.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpLimits;

/// Serves `app` on `listener` until `shutdown` fires, then lets requests in flight finish
/// (the caller bounds how long). Requests carry `ConnectInfo<SocketAddr>`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    nodelay: bool,
    shutdown: CancellationToken,
) {
    let serve = |stream: TcpStream, peer: SocketAddr| {
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move {
            if nodelay {
                let _ = stream.set_nodelay(true);
            }
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
        }
    };
    router::accept_loop(listener, limits.max_per_source, shutdown.clone(), serve).await;
}
