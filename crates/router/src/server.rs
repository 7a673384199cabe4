//! Serving on a public port: an accept loop that outlives running out of file descriptors
//! and caps connections per source address, and the router's connections on it — TLS
//! first where the listener is HTTPS, then HTTP/1.1 or HTTP/2 (by ALPN, or HTTP/2's
//! preface on plain HTTP), with deadlines for a TLS handshake and for each request's
//! headers (which also closes idle keep-alive connections).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Router;
use crate::proxy::Connection;

/// The shortest and longest pause after an accept that failed for want of resources.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS: u32 = 256;

/// The limits of a public HTTP port.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has for a TLS handshake, and for a request's headers; an idle
    /// keep-alive connection is closed after as long.
    pub header_timeout: Duration,
    /// Open connections from one address at most; past it new ones are closed at once.
    pub max_per_source: usize,
}

/// Accepts connections on `listener` until `shutdown` fires, and runs `serve` for each in a
/// task of its own; then waits for those tasks (`serve` should watch `shutdown` too, and
/// wind its connection down). A source already holding `max_per_source` connections has
/// its new ones closed.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    max_per_source: usize,
    shutdown: CancellationToken,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
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
        let Some(slot) = sources.admit(peer.ip(), max_per_source) else {
            drop(stream);
            continue;
        };
        let connection = serve(stream, peer);
        connections.spawn(async move {
            let _slot = slot;
            connection.await;
        });
    }
    connections.close();
    connections.wait().await;
}

impl Router {
    /// Serves the router on `listener` — HTTPS when `tls` is given — until `shutdown`
    /// fires, then lets requests under way finish (the caller bounds how long).
    pub async fn serve(
        self: Arc<Router>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: Limits,
        shutdown: CancellationToken,
    ) {
        let local_port = listener.local_addr().map_or(0, |a| a.port());
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let builder = Arc::new(builder(limits));
        let serve = |stream: TcpStream, peer: SocketAddr| {
            let router = Arc::clone(&self);
            let acceptor = acceptor.clone();
            let builder = Arc::clone(&builder);
            let shutdown = shutdown.clone();
            async move {
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    peer,
                    local_port,
                    https: acceptor.is_some(),
                };
                match acceptor {
                    None => serve_connection(router, &builder, stream, connection, shutdown).await,
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                        let stream = tokio::select! {
                            done = handshake => match done {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(err)) => {
                                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            },
                            () = shutdown.cancelled() => return,
                        };
                        serve_connection(router, &builder, stream, connection, shutdown).await;
                    }
                }
            }
        };
        accept_loop(listener, limits.max_per_source, shutdown.clone(), serve).await;
    }
}

fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(limits.header_timeout);
    builder
}

async fn serve_connection<I>(
    router: Arc<Router>,
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    connection: Connection,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let router = Arc::clone(&router);
        async move { Ok::<_, Infallible>(router.handle(connection, request).await) }
    });
    let served = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(peer = %connection.peer, error = %err, "http connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
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
