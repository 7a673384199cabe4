//! Releases: the config changes, builds and rollbacks that make them, and their status.

use std::collections::BTreeMap;

use domain::{
    ConfigChange, ConfigVars, ReleaseCause, ReleaseFacts, ReleaseStatus, ReleaseVersion,
    rollback_target,
};
use uuid::Uuid;

use crate::db::{new_id, now, on_db, record_event};
use crate::{App, ConfigOutcome, Error, Release, ReleaseEntry, Result, Store, User};

/// Release columns, joined with the author and the build's commit.
const RELEASE_SELECT: &str = "SELECT r.version, r.build_id, b.commit_sha, r.config, r.summary, r.status, r.reason, \
     u.username AS created_by, r.created_at, r.deploy_started_at, r.release_phase_finished_at, r.deploy_finished_at \
     FROM releases r JOIN users u ON u.id = r.created_by LEFT JOIN builds b ON b.id = r.build_id";

/// A release's row: what a history lists of it, and its config.
#[derive(sqlx::FromRow)]
struct ReleaseRow {
    #[sqlx(flatten)]
    entry: EntryRow,
    config: String,
}

impl TryFrom<ReleaseRow> for Release {
    type Error = Error;

    fn try_from(row: ReleaseRow) -> Result<Release> {
        let entry = ReleaseEntry::try_from(row.entry)?;
        let config: BTreeMap<String, String> =
            serde_json::from_str(&row.config).map_err(Error::corrupt)?;
        Ok(Release {
            version: entry.version,
            build: entry.build,
            commit: entry.commit,
            config,
            summary: entry.summary,
            status: entry.status,
            reason: entry.reason,
            created_by: entry.created_by,
            created_at: entry.created_at,
            deploy_started_at: entry.deploy_started_at,
            release_phase_finished_at: entry.release_phase_finished_at,
            deploy_finished_at: entry.deploy_finished_at,
        })
    }
}

/// What a history lists of a release: everything but its config.
const ENTRY_SELECT: &str = "SELECT r.version, r.build_id, b.commit_sha, r.summary, r.status, r.reason, \
     u.username AS created_by, r.created_at, r.deploy_started_at, r.release_phase_finished_at, r.deploy_finished_at \
     FROM releases r JOIN users u ON u.id = r.created_by LEFT JOIN builds b ON b.id = r.build_id";

#[derive(sqlx::FromRow)]
struct EntryRow {
    version: i64,
    build_id: Option<Uuid>,
    commit_sha: Option<String>,
    summary: String,
    status: String,
    reason: Option<String>,
    created_by: String,
    created_at: time::OffsetDateTime,
    deploy_started_at: Option<time::OffsetDateTime>,
    release_phase_finished_at: Option<time::OffsetDateTime>,
    deploy_finished_at: Option<time::OffsetDateTime>,
}

impl TryFrom<EntryRow> for ReleaseEntry {
    type Error = Error;

    fn try_from(row: EntryRow) -> Result<ReleaseEntry> {
        Ok(ReleaseEntry {
            version: u32::try_from(row.version)
                .ok()
                .and_then(ReleaseVersion::new)
                .ok_or_else(|| Error::corrupt(format!("release version {}", row.version)))?,
            build: row.build_id,
            commit: row.commit_sha,
            summary: row.summary,
            status: ReleaseStatus::parse(&row.status)
                .ok_or_else(|| Error::corrupt(format!("release status {:?}", row.status)))?,
            reason: row.reason,
            created_by: row.created_by,
            created_at: row.created_at,
            deploy_started_at: row.deploy_started_at,
            release_phase_finished_at: row.release_phase_finished_at,
            deploy_finished_at: row.deploy_finished_at,
        })
    }
}

/// The parts of the previous release a new one starts from.
#[derive(sqlx::FromRow)]
pub(crate) struct Latest {
    pub(crate) build_id: Option<Uuid>,
    pub(crate) config: String,
}

