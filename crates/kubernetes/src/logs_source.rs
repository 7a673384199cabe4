//! [`PodLogs`]: an app's log on Kubernetes — the platform's own lines (deploys, restarts,
//! the router's) merged with its pods' output, read from the API server's pod log API.
//!
//! Each pod's lines come with the container runtime's timestamps; a line is named after its
//! process, `web.5d8f7c9b4-x2x7z` (the pod's name without `<app>-`), so `slip logs -p web`
//! finds it as it finds `web.1` on one machine.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use domain::AppName;
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use logs::{Follow, Followed, LogError, LogFilter, LogLine, LogSource};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use crate::render;

/// The longest line kept of a pod's output; the rest of it is cut.
const MAX_LINE: usize = 16 * 1024;
/// Lines held for a follower; one further behind misses lines and is told how many.
const FOLLOW_QUEUE: usize = 1_024;

/// Reads an app's log from its pods, and the platform's lines from `platform`.
#[derive(Clone)]
pub struct PodLogs {
    client: Client,
    platform: Arc<dyn LogSource>,
}

impl std::fmt::Debug for PodLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLogs").finish_non_exhaustive()
    }
}

impl PodLogs {
    pub fn new(client: Client, platform: Arc<dyn LogSource>) -> PodLogs {
        PodLogs { client, platform }
    }

    /// Reads pods' logs from the cluster of the usual configuration (as
    /// [`KubeRuntime::connect`](crate::KubeRuntime::connect)).
    pub async fn connect(
        kubeconfig: Option<&std::path::Path>,
        platform: Arc<dyn LogSource>,
    ) -> Result<PodLogs, crate::Error> {
        let client = crate::runtime::client(kubeconfig).await?;
        Ok(PodLogs::new(client, platform))
    }

    async fn pods(&self, app: &AppName) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &render::namespace_name(app));
        match api.list(&ListParams::default().labels(&ours(app))).await {
            Ok(pods) => pods.items,
            Err(err) => {
                tracing::warn!(%app, error = %err, "cannot list the app's pods for its log");
                Vec::new()
            }
        }
    }
}

/// `web.5d8f7c9b4-x2x7z` for pod `demo-web-5d8f7c9b4-x2x7z` of type `web`.
fn source_of(app: &AppName, pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref()?;
    let process_type = pod.metadata.labels.as_ref()?.get(render::COMPONENT)?;
    let rest = name
        .strip_prefix(&format!("{app}-{process_type}-"))
        .unwrap_or(name);
    Some(format!("{process_type}.{rest}"))
}

/// A line of `kubectl logs --timestamps`: an RFC 3339 time, a space, the text.
fn parse_line(source: &str, line: &str) -> LogLine {
    let (at, text) = match line.split_once(' ') {
        Some((at, text)) => match OffsetDateTime::parse(at, &Rfc3339) {
            Ok(at) => (at, text),
            Err(_) => (OffsetDateTime::now_utc(), line),
        },
        None => (OffsetDateTime::now_utc(), line),
    };
    let mut text = text.to_owned();
    if text.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    LogLine {
        at,
        source: source.to_owned(),
        text,
    }
}

fn log_params(n: usize, follow: bool) -> LogParams {
    LogParams {
        container: Some(render::CONTAINER.to_owned()),
        follow,
        timestamps: true,
        tail_lines: Some(i64::try_from(n).unwrap_or(i64::MAX)),
        // However long its lines, a pod's tail is read within a bound.
        limit_bytes: (!follow)
            .then(|| i64::try_from(n.saturating_mul(MAX_LINE)).unwrap_or(i64::MAX)),
        ..LogParams::default()
    }
}

/// The label selector of the pods Slipway made for `app`.
fn ours(app: &AppName) -> String {
    format!(
        "{}={},{}={}",
        render::NAME,
        app,
        render::MANAGED_BY,
        render::SLIPWAY
    )
}

/// Whether `pod`'s container runs, so its log can be followed.
fn running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Reads `pod`'s log with `params` into `send`, bounded and paced, until it ends. Opening the
/// stream is part of it: a server may hold its answer until the pod prints something.
fn follow_pod(
    api: &Api<Pod>,
    app: &AppName,
    pod: &Pod,
    params: LogParams,
    send: &Arc<impl Fn(LogLine) + Send + Sync + 'static>,
    filter: &LogFilter,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let name = pod.metadata.name.clone()?;
    let source = source_of(app, pod)?;
    let (api, send, filter) = (api.clone(), Arc::clone(send), filter.clone());
    Some(async move {
        let Ok(stream) = api.log_stream(&name, &params).await else {
            return;
        };
        let sink = move |line: &str| {
            let line = parse_line(&source, line);
            if filter.matches(&line) {
                send(line);
            }
        };
        let reader = tokio_util::compat::FuturesAsyncReadCompatExt::compat(stream);
        logs::read_lines(Some(reader), &sink, &logs::Pace::default()).await;
    })
}

