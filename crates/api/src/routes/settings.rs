//! Per-process-type settings beside the formation: health checks, limits and autoscaling.
//! Each change answers with the resulting settings of its kind, once a release manager has
//! rolled the running release out with them (a failed rollout is the answer's error).

use std::collections::BTreeMap;

use api_types::{Autoscale, CheckType, ErrorBody, HealthChecks, Limits, SetHealthCheck};
use axum::extract::State;
use domain::{Check, Cpu, Memory, Probe, ProbeKind, ProcessSettings, ProcessType, SettingsChange};

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};
use crate::{control, convert};

/// Applies `change` to `process_type` of the app and waits for its rollout, when a release
/// manager runs. Like scaling, a type the current build does not declare is refused.
async fn change(
    state: &ApiState,
    caller: &AppCaller,
    app: &store::App,
    process_type: &ProcessType,
    change: SettingsChange,
) -> Result<ProcessSettings, ApiError> {
    let latest = state.store.latest_release(app).await?;
    let procfile = crate::actions::current_procfile(state, app, &latest).await?;
    let known: Option<Vec<ProcessType>> = procfile.as_ref().map(|f| {
        f.keys()
            .filter_map(|t| ProcessType::parse(t).ok())
            .collect()
    });
    let changed = state
        .store
        .change_process_settings(
            app,
            process_type,
            &change,
            known.as_deref(),
            state.config.deploys,
            &caller.user,
        )
        .await?;
    if let Some(work) = changed.work {
        control::wait(state, work).await?;
    }
    Ok(changed.settings)
}

#[utoipa::path(get, path = "/v1/apps/{app}/healthchecks", tag = "settings", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = BTreeMap<String, HealthChecks>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn health_checks(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<BTreeMap<String, HealthChecks>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let settings = state.store.process_settings(&app).await?;
    Ok(Json(convert::health_checks(&settings)))
}

/// Sets a process type's liveness or readiness check.
#[utoipa::path(put, path = "/v1/apps/{app}/healthchecks/{type}/{kind}", tag = "settings", security(("token" = [])),
    params(("app" = String, Path), ("type" = String, Path), ("kind" = String, Path, description = "liveness or readiness")),
    request_body = SetHealthCheck,
    responses((status = 200, body = BTreeMap<String, HealthChecks>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn set_health_check(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, process_type, kind)): Path<(String, String, String)>,
    body: Result<Json<SetHealthCheck>, ApiError>,
) -> Result<Json<BTreeMap<String, HealthChecks>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let process_type = ProcessType::parse(&process_type)?;
    let kind = ProbeKind::parse(&kind)?;
    let set = SettingsChange::SetProbe(kind, probe(body)?);
    let settings = change(&state, &caller, &app, &process_type, set).await?;
    Ok(Json(convert::health_checks(&settings)))
}

/// Removes a process type's liveness or readiness check.
#[utoipa::path(delete, path = "/v1/apps/{app}/healthchecks/{type}/{kind}", tag = "settings", security(("token" = [])),
    params(("app" = String, Path), ("type" = String, Path), ("kind" = String, Path, description = "liveness or readiness")),
    responses((status = 200, body = BTreeMap<String, HealthChecks>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn unset_health_check(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, process_type, kind)): Path<(String, String, String)>,
) -> Result<Json<BTreeMap<String, HealthChecks>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let process_type = ProcessType::parse(&process_type)?;
    let unset = SettingsChange::UnsetProbe(Some(ProbeKind::parse(&kind)?));
    let settings = change(&state, &caller, &app, &process_type, unset).await?;
    Ok(Json(convert::health_checks(&settings)))
}

/// Removes both of a process type's health checks.
#[utoipa::path(delete, path = "/v1/apps/{app}/healthchecks/{type}", tag = "settings", security(("token" = [])),
    params(("app" = String, Path), ("type" = String, Path)),
    responses((status = 200, body = BTreeMap<String, HealthChecks>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn unset_health_checks(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, process_type)): Path<(String, String)>,
) -> Result<Json<BTreeMap<String, HealthChecks>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let process_type = ProcessType::parse(&process_type)?;
    let unset = SettingsChange::UnsetProbe(None);
    let settings = change(&state, &caller, &app, &process_type, unset).await?;
    Ok(Json(convert::health_checks(&settings)))
}

