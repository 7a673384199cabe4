//! An app's routing switches (maintenance, routing on or off, the IP allow list, HTTPS only)
//! and what each of its hosts is served with over HTTPS. A change answers once the router
//! has it, or after a short wait if no release manager takes it up.

use api_types::{ErrorBody, HostCertificate, RoutedHost, Routing, RoutingPatch};
use axum::extract::State;
use domain::{Cidr, RoutingChange, RoutingSettings};
use store::ServedCertificate;

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState, actions};

/// How long a change waits for the router to learn it before answering.

#[utoipa::path(get, path = "/v1/apps/{app}/routing", tag = "routing", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Routing), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Routing>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let settings = state.store.routing_settings(&app).await?;
    Ok(Json(routing(&state, &app, settings).await?))
}

/// Makes one change of the app's routing switches.
#[utoipa::path(patch, path = "/v1/apps/{app}/routing", tag = "routing", security(("token" = [])),
    params(("app" = String, Path)), request_body = RoutingPatch,
    responses((status = 200, body = Routing), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn patch(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<RoutingPatch>, ApiError>,
) -> Result<Json<Routing>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let change = change(body)?;
    let settings = actions::change_routing(&state, &app, &caller.user, &change).await?;
    Ok(Json(routing(&state, &app, settings).await?))
}

/// The one change a patch names.
fn change(body: RoutingPatch) -> Result<RoutingChange, ApiError> {
    let ranges = |list: Vec<String>| -> Result<Vec<Cidr>, ApiError> {
        if list.is_empty() {
            return Err(ApiError::Invalid(
                "name at least one address range, such as 10.0.0.0/8".to_owned(),
            ));
        }
        Ok(list
            .iter()
            .map(|c| Cidr::parse(c))
            .collect::<Result<_, _>>()?)
    };
    let RoutingPatch {
        enabled,
        maintenance,
        force_https,
        hsts,
        allow,
        disallow,
    } = body;
    let named = [
        enabled.is_some(),
        maintenance.is_some(),
        force_https.is_some(),
        allow.is_some(),
        disallow.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if named != 1 || (hsts.is_some() && force_https.is_none()) {
        return Err(ApiError::Invalid(
            "name exactly one change: enabled, maintenance, force_https (with hsts), allow or disallow".to_owned(),
        ));
    }
    Ok(if let Some(on) = enabled {
        RoutingChange::Enabled(on)
    } else if let Some(on) = maintenance {
        RoutingChange::Maintenance(on)
    } else if let Some(force) = force_https {
        if hsts == Some(true) && !force {
            return Err(ApiError::Invalid(
                "HSTS needs HTTPS only: send force_https: true with hsts: true".to_owned(),
            ));
        }
        RoutingChange::Https {
            force,
            hsts: hsts.unwrap_or(false),
        }
    } else if let Some(list) = allow {
        RoutingChange::Allow(ranges(list)?)
    } else if let Some(list) = disallow {
        RoutingChange::Disallow(ranges(list)?)
    } else {
        unreachable!("one change is named")
    })
}

/// The switches, and each host the app answers to with the certificate it gets: one
/// uploaded and attached, else a current ACME one, else the platform's (as the release
/// manager hands them to the router).
async fn routing(
    state: &ApiState,
    app: &store::App,
    settings: RoutingSettings,
) -> Result<Routing, ApiError> {
    let own = format!("{}.{}", app.name, state.config.domain);
    let mut names = vec![own.clone()];
    names.extend(
        state
            .store
            .domains(app)
            .await?
            .into_iter()
            .filter(|d| d.is_verified() && d.domain != own)
            .map(|d| d.domain),
    );
    let served = state
        .store
        .served_certificates(app, &names, time::OffsetDateTime::now_utc())
        .await?;
    let hosts = names
        .into_iter()
        .zip(served)
        .map(|(host, served)| {
            let (certificate, name) = match &served {
                Some(ServedCertificate::Uploaded { name, .. }) => {
                    (HostCertificate::Uploaded, Some(name.clone()))
                }
                Some(ServedCertificate::Acme { .. }) => (HostCertificate::Acme, None),
                None => (HostCertificate::Platform, None),
            };
            RoutedHost {
                host,
                certificate,
                name,
                expires_at: served.as_ref().map(ServedCertificate::not_after),
            }
        })
        .collect();
    Ok(Routing {
        enabled: settings.enabled,
        maintenance: settings.maintenance,
        allow: settings.allow.iter().map(ToString::to_string).collect(),
        force_https: settings.force_https,
        hsts: settings.hsts,
        hosts,
    })
}
