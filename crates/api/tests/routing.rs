//! Routing switches and uploaded certificates through the real router, store and a release
//! manager (on a fake runtime that records the routing it is given), on SQLite and on
//! PostgreSQL: collaborators change them and others are refused; bad ranges and bad
//! certificates are refused with one line and change nothing; a key never comes back out.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use releaser::fake::FakeRuntime;
use serde_json::{Value, json};
use slipway_api::{ApiConfig, ApiState, router};
use test_support::{Backend, TestDatabase};
use time::OffsetDateTime;
use tower::ServiceExt;

macro_rules! both_backends {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(TestApp::new(Backend::Sqlite).await.expect("sqlite is always there")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::new(Backend::Postgres).await {
                    run(app).await;
                }
            }
        }
    )*};
}

struct TestApp {
    router: Router,
    runtime: Arc<FakeRuntime>,
    store: store::Store,
    _stop: tokio_util::sync::DropGuard,
    _db: TestDatabase,
}

impl TestApp {
    async fn new(backend: Backend) -> Option<TestApp> {
        let db = TestDatabase::new(backend).await?;
        let store = store::Store::open(&db.url).await.expect("open the store");
        let runtime = Arc::new(FakeRuntime::new());
        let logs = releaser::Logs::default();
        let manager = releaser::ReleaseManager::new(
            store.clone(),
            runtime.clone(),
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
                token_ttl: Duration::from_secs(3600),
                login: slipway_api::LoginLimits::default(),
                dns_resolver: None,
                deploys: true,
            }),
            build_cache: Arc::new(slipway_api::NoBuildCache),
            logs: Arc::new(logs),
        };
        Some(TestApp {
            router: router(state),
            runtime,
            store,
            _stop: stop.drop_guard(),
            _db: db,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }

    /// A successful call's body.
    #[track_caller]
    fn ok(reply: (StatusCode, Value)) -> Value {
        assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
        reply.1
    }

    /// A refusal's one-line message, after checking its status.
    #[track_caller]
    fn refused(reply: (StatusCode, Value), status: StatusCode) -> String {
        assert_eq!(reply.0, status, "{}", reply.1);
        let error = reply.1["error"].as_str().unwrap().to_owned();
        assert!(!error.is_empty() && !error.contains('\n'), "{error:?}");
        error
    }

    async fn owner_of_demo(&self) -> String {
        let credentials = json!({"username": "ada", "password": "password-1"}).to_string();
        let request = |path: &str| {
            Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from(credentials.clone()))
                .unwrap()
        };
        let response = self
            .router
            .clone()
            .oneshot(request("/v1/auth/register"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let session: Value = serde_json::from_slice(&bytes).unwrap();
        let token = session["token"].as_str().unwrap().to_owned();
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/apps",
                &token,
                Some(r#"{"name": "demo"}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        token
    }

    /// A user the admin makes, logged in: their token.
    async fn user(&self, admin: &str, name: &str) -> String {
        let credentials = json!({"username": name, "password": "password-1"}).to_string();
        let (status, body) = self
            .send(Method::POST, "/v1/auth/register", admin, Some(&credentials))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .send(Method::POST, "/v1/auth/login", "none", Some(&credentials))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// A verified custom domain of demo, as `domains:verify` would leave it.
    async fn verified_domain(&self, domain: &str) {
        let app = self.store.app("demo").await.unwrap();
        let ada = self.store.user("ada").await.unwrap();
        let host = domain::Hostname::parse(domain).unwrap();
        self.store
            .add_domain(&app, &host, None, &ada)
            .await
            .unwrap();
    }

    async fn routing(&self, token: &str) -> Value {
        Self::ok(
            self.send(Method::GET, "/v1/apps/demo/routing", token, None)
                .await,
        )
    }

    async fn patch(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            Method::PATCH,
            "/v1/apps/demo/routing",
            token,
            Some(&body.to_string()),
        )
        .await
    }

    async fn add_cert(
        &self,
        token: &str,
        name: &str,
        cert: &Made,
        key: &str,
    ) -> (StatusCode, Value) {
        let body = json!({"name": name, "certificate": cert.chain, "key": key}).to_string();
        self.send(Method::POST, "/v1/apps/demo/certs", token, Some(&body))
            .await
    }

    /// The routing the release manager last handed the runtime for demo.
    fn runtime_routing(&self) -> releaser::Routing {
        self.runtime
            .routing(&domain::AppName::parse("demo").unwrap())
            .expect("routing was set")
    }
}

struct Made {
    chain: String,
    key: String,
}

fn make(names: &[&str], not_after: OffsetDateTime) -> Made {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = not_after;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Made {
        chain: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn in_days(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(days)
}

both_backends! {
    async fn routing_switches_are_changed_by_collaborators_and_reach_the_runtime(t: TestApp) {
        let ada = t.owner_of_demo().await;
        let bob = t.user(&ada, "bob").await;
        let eve = t.user(&ada, "eve").await;
        let (status, added) = t.send(Method::POST, "/v1/apps/demo/perms", &ada, Some(r#"{"username": "bob"}"#)).await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(t.routing(&ada).await, json!({
            "enabled": true, "maintenance": false, "allow": [], "force_https": false, "hsts": false,
            "hosts": [{"host": "demo.localhost", "certificate": "platform", "expires_at": null}],
        }));

        let on = TestApp::ok(t.patch(&ada, json!({"maintenance": true})).await);
        assert_eq!(on["maintenance"], true);
        assert!(t.runtime_routing().settings.maintenance, "the answer comes once the runtime has it");
        let listed = TestApp::ok(t.patch(&bob, json!({"allow": ["10.1.2.3/8", "192.0.2.1"]})).await);
        assert_eq!(listed["allow"], json!(["10.0.0.0/8", "192.0.2.1/32"]));
        TestApp::ok(t.patch(&bob, json!({"force_https": true, "hsts": true})).await);
        TestApp::ok(t.patch(&bob, json!({"enabled": false})).await);
        let settings = t.runtime_routing().settings;
        assert!(!settings.enabled && settings.force_https && settings.hsts && settings.allow.len() == 2);
        let before = t.routing(&ada).await;

        // Refused, each with one line, changing nothing.
        for (body, status, says) in [
            (json!({"allow": ["10.0.0.0/33"]}), StatusCode::UNPROCESSABLE_ENTITY, "10.0.0.0/33"),
            (json!({"allow": []}), StatusCode::UNPROCESSABLE_ENTITY, "at least one"),
            (json!({"disallow": ["172.16.0.0/12"]}), StatusCode::UNPROCESSABLE_ENTITY, "172.16.0.0/12"),
            (json!({"enabled": true, "maintenance": false}), StatusCode::UNPROCESSABLE_ENTITY, "exactly one"),
            (json!({"hsts": true}), StatusCode::UNPROCESSABLE_ENTITY, "exactly one"),
            (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "exactly one"),
            (json!({"force_https": false, "hsts": true}), StatusCode::UNPROCESSABLE_ENTITY, "HSTS"),
            (json!({"maintenance": "yes"}), StatusCode::UNPROCESSABLE_ENTITY, "boolean"),
            (json!({"wat": true}), StatusCode::UNPROCESSABLE_ENTITY, "wat"),
        ] {
            let error = TestApp::refused(t.patch(&ada, body.clone()).await, status);
            assert!(error.contains(says), "{body}: {error}");
        }
        let error = TestApp::refused(t.patch(&eve, json!({"maintenance": false})).await, StatusCode::NOT_FOUND);
        assert_eq!(error, "no app named demo: see yours with `slip apps`");
        TestApp::refused(t.send(Method::GET, "/v1/apps/demo/routing", &eve, None).await, StatusCode::NOT_FOUND);
        assert_eq!(t.routing(&ada).await, before, "refusals changed nothing");

        // tls:disable turns HSTS off too; removing ranges empties the list.
        let off = TestApp::ok(t.patch(&ada, json!({"force_https": false})).await);
        assert_eq!((off["force_https"].as_bool(), off["hsts"].as_bool()), (Some(false), Some(false)));
        let emptied = TestApp::ok(t.patch(&ada, json!({"disallow": ["10.0.0.0/8", "192.0.2.1"]})).await);
        assert_eq!(emptied["allow"], json!([]));
        assert!(t.runtime_routing().settings.allow.is_empty());
    }

    async fn certificates_are_checked_attached_served_and_their_key_never_returned(t: TestApp) {
        let ada = t.owner_of_demo().await;
        let eve = t.user(&ada, "eve").await;
        t.verified_domain("www.example.com").await;
        t.verified_domain("shop.example.org").await;
        let good = make(&["www.example.com", "api.example.com"], in_days(90));

        // Refused, each with one line, storing nothing.
        let other = make(&["www.example.com"], in_days(90));
        let expired = make(&["www.example.com"], in_days(-1));
        for (name, cert, key, says) in [
            ("www", &good, other.key.as_str(), "does not match"),
            ("www", &expired, expired.key.as_str(), "expired"),
            ("www", &Made { chain: "hello".to_owned(), key: String::new() }, good.key.as_str(), "not PEM"),
            ("www", &good, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
            ("Bad Name", &good, good.key.as_str(), "not a certificate name"),
        ] {
            let error = TestApp::refused(t.add_cert(&ada, name, cert, key).await, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(error.contains(says), "{says}: {error}");
        }
        let error = TestApp::refused(t.add_cert(&eve, "www", &good, &good.key).await, StatusCode::NOT_FOUND);
        assert_eq!(error, "no app named demo: see yours with `slip apps`");
        assert_eq!(TestApp::ok(t.send(Method::GET, "/v1/apps/demo/certs", &ada, None).await), json!([]));

        // Added: attached to the domain it covers, never showing its key.
        let (status, added) = t.add_cert(&ada, "www", &good, &good.key).await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(added["domains"], json!(["www.example.com"]));
        assert_eq!(added["names"], json!(["www.example.com", "api.example.com"]));
        assert_eq!(added["fingerprint"].as_str().unwrap().len(), 64);
        TestApp::refused(t.add_cert(&ada, "www", &good, &good.key).await, StatusCode::CONFLICT);
        let listed = TestApp::ok(t.send(Method::GET, "/v1/apps/demo/certs", &ada, None).await);
        let info = TestApp::ok(t.send(Method::GET, "/v1/apps/demo/certs/www", &ada, None).await);
        assert_eq!(listed[0], info);
        let routing = t.routing(&ada).await;
        assert_eq!(routing["hosts"][2], json!({"host": "www.example.com", "certificate": "uploaded", "name": "www", "expires_at": info["not_after"]}));
        assert_eq!(routing["hosts"][1]["certificate"], "platform");
        for reply in [&added, &listed, &info, &routing] {
            let text = reply.to_string();
            assert!(!text.contains("PRIVATE KEY") && !text.contains(good.key.lines().nth(1).unwrap()), "a key came back: {text}");
        }
        // The runtime serves it (a later change's answer waits for the work before it).
        TestApp::ok(t.patch(&ada, json!({"maintenance": true})).await);
        let served = t.runtime_routing();
        let www = served.hosts.iter().find(|h| h.name == "www.example.com").unwrap();
        assert_eq!(www.certificate.as_ref().map(|c| (c.chain.as_str(), c.key.as_str())), Some((good.chain.as_str(), good.key.as_str())));

        // Attach only to a domain of the app it covers; detach; remove.
        let error = TestApp::refused(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/shop.example.org", &ada, None).await, StatusCode::CONFLICT);
        assert!(error.contains("does not cover shop.example.org"), "{error}");
        TestApp::refused(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/api.example.com", &ada, None).await, StatusCode::NOT_FOUND);
        TestApp::refused(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/www.example.com", &eve, None).await, StatusCode::NOT_FOUND);
        let detached = TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/certs/www/domains/www.example.com", &ada, None).await);
        assert_eq!(detached["domains"], json!([]));
        let attached = TestApp::ok(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/www.example.com", &ada, None).await);
        assert_eq!(attached["domains"], json!(["www.example.com"]));
        TestApp::refused(t.send(Method::DELETE, "/v1/apps/demo/certs/www", &eve, None).await, StatusCode::NOT_FOUND);
        let (status, _) = t.send(Method::DELETE, "/v1/apps/demo/certs/www", &ada, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        TestApp::refused(t.send(Method::GET, "/v1/apps/demo/certs/www", &ada, None).await, StatusCode::NOT_FOUND);
        assert_eq!(t.routing(&ada).await["hosts"][2]["certificate"], "platform");
    }
}
