//! Builds: what each push produced.

use std::collections::BTreeMap;

use api_types::{Build, CreateBuild, ErrorBody, Release};
use axum::extract::State;
use axum::http::StatusCode;
use domain::Procfile;
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
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<Build>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
    let Query(page) = page?;
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
    let mut build = convert::build(state.store.build(&app, id).await?);
    build.log = Some(state.store.build_log(&app, id).await?);
    Ok(Json(build))
}

/// Deploys an image built elsewhere: records it as a build with the given Procfile and
/// makes a release of it with the app's current config.
#[utoipa::path(post, path = "/v1/apps/{app}/builds", tag = "builds", security(("token" = [])),
    params(("app" = String, Path)), request_body = CreateBuild,
    responses((status = 201, body = Release), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    body: Result<Json<CreateBuild>, ApiError>,
) -> Result<(StatusCode, Json<Release>), ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Write).await?;
    let Json(body) = body?;
    let image = body.image.trim();
    if image.is_empty()
        || image.len() > 512
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::Invalid(format!(
            "invalid image reference {:?}",
            body.image
        )));
    }
    let procfile = Procfile::parse(&body.procfile)?;
    if procfile.is_empty() {
        return Err(ApiError::Invalid(
            "the Procfile declares no process types".to_owned(),
        ));
    }
    let procfile: BTreeMap<String, String> = procfile
        .iter()
        .map(|(t, c)| (t.to_string(), c.to_owned()))
        .collect();
    let source = store::BuildSource::Image(image.to_owned());
    let build = state
        .store
        .create_build(&app, &source, &caller.user)
        .await?;
    state
        .store
        .finish_build(
            &app,
            build.id,
            store::BuildStatus::Succeeded,
            &procfile,
            None,
        )
        .await?;
    let release = state
        .store
        .release_build(&app, build.id, &caller.user)
        .await?;
    state.deployer.deploy(&app.name, release.version);
    Ok((StatusCode::CREATED, Json(convert::release(release))))
}

/// Empties the app's build cache: the next build installs its dependencies afresh.
#[utoipa::path(delete, path = "/v1/apps/{app}/builds/cache", tag = "builds", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn purge_cache(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Write).await?;
    let cache = std::sync::Arc::clone(&state.build_cache);
    let name = app.name.clone();
    tokio::task::spawn_blocking(move || cache.purge(&name))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    tracing::info!(app = %app.name, by = %caller.user.username, "build cache purged");
    Ok(StatusCode::NO_CONTENT)
}
