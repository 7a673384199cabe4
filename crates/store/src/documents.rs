//! JSON documents kept on an app's row — its process settings and its routing switches —
//! read, and changed under the row's lock in one transaction with the work that applies the
//! change and its line in the audit trail.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{on_db, record_event};
use crate::work::enqueue_on;
use crate::{App, Error, Result, Store, User, WorkId, WorkKind};

/// Which document of the app's row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Document {
    /// `apps.settings`: `domain::ProcessSettings`.
    Settings,
    /// `apps.routing`: `domain::RoutingSettings`.
    Routing,
}

impl Document {
    fn column(self) -> &'static str {
        match self {
            Document::Settings => "settings",
            Document::Routing => "routing",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Document::Settings => "process settings",
            Document::Routing => "routing settings",
        }
    }

    fn parse<T: DeserializeOwned>(self, app: &App, json: &str) -> Result<T> {
        serde_json::from_str(json)
            .map_err(|e| Error::corrupt(format!("the {} of {}: {e}", self.what(), app.name)))
    }
}

/// What a change of a document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Changed<T> {
    /// The document after the change.
    pub(crate) document: T,
    /// The work queued to apply it; `None` when nothing changed or nothing was to be queued.
    pub(crate) work: Option<WorkId>,
}

/// The audit trail's action and detail for a change.
pub(crate) type Event = (&'static str, String);

impl Store {
    pub(crate) async fn document<T: DeserializeOwned>(
        &self,
        app: &App,
        document: Document,
    ) -> Result<T> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM apps WHERE id = $1",
            document.column()
        ));
        let json: Option<String> = on_db!(self, read, |pool| sqlx::query_scalar(sql)
            .bind(app.id)
            .fetch_optional(pool)
            .await)?;
        document.parse(
            app,
            &json.ok_or_else(|| Error::NotFound(format!("app {}", app.name)))?,
        )
    }

    /// Applies `change` to the app's `document`; refused (and nothing changed) when it
    /// returns an error. When the document changes and `queue` names work, that work is
    /// queued in the same transaction, so the change and what applies it cannot part. A
    /// change that leaves the document as it was commits nothing and queues nothing.
    pub(crate) async fn change_document<T, F>(
        &self,
        app: &App,
        document: Document,
        change: F,
        queue: Option<WorkKind>,
        event: Event,
        actor: &User,
    ) -> Result<Changed<T>>
    where
        T: Serialize + DeserializeOwned + PartialEq,
        F: FnOnce(&T) -> Result<T>,
    {
        let column = document.column();
        // Locks the row (PostgreSQL; SQLite has one writer), so concurrent changes of one
        // app's document apply one after the other, none lost.
        let lock = sqlx::AssertSqlSafe(format!(
            "UPDATE apps SET {column} = {column} WHERE id = $1 RETURNING {column}"
        ));
        let write = sqlx::AssertSqlSafe(format!("UPDATE apps SET {column} = $2 WHERE id = $1"));
        let (action, detail) = event;
        let changed = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let json: Option<String> = sqlx::query_scalar(lock)
                .bind(app.id)
                .fetch_optional(&mut *tx)
                .await?;
            let json = json.ok_or_else(|| Error::NotFound(format!("app {}", app.name)))?;
            let current: T = document.parse(app, &json)?;
            let updated = change(&current)?;
            if updated == current {
                // Nothing to write: the transaction is dropped, committing nothing.
                return Ok(Changed {
                    document: updated,
                    work: None,
                });
            }
            let json = serde_json::to_string(&updated).map_err(Error::corrupt)?;
            sqlx::query(write)
                .bind(app.id)
                .bind(json)
                .execute(&mut *tx)
                .await?;
            let work = match queue {
                Some(kind) => Some(enqueue_on!(&mut *tx, app.name, kind)?),
                None => None,
            };
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: action, detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(Changed {
                document: updated,
                work,
            })
        })?;
        if changed.work.is_some() {
            self.announce().await;
        }
        Ok(changed)
    }
}
