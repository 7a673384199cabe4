//! Builds: what a push produced, recorded while it runs and when it ends.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::db::{new_id, now, on_db};
use crate::{App, Build, BuildSource, BuildStatus, Error, Result, Store, User};

const BUILD_SELECT: &str = "SELECT b.id, b.commit_sha, b.status, b.procfile, b.image, b.pushed_bytes, \
     u.username AS created_by, b.created_at, b.finished_at, b.promoted_from FROM builds b JOIN users u ON u.id = b.created_by";

#[derive(sqlx::FromRow)]
struct BuildRow {
    id: Uuid,
    commit_sha: Option<String>,
    status: String,
    procfile: String,
    image: Option<String>,
    pushed_bytes: Option<i64>,
    created_by: String,
    created_at: time::OffsetDateTime,
    finished_at: Option<time::OffsetDateTime>,
    promoted_from: Option<String>,
}

impl TryFrom<BuildRow> for Build {
    type Error = Error;

    fn try_from(row: BuildRow) -> Result<Build> {
        Ok(Build {
            id: row.id,
            commit: row.commit_sha,
            status: BuildStatus::parse(&row.status).ok_or_else(|| Error::corrupt(&row.status))?,
            procfile: serde_json::from_str(&row.procfile).map_err(Error::corrupt)?,
            image: row.image,
            pushed_bytes: row
                .pushed_bytes
                .map(|b| u64::try_from(b).map_err(|_| Error::corrupt(format!("pushed bytes {b}"))))
                .transpose()?,
            created_by: row.created_by,
            created_at: row.created_at,
            finished_at: row.finished_at,
            promoted_from: row.promoted_from,
        })
    }
}

impl Store {
    /// Records a build that has started.
    pub async fn create_build(
        &self,
        app: &App,
        source: &BuildSource,
        actor: &User,
    ) -> Result<Build> {
        let id = new_id();
        let (commit, image, promoted_from) = match source {
            BuildSource::Commit(commit) => (Some(commit.as_str()), None, None),
            BuildSource::Image(image) => (None, Some(image.as_str()), None),
            BuildSource::Promoted {
                image,
                commit,
                from,
            } => (commit.as_deref(), Some(image.as_str()), Some(from.as_str())),
        };
        on_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO builds (id, app_id, commit_sha, status, procfile, image, created_by, created_at, finished_at, promoted_from) \
                 VALUES ($1, $2, $3, 'running', '{}', $4, $5, $6, NULL, $7)",
            )
            .bind(id)
            .bind(app.id)
            .bind(commit)
            .bind(image)
            .bind(actor.id)
            .bind(now())
            .bind(promoted_from)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.build(app, id).await
    }

    /// Records how a build ended, with the process types it declares and the image it made.
    pub async fn finish_build(
        &self,
        app: &App,
        id: Uuid,
        status: BuildStatus,
        procfile: &BTreeMap<String, String>,
        image: Option<&str>,
    ) -> Result<Build> {
        let procfile = serde_json::to_string(procfile).map_err(Error::corrupt)?;
        let done = on_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE builds SET status = $1, procfile = $2, image = COALESCE($3, image), finished_at = $4 \
                 WHERE id = $5 AND app_id = $6 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(procfile)
            .bind(image)
            .bind(now())
            .bind(id)
            .bind(app.id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(Error::NotFound(format!("running build {id}")));
        }
        self.build(app, id).await
    }

    /// Marks the app's builds still `running` failed, `why` appended to their logs: the push
    /// that ran them is gone. Returns how many there were.
    pub async fn fail_running_builds_of(&self, app: &App, why: &str) -> Result<u64> {
        let failed = on_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE builds SET status = 'failed', finished_at = $1, log = COALESCE(log, '') || $2 \
                 WHERE status = 'running' AND app_id = $3",
            )
            .bind(now())
            .bind(format!("{why}\n"))
            .bind(app.id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(failed)
    }

    /// Marks every build still `running` failed, `why` appended to its log: at start, no
    /// build is running, so these were cut off. Returns how many there were.
    pub async fn fail_running_builds(&self, why: &str) -> Result<u64> {
        let failed = on_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE builds SET status = 'failed', finished_at = $1, log = COALESCE(log, '') || $2 \
                 WHERE status = 'running'",
            )
            .bind(now())
            .bind(format!("{why}\n"))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(failed)
    }

    pub async fn builds(&self, app: &App, limit: u32) -> Result<Vec<Build>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{BUILD_SELECT} WHERE b.app_id = $1 ORDER BY b.id DESC LIMIT $2"
        ));
        let rows: Vec<BuildRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(Build::try_from).collect()
    }

    /// The app's builds made from `since` to `until` (either end open when `None`), newest
    /// first, at most `limit`: the builds of one page of the app's history.
    pub async fn builds_between(
        &self,
        app: &App,
        since: Option<time::OffsetDateTime>,
        until: Option<time::OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<Build>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{BUILD_SELECT} WHERE b.app_id = $1 AND ($2 IS NULL OR b.created_at >= $2) \
             AND ($3 IS NULL OR b.created_at <= $3) ORDER BY b.created_at DESC, b.id DESC LIMIT $4"
        ));
        let rows: Vec<BuildRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .bind(since)
            .bind(until)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(Build::try_from).collect()
    }

    /// The images the app's own builds of pushed code made (as the builds name them), each
    /// once: the local images the app may deploy again.
    pub async fn built_images(&self, app: &App) -> Result<Vec<String>> {
        let images: Vec<String> = on_db!(self, read, |pool| {
            sqlx::query_scalar(
            "SELECT DISTINCT image FROM builds \
             WHERE app_id = $1 AND commit_sha IS NOT NULL AND status = 'succeeded' AND image IS NOT NULL"
        )
        .bind(app.id)
        .fetch_all(pool)
        .await
        })?;
        Ok(images)
    }

    pub async fn build(&self, app: &App, id: Uuid) -> Result<Build> {
        let sql = sqlx::AssertSqlSafe(format!("{BUILD_SELECT} WHERE b.app_id = $1 AND b.id = $2"));
        let row: Option<BuildRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(app.id)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| Error::NotFound(format!("build {id}")))?
            .try_into()
    }
}

impl Store {
    /// Records the bytes the build's image push sent the registry.
    pub async fn set_build_pushed_bytes(&self, app: &App, id: Uuid, bytes: u64) -> Result<()> {
        let bytes =
            i64::try_from(bytes).map_err(|_| Error::corrupt(format!("pushed bytes {bytes}")))?;
        let updated = on_db!(self, write, |pool| {
            sqlx::query("UPDATE builds SET pushed_bytes = $1 WHERE id = $2 AND app_id = $3")
                .bind(bytes)
                .bind(id)
                .bind(app.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(Error::NotFound(format!("build {id} of {}", app.name)));
        }
        Ok(())
    }

    /// Keeps a build's output.
    pub async fn set_build_log(&self, app: &App, id: Uuid, log: &str) -> Result<()> {
        on_db!(self, write, |pool| {
            sqlx::query("UPDATE builds SET log = $1 WHERE id = $2 AND app_id = $3")
                .bind(log)
                .bind(id)
                .bind(app.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// A build's output, as kept when it ended.
    pub async fn build_log(&self, app: &App, id: Uuid) -> Result<String> {
        let log: Option<String> = on_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT log FROM builds WHERE id = $1 AND app_id = $2")
                .bind(id)
                .bind(app.id)
                .fetch_optional(pool)
                .await
        })?;
        log.ok_or_else(|| Error::NotFound(format!("build {id}")))
    }
}
