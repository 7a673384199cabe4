//! `GET /metrics` on SQLite and PostgreSQL: admins only, Prometheus's text format, the
//! counters the router's flushes left in the store.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::{AppMinute, RequestBatch, RequestStats, StatusClass};
use http_body_util::BodyExt;
use sha2::Digest as _;
use test_support::Backend;
use tower::ServiceExt;

use common::{TestApp, both_backends};

/// `GET /metrics` with `token`, if any: the status, the content type and the body.
async fn scrape(t: &TestApp, token: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::builder().uri("/metrics");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = t
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// A token for a new user who is not an admin.
async fn non_admin_token(t: &TestApp) -> String {
    let user = t
        .store
        .create_user(
            &domain::Username::parse("bob").unwrap(),
            "hash",
            store::NewUser::Any,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!user.admin);
    let token = "slp_bobs_token_for_the_metrics_test";
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    t.store.create_token(&user, &hash, expires).await.unwrap();
    token.to_owned()
}

both_backends! {
    async fn only_admins_scrape_and_see_every_apps_counters(t: TestApp) {
        let admin = t.owner_of_demo().await;
        let (status, _, body) = scrape(&t, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let bob = non_admin_token(&t).await;
        let (status, _, body) = scrape(&t, Some(&bob)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(!body.contains("demo"), "{body}");

        // Nothing counted yet: the series are there, empty.
        let (status, content_type, body) = scrape(&t, Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(body.contains("# TYPE slipway_app_requests_total counter\n"), "{body}");
        assert!(body.contains("\nslipway_apps 1\n"), "{body}");
        assert!(body.contains("\nslipway_users 2\n"), "{body}");
        assert!(!body.contains("{app=\"demo\""), "no requests yet: {body}");

        // A router's flush, as the release manager writes it.
        let mut stats = RequestStats::default();
        stats.record(200, Duration::from_millis(4));
        stats.record(200, Duration::from_millis(70));
        stats.record(503, Duration::from_millis(2));
        let mut platform = stats.statuses;
        platform.add(StatusClass::ClientError, 5);
        let minute = time::OffsetDateTime::now_utc().unix_timestamp() / 60;
        t.store
            .record_requests(&RequestBatch {
                minutes: vec![AppMinute { app: "demo".to_owned(), minute, stats }],
                platform,
                dropped: 0,
            })
            .await
            .unwrap();
        let (_, _, body) = scrape(&t, Some(&admin)).await;
        for line in [
            "slipway_app_requests_total{app=\"demo\",code=\"2xx\"} 2",
            "slipway_app_requests_total{app=\"demo\",code=\"5xx\"} 1",
            "slipway_app_request_duration_seconds_bucket{app=\"demo\",le=\"0.005\"} 2",
            "slipway_app_request_duration_seconds_bucket{app=\"demo\",le=\"0.1\"} 3",
            "slipway_app_request_duration_seconds_bucket{app=\"demo\",le=\"+Inf\"} 3",
            "slipway_app_request_duration_seconds_sum{app=\"demo\"} 0.076",
            "slipway_app_request_duration_seconds_count{app=\"demo\"} 3",
            "slipway_router_requests_total{code=\"4xx\"} 5",
            "slipway_router_requests_total{code=\"2xx\"} 2",
        ] {
            assert!(body.lines().any(|l| l == line), "{line} in:\n{body}");
        }
    }
}
