//! Apps' log streams: timestamped lines tagged by source (`web.1`, `router`, `release`,
//! `slipway`), the last [`Logs::KEPT`] kept per app, and followers told of each new line.
//!
//! Opened on a directory ([`Logs::open`]), the logs are also kept on disk, one file per app
//! (`<app>.log`, a line each: time, tab, source, tab, text), appended by a background task
//! and compacted to the last lines now and then, so a restart of the platform finds them.
//!
//! Everything here is bounded: an app keeps at most [`Logs::KEPT`] lines and
//! [`Logs::KEPT_BYTES`] bytes, a line at most [`Logs::MAX_LINE`] bytes; the disk writer's
//! queue holds at most [`DISK_QUEUE`] lines, and lines that find it full are counted and the
//! count written in their place; a follower that falls behind misses lines (it is told how
//! many) rather than holding them.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::output::{CUT, MAX_LINE, Pace};

/// One line of an app's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at: OffsetDateTime,
    /// Who wrote it: a process (`web.1`), `router`, `release`, `run.1` or `slipway`.
    pub source: String,
    pub text: String,
}

/// Times in UTC to the microsecond, always the same width, so lines align.
pub(crate) const TIME: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
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
    /// The app's name, shared with the disk writer's queue.
    name: Arc<str>,
    /// Shared with followers and the disk writer: a line is allocated once.
    lines: VecDeque<Arc<LogLine>>,
    /// The bytes of text in `lines`.
    bytes: usize,
    followers: broadcast::Sender<Arc<LogLine>>,
    /// Lines that found the disk writer's queue full since it last took one.
    unwritten: u64,
}

impl AppLog {
    fn new(name: &str) -> AppLog {
        AppLog {
            name: Arc::from(name),
            lines: VecDeque::with_capacity(64),
            bytes: 0,
            followers: broadcast::channel(FOLLOWER_LAG).0,
            unwritten: 0,
        }
    }

    /// Keeps `line`, forgetting the oldest lines past [`Logs::KEPT`] or [`Logs::KEPT_BYTES`].
    fn keep(&mut self, line: Arc<LogLine>) {
        while self.lines.len() >= Logs::KEPT
            || (!self.lines.is_empty() && self.bytes + line.text.len() > Logs::KEPT_BYTES)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.text.len();
            }
        }
        self.bytes += line.text.len();
        self.lines.push_back(line);
    }

    /// The last `n` lines that pass `filter`, oldest first.
    fn last(&self, n: usize, filter: &LogFilter) -> Vec<LogLine> {
        let mut lines: Vec<LogLine> = self
            .lines
            .iter()
            .rev()
            .filter(|l| filter.matches(l))
            .take(n)
            .map(|l| LogLine::clone(l))
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
    /// The disk writer's queue, when the logs are kept on disk.
    disk: Option<mpsc::Sender<DiskWrite>>,
    /// Each app's output budget, shared by the readers of its processes' pipes.
    paces: Arc<Mutex<HashMap<String, Arc<Pace>>>>,
}

/// What the disk writer is asked to do, in order.
#[derive(Debug)]
enum DiskWrite {
    Line(Arc<str>, Arc<LogLine>),
    Remove(String),
    Flush(oneshot::Sender<()>),
}

/// How long the disk writer gathers lines before it writes them.
const GATHER: std::time::Duration = std::time::Duration::from_millis(50);

/// Lines waiting for the disk writer, at most.
pub(crate) const DISK_QUEUE: usize = 2_048;

/// New lines a follower may be behind by before it misses some.
pub(crate) const FOLLOWER_LAG: usize = 1_024;

/// A file larger than this is cut back to its last [`Logs::KEPT`] lines.
pub(crate) const MAX_FILE: u64 = 2 * 1024 * 1024;

impl Logs {
    /// Lines kept per app.
    pub const KEPT: usize = 1_500;
    /// Bytes of text kept per app, at most: fewer lines are kept when they are long.
    pub const KEPT_BYTES: usize = 1024 * 1024;
    /// Longest line kept; the rest of a longer one is cut off, and marked so.
    pub const MAX_LINE: usize = MAX_LINE;

