//! The router against real HTTP backends on loopback, over HTTP and HTTPS: round robin,
//! custom domains, the 404 and 503 pages, a backend that has gone, route switches under
//! load, the forwarding headers, certificates by SNI, HTTP/2, the routing switches, the
//! concurrency limit, WebSockets, streaming both ways and slow clients.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use domain::{Cidr, RoutingSettings};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::CertifiedKey;
use slipway_router::{AppRoute, HostRoute, Issued, Issuer, Limits, Router, RouterConfig, Routes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A backend that answers every request with its name.
async fn backend(name: &'static str) -> SocketAddr {
    serve(axum::Router::new().fallback(move || async move { name })).await
}

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A backend that answers with the request's headers, one `name: value` per line.
async fn echo_headers() -> SocketAddr {
    serve(
        axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
            let mut lines: Vec<String> = headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            lines.join("\n")
        }),
    )
    .await
}

/// A backend that takes connections and reads requests but never answers.
async fn silent() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A WebSocket server that sends every message back.
async fn websocket_echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() || ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// An address where nothing listens.
fn nothing() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A CA made for the test, signing the platform's certificates as the platform CA does.
#[derive(Debug)]
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "router test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn leaf(&self, host: &str) -> (Arc<CertifiedKey>, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let der = cert.der().clone();
        let signing = rustls::crypto::ring::sign::any_supported_type(
            &rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        (
            Arc::new(CertifiedKey::new(
                vec![der.clone(), self.der.clone()],
                signing,
            )),
            der,
        )
    }
}

impl Issuer for TestCa {
    fn issue(&self, host: &str) -> Result<Issued, String> {
        Ok(Issued {
            key: self.leaf(host).0,
            not_after: SystemTime::now() + Duration::from_secs(90 * 24 * 3600),
        })
    }
}

struct Fixture {
    url: String,
    https: SocketAddr,
    routes: Routes,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    ca: Arc<TestCa>,
    challenges: Arc<Mutex<HashMap<String, String>>>,
    metrics: slipway_router::RequestMetrics,
    _stop: tokio_util::sync::DropGuard,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with(RouterConfig::default(), Duration::from_secs(30)).await
    }

    async fn with(mut config: RouterConfig, header_timeout: Duration) -> Fixture {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let routes = Routes::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let challenges = Arc::new(Mutex::new(HashMap::<String, String>::new()));
        let answers = Arc::clone(&challenges);
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", http.local_addr().unwrap());
        let https_addr = https.local_addr().unwrap();
        config.https_port = Some(https_addr.port());
        let router = Router::new(
            routes.clone(),
            Arc::new(move |app: &str, line: &str| {
                sink.lock().unwrap().push(format!("{app}: {line}"))
            }),
            Some(Arc::new(move |token: &str| {
                answers.lock().unwrap().get(token).cloned()
            })),
            config,
        );
        let ca = Arc::new(TestCa::new());
        let tls = slipway_router::server_config(&routes, Some(Arc::clone(&ca) as _));
        let limits = Limits {
            header_timeout,
            max_per_source: 1_000,
        };
        let stop = CancellationToken::new();
        let metrics = router.metrics().clone();
        tokio::spawn(Arc::clone(&router).serve(http, None, limits, stop.clone()));
        tokio::spawn(router.serve(https, Some(tls), limits, stop.clone()));
        Fixture {
            url,
            https: https_addr,
            routes,
            log,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            ca,
            challenges,
            metrics,
            _stop: stop.drop_guard(),
        }
    }

    async fn get(&self, host: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}/path?q=1", self.url))
            .header("host", host)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A client for `https://HOST:PORT` that trusts the test CA (and `extra`), with every
    /// name resolving to the router.
    fn https_client(&self, extra: &[CertificateDer<'static>]) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der.clone()).unwrap();
        for der in extra {
            roots.add(der.clone()).unwrap();
        }
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .resolve_to_addrs("demo.localhost", &[self.https])
            .resolve_to_addrs("www.example.com", &[self.https])
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// The certificate the router shows for `host`, and the protocol ALPN chose.
    async fn handshake(&self, host: &str) -> (CertificateDer<'static>, Option<Vec<u8>>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate))
            .with_no_client_auth();
        let mut config = config;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = tokio::net::TcpStream::connect(self.https).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from(host.to_owned()).unwrap(), stream)
            .await
            .unwrap();
        let (_, session) = tls.get_ref();
        (
            session.peer_certificates().unwrap()[0].clone(),
            session.alpn_protocol().map(<[u8]>::to_vec),
        )
    }
}

