//! Users, API tokens and SSH keys.

use domain::{SshPublicKey, TokenScope, Username};
use uuid::Uuid;

use crate::db::{Db, new_id, now, on_db, record_event};
use crate::error::conflict_on_unique;
use crate::{ApiToken, App, Error, KeyOwner, NewToken, Result, SshKey, Store, TokenLimit, User};

/// Who may be created by [`Store::create_user`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewUser {
    /// Only when there are no users yet (self-registration on a closed platform).
    FirstOnly,
    /// Always (an admin creating a user, or open registration).
    Any,
}

const USER_COLUMNS: &str = "id, username, admin, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    username: String,
    admin: bool,
    created_at: time::OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> User {
        User {
            id: row.id,
            username: row.username,
            admin: row.admin,
            created_at: row.created_at,
        }
    }
}

/// A token's columns, with its app's name: `t` is `api_tokens`, `a` its app (left join).
const TOKEN_COLUMNS: &str = "t.id, t.created_at, t.expires_at, t.description, t.app_id, \
    a.name AS app_name, t.scope";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    created_at: time::OffsetDateTime,
    expires_at: Option<time::OffsetDateTime>,
    description: Option<String>,
    app_id: Option<Uuid>,
    app_name: Option<String>,
    scope: Option<String>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = Error;

    fn try_from(row: TokenRow) -> Result<ApiToken> {
        let limit = match (row.app_id, row.app_name, row.scope) {
            (None, _, None) => None,
            (Some(app_id), Some(app), Some(scope)) => Some(TokenLimit {
                app_id,
                app,
                scope: TokenScope::parse(&scope).map_err(|e| Error::Corrupt(e.to_string()))?,
            }),
            // Never written: fail closed rather than treat it as unscoped.
            _ => return Err(Error::Corrupt(format!("token {} has half a scope", row.id))),
        };
        Ok(ApiToken {
            id: row.id,
            created_at: row.created_at,
            // A token from before expiry was recorded has none: it counts as expired.
            expires_at: row.expires_at.unwrap_or(row.created_at),
            description: row.description,
            limit,
        })
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    user_id: Uuid,
    app_id: Option<Uuid>,
    fingerprint: String,
    public_key: String,
    comment: String,
    created_at: time::OffsetDateTime,
}

impl From<KeyRow> for SshKey {
    fn from(row: KeyRow) -> SshKey {
        SshKey {
            id: row.id,
            user_id: row.user_id,
            app_id: row.app_id,
            fingerprint: row.fingerprint,
            public_key: row.public_key,
            comment: row.comment,
            created_at: row.created_at,
        }
    }
}