    /// Logs kept in `dir` too: each app's last lines are read back from there now, and every
    /// new line is appended there in the background. Needs a Tokio runtime.
    pub fn open(dir: PathBuf) -> std::io::Result<Logs> {
        std::fs::create_dir_all(&dir)?;
        let mut apps = HashMap::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            let Some(app) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
            else {
                continue;
            };
            let mut log = AppLog::new(app);
            // A file that is not one (a symlink planted here) is left alone, not read.
            match crate::file::tail_lines(app, &path, Logs::KEPT, &LogFilter::default()) {
                Ok(lines) => lines.into_iter().for_each(|line| log.keep(Arc::new(line))),
                Err(err) => tracing::warn!(error = %err, "an app's log is not read back"),
            }
            apps.insert(app.to_owned(), log);
        }
        let (tx, rx) = mpsc::channel(DISK_QUEUE);
        tokio::spawn(write_to_disk(dir, rx));
        Ok(Logs {
            apps: Arc::new(Mutex::new(apps)),
            disk: Some(tx),
            paces: Arc::default(),
        })
    }

    /// Waits until every line pushed so far is on disk (a no-op for logs kept in memory).
    pub async fn flush(&self) {
        if let Some(disk) = &self.disk {
            let (done, wait) = oneshot::channel();
            if disk.send(DiskWrite::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Appends a line to `app`'s log.
    pub fn push(&self, app: &str, source: &str, text: &str) {
        // One line stays one line, in memory and on disk.
        let text = text.trim_end_matches(['\r', '\n']);
        let mut text = if text.contains(['\n', '\r']) {
            text.replace(['\n', '\r'], " ")
        } else {
            text.to_owned()
        };
        if text.len() > Self::MAX_LINE {
            let mut cut = Self::MAX_LINE - CUT.len();
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(CUT);
        }
        let line = Arc::new(LogLine {
            at: now(),
            source: source.to_owned(),
            text,
        });
        let mut apps = self.apps.lock().expect("never poisoned");
        // The router pushes a line per request: no copy of the app's name for one it has.
        let log = match apps.get_mut(app) {
            Some(log) => log,
            None => apps
                .entry(app.to_owned())
                .or_insert_with(|| AppLog::new(app)),
        };
        log.keep(Arc::clone(&line));
        if let Some(disk) = &self.disk {
            to_disk(disk, log, &line);
        }
        // No followers is fine: nobody is watching.
        let _ = log.followers.send(line);
    }

    /// The output budget of `app`'s processes, shared by all of them.
    pub fn pace(&self, app: &str) -> Arc<Pace> {
        let mut paces = self.paces.lock().expect("never poisoned");
        Arc::clone(paces.entry(app.to_owned()).or_default())
    }

    /// The apps that have a log.
    pub fn apps(&self) -> Vec<String> {
        let apps = self.apps.lock().expect("never poisoned");
        apps.keys().cloned().collect()
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
    ) -> (Vec<LogLine>, broadcast::Receiver<Arc<LogLine>>) {
        let mut apps = self.apps.lock().expect("never poisoned");
        let log = apps
            .entry(app.to_owned())
            .or_insert_with(|| AppLog::new(app));
        (log.last(n, filter), log.followers.subscribe())
    }

    /// Forgets `app`'s log, in memory and on disk: the app is gone. Lines queued for the
    /// disk before it are written first, then the file goes.
    pub async fn remove(&self, app: &str) {
        self.apps.lock().expect("never poisoned").remove(app);
        self.paces.lock().expect("never poisoned").remove(app);
        if let Some(disk) = &self.disk {
            let _ = disk.send(DiskWrite::Remove(app.to_owned())).await;
        }
    }
}

/// Now, to the microsecond, as shown and as kept on disk.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// Queues `line` for the disk without waiting: when the queue is full the line is counted,
/// and the count goes to the disk, before the next line that fits, in place of the lines.
fn to_disk(disk: &mpsc::Sender<DiskWrite>, log: &mut AppLog, line: &Arc<LogLine>) {
    if log.unwritten > 0 {
        let note = Arc::new(LogLine {
            at: now(),
            source: "slipway".to_owned(),
            text: format!(
                "{} lines not kept on disk: they came faster than the disk took them",
                log.unwritten
            ),
        });
        if disk
            .try_send(DiskWrite::Line(Arc::clone(&log.name), note))
            .is_err()
        {
            log.unwritten += 1;
            return;
        }
        log.unwritten = 0;
    }
    if let Err(mpsc::error::TrySendError::Full(_)) =
        disk.try_send(DiskWrite::Line(Arc::clone(&log.name), Arc::clone(line)))
    {
        log.unwritten += 1;
    }
}

/// The disk writer: appends lines in batches, one file per app, and compacts big files.
async fn write_to_disk(dir: PathBuf, mut queue: mpsc::Receiver<DiskWrite>) {
    let mut sizes: HashMap<String, u64> = HashMap::new();
    while let Some(first) = queue.recv().await {
        // Lines come in bursts (the router writes one per request): gather a burst into one
        // write per app rather than a write per line.
        tokio::time::sleep(GATHER).await;
        let mut batch = vec![first];
        while batch.len() < DISK_QUEUE {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let dir = dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut flushed = Vec::new();
            if let Err(err) = write_batch(&dir, batch, &mut sizes, &mut flushed) {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot keep the app logs on disk");
            }
            (sizes, flushed)
        })
        .await;
        let Ok((kept, flushed)) = written else { return };
        sizes = kept;
        for done in flushed {
            let _ = done.send(());
        }
    }
}

fn write_batch(
    dir: &Path,
    batch: Vec<DiskWrite>,
    sizes: &mut HashMap<String, u64>,
    flushed: &mut Vec<oneshot::Sender<()>>,
) -> std::io::Result<()> {
    let mut pending: Vec<(Arc<str>, Vec<u8>)> = Vec::new();
    let mut first_error = None;
    for item in batch {
        match item {
            DiskWrite::Line(app, line) => {
                let text = match pending.iter().position(|(a, _)| *a == app) {
                    Some(i) => &mut pending[i].1,
                    None => {
                        pending.push((app, Vec::new()));
                        &mut pending.last_mut().expect("just pushed").1
                    }
                };
                // Written in place: no string per line.
                let _ = line.at.format_into(text, TIME);
                for part in [
                    b"\t",
                    line.source.as_bytes(),
                    b"\t",
                    line.text.as_bytes(),
                    b"\n",
                ] {
                    text.extend_from_slice(part);
                }
            }
            DiskWrite::Remove(app) => {
                write_pending(dir, &mut pending, sizes, &mut first_error);
                sizes.remove(&app);
                match std::fs::remove_file(dir.join(format!("{app}.log"))) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        first_error.get_or_insert(err);
                    }
                    _ => {}
                }
            }
            DiskWrite::Flush(done) => {
                write_pending(dir, &mut pending, sizes, &mut first_error);
                flushed.push(done);
            }
        }
    }
    write_pending(dir, &mut pending, sizes, &mut first_error);
    first_error.map_or(Ok(()), Err)
}

