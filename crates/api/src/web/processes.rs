//! What runs: the formation and its scale controls, the processes with their state and
//! restarts, and the app's log, live.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use logs::{LogFilter, LogLine};
use store::Need;
use time::OffsetDateTime;

use super::session::{Posted, Viewer};
use super::view::{self, Chrome, Done, Notice, Tab};
use super::{AppView, WebError, apps};
use crate::{ApiError, ApiState, actions};

#[derive(serde::Deserialize)]
pub(super) struct ScaleForm {
    process_type: String,
    count: String,
}

/// `POST /apps/{app}/formation`: one process type's count, as `slip ps:scale web=2`.
pub(super) async fn scale(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<ScaleForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    let arg = format!("{}={}", form.process_type.trim(), form.count.trim());
    match actions::scale(&state, &app.app, &viewer.user, [arg.as_str()]).await {
        Ok(_) => Ok(view::done(
            &format!("/apps/{}", app.app.name),
            "scaled",
            None,
        )),
        Err(err) => {
            let (notice, status) = view::refusal(err)?;
            apps::overview_page(&state, &viewer, &app, Some(notice), status).await
        }
    }
}

pub(super) struct ProcessRow {
    name: String,
    command: String,
    release: i64,
    state: String,
    state_class: &'static str,
    since: String,
    since_iso: String,
    restarts: i32,
}

#[derive(Template)]
#[template(path = "processes.html")]
struct ProcessesPage {
    chrome: Chrome,
    processes: Vec<ProcessRow>,
    types: Vec<String>,
    can_write: bool,
}

/// `GET /apps/{app}/processes`.
pub(super) async fn page(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    processes_page(&state, &viewer, &app, done.notice(), StatusCode::OK).await
}

