//! Collaborators: who besides the owner may deploy and configure an app.

use api_types::{AddCollaborator, Collaborator, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{AppCaller, Need, authorize};
use crate::convert;
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};

#[utoipa::path(get, path = "/v1/apps/{app}/perms", tag = "perms", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<Collaborator>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Vec<Collaborator>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let collaborators = state.store.collaborators(&app).await?;
    Ok(Json(
        collaborators
            .into_iter()
            .map(convert::collaborator)
            .collect(),
    ))
}

/// Adds a collaborator. Only the owner or an admin may.
#[utoipa::path(post, path = "/v1/apps/{app}/perms", tag = "perms", security(("token" = [])),
    params(("app" = String, Path)), request_body = AddCollaborator,
    responses((status = 201, body = Collaborator), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<AddCollaborator>, ApiError>,
) -> Result<(StatusCode, Json<Collaborator>), ApiError> {
    let app = authorize(&state, &caller, &name, Need::Own).await?;
    let Json(body) = body?;
    let added = state
        .store
        .add_collaborator(&app, &body.username, &caller.user)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::collaborator(added))))
}

#[utoipa::path(delete, path = "/v1/apps/{app}/perms/{username}", tag = "perms", security(("token" = [])),
    params(("app" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Own).await?;
    state
        .store
        .remove_collaborator(&app, &username, &caller.user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
