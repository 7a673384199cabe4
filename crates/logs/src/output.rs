//! Tenant output, bounded: lines cut at [`MAX_LINE`] with a marker, a [`Pace`] that slows a
//! writer who prints faster than the platform keeps lines (the reader stops reading, the pipe
//! fills, the writer blocks), and a [`LineSender`] to a reader who may fall behind, which
//! drops lines with a count instead of queueing them.
//!
//! Nothing on the way from a process's pipe to a log, a pusher or a `slip run` caller holds
//! more than a fixed number of lines of a fixed length.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Longest line kept, in bytes; the rest of a longer one is cut off and [`CUT`] put in its
/// place.
pub(crate) const MAX_LINE: usize = 8 * 1024;

/// What ends a line that was cut.
pub(crate) const CUT: &str = " … [cut: the line is longer than 8 KiB]";

/// Lines a second an app's processes may print before their reads are slowed.
pub(crate) const LINES_PER_SECOND: f64 = 2_000.0;
/// Bytes a second an app's processes may print before their reads are slowed.
pub(crate) const BYTES_PER_SECOND: f64 = 1024.0 * 1024.0;

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes. A longer line is sent as
/// soon as it is [`MAX_LINE`] long, with [`CUT`] at its end, and the rest of it, up to the
/// next newline, is skipped: a writer that never prints a newline holds no more than one line.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    /// Skipping the rest of a line that was cut.
    skipping: bool,
}

impl LineSplitter {
    /// Takes the next bytes of the stream; each line they complete goes to `emit`.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], emit: &mut dyn FnMut(String)) {
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'\n');
            let part = &bytes[..end.unwrap_or(bytes.len())];
            if !self.skipping {
                let room = MAX_LINE - self.pending.len();
                if part.len() <= room {
                    self.pending.extend_from_slice(part);
                } else {
                    self.pending.extend_from_slice(&part[..room]);
                    let mut line = String::from_utf8_lossy(&self.pending).into_owned();
                    line.push_str(CUT);
                    emit(line);
                    self.pending.clear();
                    self.skipping = true;
                }
            }
            match end {
                Some(at) => {
                    if !std::mem::take(&mut self.skipping) {
                        emit(String::from_utf8_lossy(&self.pending).into_owned());
                    }
                    self.pending.clear();
                    bytes = &bytes[at + 1..];
                }
                None => bytes = &[],
            }
        }
    }

    /// The stream ended: a last line without a newline is sent too.
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(String)) {
        if !self.skipping && !self.pending.is_empty() {
            emit(String::from_utf8_lossy(&self.pending).into_owned());
        }
        self.pending.clear();
        self.skipping = false;
    }
}

/// A budget of lines and bytes a second, shared by the readers of one app's output (or of one
/// one-off process). A reader that has used it up waits before it reads again, so a fast
/// writer is slowed by its own full pipe rather than by anything growing in the platform.
#[derive(Debug)]
pub struct Pace {
    lines_per_second: f64,
    bytes_per_second: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    lines: f64,
    bytes: f64,
    at: Instant,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace::new(LINES_PER_SECOND, BYTES_PER_SECOND)
    }
}

impl Pace {
    /// A second's worth of each may come in one burst.
    pub fn new(lines_per_second: f64, bytes_per_second: f64) -> Pace {
        Pace {
            lines_per_second,
            bytes_per_second,
            bucket: Mutex::new(Bucket {
                lines: lines_per_second,
                bytes: bytes_per_second,
                at: Instant::now(),
            }),
        }
    }

    /// Takes `lines` and `bytes` from the budget; how long the reader must wait before it
    /// reads again (zero while the budget lasts).
    fn take(&self, lines: usize, bytes: usize) -> Duration {
        let mut bucket = self.bucket.lock().expect("never poisoned");
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.at = now;
        bucket.lines = (bucket.lines + elapsed * self.lines_per_second).min(self.lines_per_second);
        bucket.bytes = (bucket.bytes + elapsed * self.bytes_per_second).min(self.bytes_per_second);
        bucket.lines -= lines as f64;
        bucket.bytes -= bytes as f64;
        let owed =
            (-bucket.lines / self.lines_per_second).max(-bucket.bytes / self.bytes_per_second);
        if owed > 0.0 {
            Duration::from_secs_f64(owed)
        } else {
            Duration::ZERO
        }
    }

