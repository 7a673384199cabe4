//! Promotions: a downstream app's release of an upstream app's build without a rebuild — at
//! once, or, when the target's stage is protected, once another person approves it.
//!
//! A promotion gives the target a build row of its own (the same image, Procfile and commit,
//! and where it came from) and a release of it with the target's own config; the release
//! manager then deploys it there, release phase and all. The build is pinned when the
//! promotion is asked for, so an approval deploys what was asked for, whatever the upstream
//! has done since.

use std::collections::BTreeMap;

use domain::{AppName, ReleaseCause, ReleaseStatus, ReleaseVersion};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{new_id, now, on_db, record_event};
use crate::releases::{Latest, insert_release, latest, next_version};
use crate::work::enqueue_on;
use crate::{App, Error, Pipeline, Result, Store, User, WorkKind};

/// The build a promotion deploys: the upstream's current one, copied when asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedBuild {
    pub app: String,
    /// The upstream's release that ran it.
    pub version: ReleaseVersion,
    pub image: String,
    pub procfile: BTreeMap<String, String>,
    pub commit: Option<String>,
}

/// Where a promotion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionStatus {
    /// Waiting for another person's approval.
    Pending,
    /// Released in the target.
    Done,
    Rejected,
    /// A newer promotion to the same app replaced it before anyone decided.
    Superseded,
}

impl PromotionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromotionStatus::Pending => "pending",
            PromotionStatus::Done => "done",
            PromotionStatus::Rejected => "rejected",
            PromotionStatus::Superseded => "superseded",
        }
    }

    fn parse(text: &str) -> Option<PromotionStatus> {
        [
            PromotionStatus::Pending,
            PromotionStatus::Done,
            PromotionStatus::Rejected,
            PromotionStatus::Superseded,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A promotion asked for: what, from where, to where, by whom, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// Small and platform-wide: `slip promotions:approve 3`.
    pub number: u64,
    pub pipeline: String,
    pub source_app: String,
    pub source_version: ReleaseVersion,
    pub image: String,
    pub commit: Option<String>,
    pub target_app: String,
    pub status: PromotionStatus,
    pub requested_by: String,
    pub requested_at: OffsetDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    /// The target's release it made.
    pub release: Option<ReleaseVersion>,
}

const PROMOTION_SELECT: &str = "SELECT pr.number, p.name AS pipeline, pr.source_app, pr.source_version, \
     pr.image, pr.commit_sha, a.name AS target_app, pr.status, ru.username AS requested_by, \
     pr.requested_at, du.username AS decided_by, pr.decided_at, pr.release_version, \
     pr.requested_by AS requester_id, pr.procfile \
     FROM promotions pr JOIN pipelines p ON p.id = pr.pipeline_id \
     JOIN apps a ON a.id = pr.target_app_id JOIN users ru ON ru.id = pr.requested_by \
     LEFT JOIN users du ON du.id = pr.decided_by";

#[derive(sqlx::FromRow)]
struct PromotionRow {
    number: i64,
    pipeline: String,
    source_app: String,
    source_version: i64,
    image: String,
    commit_sha: Option<String>,
    target_app: String,
    status: String,
    requested_by: String,
    requested_at: OffsetDateTime,
    decided_by: Option<String>,
    decided_at: Option<OffsetDateTime>,
    release_version: Option<i64>,
    requester_id: Uuid,
    procfile: String,
}

fn version(n: i64) -> Result<ReleaseVersion> {
    u32::try_from(n)
        .ok()
        .and_then(ReleaseVersion::new)
        .ok_or_else(|| Error::corrupt(format!("release version {n}")))
}

impl PromotionRow {
    fn promotion(&self) -> Result<Promotion> {
        Ok(Promotion {
            number: u64::try_from(self.number).map_err(Error::corrupt)?,
            pipeline: self.pipeline.clone(),
            source_app: self.source_app.clone(),
            source_version: version(self.source_version)?,
            image: self.image.clone(),
            commit: self.commit_sha.clone(),
            target_app: self.target_app.clone(),
            status: PromotionStatus::parse(&self.status)
                .ok_or_else(|| Error::corrupt(format!("promotion status {:?}", self.status)))?,
            requested_by: self.requested_by.clone(),
            requested_at: self.requested_at,
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at,
            release: self.release_version.map(version).transpose()?,
        })
    }

    fn pinned(&self) -> Result<PinnedBuild> {
        Ok(PinnedBuild {
            app: self.source_app.clone(),
            version: version(self.source_version)?,
            image: self.image.clone(),
            procfile: serde_json::from_str(&self.procfile).map_err(Error::corrupt)?,
            commit: self.commit_sha.clone(),
        })
    }
}

/// Who a promoted release is by: the person who asked for it.
struct Requester {
    id: Uuid,
    username: String,
}

/// Why a promotion to `target` must wait — a release of it deploying, or a push building —
/// if one must. Read under the target's row lock, so nothing starts meanwhile.
macro_rules! deploy_under_way {
    ($tx:expr, $target:expr) => {{
        let busy: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, status FROM releases \
             WHERE app_id = $1 AND status IN ('pending', 'deploying') ORDER BY version DESC LIMIT 1",
        )
        .bind($target.id)
        .fetch_optional(&mut *$tx)
        .await?;
        let pushing: Option<(Uuid,)> =
            sqlx::query_as("SELECT id FROM builds WHERE app_id = $1 AND status = 'running' LIMIT 1")
                .bind($target.id)
                .fetch_optional(&mut *$tx)
                .await?;
        match (busy, pushing) {
            (Some((busy, status)), _) => Some(format!(
                "{} has a deploy under way (v{busy} is {status}): promote again when it has finished",
                $target.name
            )),
            (None, Some(_)) => Some(format!(
                "{} has a build running: promote again when its push has finished",
                $target.name
            )),
            (None, None) => None,
        }
    }};
}

