//! What an app's collaborators can do to it, shared by `/v1` and the dashboard: each action
//! takes an app the caller was authorised for, checks its input with `domain`, writes what
//! should be to the store, and queues the work a release manager converges by. The two
//! surfaces differ only in how they read input and show the outcome.

use std::collections::BTreeMap;

use domain::{
    ConfigChange, Formation, Hostname, PlatformPlace, ProcessType, ReleaseVersion, RoutingChange,
    RoutingSettings,
};
use store::{App, ConfigOutcome, ProcessCount, Release, User, WorkKind};

use crate::{ApiError, ApiState, control};

/// Sets and unsets config vars in one change: a new release (deployed when the app has a
/// build), or none when the change alters nothing.
pub(crate) async fn change_config(
    state: &ApiState,
    app: &App,
    user: &User,
    change: &ConfigChange,
) -> Result<ConfigOutcome, ApiError> {
    let outcome = state.store.change_config(app, change, user).await?;
    if let ConfigOutcome::Released(release) = &outcome
        && release.build.is_some()
    {
        control::deploy(state, &app.name, release.version).await?;
    }
    Ok(outcome)
}

/// A new release with the build and config of `target` (by default the previous release
/// that succeeded), deployed. Never a rebuild. Across a release whose release phase ran,
/// only when the user `confirmed` it.
pub(crate) async fn rollback(
    state: &ApiState,
    app: &App,
    user: &User,
    target: Option<ReleaseVersion>,
    confirmed: bool,
) -> Result<Release, ApiError> {
    let release = state.store.rollback(app, target, user, confirmed).await?;
    control::deploy(state, &app.name, release.version).await?;
    Ok(release)
}

/// The formation after a scale, and the process types of the build the app runs (if any).
pub(crate) struct Scaled {
    pub(crate) counts: Vec<ProcessCount>,
    pub(crate) procfile: Option<BTreeMap<String, String>>,
}

/// Sets process counts (`web=2`). Once the app has a build, only the types it declares can
/// be scaled. Makes no release.
pub(crate) async fn scale<'a>(
    state: &ApiState,
    app: &App,
    user: &User,
    args: impl IntoIterator<Item = &'a str>,
) -> Result<Scaled, ApiError> {
    let changes = Formation::parse_scale(args)?;
    let latest = state.store.latest_release(app).await?;
    let procfile = current_procfile(state, app, &latest).await?;
    let known: Option<Vec<ProcessType>> = procfile.as_ref().map(|f| {
        f.keys()
            .filter_map(|t| ProcessType::parse(t).ok())
            .collect()
    });
    let counts = state
        .store
        .scale(app, &changes, known.as_deref(), user)
        .await?;
    // Starts or stops processes; new web processes join the routes as they become healthy.
    if state.config.deploys {
        control::request(state, &app.name, WorkKind::Scale).await?;
    }
    Ok(Scaled { counts, procfile })
}

/// The process types of the build the newest release runs, if it has one.
pub(crate) async fn current_procfile(
    state: &ApiState,
    app: &App,
    latest: &Release,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    match latest.build {
        Some(id) => Ok(Some(state.store.build(app, id).await?.procfile)),
        None => Ok(None),
    }
}

/// Replaces the app's processes (of one type, or all) with fresh ones of the same release,
/// and waits until the new ones serve.
pub(crate) async fn restart(
    state: &ApiState,
    app: &App,
    process_type: Option<String>,
) -> Result<(), ApiError> {
    if let Some(t) = &process_type {
        ProcessType::parse(t)?;
    }
    if !state.config.deploys {
        return Err(ApiError::Conflict(control::NO_RUNTIME.to_owned()));
    }
    state.store.bump_generation(&app.name).await?;
    control::request(state, &app.name, WorkKind::Restart { process_type }).await?;
    Ok(())
}

/// Adds a custom domain, pending until its TXT record is found. A name under the platform's
/// domain is refused, except the app's own `<app>.<domain>`, which is verified.
pub(crate) async fn add_domain(
    state: &ApiState,
    app: &App,
    user: &User,
    name: &str,
) -> Result<store::Domain, ApiError> {
    let host = Hostname::parse(name)?;
    let platform = &state.config.domain;
    let token = match host.platform_place(platform) {
        PlatformPlace::Outside => Some(crate::routes::new_verification_token()),
        PlatformPlace::App(label) if label == app.name.as_str() => None,
        PlatformPlace::App(_) | PlatformPlace::Other => {
            return Err(ApiError::Invalid(format!(
                "{host} is under the platform domain {platform}, which only the platform gives out; this app answers at {}.{platform} already",
                app.name
            )));
        }
    };
    let added = state
        .store
        .add_domain(app, &host, token.as_deref(), user)
        .await?;
    control::hosts(state, &app.name).await?;
    Ok(added)
}

/// Removes a custom domain; the router stops answering to it.
pub(crate) async fn remove_domain(
    state: &ApiState,
    app: &App,
    user: &User,
    name: &str,
) -> Result<(), ApiError> {
    state.store.remove_domain(app, name, user).await?;
    control::hosts(state, &app.name).await
}

/// Makes one change of the app's routing switches, and waits (briefly) until the router has
/// it, so a request right after meets it.
pub(crate) async fn change_routing(
    state: &ApiState,
    app: &App,
    user: &User,
    change: &RoutingChange,
) -> Result<RoutingSettings, ApiError> {
    let changed = state.store.change_routing(app, change, user).await?;
    if let Some(work) = changed.work {
        control::await_hosts(state, &app.name, work).await?;
    }
    Ok(changed.settings)
}

/// Destroys the app and everything it owns; its processes stop and its directories go in
/// the release manager.
pub(crate) async fn destroy(state: &ApiState, app: &App, user: &User) -> Result<(), ApiError> {
    state.store.destroy_app(app, user).await?;
    control::queue(state, &app.name, WorkKind::Destroy).await?;
    tracing::info!(app = %app.name, by = %user.username, "app destroyed");
    Ok(())
}
