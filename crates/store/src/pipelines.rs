//! Pipelines: apps in stages, and each stage's gates. An app is in at most one pipeline.

use domain::{AppName, PipelineName, ReleaseVersion, Stage};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{new_id, now, on_db, record_event};
use crate::error::conflict_on_unique;
use crate::{App, Error, Result, Store, User};

/// A pipeline, its apps by stage and its stages' gates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub id: Uuid,
    pub name: PipelineName,
    /// Who made it: they (and admins) manage it.
    pub owner: String,
    pub created_at: OffsetDateTime,
    /// Its apps and their stages, by stage, then name.
    pub apps: Vec<(AppName, Stage)>,
    /// Every stage's gates, in stage order.
    pub stages: Vec<StageGates>,
}

/// A stage's gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageGates {
    pub stage: Stage,
    /// A promotion to it waits for another person's approval.
    pub protected: bool,
    /// A successful deploy in it promotes onward by itself.
    pub auto_promote: bool,
}

impl Store {
    /// Makes the pipeline `name`, owned by `owner`, with every stage open.
    pub async fn create_pipeline(&self, name: &PipelineName, owner: &User) -> Result<Pipeline> {
        let (id, created_at) = (new_id(), now());
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO pipelines (id, name, owner_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(owner.id)
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || {
                    format!("a pipeline named {name} exists already: choose another name")
                })
            })?;
            for stage in Stage::ALL {
                sqlx::query(
                    "INSERT INTO pipeline_stages (pipeline_id, stage, protected, auto_promote) \
                     VALUES ($1, $2, FALSE, FALSE)",
                )
                .bind(id)
                .bind(stage.as_str())
                .execute(&mut *tx)
                .await?;
            }
            record_event!(&mut *tx, app: None::<&str>, actor: &owner.username, action: "pipeline.create", detail: name.as_str(), pipeline: Some(name.as_str()))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.pipeline(name.as_str()).await
    }

    /// The pipeline `name`.
    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        type Row = (Uuid, String, String, OffsetDateTime);
        let row: Option<Row> = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT p.id, p.name, u.username, p.created_at FROM pipelines p \
             JOIN users u ON u.id = p.owner_id WHERE p.name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await)?;
        let (id, name, owner, created_at) =
            row.ok_or_else(|| Error::NotFound(format!("pipeline {name}")))?;
        let apps: Vec<(String, String)> = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT a.name, pa.stage FROM pipeline_apps pa JOIN apps a ON a.id = pa.app_id \
             WHERE pa.pipeline_id = $1"
        )
        .bind(id)
        .fetch_all(pool)
        .await)?;
        let gates: Vec<(String, bool, bool)> = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT stage, protected, auto_promote FROM pipeline_stages WHERE pipeline_id = $1"
        )
        .bind(id)
        .fetch_all(pool)
        .await)?;
        let mut apps = apps
            .into_iter()
            .map(|(app, stage)| Ok((AppName::parse(&app)?, Stage::parse(&stage)?)))
            .collect::<Result<Vec<_>>>()?;
        apps.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let mut stages = gates
            .into_iter()
            .map(|(stage, protected, auto_promote)| {
                Ok(StageGates {
                    stage: Stage::parse(&stage)?,
                    protected,
                    auto_promote,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        stages.sort_by_key(|g| g.stage);
        Ok(Pipeline {
            id,
            name: PipelineName::parse(&name)?,
            owner,
            created_at,
            apps,
            stages,
        })
    }

    /// The pipelines `user` may see, by name, with how many apps each has: an admin sees
    /// all; anyone else those they made and those with an app they may see.
    pub async fn pipelines_for(&self, user: &User) -> Result<Vec<(Pipeline, u32)>> {
        let names: Vec<(String, i64)> = on_db!(self, read, |pool| {
            sqlx::query_as(
            "SELECT p.name, CAST((SELECT COUNT(*) FROM pipeline_apps pa WHERE pa.pipeline_id = p.id) AS BIGINT) \
             FROM pipelines p WHERE $1 OR p.owner_id = $2 OR EXISTS \
             (SELECT 1 FROM pipeline_apps pa JOIN apps a ON a.id = pa.app_id WHERE pa.pipeline_id = p.id \
              AND (a.owner_id = $2 OR EXISTS (SELECT 1 FROM collaborators c WHERE c.app_id = a.id AND c.user_id = $2))) \
             ORDER BY p.name"
        )
        .bind(user.admin)
        .bind(user.id)
        .fetch_all(pool)
        .await
        })?;
        let mut pipelines = Vec::with_capacity(names.len());
        for (name, apps) in names {
            let apps = u32::try_from(apps).map_err(Error::corrupt)?;
            pipelines.push((self.pipeline(&name).await?, apps));
        }
        Ok(pipelines)
    }

    /// The app's succeeded releases, newest first, each with the image and commit it ran:
    /// what a pipeline compares its stages by.
    pub async fn released_builds(
        &self,
        app: &App,
        limit: u32,
    ) -> Result<Vec<(ReleaseVersion, Option<String>, Option<String>)>> {
        let rows: Vec<(i64, Option<String>, Option<String>)> = on_db!(self, read, |pool| {
            sqlx::query_as(
            "SELECT r.version, b.image, b.commit_sha FROM releases r LEFT JOIN builds b ON b.id = r.build_id \
             WHERE r.app_id = $1 AND r.status = 'succeeded' ORDER BY r.version DESC LIMIT $2"
        )
        .bind(app.id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        })?;
        rows.into_iter()
            .map(|(version, image, commit)| {
                let version = u32::try_from(version)
                    .ok()
                    .and_then(ReleaseVersion::new)
                    .ok_or_else(|| Error::corrupt(format!("release version {version}")))?;
                Ok((version, image, commit))
            })
            .collect()
    }

    /// The name of the pipeline `app` is in, if any.
    pub async fn pipeline_of(&self, app: &App) -> Result<Option<String>> {
        let row: Option<(String,)> = on_db!(self, read, |pool| sqlx::query_as(
            "SELECT p.name FROM pipeline_apps pa JOIN pipelines p ON p.id = pa.pipeline_id \
             WHERE pa.app_id = $1"
        )
        .bind(app.id)
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|(name,)| name))
    }

    /// Puts `app` in `pipeline` at `stage`; refused while it is in a pipeline.
    pub async fn add_to_pipeline(
        &self,
        pipeline: &Pipeline,
        app: &App,
        stage: Stage,
        actor: &User,
    ) -> Result<()> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO pipeline_apps (pipeline_id, app_id, stage, added_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(pipeline.id)
            .bind(app.id)
            .bind(stage.as_str())
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || {
                    format!(
                        "{} is in a pipeline already: take it out first with `slip pipelines:remove -a {}`",
                        app.name, app.name
                    )
                })
            })?;
            let detail = format!("{} {stage}", pipeline.name);
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "pipeline.add", detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })
    }

    /// Takes `app` out of its pipeline.
    pub async fn remove_from_pipeline(&self, app: &App, actor: &User) -> Result<()> {
        let pipeline = self
            .pipeline_of(app)
            .await?
            .ok_or_else(|| Error::NotFound(format!("a pipeline with {} in it", app.name)))?;
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM pipeline_apps WHERE app_id = $1")
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "pipeline.remove", detail: pipeline.as_str(), pipeline: Some(pipeline.as_str()))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })
    }

    /// Sets a stage's gates; `None` leaves one as it is. Returns the stage's gates now.
    pub async fn set_stage_gates(
        &self,
        pipeline: &Pipeline,
        stage: Stage,
        protected: Option<bool>,
        auto_promote: Option<bool>,
        actor: &User,
    ) -> Result<StageGates> {
        let current = pipeline
            .stages
            .iter()
            .find(|g| g.stage == stage)
            .copied()
            .unwrap_or(StageGates {
                stage,
                protected: false,
                auto_promote: false,
            });
        let gates = StageGates {
            stage,
            protected: protected.unwrap_or(current.protected),
            auto_promote: auto_promote.unwrap_or(current.auto_promote),
        };
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE pipeline_stages SET protected = $3, auto_promote = $4 \
                 WHERE pipeline_id = $1 AND stage = $2",
            )
            .bind(pipeline.id)
            .bind(stage.as_str())
            .bind(gates.protected)
            .bind(gates.auto_promote)
            .execute(&mut *tx)
            .await?;
            let detail = format!(
                "{} {stage}: {}, {}",
                pipeline.name,
                if gates.protected { "protected" } else { "open" },
                if gates.auto_promote {
                    "auto-promote on"
                } else {
                    "auto-promote off"
                }
            );
            record_event!(&mut *tx, app: None::<&str>, actor: &actor.username, action: "pipeline.stage", detail: detail, pipeline: Some(pipeline.name.as_str()))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        Ok(gates)
    }

    /// Deletes the pipeline; its apps stay, in no pipeline.
    pub async fn destroy_pipeline(&self, pipeline: &Pipeline, actor: &User) -> Result<()> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM pipelines WHERE id = $1")
                .bind(pipeline.id)
                .execute(&mut *tx)
                .await?;
            record_event!(&mut *tx, app: None::<&str>, actor: &actor.username, action: "pipeline.destroy", detail: pipeline.name.as_str(), pipeline: Some(pipeline.name.as_str()))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })
    }
}
