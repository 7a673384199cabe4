//! The dashboard for app owners, served by the API at `/` on the API port: server-rendered
//! pages (askama templates, checked at compile time, HTML-escaped by default), htmx for
//! partial updates and server-sent events for live logs and running builds. Every page
//! reads, and every form posts, without JavaScript.
//!
//! It has no access rules of its own: a page loads its app with [`crate::auth::authorize`],
//! the same call `/v1` makes, so another user's app answers 404 here as there; changes go
//! through [`crate::actions`], the same code `/v1` runs. Sessions and CSRF are in
//! [`session`]. Responses carry a strict Content-Security-Policy: scripts and styles only
//! from `/assets/`, no inline code, no frames.

mod activity;
mod apps;
mod assets;
mod config;
mod live;
mod people;
mod processes;
mod session;
mod view;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::{ApiError, ApiState};

/// The dashboard's routes; `crate::router` merges them beside `/v1`.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(apps::list))
        .route("/sign-in", get(apps::sign_in_page).post(apps::sign_in))
        .route("/sign-out", post(apps::sign_out))
        .route("/apps/{app}", get(apps::overview))
        .route("/apps/{app}/formation", post(processes::scale))
        .route("/apps/{app}/activity", get(activity::page))
        .route("/apps/{app}/rollback", post(activity::rollback))
        .route("/apps/{app}/builds/{build}", get(activity::build))
        .route("/apps/{app}/builds/{build}/live", get(live::build))
        .route("/apps/{app}/config", get(config::page).post(config::set))
        .route("/apps/{app}/config/unset", post(config::unset))
        .route("/apps/{app}/processes", get(processes::page))
        .route("/apps/{app}/processes/restart", post(processes::restart))
        .route("/apps/{app}/logs", get(processes::logs))
        .route("/apps/{app}/logs/feed", get(processes::log_feed))
        .route("/apps/{app}/logs/live", get(live::logs))
        .route("/apps/{app}/metrics", get(processes::metrics))
        .route("/apps/{app}/access", get(people::access))
        .route("/apps/{app}/access/add", post(people::add_collaborator))
        .route(
            "/apps/{app}/access/remove",
            post(people::remove_collaborator),
        )
        .route("/apps/{app}/domains", get(people::domains))
        .route("/apps/{app}/domains/add", post(people::add_domain))
        .route("/apps/{app}/domains/remove", post(people::remove_domain))
        .route("/apps/{app}/settings", get(people::settings))
        .route("/apps/{app}/maintenance", post(people::maintenance))
        .route("/apps/{app}/destroy", post(people::destroy))
        .route("/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(protect))
}

/// The page for a path the dashboard does not have.
pub(crate) fn no_such_page() -> Response {
    protected(
        WebError::Page(
            StatusCode::NOT_FOUND,
            "there is no such page: start again from your apps".to_owned(),
        )
        .into_response(),
    )
}

/// The policy every dashboard response carries: only the platform's own scripts, styles and
/// images (SVG charts are inline markup, not scripts); no framing; no sniffing; no referrer
/// beyond the dashboard.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

async fn protect(response: Response) -> Response {
    protected(response)
}

fn protected(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show secrets (config values) and change with every release.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An app the viewer may see, and what else they may do to it.
pub(crate) struct AppView {
    pub(crate) app: store::App,
    pub(crate) can_write: bool,
    pub(crate) can_own: bool,
}

impl AppView {
    /// Loads the app with the same check `/v1` makes: a stranger's app is "no app named …".
    pub(crate) async fn load(
        state: &ApiState,
        viewer: &session::Viewer,
        name: &str,
        need: store::Need,
    ) -> Result<AppView, WebError> {
        let (app, access) = crate::auth::authorize_access(state, &viewer.user, name, need).await?;
        let admin = viewer.user.admin;
        Ok(AppView {
            app,
            can_write: access.permits(admin, store::Need::Write),
            can_own: access.permits(admin, store::Need::Own),
        })
    }
}

/// Why a dashboard request failed: shown as a page, never as JSON.
#[derive(Debug)]
pub(crate) enum WebError {
    /// Not signed in (or the session ended): to the sign-in page, and back to `next` after.
    SignIn {
        next: String,
    },
    Forbidden(String),
    Invalid(String),
    Page(StatusCode, String),
    Api(ApiError),
}

impl From<ApiError> for WebError {
    fn from(err: ApiError) -> WebError {
        WebError::Api(err)
    }
}

impl From<store::Error> for WebError {
    fn from(err: store::Error) -> WebError {
        WebError::Api(err.into())
    }
}

impl From<domain::Error> for WebError {
    fn from(err: domain::Error) -> WebError {
        WebError::Invalid(err.to_string())
    }
}

impl WebError {
    /// The status and the message a viewer may see.
    fn shown(&self) -> (StatusCode, String) {
        match self {
            WebError::SignIn { .. } => (StatusCode::UNAUTHORIZED, "sign in first".to_owned()),
            WebError::Forbidden(message) => (StatusCode::FORBIDDEN, message.clone()),
            WebError::Invalid(message) => (StatusCode::UNPROCESSABLE_ENTITY, message.clone()),
            WebError::Page(status, message) => (*status, message.clone()),
            WebError::Api(ApiError::Internal(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "something went wrong on the platform; the server log has the details".to_owned(),
            ),
            WebError::Api(err) => (err.status(), dashboard_words(&err.to_string())),
        }
    }
}

/// `/v1`'s "no app named x: see yours with `slip apps`"; on a page, the apps list is a link
/// away, and the page says so.
fn dashboard_words(message: &str) -> String {
    message.replace(": see yours with `slip apps`", "")
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    reason: &'static str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::SignIn { next } = &self {
            let target = if next == "/" || !view::safe_next(next) {
                "/sign-in".to_owned()
            } else {
                format!("/sign-in?next={}", view::query_escape(next))
            };
            return Redirect::to(&target).into_response();
        }
        let (status, message) = self.shown();
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message,
        };
        let mut response = (status, view::html(&page)).into_response();
        if let WebError::Api(err @ ApiError::Internal(_)) = self {
            // The cause reaches the log through the API's one logging middleware.
            let logged = err.into_response();
            *response.extensions_mut() = logged.into_parts().0.extensions;
        }
        response
    }
}