/// Accepts whatever certificate the server shows: the test looks at which one it is.
#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn route(app: &str, backends: &[SocketAddr]) -> AppRoute {
    AppRoute {
        app: app.to_owned(),
        backends: backends.to_vec(),
        settings: Arc::default(),
    }
}

fn with(settings: RoutingSettings, mut route: AppRoute) -> AppRoute {
    route.settings = Arc::new(settings);
    route
}

fn host(name: &str, route: &AppRoute) -> HostRoute {
    HostRoute {
        host: name.to_owned(),
        route: route.clone(),
        certificate: None,
    }
}

#[tokio::test]
async fn round_robin_over_an_apps_web_processes_and_its_domains() {
    let f = Fixture::new().await;
    let (a, b) = (backend("a").await, backend("b").await);
    let demo = route("demo", &[a, b]);
    f.routes.set([
        host("demo.localhost", &demo),
        host("www.example.com", &demo),
    ]);
    let mut seen = Vec::new();
    for host in [
        "demo.localhost",
        "demo.localhost:8080",
        "WWW.example.com",
        "demo.localhost",
    ] {
        let (status, body) = f.get(host).await;
        assert_eq!(status, 200);
        seen.push(body);
    }
    assert_eq!(
        seen,
        ["a", "b", "a", "b"],
        "one rotation per app, whichever of its hosts is used"
    );
    let log = f.log.lock().unwrap().clone();
    assert!(
        log[0].starts_with("demo: GET /path?q=1 200 via 127.0.0.1:"),
        "{log:?}"
    );
    assert!(log[0].contains(" request_id="), "{log:?}");
}

#[tokio::test]
async fn unknown_hosts_and_apps_without_processes_get_pages() {
    let f = Fixture::new().await;
    f.routes.set([host("idle.localhost", &route("idle", &[]))]);
    let (status, body) = f.get("nobody.localhost").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("No app answers at nobody.localhost."),
        "{body}"
    );
    let (status, body) = f.get("idle.localhost").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("idle has no running web process right now."),
        "{body}"
    );
}

#[tokio::test]
async fn a_backend_that_has_gone_loses_no_request() {
    let f = Fixture::new().await;
    let live = backend("live").await;
    f.routes.set([host(
        "demo.localhost",
        &route("demo", &[nothing(), live, nothing()]),
    )]);
    for _ in 0..6 {
        assert_eq!(f.get("demo.localhost").await, (200, "live".to_owned()));
    }
    f.routes
        .set([host("demo.localhost", &route("demo", &[nothing()]))]);
    let (status, body) = f.get("demo.localhost").await;
    assert_eq!(status, 502);
    assert!(body.contains("demo did not answer."), "{body}");
}

#[tokio::test]
async fn switching_routes_under_load_fails_no_request() {
    let f = Arc::new(Fixture::new().await);
    let (old, new) = (backend("old").await, backend("new").await);
    f.routes
        .set([host("demo.localhost", &route("demo", &[old]))]);
    let load = {
        let f = Arc::clone(&f);
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..400 {
                statuses.push(f.get("demo.localhost").await);
            }
            statuses
        })
    };
    for i in 0..200 {
        let to = if i % 2 == 0 { new } else { old };
        f.routes
            .set([host("demo.localhost", &route("demo", &[to]))]);
        tokio::task::yield_now().await;
    }
    let statuses = load.await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|(status, body)| *status == 200 && (body == "old" || body == "new")),
        "{statuses:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_app_that_never_answers_gets_a_504_not_a_hung_connection() {
    let f = Fixture::new().await;
    f.routes
        .set([host("mute.localhost", &route("mute", &[silent().await]))]);
    let started = tokio::time::Instant::now();
    let (status, body) = f.get("mute.localhost").await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("mute did not answer within 30 seconds."),
        "{body}"
    );
    assert!(started.elapsed() >= slipway_router::RESPONSE_TIMEOUT);
    assert!(f.log.lock().unwrap()[0].contains("504"), "{:?}", f.log);
}

