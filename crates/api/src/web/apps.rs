//! Signing in and out, the apps list, and an app's overview.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use domain::ReleaseStatus;
use time::OffsetDateTime;

use super::session::{self, Posted, SignInForm, Viewer};
use super::view::{self, Chrome, Done, Notice, Tab};
use super::{AppView, WebError, activity};
use crate::auth::LoginGuard;
use crate::extract::Peer;
use crate::{ApiError, ApiState, actions, convert};
use store::Need;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Next {
    #[serde(default)]
    next: Option<String>,
}

impl Next {
    fn target(&self) -> String {
        self.next
            .clone()
            .filter(|n| view::safe_next(n))
            .unwrap_or_else(|| "/".to_owned())
    }
}

/// `GET /sign-in`. A browser that is signed in already goes on.
pub(super) async fn sign_in_page(
    headers: HeaderMap,
    Query(next): Query<Next>,
    viewer: Option<Viewer>,
) -> Response {
    if viewer.is_some() {
        return Redirect::to(&next.target()).into_response();
    }
    let (csrf, cookie) = session::sign_in_token(&headers);
    let mut response = view::html(&SignInPage {
        csrf,
        next: next.target(),
        username: String::new(),
        error: None,
    });
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(serde::Deserialize)]
pub(super) struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /sign-in`: the same check, throttles included, as `/v1/auth/login`.
pub(super) async fn sign_in(
    State(state): State<ApiState>,
    Extension(guard): Extension<Arc<LoginGuard>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    SignInForm { form }: SignInForm<Credentials>,
) -> Result<Response, WebError> {
    let next = Next { next: form.next }.target();
    match crate::auth::sign_in(&state, &guard, &form.username, form.password, peer).await {
        Ok(user) => {
            let cookies = session::start(&state, &headers, &user).await?;
            let mut response = Redirect::to(&next).into_response();
            session::set_cookies(response.headers_mut(), cookies);
            Ok(response)
        }
        Err(
            err @ (ApiError::Unauthorized(_)
            | ApiError::TooManyRequests { .. }
            | ApiError::Busy { .. }),
        ) => {
            // The form again, with why; a throttled one says how long to wait, in the
            // page and in `Retry-After`.
            let (csrf, _) = session::sign_in_token(&headers);
            let page = SignInPage {
                csrf,
                next,
                username: form.username,
                error: Some(err.to_string()),
            };
            let mut response = (err.status(), view::html(&page)).into_response();
            if let ApiError::TooManyRequests { retry_after, .. }
            | ApiError::Busy { retry_after, .. } = err
            {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after.max(1).into());
            }
            Ok(response)
        }
        Err(err) => Err(err.into()),
    }
}

/// `POST /sign-out`: the session ends in the store, not only in this browser.
pub(super) async fn sign_out(
    State(state): State<ApiState>,
    Posted { viewer, .. }: Posted<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let cookies = session::end(&state, &viewer).await?;
    let mut response = Redirect::to("/sign-in").into_response();
    session::set_cookies(response.headers_mut(), cookies);
    Ok(response)
}

/// One row of the apps list.
pub(super) struct AppRow {
    name: String,
    url: String,
    state: &'static str,
    state_class: &'static str,
    release: String,
    summary: String,
    deployed_ago: String,
    deployed_at: String,
    deployed_iso: String,
    by: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    chrome: Chrome,
    apps: Vec<AppRow>,
    git_url: String,
}

/// `GET /`: the apps the viewer may see (all of them for an admin), one query.
pub(super) async fn list(
    State(state): State<ApiState>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let apps = state
        .store
        .app_summaries(&viewer.user)
        .await?
        .into_iter()
        .map(|app| {
            let (state_name, state_class) = app_state(
                app.latest.as_ref().map(|l| l.status),
                app.routing.maintenance,
            );
            let latest = app.latest.as_ref();
            let deployed = latest.map(|l| l.deploy_finished_at.unwrap_or(l.created_at));
            AppRow {
                url: convert::app_url(&state.config, &app.name),
                name: app.name.to_string(),
                state: state_name,
                state_class,
                release: latest.map_or_else(String::new, |l| l.version.to_string()),
                summary: latest.map_or_else(String::new, |l| l.summary.clone()),
                deployed_ago: deployed.map_or_else(String::new, |at| view::ago(at, now)),
                deployed_at: deployed.map_or_else(String::new, view::when),
                deployed_iso: deployed.map_or_else(String::new, view::iso),
                by: latest.map_or_else(String::new, |l| l.created_by.clone()),
            }
        })
        .collect();
    Ok(view::html(&AppsPage {
        chrome: Chrome::new(&viewer, "Apps"),
        apps,
        git_url: state.config.git_url.clone(),
    }))
}

/// What an app is doing, in a word, and its badge's class.
fn app_state(latest: Option<ReleaseStatus>, maintenance: bool) -> (&'static str, &'static str) {
    if maintenance {
        return ("maintenance", "warn");
    }
    match latest {
        Some(ReleaseStatus::Succeeded) => ("running", "ok"),
        Some(ReleaseStatus::Deploying) => ("deploying", "busy"),
        Some(ReleaseStatus::Pending) => ("pending", "busy"),
        Some(ReleaseStatus::Failed) => ("last deploy failed", "bad"),
        None => ("new", "idle"),
    }
}

/// One process type's row in the formation.
pub(super) struct FormationRow {
    process_type: String,
    count: u32,
    command: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    url: String,
    git_remote: String,
    owner: String,
    state: &'static str,
    state_class: &'static str,
    current: Option<activity::ReleaseRow>,
    formation: Vec<FormationRow>,
    recent: Vec<activity::ReleaseRow>,
    can_write: bool,
}

/// `GET /apps/{app}`: where it answers, what runs, how many, and what changed lately.
pub(super) async fn overview(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    overview_page(&state, &viewer, &app, done.notice(), StatusCode::OK).await
}

pub(super) async fn overview_page(
    state: &ApiState,
    viewer: &Viewer,
    view_of: &AppView,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let app = &view_of.app;
    let now = OffsetDateTime::now_utc();
    let history = activity::History::load(state, app, None, 5).await?;
    let latest = state.store.latest_release(app).await?;
    let procfile = actions::current_procfile(state, app, &latest).await?;
    let formation = convert::formation(state.store.formation(app).await?, procfile.as_ref())
        .into_iter()
        .map(|p| FormationRow {
            process_type: p.process_type,
            count: p.count,
            command: p.command.unwrap_or_default(),
        })
        .collect();
    let routing = state.store.routing_settings(app).await?;
    let (state_name, state_class) = app_state(Some(latest.status), routing.maintenance);
    let wire = convert::app(&state.config, app);
    let rows = history.rows(now, view_of.can_write);
    let current = rows.iter().find(|r| r.current).cloned();
    let page = OverviewPage {
        chrome: Chrome::app(viewer, app, Tab::Overview).with_notice(notice),
        url: wire.url,
        git_remote: wire.git_url,
        owner: app.owner.clone(),
        state: state_name,
        state_class,
        current,
        formation,
        recent: rows,
        can_write: view_of.can_write,
    };
    Ok((status, view::html(&page)).into_response())
}
