//! Rebase: an app's image moved onto the current run image without a build.

use api_types::{ErrorBody, Rebased};
use axum::extract::State;
use domain::ReleaseVersion;
use store::WorkKind;

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};
use crate::{control, convert};

/// The longest progress line kept for the answer.
const MAX_LINE: usize = 1024;

/// Rebases the image of the app's current release onto the current run image, as Cloud
/// Native Buildpacks' `rebase` does: the run image's layers are swapped, the app's kept, and
/// no build runs. A release manager holding the image store does it (a build of the same
/// commit and a release of it, deployed as any); the answer comes once the release is made,
/// and the release's status says how its deploy goes.
#[utoipa::path(post, path = "/v1/apps/{app}/rebase", tag = "builds", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Rebased), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn rebase(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Rebased>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    if !state.config.deploys {
        return Err(ApiError::Conflict(control::NO_RUNTIME.to_owned()));
    }
    let kind = WorkKind::Rebase {
        by: caller.user.username.clone(),
    };
    let work = state.store.enqueue(&app.name, &kind).await?;
    // The work's last line says what it did.
    let mut last = String::new();
    let outcome = state
        .store
        .await_work(work, None, |line| {
            last = line.chars().take(MAX_LINE).collect();
        })
        .await?
        .expect("no deadline");
    let made = control::outcome_result(outcome)?;
    let release = match made
        .and_then(|v| u32::try_from(v).ok())
        .and_then(ReleaseVersion::new)
    {
        Some(version) => Some(convert::release(state.store.release(&app, version).await?)),
        None => None,
    };
    tracing::info!(app = %app.name, by = %caller.user.username, release = ?release.as_ref().map(|r| r.version), "rebased");
    Ok(Json(Rebased {
        message: last,
        release,
    }))
}
