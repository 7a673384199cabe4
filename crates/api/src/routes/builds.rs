//! Builds: what each push produced.

use std::collections::BTreeMap;

use api_types::{Build, CreateBuild, ErrorBody, Release};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{ImageRef, Procfile};
use uuid::Uuid;

use super::Page;
use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};
use crate::{control, convert};

/// The app's builds, newest first.
#[utoipa::path(get, path = "/v1/apps/{app}/builds", tag = "builds", security(("token" = [])),
    params(("app" = String, Path), Page),
    responses((status = 200, body = Vec<Build>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<Build>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let Query(page) = page?;
    let builds = state.store.builds(&app, page.limit()).await?;
    Ok(Json(builds.into_iter().map(convert::build).collect()))
}

#[utoipa::path(get, path = "/v1/apps/{app}/builds/{id}", tag = "builds", security(("token" = [])),
    params(("app" = String, Path), ("id" = Uuid, Path)),
    responses((status = 200, body = Build), (status = 404, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Build>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let id =
        Uuid::parse_str(&id).map_err(|_| ApiError::Invalid(format!("invalid build id {id:?}")))?;
    let mut build = convert::build(state.store.build(&app, id).await?);
    build.log = Some(state.store.build_log(&app, id).await?);
    Ok(Json(build))
}

/// Deploys an image: one from a registry by reference, or one of the local store that this
/// app's own builds made (by digest). Records it as a build with the given Procfile and makes
/// a release of it with the app's current config.
#[utoipa::path(post, path = "/v1/apps/{app}/builds", tag = "builds", security(("token" = [])),
    params(("app" = String, Path)), request_body = CreateBuild,
    responses((status = 201, body = Release), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<CreateBuild>, ApiError>,
) -> Result<(StatusCode, Json<Release>), ApiError> {
    let app = authorize(&state, &caller, &name, Need::Deploy).await?;
    let Json(body) = body?;
    let image = ImageRef::parse(body.image.trim())?;
    // A digest names an image of the local store, where every app's images are: only one
    // this app's own builds made may be deployed. Any other gets the same answer, whether or
    // not it exists, so the answer tells nothing about other apps.
    if let Some(digest) = image.digest() {
        let built = state.store.built_images(&app).await?;
        let ours = built
            .iter()
            .filter_map(|i| ImageRef::parse(i).ok())
            .any(|i| i.digest() == Some(digest));
        if !ours {
            return Err(ApiError::NotFound(format!(
                "no build of {} made the image {digest}; deploy an image this app built, or one from a registry by tag",
                app.name
            )));
        }
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
    let source = store::BuildSource::Image(image.to_string());
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
    control::deploy(&state, &app.name, release.version).await?;
    Ok((StatusCode::CREATED, Json(convert::release(release))))
}

/// Empties the app's build cache: the next build installs its dependencies afresh.
#[utoipa::path(delete, path = "/v1/apps/{app}/builds/cache", tag = "builds", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn purge_cache(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let cache = std::sync::Arc::clone(&state.build_cache);
    let name = app.name.clone();
    tokio::task::spawn_blocking(move || cache.purge(&name))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    tracing::info!(app = %app.name, by = %caller.user.username, "build cache purged");
    Ok(StatusCode::NO_CONTENT)
}
