//! The formation: process counts. Scaling makes no release.

use std::collections::BTreeMap;

use api_types::{ErrorBody, ProcessCount, Scale};
use axum::extract::State;
use domain::{Formation, ProcessType};

use crate::auth::{CurrentUser, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};
use crate::{control, convert};

#[utoipa::path(get, path = "/v1/apps/{app}/formation", tag = "formation", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<ProcessCount>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Vec<ProcessCount>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
    let latest = state.store.latest_release(&app).await?;
    let procfile = current_procfile(&state, &app, &latest).await?;
    Ok(Json(convert::formation(
        state.store.formation(&app).await?,
        procfile.as_ref(),
    )))
}

/// Sets process counts. Once the app has a build, only the types it declares can be scaled.
#[utoipa::path(patch, path = "/v1/apps/{app}/formation", tag = "formation", security(("token" = [])),
    params(("app" = String, Path)), request_body = Scale,
    responses((status = 200, body = Vec<ProcessCount>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn scale(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    body: Result<Json<Scale>, ApiError>,
) -> Result<Json<Vec<ProcessCount>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Write).await?;
    let Json(body) = body?;
    let args: Vec<String> = body
        .counts
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    let changes = Formation::parse_scale(args.iter().map(String::as_str))?;
    let latest = state.store.latest_release(&app).await?;
    let procfile = current_procfile(&state, &app, &latest).await?;
    let known: Option<Vec<ProcessType>> = procfile.as_ref().map(|f| {
        f.keys()
            .filter_map(|t| ProcessType::parse(t).ok())
            .collect()
    });
    let counts = state
        .store
        .scale(&app, &changes, known.as_deref(), &caller.user)
        .await?;
    // Starts or stops processes; new web processes join the routes as they become healthy.
    if state.config.deploys {
        control::request(&state, &app.name, store::WorkKind::Scale).await?;
    }
    Ok(Json(convert::formation(counts, procfile.as_ref())))
}

/// The process types of the build the newest release runs, if it has one.
pub(super) async fn current_procfile(
    state: &ApiState,
    app: &store::App,
    latest: &store::Release,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    match latest.build {
        Some(id) => Ok(Some(state.store.build(app, id).await?.procfile)),
        None => Ok(None),
    }
}
