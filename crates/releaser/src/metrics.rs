//! Moves what the router counted into the store: every [`FLUSH_EVERY`] and once more when
//! the router has stopped. Only the local runtime's active release manager serves a router,
//! so only it flushes; on Kubernetes there is no Slipway router and nothing is counted.
//!
//! A flush the store refuses is logged and kept for the next try, merged with what comes
//! after, up to [`MAX_PENDING_MINUTES`] app-minutes; past that the oldest are dropped and
//! counted as dropped, so a long outage of the store costs memory only up to a bound.

use std::time::Duration;

use domain::RequestBatch;
use tokio_util::sync::CancellationToken;

/// How often the router's counts are written to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// App-minutes kept while the store cannot take them (a day of 10 busy apps).
pub const MAX_PENDING_MINUTES: usize = 14_400;

/// Drains a router's [`router::RequestMetrics`] into the store.
#[derive(Debug)]
pub struct MetricsFlusher {
    metrics: router::RequestMetrics,
    store: store::Store,
    /// What the store has not taken yet.
    pending: RequestBatch,
}

impl MetricsFlusher {
    pub fn new(metrics: router::RequestMetrics, store: store::Store) -> MetricsFlusher {
        MetricsFlusher {
            metrics,
            store,
            pending: RequestBatch::default(),
        }
    }

    /// Writes everything counted so far, with whatever an earlier flush could not write.
    /// On an error that stays pending, bounded.
    pub async fn flush(&mut self) -> Result<(), store::Error> {
        self.pending.merge(self.metrics.take());
        bound(&mut self.pending, MAX_PENDING_MINUTES);
        if self.pending.is_empty() {
            return Ok(());
        }
        self.store.record_requests(&self.pending).await?;
        self.pending = RequestBatch::default();
        Ok(())
    }

    /// App-minutes waiting for the store.
    pub fn pending(&self) -> &RequestBatch {
        &self.pending
    }

    /// Flushes every [`FLUSH_EVERY`] until `stop`, then once more. Cancel `stop` once the
    /// router has stopped answering, so its last requests are counted.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => break,
            }
            if let Err(err) = self.flush().await {
                tracing::warn!(error = %err, pending = self.pending.minutes.len(), "cannot store request metrics; keeping them for the next try");
            }
        }
        if let Err(err) = self.flush().await {
            tracing::warn!(error = %err, "cannot store the last request metrics; they are lost");
        }
    }
}

/// Drops the oldest minutes past `max`, counting their requests as dropped.
fn bound(batch: &mut RequestBatch, max: usize) {
    if batch.minutes.len() <= max {
        return;
    }
    batch.minutes.sort_by_key(|m| m.minute);
    let excess = batch.minutes.len() - max;
    for gone in batch.minutes.drain(..excess) {
        batch.dropped += gone.stats.requests();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::{Backend, TestDatabase};

    #[tokio::test]
    async fn counts_reach_the_store_and_a_failed_flush_keeps_them() {
        let db = TestDatabase::new(Backend::Sqlite).await.unwrap();
        let store = store::Store::open(&db.url).await.unwrap();
        let ada = store
            .create_user(
                &domain::Username::parse("ada").unwrap(),
                "hash",
                store::NewUser::Any,
            )
            .await
            .unwrap()
            .unwrap();
        store
            .create_app(&domain::AppName::parse("demo").unwrap(), &ada)
            .await
            .unwrap();
        let metrics = router::RequestMetrics::new();
        let mut flusher = MetricsFlusher::new(metrics.clone(), store.clone());
        metrics.record(Some("demo"), 200, Duration::from_millis(2));
        metrics.record(None, 404, Duration::from_millis(1));
        flusher.flush().await.unwrap();
        assert!(flusher.pending().is_empty());
        let totals = store.request_totals().await.unwrap();
        assert_eq!(totals.apps[0].stats.requests(), 1);
        assert_eq!(totals.platform.total(), 2);

        // A store that cannot be written: the counts wait, and are not counted twice.
        let closed = store::Store::open(&db.url).await.unwrap();
        closed.close().await;
        let mut failing = MetricsFlusher::new(metrics.clone(), closed);
        metrics.record(Some("demo"), 500, Duration::from_millis(2));
        assert!(failing.flush().await.is_err());
        metrics.record(Some("demo"), 200, Duration::from_millis(2));
        assert!(failing.flush().await.is_err());
        let pending = failing.pending();
        assert_eq!(
            pending
                .minutes
                .iter()
                .map(|m| m.stats.requests())
                .sum::<u64>(),
            2
        );
        assert_eq!(pending.platform.total(), 2);
    }

    #[test]
    fn pending_minutes_are_bounded_oldest_first() {
        let mut batch = RequestBatch::default();
        for minute in [5, 1, 3] {
            let mut stats = domain::RequestStats::default();
            stats.record(200, Duration::ZERO);
            batch.minutes.push(domain::AppMinute {
                app: "demo".to_owned(),
                minute,
                stats,
            });
        }
        bound(&mut batch, 2);
        let kept: Vec<i64> = batch.minutes.iter().map(|m| m.minute).collect();
        assert_eq!(kept, [3, 5]);
        assert_eq!(batch.dropped, 1);
    }
}
