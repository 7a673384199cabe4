//! Custom domains against hostile tenants: a domain routes only once a TXT record proves
//! control of it, and no tenant takes a name under the platform's domain. The API runs with
//! the real release manager (which decides the hosts an app routes) and a real DNS resolver
//! asking a small DNS server this test runs on a UDP port of 127.0.0.1.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use domain::{AppName, Formation, ReleaseVersion};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record, RecordType};
use http_body_util::BodyExt;
use releaser::{Lines, ProcessInfo, ReleaseManager, ReleaseSpec, Routing, Runtime, RuntimeError};
use serde_json::{Value, json};
use slipway_api::{ApiConfig, ApiState, router};
use test_support::{Backend, TestDatabase};
use tokio::net::UdpSocket;
use tower::ServiceExt;

/// Declares `mod name { sqlite, postgres }`: one async test body, run on both backends.
macro_rules! both_backends {
    ($(async fn $name:ident($t:ident: TestApp) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn run($t: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(TestApp::new(Backend::Sqlite).await.expect("sqlite is always there")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(t) = TestApp::new(Backend::Postgres).await {
                    run(t).await;
                }
            }
        }
    )*};
}

/// A DNS server for the test's zone: answers TXT queries from `records`, NXDOMAIN otherwise.
#[derive(Clone, Default)]
struct Dns {
    records: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl Dns {
    async fn start(&self) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a UDP port");
        let addr = socket.local_addr().unwrap();
        let records = Arc::clone(&self.records);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply = Message::new(
                    query.metadata.id,
                    MessageType::Response,
                    query.metadata.op_code,
                );
                reply.metadata.recursion_desired = query.metadata.recursion_desired;
                reply.metadata.recursion_available = true;
                reply.metadata.authoritative = true;
                let mut found = false;
                for q in &query.queries {
                    reply.add_query(q.clone());
                    let name = q
                        .name()
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase();
                    let values = records.lock().unwrap().get(&name).cloned();
                    if let Some(values) = values {
                        found = true;
                        if q.query_type() == RecordType::TXT {
                            for value in values {
                                // Long values are split into strings of 255 bytes, as zone files do.
                                let txt = TXT::from_bytes(value.as_bytes().chunks(255).collect());
                                reply.add_answer(Record::from_rdata(
                                    q.name().clone(),
                                    0,
                                    RData::TXT(txt),
                                ));
                            }
                        }
                    }
                }
                if !found {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        addr
    }

    fn set(&self, name: &str, values: &[&str]) {
        let values = values.iter().map(|v| (*v).to_owned()).collect();
        self.records.lock().unwrap().insert(name.to_owned(), values);
    }
}

/// A runtime that runs nothing and remembers the hosts the release manager gives each app.
#[derive(Default)]
struct HostsSeen(Mutex<BTreeMap<String, Vec<String>>>);

#[async_trait]
impl Runtime for HostsSeen {
    async fn run_once(
        &self,
        _: &ReleaseSpec,
        _: &str,
        _: &str,
        _: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        Err(RuntimeError::Runtime("this test runs nothing".to_owned()))
    }
    async fn run_test(
        &self,
        _: &ReleaseSpec,
        _: &str,
        _: &str,
        _: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        Err(RuntimeError::Runtime("this test runs nothing".to_owned()))
    }
    async fn deploy(
        &self,
        _: &ReleaseSpec,
        _: &Formation,
        _: Option<&ReleaseSpec>,
        _: Lines<'_>,
    ) -> Result<(), RuntimeError> {
        Err(RuntimeError::Runtime("this test runs nothing".to_owned()))
    }
    async fn current(&self, _: &AppName) -> Result<Option<ReleaseVersion>, RuntimeError> {
        Ok(None)
    }
    async fn scale(&self, _: &ReleaseSpec, _: &Formation) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn restart(&self, _: &AppName, _: Option<&str>) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn processes(&self, _: &AppName) -> Result<Vec<ProcessInfo>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn set_routing(&self, app: &AppName, routing: &Routing) -> Result<(), RuntimeError> {
        let hosts: Vec<String> = routing.hosts.iter().map(|h| h.name.clone()).collect();
        self.0.lock().unwrap().insert(app.to_string(), hosts);
        Ok(())
    }
    async fn stop(&self, _: &AppName) -> Result<(), RuntimeError> {
        Ok(())
    }
}

struct TestApp {
    router: Router,
    dns: Dns,
    hosts: Arc<HostsSeen>,
    store: store::Store,
    _stop: tokio_util::sync::DropGuard,
    _db: TestDatabase,
}

impl TestApp {
    async fn new(backend: Backend) -> Option<TestApp> {
        let dns = Dns::default();
        let resolver = dns.start().await;
        TestApp::asking(backend, dns, resolver).await
    }

