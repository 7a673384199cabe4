//! Request metrics as plain values: a latency histogram with fixed, Prometheus-style bucket
//! bounds, counts by status class, and the batch the router hands over to be stored.
//!
//! Pure arithmetic: the router records into these, the store adds them up, the API draws and
//! exposes them, and all of them agree on the buckets because they are defined once, here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The upper bounds of the latency buckets, in milliseconds; a last bucket, `+Inf`, takes
/// everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/// How many buckets a [`LatencyHistogram`] has: one per bound, and `+Inf`.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// How long requests took, counted in fixed buckets, with their exact sum.
///
/// Serialised compactly as `{"b":[per-bucket counts],"s":sum in microseconds}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Requests per bucket (not cumulative): `b[i]` took at most `LATENCY_BOUNDS_MS[i]` and
    /// more than the bound before; the last took more than the last bound.
    #[serde(rename = "b")]
    buckets: [u64; LATENCY_BUCKETS],
    /// The sum of every recorded duration, in microseconds.
    #[serde(rename = "s")]
    sum_micros: u64,
}

impl LatencyHistogram {
    pub fn new() -> LatencyHistogram {
        LatencyHistogram::default()
    }

    /// A histogram from its parts, as [`buckets`](Self::buckets) and
    /// [`sum_micros`](Self::sum_micros) gave them.
    pub fn from_parts(buckets: [u64; LATENCY_BUCKETS], sum_micros: u64) -> LatencyHistogram {
        LatencyHistogram {
            buckets,
            sum_micros,
        }
    }

    /// Counts one request that took `took`. A bound is inclusive, as Prometheus's `le`.
    pub fn record(&mut self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let index = LATENCY_BOUNDS_MS
            .iter()
            .position(|&ms| micros <= ms * 1_000)
            .unwrap_or(LATENCY_BUCKETS - 1);
        self.buckets[index] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    /// Adds `other`'s requests to these.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    /// Requests counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// How long all of them took together.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros)
    }

    pub fn sum_micros(&self) -> u64 {
        self.sum_micros
    }

    /// Requests per bucket, not cumulative; the last is `+Inf`.
    pub fn buckets(&self) -> &[u64; LATENCY_BUCKETS] {
        &self.buckets
    }

    /// Each bucket's upper bound (`None`: `+Inf`) with the requests at or under it, as
    /// Prometheus's `_bucket{le=…}` series count them.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        let bounds = LATENCY_BOUNDS_MS
            .iter()
            .map(|&ms| Some(Duration::from_millis(ms)))
            .chain([None]);
        bounds.zip(self.buckets.iter().scan(0u64, |total, &n| {
            *total += n;
            Some(*total)
        }))
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) by Prometheus's `histogram_quantile`: the bucket holding
    /// the rank `q × count`, interpolated linearly between its bounds (the first bucket's
    /// lower bound is 0). A rank in `+Inf` answers the highest finite bound. `None` without
    /// requests or for a `q` outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * count as f64;
        let mut below = 0u64;
        for (index, &n) in self.buckets.iter().enumerate() {
            let through = below + n;
            if n > 0 && (through as f64) >= rank {
                let Some(&upper_ms) = LATENCY_BOUNDS_MS.get(index) else {
                    break;
                };
                let lower_ms = index.checked_sub(1).map_or(0, |i| LATENCY_BOUNDS_MS[i]);
                let fraction = (rank - below as f64) / n as f64;
                let ms = lower_ms as f64 + (upper_ms - lower_ms) as f64 * fraction;
                return Some(Duration::from_secs_f64(ms / 1_000.0));
            }
            below = through;
        }
        Some(Duration::from_millis(
            LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1],
        ))
    }
}

