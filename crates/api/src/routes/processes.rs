//! An app's running processes, their logs, and one-off processes: what the release manager
//! runs, as the app's owner sees it.

use api_types::{ErrorBody, Process, Restart, RunCommand, RunEvent};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use logs::{Followed, LogFilter, Logs};

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};
use crate::{actions, control, convert};
use store::WorkKind;

/// The longest command `run` takes.
const MAX_COMMAND: usize = 16 * 1024;

#[utoipa::path(get, path = "/v1/apps/{app}/processes", tag = "processes", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<Process>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Vec<Process>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let processes = state.store.processes(&app.name).await?;
    Ok(Json(processes.into_iter().map(convert::process).collect()))
}

/// Replaces the app's processes (of one type, or all) with fresh ones of the same release;
/// answers once the new ones are healthy and serving.
#[utoipa::path(post, path = "/v1/apps/{app}/processes/restart", tag = "processes", security(("token" = [])),
    params(("app" = String, Path)), request_body = Restart,
    responses((status = 200, body = Vec<Process>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn restart(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<Restart>, ApiError>,
) -> Result<Json<Vec<Process>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    actions::restart(&state, &app, body.process_type).await?;
    let processes = state.store.processes(&app.name).await?;
    Ok(Json(processes.into_iter().map(convert::process).collect()))
}

/// `?lines=N&process=web&follow=true` on the log.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LogQuery {
    /// How many past lines (default 100, at most 1,500).
    lines: Option<usize>,
    /// Only this source: a process type (`web`), a process (`web.1`), `router`, `release`.
    process: Option<String>,
    /// Keep the response open and send new lines as they are written.
    #[serde(default)]
    follow: bool,
}

/// The app's log as text, one line each: `<time> <source>: <text>`.
#[utoipa::path(get, path = "/v1/apps/{app}/logs", tag = "processes", security(("token" = [])),
    params(("app" = String, Path), LogQuery),
    responses((status = 200, content_type = "text/plain", body = String), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn logs(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    query: Result<Query<LogQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let Query(query) = query?;
    let n = query.lines.unwrap_or(100).min(Logs::KEPT);
    let filter = LogFilter {
        source: query.process.filter(|p| !p.is_empty()),
    };
    let body = if query.follow {
        let (past, mut live) = state
            .logs
            .follow(&app.name, n, &filter)
            .await
            .map_err(unreadable)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
        tokio::spawn(async move {
            let text: String = past.iter().map(|l| format!("{l}\n")).collect();
            if !text.is_empty() && tx.send(Ok(text)).await.is_err() {
                return;
            }
            loop {
                let next = tokio::select! {
                    next = live.next() => next,
                    () = tx.closed() => return,
                };
                let text = match next {
                    Some(Followed::Line(line)) => format!("{line}\n"),
                    Some(Followed::Missed(missed)) => {
                        format!("(slipway: {missed} lines skipped: the reader fell behind)\n")
                    }
                    None => return,
                };
                if tx.send(Ok(text)).await.is_err() {
                    return;
                }
            }
        });
        Body::from_stream(tokio_stream(rx))
    } else {
        let text: String = state
            .logs
            .tail(&app.name, n, &filter)
            .await
            .map_err(unreadable)?
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        Body::from(text)
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// A log the platform cannot read is the platform's failure, not the caller's.
fn unreadable(err: logs::LogError) -> ApiError {
    ApiError::Internal(err.to_string())
}

/// Runs a command once with the app's current release and config. The response streams
/// newline-delimited JSON [`RunEvent`]s: each output line, then the exit status.
#[utoipa::path(post, path = "/v1/apps/{app}/run", tag = "processes", security(("token" = [])),
    params(("app" = String, Path)), request_body = RunCommand,
    responses((status = 200, content_type = "application/x-ndjson", body = RunEvent), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn run(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<RunCommand>, ApiError>,
) -> Result<Response, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let command = body.command.trim().to_owned();
    if command.is_empty() {
        return Err(ApiError::Invalid("give a command to run".to_owned()));
    }
    if command.len() > MAX_COMMAND || command.contains('\0') {
        return Err(ApiError::Invalid(format!(
            "the command must be at most {MAX_COMMAND} bytes of text"
        )));
    }
    let event = |e: RunEvent| serde_json::to_string(&e).expect("events serialise") + "\n";
    if !state.config.deploys {
        // The stream's one event says why nothing ran.
        return Ok(ndjson(Body::from(event(RunEvent::Error(
            control::NO_RUNTIME.to_owned(),
        )))));
    }
    // A release manager runs it, perhaps in another process; its output comes back through
    // the store, where it is bounded.
    let work = state
        .store
        .enqueue(&app.name, &WorkKind::Run { command })
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let store = state.store.clone();
    tokio::spawn(async move {
        // One who goes away stops reading, and the command runs to its end.
        let followed = relay_output(&store, work, &tx).await;
        let last = match followed {
            Ok(Some(outcome)) => match control::outcome_result(outcome) {
                Ok(status) => RunEvent::Exit(status.unwrap_or(0)),
                Err(err) => RunEvent::Error(err.to_string()),
            },
            Ok(None) => RunEvent::Error("the command did not finish".to_owned()),
            Err(err) => {
                tracing::error!(error = %err, "cannot follow a one-off process");
                RunEvent::Error(
                    "cannot follow the command; the server log has the details".to_owned(),
                )
            }
        };
        let _ = tx.send(Ok(event(last))).await;
    });
    Ok(ndjson(Body::from_stream(tokio_stream(rx))))
}

/// Follows a piece of work's output lines into `tx` as [`RunEvent::Output`] events until it
/// ends, and gives its outcome. A reader slower than the work misses lines, with a count at
/// the end; one that went away is no longer written to. The work's output stays bounded in
/// the store either way.
pub(super) async fn relay_output(
    store: &store::Store,
    work: store::WorkId,
    tx: &tokio::sync::mpsc::Sender<Result<String, std::io::Error>>,
) -> Result<Option<store::WorkOutcome>, store::Error> {
    let event = |e: RunEvent| serde_json::to_string(&e).expect("events serialise") + "\n";
    let mut missed = 0u64;
    let followed = store
        .await_work(work, None, |line| {
            if tx.is_closed() {
                return;
            }
            if tx
                .try_send(Ok(event(RunEvent::Output(line.to_owned()))))
                .is_err()
            {
                missed += 1;
            }
        })
        .await;
    if missed > 0 {
        let note = format!("(slipway: {missed} lines skipped: the reader fell behind)");
        let _ = tx.send(Ok(event(RunEvent::Output(note)))).await;
    }
    followed
}

pub(super) fn ndjson(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A channel's receiving end as a stream of body chunks.
pub(super) fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