/// The header lines an echo backend saw whose names start with `x-` or are `forwarded`.
fn forwarding(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| l.starts_with("x-") || l.starts_with("forwarded"))
        .collect()
}

#[tokio::test]
async fn forwarding_headers_come_from_the_connection_never_from_the_client() {
    let f = Fixture::new().await;
    let demo = route("demo", &[echo_headers().await]);
    f.routes.set([host("demo.localhost", &demo)]);
    let port = f.url.rsplit_once(':').unwrap().1;
    let spoofed = |request: reqwest::RequestBuilder, request_id: &str| {
        request
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-port", "443")
            .header("x-real-ip", "6.6.6.6")
            .header("forwarded", "for=6.6.6.6;proto=https")
            .header("x-request-id", request_id)
    };
    let body = spoofed(
        f.client
            .get(format!("{}/", f.url))
            .header("host", "demo.localhost"),
        "bad id",
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let seen = forwarding(&body);
    assert_eq!(seen[0], "x-forwarded-for: 127.0.0.1", "{body}");
    assert_eq!(seen[1], format!("x-forwarded-port: {port}"), "{body}");
    assert_eq!(seen[2], "x-forwarded-proto: http", "{body}");
    assert_eq!(seen[3], "x-real-ip: 127.0.0.1", "{body}");
    assert!(
        seen[4].starts_with("x-request-id: ") && seen[4].len() == 14 + 36,
        "{body}"
    );
    assert_eq!(seen.len(), 5, "no Forwarded header passes: {body}");

    // Over HTTPS (and HTTP/2) the scheme and port are the HTTPS listener's; a request id
    // that is a good one is kept.
    let id = "a-request-id-from-upstream-0001";
    let response = spoofed(
        f.https_client(&[])
            .get(format!("https://demo.localhost:{}/", f.https.port())),
        id,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let body = response.text().await.unwrap();
    let seen = forwarding(&body);
    assert_eq!(seen[0], "x-forwarded-for: 127.0.0.1", "{body}");
    assert_eq!(
        seen[1],
        format!("x-forwarded-port: {}", f.https.port()),
        "{body}"
    );
    assert_eq!(seen[2], "x-forwarded-proto: https", "{body}");
    assert_eq!(seen[4], format!("x-request-id: {id}"), "{body}");
    assert!(
        body.contains("host: demo.localhost"),
        "HTTP/2's authority becomes Host: {body}"
    );
}

#[tokio::test]
async fn a_trusted_proxy_is_believed_about_the_client() {
    let config = RouterConfig {
        trusted_proxies: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        ..RouterConfig::default()
    };
    let f = Fixture::with(config, Duration::from_secs(30)).await;
    let allow_only = |cidr: &str| RoutingSettings {
        allow: [Cidr::parse(cidr).unwrap()].into(),
        ..RoutingSettings::default()
    };
    let demo = with(
        allow_only("203.0.113.0/24"),
        route("demo", &[echo_headers().await]),
    );
    f.routes.set([host("demo.localhost", &demo)]);
    let ask = |forwarded_for: &'static str| {
        f.client
            .get(format!("{}/", f.url))
            .header("host", "demo.localhost")
            .header("x-forwarded-for", forwarded_for)
            .header("x-forwarded-proto", "https")
            .send()
    };
    let response = ask("203.0.113.9, 127.0.0.5").await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let seen = forwarding(&body);
    assert_eq!(
        seen[0], "x-forwarded-for: 203.0.113.9, 127.0.0.5, 127.0.0.1",
        "{body}"
    );
    assert_eq!(seen[2], "x-forwarded-proto: https", "{body}");
    assert_eq!(seen[3], "x-real-ip: 203.0.113.9", "{body}");
    // The client is the nearest address no trusted proxy added, whatever it wrote further left.
    let response = ask("203.0.113.9, 198.51.100.1").await.unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn https_serves_each_host_its_own_certificate_by_sni_else_the_platforms() {
    let f = Fixture::new().await;
    let demo = route("demo", &[backend("demo").await]);
    // An uploaded certificate, from a CA of the app owner's.
    let owners_ca = TestCa::new();
    let (uploaded, uploaded_der) = owners_ca.leaf("www.example.com");
    f.routes.set([
        host("demo.localhost", &demo),
        HostRoute {
            certificate: Some(uploaded),
            ..host("www.example.com", &demo)
        },
    ]);
    let (shown, alpn) = f.handshake("www.example.com").await;
    assert_eq!(shown, uploaded_der);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (platform, _) = f.handshake("demo.localhost").await;
    assert_ne!(platform, uploaded_der);
    // Both verify for their names with the CAs trusted, over HTTP/2.
    let client = f.https_client(std::slice::from_ref(&owners_ca.der));
    for name in ["demo.localhost", "www.example.com"] {
        let response = client
            .get(format!("https://{name}:{}/", f.https.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.text().await.unwrap(), "demo");
    }
    // A name nobody routes gets no certificate at all.
    let stream = tokio::net::TcpStream::connect(f.https).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate))
            .with_no_client_auth(),
    ));
    let refused = connector
        .connect(ServerName::try_from("other.example.org").unwrap(), stream)
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn routing_switches_answer_for_the_app() {
    let f = Fixture::new().await;
    let live = backend("live").await;
    let set = |settings: RoutingSettings| {
        f.routes.set([host(
            "demo.localhost",
            &with(settings, route("demo", &[live])),
        )]);
    };
    set(RoutingSettings {
        maintenance: true,
        ..RoutingSettings::default()
    });
    let (status, body) = f.get("demo.localhost").await;
    assert_eq!(status, 503);
    assert!(body.contains("demo is offline for maintenance"), "{body}");

    set(RoutingSettings {
        allow: [Cidr::parse("10.0.0.0/8").unwrap()].into(),
        ..RoutingSettings::default()
    });
    assert_eq!(f.get("demo.localhost").await.0, 403);
    set(RoutingSettings {
        allow: [Cidr::parse("127.0.0.1").unwrap()].into(),
        ..RoutingSettings::default()
    });
    assert_eq!(f.get("demo.localhost").await, (200, "live".to_owned()));

    set(RoutingSettings {
        enabled: false,
        ..RoutingSettings::default()
    });
    assert_eq!(f.get("demo.localhost").await.0, 404);

    set(RoutingSettings {
        force_https: true,
        hsts: true,
        ..RoutingSettings::default()
    });
    let response = f
        .client
        .get(format!("{}/path?q=1", f.url))
        .header("host", "demo.localhost:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        format!("https://demo.localhost:{}/path?q=1", f.https.port()).as_str()
    );
    let response = f
        .client
        .post(format!("{}/form", f.url))
        .header("host", "demo.localhost")
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308, "a POST keeps its method");
    // An ACME challenge is answered over plain HTTP all the same.
    f.challenges
        .lock()
        .unwrap()
        .insert("tok3n".to_owned(), "tok3n.thumbprint".to_owned());
    let response = f
        .client
        .get(format!("{}/.well-known/acme-challenge/tok3n", f.url))
        .header("host", "demo.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "tok3n.thumbprint");
    let response = f
        .https_client(&[])
        .get(format!("https://demo.localhost:{}/", f.https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

#[tokio::test]
async fn past_the_concurrency_limit_an_app_gets_a_clear_503() {
    let config = RouterConfig {
        max_in_flight_per_app: 1,
        ..RouterConfig::default()
    };
    let f = Arc::new(Fixture::with(config, Duration::from_secs(30)).await);
    let release = Arc::new(tokio::sync::Notify::new());
    let held = Arc::clone(&release);
    let slow = serve(axum::Router::new().fallback(move || {
        let held = Arc::clone(&held);
        async move {
            held.notified().await;
            "done"
        }
    }))
    .await;
    f.routes
        .set([host("demo.localhost", &route("demo", &[slow]))]);
    let first = {
        let f = Arc::clone(&f);
        tokio::spawn(async move { f.get("demo.localhost").await })
    };
    while f.routes.in_flight(slow) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let response = f
        .client
        .get(format!("{}/", f.url))
        .header("host", "demo.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("demo has 1 requests under way already")
    );
    release.notify_one();
    assert_eq!(first.await.unwrap(), (200, "done".to_owned()));
}

#[tokio::test]
async fn websockets_echo_ten_thousand_messages_over_http_and_https() {
    let f = Fixture::new().await;
    let echo_server = websocket_echo().await;
    f.routes
        .set([host("demo.localhost", &route("demo", &[echo_server]))]);
    async fn echo<S>(stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut ws, response) =
            tokio_tungstenite::client_async("ws://demo.localhost/socket", stream)
                .await
                .unwrap();
        assert_eq!(response.status(), 101);
        for i in 0..10_000 {
            let text = format!("message {i}");
            ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
                .await
                .unwrap();
            let back = ws.next().await.unwrap().unwrap();
            assert_eq!(back.into_text().unwrap().as_str(), text);
        }
        ws.close(None).await.unwrap();
    }
    let plain = tokio::net::TcpStream::connect(f.url.trim_start_matches("http://"))
        .await
        .unwrap();
    echo(plain).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(f.ca.der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // WebSockets upgrade HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = tokio::net::TcpStream::connect(f.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("demo.localhost").unwrap(), stream)
        .await
        .unwrap();
    echo(tls).await;
    // A closed tunnel is no longer counted as a request under way (a drain would wait).
    f.routes
        .drained(&[echo_server], Duration::from_secs(10))
        .await;
    assert_eq!(f.routes.in_flight(echo_server), 0);
}

#[tokio::test]
async fn requests_and_responses_stream_without_being_held() {
    let f = Fixture::new().await;
    // An upload is counted as it arrives; a response (server-sent events) sends its first
    // event before the app has written the second.
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    let second = Arc::new(Mutex::new(Some(second_rx)));
    let app = axum::Router::new()
        .route(
            "/upload",
            axum::routing::post(|body: axum::body::Body| async move {
                let mut stream = body.into_data_stream();
                let mut total = 0usize;
                while let Some(chunk) = stream.next().await {
                    total += chunk.unwrap().len();
                }
                total.to_string()
            }),
        )
        .route(
            "/events",
            axum::routing::get(move || {
                let second = second.lock().unwrap().take().unwrap();
                async move {
                    let events = futures_util::stream::iter([Ok::<_, std::io::Error>(
                        bytes::Bytes::from_static(b"data: one\n\n"),
                    )])
                    .chain(futures_util::stream::once(async move {
                        let _ = second.await;
                        Ok(bytes::Bytes::from_static(b"data: two\n\n"))
                    }));
                    (
                        [("content-type", "text/event-stream")],
                        axum::body::Body::from_stream(events),
                    )
                }
            }),
        );
    f.routes
        .set([host("demo.localhost", &route("demo", &[serve(app).await]))]);

    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 64;
    let upload = futures_util::stream::iter(
        (0..CHUNKS).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; CHUNK]))),
    );
    let response = f
        .client
        .post(format!("{}/upload", f.url))
        .header("host", "demo.localhost")
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), (CHUNK * CHUNKS).to_string());

    let mut events = f
        .client
        .get(format!("{}/events", f.url))
        .header("host", "demo.localhost")
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .expect("the first event arrives while the app holds the second")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    second_tx.send(()).unwrap();
    let rest = events.chunk().await.unwrap().unwrap();
    assert_eq!(&rest[..], b"data: two\n\n");
}

