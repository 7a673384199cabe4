//! The CI API on both backends: test runs listed and read with their output, and a build
//! tested again with its output streamed as NDJSON; the current release's build by default,
//! a build without a test command or another app's refused, strangers told nothing.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{TestApp, both_backends};
use http_body_util::BodyExt;
use serde_json::Value;
use test_support::Backend;
use tower::ServiceExt;

/// A succeeded build of `app` with a web and a test process, and (with `plan`) how to test it.
async fn build(t: &TestApp, app: &str, plan: Option<&str>, released: bool) -> uuid::Uuid {
    let store = &t.store;
    let app = store.app(app).await.unwrap();
    let ada = store.user("ada").await.unwrap();
    let build = store
        .create_build(&app, &store::BuildSource::Commit("c0ffee".repeat(2)), &ada)
        .await
        .unwrap();
    let procfile = BTreeMap::from([
        ("web".to_owned(), "serve".to_owned()),
        ("test".to_owned(), "pytest".to_owned()),
    ]);
    store
        .finish_build(
            &app,
            build.id,
            store::BuildStatus::Succeeded,
            &procfile,
            Some(&format!("sha256:{}", "ab".repeat(32))),
        )
        .await
        .unwrap();
    if let Some(command) = plan {
        let plan = domain::TestPlan {
            command: command.to_owned(),
            env: BTreeMap::new(),
        };
        store
            .set_build_test_plan(&app, build.id, &plan)
            .await
            .unwrap();
    }
    if released {
        let release = store.release_build(&app, build.id, &ada).await.unwrap();
        store
            .set_release_status(
                &app,
                release.version,
                domain::ReleaseStatus::Succeeded,
                None,
            )
            .await
            .unwrap();
    }
    build.id
}

/// `POST /v1/apps/demo/test-runs`: the status, and the NDJSON events (or the error body).
async fn test(t: &TestApp, token: &str, body: &str) -> (StatusCode, Vec<Value>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/apps/demo/test-runs")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = t.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (
        status,
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

both_backends! {
    async fn builds_are_tested_again_and_their_runs_kept(t: TestApp) {
        let ada = t.owner_of_demo().await;
        let (status, body) = test(&t, &ada, "{}").await;
        assert_eq!((status, body[0]["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(
            "demo has no deployed build to test: push code, or give a build with --build ID"
        )));

        let tested = build(&t, "demo", Some("pytest -x"), true).await;
        let untested = build(&t, "demo", None, false).await;
        // The current release's build by default.
        let (status, events) = test(&t, &ada, "{}").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            events,
            [
                serde_json::json!({"output": "-----> Running tests (test run #1): pytest -x"}),
                serde_json::json!({"output": "running pytest -x"}),
                serde_json::json!({"exit": 0}),
            ]
        );
        t.runtime.exit_next_run(1);
        let (_, events) = test(&t, &ada, &format!(r#"{{"build": "{tested}"}}"#)).await;
        assert_eq!(events.last(), Some(&serde_json::json!({"exit": 1})));

        let (status, body) = test(&t, &ada, &format!(r#"{{"build": "{untested}"}}"#)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body[0]["error"].as_str().unwrap().ends_with(
            "has no test command: add scripts.test to app.json or a `test:` line to the Procfile, and push"
        ));
        let (status, _) = test(&t, &ada, r#"{"build": "0190a0a0-0000-7000-8000-000000000000"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let runs = TestApp::ok(t.send(Method::GET, "/v1/apps/demo/test-runs", &ada, None).await);
        let listed: Vec<(u64, &str, &str, Value)> = runs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["number"].as_u64().unwrap(), r["status"].as_str().unwrap(), r["cause"].as_str().unwrap(), r["output"].clone()))
            .collect();
        assert_eq!(listed, [(2, "failed", "api", Value::Null), (1, "succeeded", "api", Value::Null)]);
        let second = TestApp::ok(t.send(Method::GET, "/v1/apps/demo/test-runs/2", &ada, None).await);
        assert_eq!((second["exit_status"].as_i64(), second["output"].as_str()), (Some(1), Some("running pytest -x\n")));
        assert_eq!(second["command"], "pytest -x");
        TestApp::refused(t.send(Method::GET, "/v1/apps/demo/test-runs/3", &ada, None).await, StatusCode::NOT_FOUND);
        TestApp::refused(t.send(Method::GET, "/v1/apps/demo/test-runs/x", &ada, None).await, StatusCode::UNPROCESSABLE_ENTITY);

        // A stranger is not told the app exists.
        let credentials = r#"{"username": "eve", "password": "password-1"}"#;
        let (status, _) = t.send(Method::POST, "/v1/auth/register", &ada, Some(credentials)).await;
        assert_eq!(status, StatusCode::CREATED);
        let login = TestApp::ok(t.send(Method::POST, "/v1/auth/login", "", Some(credentials)).await);
        let eve = login["token"].as_str().unwrap();
        for path in ["/v1/apps/demo/test-runs", "/v1/apps/demo/test-runs/1"] {
            TestApp::refused(t.send(Method::GET, path, eve, None).await, StatusCode::NOT_FOUND);
        }
        assert_eq!(test(&t, eve, "{}").await.0, StatusCode::NOT_FOUND);
        let events = t.store.events(Some("demo"), 10).await.unwrap();
        let tests: Vec<&str> = events.iter().filter(|e| e.action == "ci.test").map(|e| e.detail.as_str()).collect();
        assert_eq!(tests, ["#2 failed exit 1 c0ffeec", "#1 succeeded exit 0 c0ffeec"]);
    }
}
