//! Per-process-type settings through the real router, store and a release manager (on a
//! fake runtime that records what it is asked), on SQLite and on PostgreSQL: health checks,
//! limits and autoscaling are set, listed and removed; bad input and broken rules are
//! refused and change nothing; each change answers once its rollout is done.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use releaser::fake::Call;
use serde_json::{Value, json};
use test_support::Backend;

mod common;

use common::{TestApp, both_backends};

impl TestApp {
    /// Everything a refused change must leave as it was.
    async fn settings(&self, token: &str) -> Value {
        json!({
            "healthchecks": Self::ok(self.send(Method::GET, "/v1/apps/demo/healthchecks", token, None).await),
            "limits": Self::ok(self.send(Method::GET, "/v1/apps/demo/limits", token, None).await),
            "autoscale": Self::ok(self.send(Method::GET, "/v1/apps/demo/autoscale", token, None).await),
        })
    }

    fn scales(&self) -> usize {
        self.runtime
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Scale { .. }))
            .count()
    }
}

both_backends! {
    async fn limits_autoscale_and_health_checks_are_set_listed_and_removed(t: TestApp) {
        let ada = t.owner_of_demo().await;
        assert_eq!(t.settings(&ada).await, json!({"healthchecks": {}, "limits": {}, "autoscale": {}}));

        // Before the first build any well-formed type takes settings.
        let put = |path: &'static str, body: &'static str| t.send(Method::PUT, path, &ada, Some(body));
        let limits = TestApp::ok(put("/v1/apps/demo/limits/web", r#"{"cpu": "500m"}"#).await);
        assert_eq!(limits, json!({"web": {"memory": null, "cpu": "500m"}}));
        let limits = TestApp::ok(put("/v1/apps/demo/limits/web", r#"{"memory": "512M"}"#).await);
        assert_eq!(limits, json!({"web": {"memory": "512Mi", "cpu": "500m"}}), "a limit left out stays");

        let refused = TestApp::refused(put("/v1/apps/demo/autoscale/worker", r#"{"min": 2, "max": 10, "cpu_percent": 70}"#).await, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused, "autoscale needs a CPU limit on worker: run `slip limits:set worker --cpu 500m` first");
        let autoscale = TestApp::ok(put("/v1/apps/demo/autoscale/web", r#"{"min": 2, "max": 10, "cpu_percent": 70}"#).await);
        assert_eq!(autoscale, json!({"web": {"min": 2, "max": 10, "cpu_percent": 70}}));
        let refused = TestApp::refused(t.send(Method::DELETE, "/v1/apps/demo/limits/web?cpu=true", &ada, None).await, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused, "web is autoscaled on its CPU limit: run `slip autoscale:unset web` first");
        let limits = TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/limits/web?memory=true", &ada, None).await);
        assert_eq!(limits, json!({"web": {"memory": null, "cpu": "500m"}}));

        let checks = TestApp::ok(put("/v1/apps/demo/healthchecks/web/readiness", r#"{"type": "httpGet", "path": "/health"}"#).await);
        assert_eq!(checks, json!({"web": {"readiness": {"type": "httpGet", "path": "/health", "period_seconds": 10, "timeout_seconds": 1, "failure_threshold": 3}}}));
        let checks = TestApp::ok(put("/v1/apps/demo/healthchecks/worker/liveness", r#"{"type": "exec", "command": "test -f /tmp/alive", "period_seconds": 5, "failure_threshold": 2}"#).await);
        assert_eq!(checks["worker"], json!({"liveness": {"type": "exec", "command": "test -f /tmp/alive", "period_seconds": 5, "timeout_seconds": 1, "failure_threshold": 2}}));
        let checks = TestApp::ok(put("/v1/apps/demo/healthchecks/worker/readiness", r#"{"type": "httpGet", "path": "/up", "port": 9000}"#).await);
        assert_eq!(checks["worker"]["readiness"]["port"], 9000);
        let checks = TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/healthchecks/worker", &ada, None).await);
        assert_eq!(checks.as_object().unwrap().keys().collect::<Vec<_>>(), ["web"], "both of worker's checks went");
        let checks = TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/healthchecks/web/liveness", &ada, None).await);
        assert!(checks["web"]["readiness"].is_object(), "removing a check that is not there changes nothing: {checks}");

        let autoscale = TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/autoscale/web", &ada, None).await);
        assert_eq!(autoscale, json!({}));
        let limits = TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/limits/web", &ada, None).await);
        assert_eq!(limits, json!({}));
        assert_eq!(t.settings(&ada).await["healthchecks"], json!({"web": {"readiness": {"type": "httpGet", "path": "/health", "period_seconds": 10, "timeout_seconds": 1, "failure_threshold": 3}}}));
    }

    async fn bad_input_and_broken_rules_are_refused_and_change_nothing(t: TestApp) {
        let ada = t.owner_of_demo().await;
        let put = |path: &'static str, body: &'static str| t.send(Method::PUT, path, &ada, Some(body));
        TestApp::ok(put("/v1/apps/demo/limits/web", r#"{"cpu": "1"}"#).await);
        TestApp::ok(put("/v1/apps/demo/autoscale/web", r#"{"min": 1, "max": 3, "cpu_percent": 80}"#).await);
        let before = t.settings(&ada).await;
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        let cases: &[(Method, &str, Option<&str>, StatusCode)] = &[
            (Method::PUT, "/v1/apps/demo/healthchecks/web/startup", Some(r#"{"type": "exec", "command": "true"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/Web!/liveness", Some(r#"{"type": "exec", "command": "true"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/release/liveness", Some(r#"{"type": "exec", "command": "true"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet", "path": "health"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet", "path": "/a b"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet", "path": "/", "command": "true"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet", "path": "/", "port": 0}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet", "path": "/", "port": 70000}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet", "path": "/", "period_seconds": 0}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "httpGet", "path": "/", "failure_threshold": 101}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "exec", "command": "a\nb"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "exec", "path": "/", "command": "true"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some(r#"{"type": "tcp"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/worker/liveness", Some(r#"{"type": "httpGet", "path": "/"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/liveness", Some("{"), StatusCode::BAD_REQUEST),
            (Method::PUT, "/v1/apps/demo/limits/web", Some(r#"{"memory": "lots"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/limits/web", Some(r#"{"memory": "1T"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/limits/web", Some(r#"{"memory": "512M", "cpu": "0"}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/limits/web", Some("{}"), unprocessable),
            (Method::PUT, "/v1/apps/demo/limits/release", Some(r#"{"cpu": "1"}"#), unprocessable),
            (Method::DELETE, "/v1/apps/demo/limits/web", None, unprocessable),
            (Method::DELETE, "/v1/apps/demo/limits/web?cpu=maybe", None, StatusCode::BAD_REQUEST),
            (Method::PUT, "/v1/apps/demo/autoscale/web", Some(r#"{"min": 0, "max": 3, "cpu_percent": 80}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/autoscale/web", Some(r#"{"min": 4, "max": 3, "cpu_percent": 80}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/autoscale/web", Some(r#"{"min": 1, "max": 101, "cpu_percent": 80}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/autoscale/web", Some(r#"{"min": 1, "max": 3, "cpu_percent": 0}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/autoscale/web", Some(r#"{"min": 1, "max": 3}"#), unprocessable),
            (Method::PUT, "/v1/apps/demo/autoscale/worker", Some(r#"{"min": 1, "max": 3, "cpu_percent": 80}"#), unprocessable),
            (Method::DELETE, "/v1/apps/demo/autoscale/release", None, unprocessable),
        ];
        let scales = t.scales();
        for (method, path, body, status) in cases {
            let reply = t.send(method.clone(), path, &ada, *body).await;
            let context = format!("{method} {path} {body:?}: {}", reply.1);
            assert_eq!(reply.0, *status, "{context}");
            TestApp::refused(reply, *status);
        }
        assert_eq!(t.settings(&ada).await, before, "refused changes changed nothing");
        let demo = t.store.app("demo").await.unwrap();
        assert!(t.store.unfinished_work(&demo.name).await.unwrap().is_empty());
        assert_eq!(t.scales(), scales, "and rolled nothing out");
    }

    async fn a_change_answers_once_its_rollout_is_done_and_only_for_types_the_build_declares(t: TestApp) {
        let ada = t.owner_of_demo().await;
        let (status, body) = t.send(Method::POST, "/v1/apps/demo/builds", &ada, Some(r#"{"image": "registry.local/demo:1", "procfile": "web: ./serve\nworker: ./work\n"}"#)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let release = TestApp::ok(t.send(Method::GET, "/v1/apps/demo/releases/v2", &ada, None).await);
            if release["release"]["status"] == "succeeded" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "v2 was not deployed: {release}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let refused = TestApp::refused(t.send(Method::PUT, "/v1/apps/demo/limits/clock", &ada, Some(r#"{"cpu": "1"}"#)).await, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused, "the app has no process type \"clock\"; its processes are: web, worker");
        let scales = t.scales();
        TestApp::ok(t.send(Method::PUT, "/v1/apps/demo/limits/worker", &ada, Some(r#"{"cpu": "1"}"#)).await);
        assert_eq!(t.scales(), scales + 1, "the answer came after the release manager rolled the change out");
        TestApp::ok(t.send(Method::PUT, "/v1/apps/demo/limits/worker", &ada, Some(r#"{"cpu": "1"}"#)).await);
        assert_eq!(t.scales(), scales + 1, "an unchanged setting rolls nothing out");
        // A type a later build dropped can still be cleared.
        TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/autoscale/clock", &ada, None).await);
    }
}
