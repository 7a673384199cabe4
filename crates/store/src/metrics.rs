//! Request metrics: what the router counted, per app per minute (kept two days, for the
//! dashboard's charts) and as running totals (Prometheus's counters), plus the platform's own
//! totals and a few cheap gauges for `/metrics`.
//!
//! Every write adds: a minute's row or a total's row is upserted by adding to what is there,
//! so several flushes (or, should it ever happen, two routers) landing in one minute count
//! every request once. The upsert takes the row's lock (PostgreSQL) or the single writer
//! (SQLite) before its histogram is read, merged and written back, so no addition is lost.

use std::collections::BTreeMap;

use domain::{AppName, LatencyHistogram, RequestBatch, RequestStats, StatusClass, StatusCounts};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{now, on_db};
use crate::{App, Error, Result, Store};

/// How long per-minute rows are kept; older ones are pruned by [`Store::record_requests`].
pub const REQUEST_MINUTES_KEPT: time::Duration = time::Duration::days(2);

/// One app's requests in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMinute {
    /// The minute's start, UTC.
    pub minute: OffsetDateTime,
    pub requests: u64,
    /// Requests answered 5xx.
    pub errors: u64,
    pub latency: LatencyHistogram,
}

/// One app's requests since it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRequestTotals {
    pub app: AppName,
    pub stats: RequestStats,
}

/// Every counter `/metrics` exposes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestTotals {
    /// By app name.
    pub apps: Vec<AppRequestTotals>,
    /// Every request the router answered, an app's or not.
    pub platform: StatusCounts,
    /// Requests counted but dropped before they were stored.
    pub dropped: u64,
}

/// A few numbers about the platform, each one cheap query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlatformGauges {
    pub apps: u64,
    pub users: u64,
    /// Pieces of work queued or under way.
    pub work_unfinished: u64,
}

const EMPTY_HISTOGRAM: &str = r#"{"b":[0,0,0,0,0,0,0,0,0,0,0,0,0],"s":0}"#;

