//! Test runs: an app's builds tested with the command its app.json or Procfile names, and
//! an existing build tested again (for CI jobs and `slip ci:run --build`).

use api_types::{CreateTestRun, ErrorBody, RunEvent, TestRun, TestRunStatus};
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use uuid::Uuid;

use super::Page;
use super::processes::{ndjson, relay_output, tokio_stream};
use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState, control};

/// The app's test runs, newest first, without their output.
#[utoipa::path(get, path = "/v1/apps/{app}/test-runs", tag = "ci", security(("token" = [])),
    params(("app" = String, Path), Page),
    responses((status = 200, body = Vec<TestRun>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<TestRun>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let Query(page) = page?;
    let runs = state.store.test_runs(&app, page.limit()).await?;
    Ok(Json(runs.into_iter().map(test_run).collect()))
}

/// One test run, with its output.
#[utoipa::path(get, path = "/v1/apps/{app}/test-runs/{number}", tag = "ci", security(("token" = [])),
    params(("app" = String, Path), ("number" = u64, Path)),
    responses((status = 200, body = TestRun), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, number)): Path<(String, String)>,
) -> Result<Json<TestRun>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let number = parse_number(&number)?;
    let run = state.store.test_run(&app, number).await?;
    let output = run.output.clone();
    let mut run = test_run(run);
    run.output = Some(output);
    Ok(Json(run))
}

/// Tests a build of the app again (the current release's when none is given). The response
/// streams newline-delimited JSON [`RunEvent`]s: a line naming the test run, each output
/// line, then the exit status.
#[utoipa::path(post, path = "/v1/apps/{app}/test-runs", tag = "ci", security(("token" = [])),
    params(("app" = String, Path)), request_body = CreateTestRun,
    responses((status = 200, content_type = "application/x-ndjson", body = RunEvent), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<CreateTestRun>, ApiError>,
) -> Result<Response, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Deploy).await?;
    let Json(body) = body?;
    let build_id = match body.build {
        Some(id) => id,
        None => current_build(&state, &app).await?,
    };
    let build = state.store.build(&app, build_id).await?;
    let image = match (build.status, &build.image) {
        (store::BuildStatus::Succeeded, Some(image)) => image.clone(),
        _ => {
            return Err(ApiError::Invalid(format!(
                "build {build_id} did not succeed with an image: test a build that did"
            )));
        }
    };
    let plan = state
        .store
        .build_test_plan(&app, build_id)
        .await?
        .ok_or_else(|| {
            ApiError::Invalid(format!(
                "build {build_id} has no test command: add scripts.test to app.json or a `test:` line to the Procfile, and push"
            ))
        })?;
    let event = |e: RunEvent| serde_json::to_string(&e).expect("events serialise") + "\n";
    if !state.config.deploys {
        return Ok(ndjson(Body::from(event(RunEvent::Error(
            control::NO_RUNTIME.to_owned(),
        )))));
    }
    let new = store::NewTestRun {
        build: build.id,
        commit: build.commit.as_deref(),
        image: &image,
        procfile: &build.procfile,
        plan: &plan,
        cause: store::TestCause::Api,
    };
    let run = state
        .store
        .create_test_run(&app, &new, &caller.user)
        .await?;
    let work = state
        .store
        .enqueue(&app.name, &store::WorkKind::Test { run: run.number })
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let first = format!(
        "-----> Running tests (test run #{}): {}",
        run.number, run.command
    );
    let _ = tx.try_send(Ok(event(RunEvent::Output(first))));
    let store = state.store.clone();
    tokio::spawn(async move {
        // The test run keeps its whole output, bounded, whatever the reader misses.
        let followed = relay_output(&store, work, &tx).await;
        let reason = match followed {
            Ok(Some(store::WorkOutcome::Failed { reason, .. })) => Some(reason),
            Ok(Some(store::WorkOutcome::Succeeded { .. })) => None,
            Ok(None) => Some("the test run did not finish".to_owned()),
            Err(err) => {
                tracing::error!(error = %err, "cannot follow a test run");
                Some("cannot follow the test run; the server log has the details".to_owned())
            }
        };
        if let Some(reason) = &reason {
            // One that never ran (no release manager could) ends here.
            let _ = store
                .finish_test_run(&app, run.number, store::TestStatus::Errored, None, reason)
                .await;
        }
        let last = match store.test_run(&app, run.number).await {
            Ok(done) => match (done.status, done.exit_status) {
                (store::TestStatus::Succeeded | store::TestStatus::Failed, Some(code)) => {
                    RunEvent::Exit(code)
                }
                _ => RunEvent::Error(format!(
                    "test run #{} could not run{}",
                    run.number,
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                )),
            },
            Err(err) => {
                tracing::error!(error = %err, "cannot read a test run");
                RunEvent::Error(
                    "cannot read the test run; the server log has the details".to_owned(),
                )
            }
        };
        let _ = tx.send(Ok(event(last))).await;
    });
    Ok(ndjson(Body::from_stream(tokio_stream(rx))))
}

/// The build of the app's current release: the newest succeeded one with a build.
async fn current_build(state: &ApiState, app: &store::App) -> Result<Uuid, ApiError> {
    let releases = state.store.releases(app, 100).await?;
    releases
        .iter()
        .find(|r| r.status == domain::ReleaseStatus::Succeeded && r.build.is_some())
        .and_then(|r| r.build)
        .ok_or_else(|| {
            ApiError::Invalid(format!(
                "{} has no deployed build to test: push code, or give a build with --build ID",
                app.name
            ))
        })
}

fn parse_number(text: &str) -> Result<u64, ApiError> {
    text.trim_start_matches('#')
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::Invalid(format!("invalid test run number {text:?}: give it as 4")))
}

fn test_run(run: store::TestRun) -> TestRun {
    TestRun {
        number: run.number,
        build: run.build,
        commit: run.commit,
        image: run.image,
        command: run.command,
        cause: run.cause.as_str().to_owned(),
        status: match run.status {
            store::TestStatus::Running => TestRunStatus::Running,
            store::TestStatus::Succeeded => TestRunStatus::Succeeded,
            store::TestStatus::Failed => TestRunStatus::Failed,
            store::TestStatus::Errored => TestRunStatus::Errored,
        },
        exit_status: run.exit_status,
        created_by: run.created_by,
        created_at: run.created_at,
        finished_at: run.finished_at,
        output: None,
    }
}