    /// Takes `lines` and `bytes` from the budget, waiting until it has them back if they
    /// overdrew it.
    pub async fn wait(&self, lines: usize, bytes: usize) {
        let owed = self.take(lines, bytes);
        if !owed.is_zero() {
            tokio::time::sleep(owed).await;
        }
    }
}

/// Sends each line of `pipe` to `sink`, cut at [`MAX_LINE`], reading no faster than `pace`
/// allows.
pub async fn read_lines(
    pipe: Option<impl AsyncRead + Unpin>,
    sink: &(dyn Fn(&str) + Send + Sync),
    pace: &Pace,
) {
    let Some(mut pipe) = pipe else { return };
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut lines = 0;
        splitter.feed(&buf[..n], &mut |line| {
            sink(&line);
            lines += 1;
        });
        pace.wait(lines, n).await;
    }
    splitter.finish(&mut |line| sink(&line));
}

/// Bytes of lines a [`LineSender`] holds for its reader, at most.
pub(crate) const QUEUED_BYTES: usize = 1024 * 1024;

/// Lines to a reader who may fall behind (a pusher, a `slip run` caller): a channel bounded in
/// lines and in bytes ([`QUEUED_BYTES`]); when it is full, lines are dropped and counted, and
/// the reader's next line says how many it missed.
#[derive(Debug)]
pub struct LineSender {
    tx: mpsc::Sender<String>,
    dropped: Mutex<u64>,
    queued: Arc<AtomicUsize>,
}

/// The reading end of a [`LineSender`].
#[derive(Debug)]
pub struct LineReceiver {
    rx: mpsc::Receiver<String>,
    queued: Arc<AtomicUsize>,
}

impl LineReceiver {
    /// The next line; `None` once the sender is gone and every line is read.
    pub async fn recv(&mut self) -> Option<String> {
        let line = self.rx.recv().await?;
        self.queued.fetch_sub(line.len(), Ordering::Relaxed);
        Some(line)
    }

    /// The next line if one is waiting.
    pub fn try_recv(&mut self) -> Option<String> {
        let line = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(line.len(), Ordering::Relaxed);
        Some(line)
    }
}