/// Appends what is pending to each app's file, keeping the first error.
fn write_pending(
    dir: &Path,
    pending: &mut Vec<(Arc<str>, Vec<u8>)>,
    sizes: &mut HashMap<String, u64>,
    first_error: &mut Option<std::io::Error>,
) {
    for (app, text) in pending.drain(..) {
        if let Err(err) = append(dir, &app, &text, sizes) {
            first_error.get_or_insert(err);
        }
    }
}

/// Appends `text` to the app's file, cutting the file back when it has grown too big.
fn append(
    dir: &Path,
    app: &str,
    text: &[u8],
    sizes: &mut HashMap<String, u64>,
) -> std::io::Result<()> {
    let path = dir.join(format!("{app}.log"));
    // Never through a symlink planted at the log's name: that open fails instead.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)?;
    file.write_all(text)?;
    let size = match sizes.get(app) {
        Some(size) => size + text.len() as u64,
        None => file.metadata()?.len(),
    };
    if size <= MAX_FILE {
        sizes.insert(app.to_owned(), size);
        return Ok(());
    }
    let last: Vec<String> = std::fs::read_to_string(&path)?
        .lines()
        .rev()
        .take(Logs::KEPT)
        .map(str::to_owned)
        .collect();
    let kept: String = last.iter().rev().map(|l| format!("{l}\n")).collect();
    let tmp = dir.join(format!(".{app}.log.tmp"));
    std::fs::write(&tmp, &kept)?;
    std::fs::rename(&tmp, &path)?;
    sizes.insert(app.to_owned(), kept.len() as u64);
    Ok(())
}

