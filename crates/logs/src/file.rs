//! Apps' logs read from the files [`Logs::open`](crate::Logs::open) writes, one per app
//! (`<dir>/<app>.log`), by a process that did not write them: the API beside a releaser on one
//! machine.
//!
//! A follower polls the file every [`POLL`] and reads what it grew by, as many lines as its
//! reader has room for ([`FOLLOWER_LAG`] at most): a slow reader falls behind in the file,
//! not in memory. When the writer cuts a big file back to its last lines (a new file renamed
//! over the old one), the follower goes on after the last line it saw, which the new file
//! still holds; if the new file does not hold it, every line in the new file is newer and all
//! of it is read. Nothing is shown twice; a reader so far behind that the cut overtook it
//! misses the lines cut, uncounted.
//!
//! The files are read as hostile: a symlink (or anything but a regular file) at an app's log
//! is refused, never followed; a line longer than a log line can be is skipped; bytes that
//! are not a log line are skipped; a tail reads at most [`TAIL_WINDOW`] bytes and a poll at
//! most [`POLL_BYTES`].

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use domain::AppName;
use rustix::fs::{Mode, OFlags};
use tokio::sync::mpsc;

use crate::logs::{FOLLOWER_LAG, MAX_FILE, parse_line};
use crate::output::MAX_LINE;
use crate::{Follow, Followed, LogError, LogFilter, LogLine, LogSource};

/// How often a follower looks for new lines.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// The longest line a log file holds: a time, a source and a cut line of text. Longer ones
/// were not written by the platform and are skipped.
const MAX_RECORD: usize = MAX_LINE + 1024;

/// Bytes at the end of a file a tail reads, at most: the writer keeps files about this big.
const TAIL_WINDOW: u64 = MAX_FILE;

/// Bytes a follower reads per poll, at most; the rest waits for the next poll.
const POLL_BYTES: u64 = 4 * 1024 * 1024;

/// Bytes of a cut-back file searched for the last line a follower saw, at most.
const RESUME_SCAN: u64 = 16 * 1024 * 1024;

/// Bytes read at once.
const CHUNK: usize = 64 * 1024;

/// The apps' logs in one directory, as the local runtime writes them.
#[derive(Debug, Clone)]
pub struct FileLogs {
    dir: PathBuf,
}

impl FileLogs {
    /// The logs in `dir` (`<data>/logs` for the local runtime).
    pub fn new(dir: PathBuf) -> FileLogs {
        FileLogs { dir }
    }

    fn path(&self, app: &AppName) -> PathBuf {
        // An app's name is a DNS label: it cannot leave `dir` or name a hidden file.
        self.dir.join(format!("{app}.log"))
    }
}

#[async_trait]
impl LogSource for FileLogs {
    async fn tail(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<Vec<LogLine>, LogError> {
        let path = self.path(app);
        let app = app.to_string();
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || tail_lines(&app, &path, n, &filter))
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()))
    }

    async fn follow(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<(Vec<LogLine>, Follow), LogError> {
        let path = self.path(app);
        let app = app.to_string();
        let start = {
            let (app, path, filter) = (app.clone(), path.clone(), filter.clone());
            tokio::task::spawn_blocking(move || Cursor::start(&app, &path, n, &filter))
        };
        let (past, cursor) = start
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()))?;
        let (tx, rx) = mpsc::channel(FOLLOWER_LAG);
        let task = tokio::spawn(follow_file(app, path, filter.clone(), cursor, tx));
        Ok((past, Follow::from_task(rx, task)))
    }
}

/// The last `n` lines of the file at `path` that pass `filter`, oldest first; none if there
/// is no file. Blocking.
pub(crate) fn tail_lines(
    app: &str,
    path: &Path,
    n: usize,
    filter: &LogFilter,
) -> Result<Vec<LogLine>, LogError> {
    Cursor::start(app, path, n, filter).map(|(lines, _)| lines)
}

/// Where a follower is in an app's log file.
#[derive(Debug)]
struct Cursor {
    /// The file read last (device, inode); `None` before there was one.
    file: Option<(u64, u64)>,
    /// Just past the last line read (or skipped).
    offset: u64,
    /// Skipping the rest of a line too long to be a log line.
    skipping: bool,
    /// The last line read, to find the place again in a file that was cut back.
    last: Option<Vec<u8>>,
}

