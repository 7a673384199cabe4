//! One request, from a client to one of its app's backends: the app found by host, the
//! routing switches applied (allow list, HTTPS only, maintenance, the concurrency limit),
//! the forwarding headers set from the real connection, the request passed on — streamed,
//! retried on the next backend when a backend refused it before anything was sent — and
//! the response streamed back, or the connection handed over whole on an `Upgrade`.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use domain::Cidr;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::routes::{Busy, Entry, InFlight};
use crate::{RequestMetrics, Routes};

/// How long the router waits for an app to start its response (Heroku's router waits 30 s
/// too). A slow body after that is the app's business; an app that never answers does not
/// hold the client's connection and a router task forever.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests under way to one app at most, by default; past it the router answers 503 at
/// once rather than queue behind an app that has fallen behind.
pub const MAX_IN_FLIGHT_PER_APP: usize = 1_000;

/// Where ACME HTTP-01 challenges are asked for.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Receives `(app, line)` for every request the router answers for an app, for its log.
pub type RequestLog = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The key authorization for an ACME HTTP-01 token, while the challenge is pending.
pub type Challenges = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The router's settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Peers whose `X-Forwarded-For`, `-Proto` and `-Port` are believed (a load balancer in
    /// front of the router). Everyone else's are replaced.
    pub trusted_proxies: Vec<Cidr>,
    pub max_in_flight_per_app: usize,
    /// The port HTTPS is served on, for redirects to it; `None` when the router serves no
    /// HTTPS (and `tls:enable` then redirects nothing).
    pub https_port: Option<u16>,
    pub response_timeout: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            trusted_proxies: Vec::new(),
            max_in_flight_per_app: MAX_IN_FLIGHT_PER_APP,
            https_port: None,
            response_timeout: RESPONSE_TIMEOUT,
        }
    }
}