/// Numbers a promotion and records it, its build pinned: evaluates to its number.
macro_rules! insert_promotion {
    ($tx:expr, $pipeline:expr, $pinned:expr, $target:expr, $status:expr, $actor:expr, $release:expr) => {{
        let pinned: &PinnedBuild = $pinned;
        let status: PromotionStatus = $status;
        let release: Option<ReleaseVersion> = $release;
        let number: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'promotion' RETURNING value",
        )
        .fetch_one(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO promotions (id, number, pipeline_id, source_app, source_version, image, procfile, \
             commit_sha, target_app_id, status, requested_by, requested_at, release_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(new_id())
        .bind(number)
        .bind($pipeline)
        .bind(&pinned.app)
        .bind(i64::from(pinned.version.get()))
        .bind(&pinned.image)
        .bind(serde_json::to_string(&pinned.procfile).map_err(Error::corrupt)?)
        .bind(pinned.commit.as_deref())
        .bind($target.id)
        .bind(status.as_str())
        .bind($actor.id)
        .bind(now())
        .bind(release.map(|v| i64::from(v.get())))
        .execute(&mut *$tx)
        .await?;
        number
    }};
}

/// Decides pending promotion `number` (`done` or `rejected`) as `actor`: refused when someone
/// decided it meanwhile, so each promotion is decided once.
macro_rules! decide {
    ($tx:expr, $number:expr, $status:literal, $actor:expr) => {{
        let decided = sqlx::query(concat!(
            "UPDATE promotions SET status = '",
            $status,
            "', decided_by = $2, decided_at = $3 WHERE number = $1 AND status = 'pending'"
        ))
        .bind(i64::try_from($number).map_err(Error::corrupt)?)
        .bind($actor.id)
        .bind(now())
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if decided == 0 {
            return Err(Error::Conflict(format!(
                "promotion #{} was decided a moment ago: see `slip promotions`",
                $number
            )));
        }
    }};
}

/// Makes, in the target, a build of the pinned one and its release with the target's own
/// config; refused while the target has a deploy or a push under way. Evaluates to the
/// release's version. Runs inside the caller's transaction, after nothing else has locked the
/// target's row.
macro_rules! release_promoted {
    ($tx:expr, $target:expr, $pinned:expr, $actor:expr, $approved_by:expr) => {{
        let target = $target;
        let pinned: &PinnedBuild = $pinned;
        // Takes the target's row lock first: pushes, config changes and rollbacks take it too,
        // so nothing starts a deploy between this check and the commit.
        let version = next_version!(&mut *$tx, target);
        if let Some(why) = deploy_under_way!(&mut *$tx, target) {
            return Err(Error::Conflict(why));
        }
        let build = new_id();
        let from = format!("{} {}", pinned.app, pinned.version);
        sqlx::query(
            "INSERT INTO builds (id, app_id, commit_sha, status, procfile, image, created_by, created_at, finished_at, promoted_from) \
             VALUES ($1, $2, $3, 'succeeded', $4, $5, $6, $7, $7, $8)",
        )
        .bind(build)
        .bind(target.id)
        .bind(pinned.commit.as_deref())
        .bind(serde_json::to_string(&pinned.procfile).map_err(Error::corrupt)?)
        .bind(&pinned.image)
        .bind($actor.id)
        .bind(now())
        .bind(&from)
        .execute(&mut *$tx)
        .await?;
        // The first build with a web process gets one, as a push's does.
        if pinned.procfile.contains_key("web") {
            sqlx::query(
                "INSERT INTO formation (app_id, process_type, count) VALUES ($1, 'web', 1) \
                 ON CONFLICT (app_id, process_type) DO NOTHING",
            )
            .bind(target.id)
            .execute(&mut *$tx)
            .await?;
        }
        let latest: Latest = latest!(&mut *$tx, target);
        let config: BTreeMap<String, String> =
            serde_json::from_str(&latest.config).map_err(Error::corrupt)?;
        let summary = ReleaseCause::Promote {
            from_app: pinned.app.clone(),
            from_version: pinned.version,
            commit: pinned.commit.clone(),
            approved_by: $approved_by,
        }
        .summary(&$actor.username);
        insert_release!(&mut *$tx, target, version, Some(build), &config, &summary, $actor);
        version
    }};
}

/// An app a promotion goes to, as the macros need it.
struct Target {
    id: Uuid,
    name: AppName,
}

/// What a release that has just succeeded promotes by itself. When its app's stage
/// auto-promotes and the release runs a new build (not a config change's or a rollback's),
/// that build goes to every app of the next stage with apps — unless that stage is
/// protected, or the app is mid-deploy, which the audit trail records instead. Runs in the
/// transaction that marks the release succeeded, so it happens once, crash or not. Evaluates
/// to whether it queued a deploy.
macro_rules! auto_promote {
    ($tx:expr, $app:expr, $version:expr) => {{
        let app: &App = $app;
        let version: ReleaseVersion = $version;
        let mut queued = false;
        let place: Option<(Uuid, String, bool)> = sqlx::query_as(
            "SELECT pa.pipeline_id, pa.stage, ps.auto_promote FROM pipeline_apps pa \
             JOIN pipeline_stages ps ON ps.pipeline_id = pa.pipeline_id AND ps.stage = pa.stage \
             WHERE pa.app_id = $1",
        )
        .bind(app.id)
        .fetch_optional(&mut *$tx)
        .await?;
        if let Some((pipeline, stage, true)) = place {
            let stage = domain::Stage::parse(&stage)?;
            type Source = (
                Option<Uuid>,
                Option<String>,
                Option<String>,
                Option<String>,
                Uuid,
                String,
            );
            let (build, image, procfile, commit, actor_id, actor_name): Source = sqlx::query_as(
                "SELECT r.build_id, b.image, b.procfile, b.commit_sha, r.created_by, u.username \
                 FROM releases r LEFT JOIN builds b ON b.id = r.build_id \
                 JOIN users u ON u.id = r.created_by WHERE r.app_id = $1 AND r.version = $2",
            )
            .bind(app.id)
            .bind(i64::from(version.get()))
            .fetch_one(&mut *$tx)
            .await?;
            let earlier: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM releases WHERE app_id = $1 AND build_id = $2 AND version < $3",
            )
            .bind(app.id)
            .bind(build)
            .bind(i64::from(version.get()))
            .fetch_one(&mut *$tx)
            .await?;
            let members: Vec<(Uuid, String, String)> = sqlx::query_as(
                "SELECT a.id, a.name, pa.stage FROM pipeline_apps pa JOIN apps a ON a.id = pa.app_id \
                 WHERE pa.pipeline_id = $1 ORDER BY a.name",
            )
            .bind(pipeline)
            .fetch_all(&mut *$tx)
            .await?;
            let next = stage
                .later()
                .find(|s| members.iter().any(|(_, _, m)| m == s.as_str()));
            if let (Some(_), Some(image), Some(procfile), 0, Some(next)) =
                (build, image, procfile, earlier, next)
            {
                let protected: bool = sqlx::query_scalar(
                    "SELECT protected FROM pipeline_stages WHERE pipeline_id = $1 AND stage = $2",
                )
                .bind(pipeline)
                .bind(next.as_str())
                .fetch_one(&mut *$tx)
                .await?;
                let actor = Requester {
                    id: actor_id,
                    username: actor_name,
                };
                let pinned = PinnedBuild {
                    app: app.name.to_string(),
                    version,
                    image,
                    procfile: serde_json::from_str(&procfile).map_err(Error::corrupt)?,
                    commit,
                };
                if protected {
                    let detail = format!(
                        "{version}: {next} is protected; promote it with `slip pipelines:promote -a {}`",
                        app.name
                    );
                    record_event!(&mut *$tx, app: app.name.as_str(), actor: "slipway", action: "pipeline.auto-promote-skipped", detail: detail)?;
                }
                for (id, name, _) in members.iter().filter(|m| !protected && m.2 == next.as_str()) {
                    let target = Target {
                        id: *id,
                        name: AppName::parse(name)?,
                    };
                    // The target's row lock first, as every change of its releases takes it.
                    sqlx::query("UPDATE apps SET last_version = last_version WHERE id = $1")
                        .bind(target.id)
                        .execute(&mut *$tx)
                        .await?;
                    if let Some(why) = deploy_under_way!(&mut *$tx, &target) {
                        let detail = format!("{version} to {}: {why}", target.name);
                        record_event!(&mut *$tx, app: app.name.as_str(), actor: "slipway", action: "pipeline.auto-promote-skipped", detail: detail)?;
                        continue;
                    }
                    let released = release_promoted!($tx, &target, &pinned, &actor, None);
                    let number = insert_promotion!(
                        $tx,
                        pipeline,
                        &pinned,
                        &target,
                        PromotionStatus::Done,
                        &actor,
                        Some(released)
                    );
                    let detail = format!(
                        "#{number} {} {version} to {} {released} (auto-promote)",
                        app.name, target.name
                    );
                    record_event!(&mut *$tx, app: target.name.as_str(), actor: &actor.username, action: "promotion.auto", detail: detail)?;
                    let deploy = WorkKind::Deploy {
                        version: released,
                        awaits_ref: false,
                    };
                    enqueue_on!(&mut *$tx, target.name, deploy)?;
                    queued = true;
                }
            }
        }
        queued
    }};
}

