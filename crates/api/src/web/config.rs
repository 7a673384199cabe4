//! Config vars: masked until revealed, added, edited and removed one at a time — each change
//! is a release, made by the same action as `slip config:set`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::ConfigChange;
use store::{ConfigOutcome, Need};

use super::session::{Posted, Viewer};
use super::view::{self, Chrome, Done, Notice, Tab};
use super::{AppView, WebError};
use crate::{ApiState, actions};

pub(super) struct Var {
    key: String,
    value: String,
    /// As many dots as characters, up to a few: the length shows, the value does not.
    masked: String,
}

#[derive(Template)]
#[template(path = "config.html")]
struct ConfigPage {
    chrome: Chrome,
    version: u32,
    vars: Vec<Var>,
    can_write: bool,
    /// What the viewer typed into the add form, kept when it was refused.
    key: String,
    value: String,
}

/// `GET /apps/{app}/config`.
pub(super) async fn page(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    config_page(&state, &viewer, &app, done.notice(), StatusCode::OK, None).await
}

async fn config_page(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    notice: Option<Notice>,
    status: StatusCode,
    typed: Option<&SetForm>,
) -> Result<Response, WebError> {
    let latest = state.store.latest_release(&app.app).await?;
    let vars = latest
        .config
        .into_iter()
        .map(|(key, value)| Var {
            masked: "•".repeat(value.chars().count().clamp(3, 12)),
            key,
            value,
        })
        .collect();
    let page = ConfigPage {
        chrome: Chrome::app(viewer, &app.app, Tab::Config).with_notice(notice),
        version: latest.version.get(),
        vars,
        can_write: app.can_write,
        key: typed.map(|t| t.key.clone()).unwrap_or_default(),
        value: typed.map(|t| t.value.clone()).unwrap_or_default(),
    };
    Ok((status, view::html(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct SetForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

/// `POST /apps/{app}/config`: sets one var (adds it, or changes its value).
pub(super) async fn set(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<SetForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    let key = form.key.trim();
    let change = ConfigChange::parse([(key, Some(form.value.as_str()))]);
    apply(&state, &viewer, &app, change, Some(&form)).await
}

#[derive(serde::Deserialize)]
pub(super) struct UnsetForm {
    key: String,
}

/// `POST /apps/{app}/config/unset`: removes one var.
pub(super) async fn unset(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<UnsetForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    let change = ConfigChange::parse([(form.key.as_str(), None)]);
    apply(&state, &viewer, &app, change, None).await
}

async fn apply(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    change: Result<ConfigChange, domain::Error>,
    typed: Option<&SetForm>,
) -> Result<Response, WebError> {
    let outcome = match change {
        Ok(change) => actions::change_config(state, &app.app, &viewer.user, &change).await,
        Err(err) => Err(err.into()),
    };
    let path = format!("/apps/{}/config", app.app.name);
    match outcome {
        Ok(ConfigOutcome::Released(release)) => {
            Ok(view::done(&path, "released", Some(release.version.get())))
        }
        Ok(ConfigOutcome::Unchanged(_)) => Ok(view::done(&path, "unchanged", None)),
        Err(err) => {
            let (notice, status) = view::refusal(err)?;
            config_page(state, viewer, app, Some(notice), status, typed).await
        }
    }
}
