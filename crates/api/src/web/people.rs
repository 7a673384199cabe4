//! Who may use the app (collaborators), the names it answers to (domains), and its settings:
//! maintenance mode, and destroying it with its name typed to confirm.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::RoutingChange;
use store::{DomainState, Need};
use time::OffsetDateTime;

use super::session::{Posted, Viewer};
use super::view::{self, Chrome, Done, Notice, Tab};
use super::{AppView, WebError};
use crate::{ApiError, ApiState, actions, convert};

pub(super) struct CollaboratorRow {
    username: String,
    added: String,
    added_iso: String,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    chrome: Chrome,
    owner: String,
    collaborators: Vec<CollaboratorRow>,
    can_own: bool,
    typed: String,
}

/// `GET /apps/{app}/access`.
pub(super) async fn access(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    access_page(&state, &viewer, &app, done.notice(), StatusCode::OK, "").await
}

async fn access_page(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    notice: Option<Notice>,
    status: StatusCode,
    typed: &str,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let collaborators = state
        .store
        .collaborators(&app.app)
        .await?
        .into_iter()
        .map(|c| CollaboratorRow {
            username: c.username,
            added: view::ago(c.added_at, now),
            added_iso: view::iso(c.added_at),
        })
        .collect();
    let page = AccessPage {
        chrome: Chrome::app(viewer, &app.app, Tab::Access).with_notice(notice),
        owner: app.app.owner.clone(),
        collaborators,
        can_own: app.can_own,
        typed: typed.to_owned(),
    };
    Ok((status, view::html(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct UserForm {
    #[serde(default)]
    username: String,
}

/// `POST /apps/{app}/access/add`: only the owner or an admin, as `slip perms:add`.
pub(super) async fn add_collaborator(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<UserForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Own).await?;
    let username = form.username.trim();
    let outcome = state
        .store
        .add_collaborator(&app.app, username, &viewer.user)
        .await
        .map_err(ApiError::from);
    people_outcome(&state, &viewer, &app, outcome.map(|_| "added"), username).await
}

/// `POST /apps/{app}/access/remove`.
pub(super) async fn remove_collaborator(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<UserForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Own).await?;
    let outcome = state
        .store
        .remove_collaborator(&app.app, &form.username, &viewer.user)
        .await
        .map_err(ApiError::from);
    people_outcome(&state, &viewer, &app, outcome.map(|()| "removed"), "").await
}

async fn people_outcome(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    outcome: Result<&str, ApiError>,
    typed: &str,
) -> Result<Response, WebError> {
    match outcome {
        Ok(done) => Ok(view::done(
            &format!("/apps/{}/access", app.app.name),
            done,
            None,
        )),
        Err(err) => {
            let (notice, status) = view::refusal(err)?;
            access_page(state, viewer, app, Some(notice), status, typed).await
        }
    }
}

pub(super) struct DomainRow {
    name: String,
    verified: bool,
    record: String,
    token: String,
}

#[derive(Template)]
#[template(path = "domains.html")]
struct DomainsPage {
    chrome: Chrome,
    platform_host: String,
    domains: Vec<DomainRow>,
    can_write: bool,
    typed: String,
}

/// `GET /apps/{app}/domains`.
pub(super) async fn domains(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    domains_page(&state, &viewer, &app, done.notice(), StatusCode::OK, "").await
}

async fn domains_page(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    notice: Option<Notice>,
    status: StatusCode,
    typed: &str,
) -> Result<Response, WebError> {
    let platform_host = format!("{}.{}", app.app.name, state.config.domain);
    let domains = state
        .store
        .domains(&app.app)
        .await?
        .into_iter()
        .filter(|d| d.domain != platform_host)
        .map(|d| DomainRow {
            record: domain::challenge_record(&d.domain),
            verified: d.is_verified(),
            token: match d.state {
                DomainState::Pending { token } => token,
                DomainState::Verified { .. } => String::new(),
            },
            name: d.domain,
        })
        .collect();
    let page = DomainsPage {
        chrome: Chrome::app(viewer, &app.app, Tab::Domains).with_notice(notice),
        platform_host: convert::app_url(&state.config, &app.app.name),
        domains,
        can_write: app.can_write,
        typed: typed.to_owned(),
    };
    Ok((status, view::html(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct DomainForm {
    #[serde(default)]
    domain: String,
}

/// `POST /apps/{app}/domains/add`: pending until its TXT record is found (`slip domains:verify`).
pub(super) async fn add_domain(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<DomainForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    let outcome = actions::add_domain(&state, &app.app, &viewer.user, form.domain.trim()).await;
    domain_outcome(
        &state,
        &viewer,
        &app,
        outcome.map(|_| "added"),
        form.domain.trim(),
    )
    .await
}

/// `POST /apps/{app}/domains/remove`.
pub(super) async fn remove_domain(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<DomainForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    let outcome = actions::remove_domain(&state, &app.app, &viewer.user, &form.domain).await;
    domain_outcome(&state, &viewer, &app, outcome.map(|()| "removed"), "").await
}

async fn domain_outcome(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    outcome: Result<&str, ApiError>,
    typed: &str,
) -> Result<Response, WebError> {
    match outcome {
        Ok(done) => Ok(view::done(
            &format!("/apps/{}/domains", app.app.name),
            done,
            None,
        )),
        Err(err) => {
            let (notice, status) = view::refusal(err)?;
            domains_page(state, viewer, app, Some(notice), status, typed).await
        }
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    name: String,
    maintenance: bool,
    can_write: bool,
    can_own: bool,
}

/// `GET /apps/{app}/settings`.
pub(super) async fn settings(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    settings_page(&state, &viewer, &app, done.notice(), StatusCode::OK).await
}

async fn settings_page(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let routing = state.store.routing_settings(&app.app).await?;
    let page = SettingsPage {
        chrome: Chrome::app(viewer, &app.app, Tab::Settings).with_notice(notice),
        name: app.app.name.to_string(),
        maintenance: routing.maintenance,
        can_write: app.can_write,
        can_own: app.can_own,
    };
    Ok((status, view::html(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct MaintenanceForm {
    #[serde(default)]
    on: bool,
}

/// `POST /apps/{app}/maintenance`: as `slip maintenance:on|off`.
pub(super) async fn maintenance(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<MaintenanceForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    actions::change_routing(
        &state,
        &app.app,
        &viewer.user,
        &RoutingChange::Maintenance(form.on),
    )
    .await?;
    Ok(view::done(
        &format!("/apps/{}/settings", app.app.name),
        "saved",
        None,
    ))
}

#[derive(serde::Deserialize)]
pub(super) struct DestroyForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /apps/{app}/destroy`: only with the app's name typed, as `slip apps:destroy --confirm`.
pub(super) async fn destroy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<DestroyForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Own).await?;
    if form.confirm.trim() != app.app.name.as_str() {
        let message = format!(
            "type the app's name, {}, to confirm; nothing was destroyed",
            app.app.name
        );
        return settings_page(
            &state,
            &viewer,
            &app,
            Some(Notice::error(message)),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    actions::destroy(&state, &app.app, &viewer.user).await?;
    Ok(view::done("/", "removed", None))
}
