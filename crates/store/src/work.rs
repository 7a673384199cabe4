//! The durable work queue release managers converge by, the output a piece of work prints,
//! named leases, and the processes the active runtime reports.
//!
//! A piece of [`Work`] is claimed with a lease and done by one release manager; if that one
//! dies, its lease lapses and another claims the same row again. An app's work is done in
//! order, one piece at a time: only the oldest unfinished row of an app can be claimed. On
//! PostgreSQL concurrent claims skip each other's rows (`FOR UPDATE SKIP LOCKED`); SQLite's
//! single writer takes them in turn. Waiters learn of changes from [`Store::changes`]: a
//! `NOTIFY` after commit on PostgreSQL (from any process), the store itself in this process,
//! and polling as the fallback.

use std::time::Duration;

use domain::{AppName, ReleaseVersion};
use time::OffsetDateTime;

use crate::db::{now, on_db};
use crate::{Error, Result, Store};

/// The channel PostgreSQL notifies on when work or its output changes.
pub(crate) const CHANNEL: &str = "slipway_work";

/// The most output lines kept for one piece of work; the rest are counted, not kept.
pub const MAX_OUTPUT_LINES: u32 = 10_000;

/// Identifies a piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkId(pub i64);

impl std::fmt::Display for WorkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a release manager is asked to do for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkKind {
    /// Deploy a release. A push's (`awaits_ref`) stays `deploying` once it serves, until its
    /// push settles.
    Deploy {
        version: ReleaseVersion,
        awaits_ref: bool,
    },
    /// A push whose release was deployed ended: its ref moved or it did not.
    Settle {
        version: ReleaseVersion,
        ref_moved: bool,
    },
    /// Bring the running release in line with the formation and the process settings
    /// (health checks, limits, autoscaling): queued when either changes.
    Scale,
    /// Replace the processes (of one type, or all) with fresh ones.
    Restart { process_type: Option<String> },
    /// The host names the app answers to changed.
    Hosts,
    /// The app was destroyed: stop everything, remove what it kept.
    Destroy,
    /// Run a command once with the current release; never retried.
    Run { command: String },
    /// Run the test run numbered `run` (its image, command and environment); like `Run`, a
    /// one-off beside the app's other work, never retried.
    Test { run: u64 },
    /// Rebase the running build's image onto the current run image, as `by` (a username)
    /// asked, and make a release of it. Done again after a cut-off it makes the same image
    /// and no second release.
    Rebase { by: String },
}

impl WorkKind {
    pub(crate) fn columns(&self) -> (&'static str, Option<i64>, Option<String>) {
        match self {
            WorkKind::Deploy {
                version,
                awaits_ref,
            } => (
                if *awaits_ref { "push" } else { "deploy" },
                Some(i64::from(version.get())),
                None,
            ),
            WorkKind::Settle { version, ref_moved } => (
                "settle",
                Some(i64::from(version.get())),
                Some(if *ref_moved { "moved" } else { "cut" }.to_owned()),
            ),
            WorkKind::Scale => ("scale", None, None),
            WorkKind::Restart { process_type } => ("restart", None, process_type.clone()),
            WorkKind::Hosts => ("hosts", None, None),
            WorkKind::Destroy => ("destroy", None, None),
            WorkKind::Run { command } => ("run", None, Some(command.clone())),
            WorkKind::Test { run } => ("test", i64::try_from(*run).ok(), None),
            WorkKind::Rebase { by } => ("rebase", None, Some(by.clone())),
        }
    }

    fn from_columns(kind: &str, version: Option<i64>, argument: Option<String>) -> Result<Self> {
        let test_run = version.and_then(|v| u64::try_from(v).ok());
        let version = || {
            version
                .and_then(|v| u32::try_from(v).ok())
                .and_then(ReleaseVersion::new)
                .ok_or_else(|| Error::corrupt(format!("work of kind {kind} without a version")))
        };
        Ok(match kind {
            "deploy" | "push" => WorkKind::Deploy {
                version: version()?,
                awaits_ref: kind == "push",
            },
            "settle" => WorkKind::Settle {
                version: version()?,
                ref_moved: argument.as_deref() == Some("moved"),
            },
            "scale" => WorkKind::Scale,
            "restart" => WorkKind::Restart {
                process_type: argument,
            },
            "hosts" => WorkKind::Hosts,
            "destroy" => WorkKind::Destroy,
            "run" => WorkKind::Run {
                command: argument.unwrap_or_default(),
            },
            "test" => WorkKind::Test {
                run: test_run.ok_or_else(|| Error::corrupt("a test work without its run"))?,
            },
            "rebase" => WorkKind::Rebase {
                by: argument.unwrap_or_default(),
            },
            other => return Err(Error::corrupt(format!("work of kind {other:?}"))),
        })
    }

