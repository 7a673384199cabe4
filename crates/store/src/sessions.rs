//! Dashboard sessions: a browser's sign-in, kept by the hash of the cookie's secret with the
//! session's CSRF token and a hard end. Signing out deletes it; an expired one is deleted by
//! the next sign-in, and reads as absent before that.

use time::OffsetDateTime;

use crate::db::{now, on_db};
use crate::users::UserRow;
use crate::{Result, Store, User};

/// A signed-in browser, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub user: User,
    /// Every form the session posts must carry it.
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Store {
    /// Records a sign-in by the hash of its secret; sessions that have ended are swept on the way.
    pub async fn create_session(
        &self,
        user: &User,
        secret_hash: &str,
        csrf_token: &str,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let at = now();
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
                .bind(at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO web_sessions (secret_hash, user_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(secret_hash)
            .bind(user.id)
            .bind(csrf_token)
            .bind(at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The live session with this secret hash: `None` when there is none, or it has ended.
    pub async fn session(&self, secret_hash: &str) -> Result<Option<WebSession>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            csrf_token: String,
            session_created_at: OffsetDateTime,
            expires_at: OffsetDateTime,
        }
        let row: Option<Row> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.username, u.admin, u.created_at, s.csrf_token, \
                 s.created_at AS session_created_at, s.expires_at FROM web_sessions s \
                 JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1 AND s.expires_at > $2",
            )
            .bind(secret_hash)
            .bind(now())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|row| WebSession {
            user: row.user.into(),
            csrf_token: row.csrf_token,
            created_at: row.session_created_at,
            expires_at: row.expires_at,
        }))
    }

    /// Ends a session (signing out). Whether there was one to end.
    pub async fn delete_session(&self, secret_hash: &str) -> Result<bool> {
        let deleted = on_db!(self, write, |pool| {
            sqlx::query("DELETE FROM web_sessions WHERE secret_hash = $1")
                .bind(secret_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(deleted > 0)
    }
}
