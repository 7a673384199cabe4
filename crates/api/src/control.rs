//! How the API asks for work on an app: it writes what should be (the store already has the
//! release, the formation, the domains) and queues the work a release manager converges by,
//! in whichever process that runs. Calls that answer with the result wait for it.

use domain::{AppName, ReleaseVersion};
use store::{Fault, WorkId, WorkKind, WorkOutcome};

use crate::{ApiError, ApiState};

/// What a platform without a runtime answers when asked to run something.
pub(crate) const NO_RUNTIME: &str = "this platform has no runtime, so nothing runs";

/// Queues the deploy of a committed release and returns at once; `slip` follows the
/// release's status. Without a runtime the release stays `pending`.
pub(crate) async fn deploy(
    state: &ApiState,
    app: &AppName,
    version: ReleaseVersion,
) -> Result<(), ApiError> {
    if state.config.deploys {
        let kind = WorkKind::Deploy {
            version,
            awaits_ref: false,
        };
        state.store.enqueue(app, &kind).await?;
    }
    Ok(())
}

/// Queues work and returns at once.
pub(crate) async fn queue(state: &ApiState, app: &AppName, kind: WorkKind) -> Result<(), ApiError> {
    if state.config.deploys {
        state.store.enqueue(app, &kind).await?;
    }
    Ok(())
}

/// How long a change of an app's hosts waits for the router to learn it before answering.
const HOSTS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Queues an update of the app's hosts (it was created, or a custom domain changed) and waits,
/// briefly, until the router has it: a request right after the answer finds the app. A
/// release manager that is slower (or not running) updates it later.
pub(crate) async fn hosts(state: &ApiState, app: &AppName) -> Result<(), ApiError> {
    if !state.config.deploys {
        return Ok(());
    }
    let work = state.store.enqueue(app, &WorkKind::Hosts).await?;
    await_hosts(state, app, work).await
}

/// Waits, briefly, until a release manager has done the hosts work queued with a change, so
/// a request right after the answer meets it.
pub(crate) async fn await_hosts(
    state: &ApiState,
    app: &AppName,
    work: WorkId,
) -> Result<(), ApiError> {
    if !state.config.deploys {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + HOSTS_WAIT;
    if state
        .store
        .await_work(work, Some(deadline), |_| {})
        .await?
        .is_none()
    {
        tracing::warn!(%app, "no release manager updated the app's hosts within 10 s; it will");
    }
    Ok(())
}

/// Queues work and waits until a release manager has done it.
pub(crate) async fn request(
    state: &ApiState,
    app: &AppName,
    kind: WorkKind,
) -> Result<Option<i32>, ApiError> {
    if !state.config.deploys {
        return Err(ApiError::Conflict(NO_RUNTIME.to_owned()));
    }
    let work = state.store.enqueue(app, &kind).await?;
    wait(state, work).await
}

/// Waits until a release manager has done work the store queued along with a change.
pub(crate) async fn wait(state: &ApiState, work: WorkId) -> Result<Option<i32>, ApiError> {
    let outcome = state
        .store
        .await_work(work, None, |_| {})
        .await?
        .expect("no deadline");
    outcome_result(outcome)
}

/// A finished piece of work as the API answers it.
pub(crate) fn outcome_result(outcome: WorkOutcome) -> Result<Option<i32>, ApiError> {
    match outcome {
        WorkOutcome::Succeeded { exit_status } => Ok(exit_status),
        WorkOutcome::Failed { fault, reason } => Err(match fault {
            Fault::Invalid => ApiError::Invalid(reason),
            Fault::Unavailable | Fault::Failed => ApiError::Conflict(reason),
        }),
    }
}
