//! Apps' logs and tenants' output, bounded: the log streams the release manager, the runtime
//! and the router write, read back through a [`LogSource`], and the [`LineSender`]s that carry
//! a process's output to a pusher or a `slip run` caller.
//!
//! A runtime provides the [`LogSource`] the API reads: [`Logs`] in memory for a platform in
//! one process (`slipwayd up`), [`FileLogs`] over the local runtime's files
//! (`<data>/logs/<app>.log`, which [`Logs::open`] writes) for an API in another process on
//! the same machine, and the pod log API of Kubernetes later.
//!
//! Architecture invariant: this crate knows lines, apps' names and files in one directory; it
//! does not know releases, processes or runtimes. Nothing in it holds more than a fixed number
//! of lines of a fixed length for a reader, however far behind the reader is.

use std::fmt;

use async_trait::async_trait;
use domain::AppName;
use tokio::sync::{broadcast, mpsc};

mod file;
mod logs;
mod output;

pub use file::FileLogs;
pub use logs::{LogFilter, LogLine, Logs};
pub use output::{LineReceiver, LineSender, Pace, read_lines};

/// Why an app's log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Something other than a regular file sits where the app's log belongs (a symlink, a
    /// directory, a pipe): it is not read, let alone followed.
    #[error(
        "the log of {app} is not a regular file: remove {path} and the platform writes it again"
    )]
    NotAFile { app: String, path: String },
    /// The file is there but reading it failed.
    #[error("cannot read the log of {app}: {source}; check the logs directory")]
    Read {
        app: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the API reads an app's log from.
#[async_trait]
pub trait LogSource: Send + Sync + fmt::Debug {
    /// The last `n` lines of `app`'s log that pass `filter`, oldest first.
    async fn tail(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<Vec<LogLine>, LogError>;

    /// The last `n` lines that pass `filter`, and each later one that does as it is written;
    /// no line falls between the two.
    async fn follow(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<(Vec<LogLine>, Follow), LogError>;
}

/// What a follower is told next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// A new line.
    Line(LogLine),
    /// The follower fell behind and this many lines passed it by.
    Missed(u64),
}

/// New lines of an app's log as they are written, bounded: a follower who reads slower than
/// the app writes misses lines and is told how many.
#[derive(Debug)]
pub struct Follow {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// Lines pushed to a [`Logs`] in this process.
    Memory {
        live: broadcast::Receiver<std::sync::Arc<LogLine>>,
        filter: LogFilter,
    },
    /// Lines a background task finds (in a file), filtered already; the task ends with this.
    Task {
        live: mpsc::Receiver<Followed>,
        task: tokio::task::JoinHandle<()>,
    },
}

impl Follow {
    fn memory(live: broadcast::Receiver<std::sync::Arc<LogLine>>, filter: LogFilter) -> Follow {
        Follow {
            inner: Inner::Memory { live, filter },
        }
    }

    /// Lines a background `task` finds and sends to `live`, filtered already, for a
    /// [`LogSource`] of another crate (a runtime's). The task is stopped when the follower
    /// goes.
    pub fn from_task(live: mpsc::Receiver<Followed>, task: tokio::task::JoinHandle<()>) -> Follow {
        Follow {
            inner: Inner::Task { live, task },
        }
    }

    /// The next line or count of missed lines; `None` once the log is gone (the app was
    /// destroyed) or can no longer be read.
    pub async fn next(&mut self) -> Option<Followed> {
        match &mut self.inner {
            Inner::Memory { live, filter } => loop {
                match live.recv().await {
                    Ok(line) if filter.matches(&line) => {
                        return Some(Followed::Line(LogLine::clone(&line)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Some(Followed::Missed(missed));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            Inner::Task { live, .. } => live.recv().await,
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        if let Inner::Task { task, .. } = &self.inner {
            task.abort();
        }
    }
}

#[async_trait]
impl LogSource for Logs {
    async fn tail(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<Vec<LogLine>, LogError> {
        Ok(Logs::tail(self, app.as_str(), n, filter))
    }

    async fn follow(
        &self,
        app: &AppName,
        n: usize,
        filter: &LogFilter,
    ) -> Result<(Vec<LogLine>, Follow), LogError> {
        let (past, live) = Logs::follow(self, app.as_str(), n, filter);
        Ok((past, Follow::memory(live, filter.clone())))
    }
}