    /// Whether doing it again after a release manager died half-way is safe.
    pub fn retried(&self) -> bool {
        !self.is_one_off()
    }

    /// A one-off command (`run`, `test`): done beside the app's other work, in its own slots.
    pub fn is_one_off(&self) -> bool {
        matches!(self, WorkKind::Run { .. } | WorkKind::Test { .. })
    }
}

/// Which work [`Store::claim`] may take: a release manager with no room for another
/// one-off command, or for anything else, says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimable {
    Any,
    /// One-off commands only.
    Runs,
    /// Anything but one-off commands.
    NotRuns,
}

/// Where a piece of work is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl WorkStatus {
    fn as_str(self) -> &'static str {
        match self {
            WorkStatus::Queued => "queued",
            WorkStatus::Running => "running",
            WorkStatus::Succeeded => "succeeded",
            WorkStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => WorkStatus::Queued,
            "running" => WorkStatus::Running,
            "succeeded" => WorkStatus::Succeeded,
            "failed" => WorkStatus::Failed,
            other => return Err(Error::corrupt(format!("work status {other:?}"))),
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, WorkStatus::Succeeded | WorkStatus::Failed)
    }
}

/// How a finished piece of work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkOutcome {
    /// Done; a one-off command's exit status, or the version of the release a rebase made.
    Succeeded { exit_status: Option<i32> },
    /// Not done: what went wrong, and whose fault it was.
    Failed { fault: Fault, reason: String },
}

/// Whose fault a failed piece of work was, so an API can answer with the right status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request asked for something the app does not have.
    Invalid,
    /// Nothing can run: no runtime, or nothing deployed yet.
    Unavailable,
    /// It was tried and failed.
    Failed,
}

impl Fault {
    fn as_str(self) -> &'static str {
        match self {
            Fault::Invalid => "invalid",
            Fault::Unavailable => "unavailable",
            Fault::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Fault {
        match s {
            "invalid" => Fault::Invalid,
            "unavailable" => Fault::Unavailable,
            _ => Fault::Failed,
        }
    }
}

/// One row of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    pub id: WorkId,
    pub app: AppName,
    pub kind: WorkKind,
    pub status: WorkStatus,
    pub holder: Option<String>,
    /// How often it has been claimed.
    pub attempts: u32,
    /// Set once finished.
    pub outcome: Option<WorkOutcome>,
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct WorkRow {
    id: i64,
    app: String,
    kind: String,
    version: Option<i64>,
    argument: Option<String>,
    status: String,
    holder: Option<String>,
    attempts: i32,
    outcome: Option<String>,
    exit_status: Option<i32>,
    created_at: OffsetDateTime,
}

const WORK_COLUMNS: &str = "id, app, kind, version, argument, status, holder, attempts, outcome, \
                            exit_status, created_at";

impl TryFrom<WorkRow> for Work {
    type Error = Error;

    fn try_from(row: WorkRow) -> Result<Work> {
        let status = WorkStatus::parse(&row.status)?;
        let outcome = match status {
            WorkStatus::Succeeded => Some(WorkOutcome::Succeeded {
                exit_status: row.exit_status,
            }),
            WorkStatus::Failed => {
                let text = row.outcome.unwrap_or_default();
                let (fault, reason) = text.split_once(':').unwrap_or(("failed", &text));
                Some(WorkOutcome::Failed {
                    fault: Fault::parse(fault),
                    reason: reason.to_owned(),
                })
            }
            _ => None,
        };
        Ok(Work {
            id: WorkId(row.id),
            app: AppName::parse(&row.app).map_err(Error::corrupt)?,
            kind: WorkKind::from_columns(&row.kind, row.version, row.argument)?,
            status,
            holder: row.holder,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            outcome,
            created_at: row.created_at,
        })
    }
}

/// What the active runtime said one of an app's processes was doing.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProcessRecord {
    /// `web.1`
    pub name: String,
    pub process_type: String,
    pub command: String,
    pub release: i64,
    /// `starting`, `up`, `crashed`, `stopping`
    pub state: String,
    pub since: OffsetDateTime,
    pub restarts: i32,
}