/// One line of a log file (time, tab, source, tab, text), or `None` if it is not one.
pub(crate) fn parse_line(line: &str) -> Option<LogLine> {
    let mut parts = line.splitn(3, '\t');
    let at = time::PrimitiveDateTime::parse(parts.next()?, TIME).ok()?;
    Some(LogLine {
        at: at.assume_utc(),
        source: parts.next()?.to_owned(),
        text: parts.next()?.to_owned(),
    })
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
        assert!(line.text.ends_with(CUT), "{}", line.text);
        assert!(!line.text.ends_with('\n'));
        let shown = line.to_string();
        assert!(shown.contains("Z web.1: é"), "{shown}");
        assert_eq!(shown.find('Z'), Some(26), "{shown}");
    }

    #[tokio::test]
    async fn logs_opened_on_a_directory_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path().to_path_buf()).unwrap();
        logs.push("demo", "web.1", "first\twith a tab");
        logs.push("demo", "router", "GET / 200");
        logs.push("gone", "web.1", "bye");
        logs.push("demo", "web.1", "two\nlines");
        logs.remove("gone").await;
        logs.flush().await;
        let before = logs.tail("demo", 10, &LogFilter::default());
        drop(logs);

        let again = Logs::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(again.tail("demo", 10, &LogFilter::default()), before);
        assert_eq!(before[2].text, "two lines");
        assert!(again.tail("gone", 10, &LogFilter::default()).is_empty());
        assert!(!dir.path().join("gone.log").exists());
    }

    #[tokio::test]
    async fn files_are_cut_back_to_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path().to_path_buf()).unwrap();
        let long = "x".repeat(500);
        for i in 0..6_000 {
            logs.push("demo", "web.1", &format!("{i} {long}"));
            if i % 1_000 == 999 {
                logs.flush().await;
            }
        }
        logs.flush().await;
        let size = std::fs::metadata(dir.path().join("demo.log"))
            .unwrap()
            .len();
        assert!(size <= MAX_FILE, "{size}");
        let again = Logs::open(dir.path().to_path_buf()).unwrap();
        let tail = again.tail("demo", usize::MAX, &LogFilter::default());
        assert_eq!(tail.len(), Logs::KEPT);
        assert!(tail.last().unwrap().text.starts_with("5999 "));
    }

    #[test]
    fn long_lines_are_kept_within_the_byte_bound() {
        let logs = Logs::default();
        let long = "x".repeat(Logs::MAX_LINE - 10);
        for i in 0..Logs::KEPT {
            logs.push("demo", "web.1", &format!("{i} {long}"));
        }
        let tail = logs.tail("demo", usize::MAX, &LogFilter::default());
        let bytes: usize = tail.iter().map(|l| l.text.len()).sum();
        assert!(bytes <= Logs::KEPT_BYTES, "{bytes}");
        assert!(
            tail.len() >= Logs::KEPT_BYTES / Logs::MAX_LINE,
            "{}",
            tail.len()
        );
        assert!(
            tail.last()
                .unwrap()
                .text
                .starts_with(&format!("{} ", Logs::KEPT - 1))
        );
    }

    #[tokio::test]
    async fn lines_faster_than_the_disk_are_counted_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::open(dir.path().to_path_buf()).unwrap();
        // One burst, with no chance for the writer to run: the queue fills.
        for i in 0..DISK_QUEUE + 500 {
            logs.push("demo", "web.1", &format!("{i}"));
        }
        logs.push("demo", "web.1", "after");
        logs.flush().await;
        logs.push("demo", "web.1", "later");
        logs.flush().await;
        let text = std::fs::read_to_string(dir.path().join("demo.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), DISK_QUEUE + 2, "{}", lines.len());
        assert!(
            lines[DISK_QUEUE].ends_with(
                "\tslipway\t501 lines not kept on disk: they came faster than the disk took them"
            ),
            "{}",
            lines[DISK_QUEUE]
        );
        assert!(lines[DISK_QUEUE + 1].ends_with("\tlater"));
        // Memory kept them all (up to its own bound).
        let tail = logs.tail("demo", 2, &LogFilter::default());
        assert_eq!(tail[0].text, "after");
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
