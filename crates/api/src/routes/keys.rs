//! The caller's SSH keys, which the gateway authenticates `git push` with.

use api_types::{AddKey, ErrorBody, SshKey};
use axum::extract::State;
use axum::http::StatusCode;
use domain::SshPublicKey;

use crate::auth::CurrentUser;
use crate::convert;
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};

#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("token" = [])),
    responses((status = 200, body = Vec<SshKey>), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: CurrentUser,
) -> Result<Json<Vec<SshKey>>, ApiError> {
    let keys = state.store.keys(&caller.user).await?;
    Ok(Json(keys.into_iter().map(convert::key).collect()))
}

/// Adds a public key. A key belongs to one user only.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", security(("token" = [])), request_body = AddKey,
    responses((status = 201, body = SshKey), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Json(body): Json<AddKey>,
) -> Result<(StatusCode, Json<SshKey>), ApiError> {
    let key = SshPublicKey::parse(&body.public_key)?;
    let key = state.store.add_key(&caller.user, &key).await?;
    Ok((StatusCode::CREATED, Json(convert::key(key))))
}

/// Removes a key, named by id, fingerprint or comment.
#[utoipa::path(delete, path = "/v1/keys/{key}", tag = "keys", security(("token" = [])),
    params(("key" = String, Path, description = "id, fingerprint or comment")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.remove_key(&caller.user, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