/// Adds work for `app` on a connection or in a transaction (`&mut *tx`), so a change and the
/// work that converges to it commit together; the caller announces it after committing.
macro_rules! enqueue_on {
    ($conn:expr, $app:expr, $kind:expr) => {{
        let (kind, version, argument) = $kind.columns();
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO work (app, kind, version, argument, status, created_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5) RETURNING id",
        )
        .bind($app.as_str())
        .bind(kind)
        .bind(version)
        .bind(argument)
        .bind(crate::db::now())
        .fetch_one($conn)
        .await
        .map(crate::WorkId)
    }};
}
pub(crate) use enqueue_on;

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn lease_end(lease: Duration) -> i64 {
    millis(now()).saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// A receiver that sees a new value whenever work, its output or a lease may have
    /// changed. Waiters still poll now and then: a change made by another process is
    /// announced only on PostgreSQL.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Announces a change: to this process at once, to others through `NOTIFY`.
    pub(crate) async fn announce(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        if let crate::db::Db::Postgres(pool) = &self.db {
            let notified = sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(pool)
                .await;
            if let Err(err) = notified {
                tracing::warn!(error = %err, "cannot notify other processes of new work; they will poll");
            }
        }
    }

    /// Adds work for `app` to the queue.
    pub async fn enqueue(&self, app: &AppName, kind: &WorkKind) -> Result<WorkId> {
        let id = on_db!(self, write, |pool| enqueue_on!(pool, app, kind))?;
        self.announce().await;
        Ok(id)
    }

    /// Claims the oldest piece of work that can be done now — the oldest unfinished of its
    /// app, queued, or running under a lease that lapsed — for `holder`, until `lease` from
    /// now. One-off commands stand apart: they run beside an app's other work and each other
    /// (a console may last an hour; a deploy does not wait for it), so they neither wait in
    /// the app's order nor hold it up. `which` says which may be claimed. Work that must not
    /// be retried (a one-off command) and was cut off is failed instead of claimed again.
    pub async fn claim(
        &self,
        holder: &str,
        lease: Duration,
        which: Claimable,
    ) -> Result<Option<Work>> {
        let (runs, others) = match which {
            Claimable::Any => (true, true),
            Claimable::Runs => (true, false),
            Claimable::NotRuns => (false, true),
        };
        loop {
            let at = millis(now());
            // The only statement whose text differs: SQLite has no row locks, and needs
            // none behind its single writer.
            let lock = match self.backend() {
                crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                crate::Backend::Sqlite => "",
            };
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE work SET status = 'running', holder = $1, lease_until = $2, \
                 attempts = attempts + 1, started_at = $3 \
                 WHERE id = (SELECT w.id FROM work w \
                   WHERE (w.status = 'queued' OR (w.status = 'running' AND w.lease_until < $4)) \
                   AND ((w.kind IN ('run', 'test') AND $5) OR (w.kind NOT IN ('run', 'test') AND $6 \
                     AND NOT EXISTS (SELECT 1 FROM work o WHERE o.app = w.app AND o.id < w.id \
                                     AND o.kind NOT IN ('run', 'test') AND o.status IN ('queued', 'running')))) \
                   ORDER BY w.id LIMIT 1{lock}) \
                 RETURNING {WORK_COLUMNS}"
            ));
            let row: Option<WorkRow> = on_db!(self, write, |pool| sqlx::query_as(sql)
                .bind(holder)
                .bind(lease_end(lease))
                .bind(now())
                .bind(at)
                .bind(runs)
                .bind(others)
                .fetch_optional(pool)
                .await)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let work = Work::try_from(row)?;
            if work.attempts > 1 && !work.kind.retried() {
                self.finish_work(
                    work.id,
                    holder,
                    &WorkOutcome::Failed {
                        fault: Fault::Failed,
                        reason: "interrupted: the release manager running it stopped".to_owned(),
                    },
                )
                .await?;
                continue;
            }
            self.announce().await;
            return Ok(Some(work));
        }
    }

    /// Extends `holder`'s lease on a piece of work. `false`: it is no longer the holder.
    pub async fn renew_work(&self, id: WorkId, holder: &str, lease: Duration) -> Result<bool> {
        let updated = on_db!(self, write, |pool| {
            sqlx::query(
            "UPDATE work SET lease_until = $1 WHERE id = $2 AND holder = $3 AND status = 'running'"
        )
        .bind(lease_end(lease))
        .bind(id.0)
        .bind(holder)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Records how a piece of work ended. `false`: `holder` no longer held it (another
    /// release manager took it over), so nothing was recorded.
    pub async fn finish_work(
        &self,
        id: WorkId,
        holder: &str,
        outcome: &WorkOutcome,
    ) -> Result<bool> {
        let (status, text, exit) = match outcome {
            WorkOutcome::Succeeded { exit_status } => (WorkStatus::Succeeded, None, *exit_status),
            WorkOutcome::Failed { fault, reason } => (
                WorkStatus::Failed,
                Some(format!("{}:{reason}", fault.as_str())),
                None,
            ),
        };
        let updated = on_db!(self, write, |pool| sqlx::query(
            "UPDATE work SET status = $1, outcome = $2, exit_status = $3, finished_at = $4, \
             lease_until = NULL WHERE id = $5 AND holder = $6 AND status = 'running'"
        )
        .bind(status.as_str())
        .bind(text)
        .bind(exit)
        .bind(now())
        .bind(id.0)
        .bind(holder)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.announce().await;
        Ok(updated == 1)
    }

    /// One piece of work.
    pub async fn work(&self, id: WorkId) -> Result<Work> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {WORK_COLUMNS} FROM work WHERE id = $1"));
        let row: Option<WorkRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(id.0)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| Error::NotFound(format!("work {id}")))?
            .try_into()
    }

    /// The app's work not yet finished, oldest first.
    pub async fn unfinished_work(&self, app: &AppName) -> Result<Vec<Work>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {WORK_COLUMNS} FROM work WHERE app = $1 AND status IN ('queued', 'running') \
             ORDER BY id"
        ));
        let rows: Vec<WorkRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.as_str())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(Work::try_from).collect()
    }

    /// Every finished piece of work of `kind` ("deploy", "push", …) in order, for tests and
    /// benchmarks that count what was done.
    pub async fn finished_work(&self, since: WorkId) -> Result<Vec<Work>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {WORK_COLUMNS} FROM work WHERE id > $1 AND status IN ('succeeded', 'failed') \
             ORDER BY id"
        ));
        let rows: Vec<WorkRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(since.0)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(Work::try_from).collect()
    }

    /// Appends output lines of a piece of work, numbered from `first`. Past
    /// [`MAX_OUTPUT_LINES`] lines are not kept.
    pub async fn append_output(&self, id: WorkId, first: u32, lines: &[String]) -> Result<()> {
        if lines.is_empty() || first >= MAX_OUTPUT_LINES {
            return Ok(());
        }
        let room = (MAX_OUTPUT_LINES - first) as usize;
        let lines = &lines[..lines.len().min(room)];
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for (n, line) in lines.iter().enumerate() {
                sqlx::query("INSERT INTO work_output (work_id, seq, line) VALUES ($1, $2, $3)")
                    .bind(id.0)
                    .bind(i64::from(first) + n as i64)
                    .bind(line)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        self.announce().await;
        Ok(())
    }

    /// Output lines of a piece of work numbered `from` on, at most `limit`.
    pub async fn output(&self, id: WorkId, from: u32, limit: u32) -> Result<Vec<(u32, String)>> {
        let rows: Vec<(i64, String)> = on_db!(self, read, |pool| {
            sqlx::query_as(
            "SELECT CAST(seq AS BIGINT), line FROM work_output WHERE work_id = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3"
        )
        .bind(id.0)
        .bind(i64::from(from))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(seq, line)| (u32::try_from(seq).unwrap_or(u32::MAX), line))
            .collect())
    }

    /// Forgets finished work, and its output, that ended before `before`.
    pub async fn prune_work(&self, before: OffsetDateTime) -> Result<u64> {
        let deleted = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM work_output WHERE work_id IN \
                 (SELECT id FROM work WHERE finished_at < $1)",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?;
            let deleted = sqlx::query("DELETE FROM work WHERE finished_at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await.map(|()| deleted)
        })?;
        Ok(deleted)
    }

    /// Takes or keeps the lease `name` for `holder` until `lease` from now. `false`: someone
    /// else holds it and it has not lapsed.
    pub async fn acquire_lease(&self, name: &str, holder: &str, lease: Duration) -> Result<bool> {
        let got: Option<String> = on_db!(self, write, |pool| sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4 \
             RETURNING holder"
        )
        .bind(name)
        .bind(holder)
        .bind(lease_end(lease))
        .bind(millis(now()))
        .fetch_optional(pool)
        .await)?;
        Ok(got.is_some())
    }

    /// Gives a lease up, if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_db!(self, write, |pool| sqlx::query(
            "DELETE FROM leases WHERE name = $1 AND holder = $2"
        )
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await
        .map(|_| ()))?;
        self.announce().await;
        Ok(())
    }

    /// Who holds the lease `name`, if anyone does and it has not lapsed.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>> {
        Ok(on_db!(self, read, |pool| sqlx::query_scalar(
            "SELECT holder FROM leases WHERE name = $1 AND expires_at >= $2"
        )
        .bind(name)
        .bind(millis(now()))
        .fetch_optional(pool)
        .await)?)
    }

    /// Replaces what is recorded about an app's processes.
    pub async fn set_processes(&self, app: &AppName, processes: &[ProcessRecord]) -> Result<()> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM processes WHERE app = $1")
                .bind(app.as_str())
                .execute(&mut *tx)
                .await?;
            for p in processes {
                sqlx::query(
                    "INSERT INTO processes (app, name, process_type, command, release, state, \
                     since, restarts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(app.as_str())
                .bind(&p.name)
                .bind(&p.process_type)
                .bind(&p.command)
                .bind(p.release)
                .bind(&p.state)
                .bind(p.since)
                .bind(p.restarts)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// What the active runtime last said the app runs.
    pub async fn processes(&self, app: &AppName) -> Result<Vec<ProcessRecord>> {
        Ok(on_db!(self, read, |pool| sqlx::query_as(
            "SELECT name, process_type, command, release, state, since, restarts \
             FROM processes WHERE app = $1 ORDER BY process_type, name"
        )
        .bind(app.as_str())
        .fetch_all(pool)
        .await)?)
    }

    /// Forgets the processes of every app: a runtime taking over starts from nothing.
    pub async fn clear_processes(&self) -> Result<()> {
        on_db!(self, write, |pool| sqlx::query("DELETE FROM processes")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Counts a restart of the app; returns its new generation.
    pub async fn bump_generation(&self, app: &AppName) -> Result<i64> {
        let generation: Option<i64> = on_db!(self, write, |pool| sqlx::query_scalar(
            "UPDATE apps SET generation = generation + 1 WHERE name = $1 RETURNING generation"
        )
        .bind(app.as_str())
        .fetch_optional(pool)
        .await)?;
        generation.ok_or_else(|| Error::NotFound(format!("app {app}")))
    }

    /// Apps whose newest release has waited since before `before` with no work queued to
    /// deploy it: a writer that died between committing a release and queueing its deploy
    /// left them. The newest release of each, by version, and whether it is of a commit.
    pub async fn stranded_releases(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<(AppName, ReleaseVersion, bool)>> {
        let rows: Vec<(String, i64, Option<String>)> = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT a.name, r.version, b.commit_sha FROM apps a JOIN releases r \
             ON r.app_id = a.id AND r.version = a.last_version \
             JOIN builds b ON b.id = r.build_id \
             WHERE r.status = 'pending' AND r.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM work w WHERE w.app = a.name \
                             AND w.status IN ('queued', 'running'))"
        )
        .bind(before)
        .fetch_all(pool)
        .await)?;
        rows.into_iter()
            .map(|(name, version, commit)| {
                let app = AppName::parse(&name).map_err(Error::corrupt)?;
                let version = u32::try_from(version)
                    .ok()
                    .and_then(ReleaseVersion::new)
                    .ok_or_else(|| Error::corrupt(format!("release version {version}")))?;
                Ok((app, version, commit.is_some()))
            })
            .collect()
    }
}

/// How often a waiter looks again when nothing announced a change.
const POLL: Duration = Duration::from_millis(500);

impl Store {
    /// Waits for a piece of work to finish, handing each output line it prints to `on_line`
    /// as it comes, and returns how it ended. Stops waiting (with `None`) at `deadline`.
    pub async fn await_work(
        &self,
        id: WorkId,
        deadline: Option<tokio::time::Instant>,
        mut on_line: impl FnMut(&str) + Send,
    ) -> Result<Option<WorkOutcome>> {
        let mut changes = self.changes();
        let mut next = 0u32;
        loop {
            changes.borrow_and_update();
            // The status first: output written before it finished is all there after.
            let work = self.work(id).await?;
            loop {
                let lines = self.output(id, next, 500).await?;
                let Some((last, _)) = lines.last() else {
                    break;
                };
                next = last + 1;
                for (_, line) in &lines {
                    on_line(line);
                }
            }
            if let Some(outcome) = work.outcome {
                return Ok(Some(outcome));
            }
            let wait = match deadline {
                Some(deadline) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    (deadline - now).min(POLL)
                }
                None => POLL,
            };
            let _ = tokio::time::timeout(wait, changes.changed()).await;
        }
    }

    /// Lets work that holders other than `holder` were doing be claimed at once: `holder`
    /// alone may do work now (it holds the local runtime's lease), so they are gone.
    pub async fn reclaim_work(&self, holder: &str) -> Result<u64> {
        let updated = on_db!(self, write, |pool| sqlx::query(
            "UPDATE work SET lease_until = 0 WHERE status = 'running' AND holder <> $1"
        )
        .bind(holder)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(updated)
    }
}

impl Store {
    /// Hands the lease `name` from `from` to `to`, if `from` still has it: `from` is known
    /// to be gone (a process on this machine that has exited) before its lease lapsed.
    pub async fn take_lease_from(
        &self,
        name: &str,
        from: &str,
        to: &str,
        lease: Duration,
    ) -> Result<bool> {
        let updated = on_db!(self, write, |pool| sqlx::query(
            "UPDATE leases SET holder = $1, expires_at = $2 WHERE name = $3 AND holder = $4"
        )
        .bind(to)
        .bind(lease_end(lease))
        .bind(name)
        .bind(from)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(updated == 1)
    }
}

/// A name for this process in the store's leases, `role@host:pid:random`: unique per process,
/// and telling a process on the same host whether the holder is still running ([`holder_gone`]).
pub fn holder_name(role: &str) -> String {
    format!(
        "{role}@{}:{}:{:08x}",
        host_name(),
        std::process::id(),
        uuid::Uuid::new_v4().as_u128() as u32
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Whether `holder` (a [`holder_name`], perhaps followed by `/` and more) is a process on this
/// host that has exited, so a lease it holds can be taken over before it lapses.
pub fn holder_gone(holder: &str) -> bool {
    let Some((_, rest)) = holder.split_once('@') else {
        return false;
    };
    let rest = rest.split_once('/').map_or(rest, |(name, _)| name);
    let mut parts = rest.rsplitn(3, ':');
    let (_, pid, host) = (parts.next(), parts.next(), parts.next());
    match (host, pid.and_then(|p| p.parse::<u32>().ok())) {
        (Some(host), Some(pid)) if !host.is_empty() && host == host_name() => {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_gone_only_when_it_is_a_process_of_this_host_that_exited() {
        let me = holder_name("releaser");
        assert!(!holder_gone(&me), "this process runs");
        assert!(!holder_gone(&format!("{me}/push-1")));
        let dead = format!("gateway@{}:{}:0000abcd/push", host_name(), u32::MAX - 1);
        assert!(holder_gone(&dead));
        let elsewhere = format!("gateway@another-host:{}:0000abcd", u32::MAX - 1);
        assert!(
            !holder_gone(&elsewhere),
            "a process of another host is not ours to judge"
        );
        assert!(!holder_gone("garbage"));
    }
}
