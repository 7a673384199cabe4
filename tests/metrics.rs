//! Request metrics end to end with the real `slipwayd up`, on SQLite and on PostgreSQL: what
//! the router answers reaches `/metrics` on the API port through the store (flushed every
//! 10 s), for the app or, for an unknown host, the platform alone; only an admin may look.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use slipway_e2e::{PASSWORD, User, both_backends, eventually, http_get};

/// `GET /metrics` on the API with `token`, if any: the status and the body.
fn scrape(api_url: &str, token: Option<&str>) -> (u16, String) {
    let address = api_url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let authorization =
        token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample `series` (name and labels, as written) in an exposition.
fn sample(exposition: &str, series: &str) -> Option<u64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    })
}

both_backends! {
    fn the_routers_counts_reach_metrics_for_admins(platform: Platform) {
        let ada = User::new();
        ada.slip(&["register", &platform.api_url, "--username", "ada", "--password", PASSWORD]).success();
        ada.slip(&["create", "demo", "--no-remote"]).success();
        let bob = User::registered_by(&platform, &ada, "bob");
        assert_eq!(scrape(&platform.api_url, None).0, 401);
        let (status, body) = scrape(&platform.api_url, Some(&bob.saved_token()));
        assert_eq!(status, 403, "{body}");
        assert!(!body.contains("demo"), "{body}");

        // The app's host answers once the router has its route (503: nothing deployed);
        // until then it is an unknown host, the platform's 404.
        let (mut app_5xx, mut unknown) = (0, 0);
        eventually(Duration::from_secs(30), "the router routes demo", || {
            match http_get(&platform.router, "demo.localhost", "/").unwrap().0 {
                503 => {
                    app_5xx += 1;
                    true
                }
                404 => {
                    unknown += 1;
                    false
                }
                other => panic!("demo.localhost answered {other}"),
            }
        });
        for _ in 0..2 {
            assert_eq!(http_get(&platform.router, "demo.localhost", "/").unwrap().0, 503);
            app_5xx += 1;
        }
        assert_eq!(http_get(&platform.router, "nobody.localhost", "/").unwrap().0, 404);
        unknown += 1;

        let admin = ada.saved_token();
        let mut last = String::new();
        eventually(Duration::from_secs(40), "the router's counts are flushed to the store", || {
            let (status, body) = scrape(&platform.api_url, Some(&admin));
            assert_eq!(status, 200, "{body}");
            last = body;
            sample(&last, r#"slipway_app_requests_total{app="demo",code="5xx"}"#) == Some(app_5xx)
                && sample(&last, r#"slipway_router_requests_total{code="4xx"}"#) == Some(unknown)
        });
        assert_eq!(sample(&last, r#"slipway_app_requests_total{app="demo",code="4xx"}"#), Some(0), "{last}");
        assert_eq!(sample(&last, r#"slipway_app_request_duration_seconds_count{app="demo"}"#), Some(app_5xx), "{last}");
        assert_eq!(sample(&last, r#"slipway_app_request_duration_seconds_bucket{app="demo",le="+Inf"}"#), Some(app_5xx), "{last}");
        assert_eq!(sample(&last, r#"slipway_router_requests_total{code="5xx"}"#), Some(app_5xx), "{last}");
        assert_eq!(sample(&last, "slipway_apps"), Some(1), "{last}");
        assert_eq!(sample(&last, "slipway_users"), Some(2), "{last}");
        assert!(!last.contains("nobody"), "an unknown host is no app: {last}");
        drop(platform);
    }
}