#[tokio::test]
async fn idle_and_slow_clients_neither_block_others_nor_stay_forever() {
    let f = Fixture::with(RouterConfig::default(), Duration::from_secs(2)).await;
    f.routes.set([host(
        "demo.localhost",
        &route("demo", &[backend("live").await]),
    )]);
    let router: SocketAddr = f.url.trim_start_matches("http://").parse().unwrap();
    // 500 connections from another loopback address, each sending half a request line.
    let mut slow = Vec::new();
    for _ in 0..500 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(IpAddr::from([127, 0, 0, 2]), 0))
            .unwrap();
        let mut stream = socket.connect(router).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: demo.")
            .await
            .unwrap();
        slow.push(stream);
    }
    for _ in 0..20 {
        assert_eq!(f.get("demo.localhost").await, (200, "live".to_owned()));
    }
    // The header deadline closes every one of them.
    for mut stream in slow {
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buffer))
            .await
            .expect("the router closes a connection that never finishes its headers");
        match read {
            Ok(_) => assert!(
                buffer.is_empty() || buffer.starts_with(b"HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(&buffer)
            ),
            Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
}

#[tokio::test]
async fn the_apps_time_to_answer_starts_once_an_upload_is_sent_whole() {
    let config = RouterConfig {
        response_timeout: Duration::from_millis(500),
        ..RouterConfig::default()
    };
    let f = Fixture::with(config, Duration::from_secs(30)).await;
    let counting = serve(
        axum::Router::new().fallback(|body: axum::body::Body| async move {
            let mut stream = body.into_data_stream();
            let mut total = 0usize;
            while let Some(chunk) = stream.next().await {
                total += chunk.unwrap().len();
            }
            total.to_string()
        }),
    )
    .await;
    f.routes
        .set([host("demo.localhost", &route("demo", &[counting]))]);
    // Four chunks 300 ms apart: the upload takes longer than the response timeout.
    let slow = futures_util::stream::iter(0..4).then(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"0123456789"))
    });
    let response = f
        .client
        .post(format!("{}/upload", f.url))
        .header("host", "demo.localhost")
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "40");
}

