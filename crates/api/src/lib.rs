//! Slipway's REST API: JSON under `/v1`, bearer tokens, and `/healthz`.
//!
//! [`router`] builds the whole HTTP surface from an [`ApiState`]; `slipwayd` serves it and
//! the tests drive it with `oneshot` or over a real socket. Handlers are thin: they
//! authenticate, authorise, parse input with the `domain` crate, call the store, and map
//! store records to the wire types of `api-types`.
//!
//! Architecture invariant: the API holds no state of its own beyond the store, except the
//! login throttles (in memory, per process); any number of API processes can serve one
//! PostgreSQL database. It never runs builds or processes:
//! a new release that needs deploying is handed to a [`Deployer`], which also answers for
//! the app's processes and one-off runs; logs are read from a [`logs::LogSource`].

mod actions;
mod auth;
// The dashboard's metrics page draws these; until it does, only their tests call them.
mod charts;
mod control;
mod convert;
mod error;
mod extract;
mod openapi;
mod prometheus;
mod routes;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use domain::AppName;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::LoginLimits;
pub use error::ApiError;

/// The largest request body the API reads. Config, the largest input, is limited to
/// 256 KiB; the rest is room for JSON escaping.
const BODY_LIMIT: usize = 1024 * 1024;

/// Settings the API needs to describe the platform to clients.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where `git push` goes, such as `ssh://git@127.0.0.1:2222`.
    pub git_url: String,
    /// The platform domain: app `demo` answers at `demo.<domain>`.
    pub domain: String,
    /// The router's public port, shown in app URLs (omitted when 80).
    pub router_port: u16,
    /// Whether anyone may register. When false, only the first user registers themselves
    /// (and becomes admin); admins create everyone else.
    pub registration_open: bool,
    /// How long an API token is valid after login.
    pub token_ttl: Duration,
    /// The hashing pool and the login throttles.
    pub login: LoginLimits,
    /// The DNS server `domains:verify` asks for challenge TXT records (UDP, then TCP); the
    /// system's resolv.conf when `None`.
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// Whether release managers deploy what the API queues. Without (a platform with no
    /// runtime), releases stay `pending` and restarts and one-off runs are refused.
    pub deploys: bool,
}

/// The builder's per-app cache, as far as the API needs it.
pub trait BuildCache: Send + Sync + 'static {
    /// Empties the app's build cache. Blocking: the API calls it off the async threads.
    fn purge(&self, app: &AppName) -> std::io::Result<()>;
}

/// A [`BuildCache`] for an API without a builder: there is nothing to purge.
#[derive(Debug, Default)]
pub struct NoBuildCache;

impl BuildCache for NoBuildCache {
    fn purge(&self, _app: &AppName) -> std::io::Result<()> {
        Ok(())
    }
}

/// The apps' git repositories, as far as the API needs them: how far one commit is ahead of
/// another, for a pipeline's "commits behind". The API never opens a repository itself.
#[async_trait::async_trait]
pub trait Repos: Send + Sync + 'static {
    /// How many commits `upstream_commit` is ahead of `downstream_commit`, counted in the
    /// repository of `upstream_app` (the one that was pushed to): `None` when that cannot be
    /// known, because the repository or a commit is missing there.
    async fn commits_behind(
        &self,
        upstream_app: &AppName,
        upstream_commit: &str,
        downstream_commit: &str,
    ) -> std::io::Result<Option<u32>>;
}

/// [`Repos`] for an API without the repositories (such as one on Kubernetes without their
/// volume): nothing is known.
#[derive(Debug, Default)]
pub struct NoRepos;

#[async_trait::async_trait]
impl Repos for NoRepos {
    async fn commits_behind(
        &self,
        _upstream_app: &AppName,
        _upstream_commit: &str,
        _downstream_commit: &str,
    ) -> std::io::Result<Option<u32>> {
        Ok(None)
    }
}

/// Everything a handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub store: store::Store,
    pub config: Arc<ApiConfig>,
    pub build_cache: Arc<dyn BuildCache>,
    /// The apps' git repositories: [`NoRepos`] where this process cannot read them.
    pub repos: Arc<dyn Repos>,
    /// Where the apps' logs are read: the runtime's (written by the release manager, the
    /// runtime and the router).
    pub logs: Arc<dyn logs::LogSource>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The whole HTTP surface: `/v1/…`, `/v1/openapi.json`, `/healthz`. Each router has its
/// own login guard (hashing pool and throttles).
pub fn router(state: ApiState) -> Router {
    let guard = Arc::new(auth::LoginGuard::new(state.config.login));
    let (api, openapi) = routes::v1().split_for_parts();
    let openapi = Arc::new(openapi::finish(openapi));
    api.route(
        "/v1/openapi.json",
        axum::routing::get(move || {
            let openapi = Arc::clone(&openapi);
            async move { axum::Json(openapi.as_ref().clone()) }
        }),
    )
    .route("/healthz", axum::routing::get(routes::healthz))
    .route("/metrics", axum::routing::get(prometheus::metrics))
    .merge(web::routes())
    .fallback(error::not_found)
    .method_not_allowed_fallback(error::method_not_allowed)
    .with_state(state)
    .layer(axum::Extension(guard))
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    .layer(axum::middleware::map_response(error::log_server_errors))
    .layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(60),
    ))
    .layer(CatchPanicLayer::custom(error::panic_response))
    .layer(TraceLayer::new_for_http())
}
