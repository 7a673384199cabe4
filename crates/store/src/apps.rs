//! Apps, collaborators, formation, domains and the audit trail.

use domain::{
    AppName, Formation, Hostname, ProcessType, ReleaseCause, ReleaseStatus, ReleaseVersion, Stack,
};
use uuid::Uuid;

use crate::db::{new_id, now, on_db, record_event};
use crate::error::conflict_on_unique;
use crate::{
    Access, App, AppSummary, Collaborator, Domain, DomainState, Error, Event, LatestRelease,
    ProcessCount, Result, Store, User,
};

const APP_SELECT: &str = "SELECT a.id, a.name, o.username AS owner, a.created_at, a.uid_slot, a.stack FROM apps a \
                          JOIN users o ON o.id = a.owner_id";

#[derive(sqlx::FromRow)]
struct AppRow {
    id: Uuid,
    name: String,
    owner: String,
    created_at: time::OffsetDateTime,
    uid_slot: Option<i64>,
    stack: String,
}

impl TryFrom<AppRow> for App {
    type Error = Error;

    fn try_from(row: AppRow) -> Result<App> {
        Ok(App {
            id: row.id,
            name: AppName::parse(&row.name).map_err(Error::corrupt)?,
            owner: row.owner,
            created_at: row.created_at,
            uid_slot: row
                .uid_slot
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| Error::corrupt(format!("app {} has no uid slot", row.name)))?,
            stack: Stack::parse(&row.stack).map_err(Error::corrupt)?,
        })
    }
}

/// The most custom domains, pending or verified, one app may hold.
const MAX_DOMAINS: i64 = 100;

const DOMAIN_SELECT: &str =
    "SELECT domain, created_at, verification_token, verified_at FROM domains";

#[derive(sqlx::FromRow)]
struct DomainRow {
    domain: String,
    created_at: time::OffsetDateTime,
    verification_token: Option<String>,
    verified_at: Option<time::OffsetDateTime>,
}

impl TryFrom<DomainRow> for Domain {
    type Error = Error;

    fn try_from(row: DomainRow) -> Result<Domain> {
        let state = match (row.verified_at, row.verification_token) {
            (Some(at), _) => DomainState::Verified { at },
            (None, Some(token)) => DomainState::Pending { token },
            (None, None) => {
                return Err(Error::corrupt(format!(
                    "domain {} is neither verified nor has a token",
                    row.domain
                )));
            }
        };
        Ok(Domain {
            domain: row.domain,
            created_at: row.created_at,
            state,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    #[sqlx(flatten)]
    app: AppRow,
    access: i64,
}

impl Store {
    /// Creates an app owned by `owner`, with release v1, "created initial release".
    pub async fn create_app(&self, name: &AppName, owner: &User) -> Result<App> {
        let id = new_id();
        let created_at = now();
        let summary = ReleaseCause::Created.summary(&owner.username);
        let uid_slot = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            // The counter's row lock (PostgreSQL) or the single writer (SQLite) gives each app
            // a number of its own.
            let slot: i64 = sqlx::query_scalar(
                "UPDATE counters SET value = value + 1 WHERE name = 'app_uid' RETURNING value - 1",
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO apps (id, name, owner_id, last_version, created_at, uid_slot) VALUES ($1, $2, $3, 1, $4, $5)",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(owner.id)
            .bind(created_at)
            .bind(slot)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, || format!("the app name {name} is taken")))?;
            sqlx::query(
                "INSERT INTO releases (id, app_id, version, build_id, config, summary, status, reason, created_by, created_at) \
                 VALUES ($1, $2, 1, NULL, '{}', $3, $4, NULL, $5, $6)",
            )
            .bind(new_id())
            .bind(id)
            .bind(&summary)
            .bind(ReleaseStatus::Succeeded.as_str())
            .bind(owner.id)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
            record_event!(&mut *tx, app: name.as_str(), actor: &owner.username, action: "app.create", detail: "")?;
            tx.commit().await?;
            Ok::<_, Error>(slot)
        })?;
        Ok(App {
            id,
            name: name.clone(),
            owner: owner.username.clone(),
            created_at,
            uid_slot: u32::try_from(uid_slot).map_err(Error::corrupt)?,
            stack: Stack::Buildpacks,
        })
    }

