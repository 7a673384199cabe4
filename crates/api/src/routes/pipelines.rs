//! Pipelines: apps in stages, each stage's gates, and what each app runs against the stage
//! before it.
//!
//! Who may do what: anyone may make a pipeline; its maker and admins manage it (add apps,
//! set gates, destroy it), and adding an app also needs the app's ownership. Anyone who may
//! see one of its apps may see the pipeline, but only the apps they may see are named.

use api_types::{
    AddPipelineApp, BehindUpstream, CreatePipeline, ErrorBody, Event, Pipeline as WirePipeline,
    PipelineApp, PipelineStage, PipelineSummary, StageGatesPatch,
};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AppName, Behind, PipelineName, Stage};
use store::{Access, Pipeline, User};

use super::Page;
use crate::auth::{CurrentUser, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};

/// How many of an upstream's releases "behind" looks back over.
const HISTORY: u32 = 100;

/// The pipelines the caller may see.
#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines", security(("token" = [])),
    responses((status = 200, body = Vec<PipelineSummary>), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: CurrentUser,
) -> Result<Json<Vec<PipelineSummary>>, ApiError> {
    let pipelines = state.store.pipelines_for(&caller.user).await?;
    Ok(Json(
        pipelines
            .into_iter()
            .map(|(p, apps)| PipelineSummary {
                name: p.name.to_string(),
                owner: p.owner,
                apps,
                created_at: p.created_at,
            })
            .collect(),
    ))
}

/// Makes a pipeline, every stage open; the caller manages it.
#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", security(("token" = [])),
    request_body = CreatePipeline,
    responses((status = 201, body = WirePipeline), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Json(body): Json<CreatePipeline>,
) -> Result<(StatusCode, Json<WirePipeline>), ApiError> {
    let name = PipelineName::parse(&body.name)?;
    let pipeline = state.store.create_pipeline(&name, &caller.user).await?;
    Ok((
        StatusCode::CREATED,
        Json(describe(&state, &caller.user, &pipeline).await?),
    ))
}

