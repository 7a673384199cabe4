//! Apps' log streams: timestamped lines tagged by source (`web.1`, `router`, `release`,
//! `slipway`), the last [`Logs::KEPT`] kept per app, and followers told of each new line.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::sync::broadcast;

/// One line of an app's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at: OffsetDateTime,
    /// Who wrote it: a process (`web.1`), `router`, `release`, `run.1` or `slipway`.
    pub source: String,
    pub text: String,
}

/// Times in UTC to the microsecond, always the same width, so lines align.
const TIME: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.format(TIME).map_err(|_| fmt::Error)?;
        write!(f, "{at} {}: {}", self.source, self.text)
    }
}

/// Which lines a reader wants: all, or one source. A process type (`web`) matches each of
/// its processes (`web.1`, `web.2`); anything else matches exactly (`web.2`, `router`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub source: Option<String>,
}

impl LogFilter {
    pub fn matches(&self, line: &LogLine) -> bool {
        match &self.source {
            None => true,
            Some(wanted) => {
                line.source == *wanted
                    || line
                        .source
                        .strip_prefix(wanted.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            }
        }
    }
}

#[derive(Debug)]
struct AppLog {
    lines: VecDeque<LogLine>,
    followers: broadcast::Sender<LogLine>,
}

impl AppLog {
    fn new() -> AppLog {
        AppLog {
            lines: VecDeque::with_capacity(64),
            followers: broadcast::channel(1_024).0,
        }
    }

    /// The last `n` lines that pass `filter`, oldest first.
    fn last(&self, n: usize, filter: &LogFilter) -> Vec<LogLine> {
        let mut lines: Vec<LogLine> = self
            .lines
            .iter()
            .rev()
            .filter(|l| filter.matches(l))
            .take(n)
            .cloned()
            .collect();
        lines.reverse();
        lines
    }
}

/// Every app's log, shared by the release manager, the runtime and the router (which write)
/// and the API (which reads and follows).
#[derive(Debug, Clone, Default)]
pub struct Logs {
    apps: Arc<Mutex<HashMap<String, AppLog>>>,
}

impl Logs {
    /// Lines kept per app.
    pub const KEPT: usize = 1_500;
    /// Longest line kept; the rest of a longer one is cut off.
    pub const MAX_LINE: usize = 8 * 1024;

    /// Appends a line to `app`'s log.
    pub fn push(&self, app: &str, source: &str, text: &str) {
        let mut text = text.trim_end_matches(['\r', '\n']).to_owned();
        if text.len() > Self::MAX_LINE {
            let mut cut = Self::MAX_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let line = LogLine {
            at: OffsetDateTime::now_utc(),
            source: source.to_owned(),
            text,
        };
        let mut apps = self.apps.lock().expect("never poisoned");
        let log = apps.entry(app.to_owned()).or_insert_with(AppLog::new);
        if log.lines.len() == Self::KEPT {
            log.lines.pop_front();
        }
        log.lines.push_back(line.clone());
        // No followers is fine: nobody is watching.
        let _ = log.followers.send(line);
    }

    /// The last `n` lines of `app`'s log that pass `filter`, oldest first.
    pub fn tail(&self, app: &str, n: usize, filter: &LogFilter) -> Vec<LogLine> {
        let apps = self.apps.lock().expect("never poisoned");
        apps.get(app)
            .map_or_else(Vec::new, |log| log.last(n, filter))
    }

    /// The last `n` lines, and every line after them as it is written. Taking both under one
    /// lock means no line falls between the two.
    pub fn follow(
        &self,
        app: &str,
        n: usize,
        filter: &LogFilter,
    ) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let mut apps = self.apps.lock().expect("never poisoned");
        let log = apps.entry(app.to_owned()).or_insert_with(AppLog::new);
        (log.last(n, filter), log.followers.subscribe())
    }

    /// Forgets `app`'s log: the app is gone.
    pub fn remove(&self, app: &str) {
        self.apps.lock().expect("never poisoned").remove(app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_per_app() {
        let logs = Logs::default();
        for i in 0..Logs::KEPT + 10 {
            logs.push("demo", "web.1", &format!("line {i}"));
        }
        logs.push("other", "router", "GET / 200");
        let tail = logs.tail("demo", usize::MAX, &LogFilter::default());
        assert_eq!(tail.len(), Logs::KEPT);
        assert_eq!(tail[0].text, "line 10");
        assert_eq!(
            tail.last().unwrap().text,
            format!("line {}", Logs::KEPT + 9)
        );
        assert_eq!(logs.tail("demo", 2, &LogFilter::default()).len(), 2);
        assert_eq!(logs.tail("other", 10, &LogFilter::default()).len(), 1);
        assert!(logs.tail("nobody", 10, &LogFilter::default()).is_empty());
    }

    #[test]
    fn a_process_type_matches_its_processes_only() {
        let logs = Logs::default();
        for source in ["web.1", "web.2", "webhook.1", "router", "web"] {
            logs.push("demo", source, "x");
        }
        let sources = |filter: Option<&str>| -> Vec<String> {
            let filter = LogFilter {
                source: filter.map(str::to_owned),
            };
            logs.tail("demo", 100, &filter)
                .into_iter()
                .map(|l| l.source)
                .collect()
        };
        assert_eq!(sources(Some("web")), ["web.1", "web.2", "web"]);
        assert_eq!(sources(Some("web.2")), ["web.2"]);
        assert_eq!(sources(Some("router")), ["router"]);
        assert_eq!(sources(None).len(), 5);
    }

    #[test]
    fn lines_are_timestamped_tagged_and_bounded() {
        let logs = Logs::default();
        logs.push(
            "demo",
            "web.1",
            &format!("{}\n", "é".repeat(Logs::MAX_LINE)),
        );
        let line = &logs.tail("demo", 1, &LogFilter::default())[0];
        assert!(line.text.len() <= Logs::MAX_LINE);
        assert!(!line.text.ends_with('\n'));
        let shown = line.to_string();
        assert!(shown.contains("Z web.1: é"), "{shown}");
        assert_eq!(shown.find('Z'), Some(26), "{shown}");
    }

    #[tokio::test]
    async fn followers_get_new_lines_after_the_tail() {
        let logs = Logs::default();
        logs.push("demo", "web.1", "old");
        let (tail, mut rx) = logs.follow("demo", 10, &LogFilter::default());
        assert_eq!(tail.len(), 1);
        logs.push("demo", "router", "GET / 200");
        assert_eq!(rx.recv().await.unwrap().text, "GET / 200");
    }
}
