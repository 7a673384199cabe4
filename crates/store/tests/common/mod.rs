//! What the store's suites share: a test body run on SQLite and on PostgreSQL, each time on
//! a fresh database, and the user and app most tests start from.

#![allow(dead_code, reason = "each suite uses its own part")]

use domain::{AppName, Username};
use slipway_store::{App, NewUser, Store, User};
use test_support::{Backend, TestDatabase};

/// Declares `mod name { sqlite, postgres }`: one async test body, run on both backends.
macro_rules! both_backends {
    ($(async fn $name:ident($store:ident: Store) $body:block)*) => {$(
        mod $name {
            use super::*;
            use test_support::Backend;
            use crate::common::open;
            async fn run($store: Store) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(open(Backend::Sqlite).await.expect("sqlite is always there")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) = open(Backend::Postgres).await {
                    run(store).await;
                }
            }
        }
    )*};
}

pub(crate) async fn open(backend: Backend) -> Option<Store> {
    let db = TestDatabase::new(backend).await?;
    let store = Store::open(&db.url).await.expect("open the store");
    // The database must outlive the test; leaking the handle keeps the SQLite file's
    // directory for the process's life, which ends with the test binary.
    std::mem::forget(db);
    Some(store)
}

pub(crate) async fn user(store: &Store, name: &str) -> User {
    let username = Username::parse(name).unwrap();
    store
        .create_user(&username, "hash", NewUser::Any)
        .await
        .unwrap()
        .unwrap()
}

pub(crate) async fn app(store: &Store, name: &str, owner: &User) -> App {
    store
        .create_app(&AppName::parse(name).unwrap(), owner)
        .await
        .unwrap()
}

pub(crate) use both_backends;
