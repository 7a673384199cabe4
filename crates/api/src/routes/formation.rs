//! The formation: process counts. Scaling makes no release.

use api_types::{ErrorBody, ProcessCount, Scale};
use axum::extract::State;

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};
use crate::{actions, convert};

#[utoipa::path(get, path = "/v1/apps/{app}/formation", tag = "formation", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<ProcessCount>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Vec<ProcessCount>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let latest = state.store.latest_release(&app).await?;
    let procfile = actions::current_procfile(&state, &app, &latest).await?;
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
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<Scale>, ApiError>,
) -> Result<Json<Vec<ProcessCount>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let args: Vec<String> = body
        .counts
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    let scaled =
        actions::scale(&state, &app, &caller.user, args.iter().map(String::as_str)).await?;
    Ok(Json(convert::formation(
        scaled.counts,
        scaled.procfile.as_ref(),
    )))
}