#[async_trait]
impl LogSource for PodLogs {
    async fn tail(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<Vec<LogLine>, LogError> {
        let mut lines = self.platform.tail(app, n, filter).await?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &render::namespace_name(app));
        for pod in self.pods(app).await {
            let (Some(name), Some(source)) = (pod.metadata.name.as_deref(), source_of(app, &pod))
            else {
                continue;
            };
            // A pod that has not started has no log yet.
            let Ok(text) = api.logs(name, &log_params(n, false)).await else {
                continue;
            };
            lines.extend(
                text.lines()
                    .map(|l| parse_line(&source, l))
                    .filter(|l| filter.matches(l)),
            );
        }
        lines.sort_by_key(|l| l.at);
        let skip = lines.len().saturating_sub(n);
        Ok(lines.split_off(skip))
    }

    async fn follow(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<(Vec<LogLine>, Follow), LogError> {
        let past = self.tail(app, n, filter).await?;
        let (_, mut platform) = self.platform.follow(app, 0, filter).await?;
        let (tx, rx) = mpsc::channel(FOLLOW_QUEUE);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &render::namespace_name(app));
        let pods = self.pods(app).await;
        let app = app.clone();
        let filter = filter.clone();
        let task = tokio::spawn(async move {
            let missed = Arc::new(AtomicU64::new(0));
            let send = {
                let tx = tx.clone();
                let missed = Arc::clone(&missed);
                Arc::new(move |line: LogLine| {
                    let lost = missed.swap(0, Ordering::Relaxed);
                    if lost > 0 && tx.try_send(Followed::Missed(lost)).is_err() {
                        missed.fetch_add(lost, Ordering::Relaxed);
                    }
                    if tx.try_send(Followed::Line(line)).is_err() {
                        missed.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            // Each pod's output is read by a task of its own, cut into lines of at most
            // MAX_LINE bytes; dropping the set stops them all. The pods there now are read
            // from here on (what came before is in `past`); pods that start later, from
            // their first line.
            let mut readers = tokio::task::JoinSet::new();
            let mut following = HashSet::new();
            for pod in pods.iter().filter(|p| running(p)) {
                let from_now = LogParams {
                    tail_lines: Some(0),
                    ..log_params(0, true)
                };
                if let Some(reader) = follow_pod(&api, &app, pod, from_now, &send, &filter) {
                    following.insert(pod.metadata.name.clone().unwrap_or_default());
                    readers.spawn(reader);
                }
            }
            let started =
                watcher::watcher(api.clone(), watcher::Config::default().labels(&ours(&app)))
                    .applied_objects()
                    .boxed();
            let mut started = started.fuse();
            loop {
                tokio::select! {
                    line = platform.next() => match line {
                        Some(Followed::Line(line)) => send(line),
                        Some(Followed::Missed(lost)) => {
                            missed.fetch_add(lost, Ordering::Relaxed);
                        }
                        None => return,
                    },
                    Some(pod) = started.next() => {
                        let Ok(pod) = pod else { continue };
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        if !running(&pod) || following.contains(&name) {
                            continue;
                        }
                        let from_start = LogParams { tail_lines: None, ..log_params(0, true) };
                        if let Some(reader) = follow_pod(&api, &app, &pod, from_start, &send, &filter) {
                            following.insert(name);
                            readers.spawn(reader);
                        }
                    }
                    () = tx.closed() => return,
                }
            }
        });
        Ok((past, Follow::from_task(rx, task)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamped_line_keeps_its_time_and_text() {
        let line = parse_line("web.abc", "2026-11-29T12:00:01.5Z hello world");
        assert_eq!(line.source, "web.abc");
        assert_eq!(line.text, "hello world");
        assert_eq!(line.at.unix_timestamp(), 1_795_953_601);
        let bare = parse_line("web.abc", "no time here");
        assert_eq!(bare.text, "no time here");
        let long = parse_line(
            "web.abc",
            &format!("2026-11-29T12:00:01Z {}", "é".repeat(MAX_LINE)),
        );
        assert!(long.text.len() <= MAX_LINE);
    }
}
