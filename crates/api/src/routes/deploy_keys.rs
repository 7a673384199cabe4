//! An app's deploy keys: SSH keys that may clone and push only that app, acting as the
//! user who added them (whose own access still counts).

use api_types::{AddKey, ErrorBody, SshKey};
use axum::extract::State;
use axum::http::StatusCode;
use domain::SshPublicKey;

use crate::auth::{AppCaller, Need, authorize};
use crate::convert;
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};

#[utoipa::path(get, path = "/v1/apps/{app}/deploy-keys", tag = "keys", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<SshKey>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Vec<SshKey>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let keys = state.store.deploy_keys(&app).await?;
    Ok(Json(keys.into_iter().map(convert::key).collect()))
}

/// Adds a deploy key: the owner's or an admin's to give, as a repository admin gives one
/// on GitHub. A key is someone's own or one app's, never both.
#[utoipa::path(post, path = "/v1/apps/{app}/deploy-keys", tag = "keys", security(("token" = [])),
    params(("app" = String, Path)), request_body = AddKey,
    responses((status = 201, body = SshKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<AddKey>, ApiError>,
) -> Result<(StatusCode, Json<SshKey>), ApiError> {
    let app = authorize(&state, &caller, &name, Need::Own).await?;
    let Json(body) = body?;
    let key = SshPublicKey::parse(&body.public_key)?;
    let key = state.store.add_deploy_key(&app, &caller.user, &key).await?;
    Ok((StatusCode::CREATED, Json(convert::key(key))))
}

/// Removes a deploy key, named by id, fingerprint or comment.
#[utoipa::path(delete, path = "/v1/apps/{app}/deploy-keys/{key}", tag = "keys", security(("token" = [])),
    params(("app" = String, Path), ("key" = String, Path, description = "id, fingerprint or comment")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Own).await?;
    state
        .store
        .remove_deploy_key(&app, &key, &caller.user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