/// The router: what it needs to answer any request. Serve it with [`Router::serve`].
pub struct Router {
    routes: Routes,
    client: Client<HttpConnector, RequestBody>,
    log: RequestLog,
    challenges: Option<Challenges>,
    config: RouterConfig,
    metrics: RequestMetrics,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the router sends a backend: nothing, or the client's body, streamed — saying when
/// it has all been sent (or given up), since the app's time to answer starts then.
#[derive(Debug)]
enum RequestBody {
    Empty,
    Streamed {
        body: Incoming,
        sent: Option<tokio::sync::oneshot::Sender<()>>,
    },
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Streamed { body, sent } => {
                let frame = Pin::new(body).poll_frame(cx);
                if matches!(frame, Poll::Ready(None | Some(Err(_))))
                    && let Some(sent) = sent.take()
                {
                    let _ = sent.send(());
                }
                frame
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Streamed { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            RequestBody::Empty => http_body::SizeHint::with_exact(0),
            RequestBody::Streamed { body, .. } => body.size_hint(),
        }
    }
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection {
    pub(crate) peer: SocketAddr,
    /// The router's own port the client connected to.
    pub(crate) local_port: u16,
    pub(crate) https: bool,
}

impl Router {
    pub fn new(
        routes: Routes,
        log: RequestLog,
        challenges: Option<Challenges>,
        config: RouterConfig,
    ) -> Arc<Router> {
        let mut connector = HttpConnector::new();
        // Small requests and responses go out at once, not after the peer's delayed ACK.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            // A request to an app is small: one copied buffer and one write cost less than
            // a vectored write (router CPU per request 32-33 us -> 28-29 us in benches/proxy.rs).
            .http1_writev(false)
            .build(connector);
        Arc::new(Router {
            routes,
            client,
            log,
            challenges,
            config,
            metrics: RequestMetrics::new(),
        })
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// What the router has counted of the requests it answered (see [`RequestMetrics`]);
    /// whoever serves the router drains it.
    pub fn metrics(&self) -> &RequestMetrics {
        &self.metrics
    }

    /// Answers one request, and counts it: for its app, if it has one, from its arrival to
    /// the response head.
    pub(crate) async fn handle(
        &self,
        connection: Connection,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let mut app = None;
        let response = self.respond(connection, request, started, &mut app).await;
        self.metrics.record(
            app.as_ref()
                .map(|entry: &Arc<Entry>| entry.route.app.as_str()),
            response.status().as_u16(),
            started.elapsed(),
        );
        response
    }

    /// Answers one request; `app_found` is set to the app's route once the host names one.
    async fn respond(
        &self,
        connection: Connection,
        mut request: Request<Incoming>,
        started: Instant,
        app_found: &mut Option<Arc<Entry>>,
    ) -> Response<ProxyBody> {
        let Some(host) = host_of(&request) else {
            return page(StatusCode::BAD_REQUEST, "The request names no host.");
        };
        if !connection.https
            && let Some(token) = request.uri().path().strip_prefix(ACME_CHALLENGE)
            && let Some(answer) = self.challenges.as_ref().and_then(|c| c(token))
        {
            return ProxyBody::text(StatusCode::OK, answer);
        }
        let Some(entry) = self.routes.lookup(&host) else {
            return page(StatusCode::NOT_FOUND, &format!("No app answers at {host}."));
        };
        *app_found = Some(Arc::clone(&entry));
        let app = entry.route.app.as_str();
        let settings = &entry.route.settings;
        let forwarded = self.forwarded(connection, request.headers());
        let method = request.method().clone();
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let said = |status: StatusCode, note: &str| {
            (self.log)(
                app,
                &format!(
                    "{method} {path} {} {note} client={}",
                    status.as_u16(),
                    forwarded.client
                ),
            );
        };

        if !settings.allows(forwarded.client) {
            said(StatusCode::FORBIDDEN, "(not on the allow list)");
            return page(
                StatusCode::FORBIDDEN,
                "Your address may not reach this app.",
            );
        }
        if settings.force_https
            && !forwarded.https
            && let Some(port) = self.config.https_port
        {
            let port = if port == 443 {
                String::new()
            } else {
                format!(":{port}")
            };
            let location = format!("https://{host}{port}{path}");
            let status = if matches!(method, Method::GET | Method::HEAD) {
                StatusCode::MOVED_PERMANENTLY
            } else {
                StatusCode::PERMANENT_REDIRECT
            };
            said(status, "(to HTTPS)");
            return redirect(status, &location);
        }
        if settings.maintenance {
            said(StatusCode::SERVICE_UNAVAILABLE, "(maintenance)");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{app} is offline for maintenance. Please try again later."),
            );
        }
        if entry.route.backends.is_empty() {
            return no_process(app);
        }
        let Some(busy) = Busy::admit(&entry, self.config.max_in_flight_per_app) else {
            said(
                StatusCode::SERVICE_UNAVAILABLE,
                "(too many requests under way)",
            );
            let mut response = page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "{app} has {} requests under way already. Please try again shortly.",
                    self.config.max_in_flight_per_app
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };

        let request_id = request_id(request.headers());
        let client_version = request.version();
        let upgrading = request.version() == Version::HTTP_11 && wants_upgrade(request.headers());
        let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        let authority = parts.uri.authority().cloned();
        strip_hop_by_hop(&mut headers, upgrading);
        if !headers.contains_key(header::HOST)
            && let Some(authority) = authority
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            // HTTP/2 names the host in the request line only; the app's HTTP/1.1 wants it.
            headers.insert(header::HOST, value);
        }
        forwarded.set(&mut headers, &request_id);

