//! Each app's routing switches, kept as the JSON of [`RoutingSettings`] on the app's row; each
//! change commits together with the [`WorkKind::Hosts`] that hands it to the router.

use domain::{RoutingChange, RoutingSettings};

use crate::db::{on_db, record_event};
use crate::work::enqueue_on;
use crate::{App, Error, Result, Store, User, WorkId, WorkKind};

/// What a change of the routing switches did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingChanged {
    /// The app's switches after the change.
    pub settings: RoutingSettings,
    /// The [`WorkKind::Hosts`] queued to apply them; `None` when nothing changed.
    pub work: Option<WorkId>,
}

fn parse(app: &App, json: &str) -> Result<RoutingSettings> {
    serde_json::from_str(json)
        .map_err(|e| Error::corrupt(format!("the routing settings of {}: {e}", app.name)))
}

impl Store {
    pub async fn routing_settings(&self, app: &App) -> Result<RoutingSettings> {
        let json: Option<String> = on_db!(self, read, |pool| sqlx::query_scalar(
            "SELECT routing FROM apps WHERE id = $1"
        )
        .bind(app.id)
        .fetch_optional(pool)
        .await)?;
        parse(
            app,
            &json.ok_or_else(|| Error::NotFound(format!("app {}", app.name)))?,
        )
    }

    /// Applies `change` by the rules of [`RoutingSettings::apply`]; refused (and nothing
    /// changed) when it breaks one. When the switches change, a [`WorkKind::Hosts`] is queued
    /// in the same transaction, so the router learns them; a change that leaves them as they
    /// were commits nothing and queues nothing.
    pub async fn change_routing(
        &self,
        app: &App,
        change: &RoutingChange,
        actor: &User,
    ) -> Result<RoutingChanged> {
        let (action, detail) = event(change);
        let changed = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            // Locks the row (PostgreSQL; SQLite has one writer), so concurrent changes apply
            // one after the other, none lost.
            let json: Option<String> = sqlx::query_scalar(
                "UPDATE apps SET routing = routing WHERE id = $1 RETURNING routing",
            )
            .bind(app.id)
            .fetch_optional(&mut *tx)
            .await?;
            let json = json.ok_or_else(|| Error::NotFound(format!("app {}", app.name)))?;
            let current = parse(app, &json)?;
            let mut settings = current.clone();
            settings.apply(change)?;
            if settings == current {
                return Ok(RoutingChanged {
                    settings,
                    work: None,
                });
            }
            let json = serde_json::to_string(&settings).map_err(Error::corrupt)?;
            sqlx::query("UPDATE apps SET routing = $2 WHERE id = $1")
                .bind(app.id)
                .bind(json)
                .execute(&mut *tx)
                .await?;
            let work = enqueue_on!(&mut *tx, app.name, WorkKind::Hosts)?;
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: action, detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(RoutingChanged {
                settings,
                work: Some(work),
            })
        })?;
        if changed.work.is_some() {
            self.announce().await;
        }
        Ok(changed)
    }
}

/// The audit trail's action and detail for a change.
fn event(change: &RoutingChange) -> (&'static str, String) {
    let list = |ranges: &[domain::Cidr]| {
        ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    match change {
        RoutingChange::Enabled(true) => ("routing.enable", String::new()),
        RoutingChange::Enabled(false) => ("routing.disable", String::new()),
        RoutingChange::Maintenance(true) => ("maintenance.on", String::new()),
        RoutingChange::Maintenance(false) => ("maintenance.off", String::new()),
        RoutingChange::Allow(ranges) => ("whitelist.add", list(ranges)),
        RoutingChange::Disallow(ranges) => ("whitelist.remove", list(ranges)),
        RoutingChange::Https { force: true, hsts } => (
            "tls.enable",
            if *hsts {
                "hsts".to_owned()
            } else {
                String::new()
            },
        ),
        RoutingChange::Https { force: false, .. } => ("tls.disable", String::new()),
    }
}
