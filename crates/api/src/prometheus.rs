//! `GET /metrics`: the router's request counters and latency histograms, per app and for the
//! platform, and a few platform gauges, in Prometheus's text exposition format 0.0.4.
//!
//! Which apps exist is nobody else's business, so only admins may scrape it (an admin's API
//! token as `Authorization: Bearer`; Prometheus sends one with `authorization: credentials:`
//! in its scrape config). A non-admin gets 403, no token 401. The numbers come from the
//! store, where the active release manager flushes the router's counts every 10 s; with the
//! Kubernetes runtime there is no Slipway router and the request series stay empty.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::{ApiError, ApiState};

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub(crate) async fn metrics(
    State(state): State<ApiState>,
    caller: CurrentUser,
) -> Result<Response, ApiError> {
    if !caller.user.admin {
        return Err(ApiError::Forbidden(
            "/metrics is for admins: scrape it with an admin's API token".to_owned(),
        ));
    }
    let totals = state.store.request_totals().await?;
    let gauges = state.store.platform_gauges().await?;
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&totals, &gauges),
    )
        .into_response())
}

/// The whole exposition.
pub(crate) fn render(totals: &store::RequestTotals, gauges: &store::PlatformGauges) -> String {
    let mut out = String::new();
    let mut line = |text: std::fmt::Arguments<'_>| {
        out.write_fmt(text).expect("writing to a String");
        out.push('\n');
    };
    line(format_args!(
        "# HELP slipway_app_requests_total Requests the router answered for the app, by status class."
    ));
    line(format_args!("# TYPE slipway_app_requests_total counter"));
    for app in &totals.apps {
        let name = escape(app.app.as_str());
        for (class, n) in app.stats.statuses.iter() {
            line(format_args!(
                "slipway_app_requests_total{{app=\"{name}\",code=\"{}\"}} {n}",
                class.label()
            ));
        }
    }
    line(format_args!(
        "# HELP slipway_app_request_duration_seconds Time from a request's arrival at the router to its response head, per app."
    ));
    line(format_args!(
        "# TYPE slipway_app_request_duration_seconds histogram"
    ));
    for app in &totals.apps {
        let name = escape(app.app.as_str());
        let latency = &app.stats.latency;
        for (le, n) in latency.cumulative() {
            let le = le.map_or_else(|| "+Inf".to_owned(), |d| seconds(d.as_secs_f64()));
            line(format_args!(
                "slipway_app_request_duration_seconds_bucket{{app=\"{name}\",le=\"{le}\"}} {n}"
            ));
        }
        line(format_args!(
            "slipway_app_request_duration_seconds_sum{{app=\"{name}\"}} {}",
            seconds(latency.sum().as_secs_f64())
        ));
        line(format_args!(
            "slipway_app_request_duration_seconds_count{{app=\"{name}\"}} {}",
            latency.count()
        ));
    }
    line(format_args!(
        "# HELP slipway_router_requests_total Requests the router answered, an app's or not (unknown hosts), by status class."
    ));
    line(format_args!("# TYPE slipway_router_requests_total counter"));
    for (class, n) in totals.platform.iter() {
        line(format_args!(
            "slipway_router_requests_total{{code=\"{}\"}} {n}",
            class.label()
        ));
    }
    line(format_args!(
        "# HELP slipway_router_dropped_requests_total Requests the router counted but could not keep until they were stored."
    ));
    line(format_args!(
        "# TYPE slipway_router_dropped_requests_total counter"
    ));
    line(format_args!(
        "slipway_router_dropped_requests_total {}",
        totals.dropped
    ));
    for (name, help, value) in [
        ("slipway_apps", "Apps on the platform.", gauges.apps),
        ("slipway_users", "Users on the platform.", gauges.users),
        (
            "slipway_work_unfinished",
            "Pieces of work queued or under way.",
            gauges.work_unfinished,
        ),
    ] {
        line(format_args!("# HELP {name} {help}"));
        line(format_args!("# TYPE {name} gauge"));
        line(format_args!("{name} {value}"));
    }
    out
}