impl Store {
    /// Adds what a router counted, in one transaction: each app's minutes and totals, the
    /// platform's totals. Minutes of apps that no longer exist are skipped (their totals
    /// went with them); minutes older than [`REQUEST_MINUTES_KEPT`] only count in the
    /// totals, and stored ones that old are pruned.
    pub async fn record_requests(&self, batch: &RequestBatch) -> Result<()> {
        let cutoff = minute_of(now() - REQUEST_MINUTES_KEPT);
        // By name, so concurrent writers lock rows in one order.
        let mut by_app: BTreeMap<&str, Vec<&domain::AppMinute>> = BTreeMap::new();
        for minute in &batch.minutes {
            by_app.entry(minute.app.as_str()).or_default().push(minute);
        }
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for (app, minutes) in &by_app {
                let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM apps WHERE name = $1")
                    .bind(*app)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(id) = id else { continue };
                let mut total = RequestStats::default();
                for minute in minutes {
                    total.merge(&minute.stats);
                    if minute.minute < cutoff {
                        continue;
                    }
                    let stored: String = sqlx::query_scalar(
                        "INSERT INTO request_minutes (app_id, minute, requests, errors, latency) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (app_id, minute) DO UPDATE SET \
                           requests = request_minutes.requests + excluded.requests, \
                           errors = request_minutes.errors + excluded.errors \
                         RETURNING latency",
                    )
                    .bind(id)
                    .bind(minute.minute)
                    .bind(count(minute.stats.requests()))
                    .bind(count(minute.stats.errors()))
                    .bind(EMPTY_HISTOGRAM)
                    .fetch_one(&mut *tx)
                    .await?;
                    let latency = merged(&stored, &minute.stats.latency)?;
                    sqlx::query(
                        "UPDATE request_minutes SET latency = $3 WHERE app_id = $1 AND minute = $2",
                    )
                    .bind(id)
                    .bind(minute.minute)
                    .bind(latency)
                    .execute(&mut *tx)
                    .await?;
                }
                let s = |class| count(total.statuses.get(class));
                let stored: String = sqlx::query_scalar(
                    "INSERT INTO request_totals (app_id, s1xx, s2xx, s3xx, s4xx, s5xx, latency) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (app_id) DO UPDATE SET \
                       s1xx = request_totals.s1xx + excluded.s1xx, \
                       s2xx = request_totals.s2xx + excluded.s2xx, \
                       s3xx = request_totals.s3xx + excluded.s3xx, \
                       s4xx = request_totals.s4xx + excluded.s4xx, \
                       s5xx = request_totals.s5xx + excluded.s5xx \
                     RETURNING latency",
                )
                .bind(id)
                .bind(s(StatusClass::Informational))
                .bind(s(StatusClass::Success))
                .bind(s(StatusClass::Redirection))
                .bind(s(StatusClass::ClientError))
                .bind(s(StatusClass::ServerError))
                .bind(EMPTY_HISTOGRAM)
                .fetch_one(&mut *tx)
                .await?;
                let latency = merged(&stored, &total.latency)?;
                sqlx::query("UPDATE request_totals SET latency = $2 WHERE app_id = $1")
                    .bind(id)
                    .bind(latency)
                    .execute(&mut *tx)
                    .await?;
            }
            let platform = batch
                .platform
                .iter()
                .map(|(class, n)| (class.label(), n))
                .chain([("dropped", batch.dropped)]);
            for (name, n) in platform.filter(|(_, n)| *n > 0) {
                sqlx::query(
                    "INSERT INTO router_totals (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = router_totals.value + excluded.value",
                )
                .bind(name)
                .bind(count(n))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM request_minutes WHERE minute < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })
    }

    /// The app's minutes from `since` (its minute included) on, oldest first; minutes
    /// without requests have no row.
    pub async fn request_minutes(
        &self,
        app: &App,
        since: OffsetDateTime,
    ) -> Result<Vec<RequestMinute>> {
        let rows: Vec<(i64, i64, i64, String)> = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT minute, requests, errors, latency FROM request_minutes \
             WHERE app_id = $1 AND minute >= $2 ORDER BY minute",
        )
        .bind(app.id)
        .bind(minute_of(since))
        .fetch_all(pool)
        .await)?;
        rows.into_iter()
            .map(|(minute, requests, errors, latency)| {
                Ok(RequestMinute {
                    minute: OffsetDateTime::from_unix_timestamp(minute * 60)
                        .map_err(|_| Error::corrupt(format!("request minute {minute}")))?,
                    requests: unsigned(requests),
                    errors: unsigned(errors),
                    latency: histogram(&latency)?,
                })
            })
            .collect()
    }

    /// Every app's totals (by name) and the platform's, for Prometheus.
    pub async fn request_totals(&self) -> Result<RequestTotals> {
        type Row = (String, i64, i64, i64, i64, i64, String);
        let (apps, platform): (Vec<Row>, Vec<(String, i64)>) = on_db!(self, read, |pool| {
            let apps = sqlx::query_as(
                "SELECT a.name, t.s1xx, t.s2xx, t.s3xx, t.s4xx, t.s5xx, t.latency \
                 FROM request_totals t JOIN apps a ON a.id = t.app_id ORDER BY a.name",
            )
            .fetch_all(pool)
            .await?;
            let platform = sqlx::query_as("SELECT name, value FROM router_totals")
                .fetch_all(pool)
                .await?;
            Ok::<_, Error>((apps, platform))
        })?;
        let mut totals = RequestTotals::default();
        for (name, s1, s2, s3, s4, s5, latency) in apps {
            let mut statuses = StatusCounts::default();
            for (class, n) in StatusClass::ALL.into_iter().zip([s1, s2, s3, s4, s5]) {
                statuses.add(class, unsigned(n));
            }
            totals.apps.push(AppRequestTotals {
                app: AppName::parse(&name).map_err(Error::corrupt)?,
                stats: RequestStats {
                    statuses,
                    latency: histogram(&latency)?,
                },
            });
        }
        for (name, n) in platform {
            match StatusClass::ALL.into_iter().find(|c| c.label() == name) {
                Some(class) => totals.platform.add(class, unsigned(n)),
                None if name == "dropped" => totals.dropped = unsigned(n),
                None => {}
            }
        }
        Ok(totals)
    }

    /// How many apps and users there are, and how much work is queued or under way.
    pub async fn platform_gauges(&self) -> Result<PlatformGauges> {
        let (apps, users, work): (i64, i64, i64) = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM apps), (SELECT COUNT(*) FROM users), \
             (SELECT COUNT(*) FROM work WHERE status IN ('queued', 'running'))",
        )
        .fetch_one(pool)
        .await)?;
        Ok(PlatformGauges {
            apps: unsigned(apps),
            users: unsigned(users),
            work_unfinished: unsigned(work),
        })
    }
}

/// The minute `at` falls in, as minutes since the Unix epoch.
fn minute_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

/// A count as the databases' signed 64-bit integers hold it.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn histogram(json: &str) -> Result<LatencyHistogram> {
    serde_json::from_str(json).map_err(|e| Error::corrupt(format!("latency histogram: {e}")))
}

/// The stored histogram with `added` merged in, as JSON.
fn merged(stored: &str, added: &LatencyHistogram) -> Result<String> {
    let mut latency = histogram(stored)?;
    latency.merge(added);
    serde_json::to_string(&latency).map_err(|e| Error::corrupt(format!("latency histogram: {e}")))
}