impl Cursor {
    /// The last `n` lines of the file that pass `filter`, and a cursor just past the end.
    /// Blocking.
    fn start(
        app: &str,
        path: &Path,
        n: usize,
        filter: &LogFilter,
    ) -> Result<(Vec<LogLine>, Cursor), LogError> {
        let mut cursor = Cursor {
            file: None,
            offset: 0,
            skipping: false,
            last: None,
        };
        let Some(Opened { file, id, size }) = open(app, path)? else {
            return Ok((Vec::new(), cursor));
        };
        let from = size.saturating_sub(TAIL_WINDOW);
        let mut kept = VecDeque::new();
        // Reading from the middle of a file, the first line is probably a part of one.
        let (offset, skipping) = lines(&file, from, size, from > 0, &mut |line| {
            cursor.last = Some(line.to_vec());
            let Some(line) = std::str::from_utf8(line).ok().and_then(parse_line) else {
                return;
            };
            if n > 0 && filter.matches(&line) {
                if kept.len() == n {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        })
        .map_err(|source| read_error(app, source))?;
        cursor.file = Some(id);
        cursor.offset = offset;
        cursor.skipping = skipping;
        Ok((kept.into(), cursor))
    }

    /// The lines the file grew by since the last poll that pass `filter`, to `out`: at most
    /// `room` of them, from at most [`POLL_BYTES`]; the rest wait in the file. False once
    /// the file is gone (the app was destroyed; a cut-back replaces the file in one step).
    /// Blocking.
    fn poll(
        &mut self,
        app: &str,
        path: &Path,
        filter: &LogFilter,
        room: usize,
        out: &mut Vec<LogLine>,
    ) -> Result<bool, LogError> {
        // No file yet: nothing new. No file any more: nothing ever again.
        let Some(Opened { file, id, size }) = open(app, path)? else {
            return Ok(self.file.is_none());
        };
        if self.file != Some(id) || size < self.offset {
            self.offset = self.resume(&file, size).map_err(|e| read_error(app, e))?;
            self.skipping = false;
            self.file = Some(id);
        }
        let to = size.min(self.offset + POLL_BYTES);
        let last = &mut self.last;
        let (offset, skipping) = lines_at(&file, self.offset, to, self.skipping, &mut |line, _| {
            *last = Some(line.to_vec());
            if let Some(line) = std::str::from_utf8(line).ok().and_then(parse_line)
                && filter.matches(&line)
            {
                out.push(line);
            }
            out.len() < room
        })
        .map_err(|source| read_error(app, source))?;
        self.offset = offset;
        self.skipping = skipping;
        Ok(true)
    }

    /// Where to read a new file (the old one cut back, or a first one) from: just past the
    /// last line this cursor read, if the file has it; otherwise from its start, since all
    /// of it is newer. A file too big to search is read from its end.
    fn resume(&self, file: &File, size: u64) -> std::io::Result<u64> {
        let Some(last) = &self.last else { return Ok(0) };
        if size > RESUME_SCAN {
            return Ok(size);
        }
        let mut found = None;
        lines_at(file, 0, size, false, &mut |line, end| {
            if line == last.as_slice() {
                found = Some(end);
            }
            true
        })?;
        Ok(found.unwrap_or(0))
    }
}

/// Follows one app's file until the follower goes away or the file cannot be read.
async fn follow_file(
    app: String,
    path: PathBuf,
    filter: LogFilter,
    mut cursor: Cursor,
    tx: mpsc::Sender<Followed>,
) {
    let mut missed = 0u64;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = tx.closed() => return,
        }
        // Lines the follower has no room for yet wait in the file, not here.
        let room = tx.capacity();
        if room == 0 {
            continue;
        }
        let polled = {
            let (app, path, filter) = (app.clone(), path.clone(), filter.clone());
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let polled = cursor.poll(&app, &path, &filter, room, &mut out);
                (cursor, out, polled)
            })
            .await
        };
        let Ok((back, out, polled)) = polled else {
            return;
        };
        cursor = back;
        for line in out {
            if !send(&tx, &mut missed, Followed::Line(line)) {
                return;
            }
        }
        match polled {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = %err, "stopped following an app's log");
                return;
            }
        }
    }
}