/// Seconds as the format writes floats: `0.005`, `1`, `2.5`.
fn seconds(s: f64) -> String {
    format!("{s}")
}

/// A label value with `\`, `"` and line feeds escaped, as the format requires.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain::{AppName, RequestStats, StatusClass};
    use expect_test::expect;

    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("line\nbreak"), "line\\nbreak");
        assert_eq!(escape("demo"), "demo");
    }

    #[test]
    fn renders_the_text_format() {
        let mut stats = RequestStats::default();
        stats.record(200, Duration::from_millis(3));
        stats.record(200, Duration::from_millis(120));
        stats.record(502, Duration::from_secs(40));
        let mut totals = store::RequestTotals {
            apps: vec![store::AppRequestTotals {
                app: AppName::parse("demo").unwrap(),
                stats,
            }],
            ..Default::default()
        };
        totals.platform = stats.statuses;
        totals.platform.add(StatusClass::ClientError, 4);
        totals.dropped = 1;
        let gauges = store::PlatformGauges {
            apps: 1,
            users: 2,
            work_unfinished: 0,
        };
        expect![[r#"
            # HELP slipway_app_requests_total Requests the router answered for the app, by status class.
            # TYPE slipway_app_requests_total counter
            slipway_app_requests_total{app="demo",code="1xx"} 0
            slipway_app_requests_total{app="demo",code="2xx"} 2
            slipway_app_requests_total{app="demo",code="3xx"} 0
            slipway_app_requests_total{app="demo",code="4xx"} 0
            slipway_app_requests_total{app="demo",code="5xx"} 1
            # HELP slipway_app_request_duration_seconds Time from a request's arrival at the router to its response head, per app.
            # TYPE slipway_app_request_duration_seconds histogram
            slipway_app_request_duration_seconds_bucket{app="demo",le="0.005"} 1
            slipway_app_request_duration_seconds_bucket{app="demo",le="0.01"} 1
            slipway_app_request_duration_seconds_bucket{app="demo",le="0.025"} 1
            slipway_app_request_duration_seconds_bucket{app="demo",le="0.05"} 1
            slipway_app_request_duration_seconds_bucket{app="demo",le="0.1"} 1
            slipway_app_request_duration_seconds_bucket{app="demo",le="0.25"} 2
            slipway_app_request_duration_seconds_bucket{app="demo",le="0.5"} 2
            slipway_app_request_duration_seconds_bucket{app="demo",le="1"} 2
            slipway_app_request_duration_seconds_bucket{app="demo",le="2.5"} 2
            slipway_app_request_duration_seconds_bucket{app="demo",le="5"} 2
            slipway_app_request_duration_seconds_bucket{app="demo",le="10"} 2
            slipway_app_request_duration_seconds_bucket{app="demo",le="30"} 2
            slipway_app_request_duration_seconds_bucket{app="demo",le="+Inf"} 3
            slipway_app_request_duration_seconds_sum{app="demo"} 40.123
            slipway_app_request_duration_seconds_count{app="demo"} 3
            # HELP slipway_router_requests_total Requests the router answered, an app's or not (unknown hosts), by status class.
            # TYPE slipway_router_requests_total counter
            slipway_router_requests_total{code="1xx"} 0
            slipway_router_requests_total{code="2xx"} 2
            slipway_router_requests_total{code="3xx"} 0
            slipway_router_requests_total{code="4xx"} 4
            slipway_router_requests_total{code="5xx"} 1
            # HELP slipway_router_dropped_requests_total Requests the router counted but could not keep until they were stored.
            # TYPE slipway_router_dropped_requests_total counter
            slipway_router_dropped_requests_total 1
            # HELP slipway_apps Apps on the platform.
            # TYPE slipway_apps gauge
            slipway_apps 1
            # HELP slipway_users Users on the platform.
            # TYPE slipway_users gauge
            slipway_users 2
            # HELP slipway_work_unfinished Pieces of work queued or under way.
            # TYPE slipway_work_unfinished gauge
            slipway_work_unfinished 0
        "#]]
        .assert_eq(&render(&totals, &gauges));
    }
}