/// The pipeline's stages, their gates, and each visible app's current release and how far
/// behind the stage before it it is.
#[utoipa::path(get, path = "/v1/pipelines/{pipeline}", tag = "pipelines", security(("token" = [])),
    params(("pipeline" = String, Path)),
    responses((status = 200, body = WirePipeline), (status = 404, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<WirePipeline>, ApiError> {
    let pipeline = visible(&state, &caller.user, &name).await?;
    Ok(Json(describe(&state, &caller.user, &pipeline).await?))
}

/// Destroys the pipeline; its apps stay, in no pipeline.
#[utoipa::path(delete, path = "/v1/pipelines/{pipeline}", tag = "pipelines", security(("token" = [])),
    params(("pipeline" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn destroy(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let pipeline = managed(&state, &caller.user, &name).await?;
    state
        .store
        .destroy_pipeline(&pipeline, &caller.user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts an app in the pipeline at a stage: for the pipeline's manager who owns the app.
#[utoipa::path(post, path = "/v1/pipelines/{pipeline}/apps", tag = "pipelines", security(("token" = [])),
    params(("pipeline" = String, Path)), request_body = AddPipelineApp,
    responses((status = 201, body = WirePipeline), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add_app(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    body: Result<Json<AddPipelineApp>, ApiError>,
) -> Result<(StatusCode, Json<WirePipeline>), ApiError> {
    let pipeline = managed(&state, &caller.user, &name).await?;
    let Json(body) = body?;
    let app = authorize(&state, &caller.user, &body.app, Need::Own).await?;
    let stage = Stage::parse(&body.stage)?;
    state
        .store
        .add_to_pipeline(&pipeline, &app, stage, &caller.user)
        .await?;
    let pipeline = state.store.pipeline(pipeline.name.as_str()).await?;
    Ok((
        StatusCode::CREATED,
        Json(describe(&state, &caller.user, &pipeline).await?),
    ))
}

/// Takes an app out of the pipeline: for the pipeline's manager, or the app's owner.
#[utoipa::path(delete, path = "/v1/pipelines/{pipeline}/apps/{app}", tag = "pipelines", security(("token" = [])),
    params(("pipeline" = String, Path), ("app" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_app(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path((name, app)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let pipeline = visible(&state, &caller.user, &name).await?;
    let app = authorize(&state, &caller.user, &app, Need::Read).await?;
    if !pipeline.apps.iter().any(|(a, _)| *a == app.name) {
        return Err(ApiError::NotFound(format!(
            "{} is not in pipeline {}: see `slip pipelines:info {}`",
            app.name, pipeline.name, pipeline.name
        )));
    }
    let (_, access) = state
        .store
        .app_access(app.name.as_str(), &caller.user)
        .await?;
    if !(manages(&caller.user, &pipeline) || access == Access::Owner) {
        return Err(ApiError::Forbidden(format!(
            "only the owner of {}, or of pipeline {}, may take it out",
            app.name, pipeline.name
        )));
    }
    state.store.remove_from_pipeline(&app, &caller.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a stage's gates: protected (a promotion to it waits for another person's approval)
/// and auto-promote (a successful deploy in it promotes onward by itself).
#[utoipa::path(patch, path = "/v1/pipelines/{pipeline}/stages/{stage}", tag = "pipelines", security(("token" = [])),
    params(("pipeline" = String, Path), ("stage" = String, Path)), request_body = StageGatesPatch,
    responses((status = 200, body = WirePipeline), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn set_stage(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path((name, stage)): Path<(String, String)>,
    body: Result<Json<StageGatesPatch>, ApiError>,
) -> Result<Json<WirePipeline>, ApiError> {
    let pipeline = managed(&state, &caller.user, &name).await?;
    let stage = Stage::parse(&stage)?;
    let Json(body) = body?;
    state
        .store
        .set_stage_gates(
            &pipeline,
            stage,
            body.protected,
            body.auto_promote,
            &caller.user,
        )
        .await?;
    let pipeline = state.store.pipeline(pipeline.name.as_str()).await?;
    Ok(Json(describe(&state, &caller.user, &pipeline).await?))
}

/// The pipeline's audit trail, newest first: its own actions and its visible apps'.
#[utoipa::path(get, path = "/v1/pipelines/{pipeline}/events", tag = "pipelines", security(("token" = [])),
    params(("pipeline" = String, Path), Page),
    responses((status = 200, body = Vec<Event>), (status = 404, body = ErrorBody)))]
pub(super) async fn events(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let pipeline = visible(&state, &caller.user, &name).await?;
    let Query(page) = page?;
    let shown = visible_apps(&state, &caller.user, &pipeline).await?;
    let events = state
        .store
        .pipeline_events(pipeline.name.as_str(), page.limit())
        .await?;
    Ok(Json(
        events
            .into_iter()
            // An app no longer in the pipeline (or never visible) is named only to those
            // who may see it.
            .filter(|e| {
                e.app.as_ref().is_none_or(|app| {
                    shown.iter().any(|a| a.as_str() == app)
                        || caller.user.admin
                        || e.actor == caller.user.username
                })
            })
            .map(super::events::event)
            .collect(),
    ))
}

/// The pipeline `name`, if the caller may see it; otherwise the answer a missing one gets.
pub(super) async fn visible(
    state: &ApiState,
    user: &User,
    name: &str,
) -> Result<Pipeline, ApiError> {
    let missing = || {
        ApiError::NotFound(format!(
            "no pipeline named {name}: see yours with `slip pipelines`"
        ))
    };
    let pipeline = match state.store.pipeline(name).await {
        Ok(pipeline) => pipeline,
        Err(store::Error::NotFound(_)) => return Err(missing()),
        Err(err) => return Err(err.into()),
    };
    if manages(user, &pipeline) || !visible_apps(state, user, &pipeline).await?.is_empty() {
        Ok(pipeline)
    } else {
        Err(missing())
    }
}

/// The pipeline `name`, if the caller manages it.
async fn managed(state: &ApiState, user: &User, name: &str) -> Result<Pipeline, ApiError> {
    let pipeline = visible(state, user, name).await?;
    if manages(user, &pipeline) {
        Ok(pipeline)
    } else {
        Err(ApiError::Forbidden(format!(
            "only {}, who made pipeline {}, or an admin may change it",
            pipeline.owner, pipeline.name
        )))
    }
}

fn manages(user: &User, pipeline: &Pipeline) -> bool {
    user.admin || pipeline.owner == user.username
}

/// The pipeline's apps the caller may see.
async fn visible_apps(
    state: &ApiState,
    user: &User,
    pipeline: &Pipeline,
) -> Result<Vec<AppName>, ApiError> {
    let mut shown = Vec::new();
    for (app, _) in &pipeline.apps {
        let (_, access) = state.store.app_access(app.as_str(), user).await?;
        if access.permits(user.admin, Need::Read) {
            shown.push(app.clone());
        }
    }
    Ok(shown)
}

/// The pipeline as the caller may see it.
async fn describe(
    state: &ApiState,
    user: &User,
    pipeline: &Pipeline,
) -> Result<WirePipeline, ApiError> {
    let shown = visible_apps(state, user, pipeline).await?;
    // Every app's succeeded releases, newest first, with their images and commits.
    let mut history = Vec::new();
    for (name, stage) in &pipeline.apps {
        let app = state.store.app(name.as_str()).await?;
        let released = state.store.released_builds(&app, HISTORY).await?;
        history.push((name, *stage, released));
    }
    let mut stages = Vec::new();
    for gates in &pipeline.stages {
        // The stage before this one that has apps: what this stage is behind.
        let upstream: Vec<_> = history
            .iter()
            .filter(|(_, stage, _)| *stage < gates.stage)
            .map(|(_, stage, _)| *stage)
            .max()
            .map(|before| history.iter().filter(|h| h.1 == before).collect())
            .unwrap_or_default();
        let mut apps = Vec::new();
        for (name, _, released) in history.iter().filter(|h| h.1 == gates.stage) {
            if !shown.contains(name) {
                continue;
            }
            let current = released.first();
            let image = current.and_then(|(_, image, _)| image.clone());
            let commit = current.and_then(|(_, _, commit)| commit.clone());
            let mut behind = Vec::new();
            for (up, _, up_released) in upstream.iter().filter(|u| shown.contains(u.0)) {
                let images: Vec<Option<&str>> =
                    up_released.iter().map(|(_, i, _)| i.as_deref()).collect();
                let releases = match domain::behind(&images, image.as_deref()) {
                    Behind::UpToDate => Some(0),
                    Behind::Releases(n) => Some(n),
                    Behind::Unrelated => None,
                };
                let up_commit = up_released.first().and_then(|(_, _, c)| c.as_deref());
                let commits = match (up_commit, commit.as_deref()) {
                    (Some(from), Some(to)) => commits_behind(state, up, from, to).await,
                    _ => None,
                };
                behind.push(BehindUpstream {
                    upstream: up.to_string(),
                    releases,
                    commits,
                });
            }
            apps.push(PipelineApp {
                name: name.to_string(),
                release: current.map(|(v, _, _)| v.get()),
                commit,
                image,
                behind,
            });
        }
        stages.push(PipelineStage {
            stage: gates.stage.to_string(),
            protected: gates.protected,
            auto_promote: gates.auto_promote,
            apps,
        });
    }
    Ok(WirePipeline {
        name: pipeline.name.to_string(),
        owner: pipeline.owner.clone(),
        stages,
        hidden_apps: u32::try_from(pipeline.apps.len() - shown.len()).unwrap_or(u32::MAX),
    })
}

/// How many commits `from` is ahead of `to` in `upstream`'s repository, when known.
async fn commits_behind(
    _state: &ApiState,
    _upstream: &AppName,
    _from: &str,
    _to: &str,
) -> Option<u32> {
    None
}
