//! The fixture the API suites share: the real API router and store, a
//! release manager on a fake runtime that records what it is asked, on SQLite and on
//! PostgreSQL.

#![allow(dead_code, reason = "each suite uses its own part of the fixture")]

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
use tower::ServiceExt;

macro_rules! both_backends {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {$(
        mod $name {
            use super::*;
            use crate::common::TestApp;
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
pub(crate) use both_backends;

pub(crate) struct TestApp {
    pub(crate) router: Router,
    pub(crate) runtime: Arc<FakeRuntime>,
    pub(crate) store: store::Store,
    /// The apps' logs, as the release manager writes them and the API reads them.
    pub(crate) logs: releaser::Logs,
    _stop: tokio_util::sync::DropGuard,
    _db: TestDatabase,
}

impl TestApp {
    pub(crate) async fn new(backend: Backend) -> Option<TestApp> {
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
            repos: Arc::new(slipway_api::NoRepos),
            logs: Arc::new(logs.clone()),
        };
        Some(TestApp {
            router: router(state),
            runtime,
            store,
            logs,
            _stop: stop.drop_guard(),
            _db: db,
        })
    }

    pub(crate) async fn send(
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
    pub(crate) fn ok(reply: (StatusCode, Value)) -> Value {
        assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
        reply.1
    }

    /// A refusal's one-line message, after checking its status.
    #[track_caller]
    pub(crate) fn refused(reply: (StatusCode, Value), status: StatusCode) -> String {
        assert_eq!(reply.0, status, "{}", reply.1);
        let error = reply.1["error"].as_str().unwrap().to_owned();
        assert!(!error.is_empty() && !error.contains('\n'), "{error:?}");
        error
    }

    pub(crate) async fn owner_of_demo(&self) -> String {
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
}
