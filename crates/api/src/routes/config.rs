//! Config vars. Every change that alters the config makes a release, and a deploy when the
//! app has a build.

use api_types::{Config, ConfigChanged, ConfigPatch, ErrorBody};
use axum::extract::State;
use domain::ConfigChange;
use store::ConfigOutcome;

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};
use crate::{actions, convert};

/// The app's config: that of its newest release.
#[utoipa::path(get, path = "/v1/apps/{app}/config", tag = "config", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Config), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Config>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let latest = state.store.latest_release(&app).await?;
    Ok(Json(Config {
        version: latest.version.get(),
        values: latest.config,
    }))
}

/// Sets (string) and unsets (`null`) config vars in one change.
#[utoipa::path(patch, path = "/v1/apps/{app}/config", tag = "config", security(("token" = [])),
    params(("app" = String, Path)), request_body = ConfigPatch,
    responses((status = 200, body = ConfigChanged), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn patch(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<ConfigPatch>, ApiError>,
) -> Result<Json<ConfigChanged>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    if body.values.is_empty() {
        return Err(ApiError::Invalid("no config vars given".to_owned()));
    }
    let change = ConfigChange::parse(body.values.iter().map(|(k, v)| (k.as_str(), v.as_deref())))?;
    let outcome = actions::change_config(&state, &app, &caller.user, &change).await?;
    let (release, made) = match outcome {
        ConfigOutcome::Released(release) => (release, true),
        ConfigOutcome::Unchanged(release) => (release, false),
    };
    let config = Config {
        version: release.version.get(),
        values: release.config.clone(),
    };
    Ok(Json(ConfigChanged {
        release: made.then(|| convert::release(release)),
        config,
    }))
}