/// The class of an HTTP status code, as metrics group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusClass {
    /// 1xx (`101 Switching Protocols` for a WebSocket).
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl StatusClass {
    pub const ALL: [StatusClass; 5] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
    ];

    /// The class of `status`; codes outside 100–599 count as server errors.
    pub fn of(status: u16) -> StatusClass {
        match status {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// `"1xx"` … `"5xx"`.
    pub fn label(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Requests by status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusCounts([u64; 5]);

impl StatusCounts {
    pub fn add(&mut self, class: StatusClass, n: u64) {
        self.0[class.index()] += n;
    }

    pub fn get(&self, class: StatusClass) -> u64 {
        self.0[class.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn merge(&mut self, other: &StatusCounts) {
        for class in StatusClass::ALL {
            self.add(class, other.get(class));
        }
    }

    /// Each class with its count, 1xx first.
    pub fn iter(&self) -> impl Iterator<Item = (StatusClass, u64)> + '_ {
        StatusClass::ALL.into_iter().map(|c| (c, self.get(c)))
    }
}

/// What requests an app answered over some time: how many of each status class, and how
/// long they took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestStats {
    pub statuses: StatusCounts,
    pub latency: LatencyHistogram,
}

impl RequestStats {
    pub fn record(&mut self, status: u16, took: Duration) {
        self.statuses.add(StatusClass::of(status), 1);
        self.latency.record(took);
    }

    pub fn merge(&mut self, other: &RequestStats) {
        self.statuses.merge(&other.statuses);
        self.latency.merge(&other.latency);
    }

    pub fn requests(&self) -> u64 {
        self.statuses.total()
    }

    /// Requests answered 5xx.
    pub fn errors(&self) -> u64 {
        self.statuses.get(StatusClass::ServerError)
    }
}

/// One app's requests in one UTC minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMinute {
    /// The app's name, as the router knows it.
    pub app: String,
    /// Minutes since the Unix epoch, UTC.
    pub minute: i64,
    pub stats: RequestStats,
}

/// What a router counted since it was last drained.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestBatch {
    /// Per app and minute, oldest first within an app.
    pub minutes: Vec<AppMinute>,
    /// Every request the router answered, an app's or not (unknown hosts, ACME challenges).
    pub platform: StatusCounts,
    /// Requests counted for apps but dropped (their minutes were the oldest when the router
    /// could keep no more undrained).
    pub dropped: u64,
}

impl RequestBatch {
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.platform.total() == 0 && self.dropped == 0
    }

    /// Adds `later` to this batch (a batch kept after a failed flush, and the next one).
    pub fn merge(&mut self, later: RequestBatch) {
        for minute in later.minutes {
            match self
                .minutes
                .iter_mut()
                .find(|m| m.app == minute.app && m.minute == minute.minute)
            {
                Some(existing) => existing.stats.merge(&minute.stats),
                None => self.minutes.push(minute),
            }
        }
        self.platform.merge(&later.platform);
        self.dropped += later.dropped;
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Records durations written as `12ms 3s …` and shows the buckets and quantiles.
    fn check(durations: &str, expected: Expect) {
        let mut h = LatencyHistogram::new();
        for d in durations.split_whitespace() {
            let took = if let Some(n) = d.strip_suffix("ms") {
                Duration::from_secs_f64(n.parse::<f64>().unwrap() / 1_000.0)
            } else {
                Duration::from_secs_f64(d.strip_suffix('s').unwrap().parse().unwrap())
            };
            h.record(took);
        }
        let quantile = |q| {
            h.quantile(q).map_or_else(
                || "-".to_owned(),
                |d| format!("{:.3}ms", d.as_secs_f64() * 1e3),
            )
        };
        let shown = format!(
            "buckets {:?} count {} sum {:?}\np50 {} p95 {} p99 {}",
            h.buckets(),
            h.count(),
            h.sum(),
            quantile(0.5),
            quantile(0.95),
            quantile(0.99),
        );
        expected.assert_eq(&shown);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_histogram_quantile() {
        check(
            "",
            expect![[r#"
                buckets [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] count 0 sum 0ns
                p50 - p95 - p99 -"#]],
        );
        // Four in (0, 5ms]: the median is at rank 2 of 4, halfway through the bucket.
        check(
            "1ms 2ms 3ms 4ms",
            expect![[r#"
                buckets [4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] count 4 sum 10ms
                p50 2.500ms p95 4.750ms p99 4.950ms"#]],
        );
        // Bounds are inclusive: 5ms is in the first bucket, 5.001ms in the second.
        check(
            "5ms 5.001ms 10ms 10.001ms",
            expect![[r#"
                buckets [1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] count 4 sum 30.002ms
                p50 7.500ms p95 22.000ms p99 24.400ms"#]],
        );
        // Ninety fast, ten slow: p95 and p99 land among the slow ones, in (250, 500].
        check(
            &format!("{}{}", "3ms ".repeat(90), "300ms ".repeat(10)),
            expect![[r#"
                buckets [90, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0] count 100 sum 3.27s
                p50 2.778ms p95 375.000ms p99 475.000ms"#]],
        );
        // Past the last bound: +Inf answers the highest finite bound, as Prometheus does.
        check(
            "1ms 45s 60s",
            expect![[r#"
                buckets [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2] count 3 sum 105.001s
                p50 30000.000ms p95 30000.000ms p99 30000.000ms"#]],
        );
    }

    #[test]
    fn quantile_edges() {
        let mut h = LatencyHistogram::new();
        h.record(ms(20));
        assert_eq!(h.quantile(0.0), Some(ms(10)), "the bucket's lower bound");
        assert_eq!(h.quantile(1.0), Some(ms(25)), "the bucket's upper bound");
        assert_eq!(h.quantile(-0.1), None);
        assert_eq!(h.quantile(1.1), None);
        assert_eq!(h.quantile(f64::NAN), None);
    }

    #[test]
    fn merging_adds_counts_and_sums() {
        let mut a = LatencyHistogram::new();
        a.record(ms(1));
        a.record(ms(700));
        let mut b = LatencyHistogram::new();
        b.record(ms(700));
        b.record(Duration::from_secs(100));
        let mut merged = a;
        merged.merge(&b);
        assert_eq!(merged.count(), 4);
        assert_eq!(merged.sum(), ms(1 + 700 + 700 + 100_000));
        assert_eq!(merged.buckets()[7], 2, "two in (500ms, 1s]");
        let cumulative: Vec<u64> = merged.cumulative().map(|(_, n)| n).collect();
        assert_eq!(cumulative, [1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 4]);
        let bounds: Vec<Option<Duration>> = merged.cumulative().map(|(le, _)| le).collect();
        assert_eq!(bounds[0], Some(ms(5)));
        assert_eq!(bounds[12], None);
    }

    #[test]
    fn serialises_compactly_and_back() {
        let mut stats = RequestStats::default();
        stats.record(200, ms(3));
        stats.record(503, ms(40));
        let json = serde_json::to_string(&stats.latency).unwrap();
        expect![[r#"{"b":[1,0,0,1,0,0,0,0,0,0,0,0,0],"s":43000}"#]].assert_eq(&json);
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, stats.latency);
        assert_eq!(
            LatencyHistogram::from_parts(*back.buckets(), back.sum_micros()),
            back
        );
        assert_eq!(stats.requests(), 2);
        assert_eq!(stats.errors(), 1);
    }

    #[test]
    fn status_classes() {
        let classes: Vec<&str> = [101, 200, 204, 301, 404, 500, 503, 99, 600]
            .into_iter()
            .map(|s| StatusClass::of(s).label())
            .collect();
        assert_eq!(
            classes,
            [
                "1xx", "2xx", "2xx", "3xx", "4xx", "5xx", "5xx", "5xx", "5xx"
            ]
        );
    }

    #[test]
    fn batches_merge_by_app_and_minute() {
        let minute = |app: &str, minute, status| {
            let mut stats = RequestStats::default();
            stats.record(status, ms(1));
            AppMinute {
                app: app.to_owned(),
                minute,
                stats,
            }
        };
        let mut kept = RequestBatch {
            minutes: vec![minute("a", 1, 200), minute("b", 1, 200)],
            platform: StatusCounts::default(),
            dropped: 1,
        };
        let mut platform = StatusCounts::default();
        platform.add(StatusClass::ClientError, 3);
        kept.merge(RequestBatch {
            minutes: vec![minute("a", 1, 500), minute("a", 2, 200)],
            platform,
            dropped: 2,
        });
        assert_eq!(kept.minutes.len(), 3);
        assert_eq!(kept.minutes[0].stats.requests(), 2);
        assert_eq!(kept.minutes[0].stats.errors(), 1);
        assert_eq!(kept.platform.get(StatusClass::ClientError), 3);
        assert_eq!(kept.dropped, 3);
        assert!(!kept.is_empty());
        assert!(RequestBatch::default().is_empty());
    }
}
