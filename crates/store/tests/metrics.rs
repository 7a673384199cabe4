//! Request metrics in the store, on SQLite and PostgreSQL: minutes and totals add up across
//! flushes, old minutes are pruned but totals never drop, apps' rows go with them.

mod common;

use std::time::Duration;

use common::{app, both_backends, user};
use domain::{AppMinute, RequestBatch, RequestStats, StatusClass, StatusCounts};
use slipway_store::Store;
use time::OffsetDateTime;

/// The current minute, minus `ago` minutes, since the epoch.
fn minute(ago: i64) -> i64 {
    OffsetDateTime::now_utc().unix_timestamp() / 60 - ago
}

/// `app`'s requests in `minute`, given as `status:milliseconds` pairs.
fn at(app: &str, minute: i64, requests: &[(u16, u64)]) -> AppMinute {
    let mut stats = RequestStats::default();
    for &(status, ms) in requests {
        stats.record(status, Duration::from_millis(ms));
    }
    AppMinute {
        app: app.to_owned(),
        minute,
        stats,
    }
}

fn batch(minutes: Vec<AppMinute>, unknown_hosts: u64) -> RequestBatch {
    let mut platform = StatusCounts::default();
    for m in &minutes {
        platform.merge(&m.stats.statuses);
    }
    platform.add(StatusClass::ClientError, unknown_hosts);
    RequestBatch {
        minutes,
        platform,
        dropped: 0,
    }
}

both_backends! {
    async fn flushes_add_up_per_minute_and_in_the_totals(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let other = app(&store, "other", &ada).await;
        let now = minute(0);
        store
            .record_requests(&batch(
                vec![
                    at("demo", now - 1, &[(200, 3), (200, 30), (500, 300)]),
                    at("demo", now, &[(301, 1)]),
                    at("other", now, &[(404, 7)]),
                    at("gone", now, &[(200, 1)]),
                ],
                2,
            ))
            .await
            .unwrap();
        // A second flush landing in the same minute adds to it.
        store
            .record_requests(&batch(vec![at("demo", now, &[(503, 2), (200, 2)])], 0))
            .await
            .unwrap();

        let since = OffsetDateTime::from_unix_timestamp((now - 60) * 60).unwrap();
        let minutes = store.request_minutes(&demo, since).await.unwrap();
        let shown: Vec<(i64, u64, u64, u64, u64)> = minutes
            .iter()
            .map(|m| {
                (
                    m.minute.unix_timestamp() / 60 - now,
                    m.requests,
                    m.errors,
                    m.latency.count(),
                    u64::try_from(m.latency.sum().as_millis()).unwrap(),
                )
            })
            .collect();
        assert_eq!(shown, [(-1, 3, 1, 3, 333), (0, 3, 1, 3, 5)]);
        assert_eq!(minutes[0].minute.second(), 0, "a minute's start");
        // `since` names a minute: its own row is included, earlier ones are not.
        let last = OffsetDateTime::from_unix_timestamp(now * 60 + 59).unwrap();
        assert_eq!(store.request_minutes(&demo, last).await.unwrap().len(), 1);
        assert_eq!(store.request_minutes(&other, since).await.unwrap().len(), 1);

        let totals = store.request_totals().await.unwrap();
        let names: Vec<&str> = totals.apps.iter().map(|t| t.app.as_str()).collect();
        assert_eq!(names, ["demo", "other"], "the app that is gone counts nowhere per app");
        let demo_totals = &totals.apps[0].stats;
        assert_eq!(demo_totals.requests(), 6);
        assert_eq!(demo_totals.statuses.get(StatusClass::Success), 3);
        assert_eq!(demo_totals.statuses.get(StatusClass::Redirection), 1);
        assert_eq!(demo_totals.errors(), 2);
        assert_eq!(demo_totals.latency.count(), 6);
        assert_eq!(demo_totals.latency.sum(), Duration::from_millis(338));
        // The platform counts every request: apps', the gone app's, and unknown hosts'.
        assert_eq!(totals.platform.total(), 6 + 1 + 1 + 2);
        assert_eq!(totals.platform.get(StatusClass::ClientError), 3);
        assert_eq!(totals.dropped, 0);
    }

    async fn old_minutes_are_pruned_but_totals_never_drop(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let day = 24 * 60;
        store
            .record_requests(&batch(
                vec![at("demo", minute(day), &[(200, 1)]), at("demo", minute(2 * day + 10), &[(200, 1)])],
                0,
            ))
            .await
            .unwrap();
        let since = OffsetDateTime::now_utc() - time::Duration::days(3);
        let kept = store.request_minutes(&demo, since).await.unwrap();
        assert_eq!(kept.len(), 1, "a minute over two days old is not kept: {kept:?}");
        assert_eq!(store.request_totals().await.unwrap().apps[0].stats.requests(), 2);

        let mut dropped = batch(vec![], 0);
        dropped.dropped = 5;
        store.record_requests(&dropped).await.unwrap();
        store.record_requests(&dropped).await.unwrap();
        let totals = store.request_totals().await.unwrap();
        assert_eq!(totals.dropped, 10);
        assert_eq!(totals.apps[0].stats.requests(), 2);
    }

    async fn an_apps_metrics_go_with_it(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        store
            .record_requests(&batch(vec![at("demo", minute(0), &[(200, 1)])], 0))
            .await
            .unwrap();
        let gauges = store.platform_gauges().await.unwrap();
        assert_eq!((gauges.apps, gauges.users), (1, 1));
        store.destroy_app(&demo, &ada).await.unwrap();
        let totals = store.request_totals().await.unwrap();
        assert!(totals.apps.is_empty(), "{totals:?}");
        assert_eq!(totals.platform.total(), 1, "the platform's count stays");
        // A new app of the same name starts from nothing.
        let again = app(&store, "demo", &ada).await;
        let since = OffsetDateTime::now_utc() - time::Duration::hours(1);
        assert!(store.request_minutes(&again, since).await.unwrap().is_empty());
        assert_eq!(store.platform_gauges().await.unwrap().apps, 1);
    }
}
