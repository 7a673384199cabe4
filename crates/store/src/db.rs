//! Connecting, migrating, and running one SQL text on either backend.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{Error, Result};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// SQLite allows one writer at a time. Writes go through a pool of one connection, so
    /// they queue in the pool instead of failing with SQLITE_BUSY; reads use their own pool
    /// and, in WAL mode, never wait for writers.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store has. `$pool` is bound to a
/// `&SqlitePool` or a `&PgPool`; the body is compiled once per backend.
macro_rules! on_db {
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.db {
            crate::db::Db::Sqlite { read: $pool, .. } => $body,
            crate::db::Db::Postgres($pool) => $body,
        }
    };
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.db {
            crate::db::Db::Sqlite { write: $pool, .. } => $body,
            crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// The platform's database. Cheap to clone: it holds connection pools.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
    /// Bumped whenever work, its output or a lease may have changed (see `work.rs`).
    pub(crate) changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Store {
    /// Connects to `sqlite://PATH` (the file is created if missing) or `postgres://…`, and
    /// applies any migrations not yet applied.
    pub async fn open(url: &str) -> Result<Store> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk before the API acknowledges it.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options.read_only(true))
                .await?;
            Ok(Store {
                db: Db::Sqlite { read, write },
                changes: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            let changes = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
            tokio::spawn(listen(pool.clone(), std::sync::Arc::downgrade(&changes)));
            Ok(Store {
                db: Db::Postgres(pool),
                changes,
            })
        } else {
            Err(Error::UnsupportedUrl(url.to_owned()))
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_db!(self, read, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Waits for running queries and closes every connection.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Relays PostgreSQL's notifications of new work, made by any process, to this process's
/// waiters, until the store is dropped or closed. A lost connection is made again; waiters
/// poll meanwhile.
async fn listen(pool: PgPool, changes: std::sync::Weak<tokio::sync::watch::Sender<u64>>) {
    let mut listener = None;
    loop {
        if pool.is_closed() || changes.strong_count() == 0 {
            return;
        }
        let current = match listener.take() {
            Some(listener) => listener,
            None => {
                let connected = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    l.listen(crate::work::CHANNEL).await?;
                    Ok::<_, sqlx::Error>(l)
                };
                match connected.await {
                    Ok(l) => l,
                    Err(err) => {
                        tracing::debug!(error = %err, "cannot listen for new work; polling");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
        };
        let mut current = current;
        // Wake up now and then to notice that the store has gone.
        match tokio::time::timeout(Duration::from_secs(1), current.try_recv()).await {
            Ok(Ok(Some(_))) | Ok(Ok(None)) => {
                if let Some(changes) = changes.upgrade() {
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                listener = Some(current);
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "lost the notification connection; polling");
            }
            Err(_) => listener = Some(current),
        }
    }
}

/// The current time, truncated to microseconds so that both backends store it exactly.
pub(crate) fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("microseconds are valid nanoseconds")
}

pub(crate) fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Appends a row to the audit trail, on the given connection or transaction. The row names
/// the pipeline its app is in at that moment (or the one given, for a pipeline's own events),
/// so a pipeline's history reads as it was.
macro_rules! record_event {
    ($conn:expr, app: $app:expr, actor: $actor:expr, action: $action:expr, detail: $detail:expr $(,)?) => {
        crate::db::record_event!($conn, app: $app, actor: $actor, action: $action, detail: $detail, pipeline: None::<&str>)
    };
    ($conn:expr, app: $app:expr, actor: $actor:expr, action: $action:expr, detail: $detail:expr, pipeline: $pipeline:expr $(,)?) => {
        sqlx::query(
            "INSERT INTO events (id, app, actor, action, detail, created_at, pipeline) \
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, (SELECT p.name FROM pipeline_apps pa \
             JOIN apps a ON a.id = pa.app_id JOIN pipelines p ON p.id = pa.pipeline_id WHERE a.name = $2)))",
        )
        .bind(crate::db::new_id())
        .bind($app)
        .bind($actor)
        .bind($action)
        .bind($detail)
        .bind(crate::db::now())
        .bind($pipeline)
        .execute($conn)
        .await
    };
}
pub(crate) use record_event;
