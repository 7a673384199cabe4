//! The release manager's side of the store's work queue: claim a piece of work, do it, write
//! what it prints where its requester reads it, and record how it ended.
//!
//! Each piece is held under a lease renewed while it runs; a worker that dies lets its lease
//! lapse and another takes the piece over. A worker also keeps the store's record of what each
//! app runs (`slip ps` reads it), queues deploys a writer that died before queueing them left
//! behind, and forgets old finished work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::AppName;
use store::{Claimable, Fault, ProcessRecord, Store, Work, WorkKind, WorkOutcome};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{DeployError, Deployer, LineSender, ReleaseManager};

/// How a worker takes part.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Who this worker is in the store's leases: unique per process.
    pub holder: String,
    /// How long a claim lasts unless renewed; renewed every third of it.
    pub lease: Duration,
    /// Pieces of work done at once (each of a different app).
    pub concurrency: usize,
}

impl WorkerConfig {
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
    pub const DEFAULT_CONCURRENCY: usize = 16;
}

/// Claims and does work from the store's queue.
#[derive(Debug, Clone)]
pub struct Worker {
    manager: ReleaseManager,
    store: Store,
    config: Arc<WorkerConfig>,
    /// One write of the record of processes at a time: two at once would interleave their
    /// delete and insert.
    syncing: Arc<tokio::sync::Mutex<()>>,
    /// Who rebases images, if this release manager holds the image store.
    rebaser: Option<Arc<dyn crate::Rebaser>>,
}

/// One-off commands run at once, at most, beside the other work.
const RUNS: usize = 64;
/// How often the queue is looked at when nothing announced new work.
const POLL: Duration = Duration::from_millis(500);
/// How often what each app runs is written to the store, when it changed.
const PROCESS_SYNC: Duration = Duration::from_secs(1);
/// How old a release waiting without queued work must be before it is queued here: younger,
/// its writer may be about to queue it.
const STRANDED_AFTER: Duration = Duration::from_secs(30);
/// Finished work is forgotten after this long.
const KEEP_FINISHED: Duration = Duration::from_secs(24 * 3600);
/// How long the release manager's own tasks get to end at shutdown, once the pieces of work
/// under way have.
const DRAIN: Duration = Duration::from_secs(10);
/// The most output bytes kept for one piece of work (beside [`store::MAX_OUTPUT_LINES`]);
/// past either, lines are counted, not kept.
const MAX_OUTPUT_BYTES: usize = 4 << 20;
/// Output lines are written to the store in batches at least this often.
const OUTPUT_FLUSH: Duration = Duration::from_millis(100);

impl Worker {
    pub fn new(manager: ReleaseManager, store: Store, config: WorkerConfig) -> Worker {
        Worker {
            manager,
            store,
            config: Arc::new(config),
            syncing: Arc::default(),
            rebaser: None,
        }
    }

    /// Rebase work is done with `rebaser`; without one, it fails saying why.
    pub fn with_rebaser(mut self, rebaser: Arc<dyn crate::Rebaser>) -> Worker {
        self.rebaser = Some(rebaser);
        self
    }