/// A health check from its wire form: each kind takes its own fields and no other's.
fn probe(body: SetHealthCheck) -> Result<Probe, ApiError> {
    let check = match body.check_type {
        CheckType::HttpGet => {
            if body.command.is_some() {
                return Err(ApiError::Invalid(
                    "an httpGet health check takes a path, not a command".to_owned(),
                ));
            }
            let path = body.path.ok_or_else(|| {
                ApiError::Invalid(
                    "an httpGet health check needs a path, such as /healthz".to_owned(),
                )
            })?;
            Check::http_get(&path, body.port)?
        }
        CheckType::Exec => {
            if body.path.is_some() || body.port.is_some() {
                return Err(ApiError::Invalid(
                    "an exec health check takes a command, not a path or a port".to_owned(),
                ));
            }
            let command = body.command.ok_or_else(|| {
                ApiError::Invalid("an exec health check needs a command".to_owned())
            })?;
            Check::exec(&command)?
        }
    };
    Ok(Probe::new(
        check,
        body.period_seconds,
        body.timeout_seconds,
        body.failure_threshold,
    )?)
}

#[utoipa::path(get, path = "/v1/apps/{app}/limits", tag = "settings", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = BTreeMap<String, Limits>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn limits(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<BTreeMap<String, Limits>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let settings = state.store.process_settings(&app).await?;
    Ok(Json(convert::limits(&settings)))
}

/// Sets a process type's memory limit, CPU limit or both; one left out stays as it was.
#[utoipa::path(put, path = "/v1/apps/{app}/limits/{type}", tag = "settings", security(("token" = [])),
    params(("app" = String, Path), ("type" = String, Path)), request_body = Limits,
    responses((status = 200, body = BTreeMap<String, Limits>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn set_limits(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, process_type)): Path<(String, String)>,
    body: Result<Json<Limits>, ApiError>,
) -> Result<Json<BTreeMap<String, Limits>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let process_type = ProcessType::parse(&process_type)?;
    let limits = domain::Limits {
        memory: body.memory.as_deref().map(Memory::parse).transpose()?,
        cpu: body.cpu.as_deref().map(Cpu::parse).transpose()?,
    };
    let set = SettingsChange::SetLimits(limits);
    let settings = change(&state, &caller, &app, &process_type, set).await?;
    Ok(Json(convert::limits(&settings)))
}

/// `?memory=true`, `?cpu=true`: which limits to remove; both when neither is given.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct WhichLimits {
    #[serde(default)]
    memory: bool,
    #[serde(default)]
    cpu: bool,
}

/// Removes a process type's limits. Its CPU limit stays while it is autoscaled.
#[utoipa::path(delete, path = "/v1/apps/{app}/limits/{type}", tag = "settings", security(("token" = [])),
    params(("app" = String, Path), ("type" = String, Path), WhichLimits),
    responses((status = 200, body = BTreeMap<String, Limits>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn unset_limits(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, process_type)): Path<(String, String)>,
    query: Result<Query<WhichLimits>, ApiError>,
) -> Result<Json<BTreeMap<String, Limits>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Query(which) = query?;
    let process_type = ProcessType::parse(&process_type)?;
    let both = !which.memory && !which.cpu;
    let unset = SettingsChange::UnsetLimits {
        memory: which.memory || both,
        cpu: which.cpu || both,
    };
    let settings = change(&state, &caller, &app, &process_type, unset).await?;
    Ok(Json(convert::limits(&settings)))
}

#[utoipa::path(get, path = "/v1/apps/{app}/autoscale", tag = "settings", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = BTreeMap<String, Autoscale>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn autoscale(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<BTreeMap<String, Autoscale>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let settings = state.store.process_settings(&app).await?;
    Ok(Json(convert::autoscale(&settings)))
}

/// Autoscales a process type on its CPU use; it needs a CPU limit.
#[utoipa::path(put, path = "/v1/apps/{app}/autoscale/{type}", tag = "settings", security(("token" = [])),
    params(("app" = String, Path), ("type" = String, Path)), request_body = Autoscale,
    responses((status = 200, body = BTreeMap<String, Autoscale>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn set_autoscale(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, process_type)): Path<(String, String)>,
    body: Result<Json<Autoscale>, ApiError>,
) -> Result<Json<BTreeMap<String, Autoscale>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let process_type = ProcessType::parse(&process_type)?;
    let autoscale = domain::Autoscale::new(body.min, body.max, body.cpu_percent)?;
    let set = SettingsChange::SetAutoscale(autoscale);
    let settings = change(&state, &caller, &app, &process_type, set).await?;
    Ok(Json(convert::autoscale(&settings)))
}

/// Stops autoscaling a process type: the formation's count applies again.
#[utoipa::path(delete, path = "/v1/apps/{app}/autoscale/{type}", tag = "settings", security(("token" = [])),
    params(("app" = String, Path), ("type" = String, Path)),
    responses((status = 200, body = BTreeMap<String, Autoscale>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn unset_autoscale(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, process_type)): Path<(String, String)>,
) -> Result<Json<BTreeMap<String, Autoscale>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let process_type = ProcessType::parse(&process_type)?;
    let unset = SettingsChange::UnsetAutoscale;
    let settings = change(&state, &caller, &app, &process_type, unset).await?;
    Ok(Json(convert::autoscale(&settings)))
}
