//! The local router: HTTP requests by `Host` — `<app>.<domain>` or a custom domain — to the
//! app's healthy web processes, round robin.
//!
//! The whole route table is one immutable value; [`Routes::set`] swaps it in one step, so a
//! request sees either the old table or the new one, never a mix: a deploy, rollback, restart
//! or scale switches traffic atomically. A request whose backend refuses the connection before
//! anything was sent is tried on the app's next backend, so a process that has just stopped
//! loses no request. An unknown host gets a 404 page, an app with no healthy process a 503.
//!
//! Architecture invariant: the router knows nothing of the store or of processes; the release
//! manager tells it where each app's web processes listen.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Where one app's web traffic goes.
#[derive(Debug, Clone, Default)]
pub struct AppRoute {
    pub app: String,
    /// Healthy web processes; empty while none is.
    pub backends: Vec<SocketAddr>,
}

/// The route table: host name → app.
#[derive(Debug, Default)]
struct Table {
    by_host: HashMap<String, Arc<Entry>>,
}

#[derive(Debug)]
struct Entry {
    route: AppRoute,
    next: AtomicUsize,
}

/// The router's routes, shared between the release manager (which sets them) and the proxy.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    table: Arc<RwLock<Arc<Table>>>,
    in_flight: Arc<InFlightCounts>,
}

/// Requests under way per backend, so a process taken out of the routes can be left to
/// finish them before it is stopped.
#[derive(Debug, Default)]
struct InFlightCounts {
    counts: Mutex<HashMap<SocketAddr, usize>>,
    /// Woken whenever a backend's count drops to zero.
    idle: tokio::sync::Notify,
}

/// One request under way to `backend`; counted until dropped (with the response body).
#[derive(Debug)]
struct InFlight {
    counts: Arc<InFlightCounts>,
    backend: SocketAddr,
}

impl InFlight {
    fn new(counts: &Arc<InFlightCounts>, backend: SocketAddr) -> InFlight {
        *counts
            .counts
            .lock()
            .expect("never poisoned")
            .entry(backend)
            .or_default() += 1;
        InFlight {
            counts: Arc::clone(counts),
            backend,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock().expect("never poisoned");
        if let Some(n) = counts.get_mut(&self.backend) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.backend);
                self.counts.idle.notify_waiters();
            }
        }
    }
}

/// A backend's response body, counted as in flight until it is sent or dropped.
struct Tracked {
    body: hyper::body::Incoming,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Routes {
    /// Replaces every route at once. `hosts` maps each host name (`demo.localhost`,
    /// `www.example.com`) to its app's route.
    pub fn set(&self, hosts: impl IntoIterator<Item = (String, AppRoute)>) {
        let mut by_app: HashMap<String, Arc<Entry>> = HashMap::new();
        let mut by_host = HashMap::new();
        for (host, route) in hosts {
            let entry = by_app
                .entry(route.app.clone())
                .or_insert_with(|| {
                    Arc::new(Entry {
                        route,
                        next: AtomicUsize::new(0),
                    })
                })
                .clone();
            by_host.insert(host.to_ascii_lowercase(), entry);
        }
        *self.table.write().expect("never poisoned") = Arc::new(Table { by_host });
    }

    /// Waits until no request is under way to any of `backends` (the routes no longer send
    /// them new ones), or until `limit` has passed.
    pub async fn drained(&self, backends: &[SocketAddr], limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.in_flight.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let busy = {
                let counts = self.in_flight.counts.lock().expect("never poisoned");
                backends.iter().any(|b| counts.contains_key(b))
            };
            if !busy || tokio::time::timeout_at(deadline, idle).await.is_err() {
                return;
            }
        }
    }

    /// Requests under way to `backend` now.
    pub fn in_flight(&self, backend: SocketAddr) -> usize {
        self.in_flight
            .counts
            .lock()
            .expect("never poisoned")
            .get(&backend)
            .copied()
            .unwrap_or(0)
    }

    fn lookup(&self, host: &str) -> Option<Arc<Entry>> {
        let table = Arc::clone(&self.table.read().expect("never poisoned"));
        table.by_host.get(host).cloned()
    }
}

