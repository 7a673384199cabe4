//! Server-sent events for the pages that change while they are open: the app's log as lines
//! are written, and a running build's log as it grows. Each event's data is HTML the page
//! appends, escaped like the page itself; both streams are bounded (a slow reader misses
//! log lines, with a count; a build's log is bounded by the builder) and end when the
//! browser goes away.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use logs::{Followed, LogFilter};
use store::{BuildStatus, Need};
use uuid::Uuid;

use super::processes::render_line;
use super::session::Viewer;
use super::{AppView, WebError, activity};
use crate::{ApiError, ApiState};

/// How often a running build's log is looked at (the gateway writes it every second).
const BUILD_POLL: Duration = Duration::from_millis(500);
/// A build page's stream ends after this long, whatever the build is doing.
const BUILD_WATCH: Duration = Duration::from_secs(3_600);

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct LiveLogQuery {
    #[serde(default)]
    process: Option<String>,
}

/// `GET /apps/{app}/logs/live[?process=web]`: new lines of the app's log, each an `line`
/// event whose data is the line's `<li>`.
pub(super) async fn logs(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<LiveLogQuery>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    let filter = LogFilter {
        source: query
            .process
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty() && p.len() <= 64),
    };
    let (_, mut follow) = state
        .logs
        .follow(&app.app.name, 0, &filter)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let events = async_stream(move |tx| async move {
        loop {
            let next = tokio::select! {
                next = follow.next() => next,
                () = tx.closed() => return,
            };
            let Some(next) = next else { return };
            let html = match next {
                Followed::Line(line) => render_line(&line),
                Followed::Missed(n) => {
                    format!(r#"<li class="missed">{n} lines skipped: the page fell behind</li>"#)
                }
            };
            if tx
                .send(Event::default().event("line").data(html))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(sse(events))
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct BuildLogQuery {
    /// How many bytes of the log the page has already.
    #[serde(default)]
    from: usize,
}

/// `GET /apps/{app}/builds/{build}/live?from=N`: what the build's log gained past byte `N`
/// (`chunk` events of escaped text), then its final status (`status`) and `done`.
pub(super) async fn build(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((name, id)): Path<(String, String)>,
    Query(query): Query<BuildLogQuery>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| WebError::Page(StatusCode::NOT_FOUND, format!("{name} has no build {id}")))?;
    let store = state.store.clone();
    let app = app.app;
    let events = async_stream(move |tx| async move {
        let mut sent = query.from;
        let deadline = tokio::time::Instant::now() + BUILD_WATCH;
        let mut every = tokio::time::interval(BUILD_POLL);
        while tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = every.tick() => {}
                () = tx.closed() => return,
            }
            let (Ok(build), Ok(log)) =
                (store.build(&app, id).await, store.build_log(&app, id).await)
            else {
                return;
            };
            if log.len() > sent {
                // The log only grows, by whole lines; a start inside a character (a page
                // that asked for a byte in the middle of one) moves to the next boundary.
                let start = (sent..=log.len())
                    .find(|i| log.is_char_boundary(*i))
                    .unwrap_or(log.len());
                let chunk = escape(&log[start..]);
                sent = log.len();
                if tx
                    .send(Event::default().event("chunk").data(chunk))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if build.status != BuildStatus::Running {
                let badge = activity::build_badge(build.status);
                let _ = tx.send(Event::default().event("status").data(badge)).await;
                let _ = tx.send(Event::default().event("done").data("done")).await;
                return;
            }
        }
    });
    Ok(sse(events))
}

/// HTML-escapes text for the log's `<pre>`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Through a proxy that buffers (nginx), events would arrive in lumps.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

/// A stream fed by a task: `produce` sends events until it is done or the reader is gone
/// (the channel holds a few; a browser that stops reading stops the task).
fn async_stream<F, Fut>(produce: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(produce(tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_text_is_escaped_for_html() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#x27;x&#x27;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
