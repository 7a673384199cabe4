//! The audit trail: who did what, newest first.

use api_types::{ErrorBody, Event};
use axum::extract::State;

use super::Page;
use crate::auth::{CurrentUser, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};

/// What was done to the app, newest first: for anyone who may see the app.
#[utoipa::path(get, path = "/v1/apps/{app}/events", tag = "apps", security(("token" = [])),
    params(("app" = String, Path), Page),
    responses((status = 200, body = Vec<Event>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn app_events(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
    let Query(page) = page?;
    let events = state
        .store
        .events(Some(app.name.as_str()), page.limit())
        .await?;
    Ok(Json(events.into_iter().map(event).collect()))
}

/// Everything done on the platform, newest first: for admins only, since which apps exist
/// is nobody else's business.
#[utoipa::path(get, path = "/v1/events", tag = "platform", security(("token" = [])),
    params(Page),
    responses((status = 200, body = Vec<Event>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn all_events(
    State(state): State<ApiState>,
    caller: CurrentUser,
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<Event>>, ApiError> {
    if !caller.user.admin {
        return Err(ApiError::Forbidden(
            "only an admin sees every app's events: give an app with `slip events -a APP`"
                .to_owned(),
        ));
    }
    let Query(page) = page?;
    let events = state.store.events(None, page.limit()).await?;
    Ok(Json(events.into_iter().map(event).collect()))
}

pub(super) fn event(event: store::Event) -> Event {
    Event {
        app: event.app,
        pipeline: event.pipeline,
        actor: event.actor,
        action: event.action,
        detail: event.detail,
        created_at: event.created_at,
    }
}
