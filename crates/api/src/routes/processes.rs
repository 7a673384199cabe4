//! An app's running processes, their logs, and one-off processes: what the release manager
//! runs, as the app's owner sees it.

use api_types::{ErrorBody, Process, Restart, RunCommand, RunEvent};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use logs::{Followed, LogFilter, Logs};

use crate::auth::{CurrentUser, Need, authorize};
use crate::convert;
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState};

/// The longest command `run` takes.
const MAX_COMMAND: usize = 16 * 1024;

#[utoipa::path(get, path = "/v1/apps/{app}/processes", tag = "processes", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<Process>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Vec<Process>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
    let processes = state.deployer.processes(&app.name).await?;
    Ok(Json(processes.into_iter().map(convert::process).collect()))
}

/// Replaces the app's processes (of one type, or all) with fresh ones of the same release;
/// answers once the new ones are healthy and serving.
#[utoipa::path(post, path = "/v1/apps/{app}/processes/restart", tag = "processes", security(("token" = [])),
    params(("app" = String, Path)), request_body = Restart,
    responses((status = 200, body = Vec<Process>), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn restart(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    body: Result<Json<Restart>, ApiError>,
) -> Result<Json<Vec<Process>>, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Write).await?;
    let Json(body) = body?;
    if let Some(t) = &body.process_type {
        domain::ProcessType::parse(t)?;
    }
    state
        .deployer
        .restart(&app.name, body.process_type.as_deref())
        .await?;
    let processes = state.deployer.processes(&app.name).await?;
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
    caller: CurrentUser,
    Path(name): Path<String>,
    query: Result<Query<LogQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Read).await?;
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
    caller: CurrentUser,
    Path(name): Path<String>,
    body: Result<Json<RunCommand>, ApiError>,
) -> Result<Response, ApiError> {
    let app = authorize(&state, &caller.user, &name, Need::Write).await?;
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
    // Bounded: a caller who reads slower than the command prints misses lines, with a count.
    let (lines_tx, mut lines_rx) = logs::LineSender::channel(releaser::READER_LAG);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let deployer = state.deployer.clone();
    let app_name = app.name.clone();
    tokio::spawn(async move {
        let event = |e: RunEvent| serde_json::to_string(&e).expect("events serialise") + "\n";
        let running = deployer.run(&app_name, &command, lines_tx);
        tokio::pin!(running);
        let outcome = loop {
            tokio::select! {
                Some(line) = lines_rx.recv() => {
                    if tx.send(Ok(event(RunEvent::Output(line)))).await.is_err() {
                        // The caller went away: dropping `running` stops the process.
                        return;
                    }
                }
                outcome = &mut running => break outcome,
            }
        };
        while let Some(line) = lines_rx.try_recv() {
            let _ = tx.send(Ok(event(RunEvent::Output(line)))).await;
        }
        let last = match outcome {
            Ok(status) => RunEvent::Exit(status),
            Err(err) => RunEvent::Error(err.to_string()),
        };
        let _ = tx.send(Ok(event(last))).await;
    });
    let mut response = Response::new(Body::from_stream(tokio_stream(rx)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// A channel's receiving end as a stream of body chunks.
fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