impl LineSender {
    /// A sender and its receiver, holding at most `capacity` lines (and [`QUEUED_BYTES`])
    /// between them.
    pub fn channel(capacity: usize) -> (LineSender, LineReceiver) {
        let (tx, rx) = mpsc::channel(capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        (
            LineSender {
                tx,
                dropped: Mutex::new(0),
                queued: Arc::clone(&queued),
            },
            LineReceiver { rx, queued },
        )
    }

    /// Sends `line`, or drops it if the reader is behind. Never waits.
    pub fn send(&self, line: &str) {
        let mut dropped = self.dropped.lock().expect("never poisoned");
        if *dropped > 0 {
            let note = format!(
                "(slipway: {} lines dropped: the reader fell behind)",
                *dropped
            );
            if !self.try_send(note) {
                *dropped += 1;
                return;
            }
            *dropped = 0;
        }
        if !self.try_send(line.to_owned()) {
            *dropped += 1;
        }
    }

    /// Queues `line` if it fits, in count and in bytes. Sends are serialised by `dropped`'s
    /// lock, so the byte count cannot be overshot.
    fn try_send(&self, line: String) -> bool {
        let len = line.len();
        if self.queued.load(Ordering::Relaxed) + len > QUEUED_BYTES {
            return false;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        match self.tx.try_send(line) {
            Ok(()) => true,
            Err(_) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    /// Feeds `chunks` (with `MAX_LINE` shrunk for reading: `#N` stands for N `x`s) and shows
    /// each emitted line, `|` between them, lengths for long ones.
    fn check(chunks: &[&str], expected: Expect) {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            let bytes: Vec<u8> = match chunk.strip_prefix('#') {
                Some(n) => {
                    let (count, rest) = n.split_once(' ').unwrap_or((n, ""));
                    let mut b = vec![b'x'; count.parse().unwrap()];
                    b.extend_from_slice(rest.as_bytes());
                    b
                }
                None => chunk.as_bytes().to_vec(),
            };
            splitter.feed(&bytes, &mut |l| lines.push(l));
        }
        splitter.finish(&mut |l| lines.push(l));
        let shown: Vec<String> = lines
            .iter()
            .map(|l| {
                if l.len() > 40 {
                    let cut = l.ends_with(CUT);
                    format!(
                        "<{} bytes{}>",
                        l.len() - if cut { CUT.len() } else { 0 },
                        if cut { " cut" } else { "" }
                    )
                } else {
                    l.clone()
                }
            })
            .collect();
        expected.assert_eq(&shown.join("|"));
    }

    #[test]
    fn lines_are_split_joined_and_cut() {
        check(&["a\nb\n"], expect!["a|b"]);
        check(&["a", "b\nc"], expect!["ab|c"]);
        check(&["\n\n"], expect!["|"]);
        check(&[""], expect![""]);
        check(&["no newline at the end"], expect!["no newline at the end"]);
        // Exactly the longest line, then one byte more.
        check(&["#8192 \nok\n"], expect!["<8192 bytes>|ok"]);
        check(&["#8193 \nok\n"], expect!["<8192 bytes cut>|ok"]);
        // The rest of a cut line is skipped up to its newline, across reads.
        check(
            &["#9000", "#9000", "#10 \nnext\n"],
            expect!["<8192 bytes cut>|next"],
        );
        // A writer that never prints a newline: one cut line, then nothing until its end.
        check(&["#100000", "#100000"], expect!["<8192 bytes cut>"]);
        check(&["#8192", "\n"], expect!["<8192 bytes>"]);
        // Invalid UTF-8 is replaced, not refused.
        check(&["caf\u{e9}\n", "\u{1F600}\n"], expect!["café|😀"]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        splitter.feed(b"a\xffb\n", &mut |l| lines.push(l));
        assert_eq!(lines, ["a\u{FFFD}b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_over_its_budget_waits() {
        let pace = Pace::new(100.0, 1_000_000.0);
        let start = Instant::now();
        // A second's worth at once is free.
        pace.wait(100, 200).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Then 300 more lines cost 3 s.
        pace.wait(300, 600).await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(2_990) && waited <= Duration::from_millis(3_010),
            "{waited:?}"
        );
        // Bytes count too.
        let pace = Pace::new(1e9, 1_000.0);
        let start = Instant::now();
        pace.wait(1, 3_000).await;
        assert!(
            start.elapsed() >= Duration::from_millis(1_990),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_is_told_how_many_lines_it_missed() {
        let (sender, mut rx) = LineSender::channel(2);
        for i in 0..10 {
            sender.send(&format!("line {i}"));
        }
        assert_eq!(rx.recv().await.unwrap(), "line 0");
        assert_eq!(rx.recv().await.unwrap(), "line 1");
        sender.send("line 10");
        assert_eq!(
            rx.recv().await.unwrap(),
            "(slipway: 8 lines dropped: the reader fell behind)"
        );
        assert_eq!(rx.recv().await.unwrap(), "line 10");
        assert_eq!(rx.try_recv(), None);

        // Long lines fill it by bytes before they fill it by count.
        let (sender, mut rx) = LineSender::channel(1_000);
        let long = "x".repeat(MAX_LINE);
        for _ in 0..QUEUED_BYTES / MAX_LINE + 10 {
            sender.send(&long);
        }
        let mut held = 0;
        while let Some(line) = rx.try_recv() {
            held += line.len();
        }
        assert_eq!(held, QUEUED_BYTES);
        sender.send("short");
        assert_eq!(
            rx.recv().await.unwrap(),
            "(slipway: 10 lines dropped: the reader fell behind)"
        );
    }
}
