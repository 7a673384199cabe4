//! Builds: what each push produced.

use api_types::{Build, ErrorBody};
use axum::extract::State;
use uuid::Uuid;

use super::Page;
use crate::auth::{CurrentUser, Need, authorize};
use crate::convert;
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};

/// The app's builds, newest first.
#[utoipa::path(get, path = "/v1/apps/{app}/builds", tag = "builds", security(("token" = [])),
    params(("app" = String, Path), Page),
    responses((status = 200, body = Vec<Build>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Build>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
    let builds = state.store.builds(&app, page.limit()).await?;
    Ok(Json(builds.into_iter().map(convert::build).collect()))
}

#[utoipa::path(get, path = "/v1/apps/{app}/builds/{id}", tag = "builds", security(("token" = [])),
    params(("app" = String, Path), ("id" = Uuid, Path)),
    responses((status = 200, body = Build), (status = 404, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Build>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
    let id =
        Uuid::parse_str(&id).map_err(|_| ApiError::Invalid(format!("invalid build id {id:?}")))?;
    Ok(Json(convert::build(state.store.build(&app, id).await?)))
}