    /// Claims and does work until `shutdown` fires, then waits for the pieces under way and
    /// for the release manager's own tasks.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        tracker.spawn(self.clone().housekeeping(shutdown.clone()));
        // One-off commands have room of their own: a console that lasts an hour takes none
        // from deploys.
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let run_slots = Arc::new(tokio::sync::Semaphore::new(RUNS));
        let mut changes = self.store.changes();
        loop {
            let which = match (
                slots.available_permits() > 0,
                run_slots.available_permits() > 0,
            ) {
                (true, true) => Claimable::Any,
                (true, false) => Claimable::NotRuns,
                (false, true) => Claimable::Runs,
                (false, false) => {
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => break,
                        _ = slots.acquire() => {}
                        _ = run_slots.acquire() => {}
                    }
                    continue;
                }
            };
            changes.borrow_and_update();
            match self
                .store
                .claim(&self.config.holder, self.config.lease, which)
                .await
            {
                Ok(Some(work)) => {
                    // Only this loop takes permits, so the room it saw is still there.
                    let room = match work.kind {
                        ref kind if kind.is_one_off() => &run_slots,
                        _ => &slots,
                    };
                    let permit = Arc::clone(room).try_acquire_owned().expect("room was seen");
                    let worker = self.clone();
                    tracker.spawn(async move {
                        worker.work(work).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "cannot claim work; trying again"),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = tokio::time::timeout(POLL, changes.changed()) => {}
            }
        }
        tracker.close();
        // Work under way finishes, up to a deadline; what does not is taken over by the next
        // release manager when its lease lapses.
        if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
            tracing::warn!(
                "work still under way after {DRAIN:?}; leaving it to the next release manager"
            );
        }
        self.manager.drain(DRAIN).await;
    }

    /// One piece of work, start to end, its lease renewed meanwhile.
    async fn work(&self, work: Work) {
        let id = work.id;
        tracing::debug!(app = %work.app, work = %id, kind = ?work.kind, "claimed");
        let renewing = {
            let store = self.store.clone();
            let config = Arc::clone(&self.config);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(config.lease / 3).await;
                    match store.renew_work(id, &config.holder, config.lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(work = %id, "lost the lease on work under way: another release manager has taken it over");
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(work = %id, error = %err, "cannot renew a lease")
                        }
                    }
                }
            })
        };
        let (sender, receiver) = LineSender::channel(crate::READER_LAG);
        let writing = tokio::spawn(write_output(self.store.clone(), id, receiver));
        let outcome = self.dispatch(&work, sender).await;
        let _ = writing.await;
        renewing.abort();
        match self
            .store
            .finish_work(id, &self.config.holder, &outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(work = %id, "finished work another release manager had taken over")
            }
            Err(err) => tracing::error!(work = %id, error = %err, "cannot record how work ended"),
        }
        self.sync_processes(&work.app, None).await;
    }

    async fn dispatch(&self, work: &Work, output: LineSender) -> WorkOutcome {
        let manager = &self.manager;
        let app = &work.app;
        let done: Result<Option<i32>, DeployError> = match &work.kind {
            WorkKind::Deploy {
                version,
                awaits_ref: false,
            } => manager
                .deploy_and_wait(app, *version, output)
                .await
                .map(|()| None),
            WorkKind::Deploy {
                version,
                awaits_ref: true,
            } => manager
                .deploy_push(app, *version, output)
                .await
                .map(|()| None),
            WorkKind::Settle { version, ref_moved } => {
                manager.push_settled(app, *version, *ref_moved).await;
                Ok(None)
            }
            WorkKind::Scale => manager.scale(app).await.map(|()| None),
            WorkKind::Restart { process_type } => manager
                .restart(app, process_type.as_deref())
                .await
                .map(|()| None),
            WorkKind::Hosts => {
                manager.hosts_changed(app).await;
                Ok(None)
            }
            WorkKind::Destroy => {
                manager.destroy(app).await;
                Ok(None)
            }
            WorkKind::Run { command } => manager.run(app, command, output).await.map(Some),
            WorkKind::Test { run } => manager.test(app, *run, output).await.map(Some),
            // Succeeds with the version of the release it made, if it made one.
            WorkKind::Rebase { by } => {
                crate::rebase::rebase_app(&self.store, self.rebaser.as_deref(), app, by, &output)
                    .await
                    .map(|made| made.map(|v| i32::try_from(v).unwrap_or(i32::MAX)))
            }
        };
        match done {
            Ok(exit_status) => WorkOutcome::Succeeded { exit_status },
            Err(err) => {
                let fault = match err {
                    DeployError::Unavailable(_) => Fault::Unavailable,
                    DeployError::Invalid(_) => Fault::Invalid,
                    DeployError::Failed(_) => Fault::Failed,
                };
                WorkOutcome::Failed {
                    fault,
                    reason: err.to_string(),
                }
            }
        }
    }

    /// Writes what the app runs to the store if it changed since `last`.
    async fn sync_processes(
        &self,
        app: &AppName,
        last: Option<&mut HashMap<AppName, Vec<ProcessRecord>>>,
    ) {
        let _turn = self.syncing.lock().await;
        let processes = match self.manager.processes(app).await {
            Ok(processes) => processes,
            Err(err) => {
                tracing::debug!(%app, error = %err, "cannot list processes");
                return;
            }
        };
        let records: Vec<ProcessRecord> = processes
            .into_iter()
            .map(|p| ProcessRecord {
                name: p.name,
                process_type: p.process_type,
                command: p.command,
                release: i64::from(p.release.get()),
                state: p.state.as_str().to_owned(),
                since: p.since,
                restarts: i32::try_from(p.restarts).unwrap_or(i32::MAX),
            })
            .collect();
        if let Some(last) = &last
            && last.get(app) == Some(&records)
        {
            return;
        }
        match self.store.set_processes(app, &records).await {
            Ok(()) => {
                if let Some(last) = last {
                    last.insert(app.clone(), records);
                }
            }
            Err(err) => tracing::warn!(%app, error = ?err, "cannot record the app's processes"),
        }
    }

    /// What runs beside the work: the record of processes kept current, stranded releases
    /// queued, old work forgotten.
    async fn housekeeping(self, shutdown: CancellationToken) {
        let mut last: HashMap<AppName, Vec<ProcessRecord>> = HashMap::new();
        let mut tick = tokio::time::interval(PROCESS_SYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            rounds += 1;
            let apps = match self.store.all_apps().await {
                Ok(apps) => apps,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the apps");
                    continue;
                }
            };
            last.retain(|name, _| apps.iter().any(|a| &a.name == name));
            for app in &apps {
                self.sync_processes(&app.name, Some(&mut last)).await;
            }
            if rounds % 10 == 1 {
                self.queue_stranded().await;
            }
            if rounds % 3600 == 1 {
                let before = time::OffsetDateTime::now_utc() - KEEP_FINISHED;
                if let Err(err) = self.store.prune_work(before).await {
                    tracing::warn!(error = %err, "cannot forget old work");
                }
            }
        }
    }

    /// Queues the deploy of releases whose writer died before queueing it.
    async fn queue_stranded(&self) {
        let before = time::OffsetDateTime::now_utc() - STRANDED_AFTER;
        let stranded = match self.store.stranded_releases(before).await {
            Ok(stranded) => stranded,
            Err(err) => {
                tracing::warn!(error = %err, "cannot look for releases waiting to be deployed");
                return;
            }
        };
        for (app, version, of_commit) in stranded {
            tracing::info!(%app, %version, "queueing the deploy of a release nothing queued");
            // A release of a commit succeeds once a gateway has seen the commit in the
            // repository (a push cut off may have left it).
            let kind = WorkKind::Deploy {
                version,
                awaits_ref: of_commit,
            };
            if let Err(err) = self.store.enqueue(&app, &kind).await {
                tracing::warn!(%app, error = %err, "cannot queue a deploy");
            }
        }
    }
}