#[tokio::test]
async fn every_answer_is_counted_for_its_app_or_only_the_platform() {
    let f = Fixture::new().await;
    let live = backend("live").await;
    f.routes.set([
        host("demo.localhost", &route("demo", &[live])),
        host("idle.localhost", &route("idle", &[])),
        host("broken.localhost", &route("broken", &[nothing()])),
        host(
            "closed.localhost",
            &with(
                RoutingSettings {
                    maintenance: true,
                    ..RoutingSettings::default()
                },
                route("closed", &[live]),
            ),
        ),
    ]);
    assert_eq!(f.get("demo.localhost").await.0, 200);
    assert_eq!(f.get("demo.localhost").await.0, 200);
    assert_eq!(f.get("idle.localhost").await.0, 503);
    assert_eq!(f.get("broken.localhost").await.0, 502);
    assert_eq!(f.get("closed.localhost").await.0, 503);
    assert_eq!(f.get("nobody.localhost").await.0, 404);

    let batch = f.metrics.take();
    // By app (the requests may straddle a minute's end).
    let mut by_app = std::collections::BTreeMap::<&str, domain::RequestStats>::new();
    for m in &batch.minutes {
        by_app.entry(m.app.as_str()).or_default().merge(&m.stats);
    }
    let apps: Vec<(&str, u64, u64, u64)> = by_app
        .iter()
        .map(|(app, stats)| {
            (
                *app,
                stats.requests(),
                stats.errors(),
                stats.latency.count(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            ("broken", 1, 1, 1),
            ("closed", 1, 1, 1),
            ("demo", 2, 0, 2),
            ("idle", 1, 1, 1),
        ],
        "the unknown host is no app's"
    );
    assert_eq!(batch.platform.total(), 6, "{batch:?}");
    assert_eq!(batch.platform.get(domain::StatusClass::ClientError), 1);
    assert!(f.metrics.take().is_empty(), "drained");
}
