//! Test fixtures shared by Slipway's test suites: a fresh, empty database per test on either
//! backend, a real Kubernetes control plane per test ([`cluster`]), an ACME server per test
//! ([`pebble`]), headless Chromium for the dashboard's tests ([`browser`]), and the
//! process-wide set-up every test harness needs.
//!
//! PostgreSQL tests need a server; `scripts/test` starts a throwaway cluster and exports
//! `SLIPWAY_TEST_POSTGRES_URL` (a URL to a database the tests may create databases from).
//! Without it the PostgreSQL half of a suite fails with a message saying so, rather than
//! passing without having run; set `SLIPWAY_TEST_POSTGRES=skip` to skip it on purpose.

pub mod browser;
pub mod cluster;
pub mod pebble;

use std::sync::Once;

pub use cluster::{ControlPlane, Error};

use sqlx::Connection;

/// The environment variable naming the PostgreSQL server tests create databases on.
pub const POSTGRES_URL_VAR: &str = "SLIPWAY_TEST_POSTGRES_URL";

/// Installs ring as the process's rustls crypto provider. Both ring and aws-lc-rs are
/// linked into some binaries, and rustls then refuses to guess: every harness calls this.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for one test. Dropping it leaves the PostgreSQL database behind (the
/// test cluster is thrown away whole) and deletes the SQLite file.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A new empty database, or `None` when PostgreSQL is skipped on purpose.
    pub async fn new(backend: Backend) -> Option<TestDatabase> {
        init();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("slipway.db").display());
                Some(TestDatabase {
                    url,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let Ok(server) = std::env::var(POSTGRES_URL_VAR) else {
                    if std::env::var("SLIPWAY_TEST_POSTGRES").as_deref() == Ok("skip") {
                        eprintln!("PostgreSQL tests skipped: SLIPWAY_TEST_POSTGRES=skip");
                        return None;
                    }
                    panic!(
                        "{POSTGRES_URL_VAR} is not set: run the suite with scripts/test, which starts \
                         PostgreSQL, or set SLIPWAY_TEST_POSTGRES=skip to skip these tests"
                    );
                };
                let name = format!("slipway_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}={server}: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create a test database");
                conn.close().await.ok();
                let base = server
                    .rsplit_once('/')
                    .map_or(server.as_str(), |(base, _)| base);
                Some(TestDatabase {
                    url: format!("{base}/{name}"),
                    _dir: None,
                })
            }
        }
    }
}