impl Store {
    /// What a promotion from `source` would deploy: the build its current release runs.
    pub async fn promotable_build(&self, source: &App) -> Result<PinnedBuild> {
        let nothing = || {
            Error::Conflict(format!(
                "{} has no deployed build to promote: deploy it first (`git push`)",
                source.name
            ))
        };
        let current = self.current_version(source).await?.ok_or_else(nothing)?;
        let release = self.release(source, current).await?;
        let build = self
            .build(source, release.build.ok_or_else(nothing)?)
            .await?;
        Ok(PinnedBuild {
            app: source.name.to_string(),
            version: current,
            image: build.image.ok_or_else(nothing)?,
            procfile: build.procfile,
            commit: build.commit,
        })
    }

    /// Promotes `pinned` to `target`: released at once (the answer's `release`), or, when
    /// `protected`, recorded as pending another person's approval, replacing any promotion
    /// to `target` still pending.
    pub async fn promote(
        &self,
        pipeline: &Pipeline,
        target: &App,
        pinned: &PinnedBuild,
        actor: &User,
        protected: bool,
    ) -> Result<Promotion> {
        let number = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let (status, release, superseded) = if protected {
                let superseded: Vec<i64> = sqlx::query_scalar(
                    "UPDATE promotions SET status = 'superseded', decided_at = $2 \
                     WHERE target_app_id = $1 AND status = 'pending' RETURNING number",
                )
                .bind(target.id)
                .bind(now())
                .fetch_all(&mut *tx)
                .await?;
                (PromotionStatus::Pending, None, superseded)
            } else {
                let version = release_promoted!(tx, target, pinned, actor, None);
                (PromotionStatus::Done, Some(version), Vec::new())
            };
            let number = insert_promotion!(tx, pipeline.id, pinned, target, status, actor, release);
            for old in superseded {
                let detail = format!("#{old} replaced by #{number}");
                record_event!(&mut *tx, app: target.name.as_str(), actor: &actor.username, action: "promotion.supersede", detail: detail)?;
            }
            let (action, detail) = match release {
                Some(version) => (
                    "promotion.deploy",
                    format!(
                        "#{number} {} {} to {} {version}",
                        pinned.app, pinned.version, target.name
                    ),
                ),
                None => (
                    "promotion.request",
                    format!(
                        "#{number} {} {} to {}: waits for another person's approval",
                        pinned.app, pinned.version, target.name
                    ),
                ),
            };
            record_event!(&mut *tx, app: target.name.as_str(), actor: &actor.username, action: action, detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(number)
        })?;
        self.promotion(u64::try_from(number).map_err(Error::corrupt)?)
            .await
    }

    /// Approves pending promotion `number` and releases it in its target. Its requester may
    /// not approve it, admin or not (the refusal is recorded); a deploy under way in the
    /// target refuses it, and it stays pending. Whether `approver` may deploy to the target
    /// is the caller's to check.
    pub async fn approve_promotion(&self, number: u64, approver: &User) -> Result<Promotion> {
        let row = self.promotion_row(number).await?;
        let promotion = row.promotion()?;
        undecided(&promotion)?;
        if row.requester_id == approver.id {
            let detail = format!("#{number}: {} asked for it", approver.username);
            on_db!(self, write, |pool| {
                record_event!(pool, app: promotion.target_app.as_str(), actor: &approver.username, action: "promotion.approve-refused", detail: detail)
                    .map(|_| ())
            })?;
            return Err(Error::Forbidden(format!(
                "you asked for promotion #{number}: another collaborator of {} must approve it",
                promotion.target_app
            )));
        }
        let target = self.app(&promotion.target_app).await?;
        let pinned = row.pinned()?;
        let requester = Requester {
            id: row.requester_id,
            username: promotion.requested_by.clone(),
        };
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            decide!(tx, number, "done", approver);
            let version = release_promoted!(
                tx,
                &target,
                &pinned,
                &requester,
                Some(approver.username.clone())
            );
            sqlx::query("UPDATE promotions SET release_version = $2 WHERE number = $1")
                .bind(i64::try_from(number).map_err(Error::corrupt)?)
                .bind(i64::from(version.get()))
                .execute(&mut *tx)
                .await?;
            let detail = format!(
                "#{number} {} {} to {} {version}, asked for by {}",
                pinned.app, pinned.version, target.name, requester.username
            );
            record_event!(&mut *tx, app: target.name.as_str(), actor: &approver.username, action: "promotion.approve", detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.promotion(number).await
    }

    /// Rejects pending promotion `number` (its requester may: that withdraws it).
    pub async fn reject_promotion(&self, number: u64, actor: &User) -> Result<Promotion> {
        let promotion = self.promotion(number).await?;
        undecided(&promotion)?;
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            decide!(tx, number, "rejected", actor);
            let detail = format!(
                "#{number} {} {} to {}",
                promotion.source_app, promotion.source_version, promotion.target_app
            );
            record_event!(&mut *tx, app: promotion.target_app.as_str(), actor: &actor.username, action: "promotion.reject", detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.promotion(number).await
    }

    /// Promotion `number`.
    pub async fn promotion(&self, number: u64) -> Result<Promotion> {
        self.promotion_row(number).await?.promotion()
    }

    async fn promotion_row(&self, number: u64) -> Result<PromotionRow> {
        let sql = sqlx::AssertSqlSafe(format!("{PROMOTION_SELECT} WHERE pr.number = $1"));
        let number_i64 = i64::try_from(number).map_err(Error::corrupt)?;
        let row: Option<PromotionRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(number_i64)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| Error::NotFound(format!("promotion #{number}")))
    }

    /// A pipeline's promotions, newest first.
    pub async fn promotions(&self, pipeline: &Pipeline, limit: u32) -> Result<Vec<Promotion>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{PROMOTION_SELECT} WHERE pr.pipeline_id = $1 ORDER BY pr.number DESC LIMIT $2"
        ));
        let rows: Vec<PromotionRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(pipeline.id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        rows.iter().map(PromotionRow::promotion).collect()
    }
}