    /// An API whose verifications ask the DNS server at `resolver`.
    async fn asking(backend: Backend, dns: Dns, resolver: SocketAddr) -> Option<TestApp> {
        let db = TestDatabase::new(backend).await?;
        let store = store::Store::open(&db.url).await.expect("open the store");
        let hosts = Arc::new(HostsSeen::default());
        let logs = releaser::Logs::default();
        let manager = ReleaseManager::new(
            store.clone(),
            hosts.clone(),
            logs.clone(),
            "localhost".to_owned(),
            releaser::Leftovers::none(),
        );
        // The release manager takes the API's work from the store, as in another process.
        let stop = tokio_util::sync::CancellationToken::new();
        let worker = releaser::Worker::new(
            manager,
            store.clone(),
            releaser::WorkerConfig {
                holder: "test".to_owned(),
                lease: releaser::WorkerConfig::DEFAULT_LEASE,
                concurrency: 4,
            },
        );
        tokio::spawn(worker.run(stop.clone()));
        let state = ApiState {
            store: store.clone(),
            config: Arc::new(ApiConfig {
                git_url: "ssh://git@127.0.0.1:2222".to_owned(),
                domain: "localhost".to_owned(),
                router_port: 8080,
                registration_open: false,
                token_ttl: std::time::Duration::from_secs(3600),
                login: slipway_api::LoginLimits::default(),
                dns_resolver: Some(resolver),
                deploys: true,
            }),
            build_cache: Arc::new(slipway_api::NoBuildCache),
            repos: Arc::new(slipway_api::NoRepos),
            logs: Arc::new(logs),
        };
        Some(TestApp {
            router: router(state),
            dns,
            hosts,
            store,
            _stop: stop.drop_guard(),
            _db: db,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        let response = self.router.clone().oneshot(request.unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }

    /// Registers `name` (the first becomes admin, who then creates the rest) and returns a token.
    async fn user(&self, admin: Option<&str>, name: &str) -> String {
        let credentials = json!({"username": name, "password": "password-1"});
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/auth/register",
                admin,
                Some(credentials.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .call(Method::POST, "/v1/auth/login", None, Some(credentials))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn create_app(&self, token: &str, name: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/apps",
                Some(token),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn add(&self, token: &str, app: &str, domain: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/apps/{app}/domains"),
            Some(token),
            Some(json!({"domain": domain})),
        )
        .await
    }

    async fn verify(&self, token: &str, app: &str, domain: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/apps/{app}/domains/{domain}/verify"),
            Some(token),
            None,
        )
        .await
    }

    /// `domain status` for each of the app's domains.
    async fn states(&self, token: &str, app: &str) -> Vec<String> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/apps/{app}/domains"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["domain"].as_str().unwrap(),
                    d["status"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// The hosts the release manager last gave the runtime for `app`, once it has done the
    /// app's queued work.
    async fn routed(&self, app: &str) -> Vec<String> {
        let name = AppName::parse(app).unwrap();
        let drained = async {
            while !self.store.unfinished_work(&name).await.unwrap().is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), drained)
            .await
            .expect("the release manager does the app's work within 10 s");
        self.hosts
            .0
            .lock()
            .unwrap()
            .get(app)
            .cloned()
            .unwrap_or_default()
    }
}

/// Asserts a one-line error with `status` and returns its message.
#[track_caller]
fn error(reply: (StatusCode, Value), status: StatusCode) -> String {
    assert_eq!(reply.0, status, "{}", reply.1);
    let message = reply.1["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {}", reply.1))
        .to_owned();
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "one line: {message:?}"
    );
    message
}

both_backends! {
    async fn a_custom_domain_routes_only_once_its_txt_record_holds_the_token(t: TestApp) {
        let ada = t.user(None, "ada").await;
        t.create_app(&ada, "demo").await;

        let (status, added) = t.add(&ada, "demo", "www.example.com").await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(added["status"], "pending");
        assert_eq!(added["challenge"]["record"], "_slipway-challenge.www.example.com");
        let token = added["challenge"]["value"].as_str().unwrap().to_owned();
        assert!(token.len() >= 32, "{token}");
        assert_eq!(t.routed("demo").await, ["demo.localhost"], "a pending domain does not route");

        // No record at all: says what was looked up, and what to do; still pending.
        let message = error(t.verify(&ada, "demo", "www.example.com").await, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("found no TXT record _slipway-challenge.www.example.com"), "{message}");
        assert!(message.contains(&token) && message.contains("slip domains:verify www.example.com"), "{message}");

        // A record with other values: says what was found; still pending.
        t.dns.set("_slipway-challenge.www.example.com", &["slipway-verify-someone-elses", "v=spf1 -all"]);
        let message = error(t.verify(&ada, "demo", "www.example.com").await, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("\"slipway-verify-someone-elses\"") && message.contains("\"v=spf1 -all\""), "{message}");
        assert_eq!(t.states(&ada, "demo").await, ["www.example.com pending"]);
        assert_eq!(t.routed("demo").await, ["demo.localhost"]);

        // A hostile zone cannot make the error long or multi-line.
        let long = "x\n".repeat(200);
        t.dns.set("_slipway-challenge.www.example.com", &[&long, "a", "b", "c", "d"]);
        let message = error(t.verify(&ada, "demo", "www.example.com").await, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.len() < 600 && message.contains("and 2 more"), "{message}");

        // The token present (among others): verified, and it routes.
        t.dns.set("_slipway-challenge.www.example.com", &["v=spf1 -all", &token]);
        let (status, verified) = t.verify(&ada, "demo", "www.example.com").await;
        assert_eq!(status, StatusCode::OK, "{verified}");
        assert_eq!(verified["status"], "verified");
        assert!(verified["verified_at"].is_string() && verified["challenge"].is_null(), "{verified}");
        assert_eq!(t.routed("demo").await, ["demo.localhost", "www.example.com"]);

        // Verifying again changes nothing; removing stops the routing.
        assert_eq!(t.verify(&ada, "demo", "www.example.com").await.0, StatusCode::OK);
        let (status, _) = t.call(Method::DELETE, "/v1/apps/demo/domains/www.example.com", Some(&ada), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(t.routed("demo").await, ["demo.localhost"]);
        error(t.verify(&ada, "demo", "www.example.com").await, StatusCode::NOT_FOUND);
    }

    async fn a_squatter_holds_a_name_pending_only_and_cannot_take_it_from_its_owner(t: TestApp) {
        let root = t.user(None, "root").await;
        let ada = t.user(Some(&root), "ada").await;
        let mallory = t.user(Some(&root), "mallory").await;
        t.create_app(&ada, "shop").await;
        t.create_app(&mallory, "squat").await;

        // Mallory claims the name first; it does not route, and Ada can still add it.
        let (status, _) = t.add(&mallory, "squat", "shop.example.com").await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, added) = t.add(&ada, "shop", "shop.example.com").await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(t.routed("squat").await, ["squat.localhost"]);

        // Only the owner's token is in the zone: Mallory's verification fails, Ada's succeeds.
        let token = added["challenge"]["value"].as_str().unwrap();
        t.dns.set("_slipway-challenge.shop.example.com", &[token]);
        let message = error(t.verify(&mallory, "squat", "shop.example.com").await, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("but not the token"), "{message}");
        assert_eq!(t.verify(&ada, "shop", "shop.example.com").await.0, StatusCode::OK);
        assert_eq!(t.routed("shop").await, ["shop.localhost", "shop.example.com"]);

        // Verified by Ada, the name is refused to anyone else.
        t.create_app(&mallory, "squat2").await;
        let message = error(t.add(&mallory, "squat2", "shop.example.com").await, StatusCode::CONFLICT);
        assert_eq!(message, "the domain shop.example.com is already in use");
        // Even with Mallory's own token published too, the verified holder keeps it.
        let (_, squat) = t.call(Method::GET, "/v1/apps/squat/domains", Some(&mallory), None).await;
        let theirs = squat[0]["challenge"]["value"].as_str().unwrap();
        t.dns.set("_slipway-challenge.shop.example.com", &[token, theirs]);
        let message = error(t.verify(&mallory, "squat", "shop.example.com").await, StatusCode::CONFLICT);
        assert!(message.contains("already in use by another app"), "{message}");
        assert_eq!(t.routed("squat").await, ["squat.localhost"]);
    }

    async fn names_under_the_platform_domain_are_the_platforms_to_give(t: TestApp) {
        let root = t.user(None, "root").await;
        let mallory = t.user(Some(&root), "mallory").await;
        t.create_app(&root, "victim").await;
        t.create_app(&mallory, "evil").await;
        for name in ["victim.localhost", "www.victim.localhost", "x.y.localhost"] {
            let message = error(t.add(&mallory, "evil", name).await, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(message.contains("under the platform domain localhost"), "{message}");
        }
        // The refusals changed nothing.
        assert_eq!(t.states(&mallory, "evil").await, Vec::<String>::new());
        // An app's own platform name is accepted, verified at once, and routes once.
        let (status, own) = t.add(&mallory, "evil", "evil.localhost").await;
        assert_eq!(status, StatusCode::CREATED, "{own}");
        assert_eq!(own["status"], "verified");
        assert_eq!(t.routed("evil").await, ["evil.localhost"]);
        assert_eq!(t.routed("victim").await, ["victim.localhost"], "nothing changed the victim's hosts");
    }
}

/// A DNS server that does not answer: the verification fails in bounded time, with one line
/// that names the record, and the domain stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_server_that_does_not_answer_fails_the_verification_and_changes_nothing() {
    // A bound socket that never reads: queries go unanswered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = TestApp::asking(
        Backend::Sqlite,
        Dns::default(),
        silent.local_addr().unwrap(),
    )
    .await
    .unwrap();
    let ada = t.user(None, "ada").await;
    t.create_app(&ada, "demo").await;
    assert_eq!(
        t.add(&ada, "demo", "www.example.com").await.0,
        StatusCode::CREATED
    );
    let started = std::time::Instant::now();
    let message = error(
        t.verify(&ada, "demo", "www.example.com").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(
        message.starts_with("cannot look up the TXT record _slipway-challenge.www.example.com ("),
        "{message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.states(&ada, "demo").await, ["www.example.com pending"]);
    assert_eq!(t.routed("demo").await, ["demo.localhost"]);
}