        // Only a request without a body can be sent again to another backend.
        let empty = body.is_end_stream();
        let mut body = (!empty).then_some(body);
        // The table the request goes by; a newer one after a backend has gone.
        let mut target = Arc::clone(&entry);
        let mut start = target.next.fetch_add(1, Ordering::Relaxed);
        // Each backend once, and once more should the table change under the request.
        let attempts = if empty {
            target.route.backends.len() + 1
        } else {
            1
        };
        let mut headers = Some(headers);
        let mut client_upgrade = client_upgrade;
        for attempt in 0..attempts {
            let backends = &target.route.backends;
            if backends.is_empty() {
                return no_process(app);
            }
            let index = (start + attempt) % backends.len();
            let backend = backends[index];
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(target.authorities[index].clone());
            uri.path_and_query = Some(path.clone());
            let Ok(uri) = Uri::from_parts(uri) else {
                return page(StatusCode::BAD_REQUEST, "The request's path is not valid.");
            };
            let last = attempt + 1 == attempts;
            let headers = if last {
                headers.take().unwrap_or_default()
            } else {
                headers.clone().unwrap_or_default()
            };
            let (body, sent) = match body.take() {
                Some(body) => {
                    let (sent, done) = tokio::sync::oneshot::channel();
                    let body = RequestBody::Streamed {
                        body,
                        sent: Some(sent),
                    };
                    (body, Some(done))
                }
                None => (RequestBody::Empty, None),
            };
            let mut outgoing = Request::new(body);
            *outgoing.method_mut() = method.clone();
            *outgoing.uri_mut() = uri;
            *outgoing.version_mut() = Version::HTTP_11;
            *outgoing.headers_mut() = headers;

            let in_flight = InFlight::new(self.routes.in_flight_counts(), backend);
            let answered = self.answer(self.client.request(outgoing), sent).await;
            let Some(answered) = answered else {
                let seconds = self.config.response_timeout.as_secs();
                (self.log)(
                    app,
                    &format!(
                        "{method} {path} 504 via {backend}: no response in {seconds}s request_id={} client={}",
                        request_id.to_str().unwrap_or_default(),
                        forwarded.client,
                    ),
                );
                return page(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("{app} did not answer within {seconds} seconds."),
                );
            };
            match answered {
                Ok(mut response) => {
                    let status = response.status();
                    (self.log)(
                        app,
                        &format!(
                            "{method} {path} {} via {backend} {}ms request_id={} client={} {}",
                            status.as_u16(),
                            started.elapsed().as_millis(),
                            request_id.to_str().unwrap_or_default(),
                            forwarded.client,
                            if forwarded.https { "https" } else { "http" },
                        ),
                    );
                    if status == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_upgrade) = client_upgrade.take()
                    {
                        let backend_upgrade = hyper::upgrade::on(&mut response);
                        tokio::spawn(tunnel(client_upgrade, backend_upgrade, in_flight, busy));
                        return response.map(|_| ProxyBody::empty());
                    }
                    strip_hop_by_hop(response.headers_mut(), false);
                    // The client's protocol, not the app's: an app speaking HTTP/1.0 does not
                    // make the router answer an HTTP/1.1 client in 1.0 (without keep-alive).
                    *response.version_mut() = client_version;
                    if forwarded.https && settings.hsts {
                        response.headers_mut().insert(
                            header::STRICT_TRANSPORT_SECURITY,
                            HeaderValue::from_static(HSTS),
                        );
                    }
                    return response.map(|body| ProxyBody::Backend {
                        body,
                        _in_flight: in_flight,
                        _busy: busy,
                    });
                }
                Err(err) if err.is_connect() && !last => {
                    // A deploy may have switched the table since the lookup, and stopped the
                    // process this request was given: the next try goes by the table as it is now.
                    if let Some(now) = self.routes.lookup(&host)
                        && !Arc::ptr_eq(&now, &target)
                    {
                        target = now;
                        start = target.next.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(err) => {
                    tracing::warn!(%app, %backend, error = %err, "backend failed");
                    (self.log)(
                        app,
                        &format!(
                            "{method} {path} 502 via {backend}: {err} request_id={} client={}",
                            request_id.to_str().unwrap_or_default(),
                            forwarded.client,
                        ),
                    );
                    return page(StatusCode::BAD_GATEWAY, &format!("{app} did not answer."));
                }
            }
        }
        page(StatusCode::BAD_GATEWAY, &format!("{app} did not answer."))
    }