/// Sends `item` without waiting, or counts it as missed when the follower is behind; after
/// missed lines, the count goes first. False once the follower is gone.
fn send(tx: &mpsc::Sender<Followed>, missed: &mut u64, item: Followed) -> bool {
    use mpsc::error::TrySendError;
    if *missed > 0 {
        match tx.try_send(Followed::Missed(*missed)) {
            Ok(()) => *missed = 0,
            Err(TrySendError::Full(_)) => {
                *missed += 1;
                return true;
            }
            Err(TrySendError::Closed(_)) => return false,
        }
    }
    match tx.try_send(item) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            *missed += 1;
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// An app's log file, open for reading.
struct Opened {
    file: File,
    /// Its device and inode: which file it is.
    id: (u64, u64),
    size: u64,
}

/// Opens the regular file at `path` for reading, never through a symlink and never blocking
/// on a pipe; `None` if there is none.
fn open(app: &str, path: &Path) -> Result<Option<Opened>, LogError> {
    let not_a_file = || LogError::NotAFile {
        app: app.to_owned(),
        path: path.display().to_string(),
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        // What O_NOFOLLOW answers for a symlink.
        Err(rustix::io::Errno::LOOP) => return Err(not_a_file()),
        Err(err) => return Err(read_error(app, err.into())),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| read_error(app, e))?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    Ok(Some(Opened {
        id: (meta.dev(), meta.ino()),
        size: meta.len(),
        file,
    }))
}

fn read_error(app: &str, source: std::io::Error) -> LogError {
    LogError::Read {
        app: app.to_owned(),
        source,
    }
}

/// Each complete line of `file` in `from..to` (without its newline) to `each`; see
/// [`lines_at`].
fn lines(
    file: &File,
    from: u64,
    to: u64,
    skipping: bool,
    each: &mut dyn FnMut(&[u8]),
) -> std::io::Result<(u64, bool)> {
    lines_at(file, from, to, skipping, &mut |line, _| {
        each(line);
        true
    })
}

/// Each complete line of `file` in `from..to` to `each`, without its newline, with the offset
/// just past it, until `each` answers `false`. A line longer than [`MAX_RECORD`] is skipped
/// whole (`skipping` says the read starts in the middle of one). Returns where the next read
/// starts: past the last line read, or at `to` while skipping, since an unfinished line is
/// read again when it is finished.
fn lines_at(
    file: &File,
    from: u64,
    to: u64,
    mut skipping: bool,
    each: &mut dyn FnMut(&[u8], u64) -> bool,
) -> std::io::Result<(u64, bool)> {
    let mut buf = vec![0u8; CHUNK];
    let mut pending: Vec<u8> = Vec::new();
    let mut pos = from;
    let mut done = from;
    while pos < to {
        let want = usize::try_from(to - pos).map_or(CHUNK, |left| left.min(CHUNK));
        let read = file.read_at(&mut buf[..want], pos)?;
        if read == 0 {
            break;
        }
        let chunk = &buf[..read];
        let chunk_at = pos;
        pos += read as u64;
        let mut i = 0;
        while let Some(nl) = chunk[i..].iter().position(|&b| b == b'\n') {
            let end = chunk_at + (i + nl + 1) as u64;
            if !std::mem::take(&mut skipping) {
                pending.extend_from_slice(&chunk[i..i + nl]);
                if pending.len() <= MAX_RECORD && !each(&pending, end) {
                    return Ok((end, false));
                }
            }
            pending.clear();
            done = end;
            i += nl + 1;
        }
        if !skipping {
            pending.extend_from_slice(&chunk[i..]);
            if pending.len() > MAX_RECORD {
                pending.clear();
                skipping = true;
            }
        }
    }
    if skipping {
        done = pos;
    }
    Ok((done, skipping))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Logs;
    use std::time::Duration;

    fn app(name: &str) -> AppName {
        AppName::parse(name).unwrap()
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines.iter().map(|l| l.text.clone()).collect()
    }

    /// The next thing the follower is told, failing after a few polls of nothing.
    async fn next(follow: &mut Follow) -> Followed {
        tokio::time::timeout(Duration::from_secs(5), follow.next())
            .await
            .expect("a followed line within 5 s")
            .expect("the follow goes on")
    }

    async fn next_text(follow: &mut Follow) -> String {
        match next(follow).await {
            Followed::Line(line) => line.text,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reader_tails_and_filters_what_a_writer_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        let all = LogFilter::default();
        assert!(
            reader
                .tail(&app("demo"), 10, &all)
                .await
                .unwrap()
                .is_empty()
        );

        for (source, text) in [("web.1", "a"), ("router", "b"), ("web.2", "c\twith a tab")] {
            writer.push("demo", source, text);
        }
        writer.push("other", "web.1", "elsewhere");
        writer.flush().await;

        let tail = reader.tail(&app("demo"), 10, &all).await.unwrap();
        assert_eq!(
            tail,
            writer.tail("demo", 10, &all),
            "the same lines, times and all"
        );
        assert_eq!(texts(&tail), ["a", "b", "c\twith a tab"]);
        assert_eq!(
            texts(&reader.tail(&app("demo"), 2, &all).await.unwrap()),
            ["b", "c\twith a tab"]
        );
        let web = LogFilter {
            source: Some("web".to_owned()),
        };
        assert_eq!(
            texts(&reader.tail(&app("demo"), 10, &web).await.unwrap()),
            ["a", "c\twith a tab"]
        );
        assert_eq!(
            texts(&reader.tail(&app("demo"), 0, &all).await.unwrap()),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn a_follower_sees_new_lines_soon_and_only_those_it_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        writer.push("demo", "web.1", "old");
        writer.flush().await;

        let web = LogFilter {
            source: Some("web".to_owned()),
        };
        let (past, mut follow) = reader.follow(&app("demo"), 10, &web).await.unwrap();
        assert_eq!(texts(&past), ["old"]);
        let start = tokio::time::Instant::now();
        writer.push("demo", "router", "GET / 200");
        writer.push("demo", "web.1", "new");
        // Not flushed: the writer's own pace must bring it to the follower.
        assert_eq!(next_text(&mut follow).await, "new");
        let took = start.elapsed();
        assert!(took < Duration::from_millis(900), "{took:?}");
    }

    #[tokio::test]
    async fn a_follower_of_an_app_without_a_log_yet_sees_its_first_lines() {
        let dir = tempfile::tempdir().unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        let (past, mut follow) = reader
            .follow(&app("demo"), 10, &LogFilter::default())
            .await
            .unwrap();
        assert!(past.is_empty());
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        writer.push("demo", "web.1", "first");
        writer.push("demo", "web.1", "second");
        assert_eq!(next_text(&mut follow).await, "first");
        assert_eq!(next_text(&mut follow).await, "second");
    }

    #[tokio::test]
    async fn a_follower_goes_on_after_the_writer_cuts_the_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        let path = dir.path().join("demo.log");
        let long = "x".repeat(1_000);
        writer.push("demo", "web.1", "before");
        writer.flush().await;
        let inode = std::fs::metadata(&path).unwrap().ino();
        let (past, mut follow) = reader
            .follow(&app("demo"), 1, &LogFilter::default())
            .await
            .unwrap();
        assert_eq!(texts(&past), ["before"]);

        // Past the writer's bound, in bursts the follower reads between: the file is cut
        // back to its last lines (a new file) in the middle of one.
        let burst = 500;
        let total = (MAX_FILE as usize / long.len() / burst + 1) * burst;
        for start in (0..total).step_by(burst) {
            for i in start..start + burst {
                writer.push("demo", "web.1", &format!("{i} {long}"));
            }
            writer.flush().await;
            for i in start..start + burst {
                let text = next_text(&mut follow).await;
                assert_eq!(
                    text.split_once(' ').unwrap().0,
                    i.to_string(),
                    "once, in order"
                );
            }
        }
        assert_ne!(
            std::fs::metadata(&path).unwrap().ino(),
            inode,
            "the file was cut back"
        );

        // And it goes on in the new file.
        writer.push("demo", "web.1", "later");
        assert_eq!(next_text(&mut follow).await, "later");
    }

    #[tokio::test]
    async fn a_slow_follower_falls_behind_in_the_file_not_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        let (_, mut follow) = reader
            .follow(&app("demo"), 0, &LogFilter::default())
            .await
            .unwrap();
        // More than the follower holds, at once: the rest waits in the file, none is lost.
        let total = FOLLOWER_LAG + 300;
        for i in 0..total {
            writer.push("demo", "web.1", &format!("{i}"));
        }
        writer.flush().await;
        for i in 0..total {
            assert_eq!(next_text(&mut follow).await, i.to_string());
        }
    }

    #[test]
    fn a_follower_with_no_room_is_told_how_many_it_missed() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut missed = 0;
        let line = |text: &str| {
            Followed::Line(LogLine {
                at: time::OffsetDateTime::UNIX_EPOCH,
                source: "web.1".to_owned(),
                text: text.to_owned(),
            })
        };
        for i in 0..5 {
            assert!(send(&tx, &mut missed, line(&i.to_string())));
        }
        assert_eq!(rx.try_recv().unwrap(), line("0"));
        assert_eq!(rx.try_recv().unwrap(), line("1"));
        assert!(send(&tx, &mut missed, line("5")));
        assert_eq!(rx.try_recv().unwrap(), Followed::Missed(3));
        assert_eq!(rx.try_recv().unwrap(), line("5"));
        drop(rx);
        assert!(!send(&tx, &mut missed, line("6")));
    }

    #[tokio::test]
    async fn a_symlink_at_an_apps_log_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "2026-01-01T00:00:00.000000Z\tweb.1\tsecret\n").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("demo.log")).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        let all = LogFilter::default();
        let err = reader.tail(&app("demo"), 10, &all).await.unwrap_err();
        assert!(matches!(err, LogError::NotAFile { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("the log of demo is not a regular file"),
            "{err}"
        );
        assert!(reader.follow(&app("demo"), 10, &all).await.is_err());
        // A directory or a pipe there is refused too, without blocking.
        std::fs::create_dir(dir.path().join("dir.log")).unwrap();
        assert!(reader.tail(&app("dir"), 10, &all).await.is_err());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("pipe.log"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(reader.tail(&app("pipe"), 10, &all).await.is_err());

        // The writer does not write through one either, and a restart does not read it.
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        assert!(writer.tail("demo", 10, &all).is_empty());
        writer.push("demo", "web.1", "mine");
        writer.flush().await;
        assert_eq!(std::fs::read_to_string(&secret).unwrap().lines().count(), 1);
    }

    #[tokio::test]
    async fn a_follower_stops_when_the_app_is_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        writer.push("demo", "web.1", "real");
        writer.flush().await;
        let (_, mut follow) = reader
            .follow(&app("demo"), 1, &LogFilter::default())
            .await
            .unwrap();
        writer.push("demo", "web.1", "last");
        writer.remove("demo").await;
        writer.flush().await;
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(next) = follow.next().await {
                rest.push(next);
            }
        })
        .await;
        assert!(ended.is_ok(), "the follow ends; it had {rest:?}");
        assert!(rest.len() <= 1, "{rest:?}");
    }

    #[tokio::test]
    async fn a_follower_stops_when_a_symlink_replaces_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Logs::open(dir.path().to_path_buf()).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        writer.push("demo", "web.1", "real");
        writer.flush().await;
        let (_, mut follow) = reader
            .follow(&app("demo"), 1, &LogFilter::default())
            .await
            .unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "2026-01-01T00:00:00.000000Z\tweb.1\tsecret\n").unwrap();
        let path = dir.path().join("demo.log");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), follow.next())
            .await
            .expect("the follow ends");
        assert_eq!(ended, None);
    }

    #[tokio::test]
    async fn overlong_lines_and_garbage_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.log");
        let good = |text: &str| format!("2026-01-01T00:00:00.000000Z\tweb.1\t{text}\n");
        let mut bytes = good("first").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe not a line at all\n\n\tweb.1\tno time\n");
        bytes.extend_from_slice(good(&"y".repeat(MAX_RECORD * 3)).as_bytes());
        bytes.extend_from_slice(good("last").as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let reader = FileLogs::new(dir.path().to_path_buf());
        let all = LogFilter::default();
        let tail = reader.tail(&app("demo"), 10, &all).await.unwrap();
        assert_eq!(texts(&tail), ["first", "last"]);

        // Followed: a flood without a newline holds nothing and is skipped up to its end.
        let (_, mut follow) = reader.follow(&app("demo"), 0, &all).await.unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        use std::io::Write as _;
        for _ in 0..10 {
            file.write_all(&vec![b'z'; MAX_RECORD]).unwrap();
            tokio::time::sleep(POLL / 2).await;
        }
        file.write_all(b"\n").unwrap();
        file.write_all(good("after the flood").as_bytes()).unwrap();
        assert_eq!(next_text(&mut follow).await, "after the flood");

        // A huge file: a tail reads only its end.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let filler = good(&"f".repeat(1_000));
        for _ in 0..(3 * TAIL_WINDOW as usize / filler.len()) {
            file.write_all(filler.as_bytes()).unwrap();
        }
        file.write_all(good("end").as_bytes()).unwrap();
        let tail = reader.tail(&app("demo"), usize::MAX, &all).await.unwrap();
        assert!(
            tail.len() <= TAIL_WINDOW as usize / filler.len() + 1,
            "{}",
            tail.len()
        );
        assert_eq!(tail.last().unwrap().text, "end");
    }
}
