//! Releases and rollback.

use api_types::{ErrorBody, Release, ReleaseInfo, Rollback};
use axum::extract::State;
use axum::http::StatusCode;
use domain::ReleaseVersion;

use super::Page;
use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};
use crate::{actions, convert};

/// The app's releases, newest first.
#[utoipa::path(get, path = "/v1/apps/{app}/releases", tag = "releases", security(("token" = [])),
    params(("app" = String, Path), Page),
    responses((status = 200, body = Vec<Release>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<Release>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let Query(page) = page?;
    let releases = state.store.releases(&app, page.limit()).await?;
    Ok(Json(releases.into_iter().map(convert::release).collect()))
}

/// One release and the config it carries.
#[utoipa::path(get, path = "/v1/apps/{app}/releases/{version}", tag = "releases", security(("token" = [])),
    params(("app" = String, Path), ("version" = String, Path, description = "v3 or 3")),
    responses((status = 200, body = ReleaseInfo), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ReleaseInfo>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let version = ReleaseVersion::parse(&version)?;
    let release = state.store.release(&app, version).await?;
    let config = release.config.clone();
    Ok(Json(ReleaseInfo {
        release: convert::release(release),
        config,
    }))
}

/// Makes a new release with the build and config of an earlier one (by default the
/// previous successful release), and deploys it. No rebuild. Across a release whose release
/// phase ran it needs `confirm` set to the app's name.
#[utoipa::path(post, path = "/v1/apps/{app}/rollback", tag = "releases", security(("token" = [])),
    params(("app" = String, Path)), request_body = Rollback,
    responses((status = 201, body = Release), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the rollback is refused; the error says why, and its code is `confirmation_required` when `confirm` would allow it"),
        (status = 422, body = ErrorBody, description = "`confirm` is not the app's name")))]
pub(super) async fn rollback(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<Rollback>, ApiError>,
) -> Result<(StatusCode, Json<Release>), ApiError> {
    let app = authorize(&state, &caller, &name, Need::Deploy).await?;
    let Json(body) = body?;
    let target = body
        .version
        .map(|n| {
            ReleaseVersion::new(n)
                .ok_or_else(|| ApiError::Invalid("release versions start at v1".to_owned()))
        })
        .transpose()?;
    let confirmed = match body.confirm.as_deref() {
        None => false,
        Some(confirm) if confirm == app.name.as_str() => true,
        Some(confirm) => {
            return Err(ApiError::Invalid(format!(
                "--confirm {confirm} does not match the app {}; nothing was rolled back",
                app.name
            )));
        }
    };
    let release = actions::rollback(&state, &app, &caller.user, target, confirmed)
        .await
        .map_err(|err| match err {
            ApiError::ConfirmationRequired(why) => ApiError::ConfirmationRequired(format!(
                "{why}; to go ahead, add `--confirm {}`",
                app.name
            )),
            other => other,
        })?;
    Ok((StatusCode::CREATED, Json(convert::release(release))))
}