    /// The backend's response, or `None` when it has not started within the response
    /// timeout of the request having been sent whole (however long an upload took).
    async fn answer<F: std::future::Future>(
        &self,
        response: F,
        sent: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Option<F::Output> {
        let limit = self.config.response_timeout;
        match sent {
            None => tokio::time::timeout(limit, response).await.ok(),
            Some(sent) => {
                tokio::pin!(response);
                tokio::select! {
                    answered = &mut response => Some(answered),
                    () = async {
                        // Sent whole, cut off, or the body dropped: the clock starts.
                        let _ = sent.await;
                        tokio::time::sleep(limit).await;
                    } => None,
                }
            }
        }
    }

    /// Who the client is and how it came, from the connection — or, behind a trusted
    /// proxy, from what the proxy says.
    fn forwarded(&self, connection: Connection, headers: &HeaderMap) -> Forwarded {
        let peer = connection.peer.ip().to_canonical();
        let trusted = |ip: IpAddr| self.config.trusted_proxies.iter().any(|c| c.contains(ip));
        let mut forwarded = Forwarded {
            client: peer,
            peer,
            https: connection.https,
            port: connection.local_port,
            chain: None,
        };
        if !trusted(peer) {
            return forwarded;
        }
        // The client is the nearest address a trusted proxy did not add.
        'walk: for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(value) = value.to_str() else { break };
            for part in value.rsplit(',') {
                let Ok(ip) = part.trim().parse::<IpAddr>() else {
                    break 'walk;
                };
                forwarded.client = ip.to_canonical();
                if !trusted(forwarded.client) {
                    break 'walk;
                }
            }
        }
        let chain: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !chain.is_empty() {
            forwarded.chain = Some(chain.join(", "));
        }
        match headers.get(X_FORWARDED_PROTO).map(HeaderValue::as_bytes) {
            Some(b"https") => forwarded.https = true,
            Some(b"http") => forwarded.https = false,
            _ => {}
        }
        if let Some(port) = headers
            .get(X_FORWARDED_PORT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            forwarded.port = port;
        }
        forwarded
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// `Strict-Transport-Security` with [`HSTS_MAX_AGE`] written out (a test checks they agree).
const HSTS: &str = "max-age=31536000";

/// Who a request is from, as the app is told.
#[derive(Debug)]
struct Forwarded {
    client: IpAddr,
    peer: IpAddr,
    https: bool,
    port: u16,
    /// `X-Forwarded-For` as a trusted proxy sent it.
    chain: Option<String>,
}

impl Forwarded {
    /// Replaces whatever forwarding headers the client sent with the router's own.
    fn set(&self, headers: &mut HeaderMap, request_id: &HeaderValue) {
        let peer = address_value(self.peer);
        let for_value = match &self.chain {
            Some(chain) => HeaderValue::from_str(&format!("{chain}, {}", self.peer))
                .expect("addresses are header values"),
            None => peer.clone(),
        };
        let real_ip = if self.client == self.peer {
            peer
        } else {
            address_value(self.client)
        };
        headers.remove(FORWARDED);
        headers.insert(X_FORWARDED_FOR, for_value);
        headers.insert(X_REAL_IP, real_ip);
        headers.insert(
            X_FORWARDED_PROTO,
            HeaderValue::from_static(if self.https { "https" } else { "http" }),
        );
        headers.insert(X_FORWARDED_PORT, HeaderValue::from(self.port));
        headers.insert(X_REQUEST_ID, request_id.clone());
    }
}

/// An address as a header value, written without a `String` in between.
fn address_value(ip: IpAddr) -> HeaderValue {
    use std::io::Write as _;
    let mut buffer = [0u8; 64];
    let mut rest = &mut buffer[..];
    write!(rest, "{ip}").expect("an address fits 64 bytes");
    let len = 64 - rest.len();
    HeaderValue::from_bytes(&buffer[..len]).expect("an address is a header value")
}

/// The client's `X-Request-Id` when it is one Heroku would keep (20 to 200 characters of
/// letters, digits, `+/=-_`), else a new random one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(X_REQUEST_ID)
        && (20..=200).contains(&id.len())
        && id
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(b))
    {
        return id.clone();
    }
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buffer))
        .expect("a UUID is a header value")
}

