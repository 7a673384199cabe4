//! The `/v1` handlers, grouped by resource, and the router that collects them with their
//! OpenAPI descriptions.

mod apps;
mod auth;
mod builds;
mod certs;
mod config;
mod deploy_keys;
mod domains;
mod events;
mod formation;
mod keys;
mod perms;
mod pipelines;
mod processes;
mod promotions;
mod rebase;
mod releases;
mod routing;
mod settings;
mod test_runs;

pub(crate) use domains::new_verification_token;

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Json;
use crate::{ApiError, ApiState};

/// The largest page a listing returns.
const MAX_LIMIT: u32 = 1000;

pub(crate) fn v1() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(info))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::whoami))
        .routes(routes!(auth::tokens, auth::create_token))
        .routes(routes!(auth::revoke))
        .routes(routes!(keys::list, keys::add))
        .routes(routes!(keys::remove))
        .routes(routes!(deploy_keys::list, deploy_keys::add))
        .routes(routes!(deploy_keys::remove))
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::info, apps::patch, apps::destroy))
        .routes(routes!(perms::list, perms::add))
        .routes(routes!(perms::remove))
        .routes(routes!(config::get, config::patch))
        .routes(routes!(releases::list))
        .routes(routes!(releases::info))
        .routes(routes!(releases::rollback))
        .routes(routes!(formation::get, formation::scale))
        .routes(routes!(settings::health_checks))
        .routes(routes!(settings::unset_health_checks))
        .routes(routes!(
            settings::set_health_check,
            settings::unset_health_check
        ))
        .routes(routes!(settings::limits))
        .routes(routes!(settings::set_limits, settings::unset_limits))
        .routes(routes!(settings::autoscale))
        .routes(routes!(settings::set_autoscale, settings::unset_autoscale))
        .routes(routes!(builds::list, builds::create))
        .routes(routes!(builds::info))
        .routes(routes!(builds::purge_cache))
        .routes(routes!(rebase::rebase))
        .routes(routes!(domains::list, domains::add))
        .routes(routes!(domains::remove))
        .routes(routes!(domains::verify))
        .routes(routes!(routing::get, routing::patch))
        .routes(routes!(certs::list, certs::add))
        .routes(routes!(certs::info, certs::remove))
        .routes(routes!(certs::attach, certs::detach))
        .routes(routes!(processes::list))
        .routes(routes!(processes::restart))
        .routes(routes!(processes::logs))
        .routes(routes!(processes::run))
        .routes(routes!(events::app_events))
        .routes(routes!(events::all_events))
        .routes(routes!(test_runs::list, test_runs::create))
        .routes(routes!(test_runs::info))
        .routes(routes!(pipelines::list, pipelines::create))
        .routes(routes!(pipelines::info, pipelines::destroy))
        .routes(routes!(pipelines::add_app))
        .routes(routes!(pipelines::remove_app))
        .routes(routes!(pipelines::set_stage))
        .routes(routes!(pipelines::events))
        .routes(routes!(promotions::promote))
        .routes(routes!(promotions::list))
        .routes(routes!(promotions::info))
        .routes(routes!(promotions::approve))
        .routes(routes!(promotions::reject))
}

/// `GET /healthz`: 200 when the database answers, 503 otherwise.
pub(crate) async fn healthz(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

/// What the platform says about itself; needs no token.
#[utoipa::path(get, path = "/v1/info", tag = "platform", responses((status = 200, body = api_types::PlatformInfo)))]
async fn info(State(state): State<ApiState>) -> Result<Json<api_types::PlatformInfo>, ApiError> {
    Ok(Json(api_types::PlatformInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_url: state.config.git_url.clone(),
        domain: state.config.domain.clone(),
        registration_open: state.config.registration_open,
    }))
}

/// `?limit=N` on listings.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// How many items at most (default 100, at most 1000).
    limit: Option<u32>,
}

impl Page {
    fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, MAX_LIMIT)
    }
}