impl Store {
    /// The app's releases, newest first, at most `limit` of them.
    pub async fn releases(&self, app: &App, limit: u32) -> Result<Vec<Release>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{RELEASE_SELECT} WHERE r.app_id = $1 ORDER BY r.version DESC LIMIT $2"
        ));
        let rows: Vec<ReleaseRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(Release::try_from).collect()
    }

    /// A page of the app's history, newest first: at most `limit` of the releases older than
    /// `before` (of the newest when `None`), without their config — a history never shows
    /// it, and each may be 256 KiB.
    pub async fn releases_before(
        &self,
        app: &App,
        before: Option<ReleaseVersion>,
        limit: u32,
    ) -> Result<Vec<ReleaseEntry>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{ENTRY_SELECT} WHERE r.app_id = $1 AND r.version < $2 ORDER BY r.version DESC LIMIT $3"
        ));
        let before = before.map_or(i64::MAX, |v| i64::from(v.get()));
        let rows: Vec<EntryRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(ReleaseEntry::try_from).collect()
    }

    /// The current release's version: the newest that succeeded, if any did.
    pub async fn current_version(&self, app: &App) -> Result<Option<ReleaseVersion>> {
        let version: Option<i64> = on_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT MAX(version) FROM releases WHERE app_id = $1 AND status = 'succeeded'",
            )
            .bind(app.id)
            .fetch_one(pool)
            .await
        })?;
        version
            .map(|v| {
                u32::try_from(v)
                    .ok()
                    .and_then(ReleaseVersion::new)
                    .ok_or_else(|| Error::corrupt(format!("release version {v}")))
            })
            .transpose()
    }

    pub async fn release(&self, app: &App, version: ReleaseVersion) -> Result<Release> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{RELEASE_SELECT} WHERE r.app_id = $1 AND r.version = $2"
        ));
        let row: Option<ReleaseRow> = on_db!(self, read, |pool| {
            sqlx::query_as(sql)
                .bind(app.id)
                .bind(i64::from(version.get()))
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or_else(|| Error::NotFound(format!("release {version} of {}", app.name)))?
            .try_into()
    }

    /// The newest release, whatever its status. Every app has one: `create` makes v1.
    pub async fn latest_release(&self, app: &App) -> Result<Release> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{RELEASE_SELECT} WHERE r.app_id = $1 ORDER BY r.version DESC LIMIT 1"
        ));
        let row: Option<ReleaseRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| Error::NotFound(format!("release of {}", app.name)))?
            .try_into()
    }

    /// Applies a config change. A change that alters the config makes a new release with
    /// the previous release's build; one that alters nothing makes none.
    pub async fn change_config(
        &self,
        app: &App,
        change: &ConfigChange,
        actor: &User,
    ) -> Result<ConfigOutcome> {
        let made = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let version = next_version!(&mut *tx, app);
            let latest: Latest = latest!(&mut *tx, app);
            let config =
                ConfigVars::from_map(serde_json::from_str(&latest.config).map_err(Error::corrupt)?)
                    .map_err(Error::corrupt)?;
            let (next, diff) = config.apply(change)?;
            if diff.is_empty() {
                // Nothing changed: give the version back by not committing.
                tx.rollback().await?;
                None
            } else {
                let summary = ReleaseCause::Config(diff).summary(&actor.username);
                insert_release!(
                    &mut *tx,
                    app,
                    version,
                    latest.build_id,
                    &next.to_map(),
                    &summary,
                    actor
                );
                tx.commit().await?;
                Some(version)
            }
        });
        match made {
            Some(version) => Ok(ConfigOutcome::Released(self.release(app, version).await?)),
            None => Ok(ConfigOutcome::Unchanged(self.latest_release(app).await?)),
        }
    }

    /// Rolls back to `target`, or to the previous successful release: a new release that
    /// reuses the target's build and config, without a rebuild.
    pub async fn rollback(
        &self,
        app: &App,
        target: Option<ReleaseVersion>,
        actor: &User,
    ) -> Result<Release> {
        let version = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let version = next_version!(&mut *tx, app);
            let history: Vec<(i64, String, Option<Uuid>)> =
                sqlx::query_as("SELECT version, status, build_id FROM releases WHERE app_id = $1")
                    .bind(app.id)
                    .fetch_all(&mut *tx)
                    .await?;
            let facts = history
                .iter()
                .map(|(v, status, build)| {
                    Ok(ReleaseFacts {
                        version: u32::try_from(*v)
                            .ok()
                            .and_then(ReleaseVersion::new)
                            .ok_or_else(|| Error::corrupt(v))?,
                        status: ReleaseStatus::parse(status)
                            .ok_or_else(|| Error::corrupt(status))?,
                        has_build: build.is_some(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let to = rollback_target(&facts, target)?;
            let source: Latest = sqlx::query_as(
                "SELECT build_id, config FROM releases WHERE app_id = $1 AND version = $2",
            )
            .bind(app.id)
            .bind(i64::from(to.get()))
            .fetch_one(&mut *tx)
            .await?;
            let config: BTreeMap<String, String> =
                serde_json::from_str(&source.config).map_err(Error::corrupt)?;
            let summary = ReleaseCause::Rollback { to }.summary(&actor.username);
            insert_release!(
                &mut *tx,
                app,
                version,
                source.build_id,
                &config,
                &summary,
                actor
            );
            tx.commit().await?;
            Ok::<_, Error>(version)
        })?;
        self.release(app, version).await
    }

    /// Makes the release for a finished build: its code with the app's current config.
    pub async fn release_build(&self, app: &App, build: Uuid, actor: &User) -> Result<Release> {
        self.release_build_as(app, build, actor, None).await
    }

    /// Makes the release for a build that rebased the running one's image onto a newer run
    /// image: as [`Store::release_build`], with the rebase as its summary.
    pub async fn release_rebased_build(
        &self,
        app: &App,
        build: Uuid,
        actor: &User,
        run_image: &str,
        base: &str,
    ) -> Result<Release> {
        let cause = ReleaseCause::Rebase {
            run_image: run_image.to_owned(),
            base: base.to_owned(),
        };
        self.release_build_as(app, build, actor, Some(cause)).await
    }

    /// The release of a finished build, its summary `cause`'s or else the build's own.
    async fn release_build_as(
        &self,
        app: &App,
        build: Uuid,
        actor: &User,
        cause: Option<ReleaseCause>,
    ) -> Result<Release> {
        let version = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let source: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT commit_sha, image FROM builds WHERE id = $1 AND app_id = $2 AND status = 'succeeded'",
            )
            .bind(build)
            .bind(app.id)
            .fetch_optional(&mut *tx)
            .await?;
            let source =
                source.ok_or_else(|| Error::NotFound(format!("succeeded build {build}")))?;
            let cause = match (cause.clone(), source) {
                (Some(cause), _) => cause,
                (None, (Some(commit), _)) => ReleaseCause::Deploy { commit },
                (None, (None, image)) => ReleaseCause::Image {
                    image: image.unwrap_or_default(),
                },
            };
            let version = next_version!(&mut *tx, app);
            let latest: Latest = latest!(&mut *tx, app);
            let config: BTreeMap<String, String> =
                serde_json::from_str(&latest.config).map_err(Error::corrupt)?;
            let summary = cause.summary(&actor.username);
            // The first build with a web process gets one, as on Heroku; a count set
            // before (even 0) stays.
            sqlx::query(
                "INSERT INTO formation (app_id, process_type, count) \
                 SELECT $1, 'web', 1 FROM builds WHERE id = $2 AND procfile LIKE '%\"web\":%' \
                 ON CONFLICT (app_id, process_type) DO NOTHING",
            )
            .bind(app.id)
            .bind(build)
            .execute(&mut *tx)
            .await?;
            insert_release!(
                &mut *tx,
                app,
                version,
                Some(build),
                &config,
                &summary,
                actor
            );
            tx.commit().await?;
            Ok::<_, Error>(version)
        })?;
        self.release(app, version).await
    }

    /// Records how a release's deploy went: `deploying` stamps its start, `succeeded` and
    /// `failed` its end.
    /// Records that the release's release phase has just finished, and its rollout begins.
    pub async fn release_phase_done(&self, app: &App, version: ReleaseVersion) -> Result<()> {
        on_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE releases SET release_phase_finished_at = $3 WHERE app_id = $1 AND version = $2",
            )
            .bind(app.id)
            .bind(i64::from(version.get()))
            .bind(now())
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn set_release_status(
        &self,
        app: &App,
        version: ReleaseVersion,
        status: ReleaseStatus,
        reason: Option<&str>,
    ) -> Result<()> {
        let sql = match status {
            ReleaseStatus::Pending => {
                return Err(Error::Conflict(format!(
                    "release {version} of {} cannot go back to pending",
                    app.name
                )));
            }
            ReleaseStatus::Deploying => {
                "UPDATE releases SET status = $1, reason = $2, deploy_started_at = $5 \
                 WHERE app_id = $3 AND version = $4"
            }
            ReleaseStatus::Succeeded => return self.release_succeeded(app, version).await,
            ReleaseStatus::Failed => {
                "UPDATE releases SET status = $1, reason = $2, deploy_finished_at = $5 \
                 WHERE app_id = $3 AND version = $4"
            }
        };
        let done = on_db!(self, write, |pool| {
            sqlx::query(sql)
                .bind(status.as_str())
                .bind(reason)
                .bind(app.id)
                .bind(i64::from(version.get()))
                .bind(now())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(Error::NotFound(format!(
                "release {version} of {}",
                app.name
            )));
        }
        Ok(())
    }
}

