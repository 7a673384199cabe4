//! Custom domains an app answers to, besides `<app>.<platform domain>`.

use api_types::{AddDomain, Domain, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use domain::Hostname;

use crate::auth::{CurrentUser, Need, authorize};
use crate::convert;
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};

#[utoipa::path(get, path = "/v1/apps/{app}/domains", tag = "domains", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<Domain>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Vec<Domain>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
    Ok(Json(
        state
            .store
            .domains(&app)
            .await?
            .into_iter()
            .map(convert::domain)
            .collect(),
    ))
}

/// Adds a custom domain. A domain serves one app; the platform's own domain is refused.
#[utoipa::path(post, path = "/v1/apps/{app}/domains", tag = "domains", security(("token" = [])),
    params(("app" = String, Path)), request_body = AddDomain,
    responses((status = 201, body = Domain), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    body: Result<Json<AddDomain>, ApiError>,
) -> Result<(StatusCode, Json<Domain>), ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Write).await?;
    let Json(body) = body?;
    let host = Hostname::parse(&body.domain)?;
    let platform = &state.config.domain;
    if host.as_str() == platform || host.as_str().ends_with(&format!(".{platform}")) {
        return Err(ApiError::Invalid(format!(
            "{host} is under the platform domain {platform}; apps get <app>.{platform} already"
        )));
    }
    let added = state.store.add_domain(&app, &host, &caller.user).await?;
    state.deployer.hosts_changed(&app.name).await;
    Ok((StatusCode::CREATED, Json(convert::domain(added))))
}

#[utoipa::path(delete, path = "/v1/apps/{app}/domains/{domain}", tag = "domains", security(("token" = [])),
    params(("app" = String, Path), ("domain" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path((name, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Write).await?;
    state
        .store
        .remove_domain(&app, &domain, &caller.user)
        .await?;
    state.deployer.hosts_changed(&app.name).await;
    Ok(StatusCode::NO_CONTENT)
}
