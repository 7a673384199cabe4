//! The router against real HTTP backends on loopback: round robin, custom domains, the 404
//! and 503 pages, a backend that has gone, and route switches under load.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use slipway_router::{AppRoute, Routes, router};

/// A backend that answers every request with its name.
async fn backend(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move { name });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
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

/// An address where nothing listens.
fn nothing() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Fixture {
    url: String,
    routes: Routes,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Fixture {
    async fn new() -> Fixture {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let routes = Routes::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let service = router(
            routes.clone(),
            Arc::new(move |app: &str, line: &str| {
                sink.lock().unwrap().push(format!("{app}: {line}"))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                service.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        Fixture {
            url,
            routes,
            log,
            client: reqwest::Client::new(),
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
}

fn route(app: &str, backends: &[SocketAddr]) -> AppRoute {
    AppRoute {
        app: app.to_owned(),
        backends: backends.to_vec(),
    }
}

#[tokio::test]
async fn round_robin_over_an_apps_web_processes_and_its_domains() {
    let f = Fixture::new().await;
    let (a, b) = (backend("a").await, backend("b").await);
    let demo = route("demo", &[a, b]);
    f.routes.set([
        ("demo.localhost".to_owned(), demo.clone()),
        ("www.example.com".to_owned(), demo),
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
}

#[tokio::test]
async fn unknown_hosts_and_apps_without_processes_get_pages() {
    let f = Fixture::new().await;
    f.routes
        .set([("idle.localhost".to_owned(), route("idle", &[]))]);
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
    f.routes.set([(
        "demo.localhost".to_owned(),
        route("demo", &[nothing(), live, nothing()]),
    )]);
    for _ in 0..6 {
        assert_eq!(f.get("demo.localhost").await, (200, "live".to_owned()));
    }
    f.routes
        .set([("demo.localhost".to_owned(), route("demo", &[nothing()]))]);
    let (status, body) = f.get("demo.localhost").await;
    assert_eq!(status, 502);
    assert!(body.contains("demo did not answer."), "{body}");
}

#[tokio::test]
async fn switching_routes_under_load_fails_no_request() {
    let f = Arc::new(Fixture::new().await);
    let (old, new) = (backend("old").await, backend("new").await);
    f.routes
        .set([("demo.localhost".to_owned(), route("demo", &[old]))]);
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
            .set([("demo.localhost".to_owned(), route("demo", &[to]))]);
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
    f.routes.set([(
        "mute.localhost".to_owned(),
        route("mute", &[silent().await]),
    )]);
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