/// Receives `(app, line)` for every request the router passes on, for the app's log stream.
pub type RequestLog = Arc<dyn Fn(&str, &str) + Send + Sync>;

#[derive(Clone)]
struct Proxy {
    routes: Routes,
    client: Client<HttpConnector, Body>,
    log: RequestLog,
}

/// How long the router waits for an app to start its response (Heroku's router waits 30 s
/// too). A slow body after that is the app's business; an app that never answers does not
/// hold the client's connection and a router task forever.
pub const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The router's HTTP service. Serve it with `axum::serve(listener,
/// router.into_make_service_with_connect_info::<SocketAddr>())`.
pub fn router(routes: Routes, log: RequestLog) -> axum::Router {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    axum::Router::new().fallback(proxy).with_state(Proxy {
        routes,
        client,
        log,
    })
}

async fn proxy(
    State(proxy): State<Proxy>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':').map_or(h, |(name, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    name
                } else {
                    h
                }
            })
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    let Some(mut entry) = proxy.routes.lookup(&host) else {
        return page(StatusCode::NOT_FOUND, &format!("No app answers at {host}."));
    };
    let app = entry.route.app.clone();
    let no_process = || {
        page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{app} has no running web process right now."),
        )
    };
    if entry.route.backends.is_empty() {
        return no_process();
    }
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // Only a request without a body can be sent again to another backend.
    let retryable = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_none_or(|l| l == "0")
        && request.headers().get(header::TRANSFER_ENCODING).is_none();
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        "x-forwarded-for",
        HeaderValue::from_str(&peer.ip().to_string()).expect("an IP is a header value"),
    );
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let mut body = Some(body);
    let mut start = entry.next.fetch_add(1, Ordering::Relaxed);
    // Each backend once, and once more should the table change under the request.
    let attempts = if retryable {
        entry.route.backends.len() + 1
    } else {
        1
    };
    for attempt in 0..attempts {
        let backends = &entry.route.backends;
        if backends.is_empty() {
            return no_process();
        }
        let backend = backends[(start + attempt) % backends.len()];
        let uri: Uri = match format!("http://{backend}{path}").parse() {
            Ok(uri) => uri,
            Err(_) => return page(StatusCode::BAD_REQUEST, "The request's path is not valid."),
        };
        let mut forwarded = Request::from_parts(parts.clone(), body.take().unwrap_or_default());
        *forwarded.uri_mut() = uri;
        let in_flight = InFlight::new(&proxy.routes.in_flight, backend);
        let answered = tokio::time::timeout(RESPONSE_TIMEOUT, proxy.client.request(forwarded));
        let Ok(answered) = answered.await else {
            (proxy.log)(
                &app,
                &format!(
                    "{method} {path} 504 via {backend}: no response in {}s",
                    RESPONSE_TIMEOUT.as_secs()
                ),
            );
            return page(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "{app} did not answer within {} seconds.",
                    RESPONSE_TIMEOUT.as_secs()
                ),
            );
        };
        match answered {
            Ok(response) => {
                (proxy.log)(
                    &app,
                    &format!(
                        "{method} {path} {} via {backend}",
                        response.status().as_u16()
                    ),
                );
                return response.map(|body| {
                    Body::new(Tracked {
                        body,
                        _in_flight: in_flight,
                    })
                });
            }
            Err(err) if err.is_connect() && attempt + 1 < attempts => {
                // A deploy may have switched the table since the lookup, and stopped the
                // process this request was given: the next try goes by the table as it is now.
                if let Some(now) = proxy.routes.lookup(&host)
                    && !Arc::ptr_eq(&now, &entry)
                {
                    entry = now;
                    start = entry.next.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(err) => {
                tracing::warn!(%app, %backend, error = %err, "backend failed");
                (proxy.log)(&app, &format!("{method} {path} 502 via {backend}: {err}"));
                return page(StatusCode::BAD_GATEWAY, &format!("{app} did not answer."));
            }
        }
    }
    page(StatusCode::BAD_GATEWAY, &format!("{app} did not answer."))
}

/// A small HTML page for the router's own answers.
fn page(status: StatusCode, message: &str) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\
         <body><h1>{code} {title}</h1><p>{message}</p><p><small>Slipway</small></p></body></html>\n",
        code = status.as_u16(),
        message = escape(message),
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