/// Refuses a promotion someone has decided already.
fn undecided(promotion: &Promotion) -> Result<()> {
    match promotion.status {
        PromotionStatus::Pending => Ok(()),
        status => Err(Error::Conflict(format!(
            "promotion #{} is {} already: nothing to decide",
            promotion.number,
            status.as_str()
        ))),
    }
}

impl Store {
    /// Marks a release succeeded and, the first time, promotes it onward when its pipeline
    /// stage auto-promotes — in one transaction, so that happens exactly once.
    pub(crate) async fn release_succeeded(&self, app: &App, version: ReleaseVersion) -> Result<()> {
        let queued = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            // A write first: it takes the app's row lock (PostgreSQL) or the database's write
            // lock (SQLite) before anything is read, so no other writer slips in between.
            sqlx::query("UPDATE apps SET last_version = last_version WHERE id = $1")
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            let before: Option<String> = sqlx::query_scalar(
                "SELECT status FROM releases WHERE app_id = $1 AND version = $2",
            )
            .bind(app.id)
            .bind(i64::from(version.get()))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(before) = before else {
                return Err(Error::NotFound(format!(
                    "release {version} of {}",
                    app.name
                )));
            };
            sqlx::query(
                "UPDATE releases SET status = 'succeeded', reason = NULL, deploy_finished_at = $3 \
                 WHERE app_id = $1 AND version = $2",
            )
            .bind(app.id)
            .bind(i64::from(version.get()))
            .bind(now())
            .execute(&mut *tx)
            .await?;
            let queued =
                before != ReleaseStatus::Succeeded.as_str() && auto_promote!(tx, app, version);
            tx.commit().await?;
            Ok::<_, Error>(queued)
        })?;
        if queued {
            self.announce().await;
        }
        Ok(())
    }
}