/// Writes a piece of work's output lines to the store in batches, until its sender is gone.
/// Past the store's bound they are dropped; the reader sees the count from the line sender.
async fn write_output(store: Store, id: store::WorkId, mut lines: crate::LineReceiver) {
    let mut next = 0u32;
    let mut batch: Vec<String> = Vec::new();
    let (mut kept_bytes, mut dropped) = (0usize, 0u64);
    loop {
        let deadline = tokio::time::Instant::now() + OUTPUT_FLUSH;
        let open = loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => {
                    // The last line's room is kept for the note that says what was not kept.
                    let room = next as usize + batch.len() + 1 < store::MAX_OUTPUT_LINES as usize;
                    if dropped == 0 && room && kept_bytes + line.len() <= MAX_OUTPUT_BYTES {
                        kept_bytes += line.len();
                        batch.push(line);
                        if batch.len() >= 200 {
                            break true;
                        }
                    } else {
                        dropped += 1;
                    }
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        if !open && dropped > 0 {
            batch.push(format!(
                "(slipway: {dropped} more lines not kept: a piece of work keeps at most {} lines and {} MiB of output)",
                store::MAX_OUTPUT_LINES,
                MAX_OUTPUT_BYTES >> 20
            ));
        }
        if !batch.is_empty() {
            let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            if let Err(err) = store.append_output(id, next, &batch).await {
                tracing::warn!(work = %id, error = %err, "cannot keep work's output");
            }
            next = next.saturating_add(count);
            batch.clear();
        }
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn output_past_its_bound_is_counted_in_a_last_line_not_kept() {
        let db = test_support::TestDatabase::new(test_support::Backend::Sqlite)
            .await
            .unwrap();
        let store = Store::open(&db.url).await.unwrap();
        let app = AppName::parse("noisy").unwrap();
        let id = store.enqueue(&app, &WorkKind::Scale).await.unwrap();
        let (sender, receiver) = LineSender::channel(100_000);
        let writing = tokio::spawn(write_output(store.clone(), id, receiver));
        let total = store::MAX_OUTPUT_LINES as usize + 500;
        for n in 0..total {
            sender.send(&format!("line {n}"));
        }
        drop(sender);
        writing.await.unwrap();
        let kept = store
            .output(id, 0, store::MAX_OUTPUT_LINES + 10)
            .await
            .unwrap();
        assert_eq!(kept.len(), store::MAX_OUTPUT_LINES as usize);
        assert_eq!(kept[0].1, "line 0");
        let last = &kept.last().unwrap().1;
        assert!(
            last.starts_with("(slipway: 501 more lines not kept"),
            "{last}"
        );
    }
}