/// Takes the app's next release version. On PostgreSQL the UPDATE locks the app's row until
/// the transaction ends, so concurrent writers to one app take turns; on SQLite the single
/// writer connection already makes them take turns.
macro_rules! next_version {
    ($tx:expr, $app:expr) => {{
        let version: i64 = sqlx::query_scalar(
            "UPDATE apps SET last_version = last_version + 1 WHERE id = $1 RETURNING last_version",
        )
        .bind($app.id)
        .fetch_optional($tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("app {}", $app.name)))?;
        u32::try_from(version)
            .ok()
            .and_then(ReleaseVersion::new)
            .ok_or_else(|| Error::corrupt(version))?
    }};
}
pub(crate) use next_version;

/// The newest release's build and config. Read after `next_version!`, under its lock.
macro_rules! latest {
    ($tx:expr, $app:expr) => {
        sqlx::query_as(
            "SELECT build_id, config FROM releases WHERE app_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind($app.id)
        .fetch_one($tx)
        .await?
    };
}
pub(crate) use latest;

/// Inserts a release. One with a build waits for the release manager to deploy it
/// (`pending`); one without has nothing to deploy and is `succeeded` at once.
macro_rules! insert_release {
    ($tx:expr, $app:expr, $version:expr, $build:expr, $config:expr, $summary:expr, $actor:expr) => {{
        let build: Option<Uuid> = $build;
        let status = if build.is_some() { ReleaseStatus::Pending } else { ReleaseStatus::Succeeded };
        let config = serde_json::to_string($config).map_err(Error::corrupt)?;
        sqlx::query(
            "INSERT INTO releases (id, app_id, version, build_id, config, summary, status, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9)",
        )
        .bind(new_id())
        .bind($app.id)
        .bind(i64::from($version.get()))
        .bind(build)
        .bind(config)
        .bind($summary)
        .bind(status.as_str())
        .bind($actor.id)
        .bind(now())
        .execute(&mut *$tx)
        .await?;
        record_event!(&mut *$tx, app: $app.name.as_str(), actor: &$actor.username, action: "release.create", detail: format!("{} {}", $version, $summary))?;
    }};
}
pub(crate) use insert_release;