/// The host a request is for, lowercase and without a port: from the request line (HTTP/2,
/// absolute form) or the `Host` header.
fn host_of(request: &Request<Incoming>) -> Option<String> {
    let host = match request.uri().authority() {
        Some(authority) => authority.host(),
        None => {
            let value = request.headers().get(header::HOST)?.to_str().ok()?;
            value.parse::<Authority>().ok().map_or(value, |_| {
                value.rsplit_once(':').map_or(value, |(name, port)| {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        name
                    } else {
                        value
                    }
                })
            })
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the headers that belong to one connection, not to the message (RFC 9110 §7.6.1),
/// keeping `Upgrade` for a request that asks to upgrade.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrading: bool) {
    // Most messages have none: one look at each name is cheaper than a lookup of each.
    if !upgrading && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            if !(upgrading && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHENTICATE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if upgrading {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether `name` is one of the headers [`strip_hop_by_hop`] always removes, or `Connection`,
/// which names the others.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::PROXY_AUTHENTICATE
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// An upgraded connection (a WebSocket): bytes both ways until either side closes.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    in_flight: InFlight,
    busy: Busy,
) {
    let _counted = (in_flight, busy);
    match tokio::try_join!(client, backend) {
        Ok((client, backend)) => {
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        }
        Err(err) => tracing::debug!(error = %err, "an upgrade did not complete"),
    }
}

fn no_process(app: &str) -> Response<ProxyBody> {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("{app} has no running web process right now."),
    )
}

fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut response = page(status, &format!("This app is served at {location}"));
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A small HTML page for the router's own answers.
fn page(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let title = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\
         <body><h1>{code} {title}</h1><p>{message}</p><p><small>Slipway</small></p></body></html>\n",
        code = status.as_u16(),
        message = escape(message),
    );
    let mut response = Response::new(ProxyBody::Own(Full::new(Bytes::from(html))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A response body: a backend's, streamed and counted as in flight until it is sent or
/// dropped, or one the router wrote.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    Backend {
        body: Incoming,
        _in_flight: InFlight,
        _busy: Busy,
    },
    Own(Full<Bytes>),
}

impl ProxyBody {
    fn empty() -> ProxyBody {
        ProxyBody::Own(Full::new(Bytes::new()))
    }

    fn text(status: StatusCode, text: String) -> Response<ProxyBody> {
        let mut response = Response::new(ProxyBody::Own(Full::new(Bytes::from(text))));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    }
}

impl http_body::Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Backend { body, .. } => Pin::new(body).poll_frame(cx),
            ProxyBody::Own(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Backend { body, .. } => body.is_end_stream(),
            ProxyBody::Own(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ProxyBody::Backend { body, .. } => body.size_hint(),
            ProxyBody::Own(full) => full.size_hint(),
        }
    }
}

/// The address and port of each backend, as request URIs name them.
pub(crate) fn authorities(backends: &[SocketAddr]) -> Vec<Authority> {
    backends
        .iter()
        .map(|b| Authority::try_from(b.to_string()).expect("a socket address is an authority"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::HSTS_MAX_AGE;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        let mut upgrading = headers.clone();
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
        strip_hop_by_hop(&mut upgrading, true);
        assert_eq!(upgrading[header::UPGRADE], "websocket");
        assert_eq!(upgrading[header::CONNECTION], "upgrade");
        assert!(!upgrading.contains_key("x-secret"));
    }

    #[test]
    fn the_hsts_header_says_the_platform_max_age() {
        assert_eq!(HSTS, format!("max-age={HSTS_MAX_AGE}"));
    }

    #[test]
    fn a_request_id_is_kept_only_when_heroku_would_keep_it() {
        let mut headers = HeaderMap::new();
        let good = "0123456789abcdef-ABCDEF+/=_";
        headers.insert(X_REQUEST_ID, HeaderValue::from_static(good));
        assert_eq!(request_id(&headers), good);
        for bad in [
            "short",
            "has spaces in it, twenty chars",
            "semicolon;0123456789abcdef",
        ] {
            headers.insert(X_REQUEST_ID, HeaderValue::from_static(bad));
            let made = request_id(&headers);
            assert_ne!(made, bad);
            assert_eq!(made.len(), 36, "a UUID: {made:?}");
        }
    }
}