impl Store {
    /// Creates a user. The first user of the platform becomes its admin. Returns `None`
    /// when `rule` is `FirstOnly` and users exist already.
    pub async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        rule: NewUser,
    ) -> Result<Option<User>> {
        let id = new_id();
        let created_at = now();
        let sql = format!(
            "INSERT INTO users (id, username, password_hash, admin, created_at) \
             SELECT $1, $2, $3, NOT EXISTS (SELECT 1 FROM users), $4 \
             WHERE $5 OR NOT EXISTS (SELECT 1 FROM users) \
             RETURNING {USER_COLUMNS}"
        );
        let taken = || format!("the username {username} is taken");
        macro_rules! insert {
            ($conn:expr) => {
                sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .bind(username.as_str())
                    .bind(password_hash)
                    .bind(created_at)
                    .bind(rule == NewUser::Any)
                    .fetch_optional($conn)
                    .await
                    .map_err(|e| conflict_on_unique(e, taken))?
            };
        }
        let row = match &self.db {
            Db::Sqlite { write, .. } => insert!(write),
            Db::Postgres(pool) => {
                // PostgreSQL only: two concurrent first registrations must not both become
                // admin, so the check and the insert run under a table lock.
                let mut tx = pool.begin().await?;
                sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                let row = insert!(&mut *tx);
                tx.commit().await?;
                row
            }
        };
        Ok(row.map(User::from))
    }

    pub async fn user_count(&self) -> Result<u64> {
        let count: i64 = on_db!(self, read, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM users"
        )
        .fetch_one(pool)
        .await)?;
        Ok(count as u64)
    }

    pub async fn user(&self, username: &str) -> Result<User> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ));
        let row: Option<UserRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(username)
            .fetch_optional(pool)
            .await)?;
        row.map(User::from)
            .ok_or_else(|| Error::NotFound(format!("user {username}")))
    }

    /// The user and their password hash, for login.
    pub async fn user_with_password(&self, username: &str) -> Result<Option<(User, String)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            password_hash: String,
        }
        let row: Option<Row> = on_db!(self, read, |pool| {
            sqlx::query_as("SELECT id, username, admin, created_at, password_hash FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|row| (row.user.into(), row.password_hash)))
    }

    /// Stores a new API token by its hash, valid until `expires_at` (a login's token).
    pub async fn create_token(
        &self,
        user: &User,
        token_hash: &str,
        expires_at: time::OffsetDateTime,
    ) -> Result<ApiToken> {
        let id = new_id();
        on_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(user.id)
            .bind(token_hash)
            .bind(now())
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.token(user, id).await
    }

    /// Stores a token made for automation (`slip tokens:create`), with the event
    /// `token.create` (which never holds the secret).
    pub async fn create_api_token(
        &self,
        user: &User,
        token_hash: &str,
        new: &NewToken<'_>,
    ) -> Result<ApiToken> {
        let id = new_id();
        let (app_id, app_name, scope) = match new.limit {
            Some((app, scope)) => (Some(app.id), Some(app.name.as_str()), Some(scope.as_str())),
            None => (None, None, None),
        };
        let detail = token_detail(id, new.description, scope, Some(new.expires_at));
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO api_tokens \
                 (id, user_id, token_hash, created_at, expires_at, description, app_id, scope) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(user.id)
            .bind(token_hash)
            .bind(now())
            .bind(new.expires_at)
            .bind(new.description)
            .bind(app_id)
            .bind(scope)
            .execute(&mut *tx)
            .await?;
            record_event!(&mut *tx, app: app_name, actor: &user.username, action: "token.create", detail: &detail)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.token(user, id).await
    }

    /// One of the user's tokens by id.
    async fn token(&self, user: &User, id: Uuid) -> Result<ApiToken> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t LEFT JOIN apps a ON a.id = t.app_id \
             WHERE t.id = $1 AND t.user_id = $2"
        ));
        let row: Option<TokenRow> = on_db!(self, write, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(user.id)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| Error::NotFound(format!("token {id}")))?
            .try_into()
    }

    /// The user a token belongs to and the token, if the token exists. Whether it has
    /// expired is the caller's to check (and to say).
    pub async fn user_by_token(&self, token_hash: &str) -> Result<Option<(User, ApiToken)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            token_id: Uuid,
            token_created_at: time::OffsetDateTime,
            expires_at: Option<time::OffsetDateTime>,
            description: Option<String>,
            app_id: Option<Uuid>,
            app_name: Option<String>,
            scope: Option<String>,
        }
        let row: Option<Row> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.username, u.admin, u.created_at, t.id AS token_id, \
                 t.created_at AS token_created_at, t.expires_at, t.description, t.app_id, \
                 a.name AS app_name, t.scope FROM api_tokens t \
                 JOIN users u ON u.id = t.user_id LEFT JOIN apps a ON a.id = t.app_id \
                 WHERE t.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })?;
        row.map(|row| {
            let token = ApiToken::try_from(TokenRow {
                id: row.token_id,
                created_at: row.token_created_at,
                expires_at: row.expires_at,
                description: row.description,
                app_id: row.app_id,
                app_name: row.app_name,
                scope: row.scope,
            })?;
            Ok((row.user.into(), token))
        })
        .transpose()
    }

    /// A user's tokens, newest first. Expired ones are deleted on the way.
    pub async fn tokens(&self, user: &User) -> Result<Vec<ApiToken>> {
        on_db!(self, write, |pool| {
            sqlx::query(
                "DELETE FROM api_tokens WHERE user_id = $1 AND (expires_at IS NULL OR expires_at <= $2)",
            )
            .bind(user.id)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t LEFT JOIN apps a ON a.id = t.app_id \
             WHERE t.user_id = $1 ORDER BY t.created_at DESC, t.id DESC"
        ));
        let rows: Vec<TokenRow> = on_db!(self, read, |pool| {
            sqlx::query_as(sql).bind(user.id).fetch_all(pool).await
        })?;
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    /// Revokes one of the user's tokens by its id, with the event `token.revoke`. Returns
    /// whether it existed.
    pub async fn delete_token_by_id(&self, user: &User, id: Uuid) -> Result<bool> {
        let token = match self.token(user, id).await {
            Ok(token) => token,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(err) => return Err(err),
        };
        let app = token.limit.as_ref().map(|l| l.app.as_str());
        let scope = token.limit.as_ref().map(|l| l.scope.as_str());
        let detail = token_detail(id, token.description.as_deref().unwrap_or(""), scope, None);
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            record_event!(&mut *tx, app: app, actor: &user.username, action: "token.revoke", detail: &detail)?;
            tx.commit().await?;
            Ok::<_, Error>(true)
        })
    }

    /// Revokes a token. Returns whether it existed.
    pub async fn delete_token(&self, token_hash: &str) -> Result<bool> {
        let done = on_db!(self, write, |pool| {
            sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// Adds one of the user's own keys.
    pub async fn add_key(&self, user: &User, key: &SshPublicKey) -> Result<SshKey> {
        let row: KeyRow = on_db!(self, write, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO ssh_keys (id, user_id, fingerprint, public_key, comment, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}"
            ));
            sqlx::query_as(sql)
                .bind(new_id())
                .bind(user.id)
                .bind(key.fingerprint())
                .bind(key.openssh())
                .bind(key.comment())
                .bind(now())
                .fetch_one(pool)
                .await
        })
        .map_err(|e| key_taken(e, key))?;
        Ok(row.into())
    }

    /// The user's own keys (not the deploy keys they added to apps).
    pub async fn keys(&self, user: &User) -> Result<Vec<SshKey>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM ssh_keys WHERE user_id = $1 AND app_id IS NULL \
             ORDER BY created_at, id"
        ));
        let rows: Vec<KeyRow> = on_db!(self, read, |pool| {
            sqlx::query_as(sql).bind(user.id).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(SshKey::from).collect())
    }

    /// Removes one of the user's own keys, named by id, fingerprint or comment.
    pub async fn remove_key(&self, user: &User, which: &str) -> Result<SshKey> {
        let keys = self.keys(user).await?;
        let key = pick_key(&keys, which)?;
        on_db!(self, write, |pool| {
            sqlx::query("DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2")
                .bind(key.id)
                .bind(user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(key.clone())
    }

    /// Adds a deploy key to the app: it acts as `adder`, limited to the app. Fingerprints
    /// stay unique platform-wide, so a key is someone's own or one app's, never both.
    pub async fn add_deploy_key(
        &self,
        app: &App,
        adder: &User,
        key: &SshPublicKey,
    ) -> Result<SshKey> {
        let detail = key_detail(key.fingerprint(), key.comment());
        let row: KeyRow = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO ssh_keys (id, user_id, app_id, fingerprint, public_key, comment, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {KEY_COLUMNS}"
            ));
            let row: KeyRow = sqlx::query_as(sql)
                .bind(new_id())
                .bind(adder.id)
                .bind(app.id)
                .bind(key.fingerprint())
                .bind(key.openssh())
                .bind(key.comment())
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| key_taken(e, key))?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &adder.username, action: "keys.add", detail: &detail)?;
            tx.commit().await?;
            Ok::<_, Error>(row)
        })?;
        Ok(row.into())
    }

    /// The app's deploy keys, whoever added them.
    pub async fn deploy_keys(&self, app: &App) -> Result<Vec<SshKey>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM ssh_keys WHERE app_id = $1 ORDER BY created_at, id"
        ));
        let rows: Vec<KeyRow> = on_db!(self, read, |pool| {
            sqlx::query_as(sql).bind(app.id).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(SshKey::from).collect())
    }

    /// Removes one of the app's deploy keys, named by id, fingerprint or comment.
    pub async fn remove_deploy_key(&self, app: &App, which: &str, actor: &User) -> Result<SshKey> {
        let keys = self.deploy_keys(app).await?;
        let key = pick_key(&keys, which)?.clone();
        let detail = key_detail(&key.fingerprint, &key.comment);
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM ssh_keys WHERE id = $1 AND app_id = $2")
                .bind(key.id)
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("deploy key {which}")));
            }
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "keys.remove", detail: &detail)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        Ok(key)
    }

    /// Whom the key with this fingerprint lets in (the gateway's lookup): the user who
    /// added it, and for a deploy key its app.
    pub async fn user_by_key(&self, fingerprint: &str) -> Result<Option<KeyOwner>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            app_id: Option<Uuid>,
            comment: String,
        }
        let row: Option<Row> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.username, u.admin, u.created_at, k.app_id, k.comment FROM ssh_keys k \
                 JOIN users u ON u.id = k.user_id WHERE k.fingerprint = $1",
            )
            .bind(fingerprint)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|row| KeyOwner {
            user: row.user.into(),
            only_app: row.app_id,
            comment: row.comment,
        }))
    }
}