    /// The apps with a build still `running` or a release still `pending` or `deploying`:
    /// the ones a push cut off may have left unsettled.
    pub async fn unsettled_apps(&self) -> Result<Vec<App>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{APP_SELECT} WHERE EXISTS (SELECT 1 FROM builds b WHERE b.app_id = a.id \
             AND b.status = 'running') OR EXISTS (SELECT 1 FROM releases r \
             WHERE r.app_id = a.id AND r.status IN ('pending', 'deploying')) ORDER BY a.name"
        ));
        let rows: Vec<AppRow> =
            on_db!(self, read, |pool| sqlx::query_as(sql).fetch_all(pool).await)?;
        rows.into_iter().map(App::try_from).collect()
    }

    /// The apps `user` may see: all of them for an admin, else those they own or collaborate on.
    pub async fn apps_for(&self, user: &User) -> Result<Vec<App>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{APP_SELECT} WHERE $1 OR a.owner_id = $2 OR EXISTS \
             (SELECT 1 FROM collaborators c WHERE c.app_id = a.id AND c.user_id = $2) ORDER BY a.name"
        ));
        let rows: Vec<AppRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(user.admin)
            .bind(user.id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(App::try_from).collect()
    }

    /// The apps `user` may see, by name, each with its newest release and its routing
    /// switches: the dashboard's apps list, in one query.
    pub async fn app_summaries(&self, user: &User) -> Result<Vec<AppSummary>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            name: String,
            owner: String,
            routing: String,
            version: Option<i64>,
            status: Option<String>,
            summary: Option<String>,
            created_by: Option<String>,
            released_at: Option<time::OffsetDateTime>,
            deploy_finished_at: Option<time::OffsetDateTime>,
        }
        let rows: Vec<Row> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT a.name, o.username AS owner, a.routing, r.version, r.status, r.summary, \
                 ru.username AS created_by, r.created_at AS released_at, r.deploy_finished_at \
                 FROM apps a JOIN users o ON o.id = a.owner_id \
                 LEFT JOIN releases r ON r.app_id = a.id AND r.version = a.last_version \
                 LEFT JOIN users ru ON ru.id = r.created_by \
                 WHERE $1 OR a.owner_id = $2 OR EXISTS \
                 (SELECT 1 FROM collaborators c WHERE c.app_id = a.id AND c.user_id = $2) \
                 ORDER BY a.name",
            )
            .bind(user.admin)
            .bind(user.id)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|row| {
                let latest = match (row.version, row.status, row.created_by, row.released_at) {
                    (Some(version), Some(status), Some(created_by), Some(created_at)) => {
                        Some(LatestRelease {
                            version: u32::try_from(version)
                                .ok()
                                .and_then(ReleaseVersion::new)
                                .ok_or_else(|| {
                                    Error::corrupt(format!("release version {version}"))
                                })?,
                            status: ReleaseStatus::parse(&status).ok_or_else(|| {
                                Error::corrupt(format!("release status {status:?}"))
                            })?,
                            summary: row.summary.unwrap_or_default(),
                            created_by,
                            created_at,
                            deploy_finished_at: row.deploy_finished_at,
                        })
                    }
                    _ => None,
                };
                let routing = serde_json::from_str(&row.routing).map_err(|e| {
                    Error::corrupt(format!("the routing settings of {}: {e}", row.name))
                })?;
                Ok(AppSummary {
                    name: AppName::parse(&row.name).map_err(Error::corrupt)?,
                    owner: row.owner,
                    routing,
                    latest,
                })
            })
            .collect()
    }

    /// Every app, by name: what the release manager brings back up on start.
    pub async fn all_apps(&self) -> Result<Vec<App>> {
        let sql = sqlx::AssertSqlSafe(format!("{APP_SELECT} ORDER BY a.name"));
        let rows: Vec<AppRow> =
            on_db!(self, read, |pool| sqlx::query_as(sql).fetch_all(pool).await)?;
        rows.into_iter().map(App::try_from).collect()
    }

    pub async fn app(&self, name: &str) -> Result<App> {
        let sql = sqlx::AssertSqlSafe(format!("{APP_SELECT} WHERE a.name = $1"));
        let row: Option<AppRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        row.ok_or_else(|| Error::NotFound(format!("app {name}")))?
            .try_into()
    }

    /// The app and how `user` relates to it, in one query.
    pub async fn app_access(&self, name: &str, user: &User) -> Result<(App, Access)> {
        let sql = sqlx::AssertSqlSafe(
            "SELECT a.id, a.name, o.username AS owner, a.created_at, a.uid_slot, a.stack, CAST(CASE \
               WHEN a.owner_id = $2 THEN 2 \
               WHEN EXISTS (SELECT 1 FROM collaborators c WHERE c.app_id = a.id AND c.user_id = $2) THEN 1 \
               ELSE 0 END AS BIGINT) AS access \
             FROM apps a JOIN users o ON o.id = a.owner_id WHERE a.name = $1",
        );
        let row: Option<AccessRow> = on_db!(self, read, |pool| sqlx::query_as(sql)
            .bind(name)
            .bind(user.id)
            .fetch_optional(pool)
            .await)?;
        let row = row.ok_or_else(|| Error::NotFound(format!("app {name}")))?;
        let access = match row.access {
            2 => Access::Owner,
            1 => Access::Collaborator,
            _ => Access::None,
        };
        Ok((row.app.try_into()?, access))
    }

    /// Sets how the app is built from its next push on (`slip stack:set`).
    pub async fn set_stack(&self, app: &App, stack: Stack, actor: &User) -> Result<App> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE apps SET stack = $1 WHERE id = $2")
                .bind(stack.as_str())
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("app {}", app.name)));
            }
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "app.stack", detail: stack.as_str())?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        Ok(App {
            stack,
            ..app.clone()
        })
    }

    /// Deletes the app and everything that belongs to it; the audit trail keeps its events.
    pub async fn destroy_app(&self, app: &App, actor: &User) -> Result<()> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            // Releases refer to builds; both go with the app, releases first.
            sqlx::query("DELETE FROM releases WHERE app_id = $1")
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM apps WHERE id = $1")
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("app {}", app.name)));
            }
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "app.destroy", detail: "")?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn collaborators(&self, app: &App) -> Result<Vec<Collaborator>> {
        let rows: Vec<(String, time::OffsetDateTime)> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT u.username, c.added_at FROM collaborators c JOIN users u ON u.id = c.user_id \
                 WHERE c.app_id = $1 ORDER BY u.username",
            )
            .bind(app.id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(username, added_at)| Collaborator { username, added_at })
            .collect())
    }

    pub async fn add_collaborator(
        &self,
        app: &App,
        username: &str,
        actor: &User,
    ) -> Result<Collaborator> {
        let user = self.user(username).await?;
        if user.username == app.owner {
            return Err(Error::Conflict(format!(
                "{username} owns {} already",
                app.name
            )));
        }
        let added_at = now();
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO collaborators (app_id, user_id, added_at) VALUES ($1, $2, $3)",
            )
            .bind(app.id)
            .bind(user.id)
            .bind(added_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || format!("{username} is a collaborator already"))
            })?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "perms.add", detail: username)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        Ok(Collaborator {
            username: user.username,
            added_at,
        })
    }

    pub async fn remove_collaborator(&self, app: &App, username: &str, actor: &User) -> Result<()> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "DELETE FROM collaborators WHERE app_id = $1 AND user_id = (SELECT id FROM users WHERE username = $2)",
            )
            .bind(app.id)
            .bind(username)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("collaborator {username}")));
            }
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "perms.remove", detail: username)?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn formation(&self, app: &App) -> Result<Vec<ProcessCount>> {
        let rows: Vec<(String, i64)> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT process_type, count FROM formation WHERE app_id = $1 ORDER BY process_type",
            )
            .bind(app.id)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(process_type, count)| {
                let count = u32::try_from(count).map_err(Error::corrupt)?;
                Ok(ProcessCount {
                    process_type,
                    count,
                })
            })
            .collect()
    }

    /// Applies a scale request. `known` is the process types of the app's current build,
    /// if it has one (see [`Formation::scale`]). Scaling makes no release.
    pub async fn scale(
        &self,
        app: &App,
        changes: &[(ProcessType, u32)],
        known: Option<&[ProcessType]>,
        actor: &User,
    ) -> Result<Vec<ProcessCount>> {
        let current = self.formation(app).await?;
        let current = Formation::from_counts(current.iter().filter_map(|p| {
            ProcessType::parse(&p.process_type)
                .ok()
                .map(|t| (t, p.count))
        }));
        current.scale(changes, known)?;
        let detail: Vec<String> = changes.iter().map(|(t, n)| format!("{t}={n}")).collect();
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for (process_type, count) in changes {
                sqlx::query(
                    "INSERT INTO formation (app_id, process_type, count) VALUES ($1, $2, $3) \
                     ON CONFLICT (app_id, process_type) DO UPDATE SET count = excluded.count",
                )
                .bind(app.id)
                .bind(process_type.as_str())
                .bind(i64::from(*count))
                .execute(&mut *tx)
                .await?;
            }
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "ps.scale", detail: detail.join(" "))?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.formation(app).await
    }

    /// The app's custom domains, pending and verified.
    pub async fn domains(&self, app: &App) -> Result<Vec<Domain>> {
        let sql = sqlx::AssertSqlSafe(format!("{DOMAIN_SELECT} WHERE app_id = $1 ORDER BY domain"));
        let rows: Vec<DomainRow> = on_db!(self, read, |pool| {
            sqlx::query_as(sql).bind(app.id).fetch_all(pool).await
        })?;
        rows.into_iter().map(Domain::try_from).collect()
    }

    /// One custom domain of the app.
    pub async fn domain(&self, app: &App, domain: &str) -> Result<Domain> {
        let sql = sqlx::AssertSqlSafe(format!("{DOMAIN_SELECT} WHERE app_id = $1 AND domain = $2"));
        let row: Option<DomainRow> = on_db!(self, read, |pool| {
            sqlx::query_as(sql)
                .bind(app.id)
                .bind(domain)
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or_else(|| Error::NotFound(format!("domain {domain}")))?
            .try_into()
    }

    /// Adds a custom domain: pending until `token` is verified, or verified at once when
    /// `token` is `None` (a name the platform itself vouches for). Another app may hold the
    /// same name pending, but not verified.
    pub async fn add_domain(
        &self,
        app: &App,
        domain: &Hostname,
        token: Option<&str>,
        actor: &User,
    ) -> Result<Domain> {
        let created_at = now();
        let verified_at = token.is_none().then_some(created_at);
        let taken = || format!("the domain {domain} is already in use");
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let holders: Vec<(Uuid, Option<time::OffsetDateTime>)> =
                sqlx::query_as("SELECT app_id, verified_at FROM domains WHERE domain = $1")
                    .bind(domain.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
            if holders.iter().any(|(id, _)| *id == app.id) {
                return Err(Error::Conflict(format!(
                    "the domain {domain} is already added to {}",
                    app.name
                )));
            }
            if holders.iter().any(|(_, verified)| verified.is_some()) {
                return Err(Error::Conflict(taken()));
            }
            let (held,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM domains WHERE app_id = $1")
                .bind(app.id)
                .fetch_one(&mut *tx)
                .await?;
            if held >= MAX_DOMAINS {
                return Err(Error::Conflict(format!(
                    "{} has {MAX_DOMAINS} domains, the most an app may have: remove one first",
                    app.name
                )));
            }
            sqlx::query(
                "INSERT INTO domains (domain, app_id, created_at, verification_token, verified_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(domain.as_str())
            .bind(app.id)
            .bind(created_at)
            .bind(token)
            .bind(verified_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, taken))?;
            let detail = match token {
                Some(_) => format!("{domain} (pending verification)"),
                None => domain.to_string(),
            };
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "domains.add", detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        Ok(Domain {
            domain: domain.to_string(),
            created_at,
            state: match token {
                Some(token) => DomainState::Pending {
                    token: token.to_owned(),
                },
                None => DomainState::Verified { at: created_at },
            },
        })
    }

    /// Marks a pending domain verified, so it routes; a verified one is left as it is.
    /// Refused while another app holds the name verified.
    pub async fn verify_domain(&self, app: &App, domain: &str, actor: &User) -> Result<Domain> {
        let verified_at = now();
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE domains SET verified_at = $3 \
                 WHERE domain = $1 AND app_id = $2 AND verified_at IS NULL",
            )
            .bind(domain)
            .bind(app.id)
            .bind(verified_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict_on_unique(e, || {
                    format!(
                        "the domain {domain} is already in use by another app: its owner must remove it first"
                    )
                })
            })?;
            if done.rows_affected() == 1 {
                record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "domains.verify", detail: domain)?;
            }
            tx.commit().await?;
            Ok::<_, Error>(())
        })?;
        self.domain(app, domain).await
    }

    pub async fn remove_domain(&self, app: &App, domain: &str, actor: &User) -> Result<()> {
        on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM domains WHERE domain = $1 AND app_id = $2")
                .bind(domain)
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("domain {domain}")));
            }
            // Its ACME certificate goes with it: the name may next be another app's.
            sqlx::query("DELETE FROM acme_certificates WHERE host = $1 AND app_id = $2")
                .bind(domain)
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: "domains.remove", detail: domain)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The newest events first; for one app, or platform-wide.
    pub async fn events(&self, app: Option<&str>, limit: u32) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT app, pipeline, actor, action, detail, created_at FROM events \
                 WHERE $1 IS NULL OR app = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(app)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(event).collect())
    }

    /// The newest events of a pipeline first: its own, and its apps' while they were in it.
    pub async fn pipeline_events(&self, pipeline: &str, limit: u32) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT app, pipeline, actor, action, detail, created_at FROM events \
                 WHERE pipeline = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(pipeline)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(event).collect())
    }
}

type EventRow = (
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    time::OffsetDateTime,
);

fn event((app, pipeline, actor, action, detail, created_at): EventRow) -> Event {
    Event {
        app,
        pipeline,
        actor,
        action,
        detail,
        created_at,
    }
}
