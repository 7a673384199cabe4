//! Apps: create, list, show, change (the stack), destroy.

use api_types::{App, AppInfo, AppPatch, CreateApp, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AppName, Stack};
use rand::RngExt;

use crate::actions::{self, current_procfile};
use crate::auth::{AppCaller, CurrentUser, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};
use crate::{control, convert};

/// The apps the caller owns or collaborates on; every app for an admin.
#[utoipa::path(get, path = "/v1/apps", tag = "apps", security(("token" = [])),
    responses((status = 200, body = Vec<App>), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: CurrentUser,
) -> Result<Json<Vec<App>>, ApiError> {
    let apps = state.store.apps_for(&caller.user).await?;
    Ok(Json(
        apps.iter()
            .map(|a| convert::app(&state.config, a))
            .collect(),
    ))
}

/// Creates an app, with release v1.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", security(("token" = [])), request_body = CreateApp,
    responses((status = 201, body = App), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Json(body): Json<CreateApp>,
) -> Result<(StatusCode, Json<App>), ApiError> {
    let app = match body.name.as_deref() {
        Some(name) => create_named(&state, &caller.user, &AppName::parse(name)?).await?,
        None => create_unnamed(&state, &caller.user).await?,
    };
    control::hosts(&state, &app.name).await?;
    tracing::info!(app = %app.name, owner = %caller.user.username, "app created");
    Ok((StatusCode::CREATED, Json(convert::app(&state.config, &app))))
}

async fn create_named(
    state: &ApiState,
    owner: &store::User,
    name: &AppName,
) -> Result<store::App, ApiError> {
    // A destroyed app of this name whose processes and directories are still being removed
    // would leave them to the new one.
    if !state.store.unfinished_work(name).await?.is_empty() {
        return Err(ApiError::Conflict(format!(
            "an app named {name} is still being destroyed; try again in a moment"
        )));
    }
    Ok(state.store.create_app(name, owner).await?)
}

/// How many generated names are tried before giving up.
const NAME_ATTEMPTS: usize = 5;

/// Creates an app under a readable generated name, drawing another when one is taken.
async fn create_unnamed(state: &ApiState, owner: &store::User) -> Result<store::App, ApiError> {
    for _ in 0..NAME_ATTEMPTS {
        let name = {
            let mut rng = rand::rng();
            let (adjectives, nouns) = AppName::WORDS;
            AppName::generate(
                rng.random_range(0..adjectives),
                rng.random_range(0..nouns),
                rng.random_range(0..10_000),
            )
        };
        match create_named(state, owner, &name).await {
            Err(ApiError::Conflict(_)) => continue,
            done => return done,
        }
    }
    Err(ApiError::Conflict(
        "could not find an unused name: give the app a name with `slip create NAME`".to_owned(),
    ))
}

#[utoipa::path(get, path = "/v1/apps/{app}", tag = "apps", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = AppInfo), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<AppInfo>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let latest = state.store.latest_release(&app).await?;
    let procfile = current_procfile(&state, &app, &latest).await?;
    let formation = convert::formation(state.store.formation(&app).await?, procfile.as_ref());
    let domains = state.store.domains(&app).await?;
    let collaborators = state.store.collaborators(&app).await?;
    Ok(Json(AppInfo {
        app: convert::app(&state.config, &app),
        latest_release: Some(convert::release(latest)),
        formation,
        domains: domains.into_iter().map(convert::domain).collect(),
        collaborators: collaborators
            .into_iter()
            .map(convert::collaborator)
            .collect(),
    }))
}

/// Changes the app: its stack, from the next push on (`slip stack:set`).
#[utoipa::path(patch, path = "/v1/apps/{app}", tag = "apps", security(("token" = [])),
    params(("app" = String, Path)), request_body = AppPatch,
    responses((status = 200, body = App), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn patch(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<AppPatch>, ApiError>,
) -> Result<Json<App>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let Some(stack) = body.stack else {
        return Err(ApiError::Invalid(
            "name a change: stack (container or buildpacks)".to_owned(),
        ));
    };
    let stack = Stack::parse(&stack)?;
    let app = state.store.set_stack(&app, stack, &caller.user).await?;
    tracing::info!(app = %app.name, %stack, "stack set");
    Ok(Json(convert::app(&state.config, &app)))
}

/// Destroys the app and everything it owns: releases, builds, config, domains.
#[utoipa::path(delete, path = "/v1/apps/{app}", tag = "apps", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn destroy(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Own).await?;
    actions::destroy(&state, &app, &caller.user).await?;
    Ok(StatusCode::NO_CONTENT)
}