const KEY_COLUMNS: &str = "id, user_id, app_id, fingerprint, public_key, comment, created_at";

/// A key named by id, fingerprint or comment among `keys`.
fn pick_key<'a>(keys: &'a [SshKey], which: &str) -> Result<&'a SshKey> {
    let matches: Vec<&SshKey> = keys
        .iter()
        .filter(|k| k.id.to_string() == which || k.fingerprint == which || k.comment == which)
        .collect();
    match matches.as_slice() {
        [key] => Ok(*key),
        [] => Err(Error::NotFound(format!("key {which}"))),
        _ => Err(Error::Conflict(format!(
            "{which} names several keys; give the fingerprint instead"
        ))),
    }
}

fn key_taken(err: sqlx::Error, key: &SshPublicKey) -> Error {
    conflict_on_unique(err, || {
        format!("the key {} is already added", key.fingerprint())
    })
}

/// A deploy key's event detail: what the key is, never more.
fn key_detail(fingerprint: &str, comment: &str) -> String {
    if comment.is_empty() {
        format!("deploy key {fingerprint}")
    } else {
        format!("deploy key {fingerprint} ({comment})")
    }
}

/// A token's event detail: its id, description, scope and expiry; never the secret.
fn token_detail(
    id: Uuid,
    description: &str,
    scope: Option<&str>,
    expires_at: Option<time::OffsetDateTime>,
) -> String {
    let mut detail = format!("{id} {description:?}");
    if let Some(scope) = scope {
        detail.push_str(&format!(" scope {scope}"));
    }
    if let Some(expires_at) = expires_at {
        let date = expires_at.date();
        detail.push_str(&format!(" until {date}"));
    }
    detail
}