async fn processes_page(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let records = state.store.processes(&app.app.name).await?;
    let mut types: Vec<String> = records.iter().map(|p| p.process_type.clone()).collect();
    types.sort();
    types.dedup();
    let processes = records
        .into_iter()
        .map(|p| ProcessRow {
            state_class: match p.state.as_str() {
                "up" => "ok",
                "crashed" => "bad",
                _ => "busy",
            },
            since: view::ago(p.since, now),
            since_iso: view::iso(p.since),
            name: p.name,
            command: p.command,
            release: p.release,
            state: p.state,
            restarts: p.restarts,
        })
        .collect();
    let page = ProcessesPage {
        chrome: Chrome::app(viewer, &app.app, Tab::Processes).with_notice(notice),
        processes,
        types,
        can_write: app.can_write,
    };
    Ok((status, view::html(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct RestartForm {
    #[serde(default)]
    process_type: String,
}

/// `POST /apps/{app}/processes/restart`: all processes, or one type's; answers once the
/// new ones serve.
pub(super) async fn restart(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<RestartForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    let process_type = Some(form.process_type.trim().to_owned()).filter(|t| !t.is_empty());
    match actions::restart(&state, &app.app, process_type).await {
        Ok(()) => Ok(view::done(
            &format!("/apps/{}/processes", app.app.name),
            "restarted",
            None,
        )),
        Err(err) => {
            let (notice, status) = view::refusal(err)?;
            processes_page(&state, &viewer, &app, Some(notice), status).await
        }
    }
}

/// Past lines the logs page opens with.
const PAST_LINES: usize = 200;

/// One log line as HTML: the same markup on the page and in the live feed, escaped by the
/// template (an app's output is never markup).
#[derive(Template)]
#[template(path = "log_line.html")]
struct LogLineView<'a> {
    time: String,
    iso: String,
    source: &'a str,
    text: &'a str,
}

pub(super) fn render_line(line: &LogLine) -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second].[subsecond digits:3]");
    LogLineView {
        time: line.at.format(format).unwrap_or_default(),
        iso: view::iso(line.at),
        source: &line.source,
        text: &line.text,
    }
    .render()
    .unwrap_or_default()
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct LogQuery {
    #[serde(default)]
    process: Option<String>,
    #[serde(default)]
    paused: bool,
}

impl LogQuery {
    fn process(&self) -> String {
        self.process
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty() && p.len() <= 64)
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    chrome: Chrome,
    lines: Vec<String>,
    sources: Vec<String>,
    process: String,
    /// The live part, rendered ([`LogFeed`]).
    feed: String,
}

/// The live part of the logs page: connected, or paused.
#[derive(Template)]
#[template(path = "log_feed.html")]
pub(super) struct LogFeed {
    app: String,
    process: String,
    process_query: String,
    paused: bool,
}

/// `GET /apps/{app}/logs[?process=web]`: the last lines, then new ones as they come.
pub(super) async fn logs(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    let process = query.process();
    let filter = LogFilter {
        source: Some(process.clone()).filter(|p| !p.is_empty()),
    };
    let past = state
        .logs
        .tail(&app.app.name, PAST_LINES, &filter)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut sources: Vec<String> = state
        .store
        .processes(&app.app.name)
        .await?
        .into_iter()
        .flat_map(|p| [p.process_type, p.name])
        .chain(["router".to_owned(), "release".to_owned()])
        .collect();
    sources.sort();
    sources.dedup();
    let page = LogsPage {
        chrome: Chrome::app(&viewer, &app.app, Tab::Logs),
        lines: past.iter().map(render_line).collect(),
        sources,
        feed: feed(&app, process.clone(), query.paused)
            .render()
            .map_err(|e| ApiError::Internal(format!("rendering the log feed: {e}")))?,
        process,
    };
    Ok(view::html(&page))
}

fn feed(app: &AppView, process: String, paused: bool) -> LogFeed {
    LogFeed {
        app: app.app.name.to_string(),
        process_query: view::query_escape(&process),
        process,
        paused,
    }
}

/// `GET /apps/{app}/logs/feed?paused=…`: the feed alone, for htmx to swap in on pause and
/// resume (a paused feed has no connection; resuming opens a new one).
pub(super) async fn log_feed(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    Ok(view::html(&feed(&app, query.process(), query.paused)))
}

/// One window's numbers, as the page shows them.
pub(super) struct WindowView {
    name: &'static str,
    requests: u64,
    per_minute: String,
    p50: String,
    p95: String,
    p99: String,
    errors: String,
    charts: Vec<crate::charts::Chart>,
}

impl WindowView {
    fn new(name: &'static str, window: crate::charts::MetricsWindow) -> WindowView {
        let ms = |d: Option<std::time::Duration>| {
            d.map_or_else(
                || "–".to_owned(),
                |d| format!("{:.0} ms", d.as_secs_f64() * 1_000.0),
            )
        };
        let summary = &window.summary;
        WindowView {
            name,
            requests: summary.requests,
            per_minute: format!("{:.1}", summary.requests_per_minute),
            p50: ms(summary.p50),
            p95: ms(summary.p95),
            p99: ms(summary.p99),
            errors: summary
                .error_rate
                .map_or_else(|| "–".to_owned(), |r| format!("{:.2} %", r * 100.0)),
            charts: window.charts,
        }
    }
}

#[derive(Template)]
#[template(path = "metrics.html")]
struct MetricsPage {
    chrome: Chrome,
    windows: Vec<WindowView>,
}

/// `GET /apps/{app}/metrics`: what the router answered for the app over the last hour and
/// day — requests per minute, latency percentiles, the 5xx rate — as numbers and SVG charts.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    let metrics =
        crate::charts::app_metrics(&state.store, &app.app, OffsetDateTime::now_utc()).await?;
    let page = MetricsPage {
        chrome: Chrome::app(&viewer, &app.app, Tab::Metrics),
        windows: vec![
            WindowView::new("Last hour", metrics.hour),
            WindowView::new("Last day", metrics.day),
        ],
    };
    Ok(view::html(&page))
}
